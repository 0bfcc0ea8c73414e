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

use super::openapi::{BadRequest, Conflict, Forbidden, NotFound, TooLarge};
use super::paging;
use super::problem;
use crate::app::App;
use crate::auth::{self, AuthError};
use crate::cases::{IncidentChanges, IncidentSpec, TaskSpec};
use crate::preprocess::RuleSpec;
use crate::preprocess::RuleTest;
use crate::rbac::Permission;
use crate::store::StoreError;
use crate::store::alerts::{ALERT_SORTS, AlertFilter, DISPOSITIONS};
use crate::store::audit::{Actor, AuditFilter};
use crate::store::incidents::{IncidentEvent, IncidentRecord};
use crate::store::indicators::{Indicator, IndicatorKind, Verdict};
use crate::store::lists::{ENTRY_SORTS, ListError};
use crate::store::page::SortKey;
use crate::store::rules::RuleRecord;
use crate::store::runs::{RUN_SORTS, RunRecord, RunStatus, StepRecord};
use crate::store::sla::SlaTimer;
use crate::store::tasks::TaskError;
use crate::store::tasks::TaskRecord;
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
        .route("/api/v1/plugins", get(list_plugins))
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
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(show_run))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/lists", get(list_lists))
        .route("/api/v1/lists/{name}/entries", get(list_list_entries))
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

/// Who is calling: the token, checked for `permission` (its role or scopes), and the actor
/// its changes are audited as.
struct Caller {
    token: TokenRecord,
    actor: Actor,
}

async fn caller(app: &App, headers: &HeaderMap, permission: Permission) -> Result<Caller, Problem> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match auth::authenticate(&app.store, &app.tokens, authorization, permission).await {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, ?permission, "API request refused");
            return Err(match e {
                AuthError::Forbidden(_) => {
                    Problem::new(StatusCode::FORBIDDEN, "permission-denied", e.to_string())
                }
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
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Nothing {}

// ---- Incidents ----

// ---- Answers' shapes (also their schemas in the OpenAPI document) ----

/// An incident with everything about it (`GET /api/v1/incidents/{id}`).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct IncidentDetail {
    incident: IncidentRecord,
    /// The ids of its alerts, oldest link first.
    alerts: Vec<String>,
    timeline: Vec<IncidentEvent>,
    tasks: Vec<TaskRecord>,
    sla: Vec<SlaTimerState>,
    children: Vec<IncidentRecord>,
    /// The ids of related incidents.
    related: Vec<String>,
}

/// An SLA timer and where it stands.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct SlaTimerState {
    #[serde(flatten)]
    timer: SlaTimer,
    /// `breached` (even if it stopped later), `met`, `paused` or `running`.
    state: String,
}

/// A note as added to an incident's timeline.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct NoteAdded {
    incident: String,
    /// Always `note`.
    kind: String,
    text: String,
    /// Who wrote it: `user:NAME` or `token:NAME`.
    actor: String,
}

/// An incident's relations after a change.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Related {
    /// False if they were related already.
    added: bool,
    related: Vec<String>,
}

/// How many SLA timers a pause or resume changed.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct SlaChanged {
    timers: u64,
}

/// A rule as stored, and where.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RulePut {
    /// 1 is tried first.
    position: i64,
    rule: RuleSpec,
}

/// An incident to open, and `parent` to make it a child incident.
// Only described: the handler takes `parent` off the body and reads the rest as an
// `IncidentSpec`, the one reading playbooks share; `openapi::Shared` makes the schema one
// object that refuses unknown fields, as the handler does.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct NewIncidentBody {
    #[serde(flatten)]
    spec: IncidentSpec,
    /// The id of the incident this one is a child of.
    parent: Option<String>,
}

/// An installed plugin.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PluginSummary {
    name: String,
    version: String,
    description: String,
    actions: Vec<String>,
    granted: bool,
}

