//! Which version of each plugin is installed, and the one an upgrade replaced with the grant
//! that was in force then, so `osprey plugin rollback` returns to both. The files of the kept
//! version are the CLI's business (`<plugins_dir>/.previous/NAME`); this is the record.

use super::audit::{self, Actor, Change};
use super::plugins::replace_grant;
use super::{Result, Store, StoreError, now_ms};
use crate::capability::Capabilities;

/// The two versions a plugin can have on record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Previous,
}

impl Slot {
    fn as_str(self) -> &'static str {
        match self {
            Slot::Current => "current",
            Slot::Previous => "previous",
        }
    }
}

/// A version on record.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginVersion {
    pub version: String,
    /// What the install audit recorded of the pack it came from (digest, signer), if any.
    pub pack: Option<serde_json::Value>,
    /// For the kept version: the grant in force when it was replaced (`None`: nothing was
    /// granted). For the current one, always `None` (its grant is the plugin's grant).
    pub grant: Option<Capabilities>,
}

#[derive(sqlx::FromRow)]
struct Row {
    version: String,
    pack_json: Option<String>,
    grant_json: Option<String>,
}

impl Row {
    fn parse(self, plugin: &str) -> Result<PluginVersion> {
        let corrupt = |what: &str, e: serde_json::Error| {
            StoreError::Corrupt(format!(
                "{what} of plugin '{plugin}' version {}: {e}",
                self.version
            ))
        };
        let pack = self
            .pack_json
            .as_deref()
            .map(|j| serde_json::from_str(j).map_err(|e| corrupt("pack record", e)))
            .transpose()?;
        let grant = self
            .grant_json
            .as_deref()
            .map(|j| serde_json::from_str(j).map_err(|e| corrupt("kept grant", e)))
            .transpose()?;
        Ok(PluginVersion {
            version: self.version,
            pack,
            grant,
        })
    }
}

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

async fn read(tx: &mut Tx<'_>, plugin: &str, slot: Slot) -> Result<Option<PluginVersion>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT version, pack_json, grant_json FROM plugin_versions WHERE plugin = $1 AND slot = $2",
    )
    .bind(plugin)
    .bind(slot.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| r.parse(plugin)).transpose()
}

async fn write(tx: &mut Tx<'_>, plugin: &str, slot: Slot, v: &PluginVersion) -> Result<()> {
    let json = |v: &serde_json::Value| v.to_string();
    sqlx::query(
        "INSERT INTO plugin_versions (plugin, slot, version, pack_json, grant_json, at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (plugin, slot) DO UPDATE SET version = excluded.version,
             pack_json = excluded.pack_json, grant_json = excluded.grant_json, at = excluded.at",
    )
    .bind(plugin)
    .bind(slot.as_str())
    .bind(&v.version)
    .bind(v.pack.as_ref().map(json))
    .bind(
        v.grant
            .as_ref()
            .map(|g| serde_json::to_string(g).expect("a grant serialises to JSON")),
    )
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn forget(tx: &mut Tx<'_>, plugin: &str, slot: Option<Slot>) -> Result<()> {
    match slot {
        Some(slot) => {
            sqlx::query("DELETE FROM plugin_versions WHERE plugin = $1 AND slot = $2")
                .bind(plugin)
                .bind(slot.as_str())
                .execute(&mut **tx)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM plugin_versions WHERE plugin = $1")
                .bind(plugin)
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(())
}

async fn current_grant(tx: &mut Tx<'_>, plugin: &str) -> Result<Option<Capabilities>> {
    let row: Option<String> = sqlx::query_scalar("SELECT grant_json FROM plugin_grants WHERE plugin = $1")
        .bind(plugin)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|json| {
        serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("grant of plugin '{plugin}': {e}")))
    })
    .transpose()
}

