//! The REST API for incidents, tasks and pre-processing rules, JSON in and out, behind API
//! tokens: scope `incidents` for `/api/v1/incidents` and `/api/v1/tasks`, scope `rules` for
//! `/api/v1/rules`. A token that acts for a user (`osprey token create --user`) is audited as
//! that user (`user:NAME`) and may complete the tasks of that user and of their roles; any
//! other token is audited as itself (`token:NAME`) and completes no task.
//!
//! This file only reads requests and writes answers: requests are read by the same
//! `cases::` and `preprocess::` functions the CLI and playbooks use, and every change goes
//! through a store method that audits it. Unknown fields in a body or the query are refused
//! with 400 naming them; a body over 1 MiB is refused with 413; errors are problem
//! documents without internals (the details go to the log).

use super::problem;
use crate::app::App;
use crate::auth::{self, AuthError, SCOPE_INCIDENTS, SCOPE_RULES};
use crate::cases::{IncidentChanges, IncidentSpec, TaskSpec};
use crate::preprocess::RuleSpec;
use crate::store::StoreError;
use crate::store::audit::Actor;
use crate::store::tasks::TaskError;
use crate::store::tokens::TokenRecord;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest request body read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Items in a list when the request does not say, and the most it may ask for.
const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;
/// Alerts `POST /api/v1/rules/test` tests against by default, and at most.
const DEFAULT_TEST_ALERTS: i64 = 1000;
const MAX_TEST_ALERTS: i64 = 50_000;

type Answer = Result<Response, Problem>;

/// A refusal or a failure, answered as a problem document (`super::problem`).
#[derive(Debug)]
struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: String,
    extra: Extra,
}

/// A header some problems carry.
#[derive(Debug, Clone, Copy)]
enum Extra {
    None,
    /// `Retry-After: 1`.
    RetryAfter,
    /// `WWW-Authenticate: Bearer`.
    Bearer,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: impl Into<String>) -> Problem {
        Problem {
            status,
            kind,
            title: title.into(),
            extra: Extra::None,
        }
    }

    fn with(mut self, extra: Extra) -> Problem {
        self.extra = extra;
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut r = problem(self.status, self.kind, &self.title);
        let (name, value) = match self.extra {
            Extra::None => return r,
            Extra::RetryAfter => (header::RETRY_AFTER, "1"),
            Extra::Bearer => (header::WWW_AUTHENTICATE, "Bearer"),
        };
        r.headers_mut().insert(name, HeaderValue::from_static(value));
        r
    }
}

/// The API routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(list_incidents).post(create_incident))
        .route(
            "/api/v1/incidents/{id}",
            get(show_incident).patch(update_incident),
        )
        .route("/api/v1/incidents/{id}/close", post(close_incident))
        .route("/api/v1/incidents/{id}/reopen", post(reopen_incident))
        .route("/api/v1/incidents/{id}/notes", post(add_note))
        .route("/api/v1/incidents/{id}/related", post(relate_incident))
        .route("/api/v1/incidents/{id}/sla/pause", post(pause_sla))
        .route("/api/v1/incidents/{id}/sla/resume", post(resume_sla))
        .route("/api/v1/tasks", get(list_tasks).post(create_task))
        .route("/api/v1/tasks/{id}", get(show_task))
        .route("/api/v1/tasks/{id}/complete", post(complete_task))
        .route("/api/v1/tasks/{id}/delegate", post(delegate_task))
        .route("/api/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/api/v1/indicators", get(list_indicators))
        .route(
            "/api/v1/indicators/{kind}/{*value}",
            get(show_indicator).put(set_indicator),
        )
        .route("/api/v1/rules", get(list_rules))
        // `test` is also a rule name like any other: the static route takes its PUT and DELETE.
        .route(
            "/api/v1/rules/test",
            post(test_rules).put(put_rule_test).delete(delete_rule_test),
        )
        .route(
            "/api/v1/rules/{name}",
            axum::routing::put(put_rule).delete(delete_rule),
        )
        // Bodies are read with our own limit, which answers 413 in our words.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

