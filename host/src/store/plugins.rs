//! Grants and settings of plugins, and the change counter that tells running servers to
//! reload them.

use super::audit::{self, Actor, Change};
use super::{Result, Store, StoreError, now_ms};
use crate::capability::Capabilities;
use std::collections::BTreeMap;

const POLICY_COUNTER: &str = "plugin_policy";

impl Store {
    /// The operator's grant for `plugin`, or `None` if nothing was ever granted.
    pub async fn grant(&self, plugin: &str) -> Result<Option<Capabilities>> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT grant_json FROM plugin_grants WHERE plugin = $1")
                .bind(plugin)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|json| {
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("grant of plugin '{plugin}': {e}")))
        })
        .transpose()
    }

    /// Replace the grant of `plugin` (audited as `plugin.grant` with the whole new grant).
    pub async fn set_grant(&self, plugin: &str, grant: &Capabilities, actor: &Actor) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        replace_grant(&mut tx, plugin, Some(grant)).await?;
        let change = Change {
            actor,
            action: "plugin.grant",
            target: format!("plugin:{plugin}"),
            details: serde_json::json!({ "grant": grant }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The operator's settings for `plugin` (without manifest defaults).
    pub async fn plugin_config(&self, plugin: &str) -> Result<BTreeMap<String, String>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM plugin_config WHERE plugin = $1 ORDER BY key")
                .bind(plugin)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// Set (`Some`) or clear (`None`) one setting of `plugin` (audited as `plugin.configure`).
    pub async fn set_plugin_config(
        &self,
        plugin: &str,
        key: &str,
        value: Option<&str>,
        actor: &Actor,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO plugin_config (plugin, key, value, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(plugin)
                .bind(key)
                .bind(v)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM plugin_config WHERE plugin = $1 AND key = $2")
                    .bind(plugin)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        bump(&mut tx, POLICY_COUNTER).await?;
        let change = Change {
            actor,
            action: "plugin.configure",
            target: format!("plugin:{plugin}"),
            details: serde_json::json!({ "key": key, "value": value }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete everything Osprey keeps for `plugin` besides its files: kv data, secrets, grant
    /// and settings, in one transaction, audited as `plugin.purge` with what was deleted by
    /// count (never a value).
    pub async fn purge_plugin(&self, plugin: &str, actor: &Actor) -> Result<Purged> {
        let mut tx = self.writer.begin().await?;
        let kv_entries = super::kv::delete_all(&mut tx, plugin).await?;
        let secrets = super::secrets::delete_all(&mut tx, plugin).await?;
        let grant = replace_grant(&mut tx, plugin, None).await?;
        let settings = sqlx::query("DELETE FROM plugin_config WHERE plugin = $1")
            .bind(plugin)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let purged = Purged {
            kv_entries,
            secrets,
            grant,
            settings,
        };
        let change = Change {
            actor,
            action: "plugin.purge",
            target: format!("plugin:{plugin}"),
            details: serde_json::to_value(purged).expect("counts serialise to JSON"),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(purged)
    }

    /// A number that changes whenever any grant or setting changes.
    pub async fn policy_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT value FROM change_counters WHERE name = $1")
            .bind(POLICY_COUNTER)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }
}

/// What [`Store::purge_plugin`] deleted, by count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    pub kv_entries: u64,
    pub secrets: u64,
    /// Whether there was a grant.
    pub grant: bool,
    pub settings: u64,
}

/// Set the grant of `plugin` to `grant`, or delete it (`None`), and tell running servers;
/// returns whether a grant was there before.
pub(super) async fn replace_grant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    plugin: &str,
    grant: Option<&Capabilities>,
) -> Result<bool> {
    let existed = sqlx::query("DELETE FROM plugin_grants WHERE plugin = $1")
        .bind(plugin)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        > 0;
    if let Some(grant) = grant {
        let json = serde_json::to_string(grant).expect("a grant serialises to JSON");
        sqlx::query("INSERT INTO plugin_grants (plugin, grant_json, updated_at) VALUES ($1, $2, $3)")
            .bind(plugin)
            .bind(&json)
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
    }
    bump(tx, POLICY_COUNTER).await?;
    Ok(existed)
}

/// Tell running servers that a plugin's policy changed (they reload grants, settings and
/// mocks).
pub(super) async fn bump_policy(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    bump(tx, POLICY_COUNTER).await
}

async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO change_counters (name, value) VALUES ($1, 1)
         ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1",
    )
    .bind(name)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::capability::Capabilities;
    use crate::store::audit::Actor;
    use crate::store::testing::both_dialects;

    both_dialects!(grants_round_trip_and_bump_the_version, |store| {
        assert_eq!(store.grant("ipinfo").await.unwrap(), None);
        let v0 = store.policy_version().await.unwrap();
        let grant: Capabilities = serde_json::from_value(serde_json::json!({
            "http": ["https://ipinfo.io"], "secrets": ["token"], "limits": {"timeout": "5s"}
        }))
        .unwrap();
        store.set_grant("ipinfo", &grant, &Actor::system()).await.unwrap();
        assert_eq!(store.grant("ipinfo").await.unwrap(), Some(grant.clone()));
        let v1 = store.policy_version().await.unwrap();
        assert!(v1 > v0);
        store
            .set_grant("ipinfo", &Capabilities::default(), &Actor::system())
            .await
            .unwrap();
        assert_eq!(
            store.grant("ipinfo").await.unwrap(),
            Some(Capabilities::default())
        );
        assert!(store.policy_version().await.unwrap() > v1);
    });

    both_dialects!(config_set_and_clear, |store| {
        store
            .set_plugin_config("unifi", "site", Some("default"), &Actor::system())
            .await
            .unwrap();
        store
            .set_plugin_config("unifi", "base_url", Some("https://u:8443"), &Actor::system())
            .await
            .unwrap();
        store
            .set_plugin_config("unifi", "site", Some("home"), &Actor::system())
            .await
            .unwrap();
        store
            .set_plugin_config("other", "site", Some("x"), &Actor::system())
            .await
            .unwrap();
        let c = store.plugin_config("unifi").await.unwrap();
        assert_eq!(c.get("site").map(String::as_str), Some("home"));
        assert_eq!(c.len(), 2);
        store
            .set_plugin_config("unifi", "site", None, &Actor::system())
            .await
            .unwrap();
        assert_eq!(store.plugin_config("unifi").await.unwrap().len(), 1);
    });

    both_dialects!(
        a_purge_deletes_kv_secrets_grant_and_settings_of_one_plugin,
        |store| {
            let actor = Actor::system();
            let sealed = crate::vault::Sealed {
                nonce: vec![1; 24],
                ciphertext: vec![2, 3],
            };
            for plugin in ["echo", "other"] {
                store.kv_set(plugin, "k1", b"v", None, 1000).await.unwrap();
                store.put_secret(plugin, "token", &sealed, &actor).await.unwrap();
                store
                    .set_grant(plugin, &Capabilities::default(), &actor)
                    .await
                    .unwrap();
                store
                    .set_plugin_config(plugin, "site", Some("x"), &actor)
                    .await
                    .unwrap();
            }
            store.kv_set("echo", "k2", b"v", None, 1000).await.unwrap();
            let v0 = store.policy_version().await.unwrap();

            let purged = store.purge_plugin("echo", &actor).await.unwrap();
            assert_eq!(
                purged,
                crate::store::plugins::Purged {
                    kv_entries: 2,
                    secrets: 1,
                    grant: true,
                    settings: 1
                }
            );
            assert_eq!(store.kv_usage("echo").await.unwrap(), 0);
            assert!(store.secret_names("echo").await.unwrap().is_empty());
            assert_eq!(store.grant("echo").await.unwrap(), None);
            assert!(store.plugin_config("echo").await.unwrap().is_empty());
            assert!(store.policy_version().await.unwrap() > v0);
            // The other plugin keeps everything.
            assert_eq!(store.kv_get("other", "k1").await.unwrap(), Some(b"v".to_vec()));
            assert_eq!(store.secret_names("other").await.unwrap().len(), 1);
            assert!(store.grant("other").await.unwrap().is_some());
            assert_eq!(store.plugin_config("other").await.unwrap().len(), 1);

            let audit = store.audit_entries(0, 100, Some("plugin.purge")).await.unwrap();
            assert_eq!(audit.len(), 1);
            assert_eq!(audit[0].target, "plugin:echo");
            assert_eq!(
                audit[0].details,
                serde_json::json!({"kv_entries": 2, "secrets": 1, "grant": true, "settings": 1})
            );

            // Purging again finds nothing.
            let again = store.purge_plugin("echo", &actor).await.unwrap();
            assert_eq!((again.kv_entries, again.secrets, again.grant), (0, 0, false));
        }
    );
}
