//! Incidents, the alerts linked to them, their timeline, and what pre-processing did with
//! each alert. Creating an incident from an alert, linking the alert and queueing its runs
//! happen in one transaction, so a crash never leaves an incident without its runs or an
//! alert marked done without its incident.

use super::audit::{self, Actor, Change};
use super::runs::NewRun;
use super::writer::Write;
use super::{Result, Store, StoreError, now_ms};
use crate::intake::Severity;
use serde::Serialize;

/// An incident's state.
pub const STATUSES: &[&str] = &["new", "active", "pending", "closed"];

/// An incident ready to be stored.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub dedup_key: Option<String>,
    pub rule: Option<String>,
}

/// An incident as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub severity: Severity,
    pub status: String,
    pub owner: Option<String>,
    pub dedup_key: Option<String>,
    pub occurrences: i64,
    pub rule: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub close_reason: Option<String>,
}

/// One entry of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentEvent {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub details: serde_json::Value,
}

/// What pre-processing decided for a batch of alerts, written in one transaction.
#[derive(Debug, Default)]
pub struct Triage {
    /// Alerts dropped by a rule or matched by none: (alert, "dropped" | "unmatched", rule).
    pub dispositions: Vec<(String, &'static str, Option<String>)>,
    /// New incidents, each with the alert that opened it and the runs it starts.
    pub opened: Vec<(NewIncident, String, Vec<NewRun>)>,
    /// Alerts folded into or linked to an open incident: (incident, alert, rule, duplicate).
    pub linked: Vec<(String, String, String, bool)>,
}

type IncidentRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<String>,
);

const INCIDENT_COLUMNS: &str = "id, type, title, severity, status, owner, dedup_key, occurrences, rule, \
     created_at, updated_at, closed_at, close_reason";

fn incident_from_row(r: IncidentRow) -> Result<IncidentRecord> {
    let (
        id,
        kind,
        title,
        severity,
        status,
        owner,
        dedup_key,
        occurrences,
        rule,
        created_at,
        updated_at,
        closed_at,
        close_reason,
    ) = r;
    let severity = Severity::parse(&severity)
        .ok_or_else(|| StoreError::Corrupt(format!("incident {id}: severity '{severity}'")))?;
    Ok(IncidentRecord {
        id,
        kind,
        title,
        severity,
        status,
        owner,
        dedup_key,
        occurrences,
        rule,
        created_at,
        updated_at,
        closed_at,
        close_reason,
    })
}

