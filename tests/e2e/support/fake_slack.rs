//! A fake Slack Web API on loopback, following the real one: `POST /api/chat.postMessage`,
//! `/api/chat.update`, `/api/chat.postEphemeral` and `/api/conversations.open` with JSON
//! bodies, `GET /api/users.lookupByEmail?email=` and `/api/users.info?user=`, a bot token as `Authorization: Bearer`, HTTP 200 with
//! `{"ok": false, "error": CODE}` for every refusal (`not_authed`, `invalid_auth`,
//! `channel_not_found`, `message_not_found`, `user_not_found`, `users_not_found`, `no_text`,
//! `invalid_blocks` with `response_metadata.messages`), HTTP 503 `service_unavailable` in an
//! outage, and HTTP 429 with `Retry-After` and
//! `{"ok": false, "error": "ratelimited"}` when a method's tier is spent. It records every
//! message posted, with its blocks, as Slack stores it, and every ephemeral message shown.
//!
//! It also plays Slack's side of interactivity: [`FakeSlack::click`] builds the request
//! Slack sends to an app's Request URL when a member clicks a button of a recorded message
//! (a form-encoded `block_actions` payload, signed with the app's signing secret as Slack
//! signs it: `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`).

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const SOC_CHANNEL: &str = "C0SOC00001";
pub const SPENGLER: &str = "W012A3CDE";
pub const SPENGLER_EMAIL: &str = "spengler@ghostbusters.example";
/// A second member of the workspace.
pub const VENKMAN: &str = "U0VENKMAN1";
pub const VENKMAN_EMAIL: &str = "venkman@ghostbusters.example";

/// An ephemeral message as the fake keeps it (Slack does not: only its recipient saw it).
#[derive(Clone, Debug)]
pub struct Ephemeral {
    pub channel: String,
    pub user: String,
    pub text: String,
}

/// A request as Slack sends it to an app's interactivity Request URL.
#[derive(Clone, Debug)]
pub struct Click {
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

/// A message as the fake keeps it.
#[derive(Clone, Debug)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
    pub text: String,
    pub blocks: Value,
    pub edited: bool,
}

#[derive(Default)]
struct Workspace {
    messages: Vec<Posted>,
    ephemerals: Vec<Ephemeral>,
    /// `Some(seconds)`: answer every method 429 with this Retry-After.
    ratelimited: Option<u64>,
    /// `Some(seconds)`: answer every method 503 `service_unavailable` with this Retry-After.
    down: Option<u64>,
    /// Direct message channels opened, by user.
    dms: HashMap<String, String>,
}

#[derive(Clone)]
struct Shared {
    token: Arc<String>,
    requests: Arc<AtomicUsize>,
    ws: Arc<Mutex<Workspace>>,
}

pub struct FakeSlack {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeSlack {
    pub async fn start(bot_token: &str) -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            token: Arc::new(bot_token.to_owned()),
            requests: Arc::default(),
            ws: Arc::default(),
        };
        let app = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update))
            .route("/api/conversations.open", post(open))
            .route("/api/users.lookupByEmail", get(lookup))
            .route("/api/chat.postEphemeral", post(post_ephemeral))
            .route("/api/users.info", get(info))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeSlack {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The origin, for the grant.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What to set as `base_url`: the real API's path on the fake.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Posted> {
        self.shared.ws.lock().unwrap().messages.clone()
    }

    pub fn ephemerals(&self) -> Vec<Ephemeral> {
        self.shared.ws.lock().unwrap().ephemerals.clone()
    }

    /// What Slack sends when `user` clicks the button `action_id` of the recorded message
    /// `ts`, at Unix second `timestamp`, signed with `signing_secret`.
    pub fn click(
        &self,
        signing_secret: &str,
        user: &str,
        ts: &str,
        action_id: &str,
        timestamp: i64,
    ) -> Click {
        let ws = self.shared.ws.lock().unwrap();
        let m = ws
            .messages
            .iter()
            .find(|m| m.ts == ts)
            .expect("a recorded message");
        let actions = m
            .blocks
            .as_array()
            .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
            .expect("the message has buttons");
        let button = actions["elements"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action_id"] == action_id)
            .expect("a button with that action_id");
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user.to_lowercase(), "name": user.to_lowercase(), "team_id": "T012AB3C4"},
            "api_app_id": "A0OSPREY01",
            "token": "verification-token-deprecated",
            "container": {"type": "message", "message_ts": m.ts, "channel_id": m.channel, "is_ephemeral": false},
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "team": {"id": "T012AB3C4", "domain": "ghostbusters"},
            "channel": {"id": m.channel, "name": "soc"},
            "message": {"type": "message", "ts": m.ts, "text": m.text, "blocks": m.blocks},
            "response_url": "https://hooks.slack.com/actions/T012AB3C4/1/abc",
            "actions": [{
                "type": "button", "block_id": actions["block_id"], "action_id": action_id,
                "text": button["text"], "value": button["value"], "action_ts": format!("{timestamp}.000100"),
            }],
        });
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        sign_click(signing_secret, timestamp, body)
    }

    pub fn rate_limit(&self, retry_after: Option<u64>) {
        self.shared.ws.lock().unwrap().ratelimited = retry_after;
    }

    pub fn outage(&self, retry_after: Option<u64>) {
        self.shared.ws.lock().unwrap().down = retry_after;
    }
}