/// The installed plugins.
///
/// Name, version, description, actions, and whether the plugin is granted.
///
/// Permission: `plugins-read`.
#[utoipa::path(
    get,
    path = "/api/v1/plugins",
    tag = "plugins",
    responses((status = 200, description = "The plugins", body = Vec<PluginSummary>))
)]
async fn list_plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::PluginsRead).await?;
    let plugins: Vec<PluginSummary> = app
        .runtime
        .list()
        .iter()
        .map(|p| PluginSummary {
            name: p.manifest.name.clone(),
            version: p.manifest.version.clone(),
            description: p.description.description.clone(),
            actions: p.description.actions.iter().map(|a| a.name.clone()).collect(),
            granted: p.policy().granted,
        })
        .collect();
    ok(plugins)
}

async fn incident_or_404(app: &App, id: &str) -> Result<crate::store::incidents::IncidentRecord, Problem> {
    match app.store.incident(id).await {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(no_incident(id)),
        Err(e) => Err(store_failed(&e)),
    }
}

/// List incidents.
///
/// Newest first.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(
        (
            "status" = Option<String>,
            Query,
            description = "Only incidents in this status: new, active, pending, closed"
        ),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50")
    ),
    responses(
        (status = 200, description = "The incidents", body = Vec<IncidentRecord>),
        (status = 400, response = BadRequest)
    )
)]
async fn list_incidents(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
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

/// One incident with everything about it.
///
/// Its alerts (ids), timeline, tasks, SLA timers, children and related incidents.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    responses(
        (status = 200, description = "The incident", body = IncidentDetail),
        (status = 404, response = NotFound)
    )
)]
async fn show_incident(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let incident = incident_or_404(&app, &id).await?;
    let s = &app.store;
    let failed = |e: StoreError| store_failed(&e);
    let alerts = s.incident_alert_ids(&id).await.map_err(failed)?;
    let timeline = s.incident_timeline(&id).await.map_err(failed)?;
    let tasks = s.tasks(None, Some(&id), None, MAX_LIMIT).await.map_err(failed)?;
    let sla = s.sla_timers(&id).await.map_err(failed)?;
    let sla: Vec<SlaTimerState> = sla
        .into_iter()
        .map(|timer| SlaTimerState {
            state: timer.state().to_owned(),
            timer,
        })
        .collect();
    let children = s.child_incidents(&id).await.map_err(failed)?;
    let related = s.related_incidents(&id).await.map_err(failed)?;
    ok(IncidentDetail {
        incident,
        alerts,
        timeline,
        tasks,
        sla,
        children,
        related,
    })
}

