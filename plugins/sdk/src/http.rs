//! A small blocking HTTP client over `wasi:http`, the only way out of the sandbox.
//!
//! ```ignore
//! let resp = http::Request::get("https://ipinfo.io/8.8.8.8/json")
//!     .bearer_auth(token.expose())
//!     .send()?              // transport errors and refusals become typed errors
//!     .error_for_status()?; // 401/403 → denied, 404 → not-found, 429 → rate-limited, 5xx → unavailable
//! let info: serde_json::Value = resp.json()?;
//! ```
//!
//! Every request is checked by the host against the operator's grant before any connection.
//! A refused request fails with [`ErrorKind::Denied`](crate::ErrorKind::Denied). Redirects
//! are not followed: a 3xx comes back as a response, and following it is another request
//! that must be granted too.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{Error, ErrorKind, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;

/// An outgoing request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
}

/// A response with its whole body read (bodies are capped by the host).
#[derive(Debug, Clone)]
pub struct Response {
    /// The URL that was requested (without its query string).
    pub url: String,
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// A request with any method (`"GET"`, `"POST"`, ...).
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request {
            method: method.to_ascii_uppercase(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
        }
    }
    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    /// `POST url`.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    /// `PUT url`.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new("PUT", url)
    }
    /// `PATCH url`.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new("PATCH", url)
    }
    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Append query parameters, percent-encoded.
    pub fn query(mut self, params: &[(&str, &str)]) -> Self {
        for (k, v) in params {
            let sep = if self.url.contains('?') { '&' } else { '?' };
            self.url = format!("{}{sep}{}={}", self.url, encode(k), encode(v));
        }
        self
    }

    /// A JSON body, with `content-type: application/json`.
    pub fn json<T: Serialize>(mut self, body: &T) -> Self {
        self.body = serde_json::to_vec(body).expect("serialising a request body to JSON");
        self.header("content-type", "application/json")
    }

    /// A raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Give up waiting for the connection, or for each part of the response, after
    /// `timeout`. The call's own deadline applies in any case.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Send the request and read the whole response.
    pub fn send(self) -> Result<Response> {
        let url = Url::parse(&self.url)?;
        let shown = url.without_query();

        let fields: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&fields)
            .map_err(|e| Error::invalid_input(format!("request header rejected: {e:?}")))?;
        let request = OutgoingRequest::new(headers);
        let method = match self.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_owned()),
        };
        let invalid = |what: &str| Error::invalid_input(format!("{what} of {shown} rejected"));
        request.set_method(&method).map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&url.scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&url.authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&url.path_and_query))
            .map_err(|()| invalid("path"))?;

        let body = request
            .body()
            .map_err(|()| Error::internal("request body taken twice"))?;
        let options = self.timeout.map(|t| {
            let options = RequestOptions::new();
            let ns = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            // The host may refuse options it does not support; then its own deadline applies.
            let _ = options.set_connect_timeout(Some(ns));
            let _ = options.set_first_byte_timeout(Some(ns));
            let _ = options.set_between_bytes_timeout(Some(ns));
            options
        });
        // Hand the request over first, then stream the body: the host reads the body while
        // the guest writes it, so writing first could fill the pipe and block forever.
        let future =
            outgoing_handler::handle(request, options).map_err(|code| error_from_code(&shown, &code))?;
        {
            let stream = body
                .write()
                .map_err(|()| Error::internal("request body stream"))?;
            for chunk in self.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| Error::unavailable(format!("{shown}: sending body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|code| error_from_code(&shown, &code))?;

        let incoming = loop {
            if let Some(result) = future.get() {
                break result
                    .map_err(|()| Error::internal("response taken twice"))?
                    .map_err(|code| error_from_code(&shown, &code))?;
            }
            let pollable = future.subscribe();
            pollable.block();
        };

        let status = incoming.status();
        let headers = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let body = incoming
            .consume()
            .map_err(|()| Error::internal("response body taken twice"))?;
        let bytes = read_body(&shown, &body)?;
        drop(body);
        Ok(Response {
            url: shown,
            status,
            headers,
            body: bytes,
        })
    }
}

fn read_body(shown: &str, body: &IncomingBody) -> Result<Vec<u8>> {
    let stream = body
        .stream()
        .map_err(|()| Error::internal("response stream taken twice"))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let code = crate::bindings::wasi::http::types::http_error_code(&e);
                return Err(match code {
                    Some(code) => error_from_code(shown, &code),
                    None => Error::unavailable(format!(
                        "{shown}: reading the response body failed: {}",
                        e.to_debug_string()
                    )),
                });
            }
        }
    }
    Ok(bytes)
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 is replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON; a body that does not decode is an `upstream` error.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::upstream(format!("{} answered with JSON that does not fit: {e}", self.url)))
    }

    /// How long the `Retry-After` header asks to wait: seconds, or an HTTP date (the time
    /// from now until then; zero if it is past). None without the header or if it does not
    /// parse.
    pub fn retry_after(&self) -> Option<Duration> {
        let value = self.header("retry-after")?.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        Some(
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Turn a non-2xx status into the matching error kind: 401/403 → denied,
    /// 404 → not-found, 429 → rate-limited, 5xx → unavailable, other 4xx → upstream.
    /// The error message carries the status and the start of the body. A 429 or 5xx with a
    /// `Retry-After` header carries it as the error's `retry_after`.
    pub fn error_for_status(self) -> Result<Self> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let kind = match self.status {
            401 | 403 => ErrorKind::Denied,
            404 => ErrorKind::NotFound,
            429 => ErrorKind::RateLimited,
            500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Upstream,
        };
        let text = self.text();
        let snippet: String = text.chars().take(300).collect();
        let error = Error::new(
            kind,
            format!("{} answered HTTP {}: {snippet}", self.url, self.status),
        );
        Err(match kind {
            ErrorKind::RateLimited | ErrorKind::Unavailable => error.retry_after(self.retry_after()),
            _ => error,
        })
    }
}