impl Store {
    /// The version of `plugin` an upgrade replaced and kept, with the grant in force then.
    pub async fn kept_version(&self, plugin: &str) -> Result<Option<PluginVersion>> {
        let mut tx = self.pool.begin().await?;
        let kept = read(&mut tx, plugin, Slot::Previous).await?;
        tx.rollback().await?;
        Ok(kept)
    }

    /// Record that `version` of `plugin` is installed (from the pack `pack`, if it came from
    /// one), and append `change` (the install's audit entry) in the same transaction. With
    /// `kept`, the version it replaced (whose files were kept) becomes the kept one, with the
    /// grant in force now; without, any kept version is forgotten.
    pub async fn record_install(
        &self,
        plugin: &str,
        version: &str,
        pack: Option<&serde_json::Value>,
        kept: Option<&str>,
        change: &Change<'_>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        match kept {
            Some(kept) => {
                let current = read(&mut tx, plugin, Slot::Current).await?;
                let previous = PluginVersion {
                    version: kept.to_owned(),
                    // The pack is known if the replaced version's install recorded it.
                    pack: current.filter(|c| c.version == kept).and_then(|c| c.pack),
                    grant: current_grant(&mut tx, plugin).await?,
                };
                write(&mut tx, plugin, Slot::Previous, &previous).await?;
            }
            None => forget(&mut tx, plugin, Some(Slot::Previous)).await?,
        }
        let current = PluginVersion {
            version: version.to_owned(),
            pack: pack.cloned(),
            grant: None,
        };
        write(&mut tx, plugin, Slot::Current, &current).await?;
        audit::append(&mut tx, &self.audit_key, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Swap the installed and the kept version of `plugin` on record: the kept version's grant
    /// comes back into force (running servers reload it), and the version rolled back from,
    /// `from` with the grant in force now, becomes the kept one, so a second rollback returns.
    /// Audited as `plugin.rollback` with the version (and pack) returned to. `None` when no
    /// version is kept.
    pub async fn record_rollback(
        &self,
        plugin: &str,
        from: &str,
        actor: &Actor,
    ) -> Result<Option<PluginVersion>> {
        let mut tx = self.writer.begin().await?;
        let Some(back_to) = read(&mut tx, plugin, Slot::Previous).await? else {
            return Ok(None);
        };
        let current = read(&mut tx, plugin, Slot::Current).await?;
        let leaving = PluginVersion {
            version: from.to_owned(),
            pack: current.filter(|c| c.version == from).and_then(|c| c.pack),
            grant: current_grant(&mut tx, plugin).await?,
        };
        replace_grant(&mut tx, plugin, back_to.grant.as_ref()).await?;
        write(&mut tx, plugin, Slot::Previous, &leaving).await?;
        write(
            &mut tx,
            plugin,
            Slot::Current,
            &PluginVersion {
                grant: None,
                ..back_to.clone()
            },
        )
        .await?;
        let change = Change {
            actor,
            action: "plugin.rollback",
            target: format!("plugin:{plugin}"),
            details: serde_json::json!({
                "version": back_to.version,
                "pack": back_to.pack,
                "from": leaving.version,
                "from_pack": leaving.pack,
                "grant": back_to.grant,
            }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(Some(back_to))
    }

    /// Record that `version` of `plugin` was removed, and its kept version with it; audited
    /// as `plugin.remove` with the version, the pack it came from and the kept version, if
    /// known.
    pub async fn record_remove(&self, plugin: &str, version: &str, actor: &Actor) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let current = read(&mut tx, plugin, Slot::Current).await?;
        let kept = read(&mut tx, plugin, Slot::Previous).await?;
        forget(&mut tx, plugin, None).await?;
        let change = Change {
            actor,
            action: "plugin.remove",
            target: format!("plugin:{plugin}"),
            details: serde_json::json!({
                "version": version,
                "pack": current.filter(|c| c.version == version).and_then(|c| c.pack),
                "kept": kept.map(|k| k.version),
            }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::capability::Capabilities;
    use crate::store::audit::{Actor, Change};
    use crate::store::testing::both_dialects;

    fn install<'a>(actor: &'a Actor, version: &str) -> Change<'a> {
        Change {
            actor,
            action: "plugin.install",
            target: "plugin:echo".into(),
            details: serde_json::json!({ "version": version }),
        }
    }

    fn grant(host: &str) -> Capabilities {
        serde_json::from_value(serde_json::json!({ "http": [host] })).unwrap()
    }

    both_dialects!(an_upgrade_keeps_the_grant_and_rollback_swaps_back, |store| {
        let actor = Actor::system();
        let pack = serde_json::json!({ "digest": "sha256:aa", "signer": "acme" });
        store
            .record_install("echo", "0.1.0", Some(&pack), None, &install(&actor, "0.1.0"))
            .await
            .unwrap();
        assert_eq!(store.kept_version("echo").await.unwrap(), None);
        assert_eq!(
            store.record_rollback("echo", "0.1.0", &actor).await.unwrap(),
            None,
            "nothing kept, nothing to roll back to"
        );
        store
            .set_grant("echo", &grant("https://old.example"), &actor)
            .await
            .unwrap();

        store
            .record_install("echo", "0.2.0", None, Some("0.1.0"), &install(&actor, "0.2.0"))
            .await
            .unwrap();
        let kept = store.kept_version("echo").await.unwrap().unwrap();
        assert_eq!(kept.version, "0.1.0");
        assert_eq!(kept.pack, Some(pack.clone()));
        assert_eq!(kept.grant, Some(grant("https://old.example")));
        store
            .set_grant("echo", &grant("https://new.example"), &actor)
            .await
            .unwrap();

        let v0 = store.policy_version().await.unwrap();
        let back = store
            .record_rollback("echo", "0.2.0", &actor)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.version, "0.1.0");
        assert_eq!(
            store.grant("echo").await.unwrap(),
            Some(grant("https://old.example"))
        );
        assert!(
            store.policy_version().await.unwrap() > v0,
            "servers reload the grant"
        );
        let kept = store.kept_version("echo").await.unwrap().unwrap();
        assert_eq!(kept.version, "0.2.0");
        assert_eq!(kept.grant, Some(grant("https://new.example")));

        // A second rollback is the round trip back.
        let again = store
            .record_rollback("echo", "0.1.0", &actor)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.version, "0.2.0");
        assert_eq!(
            store.grant("echo").await.unwrap(),
            Some(grant("https://new.example"))
        );
        let kept = store.kept_version("echo").await.unwrap().unwrap();
        assert_eq!((kept.version.as_str(), kept.pack), ("0.1.0", Some(pack)));

        let audit = store
            .audit_entries(0, 100, Some("plugin.rollback"))
            .await
            .unwrap();
        assert_eq!(audit.len(), 2);
        assert_eq!(audit[0].details["version"], "0.1.0");
        assert_eq!(audit[0].details["pack"]["digest"], "sha256:aa");
        assert_eq!(audit[1].details["version"], "0.2.0");

        // Rolling back to a version that had no grant takes the grant away.
        store
            .record_install("other", "1.0.0", None, None, &install(&actor, "1.0.0"))
            .await
            .unwrap();
        store
            .record_install("other", "2.0.0", None, Some("1.0.0"), &install(&actor, "2.0.0"))
            .await
            .unwrap();
        store
            .set_grant("other", &grant("https://x.example"), &actor)
            .await
            .unwrap();
        store
            .record_rollback("other", "2.0.0", &actor)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(store.grant("other").await.unwrap(), None);

        // A removal forgets both versions.
        store.record_remove("echo", "0.2.0", &actor).await.unwrap();
        let removed = store.audit_entries(0, 100, Some("plugin.remove")).await.unwrap();
        assert_eq!(removed[0].details["version"], "0.2.0");
        assert_eq!(removed[0].details["kept"], "0.1.0");
        assert_eq!(store.kept_version("echo").await.unwrap(), None);
    });
}
