//! A web filter (a filtering proxy) on loopback with its SIEM: what the defence validation's
//! download probe meets. `/blocked/...` answers a 403 block page, as a proxy does for a file
//! its anti-virus caught, and the SIEM raises an alert for it at Osprey's intake (the JSON
//! alert a SIEM's webhook posts, with the probe's id from the request's `x-osprey-probe`
//! header in the field `osprey_probe`). `/silent/...` blocks the same way but the alert is
//! lost (the alert workflow is broken). `/open/...` lets the EICAR test file through. Any
//! other path is a 404: the port is open.

use super::fake_http::serve;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The EICAR test string, put together from parts at run time (so neither this file nor the
/// test binary holds it whole and trips anti-virus).
pub fn eicar() -> String {
    const PARTS: &str = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$|EICAR-STANDARD-|ANTIVIRUS-TEST-|FILE!$H+H*";
    std::hint::black_box(PARTS).split('|').collect()
}

const BLOCK_PAGE: &str = "<html><body><h1>Access denied</h1><p>Malware detected: EICAR-Test-File. \
     This download was blocked by your organisation's web policy.</p></body></html>";

#[derive(Clone)]
struct Siem {
    /// Osprey's intake URL and the token the SIEM sends alerts with, once known.
    intake: Arc<Mutex<Option<(String, String)>>>,
    http: reqwest::Client,
    /// The probe ids of the requests that reached the filter, in order.
    seen: Arc<Mutex<Vec<String>>>,
}

pub struct FakeWebFilter {
    pub addr: SocketAddr,
    intake: Arc<Mutex<Option<(String, String)>>>,
    seen: Arc<Mutex<Vec<String>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeWebFilter {
    /// Start on 127.0.0.1 with a free port; its SIEM alerts nobody until
    /// [`FakeWebFilter::send_alerts_to`].
    pub async fn start() -> FakeWebFilter {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let intake = Arc::new(Mutex::new(None));
        let siem = Siem {
            intake: intake.clone(),
            http: super::http_client(),
            seen: seen.clone(),
        };
        let app = Router::new()
            .route("/blocked/eicar.com.txt", get(blocked_and_alerted))
            .route("/silent/eicar.com.txt", get(blocked_silently))
            .route("/open/eicar.com.txt", get(delivered))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such page") })
            .with_state(siem);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        FakeWebFilter {
            addr,
            intake,
            seen,
            _stop: serve(listener, app),
        }
    }

    /// The SIEM posts its alerts to Osprey at `osprey` (`host:port`) with the intake token
    /// `token`.
    pub fn send_alerts_to(&self, osprey: &str, token: &str) {
        *self.intake.lock().unwrap() = Some((format!("http://{osprey}/api/v1/alerts"), token.to_owned()));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The probe ids of the requests that reached the filter.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn probe_id(siem: &Siem, headers: &HeaderMap) -> String {
    let id = headers
        .get("x-osprey-probe")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    siem.seen.lock().unwrap().push(id.clone());
    id
}

async fn blocked_and_alerted(State(siem): State<Siem>, headers: HeaderMap) -> impl IntoResponse {
    let id = probe_id(&siem, &headers);
    let alert = serde_json::json!({
        "source": "siem",
        "title": "Web filter blocked a malware download (EICAR-Test-File)",
        "severity": "high",
        "osprey_probe": id,
        "action": "blocked",
    });
    let (intake, token) = siem
        .intake
        .lock()
        .unwrap()
        .clone()
        .expect("the SIEM was told where Osprey is");
    let r = siem
        .http
        .post(&intake)
        .bearer_auth(&token)
        .json(&alert)
        .send()
        .await
        .expect("the SIEM reaches Osprey's intake");
    assert!(r.status().is_success(), "intake answered {}", r.status());
    (StatusCode::FORBIDDEN, BLOCK_PAGE)
}

async fn blocked_silently(State(siem): State<Siem>, headers: HeaderMap) -> impl IntoResponse {
    probe_id(&siem, &headers);
    (StatusCode::FORBIDDEN, BLOCK_PAGE)
}

async fn delivered(State(siem): State<Siem>, headers: HeaderMap) -> impl IntoResponse {
    probe_id(&siem, &headers);
    (StatusCode::OK, eicar())
}
