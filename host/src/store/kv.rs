//! Each plugin's private key-value store, with expiry and a quota in bytes.

use super::{Dialect, Result, Store, StoreError, now_ms};
use thiserror::Error;

/// Why a kv write was refused.
#[derive(Debug, Error)]
pub enum KvError {
    #[error(
        "kv quota exceeded: {used} bytes in use, this write needs {needed} more, the quota is {quota} bytes"
    )]
    Quota { used: u64, needed: u64, quota: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for KvError {
    fn from(e: sqlx::Error) -> Self {
        KvError::Store(e.into())
    }
}

impl Store {
    /// The live value of `plugin`/`key`.
    pub async fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT value FROM plugin_kv WHERE plugin = $1 AND key = $2
             AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(plugin)
        .bind(key)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Store `value` under `plugin`/`key`, expiring at `expires_at` (Unix ms), unless the
    /// plugin's live entries (keys plus values) would then exceed `quota` bytes. The check
    /// and the write are one transaction, serialised per plugin.
    pub async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        expires_at: Option<i64>,
        quota: u64,
    ) -> Result<(), KvError> {
        let now = now_ms();
        let size = (key.len() + value.len()) as i64;
        let mut tx = self.writer.begin().await?;
        match self.dialect {
            // Two writers for the same plugin wait for each other here.
            Dialect::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))::TEXT")
                    .bind(plugin)
                    .execute(&mut *tx)
                    .await?;
            }
            // SQLite has one writer; starting with a write takes the lock at once.
            Dialect::Sqlite => {}
        }
        sqlx::query(
            "DELETE FROM plugin_kv WHERE plugin = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
        )
        .bind(plugin)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let used: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM plugin_kv WHERE plugin = $1 AND key <> $2",
        )
        .bind(plugin)
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        let (used, needed) = (used.max(0) as u64, size as u64);
        if used + needed > quota {
            tx.rollback().await?;
            return Err(KvError::Quota { used, needed, quota });
        }
        sqlx::query(
            "INSERT INTO plugin_kv (plugin, key, value, size, expires_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, size = excluded.size,
                 expires_at = excluded.expires_at",
        )
        .bind(plugin)
        .bind(key)
        .bind(value.to_vec())
        .bind(size)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove `plugin`/`key`; returns whether a live entry was removed.
    pub async fn kv_delete(&self, plugin: &str, key: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)",
        )
        .bind(plugin)
        .bind(key)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Bytes used by the live entries of `plugin`.
    pub async fn kv_usage(&self, plugin: &str) -> Result<u64> {
        let used: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM plugin_kv WHERE plugin = $1
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(plugin)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(used.max(0) as u64)
    }
}

/// Delete every entry of `plugin` (a purge); returns how many there were.
pub(super) async fn delete_all(tx: &mut sqlx::Transaction<'_, sqlx::Any>, plugin: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM plugin_kv WHERE plugin = $1")
        .bind(plugin)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::KvError;
    use crate::store::now_ms;
    use crate::store::testing::both_dialects;

    both_dialects!(kv_is_private_per_plugin, |store| {
        store.kv_set("a", "k", b"one", None, 1000).await.unwrap();
        store.kv_set("b", "k", b"two", None, 1000).await.unwrap();
        assert_eq!(store.kv_get("a", "k").await.unwrap(), Some(b"one".to_vec()));
        assert_eq!(store.kv_get("b", "k").await.unwrap(), Some(b"two".to_vec()));
        assert!(store.kv_delete("a", "k").await.unwrap());
        assert_eq!(store.kv_get("a", "k").await.unwrap(), None);
        assert_eq!(store.kv_get("b", "k").await.unwrap(), Some(b"two".to_vec()));
    });

    both_dialects!(expired_entries_are_gone, |store| {
        store
            .kv_set("a", "old", b"x", Some(now_ms() - 1), 1000)
            .await
            .unwrap();
        store
            .kv_set("a", "new", b"y", Some(now_ms() + 60_000), 1000)
            .await
            .unwrap();
        assert_eq!(store.kv_get("a", "old").await.unwrap(), None);
        assert!(!store.kv_delete("a", "old").await.unwrap());
        assert_eq!(store.kv_get("a", "new").await.unwrap(), Some(b"y".to_vec()));
    });

    both_dialects!(
        the_quota_is_enforced_and_a_refused_write_changes_nothing,
        |store| {
            // Each entry is key (2 bytes) + value (8 bytes) = 10 bytes; the quota is 25.
            store.kv_set("a", "k1", b"12345678", None, 25).await.unwrap();
            store.kv_set("a", "k2", b"12345678", None, 25).await.unwrap();
            let err = store.kv_set("a", "k3", b"12345678", None, 25).await.unwrap_err();
            match err {
                KvError::Quota {
                    used: 20,
                    needed: 10,
                    quota: 25,
                } => {}
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(store.kv_get("a", "k3").await.unwrap(), None);
            // Overwriting an entry counts its new size only.
            store.kv_set("a", "k2", b"1234567890123", None, 25).await.unwrap();
            assert_eq!(store.kv_usage("a").await.unwrap(), 25);
            // Expired entries do not count against the quota.
            store
                .kv_set("a", "k2", b"x", Some(now_ms() - 1), 25)
                .await
                .unwrap();
            store.kv_set("a", "k3", b"12345678", None, 25).await.unwrap();
            // Another plugin has its own quota.
            store.kv_set("b", "k1", b"12345678", None, 25).await.unwrap();
        }
    );
}
