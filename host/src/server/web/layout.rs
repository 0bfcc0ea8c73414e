//! The plain page (sign-in, answer and escalation links, refusals): one narrow column
//! readable on a phone, inline CSS and no scripts, rendered from `ui/templates/plain.html`
//! and the templates that extend it (auto-escaped); and the headers of every page.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The Content-Security-Policy of plain pages: no scripts, the inline style only.
const PLAIN_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// What is shown when a template fails to render (fixed text: nothing to escape).
const FAILED_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
     <title>Error · Osprey</title></head><body><main><h1>Something went wrong</h1>\
     <p>Osprey could not show this page.</p></main></body></html>\n";

/// `template` (one that extends `plain.html`) rendered with `ctx` and `title`: not cached,
/// not framed, no scripts (the Content-Security-Policy allows none).
pub(crate) fn plain_page(status: StatusCode, template: &str, title: &str, ctx: impl Serialize) -> Response {
    let ctx = minijinja::context! {
        title => title,
        ..minijinja::Value::from(minijinja::value::Serde(ctx))
    };
    match crate::server::ui::render(template, ctx) {
        Ok(html) => html_response(status, html),
        Err(e) => render_failed(template, &e),
    }
}

/// A plain page of a heading and a sentence.
pub(crate) fn plain_message(status: StatusCode, title: &str, heading: &str, message: &str) -> Response {
    plain_page(
        status,
        "plain_message.html",
        title,
        minijinja::context! { heading => heading, message => message },
    )
}

/// The page for a template that did not render (a 500; the error goes to the log).
pub(crate) fn render_failed(template: &str, e: &minijinja::Error) -> Response {
    tracing::error!(template, error = %e, "a page template failed to render");
    html_response(StatusCode::INTERNAL_SERVER_ERROR, FAILED_PAGE.to_owned())
}

/// A page that failed: the details go to the log, the person gets a short message.
pub(crate) fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "web page failed");
    plain_message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Error",
        "Something went wrong",
        "Osprey could not answer; try again in a moment.",
    )
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    response
}

/// The headers of a plain page or a text answer.
pub(super) fn secure_headers(h: &mut HeaderMap) {
    secure_headers_with(h, PLAIN_CSP);
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

/// A 303 to `location` (the dashboard if it is not a header value), optionally setting a
/// cookie.
pub(super) fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
    );
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, cookie);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
