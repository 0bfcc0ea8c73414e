//! A fake UniFi Network controller on loopback, in either of its two shapes:
//! - classic: `GET /` redirects to `/manage`; `POST /api/login` with `{"username",
//!   "password"}` sets the `unifises` and `csrf_token` cookies (400 `api.err.Invalid` for bad
//!   credentials); the site's API is under `/api/s/{site}/`; `POST /api/logout`.
//! - UniFi OS: `GET /` serves the console (200); `POST /api/auth/login` sets the `TOKEN`
//!   cookie and answers an `X-CSRF-Token` header (401 for bad credentials), which every POST,
//!   PUT and DELETE must send back (403 otherwise); the site's API is under
//!   `/proxy/network/api/s/{site}/`; `POST /api/auth/logout`.
//!
//! Both answer `{"meta": {"rc": "ok"}, "data": [...]}`, and 401 `api.err.LoginRequired` to any
//! API call without a live session (random tokens, checked on every call). The API: connected
//! clients (`GET stat/sta`; a blocked client is disconnected, so it is not listed), `POST
//! cmd/stamgr` with `block-sta`/`unblock-sta`, and firewall rules (`GET`/`POST
//! rest/firewallrule`, `DELETE rest/firewallrule/{_id}`; an unknown id is 400 `api.err.IdInvalid`
//! on a classic controller and 404 on UniFi OS). An unknown site is 400
//! `api.err.NoSiteContext`. State is in memory, with accessors for the test's assertions.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which controller to play.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavour {
    /// The UniFi Network application on its own (port 8443).
    Classic,
    /// A UniFi OS console (UDM, Cloud Key Gen2+): the Network application behind
    /// `/proxy/network`.
    UnifiOs,
}

impl Flavour {
    fn prefix(self) -> &'static str {
        match self {
            Flavour::Classic => "",
            Flavour::UnifiOs => "/proxy/network",
        }
    }
    fn cookie(self) -> &'static str {
        match self {
            Flavour::Classic => "unifises",
            Flavour::UnifiOs => "TOKEN",
        }
    }
}

const SITE_ID: &str = "5f1e2d3c4b5a697887a6b5c4";

#[derive(Clone)]
struct Shared {
    flavour: Flavour,
    username: String,
    password: String,
    /// Live sessions: token to its CSRF token.
    sessions: Arc<Mutex<HashMap<String, String>>>,
    /// Every token and CSRF token ever handed out, to check that none leaks.
    issued: Arc<Mutex<Vec<String>>>,
    /// Connected clients, as `stat/sta` items.
    clients: Arc<Mutex<Vec<Value>>>,
    /// Blocked MAC addresses.
    blocked: Arc<Mutex<BTreeSet<String>>>,
    /// Firewall rules, as the controller stores them.
    rules: Arc<Mutex<Vec<Value>>>,
    /// "METHOD /path" of every request.
    seen: Arc<Mutex<Vec<String>>>,
    requests: Arc<AtomicUsize>,
    logins: Arc<AtomicUsize>,
    failed_logins: Arc<AtomicUsize>,
    logouts: Arc<AtomicUsize>,
    /// API calls answered 401 LoginRequired.
    rejected: Arc<AtomicUsize>,
    /// UniFi OS writes refused for a missing or wrong CSRF token.
    csrf_rejected: Arc<AtomicUsize>,
    /// Answer 503 to everything, as a controller that is starting up does.
    outage: Arc<AtomicBool>,
    counter: Arc<AtomicUsize>,
}

