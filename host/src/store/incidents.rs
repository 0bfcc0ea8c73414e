//! Incidents, the alerts linked to them, their timeline, children, relations and custom
//! fields; status changes drive the SLA timers. Creating an incident and queueing its runs
//! happen in one transaction (`incident_opening.rs`, which the triage batch in `triage.rs`
//! uses too, with the alert each incident is opened from), so a crash never leaves an
//! incident without its runs or an alert marked done without its incident.

use super::audit::{self, Actor, Change};
use super::incident_opening::{Opening, open_incidents};
use super::page::{self, Arg, Keyset, Page};
use super::runs::NewRun;
use super::{Result, Store, StoreError, now_ms, sla};
use crate::intake::Severity;
use serde::{Deserialize, Serialize};

/// An incident's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum IncidentStatus {
    /// Opened, not yet acknowledged.
    New,
    /// Acknowledged: someone works on it.
    Active,
    /// Waiting on someone else; its SLA timers are paused.
    Pending,
    Closed,
}

impl IncidentStatus {
    /// The names of the states, as [`as_str`](Self::as_str) gives them (and the store keeps
    /// them).
    pub const NAMES: &[&str] = &["new", "active", "pending", "closed"];

    pub fn as_str(&self) -> &'static str {
        match self {
            IncidentStatus::New => "new",
            IncidentStatus::Active => "active",
            IncidentStatus::Pending => "pending",
            IncidentStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<IncidentStatus> {
        Some(match s {
            "new" => IncidentStatus::New,
            "active" => IncidentStatus::Active,
            "pending" => IncidentStatus::Pending,
            "closed" => IncidentStatus::Closed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The columns incidents may be sorted by (`GET /api/v1/incidents?sort=`).
pub const INCIDENT_SORTS: &[&str] = &["created_at", "updated_at", "status", "title"];

/// Which incidents a page holds; `None` is any.
#[derive(Debug, Clone, Copy, Default)]
pub struct IncidentFilter<'a> {
    pub status: Option<IncidentStatus>,
    /// The incident type.
    pub kind: Option<&'a str>,
    pub severity: Option<Severity>,
    pub owner: Option<&'a str>,
    /// Only incidents not closed.
    pub open: bool,
    /// Only incidents created at or after this time (Unix ms).
    pub since: Option<i64>,
}

/// An incident ready to be stored.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub dedup_key: Option<String>,
    pub rule: Option<String>,
    /// The team; `None` takes the type's `role` from `[incidents.types]`.
    pub role: Option<String>,
    pub owner: Option<String>,
    /// The incident this one was spawned from (deputised and tracked from the parent).
    pub parent_id: Option<String>,
    /// Custom fields, checked against the type's declarations.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl NewIncident {
    /// A new incident with a fresh id and nothing else set.
    pub fn new(kind: &str, title: &str, severity: Severity) -> NewIncident {
        NewIncident {
            id: super::new_id('i'),
            kind: kind.to_owned(),
            title: title.to_owned(),
            severity,
            dedup_key: None,
            rule: None,
            role: None,
            owner: None,
            parent_id: None,
            fields: Default::default(),
        }
    }
}

/// Changes to an incident's fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct IncidentUpdate {
    pub severity: Option<Severity>,
    pub owner: Option<String>,
    pub role: Option<String>,
    pub title: Option<String>,
    /// Custom fields to set (`null` clears one); checked against the type's declarations.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl IncidentUpdate {
    fn is_empty(&self) -> bool {
        self.severity.is_none()
            && self.owner.is_none()
            && self.role.is_none()
            && self.title.is_none()
            && self.fields.is_empty()
    }
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IncidentRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub owner: Option<String>,
    pub dedup_key: Option<String>,
    pub occurrences: i64,
    pub rule: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub close_reason: Option<String>,
    pub role: Option<String>,
    pub parent_id: Option<String>,
    pub fields: serde_json::Map<String, serde_json::Value>,
    pub acknowledged_at: Option<i64>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IncidentEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub details: serde_json::Value,
}

/// An `incidents` row, by column name.
#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    title: String,
    severity: String,
    status: String,
    owner: Option<String>,
    dedup_key: Option<String>,
    occurrences: i64,
    rule: Option<String>,
    created_at: i64,
    updated_at: i64,
    closed_at: Option<i64>,
    close_reason: Option<String>,
    role: Option<String>,
    parent_id: Option<String>,
    fields: String,
    acknowledged_at: Option<i64>,
}

/// An incident's status, type and custom fields, as a change reads them before it writes.
#[derive(sqlx::FromRow)]
struct KindFieldsRow {
    status: String,
    #[sqlx(rename = "type")]
    kind: String,
    fields: String,
}

/// An `incident_events` row.
#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    at: i64,
    actor: String,
    kind: String,
    details: String,
}

