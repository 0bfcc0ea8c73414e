//! The counts behind the web console's dashboard (`server/ui/dashboard.rs`): open incidents
//! by severity, alerts per source and day, what pre-processing did with the alerts, runs by
//! outcome and by playbook, SLA breaches per day. Read-only, one query each, over indexed
//! columns; days are UTC days counted from the Unix epoch (`time / 86_400_000`), which both
//! dialects compute the same way with integer division.

use super::{Result, Store};

/// One UTC day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// The dashboard's counts for the days from `since_day` (a day number) to now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dashboard {
    /// Incidents not closed, by severity.
    pub open_by_severity: Vec<(String, i64)>,
    /// Alerts received, by source and day: (source, day, count).
    pub alerts_by_source_day: Vec<(String, i64, i64)>,
    /// Alerts received in the window by what pre-processing did with them (`pending` while
    /// not yet looked at).
    pub alerts_by_disposition: Vec<(String, i64)>,
    /// Runs created in the window, by status.
    pub runs_by_status: Vec<(String, i64)>,
    /// Runs completed in the window, by playbook.
    pub completed_by_playbook: Vec<(String, i64)>,
    /// SLA timers breached in the window, by timer and day: (timer, day, count).
    pub breaches_by_timer_day: Vec<(String, i64, i64)>,
}

impl Store {
    /// The dashboard's counts from the start of day `since_day` (UTC days since the epoch).
    pub async fn dashboard(&self, since_day: i64) -> Result<Dashboard> {
        let since = since_day.saturating_mul(DAY_MS);
        let open_by_severity = sqlx::query_as(
            "SELECT severity, COUNT(*) FROM incidents WHERE status <> 'closed' \
             GROUP BY severity ORDER BY severity",
        )
        .fetch_all(&self.pool)
        .await?;
        let alerts_by_source_day = sqlx::query_as(
            "SELECT source, received_at / 86400000 AS day, COUNT(*) FROM alerts \
             WHERE received_at >= $1 GROUP BY source, received_at / 86400000 ORDER BY source, day",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let alerts_by_disposition = sqlx::query_as(
            "SELECT COALESCE(disposition, 'pending'), COUNT(*) FROM alerts WHERE received_at >= $1 \
             GROUP BY COALESCE(disposition, 'pending') ORDER BY 1",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let runs_by_status = sqlx::query_as(
            "SELECT status, COUNT(*) FROM runs WHERE created_at >= $1 GROUP BY status ORDER BY status",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let completed_by_playbook = sqlx::query_as(
            "SELECT playbook, COUNT(*) FROM runs WHERE status = 'completed' AND created_at >= $1 \
             GROUP BY playbook ORDER BY playbook",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let breaches_by_timer_day = sqlx::query_as(
            "SELECT timer, breached_at / 86400000 AS day, COUNT(*) FROM sla_timers \
             WHERE breached_at IS NOT NULL AND breached_at >= $1 \
             GROUP BY timer, breached_at / 86400000 ORDER BY timer, day",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(Dashboard {
            open_by_severity,
            alerts_by_source_day,
            alerts_by_disposition,
            runs_by_status,
            completed_by_playbook,
            breaches_by_timer_day,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    both_dialects!(an_empty_store_counts_nothing, |store| {
        let d = store.dashboard(0).await.unwrap();
        assert_eq!(d, Dashboard::default());
    });

    both_dialects!(counts_are_grouped_by_utc_day_and_kept_to_the_window, |store| {
        let day = 20_000_i64;
        let at = |d: i64, hour: i64| d * DAY_MS + hour * 3_600_000;
        let pool = &store.pool;
        for (i, (source, when, disposition)) in [
            ("fw", at(day, 1), Some("dropped")),
            ("fw", at(day, 23), Some("duplicate")),
            ("fw", at(day - 1, 12), Some("incident")),
            ("edr", at(day, 5), None),
            // Before the window: not counted.
            ("edr", at(day - 10, 5), Some("dropped")),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO alerts (id, received_at, via, source, title, severity, data, observables, disposition)
                 VALUES ($1, $2, 'test', $3, 't', 'low', '{}', '{}', $4)",
            )
            .bind(format!("a{i}"))
            .bind(when)
            .bind(source)
            .bind(disposition)
            .execute(pool)
            .await
            .unwrap();
        }
        for (i, (status, severity)) in [("new", "high"), ("closed", "high"), ("active", "critical")]
            .into_iter()
            .enumerate()
        {
            sqlx::query(
                "INSERT INTO incidents (id, type, title, severity, status, occurrences, created_at, updated_at)
                 VALUES ($1, 't', 't', $2, $3, 1, $4, $4)",
            )
            .bind(format!("i{i}"))
            .bind(severity)
            .bind(status)
            .bind(at(day, 2))
            .execute(pool)
            .await
            .unwrap();
        }
        for (i, (playbook, status, when)) in [
            ("guard", "completed", at(day, 3)),
            ("guard", "completed", at(day - 1, 3)),
            ("guard", "failed", at(day, 4)),
            ("guard", "completed", at(day - 9, 3)),
        ]
        .into_iter()
        .enumerate()
        {
            sqlx::query(
                "INSERT INTO runs (id, playbook, script_hash, input, origin, status, created_at, updated_at)
                 VALUES ($1, $2, 'h', '{}', 'test', $3, $4, $4)",
            )
            .bind(format!("r{i}"))
            .bind(playbook)
            .bind(status)
            .bind(when)
            .execute(pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO sla_timers (subject, timer, incident_id, duration_ms, started_at, due_at, paused_ms, breached_at)
             VALUES ('incident:i0', 'acknowledge', 'i0', 1, 0, 1, 0, $1)",
        )
        .bind(at(day, 6))
        .execute(pool)
        .await
        .unwrap();

        let d = store.dashboard(day - 1).await.unwrap();
        assert_eq!(
            d.open_by_severity,
            vec![("critical".to_owned(), 1), ("high".to_owned(), 1)]
        );
        assert_eq!(
            d.alerts_by_source_day,
            vec![
                ("edr".to_owned(), day, 1),
                ("fw".to_owned(), day - 1, 1),
                ("fw".to_owned(), day, 2)
            ],
            "the hours of one UTC day fall in that day"
        );
        assert_eq!(
            d.alerts_by_disposition,
            vec![
                ("dropped".to_owned(), 1),
                ("duplicate".to_owned(), 1),
                ("incident".to_owned(), 1),
                ("pending".to_owned(), 1)
            ]
        );
        assert_eq!(
            d.runs_by_status,
            vec![("completed".to_owned(), 2), ("failed".to_owned(), 1)]
        );
        assert_eq!(d.completed_by_playbook, vec![("guard".to_owned(), 2)]);
        assert_eq!(d.breaches_by_timer_day, vec![("acknowledge".to_owned(), day, 1)]);
    });
}