impl Shared {
    /// A random hex string of `len` characters.
    fn random(&self, len: usize) -> String {
        let mut out = String::new();
        while out.len() < len {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(self.counter.fetch_add(1, Ordering::SeqCst));
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out.truncate(len);
        out
    }
}

pub struct FakeUnifi {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeUnifi {
    /// A controller of `flavour` with one account, and the site `default`.
    pub async fn start(flavour: Flavour, username: &str, password: &str) -> FakeUnifi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            flavour,
            username: username.to_owned(),
            password: password.to_owned(),
            sessions: Arc::default(),
            issued: Arc::default(),
            clients: Arc::default(),
            blocked: Arc::default(),
            rules: Arc::default(),
            seen: Arc::default(),
            requests: Arc::default(),
            logins: Arc::default(),
            failed_logins: Arc::default(),
            logouts: Arc::default(),
            rejected: Arc::default(),
            csrf_rejected: Arc::default(),
            outage: Arc::default(),
            counter: Arc::default(),
        };
        let (login, logout) = match flavour {
            Flavour::Classic => ("/api/login", "/api/logout"),
            Flavour::UnifiOs => ("/api/auth/login", "/api/auth/logout"),
        };
        let api = format!("{}/api/s/{{site}}", flavour.prefix());
        let app = Router::new()
            .route("/", get(root))
            .route(login, post(do_login))
            .route(logout, post(do_logout))
            .route(&format!("{api}/stat/sta"), get(stat_sta))
            .route(&format!("{api}/cmd/stamgr"), post(stamgr))
            .route(
                &format!("{api}/rest/firewallrule"),
                get(list_rules).post(create_rule),
            )
            .route(&format!("{api}/rest/firewallrule/{{id}}"), delete(delete_rule))
            .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
            .layer(middleware::from_fn_with_state(shared.clone(), count))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeUnifi {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// What to grant and to set as the plugin's `base_url`: the controller's origin.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connect a client.
    pub fn add_client(&self, mac: &str, ip: &str, hostname: &str, name: Option<&str>, wired: bool) {
        let mut c = json!({
            "_id": self.shared.random(24),
            "site_id": SITE_ID,
            "mac": mac,
            "ip": ip,
            "hostname": hostname,
            "oui": "Apple, Inc.",
            "is_guest": false,
            "is_wired": wired,
            "first_seen": 1_700_000_000,
            "last_seen": 1_760_000_000,
            "uptime": 3600,
            "network": "Default",
            "network_id": "5f1e2d3c4b5a697887a6b5c5",
        });
        if let Some(name) = name {
            c["name"] = json!(name);
        }
        if !wired {
            c["essid"] = json!("Home");
            c["ap_mac"] = json!("f0:9f:c2:00:00:01");
            c["signal"] = json!(-52);
        }
        self.shared.clients.lock().unwrap().push(c);
    }

    /// A rule made in the controller's UI before the test.
    pub fn add_rule(&self, rule: Value) -> String {
        let id = self.shared.random(24);
        let mut rule = rule;
        rule["_id"] = json!(id);
        rule["site_id"] = json!(SITE_ID);
        self.shared.rules.lock().unwrap().push(rule);
        id
    }

    pub fn is_blocked(&self, mac: &str) -> bool {
        self.shared.blocked.lock().unwrap().contains(mac)
    }

    /// The firewall rules as stored.
    pub fn rules(&self) -> Vec<Value> {
        self.shared.rules.lock().unwrap().clone()
    }

    pub fn rule(&self, id: &str) -> Option<Value> {
        self.rules().into_iter().find(|r| r["_id"] == id)
    }

    /// Forget every session, as a controller restart or a session timeout does.
    pub fn expire_sessions(&self) {
        self.shared.sessions.lock().unwrap().clear();
    }

    pub fn open_sessions(&self) -> usize {
        self.shared.sessions.lock().unwrap().len()
    }

    /// Every session token and CSRF token the controller handed out.
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared.issued.lock().unwrap().clone()
    }

    pub fn outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
    }

    /// Every request that arrived.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// "METHOD /path" of every request, in order.
    pub fn seen(&self) -> Vec<String> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Successful logins.
    pub fn logins(&self) -> usize {
        self.shared.logins.load(Ordering::SeqCst)
    }

    pub fn failed_logins(&self) -> usize {
        self.shared.failed_logins.load(Ordering::SeqCst)
    }

    pub fn logouts(&self) -> usize {
        self.shared.logouts.load(Ordering::SeqCst)
    }

    /// API calls refused with 401 LoginRequired.
    pub fn rejected(&self) -> usize {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Writes refused for a missing or wrong CSRF token (UniFi OS).
    pub fn csrf_rejected(&self) -> usize {
        self.shared.csrf_rejected.load(Ordering::SeqCst)
    }
}

async fn count(State(s): State<Shared>, request: Request, next: Next) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    s.seen
        .lock()
        .unwrap()
        .push(format!("{} {}", request.method(), request.uri().path()));
    if s.outage.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Temporarily Unavailable",
        )
            .into_response();
    }
    next.run(request).await
}

