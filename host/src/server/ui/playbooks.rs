//! Playbooks and their runs: `GET /playbooks` (each with its triggers, inputs and the minutes
//! a run saves), `GET /playbooks/NAME` (its source, its charts (`playbook_charts.rs`) and
//! recent runs, and a form that starts a run), `GET /runs` (filters: playbook, status) and `GET /runs/ID`: the run's timeline of
//! steps with their inputs and outputs, and its actions (cancel, restart from a step), each
//! a form sent to `/api/v1/...`.

use super::{failed, may, not_found, page, require};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::paging;
use crate::server::web::WebUser;
use crate::store::StoreError;
use crate::store::page::Page;
use crate::store::runs::{RunRecord, RunStatus};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use std::sync::Arc;

/// Runs one list page shows.
const PAGE_SIZE: &str = "50";
/// Recent runs on a playbook's page.
const RECENT_RUNS: &str = "10";
const STATES: [&str; 7] = [
    "queued",
    "running",
    "waiting",
    "completed",
    "failed",
    "cancelled",
    "dead",
];

#[derive(Serialize)]
struct PlaybookRow {
    name: String,
    description: String,
    version: String,
    triggers: Vec<String>,
    inputs: Vec<(String, String)>,
    minutes_saved: Option<u32>,
    plugins: Vec<String>,
}

fn row(p: &crate::playbook::Playbook) -> PlaybookRow {
    let mut triggers: Vec<String> = p.meta.triggers.iter().map(|t| t.get_ref().summary()).collect();
    if triggers.is_empty() {
        triggers.push("manual".into());
    }
    PlaybookRow {
        name: p.name().to_owned(),
        description: p.meta.description.clone(),
        version: p.meta.version.clone(),
        triggers,
        inputs: p
            .meta
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.description.clone()))
            .collect(),
        minutes_saved: p.meta.minutes_saved,
        plugins: p.meta.plugins.clone(),
    }
}

pub(super) async fn list(user: WebUser, State(app): State<Arc<App>>) -> Response {
    if let Err(r) = require(&user, Permission::PlaybooksRead) {
        return r;
    }
    let playbooks: Vec<PlaybookRow> = app.playbooks.list().iter().map(|p| row(p)).collect();
    page(
        &user,
        StatusCode::OK,
        "playbooks.html",
        "Playbooks",
        serde_json::json!({ "playbooks": playbooks, "errors": &app.playbook_errors }),
    )
}

pub(super) async fn show(user: WebUser, State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    if let Err(r) = require(&user, Permission::PlaybooksRead) {
        return r;
    }
    let Ok(playbook) = app.playbooks.get(&name) else {
        return not_found(&user, &format!("playbook named {name}"));
    };
    let recent = match run_page(&app, Some(&name), None, None, RECENT_RUNS).await {
        Ok(p) => p.items,
        Err(e) => return failed(&user, e),
    };
    let charts = match super::playbook_charts::of_playbook(&app, &playbook).await {
        Ok(c) => c,
        Err(e) => return failed(&user, e),
    };
    page(
        &user,
        StatusCode::OK,
        "playbook.html",
        &name,
        serde_json::json!({ "p": row(&playbook), "source": &playbook.source, "recent": recent, "charts": charts, "can_run": may(&user, Permission::PlaybooksWrite) }),
    )
}

/// A page of runs not read: its cursor refused, or the store failed.
#[derive(Debug, thiserror::Error)]
enum RunPageError {
    #[error(transparent)]
    Paging(#[from] paging::PagingError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of runs, newest first.
async fn run_page(
    app: &App,
    playbook: Option<&str>,
    status: Option<RunStatus>,
    cursor: Option<&str>,
    limit: &str,
) -> Result<paging::Paged<RunRecord>, RunPageError> {
    let keyset = paging::keyset::<RunRecord>(None, cursor, Some(limit))?;
    let found = app.store.run_page(playbook, status, &keyset).await?;
    let items = found.items.into_iter().map(crate::server::shown::run).collect();
    Ok(paging::paged(
        &keyset,
        Page {
            items,
            more: found.more,
        },
    ))
}

pub(super) async fn runs(user: WebUser, State(app): State<Arc<App>>, uri: Uri) -> Response {
    if let Err(r) = require(&user, Permission::PlaybooksRead) {
        return r;
    }
    let params = super::query_params(&uri);
    let status = params.get("status").and_then(|s| RunStatus::parse(s));
    let playbook = params.get("playbook").map(String::as_str);
    let found = match run_page(
        &app,
        playbook,
        status,
        params.get("cursor").map(String::as_str),
        PAGE_SIZE,
    )
    .await
    {
        Ok(f) => f,
        // A cursor from another sort or an edited URL: start over.
        Err(RunPageError::Paging(e)) => {
            tracing::debug!(error = %e, "a runs page cursor was refused");
            return super::see_other("/runs");
        }
        Err(e) => return failed(&user, e),
    };
    let next = found
        .next_cursor
        .as_ref()
        .map(|c| super::next_page("/runs", &params, "cursor", c));
    let names: Vec<String> = app.playbooks.list().iter().map(|p| p.name().to_owned()).collect();
    page(
        &user,
        StatusCode::OK,
        "runs.html",
        "Runs",
        serde_json::json!({ "runs": found.items, "next": next, "params": params, "states": STATES, "names": names }),
    )
}

#[derive(Serialize)]
struct StepView {
    seq: i64,
    kind: String,
    ok: bool,
    started_at: i64,
    duration_ms: i64,
    what: String,
    /// A plugin call answered by the plugin's mock (mock mode).
    mocked: bool,
    request: String,
    outcome: String,
}

pub(super) async fn run(user: WebUser, State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if let Err(r) = require(&user, Permission::PlaybooksRead) {
        return r;
    }
    let run = match app.store.run(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&user, &format!("run {id}")),
        Err(e) => return failed(&user, e),
    };
    let steps = match app.store.steps(&id).await {
        Ok(s) => s,
        Err(e) => return failed(&user, e),
    };
    let children = match app.store.child_runs(&id).await {
        Ok(c) => c,
        Err(e) => return failed(&user, e),
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let run = crate::server::shown::run(run);
    let steps: Vec<StepView> = steps
        .into_iter()
        .map(crate::server::shown::step)
        .map(|s| {
            let what = super::step_label(&s.kind, &s.request);
            StepView {
                seq: s.seq,
                kind: s.kind.clone(),
                ok: s.ok,
                started_at: s.started_at,
                duration_ms: s.duration_ms,
                what,
                mocked: s.kind == "invoke" && s.request["mocked"] == true,
                request: pretty(&s.request),
                outcome: pretty(&s.outcome),
            }
        })
        .collect();
    let finished = matches!(
        run.status,
        RunStatus::Completed | RunStatus::Cancelled | RunStatus::Failed | RunStatus::Dead
    );
    page(
        &user,
        StatusCode::OK,
        "run.html",
        &format!("Run {id}"),
        serde_json::json!({ "run": &run, "input": pretty(&run.input), "output": run.output.as_ref().map(pretty), "steps": steps, "children": children, "finished": finished, "can_act": may(&user, Permission::PlaybooksWrite) }),
    )
}
