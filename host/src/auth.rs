//! API tokens: making them and checking them. A token is `osp_` and 43 characters of
//! base64url (256 random bits); the store keeps only its SHA-256. A token is shown once,
//! when it is created.

use crate::store::tokens::TokenRecord;
use crate::store::{Store, StoreError, now_ms};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What a token may be used for.
pub const SCOPES: &[&str] = &["intake", "edl", "incidents", "rules"];

/// Sending alerts (`POST /api/v1/alerts`).
pub const SCOPE_INTAKE: &str = "intake";

/// Fetching External Dynamic Lists (`GET /edl/NAME.txt`).
pub const SCOPE_EDL: &str = "edl";

/// Reading and changing incidents and tasks (`/api/v1/incidents`, `/api/v1/tasks`).
pub const SCOPE_INCIDENTS: &str = "incidents";

/// Reading and changing pre-processing rules (`/api/v1/rules`).
pub const SCOPE_RULES: &str = "rules";

const PREFIX: &str = "osp_";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no API token: send `Authorization: Bearer <token>`")]
    Missing,
    /// Unknown, revoked or expired: the client is not told which.
    #[error("the API token is not valid")]
    Invalid,
    #[error("the API token's role and scopes do not allow this ({})", describe(.0))]
    Forbidden(crate::rbac::Permission),
}

/// A new token and the hash to store.
pub fn generate() -> (SecretString, String) {
    use base64::Engine as _;
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut bytes = [0u8; 32];
    chacha20poly1305::aead::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash(&token);
    (SecretString::from(token), hash)
}

/// The hash under which a token is stored.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// How long a token lookup is remembered: a revoked token stops working within this time.
pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// The most lookups remembered (unknown tokens included, so a flood of made-up tokens
/// cannot grow it without bound).
const TOKEN_CACHE_MAX: usize = 10_000;

/// Token lookups of the last second, so a sender posting thousands of requests a second
/// costs one database read a second, not one a request.
#[derive(Debug, Default)]
pub struct TokenCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (Option<TokenRecord>, std::time::Instant)>>,
}

impl TokenCache {
    async fn lookup(&self, store: &Store, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let now = std::time::Instant::now();
        if let Some((record, at)) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(hash)
            && now.duration_since(*at) < TOKEN_CACHE_TTL
        {
            return Ok(record.clone());
        }
        let record = store.token_by_hash(hash).await?;
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= TOKEN_CACHE_MAX {
            entries.retain(|_, (_, at)| now.duration_since(*at) < TOKEN_CACHE_TTL);
            if entries.len() >= TOKEN_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash.to_owned(), (record.clone(), now));
        Ok(record)
    }
}

/// A permission in words, for refusals.
fn describe(p: &crate::rbac::Permission) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Check the `Authorization` header's value for `permission`; returns the token's record.
pub async fn authenticate(
    store: &Store,
    cache: &TokenCache,
    authorization: Option<&str>,
    permission: crate::rbac::Permission,
) -> Result<Result<TokenRecord, AuthError>, StoreError> {
    let Some(token) = authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Ok(Err(AuthError::Missing));
    };
    if !token.starts_with(PREFIX) {
        return Ok(Err(AuthError::Invalid));
    }
    let token = SecretString::from(token.to_owned());
    let Some(record) = cache.lookup(store, &hash(token.expose_secret())).await? else {
        return Ok(Err(AuthError::Invalid));
    };
    let now = now_ms();
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|t| now >= t) {
        return Ok(Err(AuthError::Invalid));
    }
    if !record.allows(permission, now) {
        return Ok(Err(AuthError::Forbidden(permission)));
    }
    Ok(Ok(record))
}