/// Append an event to an incident's timeline, inside the caller's transaction.
async fn add_event(
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

/// Record what pre-processing did with an alert, inside the caller's transaction.
async fn set_disposition(
    conn: &mut sqlx::AnyConnection,
    alert: &str,
    disposition: &str,
    rule: Option<&str>,
    incident: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE alerts SET disposition = $1, rule = $2, incident_id = $3, processed_at = $4 WHERE id = $5",
    )
    .bind(disposition)
    .bind(rule)
    .bind(incident)
    .bind(now_ms())
    .bind(alert)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Create `incident` from `alert`, link them, and queue `runs`, inside the caller's transaction.
async fn open_incident(
    tx: &mut sqlx::AnyConnection,
    incident: &NewIncident,
    alert: &str,
    runs: &[NewRun],
    system: &Actor,
) -> Result<()> {
    let now = now_ms();
    sqlx::query(
            "INSERT INTO incidents (id, type, title, severity, status, dedup_key, occurrences, rule, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'new', $5, 1, $6, $7, $7)",
        )
        .bind(&incident.id)
        .bind(&incident.kind)
        .bind(&incident.title)
        .bind(incident.severity.as_str())
        .bind(&incident.dedup_key)
        .bind(&incident.rule)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO incident_alerts (incident_id, alert_id, linked_at) VALUES ($1, $2, $3)")
        .bind(&incident.id)
        .bind(alert)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let created =
        serde_json::json!({ "alert": alert, "rule": incident.rule, "dedup_key": incident.dedup_key });
    add_event(tx, &incident.id, system, "created", created).await?;
    for run in runs {
        Write::CreateRun(run.clone()).execute(tx).await?;
        let started = serde_json::json!({ "run": run.id, "playbook": run.playbook });
        add_event(tx, &incident.id, system, "run", started).await?;
    }
    set_disposition(
        tx,
        alert,
        "incident",
        incident.rule.as_deref(),
        Some(&incident.id),
    )
    .await?;
    let change = Change {
        actor: system,
        action: "incident.create",
        target: format!("incident:{}", incident.id),
        details: serde_json::json!({
            "type": incident.kind,
            "title": incident.title,
            "severity": incident.severity,
            "alert": alert,
            "rule": incident.rule,
            "runs": runs.iter().map(|r| &r.playbook).collect::<Vec<_>>(),
        }),
    };
    audit::append(tx, &change).await?;
    Ok(())
}

impl Store {
    /// Alerts that pre-processing has not looked at yet, oldest first, as JSON (the shape
    /// rule expressions see).
    pub async fn unprocessed_alerts(&self, limit: i64) -> Result<Vec<super::alerts::StoredAlert>> {
        // `$2` (no value here) is only named so that every `alerts_where` binds the same two.
        self.alerts_where("processed_at IS NULL AND $2 IS NULL ORDER BY id", None, limit)
            .await
    }

    /// The open incident with deduplication key `key`, created at or after `since`.
    pub async fn open_incident_by_key(&self, key: &str, since: i64) -> Result<Option<IncidentRecord>> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE dedup_key = $1 AND status <> 'closed' AND created_at >= $2
             ORDER BY created_at DESC LIMIT 1"
        );
        let row: Option<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .bind(since)
            .fetch_optional(&self.pool)
            .await?;
        row.map(incident_from_row).transpose()
    }

    /// Write a batch's decisions in one transaction, a few statements for the whole batch:
    /// new incidents with their runs, then links (one timeline event per incident for all
    /// its new alerts), then every alert's disposition.
    pub async fn apply_triage(&self, triage: &Triage) -> Result<()> {
        use super::writer::rows;
        let now = now_ms();
        let system = Actor::system();
        let mut tx = self.writer.begin().await?;
        let sqlite = tx.backend_name() == "SQLite";
        for (incident, alert, runs) in &triage.opened {
            open_incident(&mut tx, incident, alert, runs, &system).await?;
        }
        if !triage.linked.is_empty() {
            // Per incident: how many duplicates, and the alerts.
            let mut per_incident: std::collections::BTreeMap<&str, (i64, Vec<&str>, &str, bool)> =
                Default::default();
            for (incident, alert, rule, duplicate) in &triage.linked {
                let e = per_incident
                    .entry(incident)
                    .or_insert((0, Vec::new(), rule, *duplicate));
                e.0 += i64::from(*duplicate);
                e.1.push(alert);
            }
            for chunk in triage.linked.chunks(super::writer::ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO incident_alerts (incident_id, alert_id, linked_at) VALUES {}",
                    rows("(?, ?, ?)", chunk.len(), sqlite)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (incident, alert, ..) in chunk {
                    q = q.bind(incident).bind(alert).bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            for (incident, (duplicates, alerts, rule, duplicate)) in &per_incident {
                if *duplicates > 0 {
                    sqlx::query(
                        "UPDATE incidents SET occurrences = occurrences + $1, updated_at = $2 WHERE id = $3",
                    )
                    .bind(duplicates)
                    .bind(now)
                    .bind(incident)
                    .execute(&mut *tx)
                    .await?;
                }
                let kind = if *duplicate { "duplicate" } else { "alert" };
                let details = serde_json::json!({ "alerts": alerts, "rule": rule });
                add_event(&mut tx, incident, &system, kind, details).await?;
            }
        }
        let mut fates: Vec<(&str, &str, Option<&str>, Option<&str>)> = triage
            .dispositions
            .iter()
            .map(|(a, d, r)| (a.as_str(), *d, r.as_deref(), None))
            .collect();
        fates.extend(triage.linked.iter().map(|(incident, alert, rule, duplicate)| {
            let d = if *duplicate { "duplicate" } else { "linked" };
            (alert.as_str(), d, Some(rule.as_str()), Some(incident.as_str()))
        }));
        for chunk in fates.chunks(super::writer::ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, disposition, rule, incident_id, at) AS (VALUES {})
                 UPDATE alerts SET disposition = v.disposition, rule = v.rule, incident_id = v.incident_id,
                     processed_at = v.at
                 FROM v WHERE alerts.id = v.id",
                rows("(?, ?, ?, ?, ?)", chunk.len(), sqlite)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (alert, disposition, rule, incident) in chunk {
                q = q
                    .bind(*alert)
                    .bind(*disposition)
                    .bind(*rule)
                    .bind(*incident)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One incident.
    pub async fn incident(&self, id: &str) -> Result<Option<IncidentRecord>> {
        let sql = format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = $1");
        let row: Option<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(incident_from_row).transpose()
    }

    /// The newest incidents, optionally in one status.
    pub async fn incidents(&self, status: Option<&str>, limit: i64) -> Result<Vec<IncidentRecord>> {
        let sql = format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ($1 IS NULL OR status = $1)
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<IncidentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(incident_from_row).collect()
    }

    /// An incident's timeline, in order.
    pub async fn incident_events(&self, id: &str) -> Result<Vec<IncidentEvent>> {
        let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT seq, at, actor, kind, details FROM incident_events WHERE incident_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(seq, at, actor, kind, details)| {
                Ok(IncidentEvent {
                    seq,
                    at,
                    actor,
                    kind,
                    details: serde_json::from_str(&details)
                        .map_err(|e| StoreError::Corrupt(format!("incident {id} event {seq}: {e}")))?,
                })
            })
            .collect()
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

    /// Change an incident's status (closing needs a reason; re-opening clears it). Audited as
    /// `incident.status` and put on the timeline. Returns false if there is no such incident.
    pub async fn set_incident_status(
        &self,
        id: &str,
        status: &str,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<bool> {
        debug_assert!(STATUSES.contains(&status));
        let now = now_ms();
        let closed_at = (status == "closed").then_some(now);
        let mut tx = self.writer.begin().await?;
        let previous: Option<String> = sqlx::query_scalar("SELECT status FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(previous) = previous else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE incidents SET status = $1, closed_at = $2, close_reason = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(status)
        .bind(closed_at)
        .bind(reason)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let details = serde_json::json!({ "from": previous, "to": status, "reason": reason });
        add_event(&mut tx, id, actor, "status", details.clone()).await?;
        let change = Change {
            actor,
            action: "incident.status",
            target: format!("incident:{id}"),
            details,
        };
        audit::append(&mut tx, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Put an event on an incident's timeline once per `key` (a playbook's note or
    /// notification, taken again after a crash, is not written twice). Returns whether it
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
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
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
        add_event(&mut tx, id, actor, kind, details).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Change an incident's severity and owner (audited as `incident.update`, on the
    /// timeline). Returns false if there is no such incident.
    pub async fn update_incident(
        &self,
        id: &str,
        severity: Option<Severity>,
        owner: Option<&str>,
        actor: &Actor,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE incidents SET severity = COALESCE($1, severity), owner = COALESCE($2, owner), updated_at = $3
             WHERE id = $4",
        )
        .bind(severity.map(|s| s.as_str()))
        .bind(owner)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if done {
            let details = serde_json::json!({ "severity": severity, "owner": owner });
            add_event(&mut tx, id, actor, "update", details.clone()).await?;
            let change = Change {
                actor,
                action: "incident.update",
                target: format!("incident:{id}"),
                details,
            };
            audit::append(&mut tx, &change).await?;
        }
        tx.commit().await?;
        Ok(done)
    }
}
