//! This plugin's private key-value store: what must outlive one call (a session cookie, a
//! token and its expiry, a rate-limit window). Other plugins cannot see it. The total size
//! of keys and values is capped by the grant; a write over the cap fails with
//! `limit-exceeded` and changes nothing.

use crate::bindings::osprey::plugin::kv as wit;
use crate::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;

/// The bytes stored under `key`, if any and not expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>> {
    wit::get(key).map_err(Into::into)
}

/// Store `value` under `key`; with `ttl`, it expires after that long (whole seconds,
/// rounded up).
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<()> {
    wit::set(key, value, ttl.map(whole_seconds)).map_err(Into::into)
}

/// A TTL in whole seconds, rounded up (a part of a second is a second), at most `u32::MAX`.
fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Remove `key`; returns whether something was removed.
pub fn delete(key: &str) -> Result<bool> {
    wit::delete(key).map_err(Into::into)
}

/// [`get`], decoded from JSON.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::internal(format!("kv value under '{key}' is not the JSON expected: {e}"))),
    }
}

/// [`set`], encoded as JSON.
pub fn set_json<T: Serialize>(key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::internal(format!("kv encode: {e}")))?;
    set(key, &bytes, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds_and_saturate() {
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