/// Map a `wasi:http` error code to a typed error that says what happened. Public (hidden) so
/// a plugin that reads transport failures (the `probe` plugin) can test its reading against
/// the errors this client really makes.
#[doc(hidden)]
pub fn error_from_code(url: &str, code: &ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied => Error::denied(format!(
            "request to {url} was refused by Osprey: it is not covered by this plugin's grant \
             (ask the operator to grant it with `osprey plugin grant`)"
        )),
        ErrorCode::DestinationIpProhibited => Error::denied(format!(
            "request to {url} was refused by Osprey: the address is not allowed by this plugin's grant"
        )),
        ErrorCode::HttpResponseBodySize(limit) => Error::new(
            ErrorKind::LimitExceeded,
            format!("response from {url} is larger than this plugin's limit ({limit:?} bytes)"),
        ),
        ErrorCode::TlsCertificateError => Error::upstream(format!(
            "{url}: its TLS certificate is not trusted (TLS certificate error); the operator can add the issuing CA to the system's trust store"
        )),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            Error::upstream(format!("{url}: the TLS handshake failed ({code:?})"))
        }
        ErrorCode::DnsTimeout | ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            Error::unavailable(format!("{url}: DNS lookup failed ({code:?})"))
        }
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => {
            Error::new(ErrorKind::Timeout, format!("{url}: timed out ({code:?})"))
        }
        ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionLimitReached => Error::unavailable(format!("{url}: {code:?}")),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => {
            Error::invalid_input(format!("{url}: {code:?}"))
        }
        other => Error::upstream(format!("{url}: {other:?}")),
    }
}

/// A URL split the way `wasi:http` takes it: scheme, authority, path and query. Parsed by
/// the `url` crate (WHATWG rules), as the host parses it, so what one accepts the other does:
/// international host names become their ASCII (punycode) form, dot segments are resolved and
/// the fragment is dropped.
struct Url {
    scheme: Scheme,
    scheme_str: &'static str,
    authority: String,
    path_and_query: String,
}

