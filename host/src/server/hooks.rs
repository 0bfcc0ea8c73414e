//! Inbound webhooks: any request to `/hooks/PLUGIN/...` is handed to the plugin's
//! `handle-webhook` (WIT 0.2.0 on), if the operator granted it `webhooks`.
//!
//! Osprey does not authenticate these requests (vendors hold no Osprey token): the plugin
//! checks the vendor's signature with its own secret. What the server does is bound them
//! before any plugin runs: a plugin that is not granted (or speaks 0.1.0) gets a 404 and no
//! call; the headers are capped in number and size; the body is refused over
//! [`MAX_BODY_BYTES`] by its `Content-Length` before reading, and while reading, and must
//! arrive within [`BODY_READ_TIMEOUT`]; at most [`MAX_IN_FLIGHT`] requests per plugin run at
//! once (more get 429), on top of the runtime's pool. The plugin's response is sanitized
//! ([`sanitize`]); its events become alerts through intake's path (`intake::ingest_one`),
//! and answers to questions (clicks in chat) go to `humans::chat_answers`, which takes only
//! a button token given to this plugin.
//! Every request to an installed plugin is counted (`osprey_webhooks`) and logged.

use super::intake::{OneAlertError, ingest_one};
use super::problem;
use crate::app::App;
use crate::humans::chat_answers::ChatAnswer;
use crate::metrics::Webhook;
use crate::plugin::{ErrorKind, WebhookError, WebhookEvent, WebhookRequest, WebhookResponse};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::BodyExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Largest request body handed to a plugin.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most request headers, and most bytes of their names and values together.
const MAX_HEADERS: usize = 100;
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Requests handled at once per plugin; more are answered 429.
const MAX_IN_FLIGHT: usize = 4;
/// How long a sender has to deliver the body.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Most headers of a plugin's response that are passed on.
const MAX_RESPONSE_HEADERS: usize = 64;

/// Response headers a plugin may not set: hop-by-hop and framing ones (the server frames
/// the response), and cookies (the hooks share the console's origin).
const DROPPED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "set-cookie",
    "set-cookie2",
];