fn refuse(error: &str) -> Response {
    Json(json!({"ok": false, "error": error})).into_response()
}

/// The checks every method passes: counting, the rate tier, the token. `Err` is the answer.
fn admit(s: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    s.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(wait) = s.ws.lock().unwrap().down {
        return Err(Box::new(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", wait.to_string())],
                Json(json!({"ok": false, "error": "service_unavailable"})),
            )
                .into_response(),
        ));
    }
    if let Some(wait) = s.ws.lock().unwrap().ratelimited {
        return Err(Box::new(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", wait.to_string())],
                Json(json!({"ok": false, "error": "ratelimited"})),
            )
                .into_response(),
        ));
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => Err(Box::new(refuse("not_authed"))),
        Some(t) if t != s.token.as_str() => Err(Box::new(refuse("invalid_auth"))),
        Some(_) => Ok(()),
    }
}

/// A JSON body, which Slack reads only with a JSON content type.
fn body_of(headers: &HeaderMap, body: &Bytes) -> Result<Value, Box<Response>> {
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return Err(Box::new(refuse("invalid_arguments")));
    }
    serde_json::from_slice(body).map_err(|_| Box::new(refuse("invalid_json")))
}

/// Slack's check of blocks, for the fields buttons use.
fn check_blocks(blocks: &Value) -> Result<(), Box<Response>> {
    let Some(list) = blocks.as_array() else {
        return Err(Box::new(refuse("invalid_blocks_format")));
    };
    for (i, b) in list.iter().enumerate() {
        let bad = |why: &str| {
            Json(
                json!({"ok": false, "error": "invalid_blocks", "response_metadata": {
                "messages": [format!("[ERROR] {why} [json-pointer:/blocks/{i}]")]}}),
            )
            .into_response()
        };
        match b["type"].as_str() {
            None => return Err(Box::new(bad("missing required field: type"))),
            Some("actions") => {
                for e in b["elements"].as_array().into_iter().flatten() {
                    if e["type"] != "button"
                        || e["text"]["type"] != "plain_text"
                        || !e["action_id"].is_string()
                    {
                        return Err(Box::new(bad("invalid button element")));
                    }
                }
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn channel_of(ws: &Workspace, channel: &str) -> Option<String> {
    match channel {
        SOC_CHANNEL | "#soc" | "soc" => Some(SOC_CHANNEL.to_owned()),
        c if ws.dms.values().any(|d| d == c) => Some(c.to_owned()),
        _ => None,
    }
}

async fn post_message(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let m = match admit(&s, &headers).and_then(|()| body_of(&headers, &body)) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let text = m["text"].as_str().unwrap_or_default().to_owned();
    let blocks = m.get("blocks").cloned().unwrap_or(json!([]));
    if let Err(r) = check_blocks(&blocks) {
        return *r;
    }
    let mut ws = s.ws.lock().unwrap();
    let Some(channel) = channel_of(&ws, m["channel"].as_str().unwrap_or_default()) else {
        return refuse("channel_not_found");
    };
    if text.is_empty() && blocks.as_array().is_none_or(Vec::is_empty) {
        return refuse("no_text");
    }
    let ts = format!("1765087200.{:06}", ws.messages.len() + 1);
    ws.messages.push(Posted {
        channel: channel.clone(),
        ts: ts.clone(),
        text: text.clone(),
        blocks: blocks.clone(),
        edited: false,
    });
    Json(json!({"ok": true, "channel": channel, "ts": ts, "message": {
        "type": "message", "subtype": "bot_message", "text": text, "ts": ts, "bot_id": "B0OSPREY01", "blocks": blocks}}))
    .into_response()
}

async fn update(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let m = match admit(&s, &headers).and_then(|()| body_of(&headers, &body)) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let blocks = m.get("blocks").cloned().unwrap_or(json!([]));
    if let Err(r) = check_blocks(&blocks) {
        return *r;
    }
    let mut ws = s.ws.lock().unwrap();
    let Some(channel) = channel_of(&ws, m["channel"].as_str().unwrap_or_default()) else {
        return refuse("channel_not_found");
    };
    let ts = m["ts"].as_str().unwrap_or_default().to_owned();
    let Some(msg) = ws
        .messages
        .iter_mut()
        .find(|p| p.channel == channel && p.ts == ts)
    else {
        return refuse("message_not_found");
    };
    msg.text = m["text"].as_str().unwrap_or_default().to_owned();
    msg.blocks = blocks;
    msg.edited = true;
    let text = msg.text.clone();
    Json(json!({"ok": true, "channel": channel, "ts": ts, "text": text})).into_response()
}

async fn open(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let m = match admit(&s, &headers).and_then(|()| body_of(&headers, &body)) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let user = m["users"].as_str().unwrap_or_default();
    if user != SPENGLER {
        return refuse("user_not_found");
    }
    let mut ws = s.ws.lock().unwrap();
    let id = ws
        .dms
        .entry(user.to_owned())
        .or_insert_with(|| format!("D0{}", &user[1..]))
        .clone();
    Json(json!({"ok": true, "channel": {"id": id}})).into_response()
}

async fn lookup(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&s, &headers) {
        return *r;
    }
    if q.get("email").map(String::as_str) != Some(SPENGLER_EMAIL) {
        return refuse("users_not_found");
    }
    Json(json!({"ok": true, "user": {
        "id": SPENGLER, "team_id": "T012AB3C4", "name": "spengler", "deleted": false, "color": "9f69e7",
        "real_name": "Egon Spengler", "tz": "America/Los_Angeles", "tz_label": "Pacific Standard Time",
        "tz_offset": -28800, "is_admin": false, "is_owner": false, "is_bot": false, "updated": 1502138686,
        "is_app_user": false, "has_2fa": false,
        "profile": {"real_name": "Egon Spengler", "display_name": "spengler", "email": SPENGLER_EMAIL,
                    "team": "T012AB3C4", "status_text": "Print is dead"}
    }}))
    .into_response()
}

/// `body` signed as Slack signs an interactivity request at Unix second `timestamp`.
pub fn sign_click(signing_secret: &str, timestamp: i64, body: String) -> Click {
    use hmac::{Hmac, KeyInit as _, Mac as _};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing_secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Click {
        timestamp: timestamp.to_string(),
        signature: format!("v0={hex}"),
        body,
    }
}

async fn post_ephemeral(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let m = match admit(&s, &headers).and_then(|()| body_of(&headers, &body)) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let mut ws = s.ws.lock().unwrap();
    let Some(channel) = channel_of(&ws, m["channel"].as_str().unwrap_or_default()) else {
        return refuse("channel_not_found");
    };
    let user = m["user"].as_str().unwrap_or_default().to_owned();
    if user != SPENGLER && user != VENKMAN {
        return refuse("user_not_in_channel");
    }
    let text = m["text"].as_str().unwrap_or_default().to_owned();
    if text.is_empty() {
        return refuse("no_text");
    }
    ws.ephemerals.push(Ephemeral { channel, user, text });
    let message_ts = format!("1765087300.{:06}", ws.ephemerals.len());
    Json(json!({"ok": true, "message_ts": message_ts})).into_response()
}

async fn info(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = admit(&s, &headers) {
        return *r;
    }
    let (id, name, email) = match q.get("user").map(String::as_str) {
        Some(SPENGLER) => (SPENGLER, "spengler", SPENGLER_EMAIL),
        Some(VENKMAN) => (VENKMAN, "venkman", VENKMAN_EMAIL),
        _ => return refuse("user_not_found"),
    };
    Json(json!({"ok": true, "user": {
        "id": id, "team_id": "T012AB3C4", "name": name, "deleted": false, "is_bot": false,
        "profile": {"display_name": name, "email": email, "team": "T012AB3C4"}
    }}))
    .into_response()
}
