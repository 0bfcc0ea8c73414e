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
//! Redirects are never followed here, response bodies are capped, and every refusal is
//! logged with the plugin's name and the URL without its query string.

use super::HttpEvent;
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
    fn refuse(
        &self,
        method: &str,
        url: String,
        outcome: HttpEvent,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        tracing::warn!(plugin = %self.plugin, %method, %url, reason = %outcome.outcome, "outbound request refused");
        self.events.lock().expect("events lock").push(outcome);
        ready(Err(HttpError::HttpRequestDenied))
    }
}

impl WasiHttpHooks for OutboundGate {
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
                let event = HttpEvent::new(&method, &url, HttpOutcome::Denied(reason));
                return self.refuse(&method, url, event);
            }
        };
        let url = target.display_without_query();
        if self.sent >= self.max_requests {
            let why = format!(
                "the call already made {} outbound requests, its limit",
                self.max_requests
            );
            let event = HttpEvent::new(&method, &url, HttpOutcome::LimitExceeded(why));
            return self.refuse(&method, url, event);
        }
        self.sent += 1;
        if let Err(denial) = self.grant.check_http(&target) {
            let event = HttpEvent::new(&method, &url, HttpOutcome::Denied(denial.to_string()));
            return self.refuse(&method, url, event);
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
            let mut headers = parts.headers;
            headers.remove(http::header::HOST);
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
            for (k, v) in response.headers() {
                builder = builder.header(k, v);
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
            let code = match tls {
                rustls::Error::InvalidCertificate(_) => HttpError::TlsCertificateError,
                _ => HttpError::TlsProtocolError,
            };
            return (code, HttpOutcome::Failed(format!("TLS: {tls}")));
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