#[derive(Clone)]
struct Hooks {
    app: Arc<App>,
    /// Per plugin, the permits of its requests in flight.
    in_flight: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// The webhook routes.
pub fn router(app: Arc<App>) -> Router {
    let state = Hooks {
        app,
        in_flight: Arc::default(),
    };
    Router::new()
        .route("/hooks/{plugin}", any(hook))
        .route("/hooks/{plugin}/", any(hook))
        .route("/hooks/{plugin}/{*rest}", any(hook))
        // The body is read with our own limit, which answers 413 in our words.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// `/hooks/PLUGIN/REST` as (PLUGIN, `/REST`), from the path as sent.
fn split_path(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix("/hooks/")?;
    let (plugin, below) = rest.split_once('/').unwrap_or((rest, ""));
    Some((plugin, format!("/{below}")))
}

async fn hook(
    State(hooks): State<Hooks>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let Some((plugin, path)) = split_path(uri.path()) else {
        return not_served("");
    };
    let app = &hooks.app;
    let metrics = &app.metrics;
    if let Err(e) = app.runtime.webhook_target(plugin) {
        if !matches!(e, WebhookError::NotInstalled(_)) {
            metrics.webhook(plugin, Webhook::Refused);
        }
        tracing::info!(plugin, %method, path, reason = %e, "webhook not served");
        return not_served(plugin);
    }
    let limited = |response: Response, why: &str| {
        metrics.webhook(plugin, Webhook::Limited);
        tracing::warn!(plugin, %method, path, why, "webhook refused before the plugin");
        response
    };
    if let Err(why) = check_headers(&headers) {
        return limited(
            problem(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too-many-headers",
                &why,
            ),
            &why,
        );
    }
    let semaphore = hooks
        .in_flight
        .lock()
        .expect("webhook permits lock")
        .entry(plugin.to_owned())
        .or_insert_with(|| Arc::new(Semaphore::new(MAX_IN_FLIGHT)))
        .clone();
    let Ok(_permit) = semaphore.try_acquire_owned() else {
        let why =
            format!("plugin '{plugin}' is handling as many webhooks as it may at once ({MAX_IN_FLIGHT})");
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            &format!("{why}; retry shortly"),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return limited(response, &why);
    };
    let too_large = || {
        problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            &format!("the body is larger than {MAX_BODY_BYTES} bytes, the most a webhook may send"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return limited(too_large(), "Content-Length over the limit");
    }
    let read = http_body_util::Limited::new(body, MAX_BODY_BYTES).collect();
    let body = match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(b)) => b.to_bytes().to_vec(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return limited(too_large(), "body over the limit");
        }
        Ok(Err(_)) => {
            let r = problem(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "the request body could not be read",
            );
            return limited(r, "body unreadable");
        }
        Err(_) => {
            let title = format!(
                "the body did not arrive within {}",
                humantime::format_duration(BODY_READ_TIMEOUT)
            );
            return limited(
                problem(StatusCode::REQUEST_TIMEOUT, "body-timeout", &title),
                &title,
            );
        }
    };
    let request = WebhookRequest {
        method: method.as_str().to_owned(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_owned(),
        headers: headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body,
    };
    let call = match app.runtime.handle_webhook(plugin, &request).await {
        Ok(call) => call,
        Err(WebhookError::Call(e)) => {
            metrics.webhook(plugin, Webhook::Failed);
            tracing::warn!(plugin, %method, path, kind = %e.kind, error = %e.message, ms = started.elapsed().as_millis() as u64, "webhook failed in the plugin");
            return failure(plugin, e.kind, e.retry_after);
        }
        Err(e) => {
            // The grant changed while the body was read.
            metrics.webhook(plugin, Webhook::Refused);
            tracing::info!(plugin, %method, path, reason = %e, "webhook not served");
            return not_served(plugin);
        }
    };
    let (mut alerts, mut answers, mut refused) = (0usize, 0usize, 0usize);
    let via = format!("plugin:{plugin}");
    for event in &call.events {
        match event {
            WebhookEvent::Alert(json) => match ingest_one(app, json, plugin, &via).await {
                Ok(_) => alerts += 1,
                Err(OneAlertError::Malformed(why)) => {
                    refused += 1;
                    tracing::warn!(plugin, error = %why, "a webhook's alert event is not an alert; not stored");
                }
                Err(OneAlertError::Store(e)) => {
                    metrics.webhook(plugin, Webhook::Failed);
                    tracing::error!(plugin, error = %e, "storing a webhook's alert failed; answering 503");
                    let mut response = problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "the alert store is unavailable; retry shortly",
                    );
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    return response;
                }
            },
            WebhookEvent::Answer(a) => {
                let click = ChatAnswer {
                    token: &a.question,
                    answer: &a.answer,
                    email: a.email.as_deref(),
                    by: &a.by,
                };
                match app.humans.take_chat_answer(&app.store, plugin, click).await {
                    Ok(q) => {
                        answers += 1;
                        metrics.webhook_answer(plugin, true);
                        tracing::info!(plugin, question = %q.id, by = %a.by, "a question was answered through a webhook");
                    }
                    Err(why) => {
                        refused += 1;
                        metrics.webhook_answer(plugin, false);
                        tracing::warn!(plugin, by = %a.by, reason = %why, "a webhook's answer event was refused; nothing changed");
                    }
                }
            }
        }
    }
    metrics.webhook(plugin, Webhook::Answered);
    let status = call.response.status;
    tracing::info!(plugin, %method, path, status, alerts, answers, refused_events = refused, ms = started.elapsed().as_millis() as u64, "webhook handled");
    sanitize(call.response)
}

/// Refuse headers over [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`], with what was sent.
fn check_headers(headers: &HeaderMap) -> Result<(), String> {
    if headers.len() > MAX_HEADERS {
        return Err(format!(
            "the request has {} headers; a webhook may send at most {MAX_HEADERS}",
            headers.len()
        ));
    }
    let bytes: usize = headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(format!(
            "the request's headers hold {bytes} bytes; a webhook may send at most {MAX_HEADER_BYTES}"
        ));
    }
    Ok(())
}

/// The one answer for every plugin that does not receive webhooks (not installed, not
/// granted, or built against 0.1.0), so a caller learns nothing about which is which.
fn not_served(plugin: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "no-webhook",
        &format!(
            "no plugin receives webhooks at /hooks/{plugin}; an operator grants an installed plugin webhooks with `osprey plugin grant NAME --webhooks`"
        ),
    )
}

