//! Signing in to the web pages: `GET|POST /login`, `POST /logout`, `GET /whoami`.
//!
//! Sign-in and sign-out refuse a form a browser posted from another site (login CSRF: a
//! hostile page signing the visitor in as the attacker), by `Sec-Fetch-Site` and `Origin`
//! ([`web_auth::check_same_origin`], with `humans.public_url` as this server's address too):
//! a 403 page that says so. A refused sign-in is audited as `user.login_failed` with reason
//! `cross_site` and counted by the limiter (`rate_limit.rs`) like a wrong password, so a
//! hostile page cannot grow the audit log faster than failed sign-ins can.
//!
//! Sign-in checks the password (argon2id, `web_auth`) off the async threads, a few at a time,
//! then starts a session: the `osprey_session` cookie (HttpOnly, SameSite=Lax, Path=/,
//! Max-Age of `web.session_ttl`, Secure with `web.secure_cookies`) holds a random token whose
//! SHA-256 is the session's key in the store. Sign-ins are audited as `user.login` and
//! `user.login_failed` (with the remote address and user agent), sign-outs as `user.logout`.
//!
//! Failed sign-ins are limited per user name and per remote address (`rate_limit.rs`): past
//! the limit, attempts are refused with 429. The remote address is the TCP peer: behind a
//! reverse proxy every client shares the proxy's address, so the address limit then applies
//! to all of them together.

use super::csrf::check_csrf;
use super::layout::{plain_message, plain_page, secure_headers, see_other, server_error};
use super::rate_limit::{FailureLimiter, address_key};
use super::session::{WebUser, peer, session_token, signed_in};
use crate::app::App;
use crate::store::now_ms;
use crate::store::sessions::{LoginClient, LoginFailure};
use crate::web_auth::{self, SESSION_COOKIE};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
/// Password checks running at once (each takes ~19 MiB and a core for tens of ms).
const HASHING_AT_ONCE: usize = 4;
/// The largest form body read.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Where a sign-in goes when the form does not say (or says something that is not a local
/// path): the dashboard, which sends requesters on to their inbox.
const DEFAULT_NEXT: &str = "/";
/// The same for a wrong user name and a wrong password.
const WRONG: &str = "wrong user name or password";

/// The sign-in routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    let state = WebState {
        app,
        guard: Arc::new(Guard {
            limiter: Mutex::new(FailureLimiter::default()),
            hashing: tokio::sync::Semaphore::new(HASHING_AT_ONCE),
        }),
    };
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/whoami", get(whoami))
        .with_state(state)
}

#[derive(Clone)]
struct WebState {
    app: Arc<App>,
    guard: Arc<Guard>,
}

impl FromRef<WebState> for Arc<App> {
    fn from_ref(state: &WebState) -> Arc<App> {
        state.app.clone()
    }
}

struct Guard {
    limiter: Mutex<FailureLimiter>,
    hashing: tokio::sync::Semaphore,
}

/// [`web_auth::check_same_origin`] on a request: its `Sec-Fetch-Site`, `Origin` and `Host`
/// (or the URI's authority, on HTTP/2), with `humans.public_url` as this server's address.
fn same_origin(app: &App, parts: &Parts) -> Result<(), web_auth::CrossSiteError> {
    let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let host = h(header::HOST.as_str()).or_else(|| parts.uri.authority().map(|a| a.as_str()));
    web_auth::check_same_origin(
        h("sec-fetch-site"),
        h(header::ORIGIN.as_str()),
        host,
        app.config.humans.public_url.as_deref(),
    )
}

/// The 403 page for a form posted from another site (`what`: "sign in", "sign out").
fn cross_site_refusal(what: &str, e: &web_auth::CrossSiteError) -> Response {
    plain_page(
        StatusCode::FORBIDDEN,
        "cross_site.html",
        "Refused",
        minijinja::context! { what => what, reason => e.to_string() },
    )
}

// ---------------------------------------------------------------------------------------
// The routes.

/// Where to go after signing in: `next` if it is a path on this server, else the dashboard.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 2048
        && !next.chars().any(|c| c.is_control() || c.is_whitespace());
    if local { next } else { DEFAULT_NEXT }
}

/// The first value of each field of a form-urlencoded body or query.
fn form_fields(bytes: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    fields
}

/// The sign-in form, with `error` above it and `user` filled in.
fn login_form(status: StatusCode, error: Option<&str>, user: &str, next: &str) -> Response {
    plain_page(
        status,
        "login.html",
        "Sign in",
        minijinja::context! { error => error, user => user, next => safe_next(next) },
    )
}

/// `GET /login?next=PATH`: the form, or who is signed in with a sign-out button.
async fn login_page(State(web): State<WebState>, parts: Parts) -> Response {
    let query = form_fields(parts.uri.query().unwrap_or("").as_bytes());
    let next = query.get("next").map(String::as_str).unwrap_or(DEFAULT_NEXT);
    match signed_in(&web.app, &parts.headers).await {
        Ok(Some(user)) => plain_page(
            StatusCode::OK,
            "signed_in.html",
            "Signed in",
            minijinja::context! { name => user.name, next => safe_next(next), csrf => user.csrf },
        ),
        Ok(None) => login_form(StatusCode::OK, None, "", next),
        Err(response) => response,
    }
}