fn ok(data: Value) -> Response {
    Json(json!({"meta": {"rc": "ok"}, "data": data})).into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        Json(json!({"meta": {"rc": "error", "msg": msg}, "data": []})),
    )
        .into_response()
}

async fn root(State(s): State<Shared>) -> Response {
    match s.flavour {
        Flavour::Classic => (StatusCode::FOUND, [(header::LOCATION, "/manage")], "").into_response(),
        Flavour::UnifiOs => (
            StatusCode::OK,
            [
                ("x-csrf-token", s.random(36)),
                ("content-type", "text/html".to_owned()),
            ],
            "<!DOCTYPE html><html><head><title>UniFi OS</title></head><body></body></html>",
        )
            .into_response(),
    }
}

async fn do_login(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let good = body["username"] == s.username.as_str() && body["password"] == s.password.as_str();
    if !good {
        s.failed_logins.fetch_add(1, Ordering::SeqCst);
        return match s.flavour {
            Flavour::Classic => error(StatusCode::BAD_REQUEST, "api.err.Invalid"),
            Flavour::UnifiOs => (
                StatusCode::UNAUTHORIZED,
                Json(json!({
                    "code": "AUTHENTICATION_FAILED_INVALID_CREDENTIALS",
                    "message": "Invalid username or password"
                })),
            )
                .into_response(),
        };
    }
    s.logins.fetch_add(1, Ordering::SeqCst);
    let token = s.random(64);
    let csrf = s.random(36);
    s.sessions.lock().unwrap().insert(token.clone(), csrf.clone());
    s.issued.lock().unwrap().extend([token.clone(), csrf.clone()]);
    match s.flavour {
        Flavour::Classic => {
            let mut r = ok(json!([]));
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                format!("unifises={token}; Path=/; HttpOnly").parse().unwrap(),
            );
            h.append(
                header::SET_COOKIE,
                format!("csrf_token={csrf}; Path=/").parse().unwrap(),
            );
            r
        }
        Flavour::UnifiOs => {
            let mut r = Json(json!({
                "unique_id": "a1b2c3d4-0000-4000-8000-000000000001",
                "first_name": "Osprey",
                "last_name": "",
                "full_name": "Osprey",
                "email": "",
                "email_status": "UNVERIFIED",
                "status": "ACTIVE",
                "isOwner": false,
                "isSuperAdmin": false,
                "deviceToken": "",
            }))
            .into_response();
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                format!("TOKEN={token}; path=/; samesite=strict; httponly")
                    .parse()
                    .unwrap(),
            );
            h.insert("x-csrf-token", csrf.parse().unwrap());
            r
        }
    }
}

async fn do_logout(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(token) = session_token(&s, &headers) {
        s.sessions.lock().unwrap().remove(&token);
        s.logouts.fetch_add(1, Ordering::SeqCst);
    }
    ok(json!([]))
}

fn session_token(s: &Shared, headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == s.flavour.cookie())
        .map(|(_, value)| value.to_owned())
}

/// The controller's refusal, unless the request has a live session (and, on UniFi OS, its
/// CSRF token on writes) and names a site the controller has.
fn refusal(s: &Shared, method: &Method, headers: &HeaderMap, site: &str) -> Option<Response> {
    let csrf = session_token(s, headers).and_then(|t| s.sessions.lock().unwrap().get(&t).cloned());
    let Some(csrf) = csrf else {
        s.rejected.fetch_add(1, Ordering::SeqCst);
        return Some(error(StatusCode::UNAUTHORIZED, "api.err.LoginRequired"));
    };
    if s.flavour == Flavour::UnifiOs && *method != Method::GET {
        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        if sent != Some(csrf.as_str()) {
            s.csrf_rejected.fetch_add(1, Ordering::SeqCst);
            return Some((StatusCode::FORBIDDEN, "").into_response());
        }
    }
    if site != "default" {
        return Some(error(StatusCode::BAD_REQUEST, "api.err.NoSiteContext"));
    }
    None
}

