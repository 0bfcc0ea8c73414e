//! A fake ipinfo.io on loopback: `GET /{ip}/json`, authenticated with the token as a bearer
//! header (or `?token=`), answering in ipinfo's JSON shapes, including its error shapes for a
//! wrong token (403), a wrong IP (404) and rate limiting (429).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone)]
struct Shared {
    token: String,
    requests: Arc<AtomicUsize>,
    authorized: Arc<AtomicUsize>,
    /// Answer 429 once this many authorized requests were served (0: never).
    rate_limit_after: Arc<AtomicUsize>,
}

pub struct FakeIpinfo {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeIpinfo {
    pub async fn start(token: &str) -> FakeIpinfo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            token: token.to_owned(),
            requests: Arc::default(),
            authorized: Arc::default(),
            rate_limit_after: Arc::default(),
        };
        let app = Router::new()
            .route("/{ip}/json", get(lookup))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeIpinfo {
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

    /// Requests that carried the right token.
    pub fn authorized(&self) -> usize {
        self.shared.authorized.load(Ordering::SeqCst)
    }

    pub fn rate_limit_after(&self, n: usize) {
        self.shared.rate_limit_after.store(n, Ordering::SeqCst);
    }
}

async fn lookup(
    State(s): State<Shared>,
    Path(ip): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let token = bearer.or_else(|| query.get("token").cloned());
    if token.as_deref() != Some(s.token.as_str()) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"status": 403, "error": {"title": "Wrong token", "message": "Please make sure your token is correct"}})),
        )
            .into_response();
    }
    let served = s.authorized.fetch_add(1, Ordering::SeqCst) + 1;
    let limit = s.rate_limit_after.load(Ordering::SeqCst);
    if limit > 0 && served > limit {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"status": 429, "error": {"title": "Rate limit exceeded", "message": "Upgrade to increase your usage limits"}})),
        )
            .into_response();
    }
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"status": 404, "error": {"title": "Wrong ip", "message": "Please provide a valid IP address"}})),
        )
            .into_response();
    };
    let private = match addr {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback(),
    };
    if private {
        return Json(json!({"ip": ip, "bogon": true})).into_response();
    }
    let body = match ip.as_str() {
        "8.8.8.8" => json!({
            "ip": "8.8.8.8", "hostname": "dns.google", "city": "Mountain View", "region": "California",
            "country": "US", "loc": "37.4056,-122.0775", "org": "AS15169 Google LLC", "postal": "94043",
            "timezone": "America/Los_Angeles", "anycast": true
        }),
        "1.1.1.1" => json!({
            "ip": "1.1.1.1", "hostname": "one.one.one.one", "city": "Brisbane", "region": "Queensland",
            "country": "AU", "loc": "-27.4820,153.0136", "org": "AS13335 Cloudflare, Inc.", "postal": "4101",
            "timezone": "Australia/Brisbane", "anycast": true
        }),
        _ => json!({
            "ip": ip, "city": "Amsterdam", "region": "North Holland", "country": "NL",
            "loc": "52.3740,4.8897", "org": "AS64500 Example Hosting B.V.", "timezone": "Europe/Amsterdam"
        }),
    };
    Json(body).into_response()
}
