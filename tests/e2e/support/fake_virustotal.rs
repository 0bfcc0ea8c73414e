//! A fake VirusTotal API v3 on loopback: `GET /api/v3/domains/{domain}` and
//! `GET /api/v3/ip_addresses/{ip}`, authenticated with the `x-apikey` header, answering in
//! VirusTotal's shapes (`{"data": {"id", "type", "attributes"}}`) and its JSON error bodies
//! (`{"error": {"code", "message"}}`): a missing or wrong key (401), an unknown object (404),
//! a malicious domain (`malware.example`), a clean, old one (`partner-portal.example`), and
//! the two 429s (`quota.example` answers QuotaExceededError, `busy.example`
//! TooManyRequestsError).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone)]
struct Shared {
    key: String,
    requests: Arc<AtomicUsize>,
    authorized: Arc<AtomicUsize>,
}

pub struct FakeVirusTotal {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeVirusTotal {
    pub async fn start(key: &str) -> FakeVirusTotal {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            key: key.to_owned(),
            requests: Arc::default(),
            authorized: Arc::default(),
        };
        let app = Router::new()
            .route("/api/v3/domains/{domain}", get(domain))
            .route("/api/v3/ip_addresses/{ip}", get(ip_address))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeVirusTotal {
            addr,
            shared,
            _stop: stop,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request that arrived.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests that carried the right key.
    pub fn authorized(&self) -> usize {
        self.shared.authorized.load(Ordering::SeqCst)
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

/// The error answer for a request without the right key, or None when it has it.
fn refuse(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    s.requests.fetch_add(1, Ordering::SeqCst);
    match headers.get("x-apikey").and_then(|v| v.to_str().ok()) {
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequiredError",
            "X-Apikey header is missing",
        )),
        Some(k) if k != s.key => Some(error(
            StatusCode::UNAUTHORIZED,
            "WrongCredentialsError",
            "Wrong API key",
        )),
        Some(_) => {
            s.authorized.fetch_add(1, Ordering::SeqCst);
            None
        }
    }
}

fn object(id: &str, kind: &str, attributes: Value) -> Response {
    Json(json!({
        "data": {
            "id": id,
            "type": kind,
            "links": {"self": format!("https://www.virustotal.com/api/v3/{kind}s/{id}")},
            "attributes": attributes,
        }
    }))
    .into_response()
}

async fn domain(State(s): State<Shared>, Path(domain): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse(&s, &headers) {
        return refused;
    }
    match domain.as_str() {
        "quota.example" => error(
            StatusCode::TOO_MANY_REQUESTS,
            "QuotaExceededError",
            "Quota exceeded",
        ),
        "busy.example" => error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsError",
            "Too many requests",
        ),
        "malware.example" => object(
            &domain,
            "domain",
            json!({
                "categories": {"Forcepoint ThreatSeeker": "malicious web sites", "BitDefender": "malware"},
                "creation_date": 1_700_000_000,
                "last_analysis_date": 1_765_000_000,
                "last_analysis_stats": {"harmless": 51, "malicious": 9, "suspicious": 2, "undetected": 30, "timeout": 0},
                "last_analysis_results": {"Kaspersky": {"category": "malicious", "result": "malware", "method": "blacklist", "engine_name": "Kaspersky"}},
                "reputation": -42,
                "registrar": "Example Registrar, Inc.",
                "tld": "example",
                "whois": "Domain Name: MALWARE.EXAMPLE"
            }),
        ),
        "partner-portal.example" => object(
            &domain,
            "domain",
            json!({
                "categories": {"Forcepoint ThreatSeeker": "business and economy", "BitDefender": "business"},
                "creation_date": 1_262_304_000,
                "last_analysis_date": 1_765_000_000,
                "last_analysis_stats": {"harmless": 61, "malicious": 0, "suspicious": 0, "undetected": 30, "timeout": 0},
                "last_analysis_results": {},
                "reputation": 12,
                "registrar": "Example Registrar, Inc.",
                "tld": "example",
                "whois": "Domain Name: PARTNER-PORTAL.EXAMPLE"
            }),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            &format!("Domain \"{domain}\" not found"),
        ),
    }
}

async fn ip_address(State(s): State<Shared>, Path(ip): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = refuse(&s, &headers) {
        return refused;
    }
    match ip.as_str() {
        "8.8.8.8" => object(
            &ip,
            "ip_address",
            json!({
                "as_owner": "GOOGLE",
                "asn": 15169,
                "continent": "NA",
                "country": "US",
                "network": "8.8.8.0/24",
                "regional_internet_registry": "ARIN",
                "last_analysis_date": 1_765_100_000,
                "last_analysis_stats": {"harmless": 62, "malicious": 0, "suspicious": 0, "undetected": 30, "timeout": 0},
                "reputation": 536,
                "tags": []
            }),
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            &format!("IP address \"{ip}\" not found"),
        ),
    }
}