const INCIDENT_COLUMNS: &str = "id, type, title, severity, status, owner, dedup_key, occurrences, rule, \
     created_at, updated_at, closed_at, close_reason, role, parent_id, fields, acknowledged_at";

fn incident_from_row(r: IncidentRow) -> Result<IncidentRecord> {
    let id = r.id;
    let severity = Severity::parse(&r.severity)
        .ok_or_else(|| StoreError::Corrupt(format!("incident {id}: severity '{}'", r.severity)))?;
    let status = IncidentStatus::parse(&r.status)
        .ok_or_else(|| StoreError::Corrupt(format!("incident {id}: status '{}'", r.status)))?;
    let fields = serde_json::from_str(&r.fields)
        .map_err(|e| StoreError::Corrupt(format!("incident {id}: fields: {e}")))?;
    Ok(IncidentRecord {
        id,
        kind: r.kind,
        title: r.title,
        severity,
        status,
        owner: r.owner,
        dedup_key: r.dedup_key,
        occurrences: r.occurrences,
        rule: r.rule,
        created_at: r.created_at,
        updated_at: r.updated_at,
        closed_at: r.closed_at,
        close_reason: r.close_reason,
        role: r.role,
        parent_id: r.parent_id,
        fields,
        acknowledged_at: r.acknowledged_at,
    })
}

