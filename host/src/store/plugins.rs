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
        let json = serde_json::to_string(grant).expect("a grant serialises to JSON");
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO plugin_grants (plugin, grant_json, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (plugin) DO UPDATE SET grant_json = excluded.grant_json, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(&json)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, POLICY_COUNTER).await?;
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

    /// A number that changes whenever any grant or setting changes.
    pub async fn policy_version(&self) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT value FROM change_counters WHERE name = $1")
            .bind(POLICY_COUNTER)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }
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
}
