//! SLA timers: `acknowledge` and `resolve` on incidents, `due` on tasks. A timer runs from
//! its start to its deadline; pausing it (an incident waiting in `pending`) moves the
//! deadline by the time it was paused; it stops when what it measures happens (met), or it
//! breaches when the deadline passes first. A breach is recorded once, even with several
//! servers (compare-and-set), with a timeline event, an audit entry and the runs of the
//! playbooks that trigger on it, in one transaction.

use super::audit::{self, Actor, Change};
use super::incidents::add_event;
use super::runs::NewRun;
use super::writer::Write;
use super::{Result, Store, now_ms};
use serde::Serialize;

/// One timer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlaTimer {
    /// `incident:ID` or `task:ID`.
    pub subject: String,
    /// `acknowledge`, `resolve` or `due`.
    pub timer: String,
    /// The incident it belongs to (a task's incident).
    pub incident_id: Option<String>,
    pub duration_ms: i64,
    pub started_at: i64,
    /// The deadline, moved by pauses.
    pub due_at: i64,
    pub paused_at: Option<i64>,
    /// Time spent paused before the current pause.
    pub paused_ms: i64,
    pub stopped_at: Option<i64>,
    pub breached_at: Option<i64>,
}

impl SlaTimer {
    /// `breached` (even if it stopped later), `met`, `paused` or `running`.
    pub fn state(&self) -> &'static str {
        if self.breached_at.is_some() {
            "breached"
        } else if self.stopped_at.is_some() {
            "met"
        } else if self.paused_at.is_some() {
            "paused"
        } else {
            "running"
        }
    }

    /// The breach as the timeline, the audit log and a triggered run (`breach`) see it.
    pub fn breach(&self, now: i64) -> serde_json::Value {
        serde_json::json!({
            "subject": self.subject,
            "timer": self.timer,
            "task": self.task(),
            "due_at": self.due_at,
            "late_ms": now - self.due_at,
        })
    }

    /// The task id, for a task's timer.
    pub fn task(&self) -> Option<&str> {
        self.subject.strip_prefix("task:")
    }
}

/// An `sla_timers` row, by column name.
#[derive(sqlx::FromRow)]
struct TimerRow {
    subject: String,
    timer: String,
    incident_id: Option<String>,
    duration_ms: i64,
    started_at: i64,
    due_at: i64,
    paused_at: Option<i64>,
    paused_ms: i64,
    stopped_at: Option<i64>,
    breached_at: Option<i64>,
}

const TIMER_COLUMNS: &str = "subject, timer, incident_id, duration_ms, started_at, due_at, paused_at, paused_ms, stopped_at, breached_at";

fn timer_from_row(r: TimerRow) -> SlaTimer {
    let TimerRow {
        subject,
        timer,
        incident_id,
        duration_ms,
        started_at,
        due_at,
        paused_at,
        paused_ms,
        stopped_at,
        breached_at,
    } = r;
    SlaTimer {
        subject,
        timer,
        incident_id,
        duration_ms,
        started_at,
        due_at,
        paused_at,
        paused_ms,
        stopped_at,
        breached_at,
    }
}

/// Start (or start again from zero) `timer` on `subject`, inside the caller's transaction.
pub(super) async fn start(
    conn: &mut sqlx::AnyConnection,
    subject: &str,
    timer: &str,
    incident: Option<&str>,
    duration_ms: i64,
    now: i64,
) -> Result<()> {
    start_all(
        conn,
        &[TimerStart {
            subject,
            timer,
            incident,
            duration_ms,
        }],
        now,
    )
    .await
}

/// A timer to start: see [`start`].
pub(super) struct TimerStart<'a> {
    pub subject: &'a str,
    pub timer: &'a str,
    pub incident: Option<&'a str>,
    pub duration_ms: i64,
}

