//! Outbound HTTP for plugins: the `wasi:http` send hook, checked against the grant.
//!
//! wasmtime's default `send_request` connects anywhere with long timeouts, so it is replaced,
//! not wrapped. Each request is checked in order:
//! 1. the per-call request count;
//! 2. the URL (scheme, host, port, path prefix) against the granted patterns, parsed the way
//!    the client will parse it;
//! 3. an IP-literal host must be public, named by the matching pattern, or inside a granted
//!    private range;
//! 4. a host name is resolved by [`GuardedResolver`], which drops every address the grant
//!    does not allow *before* the client sees it, so the address that is checked is the
//!    address that is connected to (no DNS-rebinding window).
//!
//! Before the gate, a request carrying a header the plugin may not set
//! ([`FORBIDDEN_REQUEST_HEADERS`]) is refused here, and a request wasmtime refuses while the
//! plugin builds it (a malformed authority, a path and query over [`MAX_PATH_AND_QUERY`]
//! bytes, an invalid method) is caught by the wrappers [`link_refusals_before_send`] puts
//! around `wasi:http`. Every refusal, before the gate or by it, goes through
//! [`OutboundGate::deny`]: logged with the plugin's name and the URL without its query
//! string, and recorded as the call's HTTP event that the call counts as a denial.
//!
//! Redirects are never followed here and response bodies are capped.

use super::HttpEvent;
use super::host::CallState;
use crate::capability::{Capabilities, HttpDenial, RequestTarget};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Largest request body a plugin may send.
const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Request headers a plugin may not set: connection management and framing belong to the
/// host's client, `host` comes from the URL, and proxy credentials are not the plugin's.
/// wasmtime's list; this gate enforces it when the request is sent, so a refusal is
/// recorded and counted like any other. The plugin guide lists them.
pub(crate) const FORBIDDEN_REQUEST_HEADERS: [http::HeaderName; 9] =
    wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS;

/// Longest path with query a plugin may set, in bytes: the limit of the `http` crate's URIs
/// (`u16::MAX - 1`), which wasmtime checks when the path is set. The plugin guide cites it.
pub(crate) const MAX_PATH_AND_QUERY: usize = u16::MAX as usize - 1;

/// `wasi:http` as this wasmtime provides it (its `wit/deps/http.wit`); the wrappers below
/// shadow functions of these instances, and the hostile e2e test fails if they stop doing so.
const WASI_HTTP_TYPES: &str = "wasi:http/types@0.2.12";
const WASI_HTTP_OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// The TLS settings of every plugin client: the system's trust store (so an operator can add
/// an internal CA the usual way), read once per process rather than once per client.
fn tls_config() -> rustls::ClientConfig {
    use rustls_platform_verifier::ConfigVerifierExt;
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut config = rustls::ClientConfig::with_platform_verifier()
                .expect("a TLS client configuration with the platform's verifier");
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        })
        .clone()
}

/// A client for one plugin's grant: its resolver knows which private ranges are allowed.
pub(crate) fn client_for(grant: Arc<Capabilities>) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(GuardedResolver { grant })
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("osprey/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with rustls and a custom resolver builds")
}

/// Resolves host names and keeps only the addresses the grant allows.
struct GuardedResolver {
    grant: Arc<Capabilities>,
}

/// All addresses of a granted host name were refused.
#[derive(Debug)]
struct ResolvedToForbidden {
    host: String,
    denial: HttpDenial,
}

impl std::fmt::Display for ResolvedToForbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to refused addresses: {}",
            self.host, self.denial
        )
    }
}

