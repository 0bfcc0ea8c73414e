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
}