/// The sign-in's client, for the audit log, and its address for the limiter.
fn login_client(parts: &Parts) -> (LoginClient, Option<IpAddr>) {
    let (ip, user_agent) = peer(parts);
    let client = LoginClient {
        remote: ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
        user_agent: user_agent.unwrap_or_default(),
    };
    (client, ip)
}

/// `POST /login` (form: user, password, next).
async fn login(State(web): State<WebState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return plain_message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Sign in",
            "Sign in",
            "The form is too large.",
        );
    };
    let mut fields = form_fields(&bytes);
    drop(bytes);
    let user: String = fields
        .remove("user")
        .unwrap_or_default()
        .trim()
        .chars()
        .take(64)
        .collect();
    let password = SecretString::from(fields.remove("password").unwrap_or_default());
    let next = fields.remove("next").unwrap_or_default();
    let (client, ip) = login_client(&parts);
    let keys = [format!("user:{user}"), address_key(ip)];
    if let Err(e) = same_origin(&web.app, &parts) {
        tracing::warn!(user = %user, remote = %client.remote, error = %e, "sign-in refused: the form came from another site");
        // Counted as a failure (never forgiven) before it is audited, so refusals are audited
        // no faster than wrong passwords; past the limit they are only refused.
        let counted = !user.is_empty() && web.guard.limiter().attempt(&keys, Instant::now()).is_ok();
        if counted
            && let Err(e) = web
                .app
                .store
                .record_failed_login(&user, &client, LoginFailure::CrossSite)
                .await
        {
            return server_error(e);
        }
        return cross_site_refusal("sign in", &e);
    }
    if user.is_empty() || password.expose_secret().is_empty() {
        return login_form(
            StatusCode::BAD_REQUEST,
            Some("enter your user name and password"),
            &user,
            &next,
        );
    }

    let started = Instant::now();
    let allowed = web.guard.limiter().attempt(&keys, started);
    if let Err(wait) = allowed {
        tracing::warn!(user = %user, remote = %client.remote, "sign-in refused: too many failures");
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut response = login_form(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "too many failed sign-ins for this user name or from this address; try again in {minutes} minute{}",
                if minutes == 1 { "" } else { "s" }
            )),
            &user,
            &next,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return response;
    }

    let stored = match web.app.store.user_password_hash(&user).await {
        Ok(stored) => stored,
        Err(e) => {
            web.guard.limiter().forgive(&keys, started, false);
            return server_error(e);
        }
    };
    let matches = {
        let Ok(_permit) = web.guard.hashing.acquire().await else {
            return server_error("the password checker is closed");
        };
        tokio::task::spawn_blocking(move || web_auth::verify_password(&password, stored.as_deref()))
            .await
            .unwrap_or(false)
    };

    if !matches {
        tracing::info!(user = %user, remote = %client.remote, "sign-in failed");
        if let Err(e) = web
            .app
            .store
            .record_failed_login(&user, &client, LoginFailure::WrongPassword)
            .await
        {
            return server_error(e);
        }
        return login_form(StatusCode::UNAUTHORIZED, Some(WRONG), &user, &next);
    }

    web.guard.limiter().forgive(&keys, started, true);
    let (token, token_hash) = web_auth::new_session_token();
    let ttl = web.app.config.web.session_ttl;
    let expires_at = now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let csrf = web_auth::new_csrf_token();
    if let Err(e) = web
        .app
        .store
        .create_session(&token_hash, &user, &csrf, expires_at, &client)
        .await
    {
        return server_error(e);
    }
    match web.app.store.delete_expired_sessions(now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(sessions = n, "expired sessions removed"),
        Err(e) => tracing::warn!(error = %e, "removing expired sessions failed"),
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        token.expose_secret(),
        ttl.as_secs(),
        if web.app.config.web.secure_cookies {
            "; Secure"
        } else {
            ""
        },
    );
    see_other(safe_next(&next), Some(cookie))
}

/// `POST /logout` (form: csrf): ends the session and clears the cookie.
async fn logout(State(web): State<WebState>, user: WebUser, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = same_origin(&web.app, &parts) {
        tracing::warn!(user = %user.name, error = %e, "sign-out refused: the form came from another site");
        return cross_site_refusal("sign out", &e);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let fields = form_fields(&bytes);
    if let Err(refused) = check_csrf(&user, fields.get("csrf").map(String::as_str).unwrap_or("")) {
        return refused;
    }
    if let Some(token) = session_token(&parts.headers)
        && let Err(e) = web
            .app
            .store
            .delete_session(&web_auth::session_token_hash(&token))
            .await
    {
        return server_error(e);
    }
    let cookie = format!(
        "{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{}",
        if web.app.config.web.secure_cookies {
            "; Secure"
        } else {
            ""
        },
    );
    see_other("/login", Some(cookie))
}

/// `GET /whoami`: the signed-in user's name and roles, as text (for scripts and checks).
async fn whoami(user: WebUser) -> Response {
    let body = format!("user: {}\nroles: {}\n", user.name, user.roles.join(" "));
    let mut response = (StatusCode::OK, Body::from(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure_headers(h);
    response
}

impl Guard {
    fn limiter(&self) -> std::sync::MutexGuard<'_, FailureLimiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next("/inbox?x=1"), "/inbox?x=1");
        assert_eq!(safe_next("/"), "/");
        for bad in [
            "",
            "inbox",
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "/a b",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), DEFAULT_NEXT, "{bad:?}");
        }
    }
}