/// Open an incident.
///
/// Audited. The `type` is one of `[incidents]` in the configuration, which says its SLA and
/// custom fields; `parent` makes it a child incident.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents",
    tag = "incidents",
    request_body(content = NewIncidentBody, description = "The incident"),
    responses(
        (
            status = 201,
            description = "Opened; `Location` names it",
            body = IncidentRecord,
            headers(("Location" = String, description = "/api/v1/incidents/ID"))
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
async fn create_incident(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
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

/// Change an incident.
///
/// Only the fields given change; custom `fields` are merged. Status: new, active or pending
/// (close and re-open have their own operations). Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    patch,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = IncidentChanges, description = "The changes"),
    responses(
        (status = 200, description = "The incident as changed", body = IncidentRecord),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
async fn update_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CloseIncident {
    reason: String,
}

/// Close an incident, with a reason.
///
/// Required custom fields must be set first. Stops its SLA timers. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/close",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = CloseIncident),
    responses(
        (status = 200, description = "The closed incident", body = IncidentRecord),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
async fn close_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let close: CloseIncident = body_as(body, "close").await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReopenIncident {
    #[serde(default)]
    reason: Option<String>,
}

/// Re-open a closed incident.
///
/// It becomes active. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/reopen",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = Option<ReopenIncident>),
    responses(
        (status = 200, description = "The re-opened incident", body = IncidentRecord),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
async fn reopen_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let reopen: ReopenIncident = body_as(body, "reopen").await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewNote {
    text: String,
}

/// Add a note to an incident's timeline.
///
/// Each request is a new note. Audited as its author.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/notes",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = NewNote),
    responses(
        (status = 201, description = "The note", body = NoteAdded),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
async fn add_note(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let note: NewNote = body_as(body, "note").await?;
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
        NoteAdded {
            incident: id.clone(),
            kind: "note".to_owned(),
            text: text.to_owned(),
            actor: who.actor.as_str().to_owned(),
        },
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RelateIncident {
    incident: String,
}

/// Relate two incidents.
///
/// Both ways; relating them again changes nothing. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/related",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = RelateIncident),
    responses(
        (
            status = 200,
            description = "Whether it was added, and the related incidents",
            body = Related
        ),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
async fn relate_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let relate: RelateIncident = body_as(body, "related").await?;
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
    ok(Related { added, related })
}

async fn set_sla_paused(app: &App, headers: &HeaderMap, id: &str, body: Body, paused: bool) -> Answer {
    let who = caller(app, headers, Permission::IncidentsWrite).await?;
    let _: Nothing = body_as(body, "sla").await?;
    match app.store.set_sla_paused(id, paused, &who.actor).await {
        Ok(Some(timers)) => ok(SlaChanged { timers }),
        Ok(None) => Err(no_incident(id)),
        Err(e) => Err(store_failed(&e)),
    }
}

/// Pause an incident's SLA timers.
///
/// Their deadlines move by the time paused. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/sla/pause",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = Option<Nothing>, description = "Nothing, or `{}`"),
    responses(
        (status = 200, description = "How many timers were paused", body = SlaChanged),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
async fn pause_sla(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    set_sla_paused(&app, &headers, &id, body, true).await
}

/// Resume an incident's paused SLA timers.
///
/// Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/sla/resume",
    tag = "incidents",
    params(("id" = String, Path, description = "The incident's id")),
    request_body(content = Option<Nothing>, description = "Nothing, or `{}`"),
    responses(
        (status = 200, description = "How many timers were resumed", body = SlaChanged),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
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

/// List indicators.
///
/// Most recently updated first.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/indicators",
    tag = "indicators",
    params(
        ("kind" = Option<IndicatorKind>, Query, description = "Only this kind"),
        ("verdict" = Option<Verdict>, Query, description = "Only this verdict"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50")
    ),
    responses(
        (status = 200, description = "The indicators", body = Vec<Indicator>),
        (status = 400, response = BadRequest)
    )
)]
async fn list_indicators(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let params = query(params, &["kind", "verdict", "limit"])?;
    let limit = limit(&params, DEFAULT_LIMIT, MAX_LIMIT)?;
    let found = app
        .store
        .indicators(param(&params, "kind"), param(&params, "verdict"), limit)
        .await
        .map_err(indicator_failed)?;
    ok(found)
}

/// One indicator.
///
/// With its verdicts by source and its sightings. The value may hold slashes (a CIDR, a URL)
/// and is canonicalized as the store does.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/indicators/{kind}/{value}",
    tag = "indicators",
    params(
        ("kind" = IndicatorKind, Path, description = "What the indicator is"),
        ("value" = String, Path, description = "The indicator; may hold slashes")
    ),
    responses(
        (status = 200, description = "The indicator", body = Indicator),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
async fn show_indicator(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetVerdict {
    verdict: String,
    #[serde(default)]
    score: Option<i64>,
    #[serde(default)]
    source: Option<String>,
}

/// Record a verdict on an indicator.
///
/// The indicator is created if new. Audited as `indicator.set`.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    put,
    path = "/api/v1/indicators/{kind}/{value}",
    tag = "indicators",
    params(
        ("kind" = IndicatorKind, Path, description = "What the indicator is"),
        ("value" = String, Path, description = "The indicator; may hold slashes")
    ),
    request_body(content = SetVerdict),
    responses(
        (status = 200, description = "The indicator", body = Indicator),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
async fn set_indicator(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let b: SetVerdict = body_as(body, "verdict").await?;
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

/// List tasks.
///
/// Newest first.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(
        (
            "status" = Option<String>,
            Query,
            description = "Only tasks in this status: open, completed, cancelled"
        ),
        ("incident" = Option<String>, Query, description = "Only this incident's tasks"),
        (
            "for_user" = Option<String>,
            Query,
            description = "Only tasks this user may complete (theirs and their roles')"
        ),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50")
    ),
    responses(
        (status = 200, description = "The tasks", body = Vec<TaskRecord>),
        (status = 400, response = BadRequest)
    )
)]
async fn list_tasks(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
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

/// One task.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task", body = TaskRecord),
        (status = 404, response = NotFound)
    )
)]
async fn show_task(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    match app.store.task(&id).await {
        Ok(Some(task)) => ok(task),
        Ok(None) => Err(task_failed(TaskError::NotFound(id))),
        Err(e) => Err(store_failed(&e)),
    }
}

/// Create a task.
///
/// For a user and/or a role, optionally of an incident. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body(content = TaskSpec),
    responses(
        (
            status = 201,
            description = "Created; `Location` names it",
            body = TaskRecord,
            headers(("Location" = String, description = "/api/v1/tasks/ID"))
        ),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
async fn create_task(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CompleteTask {
    #[serde(default)]
    comment: Option<String>,
}

/// Complete a task.
///
/// Only a token that acts for a user (`osprey token create --user`) completes a task, and only
/// one assigned to that user or to one of their roles. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/complete",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    request_body(content = Option<CompleteTask>),
    responses(
        (status = 200, description = "The completed task", body = TaskRecord),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
async fn complete_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let complete: CompleteTask = body_as(body, "complete").await?;
    let Some(user) = &who.token.user else {
        return Err(forbidden(&format!(
            "the API token '{}' does not act for a user, and only a user completes a task: create a token with `osprey token create NAME --role analyst --user USER`",
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DelegateTask {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// A new time to complete it, such as "4h".
    #[serde(default)]
    due: Option<String>,
}

/// Give a task to another user or role.
///
/// Optionally with a new time to complete it. Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/delegate",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    request_body(content = DelegateTask),
    responses(
        (status = 200, description = "The task", body = TaskRecord),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
async fn delegate_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let delegate: DelegateTask = body_as(body, "delegate").await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelTask {
    reason: String,
}

/// Cancel a task, with a reason.
///
/// Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/cancel",
    tag = "tasks",
    params(("id" = String, Path, description = "The task's id")),
    request_body(content = CancelTask),
    responses(
        (status = 200, description = "The cancelled task", body = TaskRecord),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
async fn cancel_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let cancel: CancelTask = body_as(body, "cancel").await?;
    let reason = required_text("the reason", &cancel.reason)?;
    let task = app
        .store
        .cancel_task(&id, reason, &who.actor)
        .await
        .map_err(task_failed)?;
    ok(task)
}

// ---- Alerts, runs, audit entries, lists: paged lists ----

/// One page of a list: pass `next_cursor` back as `cursor` for the next (null on the last).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct PageOf {
    /// The items, in the requested order.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    next_cursor: Option<String>,
}

fn paging_failed(e: paging::PagingError) -> Problem {
    bad_request(&e.0)
}

/// The paging parameters every list takes.
const PAGING: [&str; 3] = ["sort", "limit", "cursor"];

fn keyset(
    params: &BTreeMap<String, String>,
    sorts: &[&'static str],
    default_sort: &str,
) -> Result<crate::store::page::Keyset, Problem> {
    paging::keyset(
        param(params, "sort"),
        param(params, "cursor"),
        params.get("limit").map(String::as_str),
        sorts,
        default_sort,
    )
    .map_err(paging_failed)
}

/// A Unix-milliseconds parameter.
fn millis(params: &BTreeMap<String, String>, name: &str) -> Result<Option<i64>, Problem> {
    param(params, name)
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| bad_request(&format!("{name} '{t}' must be a time in Unix milliseconds")))
        })
        .transpose()
}

fn text_key(s: &str) -> SortKey {
    SortKey::Text(s.to_owned())
}

/// List alerts.
///
/// Sorts: `received_at`, `source` (`-` before for descending); default `-received_at`.
/// At most 500 a page.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(
        ("source" = Option<String>, Query, description = "Only alerts of this source"),
        (
            "disposition" = Option<String>,
            Query,
            description = "Only alerts pre-processing handled so: dropped, incident, duplicate, linked, unmatched, or pending (not yet)"
        ),
        ("since" = Option<i64>, Query, description = "Received at or after (Unix ms)"),
        ("until" = Option<i64>, Query, description = "Received before (Unix ms)"),
        ("sort" = Option<String>, Query, description = "received_at or source, '-' for descending; default -received_at"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
    ),
    responses(
        (status = 200, description = "One page of alerts", body = PageOf),
        (status = 400, response = BadRequest)
    )
)]
async fn list_alerts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let known = [["source", "disposition", "since", "until"].as_slice(), &PAGING].concat();
    let params = query(params, &known)?;
    let disposition = param(&params, "disposition");
    if let Some(d) = disposition
        && !DISPOSITIONS.contains(&d)
    {
        return Err(bad_request(&format!(
            "'{d}' is not a disposition; the dispositions are: {}",
            DISPOSITIONS.join(", ")
        )));
    }
    let filter = AlertFilter {
        source: param(&params, "source"),
        disposition,
        since: millis(&params, "since")?,
        until: millis(&params, "until")?,
    };
    let keyset = keyset(&params, ALERT_SORTS, "-received_at")?;
    let page = app
        .store
        .alert_page(&filter, &keyset)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(paging::paged(&keyset, page.items, page.more, |a| {
        let key = match keyset.column {
            "source" => text_key(&a.alert.source),
            _ => SortKey::Int(a.received_at),
        };
        (key, a.id.clone())
    }))
}

/// List playbook runs.
///
/// Sorts: `created_at`, `updated_at`, `playbook`, `status`; default `-created_at`.
/// At most 500 a page.
///
/// Permission: `playbooks-read`.
#[utoipa::path(
    get,
    path = "/api/v1/runs",
    tag = "runs",
    params(
        ("playbook" = Option<String>, Query, description = "Only runs of this playbook"),
        (
            "status" = Option<String>,
            Query,
            description = "Only runs in this state: queued, running, waiting, completed, failed, cancelled, dead"
        ),
        ("sort" = Option<String>, Query, description = "created_at, updated_at, playbook or status, '-' for descending; default -created_at"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
    ),
    responses(
        (status = 200, description = "One page of runs", body = PageOf),
        (status = 400, response = BadRequest)
    )
)]
async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    let known = [["playbook", "status"].as_slice(), &PAGING].concat();
    let params = query(params, &known)?;
    let status = match param(&params, "status") {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            bad_request(&format!(
                "'{s}' is not a run state; the states are: queued, running, waiting, completed, failed, cancelled, dead"
            ))
        })?),
    };
    let keyset = keyset(&params, RUN_SORTS, "-created_at")?;
    let page = app
        .store
        .run_page(param(&params, "playbook"), status, &keyset)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(paging::paged(&keyset, page.items, page.more, |r| {
        let key = match keyset.column {
            "updated_at" => SortKey::Int(r.updated_at),
            "playbook" => text_key(&r.playbook),
            "status" => text_key(r.status.as_str()),
            _ => SortKey::Int(r.created_at),
        };
        (key, r.id.clone())
    }))
}

/// A run with its journal (`GET /api/v1/runs/{id}`).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RunDetail {
    #[schema(value_type = Object)]
    run: RunRecord,
    /// Its journaled steps, in order.
    #[schema(value_type = Vec<Object>)]
    steps: Vec<StepRecord>,
}

/// One run and its steps.
///
/// Permission: `playbooks-read`.
#[utoipa::path(
    get,
    path = "/api/v1/runs/{id}",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunDetail),
        (status = 404, response = NotFound)
    )
)]
async fn show_run(State(app): State<Arc<App>>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    let Some(run) = app.store.run(&id).await.map_err(|e| store_failed(&e))? else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no run '{id}'"),
        ));
    };
    let steps = app.store.steps(&id).await.map_err(|e| store_failed(&e))?;
    ok(RunDetail { run, steps })
}

