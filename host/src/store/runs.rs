//! Playbook runs, their journals, and the queue that drives them.
//!
//! The runs table is the queue: a queued, waiting or running run is due at `run_at`. Workers
//! claim due runs with a lease (`locked_by`, `locked_until`) that they extend while they work;
//! while a run is claimed, `run_at` is the end of its lease, so a run whose holder died comes
//! due again by itself, and any worker claims it and resumes from the journal.
//! On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so many nodes share the queue; on
//! SQLite the claiming `UPDATE ... RETURNING` is atomic under SQLite's single writer.

use super::page::{self, Arg, Keyset, Page};
use super::{Dialect, Result, Store, now_ms};
use serde::{Deserialize, Serialize};

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is replaying it.
    Running,
    /// Suspended until a time (a `sleep`), holding nothing but its journal.
    Waiting,
    Completed,
    /// The script failed.
    Failed,
    Cancelled,
    /// Failed with a retryable error too many times: the dead-letter state.
    Dead,
}

impl RunStatus {
    /// The names of the states, as [`as_str`](Self::as_str) gives them.
    pub const NAMES: &[&str] = &[
        "queued",
        "running",
        "waiting",
        "completed",
        "failed",
        "cancelled",
        "dead",
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            "dead" => RunStatus::Dead,
            _ => return None,
        })
    }

    /// Whether the run is over.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled | RunStatus::Dead
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The columns runs may be sorted by (`GET /api/v1/runs?sort=`).
pub const RUN_SORTS: &[&str] = &["created_at", "updated_at", "playbook", "status"];

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: String,
    pub playbook: String,
    pub script_hash: String,
    pub input: serde_json::Value,
    pub origin: String,
    pub status: RunStatus,
    pub output: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// When the run's job is due, if it has one.
    pub wake_at: Option<i64>,
    /// What the run was started for: `{"alert": ..., "incident": ...}`, or null.
    pub context: serde_json::Value,
    /// Why some of the run's stored values could not be read (they read as null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The run that started this one with `playbook(name, input)`, if any.
    pub parent_run: Option<String>,
}

/// A plugin call a playbook step made, as [`Store::plugin_calls`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PluginCall {
    pub run_id: String,
    pub seq: i64,
    /// When the call started (Unix ms).
    pub at: i64,
    pub action: String,
    pub ok: bool,
    /// How a failed call failed: `denied` (the grant refused it), `timeout`, ...
    pub error_kind: Option<String>,
    pub error: Option<String>,
    /// Answered by the plugin's mock (mock mode): nothing reached the vendor.
    pub mocked: bool,
}

/// A journaled step as stored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub seq: i64,
    pub kind: String,
    pub request: serde_json::Value,
    pub outcome: serde_json::Value,
    pub ok: bool,
    pub started_at: i64,
    pub duration_ms: i64,
    /// Why the step's request or outcome could not be read (it reads as null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// A run ready to be stored.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub playbook: String,
    pub script_hash: String,
    pub input: serde_json::Value,
    pub origin: String,
    /// What the run was started for: `{"alert": ..., "incident": ...}`, or null.
    pub context: serde_json::Value,
    /// Claimed as it is created, by a worker that replays it at once (`Executor::launch`):
    /// stored as a claim leaves a run, and [`ClaimedJob::created`] is the worker's job.
    /// `None`: queued, due now.
    pub lease: Option<Lease>,
}

/// A worker's hold on a run: who holds it, and until when (Unix ms) unless extended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub worker: String,
    pub until: i64,
}

/// The state of one cron trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    pub spec: String,
    pub next_fire_at: i64,
}

/// A run a worker claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub run_id: String,
    /// How many times this run was claimed, this one included.
    pub attempts: i64,
    /// Claims in a row, this one included, whose replay did not end: the process died
    /// while it held the run.
    pub unfinished: i64,
    /// The run as it is now that it is claimed.
    pub run: RunRecord,
}

