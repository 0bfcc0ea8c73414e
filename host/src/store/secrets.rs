//! Sealed secrets. The store keeps only what the vault sealed; it never sees plaintext.

use super::audit::{self, Actor, Change};
use super::{Result, Store, now_ms};
use crate::vault::Sealed;

/// A sealed value as stored: the vault's nonce and ciphertext.
#[derive(sqlx::FromRow)]
struct SealedRow {
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl From<SealedRow> for Sealed {
    fn from(r: SealedRow) -> Sealed {
        Sealed {
            nonce: r.nonce,
            ciphertext: r.ciphertext,
        }
    }
}

impl Store {
    /// Store (or replace) the sealed value of `plugin`/`name` (audited as `secret.set`, by
    /// name only).
    pub async fn put_secret(&self, plugin: &str, name: &str, sealed: &Sealed, actor: &Actor) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO secrets (plugin, name, nonce, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (plugin, name) DO UPDATE SET nonce = excluded.nonce,
                 ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(plugin)
        .bind(name)
        .bind(sealed.nonce.clone())
        .bind(sealed.ciphertext.clone())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            &self.audit_key,
            &secret_change(actor, "secret.set", plugin, name),
        )
        .await?;
        super::plugins::bump_policy(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store `sealed` as `plugin`/`name` unless a value is there already (audited as
    /// `secret.set` when it is stored); returns the value in force. Servers starting together
    /// agree on one generated key this way.
    pub async fn init_secret(
        &self,
        plugin: &str,
        name: &str,
        sealed: &Sealed,
        actor: &Actor,
    ) -> Result<Sealed> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query(
            "INSERT INTO secrets (plugin, name, nonce, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (plugin, name) DO NOTHING",
        )
        .bind(plugin)
        .bind(name)
        .bind(sealed.nonce.clone())
        .bind(sealed.ciphertext.clone())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() > 0 {
            audit::append(
                &mut tx,
                &self.audit_key,
                &secret_change(actor, "secret.set", plugin, name),
            )
            .await?;
            super::plugins::bump_policy(&mut tx).await?;
        }
        let sealed: SealedRow =
            sqlx::query_as("SELECT nonce, ciphertext FROM secrets WHERE plugin = $1 AND name = $2")
                .bind(plugin)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(sealed.into())
    }

    /// The sealed value of `plugin`/`name`, if set.
    pub async fn secret(&self, plugin: &str, name: &str) -> Result<Option<Sealed>> {
        let row: Option<SealedRow> =
            sqlx::query_as("SELECT nonce, ciphertext FROM secrets WHERE plugin = $1 AND name = $2")
                .bind(plugin)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Sealed::from))
    }

