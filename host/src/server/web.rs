//! The web console's sign-in: `GET|POST /login`, `POST /logout`, `GET /whoami`, and what
//! other pages build on: the [`WebUser`] extractor (the signed-in user, or a redirect to the
//! sign-in page), [`check_csrf`] for every form they accept, [`escape_html`] for every value
//! they interpolate, and [`html_page`] for a plain page readable on a phone.
//!
//! Sign-in and sign-out refuse a form a browser posted from another site (login CSRF: a
//! hostile page signing the visitor in as the attacker), by `Sec-Fetch-Site` and `Origin`
//! ([`web_auth::check_same_origin`], with `humans.public_url` as this server's address too):
//! a 403 page that says so. A refused sign-in is audited as `user.login_failed` with reason
//! `cross_site` and counted by the limiter below like a wrong password, so a hostile page
//! cannot grow the audit log faster than failed sign-ins can.
//!
//! Sign-in checks the password (argon2id, `web_auth`) off the async threads, a few at a time,
//! then starts a session: the `osprey_session` cookie (HttpOnly, SameSite=Lax, Path=/,
//! Max-Age of `web.session_ttl`, Secure with `web.secure_cookies`) holds a random token whose
//! SHA-256 is the session's key in the store. Sign-ins are audited as `user.login` and
//! `user.login_failed` (with the remote address and user agent), sign-outs as `user.logout`.
//!
//! Failed sign-ins are limited in memory, per server process: after [`MAX_FAILURES`] failures
//! for one user name, or from one remote address (an IPv6 address counts by its /64), within
//! [`FAILURE_WINDOW`], further attempts for that key are refused with 429 until the oldest
//! failure leaves the window, whether the password is right or not. A sign-in is counted as a
//! failure when it starts and forgiven if it succeeds, so parallel guesses cannot slip
//! past the count; a success also clears its user name's count. The remote address is the
//! TCP peer: behind a reverse proxy every client shares the proxy's address, so the address
//! limit then applies to all of them together.

use crate::app::App;
use crate::store::now_ms;
use crate::store::sessions::{LoginClient, LoginFailure};
use crate::web_auth::{self, SESSION_COOKIE};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret as _, SecretString};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed sign-ins for one user name or one address before further attempts are refused.
pub const MAX_FAILURES: usize = 5;
/// How long a failed sign-in counts.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most user names and addresses the limiter remembers; past it, the one whose last
/// failure is oldest is forgotten.
const MAX_TRACKED_KEYS: usize = 100_000;
/// Password checks running at once (each takes ~19 MiB and a core for tens of ms).
const HASHING_AT_ONCE: usize = 4;
/// The largest form body read.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Where a sign-in goes when the form does not say (or says something that is not a local
/// path): the dashboard, which sends requesters on to their inbox.
const DEFAULT_NEXT: &str = "/";
/// The same for a wrong user name and a wrong password.
const WRONG: &str = "wrong user name or password";

/// The routes of this file.
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

// ---------------------------------------------------------------------------------------
// What other pages use.

/// The user signed in to the web console, for handlers of pages that need one:
///
/// ```ignore
/// async fn inbox(user: WebUser, State(app): State<Arc<App>>) -> Response { ... }
/// ```
///
/// Extracting it reads the `osprey_session` cookie and finds the session (unexpired, user
/// not disabled) and the user's roles. Without one it rejects with a 303 redirect to
/// `/login?next=PATH` (the request's path and query, url-encoded), so the user comes back
/// after signing in; a database failure is a 500 page. Works with any router state from
/// which an `Arc<App>` can be had (`Arc<App>` itself included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUser {
    pub name: String,
    pub roles: Vec<String>,
    /// The session's CSRF token: put it in every form as a hidden field (say `csrf`) and
    /// pass what comes back to [`check_csrf`].
    pub csrf: String,
}

impl<S> FromRequestParts<S> for WebUser
where
    Arc<App>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = Arc::<App>::from_ref(state);
        match signed_in(&app, &parts.headers).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => {
                let here = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
                Err(see_other(&format!("/login?next={next}"), None))
            }
            Err(e) => Err(e),
        }
    }
}

/// Refuse a form whose CSRF token is not the session's: a 403 page saying the form has
/// expired. Call it first in every handler that changes something.
// The refusal is a page ready to return (`if let Err(r) = check_csrf(..) { return r; }`);
// it is made once per refused form, so its size does not matter.
#[allow(clippy::result_large_err)]
pub fn check_csrf(user: &WebUser, submitted: &str) -> Result<(), Response> {
    if web_auth::csrf_matches(&user.csrf, submitted) {
        Ok(())
    } else {
        tracing::warn!(user = %user.name, "a form without the session's CSRF token was refused");
        Err(html_page(
            StatusCode::FORBIDDEN,
            "Form expired",
            "<h1>Form expired</h1><p>This form has expired; reload the page and try again.</p>",
        ))
    }
}

/// `text` with `& < > " '` replaced by entities (the one in `mail.rs`, shared by mails and
/// pages).
pub use crate::mail::message::escape_html;

