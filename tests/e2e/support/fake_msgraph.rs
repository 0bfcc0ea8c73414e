//! A fake Microsoft identity platform and Microsoft Graph on one loopback server, following
//! the real APIs: the client-credentials grant (`POST /{tenant}/oauth2/v2.0/token`, a form
//! body, `{token_type, expires_in, ext_expires_in, access_token}`, and the OAuth2 errors
//! `invalid_client` (AADSTS7000215, 401), `unauthorized_client` (AADSTS700016),
//! `invalid_request` (AADSTS90002, unknown tenant) and `invalid_scope`), and Graph's v1.0
//! `users/{id|upn}`, `users/{id}/manager` and `groups/{id}/members` with `$select`, `$top`
//! and `@odata.nextLink` paging, bearer tokens it issued (401 `InvalidAuthenticationToken`
//! once it expires them), its `{"error": {"code", "message", "innerError"}}` body, and 429 /
//! 503 with `Retry-After` when throttled or down.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const ADELE: &str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
pub const MIRIAM: &str = "08fa38e4-cbfa-4488-94ed-c834da6539df";
pub const SOC_GROUP: &str = "02bd9fd6-8f93-4758-87c3-1fb73740a315";

#[derive(Default)]
struct Knobs {
    /// Tokens issued and not expired.
    tokens: HashSet<String>,
    /// `Some(seconds)`: answer Graph requests 429 with this Retry-After.
    throttled: Option<u64>,
    /// `Some(seconds)`: answer Graph requests 503 with this Retry-After.
    down: Option<u64>,
    /// Graph's page size cap (it may return fewer than `$top`).
    page_size: usize,
    /// The query of the last Graph request.
    last_query: HashMap<String, String>,
}

#[derive(Clone)]
struct Shared {
    client_secret: Arc<String>,
    token_requests: Arc<AtomicUsize>,
    graph_requests: Arc<AtomicUsize>,
    state: Arc<Mutex<Knobs>>,
    users: Arc<Vec<Value>>,
    origin: String,
}

pub struct FakeMsGraph {
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn directory() -> Vec<Value> {
    let user = |id: &str, name: &str, upn: &str, title: &str, dept: &str, manager: Option<&str>| {
        json!({
            "id": id, "displayName": name, "givenName": name.split(' ').next(),
            "surname": name.split(' ').nth(1), "userPrincipalName": upn, "mail": upn,
            "jobTitle": title, "department": dept, "officeLocation": "18/2111",
            "mobilePhone": null, "businessPhones": ["+1 425 555 0109"], "accountEnabled": true,
            "employeeId": null, "companyName": "Contoso", "userType": "Member",
            "preferredLanguage": "en-US", "_manager": manager,
        })
    };
    vec![
        user(
            ADELE,
            "Adele Vance",
            "AdeleV@contoso.example",
            "Retail Manager",
            "Retail",
            Some(MIRIAM),
        ),
        user(
            MIRIAM,
            "Miriam Graham",
            "MiriamG@contoso.example",
            "Director",
            "Sales & Marketing",
            None,
        ),
        user(
            "e3d0513b-449e-4198-ba6f-bd97ae7cae85",
            "Grady Archie",
            "GradyA@contoso.example",
            "Designer",
            "R&D",
            Some(MIRIAM),
        ),
        user(
            "4782e723-f4f4-4af3-a76e-25e3bab0d896",
            "Lee Gu",
            "LeeG@contoso.example",
            "Director",
            "Manufacturing",
            Some(MIRIAM),
        ),
    ]
}

impl FakeMsGraph {
    pub async fn start(client_secret: &str) -> FakeMsGraph {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            client_secret: Arc::new(client_secret.to_owned()),
            token_requests: Arc::default(),
            graph_requests: Arc::default(),
            state: Arc::new(Mutex::new(Knobs {
                page_size: 100,
                ..Knobs::default()
            })),
            users: Arc::new(directory()),
            origin: format!("http://{addr}"),
        };
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users/{id}", get(user))
            .route("/v1.0/users/{id}/manager", get(manager))
            .route("/v1.0/groups/{id}/members", get(members))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeMsGraph { shared, _stop: stop }
    }

    /// The origin, for `login_base`, `graph_base` and the grant.
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// Token requests that arrived (good or bad).
    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    /// Graph requests that arrived.
    pub fn graph_requests(&self) -> usize {
        self.shared.graph_requests.load(Ordering::SeqCst)
    }

    /// Expire every token issued so far: Graph answers 401 to them.
    pub fn expire_tokens(&self) {
        self.shared.state.lock().unwrap().tokens.clear();
    }

    pub fn throttle(&self, retry_after: Option<u64>) {
        self.shared.state.lock().unwrap().throttled = retry_after;
    }

    pub fn outage(&self, retry_after: Option<u64>) {
        self.shared.state.lock().unwrap().down = retry_after;
    }

    pub fn page_size(&self, n: usize) {
        self.shared.state.lock().unwrap().page_size = n;
    }