// ---- Answers ----

fn ok(value: impl serde::Serialize) -> Answer {
    Ok(Json(value).into_response())
}

/// 201 with `Location: location` and `value`.
fn created(location: &str, value: impl serde::Serialize) -> Answer {
    let mut r = (StatusCode::CREATED, Json(value)).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

fn bad_request(message: &str) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid", message)
}

fn forbidden(message: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "forbidden", message)
}

fn conflict(message: &str) -> Problem {
    Problem::new(StatusCode::CONFLICT, "conflict", message)
}

fn no_incident(id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", format!("no incident '{id}'"))
}

/// A store error: a refusal (`Invalid`, written for users) is a 400 with its message; a
/// database that cannot be reached is a 503 to retry; anything else a 500. Only refusals
/// say more; the rest is logged.
fn store_failed(e: &StoreError) -> Problem {
    match e {
        StoreError::Invalid(message) => bad_request(message),
        StoreError::Db(_) | StoreError::Writer(_) | StoreError::Connect { .. } => {
            tracing::error!(error = %e, "API request failed in the store");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store is unavailable; nothing was changed; retry shortly",
            )
            .with(Extra::RetryAfter)
        }
        _ => {
            tracing::error!(error = %e, "API request failed in the store");
            internal()
        }
    }
}

fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed to answer; the details are in its log",
    )
}

fn task_failed(e: TaskError) -> Problem {
    let message = e.to_string();
    match e {
        TaskError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", message),
        TaskError::NotAllowed { .. } | TaskError::Disabled { .. } => forbidden(&message),
        TaskError::NotOpen { .. } => conflict(&message),
        TaskError::NoUser(_) | TaskError::Invalid(_) => bad_request(&message),
        TaskError::Store(e) => store_failed(&e),
    }
}

// ---- Reading requests ----

/// Who is calling: the token, checked for `scope`, and the actor its changes are audited as.
struct Caller {
    token: TokenRecord,
    actor: Actor,
}

async fn caller(app: &App, headers: &HeaderMap, scope: &'static str) -> Result<Caller, Problem> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match auth::authenticate(&app.store, &app.tokens, authorization, scope).await {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, scope, "API request refused");
            return Err(match e {
                AuthError::Forbidden(_) => forbidden(&e.to_string()),
                AuthError::Missing | AuthError::Invalid => {
                    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()).with(Extra::Bearer)
                }
            });
        }
        Err(e) => return Err(store_failed(&e)),
    };
    let actor = match &token.user {
        None => Actor::token(&token.name),
        Some(user) => match app.store.user(user).await {
            Ok(Some(u)) if u.disabled_at.is_none() => Actor::user(user),
            Ok(_) => {
                tracing::warn!(token = %token.name, user, "API request refused: the token's user is disabled or gone");
                return Err(forbidden(&format!(
                    "the API token acts for user '{user}', who is disabled or no longer exists"
                )));
            }
            Err(e) => return Err(store_failed(&e)),
        },
    };
    Ok(Caller { token, actor })
}

/// The body as JSON (an empty body is `{}`), at most [`MAX_BODY_BYTES`].
async fn body_json(body: Body) -> Result<Value, Problem> {
    let bytes = match http_body_util::Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes; nothing was changed"),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading an API request body failed");
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "the request body could not be read",
            ));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// The body as a `T` (`what` names it in errors, with the field that was wrong).
async fn body_as<T: DeserializeOwned>(body: Body, what: &str) -> Result<T, Problem> {
    let value = body_json(body).await?;
    crate::cases::parse(what, &value).map_err(|e| bad_request(&e))
}

/// The query parameters, refusing any not in `known`.
fn query(params: BTreeMap<String, String>, known: &[&str]) -> Result<BTreeMap<String, String>, Problem> {
    if let Some(unknown) = params.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad_request(&format!(
            "unknown query parameter '{unknown}'; the parameters are: {}",
            known.join(", ")
        )));
    }
    Ok(params)
}

