//! What pre-processing decided for a batch of alerts, written in one transaction: alerts
//! dropped or matched by no rule, folded into or linked to an open incident, or opening an
//! incident with its runs; and the reads that feed the decision (the unprocessed alerts, the
//! open incidents by deduplication key). The batch's alerts are claimed first (their
//! dispositions written only where they are undecided), so two servers, or the hand-off
//! and a store scan, never decide on the same alerts.

use super::audit::Actor;
use super::incident_opening::{Opening, open_incidents};
use super::incidents::NewIncident;
use super::runs::NewRun;
use super::{Result, Store, now_ms};

/// What became of one alert of a batch.
pub(super) struct Fate<'a> {
    pub alert: &'a str,
    /// "dropped", "unmatched", "incident", "duplicate" or "linked".
    pub disposition: &'static str,
    pub rule: Option<&'a str>,
    pub incident: Option<&'a str>,
}

impl Triage {
    /// What became of every alert the batch decided about.
    fn fates(&self) -> impl Iterator<Item = Fate<'_>> {
        let dispositions = self.dispositions.iter().map(|(alert, disposition, rule)| Fate {
            alert,
            disposition,
            rule: rule.as_deref(),
            incident: None,
        });
        let opened = self.opened.iter().map(|(incident, alert, _)| Fate {
            alert,
            disposition: "incident",
            rule: incident.rule.as_deref(),
            incident: Some(&incident.id),
        });
        let linked = self.linked.iter().map(|(incident, alert, rule, duplicate)| Fate {
            alert,
            disposition: if *duplicate { "duplicate" } else { "linked" },
            rule: Some(rule),
            incident: Some(incident),
        });
        dispositions.chain(opened).chain(linked)
    }
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
    /// The indicators the batch's alerts showed (see `indicators::sightings`).
    pub sightings: Vec<super::indicators::Sighting>,
}

/// An open incident with a deduplication key.
#[derive(sqlx::FromRow)]
struct OpenRow {
    dedup_key: String,
    id: String,
    created_at: i64,
}

impl Store {
    /// Alerts that pre-processing has not looked at yet, oldest first, as JSON (the shape
    /// rule expressions see).
    pub async fn unprocessed_alerts(&self, limit: i64) -> Result<Vec<super::alerts::StoredAlert>> {
        // `$2` (no value here) is only named so that every `alerts_where` binds the same two.
        self.alerts_where("processed_at IS NULL AND $2 IS NULL ORDER BY id", None, limit)
            .await
    }