/// A whole HTML page: `title` (escaped here) and `body`, which is HTML as given (escape what
/// goes into it with [`escape_html`]). Readable on a phone (viewport, simple inline CSS), not
/// cached, not framed, no scripts (the Content-Security-Policy allows none).
pub fn html_page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Osprey</title><style>{STYLE}</style></head>\
         <body><main>{body}</main></body></html>\n",
        escape_html(title)
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    response
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}\
main{max-width:32rem;margin:0 auto;padding:1.5rem 1rem}\
h1{font-size:1.4rem}\
label{display:block;margin:.8rem 0 .3rem;font-weight:600}\
input{box-sizing:border-box;width:100%;padding:.6rem;font-size:1rem;border:1px solid #b8bfcc;border-radius:.3rem}\
button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border:0;border-radius:.3rem;background:#1f5fbf;color:#fff}\
.error{padding:.6rem;border-radius:.3rem;background:#fde8e8;color:#8a1c1c}";

fn secure_headers(h: &mut HeaderMap) {
    secure_headers_with(
        h,
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
}

/// The headers of every page: not cached, not framed, no sniffing, the referrer kept to this
/// site, and `csp` as the Content-Security-Policy.
pub(crate) fn secure_headers_with(h: &mut HeaderMap, csp: &'static str) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

/// A 303 to `location`, optionally setting a cookie.
fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static(DEFAULT_NEXT)),
    );
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, cookie);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web page failed");
    html_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "<h1>Something went wrong</h1><p>Osprey could not answer; try again in a moment.</p>",
    )
}

/// The session token in the request's cookies, if any.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned())
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
    html_page(
        StatusCode::FORBIDDEN,
        "Refused",
        &format!(
            "<h1>{} refused</h1><p class=\"error\" role=\"alert\">This form was sent from another \
             site, so it was refused: {}.</p><p>To {what}, use the form on this server's own \
             <a href=\"/login\">sign-in page</a>.</p>",
            escape_html(&capitalized(what)),
            escape_html(&e.to_string()),
        ),
    )
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The signed-in user of these headers, if any.
pub(crate) async fn signed_in(app: &App, headers: &HeaderMap) -> Result<Option<WebUser>, Response> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    let hash = web_auth::session_token_hash(&token);
    let Some(session) = app.store.session(&hash, now_ms()).await.map_err(server_error)? else {
        return Ok(None);
    };
    let Some(user) = app.store.user(&session.user_name).await.map_err(server_error)? else {
        return Ok(None);
    };
    Ok(Some(WebUser {
        name: user.name,
        roles: user.roles,
        csrf: session.csrf,
    }))
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
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape_html(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in to Osprey</h1>{error}\
         <form method=\"post\" action=\"/login\">\
         <label for=\"user\">User name</label>\
         <input id=\"user\" name=\"user\" value=\"{}\" autocomplete=\"username\" \
         autocapitalize=\"none\" spellcheck=\"false\" required{}>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required{}>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form>",
        escape_html(user),
        if user.is_empty() { " autofocus" } else { "" },
        if user.is_empty() { "" } else { " autofocus" },
        escape_html(safe_next(next)),
    );
    html_page(status, "Sign in", &body)
}

/// `GET /login?next=PATH`: the form, or who is signed in with a sign-out button.
async fn login_page(State(web): State<WebState>, parts: Parts) -> Response {
    let query = form_fields(parts.uri.query().unwrap_or("").as_bytes());
    let next = query.get("next").map(String::as_str).unwrap_or(DEFAULT_NEXT);
    match signed_in(&web.app, &parts.headers).await {
        Ok(Some(user)) => {
            let body = format!(
                "<h1>Signed in</h1><p>You are signed in as <strong>{}</strong>.</p>\
                 <p><a href=\"{}\">Continue</a></p>\
                 <form method=\"post\" action=\"/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button type=\"submit\">Sign out</button></form>",
                escape_html(&user.name),
                escape_html(safe_next(next)),
                escape_html(&user.csrf),
            );
            html_page(StatusCode::OK, "Signed in", &body)
        }
        Ok(None) => login_form(StatusCode::OK, None, "", next),
        Err(response) => response,
    }
}

/// Where a request came from: the TCP peer (when the server records it) and the user agent
/// (at most 256 characters). The one reading of it, for sign-ins and answers alike.
pub(crate) fn peer(parts: &Parts) -> (Option<IpAddr>, Option<String>) {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().take(256).collect());
    (ip, user_agent)
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

/// The limiter's key for an address: IPv4 whole, IPv6 by its /64 (what one site usually has).
fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "addr:unknown".to_owned(),
    }
}