/// Read the audit log.
///
/// Oldest first, in the log's order (`seq`); no other sort. At most 500 a page.
///
/// Permission: `audit-read`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(
        ("action" = Option<String>, Query, description = "Only actions starting with this: secret. or secret.set"),
        ("actor" = Option<String>, Query, description = "Only entries by this actor: user:NAME, token:NAME, system, ..."),
        ("target" = Option<String>, Query, description = "Only entries on this target: plugin:NAME, run:ID, ..."),
        ("after_seq" = Option<i64>, Query, description = "Only entries after this one"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page (instead of after_seq)")
    ),
    responses(
        (status = 200, description = "One page of audit entries", body = PageOf),
        (status = 400, response = BadRequest)
    )
)]
async fn list_audit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::AuditRead).await?;
    let params = query(
        params,
        &["action", "actor", "target", "after_seq", "limit", "cursor"],
    )?;
    let mut keyset = keyset(&params, &["seq"], "seq")?;
    let after = match (&keyset.after, param(&params, "after_seq")) {
        (Some(_), Some(_)) => return Err(bad_request("give cursor or after_seq, not both")),
        (Some((SortKey::Int(seq), _)), None) => *seq,
        (Some(_), None) => return Err(bad_request("cursor is not a cursor of the audit log")),
        (None, Some(t)) => t
            .parse::<i64>()
            .map_err(|_| bad_request(&format!("after_seq '{t}' must be a whole number")))?,
        (None, None) => 0,
    };
    let filter = AuditFilter {
        action: param(&params, "action"),
        actor: param(&params, "actor"),
        target: param(&params, "target"),
    };
    let page = app
        .store
        .audit_page(&filter, after, keyset.limit)
        .await
        .map_err(|e| store_failed(&e))?;
    keyset.after = None;
    ok(paging::paged(&keyset, page.items, page.more, |e| {
        (SortKey::Int(e.seq), e.seq.to_string())
    }))
}