    /// The sealed values of every secret set for `plugin`, by name: what a running server
    /// keeps in the plugin's policy, so a call does not read the store for its secrets.
    /// Every change of a secret bumps the policy version, which servers look at every
    /// `runtime.policy_refresh`.
    pub async fn sealed_secrets(&self, plugin: &str) -> Result<std::collections::BTreeMap<String, Sealed>> {
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT name, nonce, ciphertext FROM secrets WHERE plugin = $1")
                .bind(plugin)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(name, nonce, ciphertext)| (name, Sealed { nonce, ciphertext }))
            .collect())
    }

    /// Names (never values) of the secrets set for `plugin`, with when each was last set.
    pub async fn secret_names(&self, plugin: &str) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT name, updated_at FROM secrets WHERE plugin = $1 ORDER BY name")
                .bind(plugin)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Delete a secret (audited as `secret.delete` if it existed); returns whether it existed.
    pub async fn delete_secret(&self, plugin: &str, name: &str, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query("DELETE FROM secrets WHERE plugin = $1 AND name = $2")
            .bind(plugin)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let existed = r.rows_affected() > 0;
        if existed {
            audit::append(
                &mut tx,
                &self.audit_key,
                &secret_change(actor, "secret.delete", plugin, name),
            )
            .await?;
            super::plugins::bump_policy(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(existed)
    }

    /// The vault's key check, if one was stored.
    pub async fn vault_key_check(&self) -> Result<Option<Sealed>> {
        let row: Option<SealedRow> =
            sqlx::query_as("SELECT nonce, ciphertext FROM vault_key_check WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(Sealed::from))
    }

    /// Store the vault's key check unless one is there already; returns the one in force.
    pub async fn init_vault_key_check(&self, check: &Sealed) -> Result<Sealed> {
        sqlx::query(
            "INSERT INTO vault_key_check (id, nonce, ciphertext) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(check.nonce.clone())
        .bind(check.ciphertext.clone())
        .execute(&self.writer)
        .await?;
        Ok(self
            .vault_key_check()
            .await?
            .expect("the key check was just stored"))
    }
}

fn secret_change<'a>(actor: &'a Actor, action: &'a str, plugin: &str, name: &str) -> Change<'a> {
    Change {
        actor,
        action,
        target: format!("plugin:{plugin}"),
        details: serde_json::json!({ "secret": name }),
    }
}

/// Delete every secret of `plugin` (a purge); returns how many there were.
pub(super) async fn delete_all(tx: &mut sqlx::Transaction<'_, sqlx::Any>, plugin: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM secrets WHERE plugin = $1")
        .bind(plugin)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use crate::store::audit::Actor;
    use crate::store::testing::both_dialects;
    use crate::vault::Sealed;

    both_dialects!(secrets_are_stored_per_plugin, |store| {
        let s = Sealed {
            nonce: vec![1; 24],
            ciphertext: vec![2, 3, 4],
        };
        // Every change bumps the policy version: running servers keep the sealed values in
        // the plugins' policies and reload them when it moves.
        let v0 = store.policy_version().await.unwrap();
        store
            .put_secret("ipinfo", "token", &s, &Actor::system())
            .await
            .unwrap();
        let v1 = store.policy_version().await.unwrap();
        assert!(v1 > v0);
        assert_eq!(store.secret("ipinfo", "token").await.unwrap(), Some(s.clone()));
        assert_eq!(store.secret("other", "token").await.unwrap(), None);
        assert_eq!(
            store.sealed_secrets("ipinfo").await.unwrap(),
            std::collections::BTreeMap::from([("token".to_owned(), s.clone())])
        );
        assert!(store.sealed_secrets("other").await.unwrap().is_empty());
        let s2 = Sealed {
            nonce: vec![5; 24],
            ciphertext: vec![6],
        };
        store
            .put_secret("ipinfo", "token", &s2, &Actor::system())
            .await
            .unwrap();
        assert_eq!(store.secret("ipinfo", "token").await.unwrap(), Some(s2));
        let v2 = store.policy_version().await.unwrap();
        assert!(v2 > v1);
        let names: Vec<String> = store
            .secret_names("ipinfo")
            .await
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, vec!["token"]);
        assert!(
            store
                .delete_secret("ipinfo", "token", &Actor::system())
                .await
                .unwrap()
        );
        let v3 = store.policy_version().await.unwrap();
        assert!(v3 > v2);
        assert!(
            !store
                .delete_secret("ipinfo", "token", &Actor::system())
                .await
                .unwrap()
        );
        assert_eq!(
            store.policy_version().await.unwrap(),
            v3,
            "nothing deleted, nothing to reload"
        );
    });

    both_dialects!(the_first_key_check_wins, |store| {
        let a = Sealed {
            nonce: vec![1; 24],
            ciphertext: vec![1],
        };
        let b = Sealed {
            nonce: vec![2; 24],
            ciphertext: vec![2],
        };
        assert_eq!(store.init_vault_key_check(&a).await.unwrap(), a);
        assert_eq!(store.init_vault_key_check(&b).await.unwrap(), a);
    });
}
