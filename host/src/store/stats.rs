//! The counts behind the web console's dashboard (`server/ui/dashboard.rs`): open incidents
//! by severity, alerts per source and day, what pre-processing did with the alerts, runs by
//! outcome and by playbook, SLA breaches per day. Read-only, one query each: the alerts' and
//! runs' from the per-day counts kept as they are written (`counts.rs`), so their cost does
//! not grow with the history; open incidents and breached timers through partial indexes of
//! just those. Days are UTC days counted from the Unix epoch (`time / 86_400_000`), which both
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
    /// Runs created in the window, by state: how they ended (completed, failed, cancelled,
    /// dead), or `unfinished` ([`super::counts::UNFINISHED`]) while queued, running or waiting.
    pub runs_by_status: Vec<(String, i64)>,
    /// Runs completed in the window, by playbook.
    pub completed_by_playbook: Vec<(String, i64)>,
    /// SLA timers breached in the window, by timer and day: (timer, day, count).
    pub breaches_by_timer_day: Vec<(String, i64, i64)>,
}

impl Store {
    /// The dashboard's counts from the start of day `since_day` (UTC days since the epoch).
    pub async fn dashboard(&self, since_day: i64) -> Result<Dashboard> {
        let open_by_severity = sqlx::query_as(
            "SELECT severity, COUNT(*) FROM incidents WHERE status <> 'closed' \
             GROUP BY severity ORDER BY severity",
        )
        .fetch_all(&self.pool)
        .await?;
        let alerts_by_source_day = sqlx::query_as(
            "SELECT source, day, CAST(SUM(n) AS BIGINT) FROM alert_source_counts WHERE day >= $1 \
             GROUP BY source, day HAVING SUM(n) <> 0 ORDER BY source, day",
        )
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?;
        let alerts_by_disposition = sqlx::query_as(
            "SELECT disposition, CAST(SUM(n) AS BIGINT) FROM alert_disposition_counts WHERE day >= $1 \
             GROUP BY disposition HAVING SUM(n) <> 0 ORDER BY disposition",
        )
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?;
        let runs_by_status = sqlx::query_as(
            "SELECT state, CAST(SUM(n) AS BIGINT) FROM run_counts WHERE day >= $1 \
             GROUP BY state HAVING SUM(n) <> 0 ORDER BY state",
        )
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?;
        let completed_by_playbook = sqlx::query_as(
            "SELECT playbook, CAST(SUM(n) AS BIGINT) FROM run_counts WHERE day >= $1 AND state = 'completed' \
             GROUP BY playbook HAVING SUM(n) <> 0 ORDER BY playbook",
        )
        .bind(since_day)
        .fetch_all(&self.pool)
        .await?;
        let breaches_by_timer_day = sqlx::query_as(
            "SELECT timer, breached_at / 86400000 AS day, COUNT(*) FROM sla_timers \
             WHERE breached_at IS NOT NULL AND breached_at >= $1 \
             GROUP BY timer, breached_at / 86400000 ORDER BY timer, day",
        )
        .bind(since_day.saturating_mul(DAY_MS))
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
    use crate::intake::{Alert, Observables, Severity};
    use crate::store::alerts::StoredAlert;
    use crate::store::audit::Actor;
    use crate::store::incidents::NewIncident;
    use crate::store::runs::{NewRun, RunStatus};
    use crate::store::testing::both_dialects;
    use crate::store::triage::Triage;

    /// The counts as the dashboard read them before `counts.rs`, by counting every alert and
    /// run of the window: what the kept counts must always equal.
    async fn recount(store: &Store, since_day: i64) -> Dashboard {
        let since = since_day * DAY_MS;
        let pool = &store.pool;
        let mut d = store.dashboard(since_day).await.unwrap();
        d.alerts_by_source_day = sqlx::query_as(
            "SELECT source, received_at / 86400000 AS day, COUNT(*) FROM alerts \
             WHERE received_at >= $1 GROUP BY source, received_at / 86400000 ORDER BY source, day",
        )
        .bind(since)
        .fetch_all(pool)
        .await
        .unwrap();
        d.alerts_by_disposition = sqlx::query_as(
            "SELECT COALESCE(disposition, 'pending'), COUNT(*) FROM alerts WHERE received_at >= $1 \
             GROUP BY COALESCE(disposition, 'pending') ORDER BY 1",
        )
        .bind(since)
        .fetch_all(pool)
        .await
        .unwrap();
        d.runs_by_status = sqlx::query_as(
            "SELECT CASE WHEN status IN ('queued', 'running', 'waiting') THEN 'unfinished' ELSE status END, COUNT(*) \
             FROM runs WHERE created_at >= $1 GROUP BY 1 ORDER BY 1",
        )
        .bind(since)
        .fetch_all(pool)
        .await
        .unwrap();
        d.completed_by_playbook = sqlx::query_as(
            "SELECT playbook, COUNT(*) FROM runs WHERE status = 'completed' AND created_at >= $1 \
             GROUP BY playbook ORDER BY playbook",
        )
        .bind(since)
        .fetch_all(pool)
        .await
        .unwrap();
        d
    }

    /// Upgrade a store whose rows were written without counts (by hand here, by an Osprey
    /// before migration 0025 in life): migration 0025 runs again and counts them.
    async fn upgrade(store: &Store) {
        for statement in [
            "DROP INDEX incidents_open_by_severity",
            "DROP INDEX sla_timers_breached",
            "DROP TABLE alert_source_counts",
            "DROP TABLE alert_disposition_counts",
            "DROP TABLE run_counts",
            "DELETE FROM _sqlx_migrations WHERE version = 25",
        ] {
            sqlx::query(statement).execute(&store.writer).await.unwrap();
        }
        store.migrate().await.unwrap();
    }

    fn alert(id: usize, source: &str, received_at: i64) -> StoredAlert {
        let alert = Alert {
            source: source.to_owned(),
            title: format!("alert {id}"),
            severity: Severity::Low,
            occurred_at: None,
            data: serde_json::json!({}),
            observables: Observables::default(),
            raw: None,
        };
        StoredAlert::new(crate::store::new_id('a'), received_at, "test", alert)
    }

    fn run(playbook: &str) -> NewRun {
        NewRun {
            id: crate::store::new_id('r'),
            playbook: playbook.to_owned(),
            script_hash: "h".into(),
            input: serde_json::json!({}),
            origin: "test".into(),
            context: serde_json::Value::Null,
            lease: None,
        }
    }

    both_dialects!(an_empty_store_counts_nothing, |store| {
        let d = store.dashboard(0).await.unwrap();
        assert_eq!(d, Dashboard::default());
    });

    both_dialects!(an_upgraded_store_counts_its_history_by_utc_day, |store| {
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
            ("guard", "waiting", at(day, 4)),
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
        assert_eq!(
            store.dashboard(0).await.unwrap().alerts_by_source_day,
            [],
            "rows written without counts are not counted until the upgrade"
        );
        upgrade(store).await;

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
            vec![
                ("completed".to_owned(), 2),
                ("failed".to_owned(), 1),
                ("unfinished".to_owned(), 1)
            ]
        );
        assert_eq!(d.completed_by_playbook, vec![("guard".to_owned(), 2)]);
        assert_eq!(d.breaches_by_timer_day, vec![("acknowledge".to_owned(), day, 1)]);
        for since in [0, day - 1, day, day + 1] {
            assert_eq!(store.dashboard(since).await.unwrap(), recount(store, since).await);
        }
    });