/// `limit`: a whole number from 1 to `max`, `default` if absent.
fn limit(params: &BTreeMap<String, String>, default: i64, max: i64) -> Result<i64, Problem> {
    match params.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_request(&format!(
                "limit '{text}' must be a whole number from 1 to {max}"
            ))),
        },
    }
}

/// A filter parameter; empty is absent.
fn param<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str).filter(|s| !s.is_empty())
}

/// Text a person must give (a reason, a note).
fn required_text<'a>(what: &str, text: &'a str) -> Result<&'a str, Problem> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad_request(&format!("{what} cannot be empty")));
    }
    Ok(text)
}

/// A body with nothing in it (`{}` or none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Nothing {}

// ---- Incidents ----

async fn incident_or_404(app: &App, id: &str) -> Result<crate::store::incidents::IncidentRecord, Problem> {
    match app.store.incident(id).await {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(no_incident(id)),
        Err(e) => Err(store_failed(&e)),
    }
}

async fn list_incidents(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let params = query(params, &["status", "limit"])?;
    let status = param(&params, "status");
    if let Some(s) = status
        && !crate::store::incidents::STATUSES.contains(&s)
    {
        return Err(bad_request(&format!(
            "'{s}' is not a status; the statuses are: {}",
            crate::store::incidents::STATUSES.join(", ")
        )));
    }
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    let incidents = app
        .store
        .incidents(status, limit)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(incidents)
}

async fn show_incident(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let incident = incident_or_404(&app, &id).await?;
    let s = &app.store;
    let failed = |e: StoreError| store_failed(&e);
    let alerts = s.incident_alert_ids(&id).await.map_err(failed)?;
    let timeline = s.incident_timeline(&id).await.map_err(failed)?;
    let tasks = s.tasks(None, Some(&id), None, MAX_LIMIT).await.map_err(failed)?;
    let sla = s.sla_timers(&id).await.map_err(failed)?;
    let sla: Vec<Value> = sla
        .into_iter()
        .map(|t| {
            let state = t.state();
            let mut v = serde_json::to_value(t).unwrap_or_default();
            v["state"] = state.into();
            v
        })
        .collect();
    let children = s.child_incidents(&id).await.map_err(failed)?;
    let related = s.related_incidents(&id).await.map_err(failed)?;
    ok(json!({
        "incident": incident,
        "alerts": alerts,
        "timeline": timeline,
        "tasks": tasks,
        "sla": sla,
        "children": children,
        "related": related,
    }))
}

async fn create_incident(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let mut value = body_json(body).await?;
    // `parent` (a child incident) is the API's own; the rest is the spec playbooks use.
    let parent = match value.as_object_mut().and_then(|o| o.remove("parent")) {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p),
        Some(other) => {
            return Err(bad_request(&format!(
                "incident: parent must be an incident id, not {other}"
            )));
        }
    };
    let spec: IncidentSpec = crate::cases::parse("incident", &value).map_err(|e| bad_request(&e))?;
    let new = spec
        .into_new(parent.as_deref())
        .map_err(|e| bad_request(&format!("incident: {e}")))?;
    let id = app
        .store
        .create_incident(&new, &[], &who.actor, None)
        .await
        .map_err(|e| store_failed(&e))?;
    let incident = incident_or_404(&app, &id).await?;
    created(&format!("/api/v1/incidents/{id}"), incident)
}

