//! A fake ServiceNow instance on loopback, its Table API for the incident table:
//! `POST /api/now/table/incident` (201), `GET` with `sysparm_query` (conditions with `=`,
//! `!=`, `>`, `>=`, `<`, `<=` joined by `^`, OR'ed queries after `^NQ`, `ORDERBY` and
//! `ORDERBYDESC`) and `sysparm_limit`, `GET`, `PATCH` and `PUT` of `/{sys_id}`, with basic
//! auth or an OAuth bearer token. Records carry raw string values as with
//! `sysparm_display_value=false`; `work_notes` is a journal field, read back empty and kept
//! aside. Failures are `{"error": {"message", "detail"}, "status": "failure"}`: 401 without
//! valid credentials, 404 for no such record, 429 with `Retry-After` when told to. The
//! clock is set by the test, so several changes can share one second.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Table {
    records: Vec<Map<String, Value>>,
    /// Work notes by sys_id.
    notes: HashMap<String, Vec<String>>,
    now: String,
}

#[derive(Clone)]
struct Shared {
    basic: (String, String),
    token: String,
    table: Arc<Mutex<Table>>,
    rate_limited: Arc<AtomicBool>,
    /// Answer 500, as an instance does when a business rule or the node fails.
    broken: Arc<AtomicBool>,
    /// How the last authorized request authenticated: "basic" or "bearer".
    last_auth: Arc<Mutex<String>>,
    last_query: Arc<Mutex<HashMap<String, String>>>,
}

pub struct FakeServicenow {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeServicenow {
    pub async fn start(user: &str, password: &str, token: &str) -> FakeServicenow {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            basic: (user.to_owned(), password.to_owned()),
            token: token.to_owned(),
            table: Arc::new(Mutex::new(Table {
                now: "2026-12-07 05:00:00".into(),
                ..Table::default()
            })),
            rate_limited: Arc::default(),
            broken: Arc::default(),
            last_auth: Arc::default(),
            last_query: Arc::default(),
        };
        let app = Router::new()
            .route("/api/now/table/incident", get(list).post(create))
            .route(
                "/api/now/table/incident/{sys_id}",
                get(read).patch(update).put(update),
            )
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeServicenow {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The instance's origin: `instance_url`, and what to grant.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stamp the changes from now on with this time (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub fn set_clock(&self, now: &str) {
        self.shared.table.lock().unwrap().now = now.to_owned();
    }

    /// The work notes added to `sys_id`.
    pub fn work_notes(&self, sys_id: &str) -> Vec<String> {
        let table = self.shared.table.lock().unwrap();
        table.notes.get(sys_id).cloned().unwrap_or_default()
    }

    pub fn incidents(&self) -> usize {
        self.shared.table.lock().unwrap().records.len()
    }

    pub fn rate_limited(&self, on: bool) {
        self.shared.rate_limited.store(on, Ordering::SeqCst);
    }

    /// Answer every authorized request with a 500 while `on`.
    pub fn broken(&self, on: bool) {
        self.shared.broken.store(on, Ordering::SeqCst);
    }

    pub fn last_auth(&self) -> String {
        self.shared.last_auth.lock().unwrap().clone()
    }

