//! Publisher keys the operator trusts to sign plugin packs, each under a name. The store
//! keeps them as text (minisign's key id and public key line); `cli/` parses and checks them
//! with `pack::` before they come here.

use super::audit::{self, Actor, Change};
use super::{Result, Store, now_ms};
use serde::Serialize;

/// A trusted publisher key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TrustedKeyRecord {
    pub name: String,
    /// minisign's key id, 16 upper-case hex digits.
    pub key_id: String,
    /// The base64 line of the minisign public key (`RW...`).
    pub public_key: String,
    pub added_at: i64,
}

/// What adding a trusted key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustAdded {
    Added,
    /// The name is taken (by this or another key).
    NameTaken,
    /// This key id is trusted already, under the name given.
    KeyTrustedAs(String),
}

impl Store {
    /// Trust a publisher key under `name` (audited as `trust.add`).
    pub async fn add_trusted_key(
        &self,
        name: &str,
        key_id: &str,
        public_key: &str,
        actor: &Actor,
    ) -> Result<TrustAdded> {
        let mut tx = self.writer.begin().await?;
        let existing: Option<(String, String)> =
            sqlx::query_as("SELECT name, key_id FROM trusted_keys WHERE name = $1 OR key_id = $2")
                .bind(name)
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((existing_name, existing_id)) = existing {
            return Ok(if existing_id == key_id {
                TrustAdded::KeyTrustedAs(existing_name)
            } else {
                TrustAdded::NameTaken
            });
        }
        sqlx::query("INSERT INTO trusted_keys (name, key_id, public_key, added_at) VALUES ($1, $2, $3, $4)")
            .bind(name)
            .bind(key_id)
            .bind(public_key)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let change = Change {
            actor,
            action: "trust.add",
            target: format!("trusted-key:{name}"),
            details: serde_json::json!({ "key_id": key_id, "public_key": public_key }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(TrustAdded::Added)
    }

    /// Stop trusting the key named `name` (audited as `trust.remove`); false if there is none.
    pub async fn remove_trusted_key(&self, name: &str, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let key_id: Option<String> =
            sqlx::query_scalar("DELETE FROM trusted_keys WHERE name = $1 RETURNING key_id")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(key_id) = &key_id {
            let change = Change {
                actor,
                action: "trust.remove",
                target: format!("trusted-key:{name}"),
                details: serde_json::json!({ "key_id": key_id }),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(key_id.is_some())
    }

    /// Every trusted key, by name.
    pub async fn trusted_keys(&self) -> Result<Vec<TrustedKeyRecord>> {
        Ok(
            sqlx::query_as("SELECT name, key_id, public_key, added_at FROM trusted_keys ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    both_dialects!(trusted_keys_are_added_listed_removed_and_audited, |store| {
        let who = Actor::system();
        let add = |name: &'static str, id: &'static str| store.add_trusted_key(name, id, "RWkey", &who);
        assert_eq!(add("acme", "00000000000000AA").await.unwrap(), TrustAdded::Added);
        assert_eq!(
            add("acme", "00000000000000BB").await.unwrap(),
            TrustAdded::NameTaken
        );
        assert_eq!(
            add("other", "00000000000000AA").await.unwrap(),
            TrustAdded::KeyTrustedAs("acme".into())
        );
        assert_eq!(add("beta", "00000000000000BB").await.unwrap(), TrustAdded::Added);
        let names: Vec<String> = store
            .trusted_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["acme", "beta"]);
        assert!(store.remove_trusted_key("acme", &who).await.unwrap());
        assert!(!store.remove_trusted_key("acme", &who).await.unwrap());
        assert_eq!(store.trusted_keys().await.unwrap().len(), 1);
        let entries = store.audit_latest(100, Some("trust.")).await.unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["trust.add", "trust.add", "trust.remove"]);
        assert_eq!(entries[2].details["key_id"], "00000000000000AA");
    });
}