/// The answer to a call that failed: a status by the error's kind, and no message (it is
/// logged), so nothing of the plugin's internals reaches the caller.
fn failure(plugin: &str, kind: ErrorKind, retry_after: Option<Duration>) -> Response {
    let (status, title) = match kind {
        ErrorKind::InvalidInput => (StatusCode::BAD_REQUEST, "the plugin found the request invalid"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "the plugin knows nothing at this path"),
        ErrorKind::Denied => (StatusCode::FORBIDDEN, "the plugin refused the request"),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "the plugin asks to slow down"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "the plugin did not answer in time"),
        ErrorKind::Unavailable | ErrorKind::Upstream | ErrorKind::LimitExceeded | ErrorKind::Internal => {
            (StatusCode::BAD_GATEWAY, "the plugin could not handle the request")
        }
    };
    let mut response = problem(status, &kind.to_string(), &format!("{title} (plugin '{plugin}')"));
    if status == StatusCode::TOO_MANY_REQUESTS {
        let secs = retry_after.map_or(1, |d| d.as_secs().max(1));
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// The plugin's response as sent: a final status (200–599, else 502), its headers without
/// hop-by-hop, framing and cookie headers (nor those the `Connection` header names) and
/// without names or values that are not valid HTTP, at most [`MAX_RESPONSE_HEADERS`]; and
/// always `X-Content-Type-Options: nosniff` and a sandboxing `Content-Security-Policy`, as
/// the hooks share the console's origin.
fn sanitize(response: WebhookResponse) -> Response {
    let Some(status) = StatusCode::from_u16(response.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
    else {
        tracing::warn!(
            status = response.status,
            "a plugin answered a webhook with a status that is not a final HTTP status"
        );
        return problem(
            StatusCode::BAD_GATEWAY,
            "bad-status",
            "the plugin answered with a status that is not a final HTTP status",
        );
    };
    let named_by_connection: Vec<String> = response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .collect();
    let mut headers = HeaderMap::new();
    for (name, value) in response.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        if DROPPED_HEADERS.contains(&name.as_str())
            || named_by_connection.iter().any(|n| n == name.as_str())
            || headers.len() >= MAX_RESPONSE_HEADERS
        {
            continue;
        }
        headers.append(name, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    (status, headers, response.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> WebhookResponse {
        WebhookResponse {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: b"ok".to_vec(),
        }
    }

    #[test]
    fn the_path_below_the_plugin_is_kept_as_sent() {
        assert_eq!(split_path("/hooks/slack"), Some(("slack", "/".to_owned())));
        assert_eq!(split_path("/hooks/slack/"), Some(("slack", "/".to_owned())));
        assert_eq!(
            split_path("/hooks/slack/a/b%2Fc"),
            Some(("slack", "/a/b%2Fc".to_owned()))
        );
        assert_eq!(split_path("/api/v1/alerts"), None);
    }

    #[test]
    fn hop_by_hop_framing_and_cookie_headers_are_dropped() {
        let r = sanitize(response(
            202,
            &[
                ("Content-Type", "application/json"),
                ("connection", "close, x-private"),
                ("x-private", "1"),
                ("Transfer-Encoding", "chunked"),
                ("content-length", "99"),
                ("set-cookie", "osprey_session=evil"),
                ("upgrade", "websocket"),
                ("keep-alive", "timeout=5"),
                ("x-request-id", "r1"),
                ("x-request-id", "r2"),
                ("bad name", "x"),
                ("x-bad-value", "a\nb"),
                ("content-security-policy", "default-src *"),
            ],
        ));
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let h = r.headers();
        assert_eq!(h["content-type"], "application/json");
        let ids: Vec<_> = h.get_all("x-request-id").iter().collect();
        assert_eq!(ids, ["r1", "r2"]);
        for gone in [
            "connection",
            "x-private",
            "transfer-encoding",
            "set-cookie",
            "upgrade",
            "keep-alive",
            "x-bad-value",
        ] {
            assert!(!h.contains_key(gone), "{gone}: {h:?}");
        }
        assert_ne!(h.get("content-length").map(|v| v.as_bytes()), Some(&b"99"[..]));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
    }

    #[test]
    fn only_final_statuses_are_passed_on() {
        for ok in [200, 401, 599] {
            assert_eq!(sanitize(response(ok, &[])).status().as_u16(), ok);
        }
        for bad in [0, 99, 100, 101, 199, 600, 999] {
            assert_eq!(
                sanitize(response(bad, &[])).status(),
                StatusCode::BAD_GATEWAY,
                "{bad}"
            );
        }
    }

    #[test]
    fn response_headers_are_capped() {
        let names: Vec<(String, String)> = (0..200).map(|i| (format!("x-h{i}"), "v".into())).collect();
        let pairs: Vec<(&str, &str)> = names.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let r = sanitize(response(200, &pairs));
        let passed = r
            .headers()
            .keys()
            .filter(|n| n.as_str().starts_with("x-h"))
            .count();
        assert_eq!(passed, MAX_RESPONSE_HEADERS);
    }

    #[test]
    fn failures_say_no_more_than_their_kind() {
        let r = failure("echo", ErrorKind::Internal, None);
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        let r = failure("echo", ErrorKind::RateLimited, Some(Duration::from_secs(30)));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["retry-after"], "30");
        assert_eq!(
            failure("echo", ErrorKind::Timeout, None).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
    }

    #[test]
    fn too_many_or_too_large_request_headers_are_refused() {
        let mut h = HeaderMap::new();
        for i in 0..=MAX_HEADERS {
            h.insert(
                HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        assert!(check_headers(&h).unwrap_err().contains("at most 100"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-big",
            HeaderValue::from_str(&"a".repeat(MAX_HEADER_BYTES)).unwrap(),
        );
        assert!(check_headers(&h).is_err());
        let mut h = HeaderMap::new();
        h.insert("x-small", HeaderValue::from_static("a"));
        assert!(check_headers(&h).is_ok());
    }
}
