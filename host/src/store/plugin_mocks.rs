//! Plugins in mock mode: the cases file (as given) and whether to generate, per plugin,
//! audited on and off, and counted as a policy change so running servers pick it up.
//!
//! The store keeps the cases as text: what they mean, and whether they fit the plugin, is
//! the runtime's to check (`plugin/mock.rs`) before it calls [`Store::set_plugin_mock`].

use super::audit::{self, Actor, Change};
use super::{Result, Store, now_ms};

/// The mock in force for one plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginMock {
    pub plugin: String,
    /// The cases file's text, if cases were given.
    #[serde(skip)]
    pub cases_toml: Option<String>,
    /// SHA-256 of the cases file, hex.
    pub cases_digest: Option<String>,
    /// Whether what no case matches is answered with generated data.
    pub generate: bool,
    pub set_by: String,
    pub set_at: i64,
}

#[derive(sqlx::FromRow)]
struct MockRow {
    plugin: String,
    cases_toml: Option<String>,
    cases_digest: Option<String>,
    generate: i32,
    set_by: String,
    set_at: i64,
}

impl From<MockRow> for PluginMock {
    fn from(r: MockRow) -> PluginMock {
        PluginMock {
            plugin: r.plugin,
            cases_toml: r.cases_toml,
            cases_digest: r.cases_digest,
            generate: r.generate != 0,
            set_by: r.set_by,
            set_at: r.set_at,
        }
    }
}

const COLUMNS: &str = "plugin, cases_toml, cases_digest, generate, set_by, set_at";

impl Store {
    /// The mock in force for `plugin`, if it is mocked.
    pub async fn plugin_mock(&self, plugin: &str) -> Result<Option<PluginMock>> {
        let sql = format!("SELECT {COLUMNS} FROM plugin_mocks WHERE plugin = $1");
        let row: Option<MockRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(plugin)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(PluginMock::from))
    }

    /// Every plugin in mock mode, by name.
    pub async fn plugin_mocks(&self) -> Result<Vec<PluginMock>> {
        let sql = format!("SELECT {COLUMNS} FROM plugin_mocks ORDER BY plugin");
        let rows: Vec<MockRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(PluginMock::from).collect())
    }

    /// Put `plugin` in mock mode (or replace its mock), audited as `plugin.mock` with the
    /// cases' digest, never their text. The caller has checked the cases against the plugin.
    pub async fn set_plugin_mock(
        &self,
        plugin: &str,
        cases_toml: Option<&str>,
        generate: bool,
        actor: &Actor,
    ) -> Result<PluginMock> {
        use sha2::Digest as _;
        let digest = cases_toml.map(|t| hex::encode(sha2::Sha256::digest(t.as_bytes())));
        let at = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM plugin_mocks WHERE plugin = $1")
            .bind(plugin)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO plugin_mocks (plugin, cases_toml, cases_digest, generate, set_by, set_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(plugin)
        .bind(cases_toml)
        .bind(digest.as_deref())
        .bind(i32::from(generate))
        .bind(actor.as_str())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        super::plugins::bump_policy(&mut tx).await?;
        let change = Change {
            actor,
            action: "plugin.mock",
            target: format!("plugin:{plugin}"),
            details: serde_json::json!({ "cases_sha256": digest, "generate": generate }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(PluginMock {
            plugin: plugin.to_owned(),
            cases_toml: cases_toml.map(str::to_owned),
            cases_digest: digest,
            generate,
            set_by: actor.as_str().to_owned(),
            set_at: at,
        })
    }

    /// Take `plugin` out of mock mode, audited as `plugin.unmock` with the digest of the
    /// cases that were in force. Returns the mock taken off, `None` if it was not mocked
    /// (nothing is audited then).
    pub async fn clear_plugin_mock(&self, plugin: &str, actor: &Actor) -> Result<Option<PluginMock>> {
        let mut tx = self.writer.begin().await?;
        let sql = format!("DELETE FROM plugin_mocks WHERE plugin = $1 RETURNING {COLUMNS}");
        let row: Option<MockRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(plugin)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let was = PluginMock::from(row);
        super::plugins::bump_policy(&mut tx).await?;
        let change = Change {
            actor,
            action: "plugin.unmock",
            target: format!("plugin:{plugin}"),
            details: serde_json::json!({ "cases_sha256": was.cases_digest, "generate": was.generate }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(Some(was))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::audit::Actor;
    use crate::store::testing::both_dialects;

    both_dialects!(
        a_mock_is_set_replaced_cleared_audited_and_bumps_the_version,
        |store| {
            assert_eq!(store.plugin_mock("ipinfo").await.unwrap(), None);
            let v0 = store.policy_version().await.unwrap();
            let cases = "[[mock]]\nplugin = \"ipinfo\"\naction = \"lookup\"\n";
            let set = store
                .set_plugin_mock("ipinfo", Some(cases), false, &Actor::user("olivia"))
                .await
                .unwrap();
            assert_eq!(set.cases_digest.as_ref().map(String::len), Some(64));
            let got = store.plugin_mock("ipinfo").await.unwrap().unwrap();
            assert_eq!(got, set);
            assert_eq!(got.cases_toml.as_deref(), Some(cases));
            let v1 = store.policy_version().await.unwrap();
            assert!(v1 > v0);

            // Replaced: generate only.
            store
                .set_plugin_mock("ipinfo", None, true, &Actor::user("olivia"))
                .await
                .unwrap();
            let got = store.plugin_mock("ipinfo").await.unwrap().unwrap();
            assert!(got.generate && got.cases_digest.is_none());
            assert_eq!(store.plugin_mocks().await.unwrap().len(), 1);

            let was = store
                .clear_plugin_mock("ipinfo", &Actor::cli())
                .await
                .unwrap()
                .unwrap();
            assert!(was.generate);
            assert_eq!(store.plugin_mock("ipinfo").await.unwrap(), None);
            assert!(store.policy_version().await.unwrap() > v1);
            assert_eq!(
                store.clear_plugin_mock("ipinfo", &Actor::cli()).await.unwrap(),
                None
            );

            let on = store.audit_entries(0, 100, Some("plugin.mock")).await.unwrap();
            assert_eq!(on.len(), 2);
            assert_eq!(on[0].target, "plugin:ipinfo");
            assert_eq!(on[0].actor, "user:olivia");
            assert_eq!(on[0].details["cases_sha256"], set.cases_digest.unwrap().as_str());
            assert!(on[0].details.get("cases").is_none(), "the text is not audited");
            let off = store.audit_entries(0, 100, Some("plugin.unmock")).await.unwrap();
            assert_eq!(off.len(), 1, "a second --off changed nothing and audited nothing");
        }
    );
}