/// List the allow and block lists.
///
/// Every list, by name, with its number of live entries (there are few: no paging, and
/// `next_cursor` is always null).
///
/// Permission: `lists-read`.
#[utoipa::path(
    get,
    path = "/api/v1/lists",
    tag = "lists",
    responses((status = 200, description = "The lists", body = PageOf))
)]
async fn list_lists(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::ListsRead).await?;
    let lists = app.store.lists().await.map_err(|e| store_failed(&e))?;
    ok(paging::Paged {
        items: lists,
        next_cursor: None,
    })
}

/// List the entries of a list.
///
/// Live entries (also expired ones not yet removed with `expired=true`). Sorts: `value`,
/// `created_at`, `updated_at`; default `value`. At most 500 a page.
///
/// Permission: `lists-read`.
#[utoipa::path(
    get,
    path = "/api/v1/lists/{name}/entries",
    tag = "lists",
    params(
        ("name" = String, Path, description = "The list's name"),
        ("expired" = Option<bool>, Query, description = "Also entries expired but not yet removed; default false"),
        ("sort" = Option<String>, Query, description = "value, created_at or updated_at, '-' for descending; default value"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
    ),
    responses(
        (status = 200, description = "One page of entries", body = PageOf),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
async fn list_list_entries(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::ListsRead).await?;
    let known = [["expired"].as_slice(), &PAGING].concat();
    let params = query(params, &known)?;
    let expired = match param(&params, "expired") {
        None | Some("false") => false,
        Some("true") => true,
        Some(t) => return Err(bad_request(&format!("expired '{t}' must be true or false"))),
    };
    let keyset = keyset(&params, ENTRY_SORTS, "value")?;
    let page = match app.store.list_entry_page(&name, expired, &keyset).await {
        Ok(page) => page,
        Err(ListError::NoSuchList(_)) => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no list '{name}'"),
            ));
        }
        Err(ListError::Store(e)) => return Err(store_failed(&e)),
        Err(e) => return Err(bad_request(&e.to_string())),
    };
    ok(paging::paged(&keyset, page.items, page.more, |e| {
        let key = match keyset.column {
            "created_at" => SortKey::Int(e.created_at),
            "updated_at" => SortKey::Int(e.updated_at),
            _ => text_key(&e.value),
        };
        (key, e.value.clone())
    }))
}