    /// How many alerts are undecided, and how long ago (ms) the oldest of them was received
    /// (0 when none is): the lag `/metrics` shows. Both read the undecided alerts' index.
    pub async fn undecided_alerts(&self) -> Result<(i64, i64)> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE processed_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT received_at FROM alerts WHERE processed_at IS NULL ORDER BY id LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok((count, oldest.map_or(0, |at| (now_ms() - at).max(0))))
    }

    /// The undecided alerts received before `before` (Unix ms), oldest first: those no
    /// server is about to decide from memory (a crashed server's). Ids begin with their
    /// time of receipt, so this reads a range of the undecided alerts' index.
    pub async fn unprocessed_alerts_before(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<super::alerts::StoredAlert>> {
        let bound = super::id_at('a', before);
        self.alerts_where(
            "processed_at IS NULL AND id < $2 ORDER BY id",
            Some(&bound),
            limit,
        )
        .await
    }

    /// For each of `keys`, the newest open incident with that deduplication key (id, created
    /// at), or `None`: a few queries for a whole batch of alerts.
    pub async fn open_incidents_by_keys(
        &self,
        keys: &[&str],
    ) -> Result<std::collections::HashMap<String, Option<(String, i64)>>> {
        let mut out: std::collections::HashMap<String, Option<(String, i64)>> =
            keys.iter().map(|k| (k.to_string(), None)).collect();
        let unique: Vec<String> = out.keys().cloned().collect();
        let sqlite = self.dialect == super::Dialect::Sqlite;
        for chunk in unique.chunks(super::writer::ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT dedup_key, id, created_at FROM incidents WHERE status <> 'closed' AND dedup_key IN ({})",
                super::writer::rows("?", chunk.len(), sqlite)
            );
            let mut q = sqlx::query_as::<_, OpenRow>(sqlx::AssertSqlSafe(sql));
            for key in chunk {
                q = q.bind(key.as_str());
            }
            for OpenRow {
                dedup_key: key,
                id,
                created_at,
            } in q.fetch_all(&self.pool).await?
            {
                let newer = |(_, at): &(String, i64)| created_at > *at;
                let slot = out.entry(key).or_default();
                if slot.as_ref().is_none_or(newer) {
                    *slot = Some((id, created_at));
                }
            }
        }
        Ok(out)
    }

    /// Write a batch's decisions in one transaction, a few statements for the whole batch:
    /// every alert's disposition (which claims it), new incidents with their runs, then
    /// links (one timeline event per incident for all its new alerts).
    ///
    /// Returns false, writing nothing, when some of these alerts were decided first: by
    /// another server (PostgreSQL with several servers), or by this one when it found them
    /// both in the hand-off from intake and in the store. The caller reads the undecided
    /// alerts from the store again.
    pub async fn apply_triage(&self, triage: &Triage) -> Result<bool> {
        use super::writer::rows;
        let now = now_ms();
        let system = Actor::system();
        let asked = std::time::Instant::now();
        let mut tx = self.writer.begin().await?;
        let began = asked.elapsed();
        let sqlite = tx.backend_name() == "SQLite";
        // Every alert's disposition first, only where the alert is still undecided: this
        // claims them. A server deciding on the same alerts at the same time waits here on
        // the row locks, then finds them processed and gives up. Each claimed alert was
        // undecided; its day of receipt is what the dashboard counts it by.
        let fates: Vec<Fate> = triage.fates().collect();
        let mut claimed: std::collections::HashMap<String, i64> = Default::default();
        for chunk in fates.chunks(super::writer::ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH v (id, disposition, rule, incident_id) AS (VALUES {})
                 UPDATE alerts SET disposition = v.disposition, rule = v.rule, incident_id = v.incident_id,
                     processed_at = {now}
                 FROM v WHERE alerts.id = v.id AND alerts.processed_at IS NULL
                 RETURNING alerts.id, alerts.received_at",
                rows("(?, ?, ?, ?)", chunk.len(), sqlite)
            );
            let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql));
            for fate in chunk {
                q = q
                    .bind(fate.alert)
                    .bind(fate.disposition)
                    .bind(fate.rule)
                    .bind(fate.incident);
            }
            claimed.extend(q.fetch_all(&mut *tx).await?);
        }
        if claimed.len() != fates.len() {
            tx.rollback().await?;
            return Ok(false);
        }
        // The dashboard's counts of dispositions (`counts.rs`).
        super::counts::triage_decided(&mut tx, &fates, &claimed).await?;
        // First: indicator rows before the audit head, the order `set_verdict` takes them in.
        super::indicators::upsert_sightings(&mut tx, &triage.sightings).await?;
        let openings: Vec<Opening> = triage
            .opened
            .iter()
            .map(|(incident, alert, runs)| Opening {
                incident,
                alert: Some(alert),
                runs,
                step_key: None,
            })
            .collect();
        open_incidents(&mut tx, (&self.cases, &self.audit_key), &openings, &system).await?;
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
            // Occurrences and one timeline event per incident, a statement per 500 incidents
            // (each incident once per statement, so each event's `seq` is its next).
            let per_incident: Vec<_> = per_incident.into_iter().collect();
            for chunk in per_incident.chunks(super::writer::ROWS_PER_STATEMENT) {
                let counted: Vec<_> = chunk.iter().filter(|(_, (d, ..))| *d > 0).collect();
                if !counted.is_empty() {
                    let sql = format!(
                        "WITH v (id, n, at) AS (VALUES {})
                         UPDATE incidents SET occurrences = occurrences + v.n, updated_at = v.at
                         FROM v WHERE incidents.id = v.id",
                        rows("(?, ?, ?)", counted.len(), sqlite)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for (incident, (duplicates, ..)) in counted {
                        q = q.bind(*incident).bind(*duplicates).bind(now);
                    }
                    q.execute(&mut *tx).await?;
                }
                let sql = format!(
                    "WITH v (incident_id, at, actor, kind, details) AS (VALUES {})
                     INSERT INTO incident_events (incident_id, seq, at, actor, kind, details)
                     SELECT v.incident_id,
                            (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM incident_events e WHERE e.incident_id = v.incident_id),
                            v.at, v.actor, v.kind, v.details
                     FROM v",
                    rows("(?, ?, ?, ?, ?)", chunk.len(), sqlite)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                // The time of writing, like `add_event`'s (the batch's incidents were opened
                // after `now`).
                let at = now_ms();
                for (incident, (_, alerts, rule, duplicate)) in chunk {
                    let kind = if *duplicate { "duplicate" } else { "alert" };
                    let details = serde_json::json!({ "alerts": alerts, "rule": rule });
                    q = q
                        .bind(*incident)
                        .bind(at)
                        .bind(system.as_str())
                        .bind(kind)
                        .bind(details.to_string());
                }
                q.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        tracing::debug!(
            alerts = fates.len(),
            wait_us = began.as_micros() as u64,
            total_us = asked.elapsed().as_micros() as u64,
            "triage committed"
        );
        Ok(true)
    }
}

#[cfg(test)]
mod triage_tests {
    use crate::store::testing::both_dialects;

    both_dialects!(duplicates_count_and_go_on_the_timeline_once_per_batch, |store| {
        use crate::store::alerts::StoredAlert;
        use crate::store::incidents::NewIncident;
        use crate::store::triage::Triage;
        let cli = crate::store::audit::Actor::cli();
        let mut ids = Vec::new();
        for kind in ["miner", "phish"] {
            let new = NewIncident::new(kind, "x", crate::intake::Severity::Low);
            ids.push(store.create_incident(&new, &[], &cli, None).await.unwrap());
        }
        let items = crate::intake::parse_items(
            crate::intake::Format::Json,
            br#"[{"source":"fw","title":"a"},{"source":"fw","title":"b"},{"source":"fw","title":"c"}]"#,
            "json",
        );
        let alerts: Vec<StoredAlert> = items
            .into_iter()
            .map(|i| StoredAlert::new(crate::store::new_id('a'), 1, "test", i.alert.unwrap()))
            .collect();
        let a: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
        store.insert_alerts(alerts).await.unwrap();
        let triage = Triage {
            linked: vec![
                (ids[0].clone(), a[0].clone(), "dedup".into(), true),
                (ids[0].clone(), a[1].clone(), "dedup".into(), true),
                (ids[1].clone(), a[2].clone(), "link".into(), false),
            ],
            ..Default::default()
        };
        assert!(store.apply_triage(&triage).await.unwrap());
        let first = store.incident(&ids[0]).await.unwrap().unwrap();
        let second = store.incident(&ids[1]).await.unwrap().unwrap();
        assert_eq!(
            (first.occurrences, second.occurrences),
            (3, 1),
            "links do not count"
        );
        let events = store.incident_events(&ids[0]).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!((last.seq, last.kind.as_str()), (2, "duplicate"));
        assert_eq!(last.details["alerts"], serde_json::json!([a[0], a[1]]));
        let events = store.incident_events(&ids[1]).await.unwrap();
        assert_eq!(events.last().unwrap().kind, "alert");
        assert_eq!(store.incident_alert_ids(&ids[0]).await.unwrap().len(), 2);
        assert!(store.unprocessed_alerts(10).await.unwrap().is_empty());
    });
}

#[cfg(test)]
mod claim_tests {
    use crate::store::testing::both_dialects;

    // With several servers on one PostgreSQL database, or one server that found the same
    // alerts in its hand-off from intake and in the store, a batch of alerts is decided
    // once: the second to write the same alerts' decisions writes nothing.
    both_dialects!(a_batch_of_alerts_is_triaged_once, |store| {
        use crate::store::alerts::StoredAlert;
        use crate::store::triage::Triage;
        let items = crate::intake::parse_items(
            crate::intake::Format::Json,
            br#"[{"source":"fw","title":"a"},{"source":"fw","title":"b"}]"#,
            "json",
        );
        let alerts: Vec<StoredAlert> = items
            .into_iter()
            .map(|i| StoredAlert::new(crate::store::new_id('a'), 1, "test", i.alert.unwrap()))
            .collect();
        let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
        store.insert_alerts(alerts).await.unwrap();
        let triage = || Triage {
            dispositions: ids
                .iter()
                .map(|id| (id.clone(), "dropped", Some("noise".to_owned())))
                .collect(),
            ..Default::default()
        };
        let (t1, t2) = (triage(), triage());
        let (first, second) = tokio::join!(store.apply_triage(&t1), store.apply_triage(&t2));
        let (first, second) = (first.unwrap(), second.unwrap());
        assert!(
            first ^ second,
            "exactly one server writes the batch: {first} {second}"
        );
        assert!(store.unprocessed_alerts(10).await.unwrap().is_empty());
        let stored = store.alerts(Some("fw"), 10).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|a| a.disposition.as_deref() == Some("dropped")));
    });
}