impl ClaimedJob {
    /// The job of a run created claimed (with a lease), as a claim would have given it, once
    /// its creation is committed; `None` for a run created queued. Its times are read here,
    /// within the commit's millisecond of those stored.
    pub fn created(run: &NewRun) -> Option<ClaimedJob> {
        let lease = run.lease.as_ref()?;
        let now = now_ms();
        Some(ClaimedJob {
            run_id: run.id.clone(),
            attempts: 1,
            unfinished: 1,
            run: RunRecord {
                id: run.id.clone(),
                playbook: run.playbook.clone(),
                script_hash: run.script_hash.clone(),
                input: run.input.clone(),
                origin: run.origin.clone(),
                status: RunStatus::Running,
                output: None,
                error: None,
                attempts: 0,
                created_at: now,
                updated_at: now,
                finished_at: None,
                wake_at: Some(lease.until),
                context: run.context.clone(),
                unreadable: None,
                parent_run: None,
            },
        })
    }
}

/// A row of `runs` as selected with [`RUN_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct RunRow {
    id: String,
    playbook: String,
    script_hash: String,
    input: String,
    origin: String,
    status: String,
    output: Option<String>,
    error: Option<String>,
    attempts: i64,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
    run_at: Option<i64>,
    context: Option<String>,
    parent_run: Option<String>,
}

/// A claimed run: its row and how often it was claimed.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    run: RunRow,
    claims: i64,
    /// Claims in a row whose replay did not end (the process died holding the lease).
    unfinished: i64,
}

/// The most runs one cancel ends (a run and its unfinished children, theirs, ...).
const MAX_CANCELLED: usize = 10_000;

pub(super) const RUN_COLUMNS: &str = "id, playbook, script_hash, input, origin, status, output, error, \
     attempts, created_at, updated_at, finished_at, run_at, context, parent_run";

use super::audit::{self, Actor, Change};
use super::json::{read, unreadable};
use super::writer::{PENDING, Write};

/// How the queue's reads name its partial index `runs_due` (the pending runs by `run_at`), and
/// the pending-status check of an update by id. SQLite's planner, without statistics, prefers
/// `runs_by_status` for the `status IN (...)` term: a claim then read and sorted every pending
/// run, a million waiting ones included, and updated its few through the same scan. Named,
/// `runs_due` yields only the due entries; a unary `+` keeps the check off the status index
/// (SQLite's documented way), so the update goes by primary key. PostgreSQL's statistics make
/// both choices on their own.
fn due_index(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::Sqlite => ("INDEXED BY runs_due", "+status"),
        Dialect::Postgres => ("", "status"),
    }
}

/// A run as stored; a value that cannot be read is null and the run says why.
pub(super) fn run_from_row(row: RunRow) -> RunRecord {
    let (status, bad_status) = match RunStatus::parse(&row.status) {
        Some(s) => (s, None),
        None => (RunStatus::Failed, Some(format!("status '{}'", row.status))),
    };
    let input = read(&row.input, "input");
    let output = row.output.as_deref().map(|o| read(o, "output"));
    let context = row.context.as_deref().map(|c| read(c, "context"));
    let unreadable = unreadable([
        &bad_status,
        &input.unreadable,
        &output.as_ref().and_then(|o| o.unreadable.clone()),
        &context.as_ref().and_then(|c| c.unreadable.clone()),
    ]);
    RunRecord {
        status,
        input: input.value,
        output: output.map(|o| o.value),
        wake_at: if status.is_final() { None } else { row.run_at },
        context: context.map(|c| c.value).unwrap_or_default(),
        unreadable,
        id: row.id,
        playbook: row.playbook,
        script_hash: row.script_hash,
        origin: row.origin,
        error: row.error,
        attempts: row.attempts,
        created_at: row.created_at,
        updated_at: row.updated_at,
        finished_at: row.finished_at,
        parent_run: row.parent_run,
    }
}

