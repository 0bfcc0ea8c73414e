//! Incidents: list (paged), show with everything about them, open (and spawn children),
//! change, close and re-open; notes, relations and SLA timers.

use super::choice::{Choice, ChoiceParam};
use super::{
    Answer, Caller, Nothing, Problem, bad_request, body_as, body_json, caller, choice, conflict, created,
    keyset, list_query, ok, param, required_text,
};
use crate::app::App;
use crate::cases::{IncidentChanges, IncidentSpec};
use crate::intake::Severity;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, Conflict, NotFound, TooLarge};
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::incident_detail::IncidentDetail;
use crate::store::incidents::{INCIDENT_SORTS, IncidentFilter, IncidentRecord, IncidentStatus as Status};
use crate::store::page::SortKey;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

fn no_incident(id: &str) -> Problem {
    super::not_found(format!("no incident '{id}'"))
}

// ---- Answers' shapes (also their schemas in the OpenAPI document) ----

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

impl Sorted for IncidentRecord {
    const SORTS: &'static [&'static str] = INCIDENT_SORTS;
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

/// `severity` of `GET /api/v1/incidents`.
pub(super) struct IncidentSeverity;

impl Choice for IncidentSeverity {
    const NAME: &'static str = "severity";
    const WHAT: &'static str = "a severity";
    const DESCRIPTION: &'static str = "Only incidents of this severity";
    const WORDS: &'static [&'static str] = &Severity::NAMES;
}

/// `status` of `GET /api/v1/incidents`.
pub(super) struct IncidentStatus;

impl Choice for IncidentStatus {
    const NAME: &'static str = "status";
    const WHAT: &'static str = "a status";
    const DESCRIPTION: &'static str = "Only incidents in this status";
    const WORDS: &'static [&'static str] = Status::NAMES;
}

pub(super) async fn incident_or_404(app: &App, id: &str) -> Result<IncidentRecord, Problem> {
    match app.store.incident(id).await {
        Ok(Some(i)) => Ok(i),
        Ok(None) => Err(no_incident(id)),
        Err(e) => Err(e.into()),
    }
}