/// [`start`] for many timers, a statement per 500 (no two of them the same subject and
/// timer).
pub(super) async fn start_all(
    conn: &mut sqlx::AnyConnection,
    timers: &[TimerStart<'_>],
    now: i64,
) -> Result<()> {
    let sqlite = conn.backend_name() == "SQLite";
    for chunk in timers.chunks(super::writer::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO sla_timers (subject, timer, incident_id, duration_ms, started_at, due_at, paused_ms)
             VALUES {}
             ON CONFLICT (subject, timer) DO UPDATE SET duration_ms = excluded.duration_ms,
                 started_at = excluded.started_at, due_at = excluded.due_at, paused_at = NULL,
                 paused_ms = 0, stopped_at = NULL, breached_at = NULL",
            super::writer::rows("(?, ?, ?, ?, ?, ?, 0)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for t in chunk {
            q = q
                .bind(t.subject)
                .bind(t.timer)
                .bind(t.incident)
                .bind(t.duration_ms)
                .bind(now)
                .bind(now.saturating_add(t.duration_ms));
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Start `timer` on `subject` again with its own duration (a re-opened incident's resolve
/// timer). Returns whether there was such a timer.
pub(super) async fn restart(
    conn: &mut sqlx::AnyConnection,
    subject: &str,
    timer: &str,
    now: i64,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE sla_timers SET started_at = $1, due_at = $1 + duration_ms, paused_at = NULL, paused_ms = 0,
             stopped_at = NULL, breached_at = NULL
         WHERE subject = $2 AND timer = $3",
    )
    .bind(now)
    .bind(subject)
    .bind(timer)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0)
}

/// Stop the running timers of `subject` (only `timer` if given): what they measure happened.
pub(super) async fn stop(
    conn: &mut sqlx::AnyConnection,
    subject: &str,
    timer: Option<&str>,
    now: i64,
) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE sla_timers SET stopped_at = $1 WHERE subject = $2 AND ($3 IS NULL OR timer = $3) AND stopped_at IS NULL",
    )
    .bind(now)
    .bind(subject)
    .bind(timer)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Pause the running timers of `subject`. Returns how many were paused.
pub(super) async fn pause(conn: &mut sqlx::AnyConnection, subject: &str, now: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE sla_timers SET paused_at = $1
         WHERE subject = $2 AND paused_at IS NULL AND stopped_at IS NULL AND breached_at IS NULL",
    )
    .bind(now)
    .bind(subject)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Resume the paused timers of `subject`, moving each deadline by the time it was paused.
pub(super) async fn resume(conn: &mut sqlx::AnyConnection, subject: &str, now: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE sla_timers SET due_at = due_at + ($1 - paused_at), paused_ms = paused_ms + ($1 - paused_at),
             paused_at = NULL
         WHERE subject = $2 AND paused_at IS NOT NULL AND stopped_at IS NULL",
    )
    .bind(now)
    .bind(subject)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

impl Store {
    /// The timers of an incident and of its tasks, oldest first.
    pub async fn sla_timers(&self, incident: &str) -> Result<Vec<SlaTimer>> {
        let sql = format!(
            "SELECT {TIMER_COLUMNS} FROM sla_timers WHERE incident_id = $1 ORDER BY started_at, subject, timer"
        );
        let rows: Vec<TimerRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(incident)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(timer_from_row).collect())
    }

    /// Running timers whose deadline is at or before `now`, soonest first.
    pub async fn due_breaches(&self, now: i64, limit: i64) -> Result<Vec<SlaTimer>> {
        let sql = format!(
            "SELECT {TIMER_COLUMNS} FROM sla_timers
             WHERE due_at <= $1 AND stopped_at IS NULL AND breached_at IS NULL AND paused_at IS NULL
             ORDER BY due_at LIMIT $2"
        );
        let rows: Vec<TimerRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(timer_from_row).collect())
    }

    /// Record that `timer` breached, with a timeline event (`sla_breach`), an audit entry
    /// (`sla.breach`) and `runs` queued, in one transaction. Returns false, changing nothing,
    /// if the timer was stopped, paused or recorded meanwhile (by another server, say).
    pub async fn record_breach(&self, timer: &SlaTimer, runs: &[NewRun]) -> Result<bool> {
        let now = now_ms();
        let system = Actor::system();
        let mut tx = self.writer.begin().await?;
        let won = sqlx::query(
            "UPDATE sla_timers SET breached_at = $1
             WHERE subject = $2 AND timer = $3 AND due_at <= $1
               AND stopped_at IS NULL AND breached_at IS NULL AND paused_at IS NULL",
        )
        .bind(now)
        .bind(&timer.subject)
        .bind(&timer.timer)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !won {
            return Ok(false);
        }
        let details = timer.breach(now);
        if let Some(incident) = &timer.incident_id {
            add_event(&mut tx, incident, &system, "sla_breach", details.clone()).await?;
            for run in runs {
                Write::CreateRun(run.clone()).execute(&mut tx).await?;
                let started = serde_json::json!({ "run": run.id, "playbook": run.playbook });
                add_event(&mut tx, incident, &system, "run", started).await?;
            }
        }
        let change = Change {
            actor: &system,
            action: "sla.breach",
            target: timer.subject.clone(),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Pause (or resume) an incident's own timers by hand (audited as `sla.pause` /
    /// `sla.resume`, on the timeline). Returns how many timers changed; `None` if there is
    /// no such incident.
    pub async fn set_sla_paused(&self, incident: &str, paused: bool, actor: &Actor) -> Result<Option<u64>> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        if !super::incidents::incident_exists(&mut tx, incident).await? {
            return Ok(None);
        }
        let subject = format!("incident:{incident}");
        let changed = if paused {
            pause(&mut tx, &subject, now).await?
        } else {
            resume(&mut tx, &subject, now).await?
        };
        if changed > 0 {
            let kind = if paused { "sla_pause" } else { "sla_resume" };
            add_event(
                &mut tx,
                incident,
                actor,
                kind,
                serde_json::json!({ "timers": changed }),
            )
            .await?;
            let change = Change {
                actor,
                action: if paused { "sla.pause" } else { "sla.resume" },
                target: format!("incident:{incident}"),
                details: serde_json::json!({ "timers": changed }),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(Some(changed))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::both_dialects;

    both_dialects!(timers_start_pause_resume_stop_and_breach_once, |store| {
        use crate::intake::Severity;
        use crate::store::audit::Actor;
        use crate::store::incidents::{IncidentStatus, NewIncident};
        let types: crate::cases::IncidentsConfig = toml::from_str(
            r#"
            resolve = "1h"
            [types.miner]
            acknowledge = "1ms"
            fields.asset = { type = "text", required = true }
            "#,
        )
        .unwrap();
        let store = store.clone().with_incident_types(types);
        let cli = Actor::cli();
        let id = store
            .create_incident(
                &NewIncident::new("miner", "cpu at 100%", Severity::High),
                &[],
                &cli,
                None,
            )
            .await
            .unwrap();
        let timers = store.sla_timers(&id).await.unwrap();
        let names: Vec<(&str, &str)> = timers.iter().map(|t| (t.timer.as_str(), t.state())).collect();
        assert_eq!(names, vec![("acknowledge", "running"), ("resolve", "running")]);
        let resolve_due = timers[1].due_at;
        assert_eq!(resolve_due - timers[1].started_at, 3_600_000);

        // The acknowledge timer (1 ms) is due; the resolve timer (1 h) is not.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let due = store.due_breaches(crate::store::now_ms(), 10).await.unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].timer, "acknowledge");
        assert!(store.record_breach(&due[0], &[]).await.unwrap());
        assert!(
            !store.record_breach(&due[0], &[]).await.unwrap(),
            "a breach is recorded once"
        );
        assert!(
            store
                .due_breaches(crate::store::now_ms(), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let events = store.incident_events(&id).await.unwrap();
        let breach = events
            .iter()
            .find(|e| e.kind == "sla_breach")
            .expect("on the timeline");
        assert_eq!(breach.details["timer"], "acknowledge");
        assert!(breach.details["late_ms"].as_i64().unwrap() >= 0);

        // Pending pauses the resolve timer: even hours later nothing is due.
        store
            .set_incident_status(&id, IncidentStatus::Pending, None, &cli)
            .await
            .unwrap();
        let later = crate::store::now_ms() + 2 * 3_600_000;
        assert!(store.due_breaches(later, 10).await.unwrap().is_empty());
        let resolve = |timers: Vec<crate::store::sla::SlaTimer>| {
            timers.into_iter().find(|t| t.timer == "resolve").unwrap()
        };
        assert_eq!(resolve(store.sla_timers(&id).await.unwrap()).state(), "paused");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        // Active again: resumed, and the deadline moved by the pause.
        store
            .set_incident_status(&id, IncidentStatus::Active, None, &cli)
            .await
            .unwrap();
        let r = resolve(store.sla_timers(&id).await.unwrap());
        assert_eq!(r.state(), "running");
        assert!(
            r.due_at >= resolve_due + 30,
            "moved by the pause: {} vs {resolve_due}",
            r.due_at
        );
        assert!(r.paused_ms >= 30);
        // Acknowledged (the breached acknowledge timer stays breached).
        let i = store.incident(&id).await.unwrap().unwrap();
        assert!(i.acknowledged_at.is_some());

        // Manual pause and resume are audited.
        assert_eq!(store.set_sla_paused(&id, true, &cli).await.unwrap(), Some(1));
        assert_eq!(store.set_sla_paused(&id, false, &cli).await.unwrap(), Some(1));
        assert_eq!(store.set_sla_paused("i-none", true, &cli).await.unwrap(), None);

        // Closing needs the required field; nothing changes when refused.
        let e = store
            .set_incident_status(&id, IncidentStatus::Closed, Some("done"), &cli)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("required fields are set: asset"), "{e}");
        assert_eq!(
            store.incident(&id).await.unwrap().unwrap().status,
            IncidentStatus::Active
        );
        let mut update = crate::store::incidents::IncidentUpdate::default();
        update.fields.insert("asset".into(), "pc-17".into());
        store.update_incident(&id, &update, &cli).await.unwrap();
        store
            .set_incident_status(&id, IncidentStatus::Closed, Some("re-imaged"), &cli)
            .await
            .unwrap();
        assert_eq!(resolve(store.sla_timers(&id).await.unwrap()).state(), "met");
        assert!(
            store.due_breaches(later, 10).await.unwrap().is_empty(),
            "stopped timers never breach"
        );

        // Re-opening starts the resolve timer again, from now.
        let before = crate::store::now_ms();
        store
            .set_incident_status(&id, IncidentStatus::Active, None, &cli)
            .await
            .unwrap();
        let r = resolve(store.sla_timers(&id).await.unwrap());
        assert_eq!(r.state(), "running");
        assert!(r.started_at >= before && r.due_at == r.started_at + 3_600_000);
        // Closed again, then re-opened straight into pending: restarted, and paused.
        store
            .set_incident_status(&id, IncidentStatus::Closed, Some("again"), &cli)
            .await
            .unwrap();
        store
            .set_incident_status(&id, IncidentStatus::Pending, Some("waiting on the owner"), &cli)
            .await
            .unwrap();
        assert_eq!(resolve(store.sla_timers(&id).await.unwrap()).state(), "paused");
        let reopened = store.incident(&id).await.unwrap().unwrap();
        assert_eq!(
            (reopened.closed_at, reopened.close_reason),
            (None, None),
            "only closing has a reason"
        );

        let actions: Vec<String> = store
            .audit_entries(0, 100, Some("sla."))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, vec!["sla.breach", "sla.pause", "sla.resume"]);
    });
}
