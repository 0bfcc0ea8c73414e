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
    let ttl = ttl.map(|d| {
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    });
    wit::set(key, value, ttl).map_err(Into::into)
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