/// List incidents.
///
/// Sorts: `created_at`, `updated_at`, `status`, `title` (`-` before for descending); default
/// `-created_at` (newest first). At most 500 a page.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(
        ChoiceParam<IncidentStatus>,
        ("type" = Option<String>, Query, description = "Only incidents of this type"),
        ChoiceParam<IncidentSeverity>,
        ("owner" = Option<String>, Query, description = "Only incidents this user owns"),
        PagingParams<IncidentRecord>
    ),
    responses(
        (status = 200, description = "One page of incidents", body = Paged<IncidentRecord>),
        (status = 400, response = BadRequest)
    )
)]
pub(super) async fn list_incidents(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let params = list_query(params, &["status", "type", "severity", "owner"])?;
    // Only the names: stored severities are always one of them (the other words alerts use
    // are read at intake).
    let severity = choice::read::<IncidentSeverity>(&params)?.and_then(Severity::parse);
    let filter = IncidentFilter {
        status: choice::read::<IncidentStatus>(&params)?.and_then(Status::parse),
        kind: param(&params, "type"),
        severity,
        owner: param(&params, "owner"),
        ..IncidentFilter::default()
    };
    let keyset = keyset::<IncidentRecord>(&params)?;
    let page = app.store.incident_page(&filter, &keyset).await?;
    ok(paging::paged(&keyset, page))
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
pub(super) async fn show_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    match app.store.incident_detail(&id).await {
        Ok(Some(detail)) => ok(detail),
        Ok(None) => Err(no_incident(&id)),
        Err(e) => Err(e.into()),
    }
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
pub(super) async fn create_incident(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
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
    let spec: IncidentSpec = crate::cases::parse("incident", &value)?;
    open(&app, &who, spec, parent.as_deref()).await
}

/// Open the incident of `spec` (a child of `parent` if given) as `who`: 201 with it.
async fn open(app: &App, who: &Caller, spec: IncidentSpec, parent: Option<&str>) -> Answer {
    let new = spec
        .into_new(parent)
        .map_err(|e| bad_request(&format!("incident: {e}")))?;
    let id = app.store.create_or_join_incident(&new, &who.actor, None).await?;
    let incident = incident_or_404(app, &id).await?;
    created(&format!("/api/v1/incidents/{id}"), incident)
}

/// Spawn a child incident.
///
/// The body is an incident as for `POST /api/v1/incidents`, without `parent`: the incident
/// in the path is its parent (its timeline records the child, and the child's
/// `parent_id` names it). Audited.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    post,
    path = "/api/v1/incidents/{id}/children",
    tag = "incidents",
    params(("id" = String, Path, description = "The parent incident's id")),
    request_body(content = IncidentSpec, description = "The child incident"),
    responses(
        (
            status = 201,
            description = "Opened; `Location` names it",
            body = IncidentRecord,
            headers(("Location" = String, description = "/api/v1/incidents/ID"))
        ),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn spawn_child(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let spec: IncidentSpec = body_as(body, "child incident").await?;
    incident_or_404(&app, &id).await?;
    open(&app, &who, spec, Some(&id)).await
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
    request_body(content = Option<IncidentChanges>, description = "The changes; none (or `{}`) changes nothing"),
    responses(
        (status = 200, description = "The incident as changed", body = IncidentRecord),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn update_incident(
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
    let status = match changes.status.as_deref().map(|s| (s, Status::parse(s))) {
        None => None,
        Some((_, Some(Status::Closed))) => {
            return Err(bad_request(&format!(
                "close an incident with its reason: POST /api/v1/incidents/{id}/close"
            )));
        }
        Some((_, Some(s))) => {
            if current.status == Status::Closed {
                return Err(conflict(&format!(
                    "incident {id} is closed; re-open it first (POST /api/v1/incidents/{id}/reopen)"
                )));
            }
            (s != current.status).then_some(s)
        }
        Some((s, None)) => {
            return Err(bad_request(&format!(
                "'{s}' is not a status an incident can be set to (new, active, pending)"
            )));
        }
    };
    let update = changes
        .update()
        .map_err(|e| bad_request(&format!("incident: {e}")))?;
    if !app.store.update_incident(&id, &update, &who.actor).await? {
        return Err(no_incident(&id));
    }
    if let Some(status) = status {
        app.store
            .set_incident_status(&id, status, None, &who.actor)
            .await?;
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
pub(super) async fn close_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let close: CloseIncident = body_as(body, "close").await?;
    let reason = required_text("the reason", &close.reason)?;
    let current = incident_or_404(&app, &id).await?;
    if current.status == Status::Closed {
        return Err(conflict(&format!("incident {id} is closed already")));
    }
    app.store
        .set_incident_status(&id, Status::Closed, Some(reason), &who.actor)
        .await?;
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
pub(super) async fn reopen_incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let reopen: ReopenIncident = body_as(body, "reopen").await?;
    let current = incident_or_404(&app, &id).await?;
    if current.status != Status::Closed {
        return Err(conflict(&format!(
            "incident {id} is {}, not closed",
            current.status
        )));
    }
    let reason = reopen.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    app.store
        .set_incident_status(&id, Status::Active, reason, &who.actor)
        .await?;
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
pub(super) async fn add_note(
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
        .await?;
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
pub(super) async fn relate_incident(
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
        .await?;
    let related = app.store.related_incidents(&id).await?;
    ok(Related { added, related })
}

async fn set_sla_paused(app: &App, headers: &HeaderMap, id: &str, body: Body, paused: bool) -> Answer {
    let who = caller(app, headers, Permission::IncidentsWrite).await?;
    let _: Nothing = body_as(body, "sla").await?;
    match app.store.set_sla_paused(id, paused, &who.actor).await {
        Ok(Some(timers)) => ok(SlaChanged { timers }),
        Ok(None) => Err(no_incident(id)),
        Err(e) => Err(e.into()),
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
pub(super) async fn pause_sla(
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
pub(super) async fn resume_sla(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    set_sla_paused(&app, &headers, &id, body, false).await
}
