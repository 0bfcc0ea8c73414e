//! Who is on the other end of a web request: the signed-in user of the session cookie
//! ([`WebUser`], an extractor that sends everyone else to the sign-in page), and where the
//! request came from.

use super::layout::{see_other, server_error};
use crate::app::App;
use crate::store::now_ms;
use crate::web_auth::{self, SESSION_COOKIE};
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

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
    /// pass what comes back to [`check_csrf`](super::check_csrf).
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
}
