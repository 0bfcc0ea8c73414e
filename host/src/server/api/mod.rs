//! The REST API under `/api/v1`, JSON in and out: one file per resource (incidents, tasks,
//! indicators, alerts, runs and playbooks, plugins and their installs, audit, lists, questions, request forms, rules); this file has the
//! router (the one list of routes) and what every handler shares.
//!
//! Callers: an API token (`Authorization: Bearer`), checked for the route's permission by its
//! role or scopes, or the web console's signed-in user (the `osprey_session` cookie with the
//! session's CSRF token in `X-CSRF-Token`), checked by the user's roles ([`caller`]). A
//! token that acts for a user (`osprey token create --user`) and a session are audited as the
//! user (`user:NAME`) and may complete the tasks of that user and of their roles; any other
//! token is audited as itself (`token:NAME`) and completes no task.
//!
//! These files only read requests and write answers: requests are read by the same `cases::`
//! and `preprocess::` functions the CLI and playbooks use, and every change goes through a
//! store method (or `App`/`Executor` method) that audits it. Unknown fields in a body or the
//! query are refused with 400 naming them; a body over 1 MiB is refused with 413; errors are
//! problem documents without internals (the details go to the log). Lists page the one way
//! `paging.rs` says; filters with a closed set of values are read as `choice.rs` says. What
//! a handler refuses, its OpenAPI description states (bounds, enums, objects), and the
//! schemathesis test (`tests/e2e/schemathesis.rs`) holds the two together.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod choice;
pub(crate) mod incidents;
pub(crate) mod indicators;
pub(crate) mod lists;
pub(crate) mod playbook_charts;
pub(crate) mod playbooks;
pub(crate) mod plugin_installs;
pub(crate) mod plugins;
pub(crate) mod questions;
pub(crate) mod requests;
pub(crate) mod rules;
pub(crate) mod runs;
pub(crate) mod tasks;