/// `POST /login` (form: user, password, next).
async fn login(State(web): State<WebState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return html_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Sign in",
            "<h1>Sign in</h1><p>The form is too large.</p>",
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

// ---------------------------------------------------------------------------------------
// The limiter of failed sign-ins.

impl Guard {
    fn limiter(&self) -> std::sync::MutexGuard<'_, FailureLimiter> {
        self.limiter.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Failed sign-ins of the last [`FAILURE_WINDOW`] by key (`user:NAME`, `addr:IP`), oldest
/// first.
#[derive(Debug, Default)]
struct FailureLimiter {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl FailureLimiter {
    /// Start an attempt at `now`: refused with how long to wait if any key has
    /// [`MAX_FAILURES`] in the window; else counted as a failure of every key until
    /// [`forgive`](Self::forgive)n.
    fn attempt(&mut self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = self.failures.get_mut(key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= MAX_FAILURES {
                    // Attempts open again when all but MAX_FAILURES - 1 have left the window.
                    let unlocks = times[times.len() - MAX_FAILURES] + FAILURE_WINDOW;
                    wait = wait.max(unlocks.saturating_duration_since(now));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if self.failures.len() + keys.len() > MAX_TRACKED_KEYS {
            self.failures
                .retain(|_, t| t.back().is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW));
            while self.failures.len() + keys.len() > MAX_TRACKED_KEYS {
                let Some(stalest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.failures.remove(&stalest);
            }
        }
        for key in keys {
            self.failures.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }

    /// Take back the failure counted at `at` for `keys` (the attempt succeeded, or never
    /// got to check the password). With `success`, the first key (the user name) starts
    /// over.
    fn forgive(&mut self, keys: &[String], at: Instant, success: bool) {
        for (i, key) in keys.iter().enumerate() {
            let Some(times) = self.failures.get_mut(key) else {
                continue;
            };
            if success && i == 0 {
                times.clear();
            } else if let Some(pos) = times.iter().rposition(|t| *t == at) {
                times.remove(pos);
            }
            if times.is_empty() {
                self.failures.remove(key);
            }
        }
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

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(session_token(&h), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; osprey_session=tok; b=2"),
        );
        assert_eq!(session_token(&h).as_deref(), Some("tok"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("x=1"));
        h.append(header::COOKIE, HeaderValue::from_static("osprey_session=t2"));
        assert_eq!(session_token(&h).as_deref(), Some("t2"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("osprey_session="));
        assert_eq!(session_token(&h), None);
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_eq!(address_key(Some("192.0.2.1".parse().unwrap())), "addr:192.0.2.1");
    }

    #[test]
    fn five_failures_lock_a_key_for_the_window() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        let alice = |addr: &str| vec!["user:alice".to_owned(), format!("addr:{addr}")];
        for i in 0..MAX_FAILURES as u64 {
            let at = t0 + Duration::from_secs(i * 60);
            assert!(
                l.attempt(&alice(&format!("10.0.0.{i}")), at).is_ok(),
                "attempt {i}"
            );
        }
        // The user name is locked, from any address, until the first failure is 15 min old.
        let at = t0 + Duration::from_secs(5 * 60);
        let wait = l.attempt(&alice("10.9.9.9"), at).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10 * 60));
        // Another user from an address that failed once is not.
        assert!(
            l.attempt(&["user:bob".into(), "addr:10.0.0.1".into()], at)
                .is_ok()
        );
        assert!(
            l.attempt(&alice("10.9.9.9"), t0 + FAILURE_WINDOW).is_ok(),
            "the first one left"
        );

        // One address trying many names is locked too.
        let mut l = FailureLimiter::default();
        for i in 0..MAX_FAILURES {
            assert!(l.attempt(&[format!("user:u{i}"), "addr:x".into()], t0).is_ok());
        }
        assert!(l.attempt(&["user:new".into(), "addr:x".into()], t0).is_err());
    }

    #[test]
    fn a_success_is_forgiven_and_clears_the_user_name() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        let keys = vec!["user:alice".to_owned(), "addr:x".to_owned()];
        for i in 0..4 {
            l.attempt(&keys, t0 + Duration::from_secs(i)).unwrap();
        }
        let ok_at = t0 + Duration::from_secs(10);
        l.attempt(&keys, ok_at).unwrap();
        l.forgive(&keys, ok_at, true);
        assert!(!l.failures.contains_key("user:alice"));
        assert_eq!(l.failures["addr:x"].len(), 4, "the address keeps its failures");
        // A forgiven attempt that never checked the password takes back only itself.
        let at = t0 + Duration::from_secs(11);
        l.attempt(&keys, at).unwrap();
        l.forgive(&keys, at, false);
        assert_eq!(l.failures["addr:x"].len(), 4);
        assert!(!l.failures.contains_key("user:alice"));
    }

    #[test]
    fn the_limiter_forgets_the_stalest_keys_when_full() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_KEYS {
            l.failures.insert(format!("k{i}"), VecDeque::from([t0]));
        }
        l.failures
            .insert("k0".into(), VecDeque::from([t0 + Duration::from_secs(1)]));
        l.attempt(&["user:a".into(), "addr:b".into()], t0 + Duration::from_secs(2))
            .unwrap();
        assert!(l.failures.len() <= MAX_TRACKED_KEYS);
        assert!(l.failures.contains_key("k0") && l.failures.contains_key("user:a"));
    }
}