impl StdError for ResolvedToForbidden {}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let grant = self.grant.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut allowed = Vec::with_capacity(resolved.len());
            let mut last_denial = None;
            for addr in resolved {
                match grant.check_resolved(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(d) => last_denial = Some(d),
                }
            }
            match (allowed.is_empty(), last_denial) {
                (true, Some(denial)) => Err(Box::new(ResolvedToForbidden { host, denial }) as _),
                (true, None) => Err(format!("{host} has no addresses").into()),
                (false, _) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The send hook of one call. Lives in the call's store data.
pub(crate) struct OutboundGate {
    pub plugin: Arc<str>,
    pub grant: Arc<Capabilities>,
    pub client: reqwest::Client,
    pub max_requests: u32,
    pub max_response_bytes: u64,
    pub deadline: Instant,
    pub sent: u32,
    pub events: Arc<Mutex<Vec<HttpEvent>>>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

fn ready(result: SendResult) -> Box<dyn Future<Output = SendResult> + Send> {
    Box::new(std::future::ready(result))
}

impl OutboundGate {
    /// A refused request, by the gate or before it: logged with the plugin's name and
    /// recorded as an event of the call, which counts it (`osprey_plugin_denials_total`)
    /// and reports it. `url` never carries the query string.
    pub(crate) fn deny(&self, method: &str, url: &str, outcome: HttpOutcome) {
        tracing::warn!(plugin = %self.plugin, %method, %url, reason = %outcome, "outbound request refused");
        self.events
            .lock()
            .expect("events lock")
            .push(HttpEvent::new(method, url, outcome));
    }

    fn refuse(
        &self,
        method: &str,
        url: &str,
        outcome: HttpOutcome,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        self.deny(method, url, outcome);
        ready(Err(HttpError::HttpRequestDenied))
    }
}

impl WasiHttpHooks for OutboundGate {
    /// Nothing is refused while headers are built: [`FORBIDDEN_REQUEST_HEADERS`] are refused
    /// when the request is sent, with the plugin's name, the URL and a count, and stripped
    /// from responses there.
    fn is_forbidden_header(&mut self, _name: &http::HeaderName) -> bool {
        false
    }

    /// The client sets `host` from the URL that was checked.
    fn set_host_header(&mut self) -> bool {
        false
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let method = request.method().to_string();
        let target = match RequestTarget::parse(&request.uri().to_string()) {
            Ok(t) => t,
            Err(reason) => {
                let url = request.uri().path().to_owned();
                return self.refuse(&method, &url, HttpOutcome::Denied(reason.to_string()));
            }
        };
        let url = target.display_without_query();
        if let Some(name) = request
            .headers()
            .keys()
            .find(|k| FORBIDDEN_REQUEST_HEADERS.contains(k))
        {
            let why = format!(
                "the header '{name}' may not be set by a plugin (forbidden: {})",
                forbidden_header_list()
            );
            return self.refuse(&method, &url, HttpOutcome::Denied(why));
        }
        if self.sent >= self.max_requests {
            let why = format!(
                "the call already made {} outbound requests, its limit",
                self.max_requests
            );
            return self.refuse(&method, &url, HttpOutcome::LimitExceeded(why));
        }
        self.sent += 1;
        if let Err(denial) = self.grant.check_http(&target) {
            return self.refuse(&method, &url, HttpOutcome::Denied(denial.to_string()));
        }

        let client = self.client.clone();
        let events = self.events.clone();
        let plugin = self.plugin.clone();
        let limit = self.max_response_bytes;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = options
            .and_then(|o| o.first_byte_timeout.or(o.connect_timeout))
            .map_or(remaining, |t| t.min(remaining));
        Box::new(async move {
            let started = Instant::now();
            let record = |outcome: HttpOutcome| {
                let mut e = HttpEvent::new(&method, &url, outcome);
                e.millis = started.elapsed().as_millis() as u64;
                events.lock().expect("events lock").push(e);
            };
            let (parts, mut body) = request.into_parts();
            // The event is recorded before the body is dropped: dropping it is what the
            // plugin notices, and by then the host must know why.
            let body = match collect_limited(&mut body, MAX_REQUEST_BODY).await {
                Ok(b) => b,
                Err(e) => {
                    let outcome = match e {
                        HttpError::HttpRequestBodySize(_) => HttpOutcome::LimitExceeded(format!(
                            "request body over the limit of {MAX_REQUEST_BODY} bytes"
                        )),
                        _ => HttpOutcome::Failed("the request body could not be read".into()),
                    };
                    record(outcome);
                    drop(body);
                    return Err(e);
                }
            };
            // No `host` here: it was refused above, and wasmtime adds none (`set_host_header`).
            let headers = parts.headers;
            let sent = client
                .request(parts.method, target.url.clone())
                .headers(headers)
                .body(body)
                .timeout(timeout)
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(err) => {
                    let (code, outcome) = classify(&err);
                    if let HttpOutcome::Denied(reason) = &outcome {
                        tracing::warn!(plugin = %plugin, method = %method, url = %url, %reason, "outbound request refused");
                    } else {
                        tracing::debug!(plugin = %plugin, url = %url, error = %err, "outbound request failed");
                    }
                    record(outcome);
                    return Err(code);
                }
            };
            let status = response.status();
            record(HttpOutcome::Status(status.as_u16()));

            let mut builder = http::Response::builder()
                .status(status)
                .version(response.version());
            // The transport's own headers stay here, as wasmtime would strip them (its check is
            // turned off in favour of the one at send time).
            for (k, v) in response.headers() {
                if !FORBIDDEN_REQUEST_HEADERS.contains(k) {
                    builder = builder.header(k, v);
                }
            }
            let mut seen: u64 = 0;
            let mut over = false;
            let events = events.clone();
            let url_for_body = url.clone();
            let method_for_body = method.clone();
            let stream = response.bytes_stream().map(move |chunk| {
                if over {
                    return Err(HttpError::HttpResponseBodySize(Some(limit)));
                }
                match chunk {
                    Ok(bytes) => {
                        seen += bytes.len() as u64;
                        if seen > limit {
                            over = true;
                            let why = format!("response body over the limit of {limit} bytes");
                            events.lock().expect("events lock").push(HttpEvent::new(
                                &method_for_body,
                                &url_for_body,
                                HttpOutcome::LimitExceeded(why),
                            ));
                            Err(HttpError::HttpResponseBodySize(Some(limit)))
                        } else {
                            Ok(http_body::Frame::data(bytes))
                        }
                    }
                    Err(e) => Err(classify(&e).0),
                }
            });
            let body = http_body_util::StreamBody::new(stream).boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|e| HttpError::InternalError(Some(e.to_string())))?;
            let io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                Box::new(std::future::ready(Ok(())));
            Ok((response, io))
        })
    }
}