    pub fn last_query(&self) -> HashMap<String, String> {
        self.shared.last_query.lock().unwrap().clone()
    }
}

fn failure(status: StatusCode, message: &str, detail: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

/// The refusal for a request without valid credentials, or rate limited; None to go on.
fn gate(s: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Response> {
    *s.last_query.lock().unwrap() = query.clone();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scheme = if let Some(token) = auth.strip_prefix("Bearer ") {
        (token == s.token).then_some("bearer")
    } else if let Some(b64) = auth.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default();
        let expected = format!("{}:{}", s.basic.0, s.basic.1);
        (decoded == expected.as_bytes()).then_some("basic")
    } else {
        None
    };
    let Some(scheme) = scheme else {
        return Some(failure(
            StatusCode::UNAUTHORIZED,
            "User Not Authenticated",
            "Required to provide Auth information",
        ));
    };
    *s.last_auth.lock().unwrap() = scheme.to_owned();
    if s.rate_limited.load(Ordering::SeqCst) {
        let mut r = failure(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded",
            "The rate limit rule for the incident table allows 60 requests per hour",
        );
        r.headers_mut().insert("retry-after", "9".parse().unwrap());
        return Some(r);
    }
    if s.broken.load(Ordering::SeqCst) {
        return Some(failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "An error occurred while processing the request",
        ));
    }
    None
}

fn found(result: Value) -> Response {
    Json(json!({ "result": result })).into_response()
}

fn no_record() -> Response {
    failure(
        StatusCode::NOT_FOUND,
        "No Record found",
        "Record doesn't exist or ACL restricts the record retrieval",
    )
}

/// Set `fields` on `record` as ServiceNow stores them: strings; work notes go to the journal.
fn apply(record: &mut Map<String, Value>, notes: &mut Vec<String>, fields: Map<String, Value>, now: &str) {
    for (k, v) in fields {
        if k.starts_with("sys_") || k == "number" {
            continue;
        }
        let v = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        if k == "work_notes" || k == "comments" {
            notes.push(v);
            continue;
        }
        record.insert(k, Value::String(v));
    }
    let mods: u64 = record["sys_mod_count"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    record.insert("sys_mod_count".into(), json!((mods + 1).to_string()));
    record.insert("sys_updated_on".into(), json!(now));
    let level = |k: &str| {
        record
            .get(k)
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(3)
    };
    let priority = (level("urgency") + level("impact")).saturating_sub(1).clamp(1, 5);
    record.insert("priority".into(), json!(priority.to_string()));
}

async fn create(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = gate(&s, &headers, &q) {
        return refused;
    }
    let Value::Object(fields) = body else {
        return failure(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "The payload is not valid JSON.",
        );
    };
    let mut table = s.table.lock().unwrap();
    let n = table.records.len() as u64 + 1;
    // sys_ids are not in creation order.
    let sys_id = format!("{:08x}{:024x}", (n.wrapping_mul(2_654_435_761)) as u32, n);
    let now = table.now.clone();
    let mut record = Map::new();
    for (k, v) in [
        ("sys_id", sys_id.as_str()),
        ("number", &format!("INC{:07}", 10_000 + n)),
        ("state", "1"),
        ("active", "true"),
        ("urgency", "3"),
        ("impact", "3"),
        ("short_description", ""),
        ("description", ""),
        ("category", "inquiry"),
        ("caller_id", ""),
        ("assignment_group", ""),
        ("work_notes", ""),
        ("opened_at", &now),
        ("sys_created_on", &now),
        ("sys_created_by", "osprey.integration"),
        ("sys_updated_by", "osprey.integration"),
        ("sys_mod_count", "-1"),
    ] {
        record.insert(k.into(), json!(v));
    }
    let mut notes = Vec::new();
    apply(&mut record, &mut notes, fields, &now);
    table.notes.insert(sys_id, notes);
    table.records.push(record.clone());
    (StatusCode::CREATED, Json(json!({ "result": record }))).into_response()
}

async fn read(
    State(s): State<Shared>,
    Path(sys_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = gate(&s, &headers, &q) {
        return refused;
    }
    let table = s.table.lock().unwrap();
    match table.records.iter().find(|r| r["sys_id"] == sys_id.as_str()) {
        Some(r) => found(Value::Object(r.clone())),
        None => no_record(),
    }
}

async fn update(
    State(s): State<Shared>,
    Path(sys_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refused) = gate(&s, &headers, &q) {
        return refused;
    }
    let Value::Object(fields) = body else {
        return failure(
            StatusCode::BAD_REQUEST,
            "Exception while reading request",
            "The payload is not valid JSON.",
        );
    };
    let mut guard = s.table.lock().unwrap();
    let table = &mut *guard;
    let Some(record) = table.records.iter_mut().find(|r| r["sys_id"] == sys_id.as_str()) else {
        return no_record();
    };
    let notes = table.notes.entry(sys_id).or_default();
    apply(record, notes, fields, &table.now);
    found(Value::Object(record.clone()))
}

/// One condition of an encoded query: field, operator, value.
fn condition(term: &str) -> Option<(&str, &str, &str)> {
    let end = term.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))?;
    let (field, rest) = term.split_at(end);
    let op = [">=", "<=", "!=", ">", "<", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))?;
    Some((field, op, &rest[op.len()..]))
}

fn matches(record: &Map<String, Value>, (field, op, value): (&str, &str, &str)) -> bool {
    let have = record.get(field).and_then(Value::as_str).unwrap_or_default();
    match op {
        "=" => have == value,
        "!=" => have != value,
        ">" => have > value,
        ">=" => have >= value,
        "<" => have < value,
        _ => have <= value,
    }
}

async fn list(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = gate(&s, &headers, &q) {
        return refused;
    }
    let query = q.get("sysparm_query").cloned().unwrap_or_default();
    let limit: usize = q
        .get("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000);
    let mut order: Vec<(String, bool)> = Vec::new();
    let mut groups: Vec<Vec<(&str, &str, &str)>> = Vec::new();
    for group in query.split("^NQ") {
        let mut conditions = Vec::new();
        for term in group.split('^').filter(|t| !t.is_empty()) {
            if let Some(field) = term.strip_prefix("ORDERBYDESC") {
                order.push((field.to_owned(), true));
            } else if let Some(field) = term.strip_prefix("ORDERBY") {
                order.push((field.to_owned(), false));
            } else {
                match condition(term) {
                    Some(c) => conditions.push(c),
                    None => {
                        return failure(
                            StatusCode::BAD_REQUEST,
                            "Invalid query",
                            &format!("cannot read '{term}'"),
                        );
                    }
                }
            }
        }
        groups.push(conditions);
    }
    let table = s.table.lock().unwrap();
    let mut hits: Vec<&Map<String, Value>> = table
        .records
        .iter()
        .filter(|r| groups.iter().any(|g| g.iter().all(|c| matches(r, *c))))
        .collect();
    hits.sort_by(|a, b| {
        order
            .iter()
            .fold(std::cmp::Ordering::Equal, |acc, (field, desc)| {
                let key = |r: &Map<String, Value>| {
                    r.get(field)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let o = key(a).cmp(&key(b));
                acc.then(if *desc { o.reverse() } else { o })
            })
    });
    let page: Vec<Value> = hits
        .into_iter()
        .take(limit)
        .map(|r| Value::Object(r.clone()))
        .collect();
    found(Value::Array(page))
}