// ---- Rules ----

/// List the pre-processing rules.
///
/// In the order they are tried.
///
/// Permission: `rules-read`.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    responses((status = 200, description = "The rules", body = Vec<RuleRecord>))
)]
async fn list_rules(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::RulesRead).await?;
    ok(app.store.rules().await.map_err(|e| store_failed(&e))?)
}

/// Create or replace a rule.
///
/// The body's `name` may be left out (the path names the rule). `?position=N` puts it there (1
/// is tried first); a new rule goes last by default. Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    put,
    path = "/api/v1/rules/{name}",
    tag = "rules",
    params(
        ("name" = String, Path, description = "The rule's name"),
        ("position" = Option<i64>, Query, description = "Where it goes, from 1 (tried first)")
    ),
    request_body(content = RuleSpec),
    responses(
        (status = 200, description = "Replaced", body = RulePut),
        (
            status = 201,
            description = "Created; `Location` names it",
            body = RulePut,
            headers(("Location" = String, description = "/api/v1/rules/NAME"))
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
async fn put_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    body: Body,
) -> Answer {
    set_rule(&app, &headers, &name, params, body).await
}

/// Create or replace the rule named `test`.
///
/// The same as `PUT /api/v1/rules/{name}` for the name `test` (whose path `POST` is the rules
/// test). Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    put,
    path = "/api/v1/rules/test",
    tag = "rules",
    params(("position" = Option<i64>, Query, description = "Where it goes, from 1 (tried first)")),
    request_body(content = RuleSpec),
    responses(
        (status = 200, description = "Replaced", body = RulePut),
        (status = 201, description = "Created", body = RulePut),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
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
    let who = caller(app, headers, Permission::RulesWrite).await?;
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
    let answer = RulePut {
        position: at,
        rule: spec.clone(),
    };
    if existed {
        ok(answer)
    } else {
        created(&format!("/api/v1/rules/{}", spec.name), answer)
    }
}

/// Remove a rule.
///
/// Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{name}",
    tag = "rules",
    params(("name" = String, Path, description = "The rule's name")),
    responses((status = 204, description = "Removed"), (status = 404, response = NotFound))
)]
async fn delete_rule(State(app): State<Arc<App>>, headers: HeaderMap, Path(name): Path<String>) -> Answer {
    remove_rule(&app, &headers, &name).await
}

/// Remove the rule named `test`.
///
/// The same as `DELETE /api/v1/rules/{name}` for the name `test`. Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/test",
    tag = "rules",
    responses((status = 204, description = "Removed"), (status = 404, response = NotFound))
)]
async fn delete_rule_test(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    remove_rule(&app, &headers, "test").await
}

async fn remove_rule(app: &App, headers: &HeaderMap, name: &str) -> Answer {
    let who = caller(app, headers, Permission::RulesWrite).await?;
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RuleTestRequest {
    /// Candidate rules, in order; the stored rules if absent.
    #[serde(default)]
    rules: Option<Vec<RuleSpec>>,
    /// How many of the newest alerts to test against.
    #[serde(default)]
    limit: Option<i64>,
}

/// Test rules against stored alerts.
///
/// Runs candidate rules (or the stored ones) over the newest alerts and says what each would
/// have decided; changes nothing.
///
/// Permission: `rules-read`.
#[utoipa::path(
    post,
    path = "/api/v1/rules/test",
    tag = "rules",
    request_body(content = Option<RuleTestRequest>),
    responses(
        (status = 200, description = "What the rules would have done", body = RuleTest),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
async fn test_rules(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    caller(&app, &headers, Permission::RulesRead).await?;
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
