//! Playbook runs: list (paged), show with their journal, cancel, and restart from a step
//! (starting a run is `POST /api/v1/playbooks/{name}/runs`, in `playbooks.rs`).

use super::choice::{self, Choice, ChoiceParam};
use super::{
    Answer, Nothing, Problem, bad_request, body_as, caller, conflict, internal, keyset, list_query, ok, param,
};
use crate::app::App;
use crate::rbac::Permission;
use crate::runs::RunError;
use crate::server::openapi::{BadRequest, Conflict, NotFound, TooLarge};
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::page::{Page, SortKey};
use crate::store::runs::{RUN_SORTS, RunRecord, RunStatus, StepRecord};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Sorted for RunRecord {
    const SORTS: &'static [&'static str] = RUN_SORTS;
    const DEFAULT_SORT: &'static str = "-created_at";

    fn position(&self, column: &str) -> (SortKey, String) {
        let key = match column {
            "updated_at" => SortKey::Int(self.updated_at),
            "playbook" => SortKey::Text(self.playbook.clone()),
            "status" => SortKey::Text(self.status.as_str().to_owned()),
            _ => SortKey::Int(self.created_at),
        };
        (key, self.id.clone())
    }
}

/// `status` of `GET /api/v1/runs`.
pub(super) struct RunState;

impl Choice for RunState {
    const NAME: &'static str = "status";
    const WHAT: &'static str = "a run state";
    const DESCRIPTION: &'static str = "Only runs in this state";
    const WORDS: &'static [&'static str] = RunStatus::NAMES;
}

fn no_run(id: &str) -> Problem {
    super::not_found(format!("no run '{id}'"))
}

/// An executor's refusal as a problem: no such run or playbook is a 404, an input the
/// playbook does not take a 400, and `RunError::Invalid` (a run that ended, a step out of
/// range) what `invalid` makes of it, as the route decides.
pub(super) fn run_failed(e: RunError, invalid: fn(&str) -> Problem) -> Problem {
    match e {
        RunError::NoSuchRun(id) => no_run(&id),
        RunError::Invalid(message) => invalid(&message),
        RunError::Input { .. } | RunError::InputTooDeep { .. } => bad_request(&e.to_string()),
        RunError::Playbook(crate::playbook::PlaybookError::NotFound { .. }) => {
            super::not_found(e.to_string())
        }
        RunError::Store(e) => e.into(),
        RunError::Playbook(e) => {
            tracing::error!(error = %e, "a loaded playbook failed");
            internal()
        }
    }
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
        ChoiceParam<RunState>,
        PagingParams<RunRecord>
    ),
    responses(
        (status = 200, description = "One page of runs", body = Paged<RunRecord>),
        (status = 400, response = BadRequest)
    )
)]
pub(super) async fn list_runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    let params = list_query(params, &["playbook", "status"])?;
    let status = choice::read::<RunState>(&params)?.and_then(RunStatus::parse);
    let keyset = keyset::<RunRecord>(&params)?;
    let page = app
        .store
        .run_page(param(&params, "playbook"), status, &keyset)
        .await?;
    let items = page.items.into_iter().map(crate::server::shown::run).collect();
    ok(paging::paged(
        &keyset,
        Page {
            items,
            more: page.more,
        },
    ))
}

/// A run with its journal (`GET /api/v1/runs/{id}`).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RunDetail {
    run: RunRecord,
    /// Its journaled steps, in order.
    steps: Vec<StepRecord>,
    /// The runs it started with `playbook(name, input)`, in the order it started them (its
    /// parent, if it has one, is `run.parent_run`).
    children: Vec<RunRecord>,
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
pub(super) async fn show_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    let run = run_or_404(&app, &id).await?;
    let steps = app.store.steps(&id).await?;
    let children = app.store.child_runs(&id).await?;
    // Values bigger than 64 KiB are shown as their size and a preview (`osprey run show`
    // prints them whole).
    ok(RunDetail {
        run: crate::server::shown::run(run),
        steps: steps.into_iter().map(crate::server::shown::step).collect(),
        children: children.into_iter().map(crate::server::shown::run).collect(),
    })
}

/// Cancel a run.
///
/// A run that has not ended (queued, running or waiting) is cancelled; one in the middle of a
/// step stops before its next, and its open questions are cancelled. Audited as
/// `run.cancel`.
///
/// Permission: `playbooks-write`.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/cancel",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    request_body(content = Option<Nothing>, description = "Nothing, or `{}`"),
    responses(
        (status = 200, description = "The cancelled run", body = RunRecord),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict)
    )
)]
pub(super) async fn cancel_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PlaybooksWrite).await?;
    let _: Nothing = body_as(body, "cancel").await?;
    app.executor
        .cancel(&id, &who.actor)
        .await
        .map_err(|e| run_failed(e, conflict))?;
    ok(run_or_404(&app, &id).await?)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RestartRun {
    /// The first step to take again, from 1 (the beginning) to the number of steps + 1.
    #[schema(minimum = 1)]
    from_step: i64,
}

/// A restarted run.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Restarted {
    run: RunRecord,
    /// How many steps were cut from its journal.
    cut: u64,
}

/// Restart a run from a step.
///
/// Cuts the run's journal back to before step `from_step` and runs it again from there with
/// the playbook's current script: steps before it keep their recorded outcomes; effects of
/// the steps cut are not undone. Audited as `run.restart`.
///
/// Permission: `playbooks-write`.
#[utoipa::path(
    post,
    path = "/api/v1/runs/{id}/restart",
    tag = "runs",
    params(("id" = String, Path, description = "The run's id")),
    request_body(content = RestartRun),
    responses(
        (status = 200, description = "The run, queued again", body = Restarted),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn restart_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PlaybooksWrite).await?;
    let restart: RestartRun = body_as(body, "restart").await?;
    let cut = app
        .executor
        .restart(&id, restart.from_step, &who.actor)
        .await
        .map_err(|e| run_failed(e, bad_request))?;
    app.executor.wake();
    ok(Restarted {
        run: run_or_404(&app, &id).await?,
        cut,
    })
}

async fn run_or_404(app: &App, id: &str) -> Result<RunRecord, Problem> {
    match app.store.run(id).await {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(no_run(id)),
        Err(e) => Err(e.into()),
    }
}
