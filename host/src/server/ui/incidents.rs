//! `GET /incidents` (filters: status, severity, owner, type, text in the title) and
//! `GET /incidents/ID`: the key fields at the top, one timeline (alerts, steps with their
//! inputs and outputs, answers, notes, changes), tasks, SLA timers, children and related
//! incidents, and the analyst's actions (assign, severity, status, close, re-open, note,
//! spawn a child), each a form sent to `/api/v1/incidents/...`.

use super::{failed, may, not_found, page, require};
use crate::app::App;
use crate::intake::Severity;
use crate::rbac::Permission;
use crate::server::paging;
use crate::server::web::WebUser;
use crate::store::incidents::{IncidentEvent, IncidentFilter, IncidentRecord, IncidentStatus};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
/// Incidents one list page shows.
const PAGE_SIZE: &str = "50";

pub(super) async fn list(user: WebUser, State(app): State<Arc<App>>, uri: Uri) -> Response {
    if let Err(r) = require(&user, Permission::IncidentsRead) {
        return r;
    }
    let params = super::query_params(&uri);
    let filter = IncidentFilter {
        status: params.get("status").and_then(|s| IncidentStatus::parse(s)),
        kind: params.get("type").map(String::as_str),
        severity: params.get("severity").and_then(|s| Severity::parse(s)),
        owner: params.get("owner").map(String::as_str),
        ..IncidentFilter::default()
    };
    let cursor = params.get("cursor").map(String::as_str);
    let Ok(keyset) = paging::keyset::<IncidentRecord>(None, cursor, Some(PAGE_SIZE)) else {
        // A cursor from an edited URL: start over.
        return super::see_other("/incidents");
    };
    let found = match app.store.incident_page(&filter, &keyset).await {
        Ok(f) => f,
        Err(e) => return failed(&user, e),
    };
    let found = paging::paged(&keyset, found);
    let next = found
        .next_cursor
        .as_ref()
        .map(|c| super::next_page("/incidents", &params, "cursor", c));
    let incidents = found.items;
    page(
        &user,
        StatusCode::OK,
        "incidents.html",
        "Incidents",
        serde_json::json!({ "incidents": incidents, "next": next, "params": params, "statuses": IncidentStatus::NAMES, "severities": SEVERITIES }),
    )
}

/// One line of the timeline, ready to show.
#[derive(Serialize)]
struct Entry<'a> {
    #[serde(flatten)]
    event: &'a IncidentEvent,
    /// What happened, in a few words.
    summary: String,
    /// The step's run, number, request and outcome (steps only).
    step: Option<Step<'a>>,
    failed: bool,
}

#[derive(Serialize)]
struct Step<'a> {
    run: &'a str,
    seq: i64,
    kind: &'a str,
    request: String,
    outcome: String,
}

pub(super) async fn show(user: WebUser, State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    if let Err(r) = require(&user, Permission::IncidentsRead) {
        return r;
    }
    let detail = match app.store.incident_detail(&id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(&user, &format!("incident {id}")),
        Err(e) => return failed(&user, e),
    };
    let users = match app.store.users().await {
        Ok(u) => u
            .into_iter()
            .filter(|u| u.disabled_at.is_none())
            .map(|u| u.name)
            .collect::<Vec<_>>(),
        Err(e) => return failed(&user, e),
    };
    let timeline: Vec<Entry> = detail.timeline.iter().rev().map(entry).collect();
    page(
        &user,
        StatusCode::OK,
        "incident.html",
        &detail.incident.title,
        serde_json::json!({ "d": &detail, "i": &detail.incident, "timeline": timeline, "users": users, "severities": SEVERITIES, "can_write": may(&user, Permission::IncidentsWrite) }),
    )
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A short line for `v`: strings as they are, the rest as compact JSON, cut at 160 chars.
fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

fn entry(e: &IncidentEvent) -> Entry<'_> {
    let d = &e.details;
    let field = |k: &str| d.get(k).map(short).unwrap_or_default();
    if e.kind == "step" {
        let outcome = d.get("outcome").cloned().unwrap_or(Value::Null);
        let ok = d.get("ok").and_then(Value::as_bool).unwrap_or(true);
        let step = Step {
            run: d.get("run").and_then(Value::as_str).unwrap_or(""),
            seq: d.get("seq").and_then(Value::as_i64).unwrap_or(0),
            kind: d.get("kind").and_then(Value::as_str).unwrap_or("step"),
            request: pretty(d.get("request").unwrap_or(&Value::Null)),
            outcome: pretty(&outcome),
        };
        let what = super::step_label(step.kind, d.get("request").unwrap_or(&Value::Null));
        return Entry {
            event: e,
            summary: format!(
                "Step {} of run {}: {what}{}",
                step.seq,
                step.run,
                if ok { "" } else { " (failed)" }
            ),
            step: Some(step),
            failed: !ok,
        };
    }
    let summary = match e.kind.as_str() {
        "note" => field("text"),
        "status" => {
            let reason = field("reason");
            let to = field("to");
            let to = if to.is_empty() { field("status") } else { to };
            if reason.is_empty() {
                format!("Status: {to}")
            } else {
                format!("Status: {to} ({reason})")
            }
        }
        _ => match d {
            Value::Object(m) if !m.is_empty() => m
                .iter()
                .take(4)
                .map(|(k, v)| format!("{k}: {}", short(v)))
                .collect::<Vec<_>>()
                .join(" · "),
            Value::Null => String::new(),
            other => short(other),
        },
    };
    Entry {
        event: e,
        summary,
        step: None,
        failed: e.kind == "sla_breach",
    }
}