async fn update_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let changes: IncidentChanges = body_as(body, "incident").await?;
    let current = incident_or_404(&app, &id).await?;
    // Everything is checked before anything is changed, so a refusal changes nothing (but
    // the custom fields, which the store checks as it writes, before the status).
    let status = match changes.status.as_deref() {
        None => None,
        Some(s) if ["new", "active", "pending"].contains(&s) => {
            if current.status == "closed" {
                return Err(conflict(&format!(
                    "incident {id} is closed; re-open it first (POST /api/v1/incidents/{id}/reopen)"
                )));
            }
            (s != current.status).then_some(s)
        }
        Some("closed") => {
            return Err(bad_request(&format!(
                "close an incident with its reason: POST /api/v1/incidents/{id}/close"
            )));
        }
        Some(s) => {
            return Err(bad_request(&format!(
                "'{s}' is not a status an incident can be set to (new, active, pending)"
            )));
        }
    };
    let update = changes
        .update()
        .map_err(|e| bad_request(&format!("incident: {e}")))?;
    if !app
        .store
        .update_incident(&id, &update, &who.actor)
        .await
        .map_err(|e| store_failed(&e))?
    {
        return Err(no_incident(&id));
    }
    if let Some(status) = status {
        app.store
            .set_incident_status(&id, status, None, &who.actor)
            .await
            .map_err(|e| store_failed(&e))?;
    }
    ok(incident_or_404(&app, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Close {
    reason: String,
}

async fn close_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let close: Close = body_as(body, "close").await?;
    let reason = required_text("the reason", &close.reason)?;
    let current = incident_or_404(&app, &id).await?;
    if current.status == "closed" {
        return Err(conflict(&format!("incident {id} is closed already")));
    }
    app.store
        .set_incident_status(&id, "closed", Some(reason), &who.actor)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(incident_or_404(&app, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reopen {
    #[serde(default)]
    reason: Option<String>,
}

async fn reopen_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let reopen: Reopen = body_as(body, "reopen").await?;
    let current = incident_or_404(&app, &id).await?;
    if current.status != "closed" {
        return Err(conflict(&format!(
            "incident {id} is {}, not closed",
            current.status
        )));
    }
    let reason = reopen.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    app.store
        .set_incident_status(&id, "active", reason, &who.actor)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(incident_or_404(&app, &id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    text: String,
}

async fn add_note(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let note: Note = body_as(body, "note").await?;
    let text = required_text("a note", &note.text)?;
    incident_or_404(&app, &id).await?;
    // A fresh key: each request is a new note (a playbook's key makes its notes written once).
    let key = crate::store::new_id('n');
    app.store
        .incident_event_once(&id, &who.actor, "note", json!({ "text": text }), &key)
        .await
        .map_err(|e| store_failed(&e))?;
    created(
        &format!("/api/v1/incidents/{id}"),
        json!({ "incident": id, "kind": "note", "text": text, "actor": who.actor.as_str() }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Relate {
    incident: String,
}

async fn relate_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let relate: Relate = body_as(body, "related").await?;
    incident_or_404(&app, &id).await?;
    let added = app
        .store
        .relate_incidents(&id, &relate.incident, &who.actor)
        .await
        .map_err(|e| store_failed(&e))?;
    let related = app
        .store
        .related_incidents(&id)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(json!({ "added": added, "related": related }))
}

async fn set_sla_paused(app: &App, headers: &HeaderMap, id: &str, body: Body, paused: bool) -> Answer {
    let who = caller(app, headers, SCOPE_INCIDENTS).await?;
    let _: Nothing = body_as(body, "sla").await?;
    match app.store.set_sla_paused(id, paused, &who.actor).await {
        Ok(Some(timers)) => ok(json!({ "timers": timers })),
        Ok(None) => Err(no_incident(id)),
        Err(e) => Err(store_failed(&e)),
    }
}

async fn pause_sla(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    set_sla_paused(&app, &headers, &id, body, true).await
}

async fn resume_sla(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    set_sla_paused(&app, &headers, &id, body, false).await
}

// ---- Indicators ----

fn indicator_failed(e: crate::store::indicators::IndicatorError) -> Problem {
    use crate::store::indicators::IndicatorError;
    match e {
        IndicatorError::Store(e) => store_failed(&e),
        other => bad_request(&other.to_string()),
    }
}

async fn list_indicators(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let params = query(params, &["kind", "verdict", "limit"])?;
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = app
        .store
        .indicators(param(&params, "kind"), param(&params, "verdict"), limit)
        .await
        .map_err(indicator_failed)?;
    ok(found)
}

/// `GET /api/v1/indicators/KIND/VALUE` (the value may hold slashes: a CIDR, a URL).
async fn show_indicator(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
) -> Answer {
    caller(&app, &headers, SCOPE_INCIDENTS).await?;
    match app
        .store
        .indicator(&kind, &value)
        .await
        .map_err(indicator_failed)?
    {
        Some(i) => ok(i),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no {kind} indicator '{value}'"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictBody {
    verdict: String,
    #[serde(default)]
    score: Option<i64>,
    #[serde(default)]
    source: Option<String>,
}

/// `PUT /api/v1/indicators/KIND/VALUE` `{verdict, score, source}`: record a verdict
/// (audited as `indicator.set`); the indicator is created if new.
async fn set_indicator(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let b: VerdictBody = body_as(body, "verdict").await?;
    let indicator = app
        .store
        .set_verdict(
            &kind,
            &value,
            &b.verdict,
            b.score,
            b.source.as_deref(),
            &who.actor,
        )
        .await
        .map_err(indicator_failed)?;
    ok(indicator)
}

// ---- Tasks ----

async fn list_tasks(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let params = query(params, &["status", "incident", "for_user", "limit"])?;
    let status = param(&params, "status");
    if let Some(s) = status
        && !crate::store::tasks::TASK_STATUSES.contains(&s)
    {
        return Err(bad_request(&format!(
            "'{s}' is not a task status; the statuses are: {}",
            crate::store::tasks::TASK_STATUSES.join(", ")
        )));
    }
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    let tasks = app
        .store
        .tasks(
            status,
            param(&params, "incident"),
            param(&params, "for_user"),
            limit,
        )
        .await
        .map_err(|e| store_failed(&e))?;
    ok(tasks)
}

async fn show_task(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    caller(&app, &headers, SCOPE_INCIDENTS).await?;
    match app.store.task(&id).await {
        Ok(Some(task)) => ok(task),
        Ok(None) => Err(task_failed(TaskError::NotFound(id))),
        Err(e) => Err(store_failed(&e)),
    }
}

async fn create_task(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let spec: TaskSpec = body_as(body, "task").await?;
    let new = spec
        .into_new(None)
        .map_err(|e| bad_request(&format!("task: {e}")))?;
    let task = app
        .store
        .create_task(&new, &who.actor, None)
        .await
        .map_err(task_failed)?;
    created(&format!("/api/v1/tasks/{}", task.id), task)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Complete {
    #[serde(default)]
    comment: Option<String>,
}

async fn complete_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let complete: Complete = body_as(body, "complete").await?;
    let Some(user) = &who.token.user else {
        return Err(forbidden(&format!(
            "the API token '{}' does not act for a user, and only a user completes a task: create a token with `osprey token create NAME --scope incidents --user USER`",
            who.token.name
        )));
    };
    let comment = complete
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let task = app
        .store
        .complete_task(&id, user, comment)
        .await
        .map_err(task_failed)?;
    ok(task)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delegate {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// A new time to complete it, such as "4h".
    #[serde(default)]
    due: Option<String>,
}

async fn delegate_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let delegate: Delegate = body_as(body, "delegate").await?;
    let due_ms = delegate
        .due
        .as_deref()
        .map(crate::cases::duration_ms)
        .transpose()
        .map_err(|e| bad_request(&format!("delegate: due: {e}")))?;
    let task = app
        .store
        .delegate_task(
            &id,
            delegate.user.as_deref(),
            delegate.role.as_deref(),
            due_ms,
            &who.actor,
        )
        .await
        .map_err(task_failed)?;
    ok(task)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancel {
    reason: String,
}

async fn cancel_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, SCOPE_INCIDENTS).await?;
    let cancel: Cancel = body_as(body, "cancel").await?;
    let reason = required_text("the reason", &cancel.reason)?;
    let task = app
        .store
        .cancel_task(&id, reason, &who.actor)
        .await
        .map_err(task_failed)?;
    ok(task)
}

// ---- Rules ----

async fn list_rules(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, SCOPE_RULES).await?;
    ok(app.store.rules().await.map_err(|e| store_failed(&e))?)
}

async fn put_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    body: Body,
) -> Answer {
    set_rule(&app, &headers, &name, params, body).await
}

async fn put_rule_test(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
    body: Body,
) -> Answer {
    set_rule(&app, &headers, "test", params, body).await
}

/// Store the rule in the body under `name` (the body's `name` may be left out), at
/// `?position=N` if given (1 = first).
async fn set_rule(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    params: BTreeMap<String, String>,
    body: Body,
) -> Answer {
    let who = caller(app, headers, SCOPE_RULES).await?;
    let params = query(params, &["position"])?;
    let position = match params.get("position") {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(bad_request(&format!(
                    "position '{text}' must be a whole number from 1 (first)"
                )));
            }
        },
    };
    let mut value = body_json(body).await?;
    if let Some(object) = value.as_object_mut() {
        match object.get("name") {
            None => {
                object.insert("name".into(), name.into());
            }
            Some(Value::String(n)) if n == name => {}
            Some(other) => {
                return Err(bad_request(&format!(
                    "rule: the body names {other}, the path '{name}'; leave `name` out or make them the same"
                )));
            }
        }
    }
    let spec: RuleSpec = crate::cases::parse("rule", &value).map_err(|e| bad_request(&e))?;
    crate::preprocess::check_rule(&spec, &app.playbooks).map_err(|e| bad_request(&e))?;
    let existed = app
        .store
        .rules()
        .await
        .map_err(|e| store_failed(&e))?
        .iter()
        .any(|r| r.spec.name == spec.name);
    let at = app
        .store
        .set_rule(&spec, position, &who.actor)
        .await
        .map_err(|e| store_failed(&e))?;
    let answer = json!({ "position": at, "rule": spec });
    if existed {
        ok(answer)
    } else {
        created(&format!("/api/v1/rules/{}", spec.name), answer)
    }
}

async fn delete_rule(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    remove_rule(&app, &headers, &name).await
}

async fn delete_rule_test(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    remove_rule(&app, &headers, "test").await
}

async fn remove_rule(app: &App, headers: &HeaderMap, name: &str) -> Answer {
    let who = caller(app, headers, SCOPE_RULES).await?;
    match app.store.remove_rule(name, &who.actor).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(false) => Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no rule named '{name}'"),
        )),
        Err(e) => Err(store_failed(&e)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTestRequest {
    /// Candidate rules, in order; the stored rules if absent.
    #[serde(default)]
    rules: Option<Vec<RuleSpec>>,
    /// How many of the newest alerts to test against.
    #[serde(default)]
    limit: Option<i64>,
}

async fn test_rules(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    caller(&app, &headers, SCOPE_RULES).await?;
    let request: RuleTestRequest = body_as(body, "rules test").await?;
    let limit = request.limit.unwrap_or(DEFAULT_TEST_ALERTS);
    if !(1..=MAX_TEST_ALERTS).contains(&limit) {
        return Err(bad_request(&format!(
            "rules test: limit must be a whole number from 1 to {MAX_TEST_ALERTS}"
        )));
    }
    let specs = match request.rules {
        Some(specs) => specs,
        None => app
            .store
            .rules()
            .await
            .map_err(|e| store_failed(&e))?
            .into_iter()
            .map(|r| r.spec)
            .collect(),
    };
    let alerts = app
        .store
        .alerts(None, limit)
        .await
        .map_err(|e| store_failed(&e))?;
    // Rule expressions over many alerts: off the async workers.
    let report = tokio::task::spawn_blocking(move || crate::preprocess::test_rules(specs, &alerts))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "testing rules failed");
            internal()
        })?
        .map_err(|e| bad_request(&e))?;
    ok(report)
}
