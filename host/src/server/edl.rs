//! External Dynamic Lists: `GET /edl/NAME.txt` serves a list's live entries as plain text,
//! one per line in byte order, as Palo Alto firewalls (and others) poll them. The ETag is a
//! hash of the body, so `If-None-Match` gets 304 exactly when nothing a firewall sees has
//! changed. Who may fetch is `lists.edl_auth`: holders of a token with scope `edl` (as
//! Bearer, or as the password of basic auth with the token's name as user name, which is
//! what PAN-OS can send), or anyone.
//!
//! Also the expiry job: every `lists.expiry_interval` it removes expired entries (audited as
//! `list.expire`). Expired entries are never served, whether or not it has run yet.

use crate::app::App;
use crate::auth::{self, AuthError};
use crate::config::EdlAuth;
use crate::store::audit::Actor;
use crate::store::now_ms;
use crate::store::tokens::TokenRecord;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;

/// The realm named in the basic-auth challenge.
const REALM: &str = "osprey-edl";

/// The EDL route.
pub fn router(app: Arc<App>) -> Router {
    Router::new().route("/edl/{file}", get(get_edl)).with_state(app)
}

async fn get_edl(State(app): State<Arc<App>>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    if app.config.lists.edl_auth == EdlAuth::Token {
        match authorize(&app, &headers).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(file, error = %e, "EDL request refused");
                return refuse(&e);
            }
            Err(e) => return unavailable(&e),
        }
    }
    let Some(name) = file.strip_suffix(".txt") else {
        return text(
            StatusCode::NOT_FOUND,
            "no such list: lists are served as /edl/NAME.txt\n".into(),
        );
    };
    let edl = match app.store.edl(name, now_ms()).await {
        Ok(Some(edl)) => edl,
        Ok(None) => return text(StatusCode::NOT_FOUND, format!("no list named '{name}'\n")),
        Err(e) => return unavailable(&e),
    };
    let etag = HeaderValue::from_str(&edl.etag).expect("an ETag is quoted hex");
    let mut response = if none_match(&headers, &edl.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        text(StatusCode::OK, edl.body)
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag);
    // Caches may keep it, but must ask again (with If-None-Match) before using it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The token in the request, checked for scope `edl`: `Authorization: Bearer TOKEN`, or
/// `Authorization: Basic` with the token's name and the token.
async fn authorize(
    app: &App,
    headers: &HeaderMap,
) -> Result<Result<TokenRecord, AuthError>, crate::store::StoreError> {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(Err(AuthError::Missing));
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return auth::authenticate(
            &app.store,
            &app.tokens,
            Some(&format!("Bearer {credentials}")),
            crate::rbac::Permission::EdlRead,
        )
        .await;
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(Err(AuthError::Missing));
    }
    use base64::Engine as _;
    let Some((user, token)) = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, t)| (u.to_owned(), t.to_owned())))
    else {
        return Ok(Err(AuthError::Invalid));
    };
    let checked = auth::authenticate(
        &app.store,
        &app.tokens,
        Some(&format!("Bearer {token}")),
        crate::rbac::Permission::EdlRead,
    )
    .await?;
    Ok(match checked {
        // The user name must be the token's: a token is not accepted under another name.
        Ok(record) if record.name != user => Err(AuthError::Invalid),
        other => other,
    })
}

/// 401 with both challenges (firewalls answer the basic one), or 403 for a token without
/// scope `edl`.
fn refuse(e: &AuthError) -> Response {
    let message = match e {
        AuthError::Missing => "no credentials: send an API token with scope edl as `Authorization: Bearer TOKEN`, or as the password of basic auth with the token's name as user name".to_owned(),
        other => other.to_string(),
    };
    let status = match e {
        AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        AuthError::Missing | AuthError::Invalid => StatusCode::UNAUTHORIZED,
    };
    let mut response = text(status, format!("{message}\n"));
    if status == StatusCode::UNAUTHORIZED {
        let h = response.headers_mut();
        for challenge in [
            format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""),
            format!("Bearer realm=\"{REALM}\""),
        ] {
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_str(&challenge).expect("ASCII"),
            );
        }
    }
    response
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks) or is `*`.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn unavailable(e: &crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "serving an EDL failed");
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the list store is unavailable; retry shortly\n".into(),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// Start the expiry job: at once, then every `lists.expiry_interval`. Abort it to stop.
pub fn spawn_expiry(app: &Arc<App>) -> tokio::task::JoinHandle<()> {
    let app = app.clone();
    let every = app.config.lists.expiry_interval.max(Duration::from_millis(100));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match app.store.expire_list_entries(now_ms(), &Actor::system()).await {
                Ok(done) => {
                    for (list, values) in done {
                        tracing::info!(list, removed = values.len(), "expired list entries removed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "removing expired list entries failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_if_none_match_compares_weakly_and_accepts_lists_and_star() {
        let etag = "\"abc\"";
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(none_match(&with("\"abc\""), etag));
        assert!(none_match(&with("W/\"abc\""), etag));
        assert!(none_match(&with("\"x\", \"abc\""), etag));
        assert!(none_match(&with("*"), etag));
        assert!(!none_match(&with("\"abd\""), etag));
        assert!(!none_match(&HeaderMap::new(), etag));
    }
}
