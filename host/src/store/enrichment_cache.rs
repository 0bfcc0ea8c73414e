//! The enrichment cache behind `invoke_cached`: a plugin action's output kept under the
//! action and its input for a TTL, so playbooks ask a threat-intel vendor about the same
//! thing at most once per TTL. Derived data, not audited.

use super::{Result, Store, StoreError, now_ms};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Expired cache rows removed by each [`Store::cache_put`].
const PURGE_PER_PUT: i64 = 100;

/// The cache key of `plugin.action(input)`: `plugin/action/` and the SHA-256 of the input's
/// canonical JSON (object keys sorted), so the same input written in another order hits.
pub fn cache_key(plugin: &str, action: &str, input: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(k.as_str()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    write(input, &mut text);
    format!(
        "{plugin}/{action}/{}",
        hex::encode(Sha256::digest(text.as_bytes()))
    )
}

impl Store {
    /// The cached output under `key` (see [`cache_key`]) if it has not expired at `now`.
    pub async fn cache_get(&self, key: &str, now: i64) -> Result<Option<Value>> {
        let output: Option<String> =
            sqlx::query_scalar("SELECT output FROM enrichment_cache WHERE key = $1 AND expires_at > $2")
                .bind(key)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        output
            .map(|o| {
                serde_json::from_str(&o)
                    .map_err(|e| StoreError::Corrupt(format!("enrichment cache {key}: {e}")))
            })
            .transpose()
    }

    /// Keep `output` of `plugin.action` under `key` for `ttl` (replacing what was there), and
    /// remove a few expired entries while at it, so the table stays about as large as what
    /// is live without a job of its own.
    pub async fn cache_put(
        &self,
        key: &str,
        plugin: &str,
        action: &str,
        output: &Value,
        ttl: Duration,
    ) -> Result<()> {
        let now = now_ms();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO enrichment_cache (key, plugin, action, output, stored_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (key) DO UPDATE SET plugin = excluded.plugin, action = excluded.action,
                 output = excluded.output, stored_at = excluded.stored_at, expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(plugin)
        .bind(action)
        .bind(output.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM enrichment_cache WHERE key IN
                 (SELECT key FROM enrichment_cache WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
        )
        .bind(now)
        .bind(PURGE_PER_PUT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove every cache entry expired at `now`; returns how many.
    pub async fn purge_expired_cache(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM enrichment_cache WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;
    use serde_json::json;

    #[test]
    fn indicators_cache_keys_ignore_key_order_and_tell_inputs_apart() {
        let a = cache_key(
            "autofocus",
            "ip-reputation",
            &json!({"ip": "192.0.2.1", "x": [1, {"b": 1, "a": 2}]}),
        );
        let b = cache_key(
            "autofocus",
            "ip-reputation",
            &json!({"x": [1, {"a": 2, "b": 1}], "ip": "192.0.2.1"}),
        );
        assert_eq!(a, b);
        assert!(a.starts_with("autofocus/ip-reputation/"));
        for other in [
            cache_key("autofocus", "ip-reputation", &json!({"ip": "192.0.2.2"})),
            cache_key(
                "autofocus",
                "domain-reputation",
                &json!({"ip": "192.0.2.1", "x": [1, {"b": 1, "a": 2}]}),
            ),
            cache_key(
                "ipinfo",
                "ip-reputation",
                &json!({"ip": "192.0.2.1", "x": [1, {"b": 1, "a": 2}]}),
            ),
        ] {
            assert_ne!(a, other);
        }
    }

    both_dialects!(indicators_cache_hits_until_it_expires_and_is_purged, |store| {
        let input = json!({"ip": "192.0.2.1"});
        let key = cache_key("autofocus", "ip-reputation", &input);
        let now = now_ms();
        assert!(store.cache_get(&key, now).await.unwrap().is_none());
        let hour = Duration::from_secs(3600);
        store
            .cache_put(
                &key,
                "autofocus",
                "ip-reputation",
                &json!({"verdict": "benign"}),
                hour,
            )
            .await
            .unwrap();
        assert_eq!(
            store.cache_get(&key, now_ms()).await.unwrap(),
            Some(json!({"verdict": "benign"}))
        );
        // Put again: replaced.
        store
            .cache_put(
                &key,
                "autofocus",
                "ip-reputation",
                &json!({"verdict": "malicious"}),
                hour,
            )
            .await
            .unwrap();
        assert_eq!(
            store.cache_get(&key, now_ms()).await.unwrap(),
            Some(json!({"verdict": "malicious"}))
        );
        let other = cache_key("autofocus", "ip-reputation", &json!({"ip": "192.0.2.2"}));
        assert!(store.cache_get(&other, now_ms()).await.unwrap().is_none());
        // Two hours on it is a miss, and the purge removes it.
        let later = now_ms() + 2 * 3_600_000;
        assert!(store.cache_get(&key, later).await.unwrap().is_none());
        assert_eq!(store.purge_expired_cache(now_ms()).await.unwrap(), 0);
        assert_eq!(store.purge_expired_cache(later).await.unwrap(), 1);
        assert_eq!(store.purge_expired_cache(later).await.unwrap(), 0);

        // Every put removes some expired entries on the side.
        for n in 0..3 {
            let k = cache_key("ipinfo", "lookup", &json!({ "n": n }));
            store
                .cache_put(&k, "ipinfo", "lookup", &json!(n), Duration::from_millis(1))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        store
            .cache_put(&other, "autofocus", "ip-reputation", &json!({}), hour)
            .await
            .unwrap();
        assert_eq!(store.purge_expired_cache(now_ms()).await.unwrap(), 0);
        assert_eq!(store.cache_get(&other, now_ms()).await.unwrap(), Some(json!({})));
    });
}