impl Url {
    fn parse(raw: &str) -> Result<Url> {
        let bad = |why: &str| Error::invalid_input(format!("'{raw}' is not a usable URL: {why}"));
        let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        let (scheme, scheme_str) = match url.scheme() {
            "http" => (Scheme::Http, "http"),
            "https" => (Scheme::Https, "https"),
            _ => return Err(bad("only http and https are supported")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("credentials in URLs are not supported; use a header"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut path_and_query = url.path().to_owned();
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        Ok(Url {
            scheme,
            scheme_str,
            authority,
            path_and_query,
        })
    }

    fn without_query(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("/");
        format!("{}://{}{}", self.scheme_str, self.authority, path)
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            url: "https://vendor.example/v1/items".into(),
            status,
            headers: vec![("x-request-id".into(), "r1".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn urls_are_split_as_the_host_parses_them() {
        let u = Url::parse("https://Bücher.Example:8443/a/./b/../c?q=1&r=%20#frag").unwrap();
        assert_eq!(u.scheme_str, "https");
        assert_eq!(u.authority, "xn--bcher-kva.example:8443");
        assert_eq!(u.path_and_query, "/a/c?q=1&r=%20");
        assert_eq!(u.without_query(), "https://xn--bcher-kva.example:8443/a/c");
        let u = Url::parse("http://10.0.0.1:80").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path_and_query.as_str()),
            ("10.0.0.1", "/")
        );
    }

    #[test]
    fn unusable_urls_are_invalid_input_saying_why() {
        for (raw, why) in [
            ("ftp://example.com/", "only http and https"),
            ("https://user:pw@example.com/", "credentials in URLs"),
            ("not a url", "is not a usable URL"),
        ] {
            let e = Url::parse(raw).err().unwrap();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains(why), "{raw}: {}", e.message);
        }
    }

    #[test]
    fn requests_are_built_with_lower_case_headers_encoded_queries_and_json() {
        let r = Request::new("post", "https://vendor.example/find?x=1")
            .header("Accept", "application/json")
            .bearer_auth("t0k")
            .query(&[("q", "a b&c/é"), ("n", "~ok-._")])
            .json(&serde_json::json!({"k": 1}))
            .timeout(Duration::from_secs(2));
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.url,
            "https://vendor.example/find?x=1&q=a%20b%26c%2F%C3%A9&n=~ok-._"
        );
        assert_eq!(
            r.headers,
            [
                ("accept".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "Bearer t0k".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ]
        );
        assert_eq!(r.body, br#"{"k":1}"#);
        assert_eq!(r.timeout, Some(Duration::from_secs(2)));
        assert_eq!(
            Request::get("https://h/").query(&[("a", "1")]).url,
            "https://h/?a=1"
        );
    }

    #[test]
    fn a_429_or_503_with_retry_after_says_how_long_to_wait() {
        let with = |status: u16, value: &str| {
            let mut r = response(status, "slow down");
            r.headers.push(("retry-after".into(), value.into()));
            r
        };
        let e = with(429, "120").error_for_status().unwrap_err();
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::RateLimited, Some(Duration::from_secs(120)))
        );
        let e = with(503, " 5 ").error_for_status().unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(5)));
        // An HTTP date: the time until then.
        let later = std::time::SystemTime::now() + Duration::from_secs(3600);
        let e = with(429, &httpdate::fmt_http_date(later))
            .error_for_status()
            .unwrap_err();
        let wait = e.retry_after.unwrap();
        assert!(
            wait > Duration::from_secs(3590) && wait <= Duration::from_secs(3600),
            "{wait:?}"
        );
        assert_eq!(
            with(429, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after(),
            Some(Duration::ZERO)
        );
        // Unparsable, absent, or on a status where it means nothing: not carried.
        assert_eq!(
            with(429, "soon").error_for_status().unwrap_err().retry_after,
            None
        );
        assert_eq!(
            response(429, "").error_for_status().unwrap_err().retry_after,
            None
        );
        assert_eq!(with(403, "60").error_for_status().unwrap_err().retry_after, None);
    }

    #[test]
    fn statuses_map_to_the_error_kinds_playbooks_act_on() {
        assert!(response(204, "").error_for_status().is_ok());
        for (status, kind) in [
            (401, ErrorKind::Denied),
            (403, ErrorKind::Denied),
            (404, ErrorKind::NotFound),
            (429, ErrorKind::RateLimited),
            (503, ErrorKind::Unavailable),
            (418, ErrorKind::Upstream),
            (302, ErrorKind::Upstream),
        ] {
            let e = response(status, "nope").error_for_status().unwrap_err();
            assert_eq!(e.kind, kind, "{status}");
            assert_eq!(
                e.message,
                format!("https://vendor.example/v1/items answered HTTP {status}: nope")
            );
        }
        let long = "é".repeat(1000);
        let e = response(500, &long).error_for_status().unwrap_err();
        assert_eq!(
            e.message.matches('é').count(),
            300,
            "the body is cut to 300 characters"
        );
    }

    #[test]
    fn bodies_read_as_text_or_json_and_headers_by_any_case() {
        let r = response(200, r#"{"a":1}"#);
        assert_eq!(r.header("X-Request-ID"), Some("r1"));
        assert_eq!(r.header("x-missing"), None);
        assert_eq!(r.json::<serde_json::Value>().unwrap()["a"], 1);
        let e = response(200, "<html>").json::<serde_json::Value>().unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert!(
            e.message.contains("answered with JSON that does not fit"),
            "{}",
            e.message
        );
        assert_eq!(response(200, "caf\u{e9}").text(), "café");
    }

    #[test]
    fn transport_failures_say_what_happened_with_a_kind_that_fits() {
        let url = "https://vendor.example/x";
        let denied = error_from_code(url, &ErrorCode::HttpRequestDenied);
        assert_eq!(denied.kind, ErrorKind::Denied);
        assert!(
            denied.message.contains("osprey plugin grant"),
            "{}",
            denied.message
        );
        assert_eq!(
            error_from_code(url, &ErrorCode::DestinationIpProhibited).kind,
            ErrorKind::Denied
        );
        assert_eq!(
            error_from_code(url, &ErrorCode::HttpResponseBodySize(Some(10))).kind,
            ErrorKind::LimitExceeded
        );
        assert_eq!(
            error_from_code(url, &ErrorCode::ConnectionTimeout).kind,
            ErrorKind::Timeout
        );
        let dns = error_from_code(url, &ErrorCode::DestinationNotFound);
        assert!(
            dns.retryable && dns.message.contains("DNS lookup failed"),
            "{}",
            dns.message
        );
        let tls = error_from_code(url, &ErrorCode::TlsCertificateError);
        assert!(tls.kind == ErrorKind::Upstream && tls.message.contains("not trusted"));
    }
}
