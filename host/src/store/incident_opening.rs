//! Opening incidents inside the caller's transaction: the incident rows, the alert each was
//! opened from linked, SLA timers started, the runs queued, the timeline's first events and
//! the audit entries, a few statements for a whole batch. One incident made from the API or
//! a playbook is a batch of one; triage (`triage.rs`) opens all of a batch's incidents at
//! once and gives their alerts their disposition itself.

use super::audit::{self, Actor, Change};
use super::incidents::{NewIncident, add_event, incident_exists};
use super::runs::NewRun;
use super::sla::{self, TimerStart};
use super::writer::{ROWS_PER_STATEMENT, Write, execute_all, rows};
use super::{Result, StoreError, now_ms};
use crate::cases::IncidentsConfig;

/// One incident to open.
pub(super) struct Opening<'a> {
    pub incident: &'a NewIncident,
    /// The alert it is opened from, linked to it (its disposition is the caller's).
    pub alert: Option<&'a str>,
    /// The runs it starts.
    pub runs: &'a [NewRun],
    /// The playbook step that spawns it, if any.
    pub step_key: Option<&'a str>,
}

/// What each opening becomes before it is written: its checked fields and team.
struct Checked<'a> {
    open: &'a Opening<'a>,
    fields: String,
    role: Option<&'a str>,
}

/// Open `openings` on `tx`, inside the caller's transaction, as `actor`.
pub(super) async fn open_incidents(
    tx: &mut sqlx::AnyConnection,
    (cases, key): (&IncidentsConfig, &crate::vault::AuditChainKey),
    openings: &[Opening<'_>],
    actor: &Actor,
) -> Result<()> {
    if openings.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let sqlite = tx.backend_name() == "SQLite";
    let mut checked = Vec::with_capacity(openings.len());
    for open in openings {
        let incident = open.incident;
        let fields = cases
            .apply_fields(&incident.kind, &Default::default(), &incident.fields)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        if let Some(parent) = &incident.parent_id
            && !incident_exists(tx, parent).await?
        {
            return Err(StoreError::Invalid(format!("no parent incident '{parent}'")));
        }
        checked.push(Checked {
            open,
            fields: serde_json::Value::Object(fields).to_string(),
            role: incident.role.as_deref().or_else(|| cases.role(&incident.kind)),
        });
    }

    for chunk in checked.chunks(ROWS_PER_STATEMENT) {
        let sql =
            format!(
            "INSERT INTO incidents (id, type, title, severity, status, owner, dedup_key, occurrences, rule,
                 created_at, updated_at, role, parent_id, fields, step_key)
             VALUES {}",
            rows("(?, ?, ?, ?, 'new', ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            let incident = c.open.incident;
            q = q
                .bind(&incident.id)
                .bind(&incident.kind)
                .bind(&incident.title)
                .bind(incident.severity.as_str())
                .bind(&incident.owner)
                .bind(&incident.dedup_key)
                .bind(&incident.rule)
                .bind(now)
                .bind(now)
                .bind(c.role)
                .bind(&incident.parent_id)
                .bind(&c.fields)
                .bind(c.open.step_key);
        }
        q.execute(&mut *tx).await?;
    }

    let links: Vec<(&str, &str)> = openings
        .iter()
        .filter_map(|o| Some((o.incident.id.as_str(), o.alert?)))
        .collect();
    for chunk in links.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO incident_alerts (incident_id, alert_id, linked_at) VALUES {}",
            rows("(?, ?, ?)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (incident, alert) in chunk {
            q = q.bind(*incident).bind(*alert).bind(now);
        }
        q.execute(&mut *tx).await?;
    }

    let subjects: Vec<String> = openings
        .iter()
        .map(|o| format!("incident:{}", o.incident.id))
        .collect();
    let mut timers = Vec::new();
    for (open, subject) in openings.iter().zip(&subjects) {
        let sla = cases.sla(&open.incident.kind);
        for (timer, ms) in [("acknowledge", sla.acknowledge_ms), ("resolve", sla.resolve_ms)] {
            if let Some(duration_ms) = ms {
                timers.push(TimerStart {
                    subject,
                    timer,
                    incident: Some(&open.incident.id),
                    duration_ms,
                });
            }
        }
    }
    sla::start_all(tx, &timers, now).await?;

    // The runs, grouped into a statement per 500 like any batch of writes.
    let writes: Vec<Write> = openings
        .iter()
        .flat_map(|o| o.runs.iter().cloned().map(Write::CreateRun))
        .collect();
    for result in execute_all(tx, writes).await? {
        result?;
    }

    // Each new incident's timeline: "created", then a "run" per run started (numbered here:
    // the incidents are new, so their timelines are empty).
    let mut events: Vec<(&str, i64, &str, serde_json::Value)> = Vec::new();
    for open in openings {
        let incident = open.incident;
        let created = serde_json::json!({
            "alert": open.alert,
            "rule": incident.rule,
            "dedup_key": incident.dedup_key,
            "parent": incident.parent_id,
        });
        events.push((&incident.id, 1, "created", created));
        for (seq, run) in (2..).zip(open.runs) {
            let started = serde_json::json!({ "run": run.id, "playbook": run.playbook });
            events.push((&incident.id, seq, "run", started));
        }
    }
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO incident_events (incident_id, seq, at, actor, kind, details) VALUES {}",
            rows("(?, ?, ?, ?, ?, ?)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (incident, seq, kind, details) in chunk {
            q = q
                .bind(*incident)
                .bind(*seq)
                .bind(now)
                .bind(actor.as_str())
                .bind(*kind)
                .bind(details.to_string());
        }
        q.execute(&mut *tx).await?;
    }
    // A parent's timeline goes on from where it is.
    for c in &checked {
        let incident = c.open.incident;
        if let Some(parent) = &incident.parent_id {
            let child = serde_json::json!({ "child": incident.id, "title": incident.title, "owner": incident.owner, "role": c.role });
            add_event(tx, parent, actor, "child", child).await?;
        }
    }

    let changes: Vec<Change> = checked
        .iter()
        .map(|c| {
            let (incident, open) = (c.open.incident, c.open);
            Change {
                actor,
                action: "incident.create",
                target: format!("incident:{}", incident.id),
                details: serde_json::json!({
                    "type": incident.kind,
                    "title": incident.title,
                    "severity": incident.severity,
                    "alert": open.alert,
                    "rule": incident.rule,
                    "parent": incident.parent_id,
                    "role": c.role,
                    "owner": incident.owner,
                    "runs": open.runs.iter().map(|r| &r.playbook).collect::<Vec<_>>(),
                }),
            }
        })
        .collect();
    audit::append_all(tx, key, &changes).await?;
    Ok(())
}