#[cfg(test)]
mod opening_tests {
    use crate::store::testing::both_dialects;

    // A batch opening more incidents than one statement holds (500 rows): each has its
    // alert, timeline, SLA timer, run and audit entry, and the audit chain stays intact.
    both_dialects!(a_batch_opens_many_incidents_each_whole, |store| {
        use crate::store::alerts::StoredAlert;
        use crate::store::audit::Verification;
        use crate::store::incidents::NewIncident;
        use crate::store::runs::{NewRun, RunStatus};
        use crate::store::triage::Triage;
        let types: crate::cases::IncidentsConfig =
            toml::from_str("[types.miner]\nacknowledge = \"1h\"\n").unwrap();
        let store = store.clone().with_incident_types(types);
        const N: usize = 1_100;
        let body: String = (0..N)
            .map(|i| format!("{{\"source\":\"fw\",\"title\":\"t{i}\"}}\n"))
            .collect();
        let alerts: Vec<StoredAlert> =
            crate::intake::parse_items(crate::intake::Format::Json, body.as_bytes(), "json")
                .into_iter()
                .map(|i| StoredAlert::new(crate::store::new_id('a'), 1, "test", i.alert.unwrap()))
                .collect();
        assert_eq!(alerts.len(), N);
        let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
        store.insert_alerts(alerts).await.unwrap();
        let opened: Vec<_> = ids
            .iter()
            .map(|alert| {
                let mut incident = NewIncident::new("miner", "cpu", crate::intake::Severity::High);
                incident.rule = Some("miners".into());
                let run = NewRun {
                    id: crate::store::new_id('r'),
                    playbook: "contain".into(),
                    script_hash: "h".into(),
                    input: serde_json::json!({}),
                    origin: format!("incident {}", incident.id),
                    context: serde_json::Value::Null,
                    lease: None,
                };
                (incident, alert.clone(), vec![run])
            })
            .collect();
        let before = match store.verify_audit().await.unwrap() {
            Verification::Intact { entries, .. } => entries,
            broken => panic!("{broken:?}"),
        };
        let triage = Triage {
            opened,
            ..Default::default()
        };
        assert!(store.apply_triage(&triage).await.unwrap());
        match store.verify_audit().await.unwrap() {
            Verification::Intact { entries, .. } => assert_eq!(entries, before + N as i64),
            broken => panic!("the chain broke: {broken:?}"),
        }
        for (incident, alert, runs) in [&triage.opened[0], &triage.opened[N - 1]] {
            let stored = store.incident(&incident.id).await.unwrap().unwrap();
            assert_eq!((stored.rule.as_deref(), stored.occurrences), (Some("miners"), 1));
            assert_eq!(
                store.incident_alert_ids(&incident.id).await.unwrap(),
                vec![alert.clone()]
            );
            let events: Vec<(i64, String)> = store
                .incident_events(&incident.id)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.seq, e.kind))
                .collect();
            assert_eq!(events, vec![(1, "created".to_owned()), (2, "run".to_owned())]);
            let timers = store.sla_timers(&incident.id).await.unwrap();
            assert_eq!(timers.len(), 1);
            assert_eq!(timers[0].timer, "acknowledge");
            assert_eq!(
                store.run(&runs[0].id).await.unwrap().unwrap().status,
                RunStatus::Queued
            );
        }
        let queued = store
            .runs(Some("contain"), Some(RunStatus::Queued), 10_000)
            .await
            .unwrap();
        assert_eq!(queued.len(), N);
        let decided = store.alerts(Some("fw"), 10_000).await.unwrap();
        assert_eq!(decided.len(), N);
        assert!(
            decided
                .iter()
                .all(|a| a.disposition.as_deref() == Some("incident") && a.incident_id.is_some())
        );
        assert!(store.unprocessed_alerts(10).await.unwrap().is_empty());
        // The same batch again: already decided, nothing written.
        assert!(!store.apply_triage(&triage).await.unwrap());
    });
}
