//! Manual tasks: list (paged), show, create, complete, delegate, cancel.

use super::choice::{Choice, ChoiceParam};
use super::{
    Answer, Problem, bad_request, body_as, caller, choice, conflict, created, forbidden, keyset, list_query,
    ok, param, required_text,
};
use crate::app::App;
use crate::cases::TaskSpec;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, Conflict, Forbidden, NotFound, TooLarge};
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::page::SortKey;
use crate::store::tasks::{TASK_SORTS, TaskError, TaskFilter, TaskRecord, TaskStatus as Status};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Sorted for TaskRecord {
    const SORTS: &'static [&'static str] = TASK_SORTS;
    const DEFAULT_SORT: &'static str = "-created_at";

    fn position(&self, column: &str) -> (SortKey, String) {
        let key = match column {
            "updated_at" => SortKey::Int(self.updated_at),
            "status" => SortKey::Text(self.status.as_str().to_owned()),
            "title" => SortKey::Text(self.title.clone()),
            _ => SortKey::Int(self.created_at),
        };
        (key, self.id.clone())
    }
}

/// `status` of `GET /api/v1/tasks`.
pub(super) struct TaskStatus;

impl Choice for TaskStatus {
    const NAME: &'static str = "status";
    const WHAT: &'static str = "a task status";
    const DESCRIPTION: &'static str = "Only tasks in this status";
    const WORDS: &'static [&'static str] = Status::NAMES;
}

/// A task refused: no such task is a 404, not the caller's to complete a 403, no longer open
/// a 409, a bad request a 400; a store failure as the store's.
impl From<TaskError> for Problem {
    fn from(e: TaskError) -> Problem {
        let message = e.to_string();
        match e {
            TaskError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, "not-found", message),
            TaskError::NotAllowed { .. } | TaskError::Disabled { .. } => forbidden(&message),
            TaskError::NotOpen { .. } => conflict(&message),
            TaskError::NoUser(_) | TaskError::Invalid(_) => bad_request(&message),
            TaskError::Store(e) => e.into(),
        }
    }
}

/// List tasks.
///
/// Sorts: `created_at`, `updated_at`, `status`, `title` (`-` before for descending); default
/// `-created_at` (newest first). At most 500 a page.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(
        ChoiceParam<TaskStatus>,
        ("incident" = Option<String>, Query, description = "Only this incident's tasks"),
        (
            "for_user" = Option<String>,
            Query,
            description = "Only tasks this user may complete (theirs and their roles')"
        ),
        PagingParams<TaskRecord>
    ),
    responses(
        (status = 200, description = "One page of tasks", body = Paged<TaskRecord>),
        (status = 400, response = BadRequest)
    )
)]
pub(super) async fn list_tasks(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let params = list_query(params, &["status", "incident", "for_user"])?;
    let filter = TaskFilter {
        status: choice::read::<TaskStatus>(&params)?.and_then(Status::parse),
        incident: param(&params, "incident"),
        for_user: param(&params, "for_user"),
    };
    let keyset = keyset::<TaskRecord>(&params)?;
    let page = app.store.task_page(&filter, &keyset).await?;
    ok(paging::paged(&keyset, page))
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
pub(super) async fn show_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    match app.store.task(&id).await {
        Ok(Some(task)) => ok(task),
        Ok(None) => Err(TaskError::NotFound(id).into()),
        Err(e) => Err(e.into()),
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
pub(super) async fn create_task(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let spec: TaskSpec = body_as(body, "task").await?;
    let new = spec
        .into_new(None)
        .map_err(|e| bad_request(&format!("task: {e}")))?;
    let task = app.store.create_task(&new, &who.actor, None).await?;
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
/// Only a user completes a task, one assigned to them or to one of their roles: a signed-in
/// user, or a token that acts for a user (`osprey token create --user`). Audited.
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
pub(super) async fn complete_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let complete: CompleteTask = body_as(body, "complete").await?;
    let Some(user) = &who.user else {
        return Err(forbidden(&format!(
            "the API token '{}' does not act for a user, and only a user completes a task: create a token with `osprey token create NAME --role analyst --user USER`, or sign in",
            who.token.as_deref().unwrap_or_default()
        )));
    };
    let comment = complete
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let task = app.store.complete_task(&id, user, comment).await?;
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
pub(super) async fn delegate_task(
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
        .await?;
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
pub(super) async fn cancel_task(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let cancel: CancelTask = body_as(body, "cancel").await?;
    let reason = required_text("the reason", &cancel.reason)?;
    let task = app.store.cancel_task(&id, reason, &who.actor).await?;
    ok(task)
}
