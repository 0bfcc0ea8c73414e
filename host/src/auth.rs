//! Who calls the API: API tokens, made and checked here, and signed-in users of the web
//! console. A token is `osp_` and 43 characters of base64url (256 random bits); the store
//! keeps only its SHA-256. A token is shown once, when it is created.
//!
//! A web session calls the API with its cookie and, on every request (GET included), the
//! session's CSRF token in the `X-CSRF-Token` header ([`check_session`]): a browser sends
//! the cookie with any request to this server, whoever's page made it, so the cookie alone
//! never authenticates an API call. A bearer token, when present, wins over the cookie.

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

/// The header that carries a web session's CSRF token on its API calls.
pub const CSRF_HEADER: &str = "x-csrf-token";

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

/// Why an API call without a bearer token was refused: no credentials at all, or a web
/// session that does not qualify.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SessionError {
    #[error(
        "no credentials: send an API token as `Authorization: Bearer <token>`, or, from a signed-in \
         web session, its cookie with the session's CSRF token in the `X-CSRF-Token` header"
    )]
    NoCredentials,
    /// Unknown, expired or signed out, or its user disabled: the client is not told which.
    #[error("the web session has expired or was signed out; sign in again")]
    Ended,
    #[error(
        "an API call with the session cookie must carry the session's CSRF token in the \
         `X-CSRF-Token` header; nothing was done"
    )]
    CsrfMissing,
    #[error(
        "the `X-CSRF-Token` header is not this session's CSRF token (reload the page to get the \
         current one); nothing was done"
    )]
    CsrfWrong,
    #[error("the roles of user '{user}' do not allow this ({})", describe(.permission))]
    Forbidden {
        user: String,
        permission: crate::rbac::Permission,
    },
}

/// Check an API call of the signed-in `user` (with `roles`, teams included, and the
/// session's `csrf` token): `sent` is the `X-CSRF-Token` header, which must be the session's
/// token (compared in constant time), and the user's roles must allow `permission`.
pub fn check_session(
    user: &str,
    roles: &[String],
    csrf: &str,
    sent: Option<&str>,
    permission: crate::rbac::Permission,
) -> Result<(), SessionError> {
    match sent.map(str::trim) {
        None | Some("") => return Err(SessionError::CsrfMissing),
        Some(sent) if !crate::web_auth::csrf_matches(csrf, sent) => return Err(SessionError::CsrfWrong),
        Some(_) => {}
    }
    if !crate::rbac::allowed(&crate::rbac::roles_of(roles), &[], permission) {
        return Err(SessionError::Forbidden {
            user: user.to_owned(),
            permission,
        });
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::Permission;

    #[test]
    fn a_session_needs_its_csrf_token_and_a_role_that_allows() {
        let roles = vec!["soc".to_owned(), "analyst".to_owned()];
        let check = |sent, p| check_session("alice", &roles, "the-token", sent, p);
        assert_eq!(check(Some("the-token"), Permission::IncidentsWrite), Ok(()));
        assert_eq!(
            check(None, Permission::IncidentsRead),
            Err(SessionError::CsrfMissing)
        );
        assert_eq!(
            check(Some(" "), Permission::IncidentsRead),
            Err(SessionError::CsrfMissing)
        );
        assert_eq!(
            check(Some("the-tokeN"), Permission::IncidentsRead),
            Err(SessionError::CsrfWrong)
        );
        // The CSRF token is checked first, so a forged request learns nothing about roles.
        assert_eq!(
            check(Some("x"), Permission::UsersAdmin),
            Err(SessionError::CsrfWrong)
        );
        let e = check(Some("the-token"), Permission::PluginsWrite).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the roles of user 'alice' do not allow this (plugins-write)"
        );
        // Teams are not roles.
        let e = check_session("bob", &["soc".into()], "t", Some("t"), Permission::IncidentsRead);
        assert!(matches!(e, Err(SessionError::Forbidden { .. })));
    }
}
