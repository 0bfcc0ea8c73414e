//! The dashboard's counts (`stats.rs` reads them), kept in the transaction of each write that
//! changes them, so the dashboard reads a few rows per day whatever the history: alerts per
//! day and source, and per day and disposition (`pending` until pre-processing decides), as
//! alerts are inserted (`writer.rs`) and decided (`triage.rs`, `incidents.rs`); runs per day,
//! playbook and state (`unfinished`, or how they ended) as runs are created, end
//! (`writer.rs`, `child_runs.rs`) and are restarted (`runs.rs`). Days are UTC days of the
//! alert's `received_at` and the run's `created_at`. The tables, and the counts of what was
//! stored before them, are migration 0025. Nothing deletes alerts or runs today: a delete must
//! take what it deletes out of these counts in its own transaction.

use super::Result;
use super::alerts::StoredAlert;
use super::runs::RunStatus;
use super::stats::DAY_MS;
use super::triage::Fate;
use super::writer::{ROWS_PER_STATEMENT, rows};
use sqlx::AnyConnection;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

/// The rows each count is split over on PostgreSQL, so concurrent writers seldom wait on one
/// row's lock (SQLite has one writer: one row).
const SHARDS: i64 = 16;

/// A run's state as counted while it is queued, running or waiting.
pub const UNFINISHED: &str = "unfinished";

/// The disposition counted for an alert pre-processing has not decided.
pub const PENDING: &str = "pending";

/// The counts kept.
#[derive(Debug, Clone, Copy)]
enum Counter {
    /// Alerts per day and source.
    Sources,
    /// Alerts per day and disposition.
    Dispositions,
    /// Runs per day, playbook and state.
    Runs,
}

impl Counter {
    /// Its table, its key columns (without the shard), and one row's placeholders.
    fn shape(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Counter::Sources => ("alert_source_counts", "day, source", "(?, ?, ?, ?)"),
            Counter::Dispositions => ("alert_disposition_counts", "day, disposition", "(?, ?, ?, ?)"),
            Counter::Runs => ("run_counts", "day, playbook, state", "(?, ?, ?, ?, ?)"),
        }
    }
}

/// What to add to a count, by (day, key, second key); the second key is the run's state
/// (runs only, empty for the others). Ordered, so that every transaction takes the rows'
/// locks in the same order.
type Deltas<'a> = BTreeMap<(i64, &'a str, &'a str), i64>;

/// Add `deltas` to `counter`, in the caller's transaction: one multi-row upsert per 500 rows.
async fn add(conn: &mut AnyConnection, counter: Counter, deltas: &Deltas<'_>) -> Result<()> {
    static NEXT_SHARD: AtomicI64 = AtomicI64::new(0);
    let sqlite = conn.backend_name() == "SQLite";
    let shard = if sqlite {
        0
    } else {
        NEXT_SHARD.fetch_add(1, Ordering::Relaxed).rem_euclid(SHARDS)
    };
    let (table, keys, row) = counter.shape();
    let changed: Vec<_> = deltas.iter().filter(|(_, n)| **n != 0).collect();
    for chunk in changed.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO {table} ({keys}, shard, n) VALUES {}
             ON CONFLICT ({keys}, shard) DO UPDATE SET n = {table}.n + excluded.n",
            rows(row, chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((day, key, state), n) in chunk {
            q = q.bind(*day).bind(*key);
            if let Counter::Runs = counter {
                q = q.bind(*state);
            }
            q = q.bind(shard).bind(**n);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Count `alerts`, just inserted: per day and source, and pending per day.
pub(super) async fn alerts_inserted(conn: &mut AnyConnection, alerts: &[&StoredAlert]) -> Result<()> {
    let mut sources = Deltas::new();
    let mut pending = Deltas::new();
    for a in alerts {
        let day = a.received_at / DAY_MS;
        *sources.entry((day, &a.alert.source, "")).or_default() += 1;
        *pending.entry((day, PENDING, "")).or_default() += 1;
    }
    add(conn, Counter::Sources, &sources).await?;
    add(conn, Counter::Dispositions, &pending).await
}

/// Count runs of `playbooks`, just created at `at`, as unfinished.
pub(super) async fn runs_created<'a>(
    conn: &mut AnyConnection,
    at: i64,
    playbooks: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let day = at / DAY_MS;
    let mut deltas = Deltas::new();
    for playbook in playbooks {
        *deltas.entry((day, playbook, UNFINISHED)).or_default() += 1;
    }
    add(conn, Counter::Runs, &deltas).await
}

/// Count runs that just ended: (playbook, created at, how it ended), each moved from
/// unfinished to how it ended.
pub(super) async fn runs_ended(conn: &mut AnyConnection, ended: &[(&str, i64, RunStatus)]) -> Result<()> {
    let mut deltas = Deltas::new();
    for &(playbook, created_at, status) in ended {
        let day = created_at / DAY_MS;
        *deltas.entry((day, playbook, UNFINISHED)).or_default() -= 1;
        *deltas.entry((day, playbook, status.as_str())).or_default() += 1;
    }
    add(conn, Counter::Runs, &deltas).await
}

/// Before run `run_id` is queued again (a restart): if it had ended, it is unfinished again.
pub(super) async fn run_restarting(conn: &mut AnyConnection, run_id: &str) -> Result<()> {
    let row: Option<(String, i64, String)> =
        sqlx::query_as("SELECT playbook, created_at, status FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((playbook, created_at, status)) = row else {
        return Ok(());
    };
    if RunStatus::parse(&status).is_some_and(|s| !s.is_final()) {
        return Ok(());
    }
    let day = created_at / DAY_MS;
    let deltas = Deltas::from([
        ((day, playbook.as_str(), status.as_str()), -1),
        ((day, playbook.as_str(), UNFINISHED), 1),
    ]);
    add(conn, Counter::Runs, &deltas).await
}

/// A triage batch's alerts, just claimed (so undecided until now): each moves from pending
/// to its disposition in the count of its day, the day taken from `received_at` (alert id →
/// received at, as the claim returned it).
pub(super) async fn triage_decided(
    conn: &mut AnyConnection,
    fates: &[Fate<'_>],
    received_at: &std::collections::HashMap<String, i64>,
) -> Result<()> {
    let mut deltas = Deltas::new();
    for &Fate {
        alert, disposition, ..
    } in fates
    {
        let day = received_at[alert] / DAY_MS;
        *deltas.entry((day, PENDING, "")).or_default() -= 1;
        *deltas.entry((day, disposition, "")).or_default() += 1;
    }
    add(conn, Counter::Dispositions, &deltas).await
}
