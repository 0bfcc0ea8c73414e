//! Playbooks: the ones the server has loaded, with their metadata (and one with its script),
//! and starting a run of one (as `osprey playbook run`).

use super::runs::run_failed;
use super::{Answer, Problem, bad_request, body_as, caller, created, not_found, ok};
use crate::app::App;
use crate::playbook::Playbook;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, NotFound, TooLarge};
use crate::server::paging::Paged;
use crate::store::runs::RunRecord;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A loaded playbook and what its `playbook.toml` says.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PlaybookSummary {
    name: String,
    description: String,
    /// The version `playbook.toml` declares.
    version: String,
    /// SHA-256 of `playbook.toml` and the script: changes whenever either does (the audit log
    /// records each one the server loads).
    revision: String,
    /// What starts a run: each as declared (`kind`: manual, cron, alert or sla, and its
    /// settings) with `summary`, a few words for lists. None: started by hand only.
    #[schema(value_type = Vec<Object>)]
    triggers: Vec<Value>,
    /// The named inputs: `type`, `description`, `required`, `default`.
    #[schema(value_type = Object)]
    inputs: Value,
    /// The plugins its script may call (`plugins` in `playbook.toml`: its grant; a call to
    /// any other fails).
    plugins: Vec<String>,
    /// Analyst minutes one run saves, if `playbook.toml` says.
    minutes_saved: Option<u32>,
    /// The default SLA of what it opens, in ms, if `playbook.toml` says.
    sla_ms: Option<u64>,
    /// The names of its charts (`[[chart]]`): read each with
    /// `GET /api/v1/playbooks/{name}/charts/{chart}`.
    charts: Vec<String>,
}

/// A playbook with the source text of its script.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PlaybookDetail {
    #[serde(flatten)]
    playbook: PlaybookSummary,
    /// `playbook.rhai`.
    source: String,
}

fn summary(p: &Playbook) -> PlaybookSummary {
    let triggers = p
        .meta
        .triggers
        .iter()
        .map(|t| {
            let mut v = serde_json::to_value(t.get_ref()).unwrap_or_default();
            if let Some(m) = v.as_object_mut() {
                m.insert("summary".into(), t.get_ref().summary().into());
            }
            v
        })
        .collect();
    PlaybookSummary {
        name: p.name().to_owned(),
        description: p.meta.description.clone(),
        version: p.meta.version.clone(),
        revision: p.version.clone(),
        triggers,
        inputs: serde_json::to_value(&p.meta.inputs).unwrap_or_default(),
        plugins: p.meta.plugins.clone(),
        minutes_saved: p.meta.minutes_saved,
        sla_ms: p
            .meta
            .sla
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        charts: p.meta.charts.iter().map(|c| c.get_ref().name.clone()).collect(),
    }
}

fn playbook_or_404(app: &App, name: &str) -> Result<Arc<Playbook>, Problem> {
    app.playbooks.get(name).map_err(|e| not_found(e.to_string()))
}

/// List the playbooks.
///
/// The playbooks the server has loaded from `playbooks_dir`, by name, with their metadata
/// (there are few: no paging, and `next_cursor` is always null).
///
/// Permission: `playbooks-read`.
#[utoipa::path(
    get,
    path = "/api/v1/playbooks",
    tag = "playbooks",
    responses((status = 200, description = "The playbooks", body = Paged<PlaybookSummary>))
)]
pub(super) async fn list_playbooks(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    ok(Paged {
        items: app.playbooks.list().iter().map(|p| summary(p)).collect(),
        next_cursor: None,
    })
}

/// One playbook.
///
/// Its metadata and the source text of its script.
///
/// Permission: `playbooks-read`.
#[utoipa::path(
    get,
    path = "/api/v1/playbooks/{name}",
    tag = "playbooks",
    params(("name" = String, Path, description = "The playbook's name")),
    responses(
        (status = 200, description = "The playbook", body = PlaybookDetail),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn show_playbook(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    let p = playbook_or_404(&app, &name)?;
    ok(PlaybookDetail {
        playbook: summary(&p),
        source: p.source.clone(),
    })
}

/// A run to start.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StartRun {
    /// The run's input, checked against the playbook's inputs (defaults filled in); `{}` if
    /// absent.
    #[serde(default)]
    #[schema(value_type = Object)]
    input: Map<String, Value>,
}

/// Start a run of a playbook.
///
/// As `osprey playbook run`: the input is checked against the playbook's inputs, and the run
/// is queued for the server's workers at once; follow it with `GET /api/v1/runs/{id}`. The run's
/// `origin` names who started it.
///
/// Permission: `playbooks-write`.
#[utoipa::path(
    post,
    path = "/api/v1/playbooks/{name}/runs",
    tag = "playbooks",
    params(("name" = String, Path, description = "The playbook's name")),
    request_body(content = Option<StartRun>),
    responses(
        (
            status = 201,
            description = "Started; `Location` names the run",
            body = RunRecord,
            headers(("Location" = String, description = "/api/v1/runs/ID"))
        ),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn start_run(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PlaybooksWrite).await?;
    let start: StartRun = body_as(body, "run").await?;
    playbook_or_404(&app, &name)?;
    let origin = format!("manual by {}", who.actor.as_str());
    let id = app
        .executor
        .start(&name, &start.input, &origin)
        .await
        .map_err(|e| run_failed(e, bad_request))?;
    let Some(run) = app.store.run(&id).await? else {
        return Err(super::internal());
    };
    created(&format!("/api/v1/runs/{id}"), run)
}