use super::paging;
use super::problem;
use crate::app::App;
use crate::auth::{self, AuthError, SessionError};
use crate::rbac::Permission;
use crate::store::StoreError;
use crate::store::audit::Actor;
use crate::store::page::Keyset;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use http_body_util::BodyExt as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The largest request body read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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
        .route("/api/v1/plugins", get(plugins::list_plugins))
        .route("/api/v1/plugins/{name}", get(plugins::show_plugin))
        .route("/api/v1/plugins/{name}/grant", put(plugins::put_grant))
        .route(
            "/api/v1/plugins/{name}/mock",
            put(plugins::put_mock).delete(plugins::delete_mock),
        )
        .route("/api/v1/plugin-installs", post(plugin_installs::prepare_install))
        .route(
            "/api/v1/plugin-installs/{id}",
            get(plugin_installs::show_install).delete(plugin_installs::cancel_install),
        )
        .route(
            "/api/v1/plugin-installs/{id}/apply",
            post(plugin_installs::apply_install),
        )
        .route(
            "/api/v1/incidents",
            get(incidents::list_incidents).post(incidents::create_incident),
        )
        .route(
            "/api/v1/incidents/{id}",
            get(incidents::show_incident).patch(incidents::update_incident),
        )
        .route("/api/v1/incidents/{id}/close", post(incidents::close_incident))
        .route("/api/v1/incidents/{id}/reopen", post(incidents::reopen_incident))
        .route("/api/v1/incidents/{id}/notes", post(incidents::add_note))
        .route("/api/v1/incidents/{id}/related", post(incidents::relate_incident))
        .route("/api/v1/incidents/{id}/children", post(incidents::spawn_child))
        .route("/api/v1/incidents/{id}/sla/pause", post(incidents::pause_sla))
        .route("/api/v1/incidents/{id}/sla/resume", post(incidents::resume_sla))
        .route("/api/v1/tasks", get(tasks::list_tasks).post(tasks::create_task))
        .route("/api/v1/tasks/{id}", get(tasks::show_task))
        .route("/api/v1/tasks/{id}/complete", post(tasks::complete_task))
        .route("/api/v1/tasks/{id}/delegate", post(tasks::delegate_task))
        .route("/api/v1/tasks/{id}/cancel", post(tasks::cancel_task))
        .route("/api/v1/indicators", get(indicators::list_indicators))
        .route(
            "/api/v1/indicators/{kind}/{*value}",
            get(indicators::show_indicator).put(indicators::set_indicator),
        )
        .route("/api/v1/alerts", get(alerts::list_alerts))
        .route("/api/v1/playbooks", get(playbooks::list_playbooks))
        .route("/api/v1/playbooks/{name}", get(playbooks::show_playbook))
        .route("/api/v1/playbooks/{name}/runs", post(playbooks::start_run))
        .route(
            "/api/v1/playbooks/{name}/charts/{chart}",
            get(playbook_charts::show_chart),
        )
        .route("/api/v1/runs", get(runs::list_runs))
        .route("/api/v1/runs/{id}", get(runs::show_run))
        .route("/api/v1/runs/{id}/cancel", post(runs::cancel_run))
        .route("/api/v1/runs/{id}/restart", post(runs::restart_run))
        .route("/api/v1/audit", get(audit::list_audit))
        .route("/api/v1/audit/verify", get(audit::verify_audit))
        .route("/api/v1/lists", get(lists::list_lists))
        .route(
            "/api/v1/lists/{name}/entries",
            get(lists::list_entries).post(lists::add_entry),
        )
        .route(
            "/api/v1/lists/{name}/entries/{*value}",
            delete(lists::remove_entry),
        )
        .route("/api/v1/questions", get(questions::list_questions))
        .route("/api/v1/questions/{id}/answer", post(questions::answer_question))
        .route("/api/v1/requests", get(requests::list_forms))
        .route("/api/v1/requests/{playbook}", post(requests::send_request))
        .route("/api/v1/rules", get(rules::list_rules))
        // `test` is also a rule name like any other: the static route takes its PUT and DELETE.
        .route(
            "/api/v1/rules/test",
            post(rules::test_rules)
                .put(rules::put_rule_test)
                .delete(rules::delete_rule_test),
        )
        .route(
            "/api/v1/rules/{name}",
            put(rules::put_rule).delete(rules::delete_rule),
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

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
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

fn not_found(message: impl Into<String>) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", message)
}

/// A store error: a refusal (`Invalid`, written for users) is a 400 with its message; a
/// database that cannot be reached is a 503 to retry; anything else a 500. Only refusals
/// say more; the rest is logged. (So `?` answers a store error from a handler.)
/// A case request that did not read: 400, with the field that was wrong.
impl From<crate::cases::CaseError> for Problem {
    fn from(e: crate::cases::CaseError) -> Problem {
        bad_request(&e.to_string())
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Invalid(message) => bad_request(&message),
            StoreError::Db(_) | StoreError::Writer(_) | StoreError::Connect { .. } => {
                tracing::error!(error = %e, "API request failed in the store");
                unavailable()
            }
            _ => {
                tracing::error!(error = %e, "API request failed in the store");
                internal()
            }
        }
    }
}

fn unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the store is unavailable; nothing was changed; retry shortly",
    )
    .with(Extra::RetryAfter)
}

fn internal() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed to answer; the details are in its log",
    )
}

// ---- Who is calling ----

/// Who is calling, checked for the route's permission, and what their changes are audited
/// as.
struct Caller {
    actor: Actor,
    /// The user it acts as: a session's user, or the user a token acts for.
    user: Option<String>,
    /// The token's name, when a token authenticated the call.
    token: Option<String>,
}