/// Wake a run that waits for what just happened (an answered question), inside the caller's
/// transaction: a waiting run is due at once; a run being replayed right now is marked
/// (`woken_at`), and the worker's reschedule then makes it due at once instead of at its
/// timer, so an answer that lands mid-replay is not missed.
pub(super) async fn wake_run(conn: &mut sqlx::AnyConnection, run_id: &str, now: i64) -> Result<()> {
    let sql = format!(
        "UPDATE runs SET run_at = CASE WHEN status = 'waiting' THEN $1 ELSE run_at END, woken_at = $1
         WHERE id = $2 AND status IN {PENDING}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A plugin call's step, as `plugin_calls` reads it.
#[derive(sqlx::FromRow)]
struct PluginCallRow {
    run_id: String,
    seq: i64,
    started_at: i64,
    request: String,
    outcome: String,
    ok: i32,
}

impl Store {
    /// Create a run: queued and due now, or claimed if it has a lease.
    pub async fn create_run(&self, run: &NewRun) -> Result<()> {
        super::json::check(&run.input, "the run's input")?;
        super::json::check(&run.context, "the run's context")?;
        self.write(Write::CreateRun(run.clone())).await.map(drop)
    }

    /// Which of `ids` are cancelled, in one query.
    pub async fn cancelled_among(&self, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id FROM runs WHERE status = 'cancelled' AND id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    /// One run.
    pub async fn run(&self, id: &str) -> Result<Option<RunRecord>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        let row: Option<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(run_from_row))
    }

    /// The newest runs, optionally of one playbook or in one state.
    pub async fn runs(
        &self,
        playbook: Option<&str>,
        status: Option<RunStatus>,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE ($1 IS NULL OR playbook = $1) AND ($2 IS NULL OR status = $2)
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(playbook)
            .bind(status.map(|s| s.as_str()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(run_from_row).collect())
    }

    /// One page of runs, optionally of one playbook or in one state, in the order of
    /// `keyset` (one of [`RUN_SORTS`]).
    pub async fn run_page(
        &self,
        playbook: Option<&str>,
        status: Option<RunStatus>,
        keyset: &Keyset,
    ) -> Result<Page<RunRecord>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        if let Some(playbook) = playbook {
            args.push(playbook.into());
            conditions.push(format!("playbook = ${}", args.len()));
        }
        if let Some(status) = status {
            args.push(status.as_str().into());
            conditions.push(format!("status = ${}", args.len()));
        }
        let select = format!("SELECT {RUN_COLUMNS} FROM runs");
        let page: Page<RunRow> = page::fetch(
            &self.pool,
            &select,
            &conditions.join(" AND "),
            args,
            keyset,
            RUN_SORTS,
            "id",
        )
        .await?;
        page.try_map(|r| Ok(run_from_row(r)))
    }

    /// The newest calls to `plugin` that playbook steps made (`invoke`, and `invoke_cached`
    /// when the cache did not answer), newest first, with how each ended: what the auditor's
    /// plugin page lists.
    pub async fn plugin_calls(&self, plugin: &str, limit: i64) -> Result<Vec<PluginCall>> {
        // The request is stored as JSON with sorted keys, so the plugin appears as
        // `"plugin":"NAME"`; plugin names are letters, digits and dashes, so the pattern
        // has no LIKE wildcards of its own.
        if crate::names::check("plugin", plugin).is_err() {
            return Ok(Vec::new());
        }
        let pattern = format!("%\"plugin\":\"{plugin}\"%");
        let rows: Vec<PluginCallRow> = sqlx::query_as(
            "SELECT run_id, seq, started_at, request, outcome, ok FROM run_steps
             WHERE kind = 'invoke' AND request LIKE $1
             ORDER BY started_at DESC, run_id DESC, seq DESC LIMIT $2",
        )
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |PluginCallRow {
                     run_id,
                     seq,
                     started_at: at,
                     request,
                     outcome,
                     ok,
                 }| {
                    let request = read(&request, "step request").value;
                    let outcome = read(&outcome, "step outcome").value;
                    if request["plugin"] != plugin || outcome["cached"] == true {
                        return Ok(None);
                    }
                    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
                    Ok(Some(PluginCall {
                        run_id,
                        seq,
                        at,
                        action: text(&request["action"]).unwrap_or_default(),
                        ok: ok != 0,
                        error_kind: if ok != 0 { None } else { text(&outcome["kind"]) },
                        error: if ok != 0 { None } else { text(&outcome["message"]) },
                        mocked: request["mocked"] == true,
                    }))
                },
            )
            .filter_map(Result::transpose)
            .collect()
    }

    /// The newest runs started from `origin` (such as `request:alice`: a user's requests),
    /// newest first.
    pub async fn runs_from(&self, origin: &str, limit: i64) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE origin = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(origin)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(run_from_row).collect())
    }

    /// How many runs are in the queue (queued, running or waiting): cheap, from the queue's
    /// own index.
    pub async fn pending_runs(&self) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM runs WHERE status IN {PENDING}");
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await?)
    }

    /// How many runs are in each state.
    pub async fn run_counts(&self) -> Result<Vec<(RunStatus, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| RunStatus::parse(&s).map(|s| (s, n)))
            .collect())
    }

    /// Append one step to a run's journal, committed when this returns. Fails if that step
    /// number is already written (another worker got there first), so a step is never
    /// recorded twice.
    pub async fn append_step(&self, run_id: &str, step: &StepRecord) -> Result<()> {
        super::json::check(&step.request, "the step's request")?;
        super::json::check(&step.outcome, "the step's outcome")?;
        self.write(Write::AppendStep {
            run_id: run_id.to_owned(),
            step: step.clone(),
        })
        .await
        .map(drop)
    }

    /// Claim up to `limit` due runs for `worker`, leased until `lease_until`. Returns them as
    /// they are now (status `running`).
    pub async fn claim_jobs(&self, worker: &str, lease_until: i64, limit: i64) -> Result<Vec<ClaimedJob>> {
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let (due_index, status) = due_index(self.dialect);
        // Materialized: PostgreSQL may otherwise run the locking subquery again for each row
        // it updates, each run skipping the rows claimed so far, and claim more than `limit`.
        let sql = format!(
            "WITH due AS MATERIALIZED (
                 SELECT id FROM runs {due_index} WHERE status IN {PENDING} AND run_at <= $3 ORDER BY run_at LIMIT $4 {lock})
             UPDATE runs SET status = 'running', locked_by = $1, locked_until = $2, run_at = $2, claims = claims + 1, unfinished = unfinished + 1,
                 updated_at = $3, woken_at = NULL
             WHERE id IN (SELECT id FROM due) AND {status} IN {PENDING} AND run_at <= $3
             RETURNING {RUN_COLUMNS}, claims, unfinished"
        );
        self.claim(
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(worker)
                .bind(lease_until)
                .bind(now_ms())
                .bind(limit),
        )
        .await
    }

    /// Claim one run if it is due and free.
    pub async fn claim_run(
        &self,
        run_id: &str,
        worker: &str,
        lease_until: i64,
    ) -> Result<Option<ClaimedJob>> {
        let sql = format!(
            "UPDATE runs SET status = 'running', locked_by = $1, locked_until = $2, run_at = $2, claims = claims + 1, unfinished = unfinished + 1,
                 updated_at = $3, woken_at = NULL
             WHERE id = $4 AND status IN {PENDING} AND run_at <= $3
             RETURNING {RUN_COLUMNS}, claims, unfinished"
        );
        let claimed = self
            .claim(
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(worker)
                    .bind(lease_until)
                    .bind(now_ms())
                    .bind(run_id),
            )
            .await?;
        Ok(claimed.into_iter().next())
    }

    async fn claim(
        &self,
        query: sqlx::query::QueryAs<'_, sqlx::Any, ClaimRow, sqlx::any::AnyArguments>,
    ) -> Result<Vec<ClaimedJob>> {
        let rows: Vec<ClaimRow> = query.fetch_all(&self.writer).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let run = run_from_row(r.run);
                ClaimedJob {
                    run_id: run.id.clone(),
                    attempts: r.claims,
                    unfinished: r.unfinished,
                    run,
                }
            })
            .collect())
    }

    /// Extend a lease; returns false if `worker` no longer holds it.
    pub async fn extend_lease(&self, run_id: &str, worker: &str, lease_until: i64) -> Result<bool> {
        let write = Write::ExtendLease {
            run_id: run_id.to_owned(),
            worker: worker.to_owned(),
            until: lease_until,
        };
        Ok(self.write(write).await? > 0)
    }

    /// Finish a run for good (completed, failed, cancelled, dead): out of the queue. A run
    /// that already ended keeps its outcome (a cancel racing a completion, say).
    pub async fn finish_run(
        &self,
        run_id: &str,
        status: RunStatus,
        output: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<()> {
        debug_assert!(status.is_final());
        if let Some(output) = output {
            super::json::check(output, "the run's output")?;
        }
        let write = Write::FinishRun {
            run_id: run_id.to_owned(),
            status,
            output: output.map(|o| o.to_string()),
            error: error.map(str::to_owned),
        };
        self.write(write).await.map(drop)
    }

    /// Put a run back in the queue (waiting for a timer, or retrying after an error) to be
    /// replayed at `run_at`, releasing the lease.
    pub async fn reschedule_run(
        &self,
        run_id: &str,
        status: RunStatus,
        run_at: i64,
        error: Option<&str>,
    ) -> Result<()> {
        let write = Write::Reschedule {
            run_id: run_id.to_owned(),
            status,
            run_at,
            error: error.map(str::to_owned),
        };
        self.write(write).await.map(drop)
    }

    /// Set how many failed attempts a run has had.
    pub async fn set_run_attempts(&self, run_id: &str, attempts: i64) -> Result<()> {
        self.write(Write::SetAttempts {
            run_id: run_id.to_owned(),
            attempts,
        })
        .await
        .map(drop)
    }

    /// Cut a run's journal back to the steps before `from_step`, and queue it to replay now:
    /// the steps from there on will be taken again (`osprey run restart --from-step`).
    /// Audited as `run.restart`.
    pub async fn restart_run(
        &self,
        run_id: &str,
        from_step: i64,
        script_hash: &str,
        actor: &Actor,
    ) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let cut = sqlx::query("DELETE FROM run_steps WHERE run_id = $1 AND seq >= $2")
            .bind(run_id)
            .bind(from_step)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        super::counts::run_restarting(&mut tx, run_id).await?;
        sqlx::query(
            "UPDATE runs SET status = 'queued', output = NULL, error = NULL, attempts = 0, script_hash = $1,
                 updated_at = $2, finished_at = NULL, run_at = $2, locked_by = NULL, locked_until = NULL
             WHERE id = $3",
        )
        .bind(script_hash)
        .bind(now)
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        // Questions asked from the cut steps are asked again when the run gets there.
        super::questions::release_questions(&mut tx, run_id, Some(from_step), now).await?;
        // So are child playbooks: the children of the cut steps stay linked to the run, but
        // no step finds them again.
        sqlx::query("UPDATE runs SET parent_step = NULL WHERE parent_run = $1 AND parent_step >= $2")
            .bind(run_id)
            .bind(from_step)
            .execute(&mut *tx)
            .await?;
        let change = Change {
            actor,
            action: "run.restart",
            target: format!("run:{run_id}"),
            details: serde_json::json!({ "from_step": from_step, "steps_removed": cut, "script_hash": script_hash }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(cut)
    }

    /// Cancel a run that has not ended, and the children it waits for (their children
    /// too), each audited as `run.cancel`; returns whether the run was still going.
    pub async fn cancel_run(&self, run_id: &str, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let mut cancelled_any = false;
        // (run, the parent whose cancel cancels it); at most MAX_CANCELLED runs at once.
        let mut todo = vec![(run_id.to_owned(), None::<String>)];
        let mut seen = 0;
        while let Some((id, parent)) = todo.pop() {
            seen += 1;
            let error = match &parent {
                None => format!("cancelled by {actor}"),
                Some(p) => format!("cancelled by {actor} with its parent run {p}"),
            };
            let cancelled = Write::FinishRun {
                run_id: id.clone(),
                status: RunStatus::Cancelled,
                output: None,
                error: Some(error),
            }
            .execute(&mut tx)
            .await?
                > 0;
            if !cancelled {
                continue;
            }
            cancelled_any |= parent.is_none();
            super::questions::release_questions(&mut tx, &id, None, now_ms()).await?;
            let change = Change {
                actor,
                action: "run.cancel",
                target: format!("run:{id}"),
                details: match &parent {
                    None => serde_json::json!({}),
                    Some(p) => serde_json::json!({ "parent_run": p }),
                },
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
            let sql = format!("SELECT id FROM runs WHERE parent_run = $1 AND status IN {PENDING}");
            let children: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
            if seen + todo.len() + children.len() <= MAX_CANCELLED {
                todo.extend(children.into_iter().map(|c| (c, Some(id.clone()))));
            } else {
                tracing::warn!(run = %run_id, "too many unfinished child runs to cancel at once; the rest finish by themselves");
            }
        }
        tx.commit().await?;
        Ok(cancelled_any)
    }

    /// Drop one step of a journal (a failed plugin call, before a retry takes it again).
    pub async fn drop_last_step(&self, run_id: &str, seq: i64) -> Result<()> {
        self.write(Write::DropStep {
            run_id: run_id.to_owned(),
            seq,
        })
        .await
        .map(drop)
    }

    /// The number of due runs nobody holds (queue depth).
    pub async fn queue_depth(&self) -> Result<i64> {
        let (due_index, _) = due_index(self.dialect);
        let sql = format!("SELECT COUNT(*) FROM runs {due_index} WHERE status IN {PENDING} AND run_at <= $1");
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await?)
    }

    /// The state of a cron trigger, if it was set up.
    pub async fn schedule(&self, playbook: &str, trigger: i64) -> Result<Option<ScheduleState>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT spec, next_fire_at FROM schedules WHERE playbook = $1 AND trigger_index = $2",
        )
        .bind(playbook)
        .bind(trigger)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(spec, next_fire_at)| ScheduleState { spec, next_fire_at }))
    }

    /// Set up a cron trigger, unless another node just did.
    pub async fn init_schedule(
        &self,
        playbook: &str,
        trigger: i64,
        spec: &str,
        next_fire_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO schedules (playbook, trigger_index, spec, next_fire_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (playbook, trigger_index) DO NOTHING",
        )
        .bind(playbook)
        .bind(trigger)
        .bind(spec)
        .bind(next_fire_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Replace a cron trigger whose schedule changed.
    pub async fn reset_schedule(
        &self,
        playbook: &str,
        trigger: i64,
        spec: &str,
        next_fire_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE schedules SET spec = $1, next_fire_at = $2 WHERE playbook = $3 AND trigger_index = $4",
        )
        .bind(spec)
        .bind(next_fire_at)
        .bind(playbook)
        .bind(trigger)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Fire a cron trigger: move its next fire time from `expected` to `next` and create
    /// `run`, in one transaction, only if no other node did it first. Returns whether this
    /// call won.
    pub async fn advance_schedule(
        &self,
        playbook: &str,
        trigger: i64,
        expected: i64,
        next: i64,
        run: Option<&NewRun>,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let won = sqlx::query(
            "UPDATE schedules SET next_fire_at = $1 WHERE playbook = $2 AND trigger_index = $3 AND next_fire_at = $4",
        )
        .bind(next)
        .bind(playbook)
        .bind(trigger)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(run) = run {
            Write::CreateRun(run.clone()).execute(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_status_names_parse_to_themselves() {
        for name in super::RunStatus::NAMES {
            assert_eq!(super::RunStatus::parse(name).map(|s| s.as_str()), Some(*name));
        }
        assert_eq!(super::RunStatus::NAMES.len(), 7);
    }

    use super::*;
    use crate::store::testing::both_dialects;

    fn new_run(id: &str, input: serde_json::Value) -> NewRun {
        NewRun {
            id: id.into(),
            playbook: "pb".into(),
            script_hash: "h".into(),
            input,
            origin: "manual".into(),
            context: serde_json::Value::Null,
            lease: None,
        }
    }

    fn step(seq: i64) -> StepRecord {
        StepRecord {
            seq,
            kind: "invoke".into(),
            request: serde_json::json!({"n": seq}),
            outcome: serde_json::json!({"ok": true}),
            ok: true,
            started_at: 1,
            duration_ms: 2,
            unreadable: None,
        }
    }

    async fn assert_nothing_to_claim(store: &Store) {
        let claimed = store.claim_jobs("w2", now_ms() + 30_000, 10).await.unwrap();
        assert!(claimed.is_empty(), "{claimed:?}");
    }

    both_dialects!(a_run_is_queued_claimed_journaled_and_finished, |store| {
        store
            .create_run(&new_run("r1", serde_json::json!({"ip": "1.2.3.4"})))
            .await
            .unwrap();
        let run = store.run("r1").await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.input["ip"], "1.2.3.4");

        let claimed = store.claim_jobs("w1", now_ms() + 30_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].run_id.as_str(), claimed[0].attempts), ("r1", 1));
        assert_eq!(claimed[0].run.status, RunStatus::Running);
        assert_eq!(claimed[0].run.input["ip"], "1.2.3.4");
        assert_eq!(store.run("r1").await.unwrap().unwrap().status, RunStatus::Running);
        // Leased: nobody else gets it.
        assert_nothing_to_claim(store).await;
        assert!(store.extend_lease("r1", "w1", now_ms() + 60_000).await.unwrap());
        assert!(!store.extend_lease("r1", "w2", now_ms() + 60_000).await.unwrap());

        store.append_step("r1", &step(1)).await.unwrap();
        store.append_step("r1", &step(2)).await.unwrap();
        assert!(
            store.append_step("r1", &step(2)).await.is_err(),
            "a step is never written twice"
        );
        assert_eq!(store.steps("r1").await.unwrap().len(), 2);

        store
            .finish_run(
                "r1",
                RunStatus::Completed,
                Some(&serde_json::json!({"done": true})),
                None,
            )
            .await
            .unwrap();
        let run = store.run("r1").await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(run.output, Some(serde_json::json!({"done": true})));
        assert!(run.finished_at.is_some() && run.wake_at.is_none());
        assert_eq!(store.queue_depth().await.unwrap(), 0);
    });

    both_dialects!(a_claim_takes_at_most_its_limit, |store| {
        for i in 0..12 {
            store
                .create_run(&new_run(&format!("r{i:02}"), serde_json::json!({})))
                .await
                .unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        for want in [3, 3, 5, 10] {
            let claimed = store.claim_jobs("w1", now_ms() + 30_000, want).await.unwrap();
            assert!(
                claimed.len() as i64 <= want,
                "asked for {want}, got {}",
                claimed.len()
            );
            for c in claimed {
                assert!(seen.insert(c.run_id.clone()), "{} claimed twice", c.run_id);
            }
        }
        assert_eq!(seen.len(), 12);
    });

    both_dialects!(an_expired_lease_is_claimed_again, |store| {
        store
            .create_run(&new_run("r1", serde_json::json!({})))
            .await
            .unwrap();
        let first = store.claim_jobs("dead-node", now_ms() - 1, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        let again = store.claim_jobs("w2", now_ms() + 30_000, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].run_id.as_str(), again[0].attempts), ("r1", 2));
    });

    both_dialects!(a_run_created_claimed_is_stored_as_a_claim_leaves_it, |store| {
        let lease = |worker: &str, until: i64| Lease {
            worker: worker.into(),
            until,
        };
        let run = NewRun {
            lease: Some(lease("w1", now_ms() + 30_000)),
            ..new_run("r1", serde_json::json!({"ip": "1.2.3.4"}))
        };
        store.create_run(&run).await.unwrap();
        let job = ClaimedJob::created(&run).unwrap();
        assert_eq!(ClaimedJob::created(&new_run("r2", serde_json::json!({}))), None);
        let stored = store.run("r1").await.unwrap().unwrap();
        assert_eq!((job.attempts, job.unfinished), (1, 1));
        assert_eq!(
            RunRecord {
                created_at: 0,
                updated_at: 0,
                ..job.run.clone()
            },
            RunRecord {
                created_at: 0,
                updated_at: 0,
                ..stored
            },
            "the job is the run as stored"
        );
        assert_eq!(stored.status, RunStatus::Running);
        // Leased to w1 alone.
        assert_nothing_to_claim(store).await;
        assert!(store.extend_lease("r1", "w1", now_ms() - 1).await.unwrap());
        assert!(!store.extend_lease("r1", "w2", now_ms() + 30_000).await.unwrap());

        // Its worker died (the lease ran out): the next claim is the run's second, and
        // counts the replay that never ended.
        let again = store.claim_jobs("w2", now_ms() + 30_000, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].attempts, again[0].unfinished), (2, 2));
        assert_eq!(store.run_counts().await.unwrap(), vec![(RunStatus::Running, 1)]);
    });

    both_dialects!(
        waiting_runs_wake_at_their_time_and_restart_cuts_the_journal,
        |store| {
            store
                .create_run(&new_run("r1", serde_json::json!({})))
                .await
                .unwrap();
            store.claim_jobs("w", now_ms() + 30_000, 1).await.unwrap();
            for i in 1..=4 {
                store.append_step("r1", &step(i)).await.unwrap();
            }
            store
                .reschedule_run("r1", RunStatus::Waiting, now_ms() + 60_000, None)
                .await
                .unwrap();
            let run = store.run("r1").await.unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Waiting);
            assert!(run.wake_at.unwrap() > now_ms());
            assert!(
                store
                    .claim_jobs("w", now_ms() + 30_000, 1)
                    .await
                    .unwrap()
                    .is_empty(),
                "not due yet"
            );

            let cut = store.restart_run("r1", 3, "h2", &Actor::system()).await.unwrap();
            assert_eq!(cut, 2);
            let steps: Vec<i64> = store.steps("r1").await.unwrap().iter().map(|s| s.seq).collect();
            assert_eq!(steps, vec![1, 2]);
            let run = store.run("r1").await.unwrap().unwrap();
            assert_eq!((run.status, run.script_hash.as_str()), (RunStatus::Queued, "h2"));
            assert_eq!(
                store.claim_jobs("w", now_ms() + 30_000, 1).await.unwrap().len(),
                1
            );
        }
    );

    both_dialects!(concurrent_claims_never_hand_out_a_job_twice, |store| {
        for i in 0..40 {
            store
                .create_run(&new_run(&format!("r{i:02}"), serde_json::json!({})))
                .await
                .unwrap();
        }
        let claims = (0..8).map(|w| {
            let store = store.clone();
            async move {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim_jobs(&format!("w{w}"), now_ms() + 30_000, 3)
                        .await
                        .unwrap();
                    if got.is_empty() {
                        break mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.run_id));
                }
            }
        });
        let mut all: Vec<String> = futures::future::join_all(claims)
            .await
            .into_iter()
            .flatten()
            .collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, 40, "every job claimed");
        assert_eq!(all.len(), 40, "and none twice");
    });
}