fn forbidden_header_list() -> String {
    FORBIDDEN_REQUEST_HEADERS
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Wrap the `wasi:http` functions that refuse a request before it reaches the send hook, so
/// that those refusals go through [`OutboundGate::deny`] too: setting a malformed authority,
/// an invalid or over-long path and query, and `handle` refusing the request as built (an
/// invalid method, a missing authority, a `content-length` without a body). Each wrapper
/// calls wasmtime's own function and returns its answer unchanged.
pub(crate) fn link_refusals_before_send(
    linker: &mut wasmtime::component::Linker<CallState>,
) -> wasmtime::Result<()> {
    use wasmtime::StoreContextMut;
    use wasmtime::component::Resource;
    use wasmtime_wasi_http::WasiHttpView;
    use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
    use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};

    linker.allow_shadowing(true);
    let mut instance = linker.instance(WASI_HTTP_TYPES)?;
    instance.func_wrap(
        "[method]outgoing-request.set-authority",
        |mut store: StoreContextMut<'_, CallState>,
         (request, authority): (Resource<HostOutgoingRequest>, Option<String>)| {
            let shown = authority.as_deref().map(shorten).unwrap_or_default();
            let (method, url) = describe(store.data_mut(), &request)?;
            let set =
                types::HostOutgoingRequest::set_authority(&mut store.data_mut().http(), request, authority)?;
            if set.is_err() {
                let why = format!("the authority '{shown}' is not a valid host[:port]");
                store.data().gate.deny(&method, &url, HttpOutcome::Denied(why));
            }
            Ok((set,))
        },
    )?;
    instance.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        |mut store: StoreContextMut<'_, CallState>,
         (request, path): (Resource<HostOutgoingRequest>, Option<String>)| {
            let len = path.as_ref().map_or(0, String::len);
            let (method, url) = describe(store.data_mut(), &request)?;
            let set =
                types::HostOutgoingRequest::set_path_with_query(&mut store.data_mut().http(), request, path)?;
            if set.is_err() {
                let why = format!(
                    "the path and query ({len} bytes) are not valid: they must start with '/' or '?', \
                     be at most {MAX_PATH_AND_QUERY} bytes and hold only URL characters"
                );
                store.data().gate.deny(&method, &url, HttpOutcome::Denied(why));
            }
            Ok((set,))
        },
    )?;
    let mut instance = linker.instance(WASI_HTTP_OUTGOING_HANDLER)?;
    instance.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, CallState>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<wasmtime_wasi_http::RequestOptions>>,
        )| {
            let (method, url) = describe(store.data_mut(), &request)?;
            let mut view = store.data_mut().http();
            let handled = outgoing_handler::Host::handle(&mut view, request, options);
            let answer: Result<Resource<HostFutureIncomingResponse>, types::ErrorCode> = match handled {
                Ok(future) => Ok(future),
                Err(e) => {
                    let code = types::Host::convert_error_code(&mut view, e)?;
                    let why = format!("the request is malformed and was not sent ({code:?})");
                    store.data().gate.deny(&method, &url, HttpOutcome::Denied(why));
                    Err(code)
                }
            };
            Ok((answer,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The method and the URL without query of a request being built, for a refusal's record.
fn describe(
    state: &mut CallState,
    request: &wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostOutgoingRequest>,
) -> wasmtime::Result<(String, String)> {
    use wasmtime_wasi_http::p2::bindings::http::types::{Method, Scheme};
    let r = state.table.get(request)?;
    let method = match &r.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Connect => "CONNECT",
        Method::Options => "OPTIONS",
        Method::Trace => "TRACE",
        Method::Patch => "PATCH",
        Method::Other(m) => m.as_str(),
    };
    let scheme = match &r.scheme {
        Some(Scheme::Http) => "http",
        Some(Scheme::Https) | None => "https",
        Some(Scheme::Other(s)) => s.as_str(),
    };
    let authority = r.authority.as_deref().unwrap_or_default();
    let path = r.path_with_query.as_deref().unwrap_or_default();
    let path = path.split('?').next().unwrap_or_default();
    Ok((
        shorten(method),
        format!("{}://{}{}", shorten(scheme), shorten(authority), shorten(path)),
    ))
}

/// At most 200 characters of a plugin-chosen string, for logs and events.
fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// Read a request body, refusing more than `limit` bytes.
async fn collect_limited(body: &mut WasiBody, limit: usize) -> wasmtime_wasi_http::Result<Bytes> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(HttpError::HttpRequestBodySize(Some(limit as u64)));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Map a client error to the `wasi:http` error code the plugin sees, and to what we record.
fn classify(err: &reqwest::Error) -> (HttpError, HttpOutcome) {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<ResolvedToForbidden>() {
            return (
                HttpError::HttpRequestDenied,
                HttpOutcome::Denied(denied.to_string()),
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // A refused handshake reaches here as an I/O error that wraps the TLS error
            // (tokio-rustls, then the connector wraps that again), and an I/O error's
            // `source` skips what it wraps: look inside, so the plugin is told it was TLS,
            // not an unavailable destination.
            if let Some(tls) = tls_inside(io) {
                return tls_failure(tls);
            }
            use std::io::ErrorKind as K;
            let code = match io.kind() {
                K::ConnectionRefused => HttpError::ConnectionRefused,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => HttpError::ConnectionTerminated,
                K::TimedOut => HttpError::ConnectionTimeout,
                _ if err.is_connect() => HttpError::DestinationUnavailable,
                _ => HttpError::HttpProtocolError,
            };
            return (code, HttpOutcome::Failed(io.to_string()));
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return tls_failure(tls);
        }
        source = e.source();
    }
    let text = error_chain(err);
    if err.is_timeout() {
        (
            HttpError::ConnectionTimeout,
            HttpOutcome::Failed(format!("timed out: {text}")),
        )
    } else if err.is_connect() {
        // Name resolution failures surface as connect errors without an io::Error inside.
        let code = HttpError::DnsError {
            rcode: Some("lookup failed".into()),
            info_code: None,
        };
        (code, HttpOutcome::Failed(text))
    } else {
        (HttpError::HttpProtocolError, HttpOutcome::Failed(text))
    }
}

/// The TLS error an I/O error wraps, however deep in other I/O errors.
fn tls_inside(io: &std::io::Error) -> Option<&rustls::Error> {
    let mut inner = io.get_ref()?;
    loop {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        inner = inner.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

/// A TLS failure as the plugin sees it (a certificate the trust store refuses, or another
/// handshake failure: the two codes `wasi:http` has for them) and as we record it.
fn tls_failure(tls: &rustls::Error) -> (HttpError, HttpOutcome) {
    let code = match tls {
        rustls::Error::InvalidCertificate(_) => HttpError::TlsCertificateError,
        _ => HttpError::TlsProtocolError,
    };
    (code, HttpOutcome::Failed(format!("TLS: {tls}")))
}

fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// What happened to one outbound request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum HttpOutcome {
    /// Sent; the vendor answered with this status.
    Status(u16),
    /// Refused by the grant.
    Denied(String),
    /// Refused or cut by a limit.
    LimitExceeded(String),
    /// Sent, but the transport failed.
    Failed(String),
}

impl std::fmt::Display for HttpOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpOutcome::Status(s) => write!(f, "HTTP {s}"),
            HttpOutcome::Denied(why) => write!(f, "denied: {why}"),
            HttpOutcome::LimitExceeded(why) => write!(f, "limit exceeded: {why}"),
            HttpOutcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS server on loopback with a self-signed certificate that accepts connections and
    /// runs their handshakes until the test ends.
    async fn self_signed_server() -> std::net::SocketAddr {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let certs = vec![cert.cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move { acceptor.accept(tcp).await.map(drop) });
            }
        });
        addr
    }

    async fn failure_of(url: &str) -> HttpError {
        let client = client_for(Arc::new(Capabilities::default()));
        let err = client.get(url).send().await.expect_err("the request must fail");
        classify(&err).0
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_certificate_error_to_the_plugin() {
        let addr = self_signed_server().await;
        let code = failure_of(&format!("https://{addr}/")).await;
        assert!(matches!(code, HttpError::TlsCertificateError), "{code:?}");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_refused_connection() {
        // A port that was just free: bound, then released.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let code = failure_of(&format!("http://{addr}/")).await;
        assert!(matches!(code, HttpError::ConnectionRefused), "{code:?}");
    }
}