/// The caller of a request, allowed `permission`: a bearer token if the request has an
/// `Authorization` header, else a signed-in web session with its CSRF token in
/// `X-CSRF-Token` (on every method), else a 401.
async fn caller(app: &App, headers: &HeaderMap, permission: Permission) -> Result<Caller, Problem> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if authorization.is_none() {
        if super::web::session_token(headers).is_some() {
            return session_caller(app, headers, permission).await;
        }
        return Err(unauthorized(&SessionError::NoCredentials.to_string()));
    }
    let token = match auth::authenticate(&app.store, &app.tokens, authorization, permission).await {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, ?permission, "API request refused");
            return Err(match e {
                AuthError::Forbidden(_) => permission_denied(&e.to_string()),
                AuthError::Missing | AuthError::Invalid => unauthorized(&e.to_string()),
            });
        }
        Err(e) => return Err(e.into()),
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
            Err(e) => return Err(e.into()),
        },
    };
    Ok(Caller {
        actor,
        user: token.user,
        token: Some(token.name),
    })
}

/// The signed-in user of the session cookie, if the session is live (its user not
/// disabled), the request carries its CSRF token, and the user's roles allow `permission`.
async fn session_caller(app: &App, headers: &HeaderMap, permission: Permission) -> Result<Caller, Problem> {
    let user = match super::web::signed_in(app, headers).await {
        Ok(Some(user)) => user,
        Ok(None) => return Err(unauthorized(&SessionError::Ended.to_string())),
        // Logged where it failed.
        Err(_) => return Err(unavailable()),
    };
    let sent = headers.get(auth::CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) = auth::check_session(&user.name, &user.roles, &user.csrf, sent, permission) {
        tracing::warn!(error = %e, user = %user.name, ?permission, "API request refused");
        return Err(match e {
            SessionError::Forbidden { .. } => permission_denied(&e.to_string()),
            SessionError::CsrfMissing | SessionError::CsrfWrong => {
                Problem::new(StatusCode::FORBIDDEN, "csrf", e.to_string())
            }
            SessionError::NoCredentials | SessionError::Ended => unauthorized(&e.to_string()),
        });
    }
    Ok(Caller {
        actor: Actor::user(&user.name),
        user: Some(user.name),
        token: None,
    })
}

fn unauthorized(message: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with(Extra::Bearer)
}

fn permission_denied(message: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "permission-denied", message)
}

// ---- Reading requests ----

/// The body as a JSON object (an empty body is `{}`), at most [`MAX_BODY_BYTES`]. Every
/// body of this API is an object: anything else is refused here, before serde could read
/// an array as a struct's fields in order.
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
    // What is accepted must be readable back when stored inside other values.
    crate::nesting::check_text(&bytes, crate::nesting::MAX_DEPTH).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "too-deep",
            format!("the body is {e}; nothing was changed"),
        )
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-json",
            format!(
                "the body must be a JSON object, not {}",
                crate::intake::json_kind(&value)
            ),
        ));
    }
    Ok(value)
}

/// The body as a `T` (`what` names it in errors, with the field that was wrong).
async fn body_as<T: DeserializeOwned>(body: Body, what: &str) -> Result<T, Problem> {
    let value = body_json(body).await?;
    Ok(crate::cases::parse(what, &value)?)
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

// ---- Paged lists ----

/// The paging parameters every paged list takes.
const PAGING: [&str; 3] = ["sort", "limit", "cursor"];

/// The query parameters of a paged list: its own `filters` and [`PAGING`], refusing others.
fn list_query(
    params: BTreeMap<String, String>,
    filters: &[&str],
) -> Result<BTreeMap<String, String>, Problem> {
    query(params, &[filters, &PAGING].concat())
}

/// The page of a list of `T` a request asks for (`paging.rs` reads `sort`, `cursor` and
/// `limit` by `T`'s sorts).
fn keyset<T: paging::Sorted>(params: &BTreeMap<String, String>) -> Result<Keyset, Problem> {
    paging::keyset::<T>(
        param(params, "sort"),
        param(params, "cursor"),
        params.get("limit").map(String::as_str),
    )
    .map_err(|e| bad_request(&e.to_string()))
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