/// Whether incident `id` exists, read inside the caller's transaction (so what refers to it
/// is written against the same state).
pub(super) async fn incident_exists(conn: &mut sqlx::AnyConnection, id: &str) -> Result<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Append an event to an incident's timeline, inside the caller's transaction.
pub(super) async fn add_event(
    conn: &mut sqlx::AnyConnection,
    incident: &str,
    actor: &Actor,
    kind: &str,
    details: serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incident_events (incident_id, seq, at, actor, kind, details)
         VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM incident_events WHERE incident_id = $1), $2, $3, $4, $5)",
    )
    .bind(incident)
    .bind(now_ms())
    .bind(actor.as_str())
    .bind(kind)
    .bind(details.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Store {
    /// One incident.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        let row: Option<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(incident_from_row).transpose()
    }

    /// One page of incidents matching `filter`, in the order of `keyset` (one of
    /// [`INCIDENT_SORTS`]).
    pub async fn incident_page(
        &self,
        filter: &IncidentFilter<'_>,
        keyset: &Keyset,
    ) -> Result<Page<IncidentRecord>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        for (column, value) in [
            ("status", filter.status.as_ref().map(IncidentStatus::as_str)),
            ("type", filter.kind),
            ("severity", filter.severity.as_ref().map(Severity::as_str)),
            ("owner", filter.owner),
        ] {
            if let Some(value) = value {
                args.push(value.into());
                conditions.push(format!("{column} = ${}", args.len()));
            }
        }
        if filter.open {
            args.push(IncidentStatus::Closed.as_str().into());
            conditions.push(format!("status <> ${}", args.len()));
        }
        if let Some(since) = filter.since {
            args.push(Arg::Int(Some(since)));
            conditions.push(format!("created_at >= ${}", args.len()));
        }
        let select = format!("SELECT {INCIDENT_COLUMNS} FROM incidents");
        let page: Page<IncidentRow> = page::fetch(
            &self.pool,
            &select,
            &conditions.join(" AND "),
            args,
            keyset,
            INCIDENT_SORTS,
            "id",
        )
        .await?;
        page.try_map(incident_from_row)
    }

    /// The newest incidents, optionally in one status (the first page of
    /// [`Store::incident_page`]).
    pub async fn incidents(&self, status: Option<IncidentStatus>, limit: i64) -> Result<Vec<IncidentRecord>> {
        let filter = IncidentFilter {
            status,
            ..IncidentFilter::default()
        };
        self.incidents_matching(&filter, limit).await
    }

    /// The newest `limit` incidents matching `filter` (a playbook's `incidents(...)`).
    pub async fn incidents_matching(
        &self,
        filter: &IncidentFilter<'_>,
        limit: i64,
    ) -> Result<Vec<IncidentRecord>> {
        let keyset = Keyset::first("created_at", true, limit);
        Ok(self.incident_page(filter, &keyset).await?.items)
    }

    /// An incident's timeline, in order.
    pub async fn incident_events(&self, id: &str) -> Result<Vec<IncidentEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT seq, at, actor, kind, details FROM incident_events WHERE incident_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(IncidentEvent {
                    seq: r.seq,
                    at: r.at,
                    actor: r.actor,
                    kind: r.kind,
                    details: serde_json::from_str(&r.details)
                        .map_err(|e| StoreError::Corrupt(format!("incident {id} event {}: {e}", r.seq)))?,
                })
            })
            .collect()
    }

    /// The incident's one timeline: its events with the steps of the runs it started merged
    /// in by time (kind `step`, with the run, the step's number, kind, request and outcome).
    pub async fn incident_timeline(&self, id: &str) -> Result<Vec<IncidentEvent>> {
        let events = self.incident_events(id).await?;
        let mut steps = Vec::new();
        for e in &events {
            if e.kind != "run" {
                continue;
            }
            let Some(run) = e.details["run"].as_str() else {
                continue;
            };
            for step in self.steps(run).await? {
                steps.push(IncidentEvent {
                    seq: e.seq,
                    at: step.started_at,
                    actor: format!("run:{run}"),
                    kind: "step".into(),
                    details: serde_json::json!({
                        "run": run,
                        "step": step.seq,
                        "kind": step.kind,
                        "request": step.request,
                        "outcome": step.outcome,
                        "ok": step.ok,
                        "duration_ms": step.duration_ms,
                    }),
                });
            }
        }
        // Merge: the events keep their order (their `seq`), each step goes before the first
        // event that is later than it.
        steps.sort_by_key(|e| e.at);
        let mut steps = steps.into_iter().peekable();
        let mut out = Vec::with_capacity(events.len() + steps.len());
        for e in events {
            while let Some(step) = steps.next_if(|s| s.at < e.at) {
                out.push(step);
            }
            out.push(e);
        }
        out.extend(steps);
        Ok(out)
    }

    /// The ids of the alerts linked to an incident, oldest first.
    pub async fn incident_alert_ids(&self, id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT alert_id FROM incident_alerts WHERE incident_id = $1 ORDER BY linked_at, alert_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Change an incident's status (audited as `incident.status`, on the timeline), and its
    /// SLA timers with it: `active` acknowledges (stops the acknowledge timer), `pending`
    /// pauses the timers and leaving it resumes them, `closed` stops them all (closing needs
    /// a reason and the type's required fields), and re-opening starts the resolve timer
    /// again. Returns false if there is no such incident.
    pub async fn set_incident_status(
        &self,
        id: &str,
        status: IncidentStatus,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let current: Option<KindFieldsRow> =
            sqlx::query_as("SELECT status, type, fields FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(KindFieldsRow {
            status: previous,
            kind,
            fields,
        }) = current
        else {
            return Ok(false);
        };
        // The stored text, as the timeline shows it; compared as a status.
        let was = IncidentStatus::parse(&previous);
        if status == IncidentStatus::Closed {
            let fields: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&fields).unwrap_or_default();
            let missing = self.cases.missing_required(&kind, &fields);
            if !missing.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "incident {id} cannot be closed before its required fields are set: {}",
                    missing.join(", ")
                )));
            }
        }
        let closed_at = (status == IncidentStatus::Closed).then_some(now);
        let acknowledges = matches!(status, IncidentStatus::Active | IncidentStatus::Closed);
        sqlx::query(
            "UPDATE incidents SET status = $1, closed_at = $2, close_reason = $3, updated_at = $4,
                 acknowledged_at = CASE WHEN $5 = 1 THEN COALESCE(acknowledged_at, $4) ELSE acknowledged_at END
             WHERE id = $6",
        )
        .bind(status.as_str())
        .bind(closed_at)
        // The closing reason; any other change's reason is only on the timeline.
        .bind(closed_at.and(reason))
        .bind(now)
        .bind(i64::from(acknowledges))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let subject = format!("incident:{id}");
        if was == Some(IncidentStatus::Closed) && status != IncidentStatus::Closed {
            sla::restart(&mut tx, &subject, "resolve", now).await?;
        }
        if was == Some(IncidentStatus::Pending) && status != IncidentStatus::Pending {
            sla::resume(&mut tx, &subject, now).await?;
        }
        match status {
            IncidentStatus::Closed => {
                sla::stop(&mut tx, &subject, None, now).await?;
            }
            IncidentStatus::Pending => {
                sla::pause(&mut tx, &subject, now).await?;
            }
            IncidentStatus::Active => {
                sla::stop(&mut tx, &subject, Some("acknowledge"), now).await?;
            }
            IncidentStatus::New => {}
        }
        let details = serde_json::json!({ "from": previous, "to": status, "reason": reason });
        add_event(&mut tx, id, actor, "status", details.clone()).await?;
        let change = Change {
            actor,
            action: "incident.status",
            target: format!("incident:{id}"),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Create an incident by hand or from a playbook (audited as `incident.create`): a child
    /// when `parent_id` is set (put on the parent's timeline too), starting its SLA timers
    /// and queueing `runs`. A playbook passes its step's key as `step_key`: the same step
    /// taken again returns the incident it made the first time. Returns the incident's id.
    pub async fn create_incident(
        &self,
        incident: &NewIncident,
        runs: &[NewRun],
        actor: &Actor,
        step_key: Option<&str>,
    ) -> Result<String> {
        if let Some(role) = &incident.role {
            crate::names::check("role", role).map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        if incident.title.trim().is_empty() {
            return Err(StoreError::Invalid("an incident needs a title".into()));
        }
        let mut tx = self.writer.begin().await?;
        if let Some(key) = step_key {
            let made: Option<String> = sqlx::query_scalar("SELECT id FROM incidents WHERE step_key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = made {
                return Ok(id);
            }
        }
        let opening = Opening {
            incident,
            alert: None,
            runs,
            step_key,
        };
        open_incidents(&mut tx, (&self.cases, &self.audit_key), &[opening], actor).await?;
        tx.commit().await?;
        Ok(incident.id.clone())
    }

    /// [`Store::create_incident`], unless an open incident has the new one's `dedup_key`:
    /// then that one is used (related to the new one's parent, if it has one) and its id
    /// returned instead. One incident for one concern, whoever asks for it.
    pub async fn create_or_join_incident(
        &self,
        incident: &NewIncident,
        actor: &Actor,
        step_key: Option<&str>,
    ) -> Result<String> {
        if let Some(key) = incident.dedup_key.as_deref()
            && let Some(Some((open, _))) = self.open_incidents_by_keys(&[key]).await?.remove(key)
        {
            // Its own child (this step, taken again) is tracked already.
            if let Some(parent) = incident.parent_id.as_deref()
                && self.incident(&open).await?.and_then(|i| i.parent_id).as_deref() != Some(parent)
            {
                self.relate_incidents(parent, &open, actor).await?;
            }
            return Ok(open);
        }
        self.create_incident(incident, &[], actor, step_key).await
    }

    /// Mark two incidents as related (both ways; audited as `incident.relate`, on both
    /// timelines). Returns false if they already were.
    pub async fn relate_incidents(&self, a: &str, b: &str, actor: &Actor) -> Result<bool> {
        if a == b {
            return Err(StoreError::Invalid(format!(
                "incident {a} cannot be related to itself"
            )));
        }
        let mut tx = self.writer.begin().await?;
        for id in [a, b] {
            if !incident_exists(&mut tx, id).await? {
                return Err(StoreError::Invalid(format!("no incident '{id}'")));
            }
        }
        let now = now_ms();
        let mut added = 0;
        for (x, y) in [(a, b), (b, a)] {
            added += sqlx::query(
                "INSERT INTO incident_relations (incident_id, related_id, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(x)
            .bind(y)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if added == 0 {
            return Ok(false);
        }
        for (x, y) in [(a, b), (b, a)] {
            add_event(&mut tx, x, actor, "related", serde_json::json!({ "incident": y })).await?;
        }
        let change = Change {
            actor,
            action: "incident.relate",
            target: format!("incident:{a}"),
            details: serde_json::json!({ "related": b }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The ids of the incidents related to `id`.
    pub async fn related_incidents(&self, id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT related_id FROM incident_relations WHERE incident_id = $1 ORDER BY created_at, related_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The incidents spawned from `id`, oldest first.
    pub async fn child_incidents(&self, id: &str) -> Result<Vec<IncidentRecord>> {
        let sql =
            format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE parent_id = $1 ORDER BY created_at, id");
        let rows: Vec<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(incident_from_row).collect()
    }

    /// Put an event on an incident's timeline once per `key` (a playbook's note or
    /// notification, taken again after a crash, is not written twice), audited as
    /// `incident.KIND`. Returns whether it
    /// was written; an unknown incident is an error.
    pub async fn incident_event_once(
        &self,
        id: &str,
        actor: &Actor,
        kind: &str,
        mut details: serde_json::Value,
        key: &str,
    ) -> Result<bool> {
        details["key"] = key.into();
        let mut tx = self.writer.begin().await?;
        if !incident_exists(&mut tx, id).await? {
            return Err(StoreError::Corrupt(format!("no incident '{id}'")));
        }
        let seen: Option<i64> = sqlx::query_scalar(
            "SELECT seq FROM incident_events WHERE incident_id = $1 AND kind = $2 AND details LIKE $3",
        )
        .bind(id)
        .bind(kind)
        .bind(format!("%\"key\":{}%", serde_json::Value::from(key)))
        .fetch_optional(&mut *tx)
        .await?;
        if seen.is_some() {
            return Ok(false);
        }
        add_event(&mut tx, id, actor, kind, details.clone()).await?;
        let action = format!("incident.{kind}");
        let change = Change {
            actor,
            action: &action,
            target: format!("incident:{id}"),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Change an incident's title, severity, owner, team and custom fields (audited as
    /// `incident.update`, on the timeline). Custom fields are checked against the type's
    /// declarations. Returns false if there is no such incident.
    pub async fn update_incident(&self, id: &str, update: &IncidentUpdate, actor: &Actor) -> Result<bool> {
        if let Some(role) = &update.role {
            crate::names::check("role", role).map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        if update.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(StoreError::Invalid("an incident's title cannot be empty".into()));
        }
        if update.is_empty() {
            return Ok(self.incident(id).await?.is_some());
        }
        let mut tx = self.writer.begin().await?;
        let current: Option<KindFieldsRow> =
            sqlx::query_as("SELECT status, type, fields FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(KindFieldsRow { kind, fields, .. }) = current else {
            return Ok(false);
        };
        let fields = if update.fields.is_empty() {
            None
        } else {
            let current: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&fields)
                .map_err(|e| StoreError::Corrupt(format!("incident {id}: fields: {e}")))?;
            let merged = self
                .cases
                .apply_fields(&kind, &current, &update.fields)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            Some(serde_json::Value::Object(merged).to_string())
        };
        sqlx::query(
            "UPDATE incidents SET severity = COALESCE($1, severity), owner = COALESCE($2, owner),
                 role = COALESCE($3, role), title = COALESCE($4, title), fields = COALESCE($5, fields),
                 updated_at = $6
             WHERE id = $7",
        )
        .bind(update.severity.map(|s| s.as_str()))
        .bind(&update.owner)
        .bind(&update.role)
        .bind(&update.title)
        .bind(fields)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let mut details = serde_json::Map::new();
        if let Some(s) = update.severity {
            details.insert("severity".into(), s.as_str().into());
        }
        for (name, value) in [
            ("owner", &update.owner),
            ("role", &update.role),
            ("title", &update.title),
        ] {
            if let Some(v) = value {
                details.insert(name.into(), v.clone().into());
            }
        }
        if !update.fields.is_empty() {
            details.insert("fields".into(), update.fields.clone().into());
        }
        let details = serde_json::Value::Object(details);
        add_event(&mut tx, id, actor, "update", details.clone()).await?;
        let change = Change {
            actor,
            action: "incident.update",
            target: format!("incident:{id}"),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn incident_status_names_parse_to_themselves() {
        use super::IncidentStatus;
        for name in IncidentStatus::NAMES {
            assert_eq!(IncidentStatus::parse(name).map(|s| s.as_str()), Some(*name));
            let json = serde_json::to_value(IncidentStatus::parse(name).unwrap()).unwrap();
            assert_eq!(json, *name, "serialised as stored");
        }
        assert_eq!(IncidentStatus::NAMES.len(), 4);
        assert_eq!(IncidentStatus::parse("nonsense"), None);
    }

    use super::super::testing::both_dialects;

    both_dialects!(open_and_since_narrow_a_search, |store| {
        use crate::intake::Severity;
        use crate::store::audit::Actor;
        use crate::store::incidents::{IncidentFilter, IncidentStatus, NewIncident};
        let cli = Actor::cli();
        let mut ids = Vec::new();
        for (title, severity) in [
            ("old critical", Severity::Critical),
            ("closed critical", Severity::Critical),
            ("new high", Severity::High),
            ("new critical", Severity::Critical),
        ] {
            let new = NewIncident::new("generic", title, severity);
            ids.push(store.create_incident(&new, &[], &cli, None).await.unwrap());
        }
        store
            .set_incident_status(&ids[1], IncidentStatus::Closed, Some("done"), &cli)
            .await
            .unwrap();
        let created_at = |i: usize| {
            let id = ids[i].clone();
            let store = store.clone();
            async move { store.incident(&id).await.unwrap().unwrap().created_at }
        };
        let titles = |found: Vec<crate::store::incidents::IncidentRecord>| {
            let mut t: Vec<String> = found.into_iter().map(|i| i.title).collect();
            t.sort();
            t
        };
        let open_critical = IncidentFilter {
            severity: Some(Severity::Critical),
            open: true,
            ..IncidentFilter::default()
        };
        let found = store.incidents_matching(&open_critical, 10).await.unwrap();
        assert_eq!(titles(found), vec!["new critical", "old critical"]);
        let from_first = IncidentFilter {
            since: Some(created_at(0).await),
            ..open_critical
        };
        let found = store.incidents_matching(&from_first, 10).await.unwrap();
        assert_eq!(titles(found).len(), 2, "created at the time counts");
        let after_last = IncidentFilter {
            since: Some(created_at(3).await + 1),
            ..open_critical
        };
        let found = store.incidents_matching(&after_last, 10).await.unwrap();
        assert!(found.is_empty(), "older incidents are left out: {found:?}");
        let found = store
            .incidents_matching(&IncidentFilter::default(), 2)
            .await
            .unwrap();
        assert_eq!(found.len(), 2, "the limit holds");
    });

    both_dialects!(a_dedup_key_joins_the_open_incident_that_has_it, |store| {
        use crate::intake::Severity;
        use crate::store::audit::Actor;
        use crate::store::incidents::{IncidentStatus, NewIncident};
        let cli = Actor::cli();
        let investigation = |title: &str| NewIncident::new("ids-alert", title, Severity::Low);
        let p1 = store
            .create_incident(&investigation("first"), &[], &cli, None)
            .await
            .unwrap();
        let p2 = store
            .create_incident(&investigation("second"), &[], &cli, None)
            .await
            .unwrap();
        let tuning = |parent: &str| {
            let mut t = NewIncident::new("signature-tuning", "tune 2019401", Severity::Low);
            t.parent_id = Some(parent.to_owned());
            t.dedup_key = Some("tuning:ids:2019401".into());
            t
        };
        let t = store
            .create_or_join_incident(&tuning(&p1), &Actor::run("r1"), Some("r1:3"))
            .await
            .unwrap();
        // The same step taken again: the same child, and no relation to its own parent.
        let again = store
            .create_or_join_incident(&tuning(&p1), &Actor::run("r1"), Some("r1:3"))
            .await
            .unwrap();
        assert_eq!(again, t);
        assert!(store.related_incidents(&p1).await.unwrap().is_empty());
        // Another investigation joins it: related both ways, not a second child.
        let joined = store
            .create_or_join_incident(&tuning(&p2), &Actor::run("r2"), Some("r2:3"))
            .await
            .unwrap();
        assert_eq!(joined, t);
        assert_eq!(store.related_incidents(&t).await.unwrap(), vec![p2.clone()]);
        assert!(store.child_incidents(&p2).await.unwrap().is_empty());
        // Closed, it is joined no more: the next one is new.
        store
            .set_incident_status(&t, IncidentStatus::Closed, Some("tuned"), &cli)
            .await
            .unwrap();
        let next = store
            .create_or_join_incident(&tuning(&p2), &Actor::run("r3"), Some("r3:3"))
            .await
            .unwrap();
        assert_ne!(next, t);
        assert_eq!(store.child_incidents(&p2).await.unwrap().len(), 1);
    });

    both_dialects!(children_relations_fields_and_teams, |store| {
        use crate::intake::Severity;
        use crate::store::audit::Actor;
        use crate::store::incidents::{IncidentUpdate, NewIncident};
        let types: crate::cases::IncidentsConfig = toml::from_str(
            r#"
            [types.miner]
            role = "soc"
            fields.asset = { type = "text" }
            fields.confidence = { type = "choice", options = ["low", "high"] }
            "#,
        )
        .unwrap();
        let store = store.clone().with_incident_types(types);
        let cli = Actor::cli();
        let parent = store
            .create_incident(
                &NewIncident::new("miner", "cpu at 100%", Severity::High),
                &[],
                &cli,
                None,
            )
            .await
            .unwrap();
        let p = store.incident(&parent).await.unwrap().unwrap();
        assert_eq!(p.role.as_deref(), Some("soc"), "the type's team");

        // A child, deputised to bob, tracked from the parent; the same step spawns it once.
        let mut child = NewIncident::new("containment", "re-image pc-17", Severity::Medium);
        child.parent_id = Some(parent.clone());
        child.owner = Some("bob".into());
        let c1 = store
            .create_incident(&child, &[], &Actor::run("r1"), Some("r1:2"))
            .await
            .unwrap();
        let mut again = child.clone();
        again.id = crate::store::new_id('i');
        let c2 = store
            .create_incident(&again, &[], &Actor::run("r1"), Some("r1:2"))
            .await
            .unwrap();
        assert_eq!(c1, c2);
        let children = store.child_incidents(&parent).await.unwrap();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].owner.as_deref(), Some("bob"));
        assert_eq!(children[0].parent_id.as_deref(), Some(parent.as_str()));
        let kinds: Vec<String> = store
            .incident_events(&parent)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, vec!["created", "child"]);
        let mut orphan = child.clone();
        orphan.id = crate::store::new_id('i');
        orphan.parent_id = Some("i-none".into());
        let e = store.create_incident(&orphan, &[], &cli, None).await.unwrap_err();
        assert!(e.to_string().contains("no parent incident 'i-none'"), "{e}");

        // Related, both ways, once.
        assert!(store.relate_incidents(&parent, &c1, &cli).await.unwrap());
        assert!(!store.relate_incidents(&c1, &parent, &cli).await.unwrap());
        assert_eq!(store.related_incidents(&c1).await.unwrap(), vec![parent.clone()]);
        assert_eq!(store.related_incidents(&parent).await.unwrap(), vec![c1.clone()]);
        assert!(store.relate_incidents(&parent, &parent, &cli).await.is_err());
        assert!(store.relate_incidents(&parent, "i-none", &cli).await.is_err());

        // Custom fields are checked; a refused change changes nothing.
        let mut u = IncidentUpdate::default();
        u.fields.insert("confidence".into(), "maybe".into());
        let e = store.update_incident(&parent, &u, &cli).await.unwrap_err();
        assert!(e.to_string().contains("one of low, high"), "{e}");
        let mut u = IncidentUpdate {
            role: Some("tier2".into()),
            ..Default::default()
        };
        u.fields.insert("asset".into(), "pc-17".into());
        u.fields.insert("confidence".into(), "high".into());
        assert!(store.update_incident(&parent, &u, &cli).await.unwrap());
        let mut clear = IncidentUpdate::default();
        clear.fields.insert("confidence".into(), serde_json::Value::Null);
        store.update_incident(&parent, &clear, &cli).await.unwrap();
        let p = store.incident(&parent).await.unwrap().unwrap();
        assert_eq!(p.role.as_deref(), Some("tier2"));
        assert_eq!(
            serde_json::Value::Object(p.fields),
            serde_json::json!({"asset": "pc-17"})
        );
        let e = store
            .create_incident(
                &NewIncident {
                    fields: u.fields.clone(),
                    ..NewIncident::new("other", "x", Severity::Low)
                },
                &[],
                &cli,
                None,
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("has no custom fields"), "{e}");
        assert!(!store.update_incident("i-none", &u, &cli).await.unwrap());
    });
}