async fn stat_sta(
    State(s): State<Shared>,
    Path(site): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&s, &method, &headers, &site) {
        return r;
    }
    let blocked = s.blocked.lock().unwrap().clone();
    let clients: Vec<Value> = s
        .clients
        .lock()
        .unwrap()
        .iter()
        .filter(|c| !blocked.contains(c["mac"].as_str().unwrap_or_default()))
        .cloned()
        .collect();
    ok(Value::Array(clients))
}

fn is_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| {
            p.len() == 2
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

async fn stamgr(
    State(s): State<Shared>,
    Path(site): Path<String>,
    method: Method,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = refusal(&s, &method, &headers, &site) {
        return r;
    }
    let mac = body["mac"].as_str().unwrap_or_default().to_owned();
    if !is_mac(&mac) {
        return error(StatusCode::BAD_REQUEST, "api.err.InvalidPayload");
    }
    let blocked = match body["cmd"].as_str() {
        Some("block-sta") => {
            s.blocked.lock().unwrap().insert(mac.clone());
            true
        }
        Some("unblock-sta") => {
            s.blocked.lock().unwrap().remove(&mac);
            false
        }
        _ => return error(StatusCode::BAD_REQUEST, "api.err.UnknownCommand"),
    };
    let known = s
        .clients
        .lock()
        .unwrap()
        .iter()
        .find(|c| c["mac"] == mac.as_str())
        .cloned();
    let mut user = known.unwrap_or_else(|| json!({"_id": s.random(24), "site_id": SITE_ID, "mac": mac}));
    user["blocked"] = json!(blocked);
    ok(json!([user]))
}

async fn list_rules(
    State(s): State<Shared>,
    Path(site): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&s, &method, &headers, &site) {
        return r;
    }
    ok(Value::Array(s.rules.lock().unwrap().clone()))
}

async fn create_rule(
    State(s): State<Shared>,
    Path(site): Path<String>,
    method: Method,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = refusal(&s, &method, &headers, &site) {
        return r;
    }
    const RULESETS: [&str; 9] = [
        "WAN_IN",
        "WAN_OUT",
        "WAN_LOCAL",
        "LAN_IN",
        "LAN_OUT",
        "LAN_LOCAL",
        "GUEST_IN",
        "GUEST_OUT",
        "GUEST_LOCAL",
    ];
    let ruleset = body["ruleset"].as_str().unwrap_or_default();
    let index = body["rule_index"].as_i64().unwrap_or(-1);
    let valid = body["name"].as_str().is_some_and(|n| !n.is_empty())
        && RULESETS.contains(&ruleset)
        && ((2000..=2999).contains(&index) || index >= 4000)
        && matches!(body["action"].as_str(), Some("drop" | "reject" | "accept"))
        && body["enabled"].is_boolean()
        && body["protocol"].is_string()
        && ["src_mac_address", "src_address", "dst_address"]
            .iter()
            .all(|k| body[*k].is_string() || body[*k].is_null())
        && body["src_mac_address"]
            .as_str()
            .is_none_or(|m| m.is_empty() || is_mac(m));
    if !valid {
        return error(StatusCode::BAD_REQUEST, "api.err.InvalidPayload");
    }
    let mut rules = s.rules.lock().unwrap();
    if rules
        .iter()
        .any(|r| r["ruleset"] == ruleset && r["rule_index"].as_i64() == Some(index))
    {
        return error(StatusCode::BAD_REQUEST, "api.err.FirewallRuleIndexExisted");
    }
    let mut rule = body;
    rule["_id"] = json!(s.random(24));
    rule["site_id"] = json!(SITE_ID);
    rules.push(rule.clone());
    ok(json!([rule]))
}

async fn delete_rule(
    State(s): State<Shared>,
    Path((site, id)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&s, &method, &headers, &site) {
        return r;
    }
    let mut rules = s.rules.lock().unwrap();
    let before = rules.len();
    rules.retain(|r| r["_id"] != id.as_str());
    if rules.len() < before {
        return ok(json!([]));
    }
    match s.flavour {
        Flavour::Classic => error(StatusCode::BAD_REQUEST, "api.err.IdInvalid"),
        Flavour::UnifiOs => error(StatusCode::NOT_FOUND, "api.err.NotFound"),
    }
}