    pub fn last_query(&self) -> HashMap<String, String> {
        self.shared.state.lock().unwrap().last_query.clone()
    }
}

fn oauth_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    (
        status,
        Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2026-12-07 06:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-12-07 06:00:00Z",
            "trace_id": "0000aaaa-11bb-cccc-dd22-eeeeee333333",
            "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
        })),
    )
        .into_response()
}

async fn token(
    State(s): State<Shared>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let n = s.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    if tenant != TENANT {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            "Application was not found in the directory.",
        );
    }
    if form.get("client_secret") != Some(&*s.client_secret) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid.",
        );
    }
    let access_token = format!("eyJ0eXAiOiJKV1QiLCJub25jZSI6In{n}.fake.{n}");
    s.state.lock().unwrap().tokens.insert(access_token.clone());
    Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access_token}))
        .into_response()
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message, "innerError": {
            "date": "2026-12-07T06:00:00", "request-id": "b5a6c7d8-0000-4000-8000-000000000001",
            "client-request-id": "b5a6c7d8-0000-4000-8000-000000000001"}}})),
    )
        .into_response()
}

/// The checks every Graph request passes: counting, outages, the bearer token, throttling.
fn admit(s: &Shared, headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Response> {
    s.graph_requests.fetch_add(1, Ordering::SeqCst);
    let mut st = s.state.lock().unwrap();
    st.last_query = query.clone();
    if let Some(wait) = st.down {
        return Some(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", wait.to_string())],
                "Service Unavailable",
            )
                .into_response(),
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match bearer {
        None => {
            return Some(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            ));
        }
        Some(t) if !st.tokens.contains(t) => {
            return Some(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            ));
        }
        Some(_) => {}
    }
    if let Some(wait) = st.throttled {
        let mut r = graph_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests. Please retry after the time given in the Retry-After header.",
        );
        r.headers_mut()
            .insert("retry-after", wait.to_string().parse().unwrap());
        return Some(r);
    }
    None
}

fn find<'a>(s: &'a Shared, id: &str) -> Option<&'a Value> {
    s.users.iter().find(|u| {
        u["id"].as_str() == Some(id)
            || u["userPrincipalName"]
                .as_str()
                .is_some_and(|upn| upn.eq_ignore_ascii_case(id))
    })
}

const DEFAULT_FIELDS: [&str; 10] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// A user as Graph shows it: the `$select`ed fields (and `id`), or its default set.
fn shown(user: &Value, query: &HashMap<String, String>) -> Map<String, Value> {
    let selected: Vec<String> = match query.get("$select") {
        Some(list) => list.split(',').map(|f| f.trim().to_owned()).collect(),
        None => DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
    };
    let mut out = Map::new();
    out.insert("id".into(), user["id"].clone());
    for f in selected {
        if let Some(v) = user.get(&f).filter(|_| !f.starts_with('_')) {
            out.insert(f, v.clone());
        }
    }
    out
}

fn missing(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

async fn user(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = admit(&s, &headers, &q) {
        return r;
    }
    match find(&s, &id) {
        None => missing(&id),
        Some(u) => {
            let mut out = shown(u, &q);
            out.insert(
                "@odata.context".into(),
                json!("https://graph.microsoft.com/v1.0/$metadata#users/$entity"),
            );
            Json(Value::Object(out)).into_response()
        }
    }
}

async fn manager(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = admit(&s, &headers, &q) {
        return r;
    }
    let Some(u) = find(&s, &id) else {
        return missing(&id);
    };
    match u["_manager"].as_str().and_then(|m| find(&s, m)) {
        None => missing("manager"),
        Some(m) => {
            let mut out = shown(m, &q);
            out.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            Json(Value::Object(out)).into_response()
        }
    }
}

async fn members(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = admit(&s, &headers, &q) {
        return r;
    }
    if id != SOC_GROUP {
        return missing(&id);
    }
    let mut all: Vec<Value> = s
        .users
        .iter()
        .map(|u| {
            let mut m = shown(u, &q);
            m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            Value::Object(m)
        })
        .collect();
    all.push(json!({"@odata.type": "#microsoft.graph.group", "id": "45b7d2e7-b882-4a80-ba97-10b7a63b8fa4", "displayName": "SOC Leads"}));
    let top: usize = q.get("$top").and_then(|t| t.parse().ok()).unwrap_or(100);
    let size = top.min(s.state.lock().unwrap().page_size);
    let skip: usize = q.get("$skiptoken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = all.iter().skip(skip).take(size).cloned().collect();
    let mut out = json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
        "value": page,
    });
    if skip + size < all.len() {
        let select = q
            .get("$select")
            .map(|s| format!("$select={s}&"))
            .unwrap_or_default();
        out["@odata.nextLink"] = json!(format!(
            "{}/v1.0/groups/{id}/members?{select}$top={top}&$skiptoken={}",
            s.origin,
            skip + size
        ));
    }
    Json(out).into_response()
}