    both_dialects!(kept_counts_equal_a_full_recount_after_any_write, |store| {
        let cli = Actor::cli();
        let today = crate::store::now_ms() / DAY_MS;
        let at = |d: i64, hour: i64| d * DAY_MS + hour * 3_600_000;
        let check = async |what: &str| {
            for since in [0, today - 2, today, today + 1] {
                assert_eq!(
                    store.dashboard(since).await.unwrap(),
                    recount(store, since).await,
                    "after {what}, from day {since}"
                );
            }
        };
        // Alerts over three days, in two group commits.
        let alerts: Vec<StoredAlert> = (0..12)
            .map(|i| {
                let source = ["fw", "edr", "mail"][i % 3];
                alert(i, source, at(today - (i as i64 % 3), i as i64))
            })
            .collect();
        let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
        let (first, second) = alerts.split_at(5);
        store.insert_alerts(first.to_vec()).await.unwrap();
        store.insert_alerts(second.to_vec()).await.unwrap();
        check("inserts").await;

        // Pre-processing: dropped, unmatched, folded, linked, and an incident with runs.
        let open = store
            .create_incident(&NewIncident::new("miner", "x", Severity::High), &[], &cli, None)
            .await
            .unwrap();
        let mut opened = NewIncident::new("phish", "y", Severity::Critical);
        opened.rule = Some("phish".into());
        let triage = Triage {
            dispositions: vec![
                (ids[0].clone(), "dropped", Some("noise".into())),
                (ids[1].clone(), "dropped", Some("noise".into())),
                (ids[2].clone(), "unmatched", None),
            ],
            opened: vec![(opened, ids[3].clone(), vec![run("enrich"), run("notify")])],
            linked: vec![
                (open.clone(), ids[4].clone(), "dedup".into(), true),
                (open.clone(), ids[5].clone(), "link".into(), false),
            ],
            ..Default::default()
        };
        assert!(store.apply_triage(&triage).await.unwrap());
        check("a triage").await;

        // Runs: created, claimed, rescheduled, ended every way, restarted, and a child.
        for playbook in ["enrich", "enrich", "notify", "contain", "contain"] {
            store.create_run(&run(playbook)).await.unwrap();
        }
        check("new runs").await;
        let claimed = store
            .claim_jobs("w", crate::store::now_ms() + 60_000, 100)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 7);
        let ids: Vec<&str> = claimed.iter().map(|j| j.run_id.as_str()).collect();
        store
            .finish_run(ids[0], RunStatus::Completed, None, None)
            .await
            .unwrap();
        store
            .finish_run(ids[1], RunStatus::Completed, None, None)
            .await
            .unwrap();
        store
            .finish_run(ids[2], RunStatus::Failed, None, Some("no"))
            .await
            .unwrap();
        store
            .finish_run(ids[3], RunStatus::Dead, None, Some("no"))
            .await
            .unwrap();
        // Ending an ended run changes nothing.
        store
            .finish_run(ids[0], RunStatus::Failed, None, None)
            .await
            .unwrap();
        store
            .reschedule_run(ids[4], RunStatus::Waiting, crate::store::now_ms() + 60_000, None)
            .await
            .unwrap();
        assert!(store.cancel_run(ids[5], &cli).await.unwrap());
        check("runs ending").await;
        store.restart_run(ids[0], 1, "h2", &cli).await.unwrap();
        store.restart_run(ids[4], 1, "h2", &cli).await.unwrap();
        store.create_child_run(&run("child"), ids[6], 1).await.unwrap();
        // The same step again makes no second child.
        store.create_child_run(&run("child"), ids[6], 1).await.unwrap();
        check("restarts and a child").await;

        let d = store.dashboard(0).await.unwrap();
        assert_eq!(
            d.alerts_by_disposition,
            vec![
                ("dropped".to_owned(), 2),
                ("duplicate".to_owned(), 1),
                ("incident".to_owned(), 1),
                ("linked".to_owned(), 1),
                ("pending".to_owned(), 6),
                ("unmatched".to_owned(), 1)
            ]
        );
        assert_eq!(
            d.runs_by_status,
            vec![
                ("cancelled".to_owned(), 1),
                ("completed".to_owned(), 1),
                ("dead".to_owned(), 1),
                ("failed".to_owned(), 1),
                ("unfinished".to_owned(), 4)
            ]
        );
        assert_eq!(d.completed_by_playbook.iter().map(|(_, n)| n).sum::<i64>(), 1);
    });
}
