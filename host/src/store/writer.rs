//! Group commit for the hot writes: runs (create, journal a step, reschedule, finish) and
//! incoming alerts.
//!
//! On SQLite every commit costs a WAL append: about 180 µs on these machines, against 9 µs
//! for the same insert inside a larger transaction; and every statement is a round trip to
//! the connection's own thread, which on a busy machine costs more than the statement. So
//! writes are queued to one task that takes everything waiting, writes it in one
//! transaction with one statement per kind of write (all new runs in one multi-row insert,
//! all steps in another, all finished runs in one `UPDATE ... FROM`), commits once, and only
//! then answers each caller: a step is still durable before the script sees its outcome,
//! but a hundred runs share a commit and a handful of statements.
//! On PostgreSQL, which has its own group commit and many connections, each write runs
//! directly, through the same statements (a group of one).

use super::alerts::StoredAlert;
use super::runs::{NewRun, RunStatus, StepRecord};
use super::{Result, StoreError, now_ms};
use sqlx::AnyConnection;
use std::collections::HashSet;
use tokio::sync::{mpsc, oneshot};

/// The most writes committed together.
const MAX_BATCH: usize = 512;

/// The most rows in one multi-row statement (the widest row, a new run's, binds 14
/// parameters: × 500 stays well under SQLite's 32,766 and PostgreSQL's 65,535).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

/// A hot write.
#[derive(Debug, Clone)]
pub(super) enum Write {
    /// Shared, so that the caller can hand the committed alerts on without copying them.
    InsertAlerts(std::sync::Arc<Vec<StoredAlert>>),
    /// A poll's alerts and its poller's new cursor and state, committed together.
    PollDone(Box<super::pollers::PollDone>),
    CreateRun(NewRun),
    AppendStep {
        run_id: String,
        step: StepRecord,
    },
    FinishRun {
        run_id: String,
        status: RunStatus,
        output: Option<String>,
        error: Option<String>,
    },
    Reschedule {
        run_id: String,
        status: RunStatus,
        run_at: i64,
        error: Option<String>,
    },
    SetAttempts {
        run_id: String,
        attempts: i64,
    },
    DropStep {
        run_id: String,
        seq: i64,
    },
    ExtendLease {
        run_id: String,
        worker: String,
        until: i64,
    },
}

/// The states in which a run is in the queue.
pub(super) const PENDING: &str = "('queued', 'waiting', 'running')";

impl Write {
    /// The run this write touches, if any (writes to one run keep their order).
    fn run_id(&self) -> Option<&str> {
        Some(match self {
            Write::InsertAlerts(_) | Write::PollDone(_) => return None,
            Write::CreateRun(run) => &run.id,
            Write::AppendStep { run_id, .. }
            | Write::FinishRun { run_id, .. }
            | Write::Reschedule { run_id, .. }
            | Write::SetAttempts { run_id, .. }
            | Write::DropStep { run_id, .. }
            | Write::ExtendLease { run_id, .. } => run_id,
        })
    }

    /// Run this one write on `conn`; returns the rows it affected.
    pub(super) async fn execute(self, conn: &mut AnyConnection) -> Result<u64> {
        execute_all(conn, vec![self])
            .await?
            .pop()
            .expect("one result per write")
    }
}

/// Run `writes` on `conn`, in order as far as any one run can tell: each run's writes are
/// applied in the order given, while writes to different runs (which touch different rows)
/// are grouped by kind into one statement each. Returns, for each write, the rows it
/// affected or why it alone failed (a step number already taken); an `Err` of the whole
/// means a statement failed and the caller must roll back.
pub(super) async fn execute_all(conn: &mut AnyConnection, writes: Vec<Write>) -> Result<Vec<Result<u64>>> {
    let mut results: Vec<Option<Result<u64>>> = (0..writes.len()).map(|_| None).collect();
    let mut pending: Vec<(usize, Write)> = writes.into_iter().enumerate().collect();
    // Rounds: each takes at most one write per run, so grouping never reorders one run's writes.
    while !pending.is_empty() {
        let mut seen = HashSet::new();
        let (round, later): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, w)| w.run_id().is_none_or(|id| seen.insert(id.to_owned())));
        pending = later;
        execute_round(conn, round, &mut results).await?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every write has a result"))
        .collect())
}

/// One round: at most one write per run.
async fn execute_round(
    conn: &mut AnyConnection,
    round: Vec<(usize, Write)>,
    results: &mut [Option<Result<u64>>],
) -> Result<()> {
    let now = now_ms();
    let mut creates = Vec::new();
    let mut steps = Vec::new();
    let mut finishes = Vec::new();
    let mut reschedules = Vec::new();
    let mut alerts = Vec::new();
    for (i, write) in round {
        match write {
            Write::InsertAlerts(a) => {
                results[i] = Some(Ok(a.len() as u64));
                alerts.push(a);
            }
            Write::PollDone(done) => {
                results[i] = Some(Ok(super::pollers::record_done(conn, &done).await?));
                alerts.push(std::sync::Arc::new(done.alerts));
            }
            Write::CreateRun(run) => creates.push((i, run)),
            Write::AppendStep { run_id, step } => steps.push((i, run_id, step)),
            Write::FinishRun {
                run_id,
                status,
                output,
                error,
            } => finishes.push((i, run_id, status, output, error)),
            Write::Reschedule {
                run_id,
                status,
                run_at,
                error,
            } => reschedules.push((i, run_id, status, run_at, error)),
            single => results[i] = Some(Ok(execute_single(conn, &single).await?)),
        }
    }

    let sqlite = conn.backend_name() == "SQLite";
    for creates in creates.chunks(ROWS_PER_STATEMENT) {
        // A run created claimed (with a lease) is stored as a claim leaves it
        // (`Store::claim_jobs`): running, due when its lease ends, claimed once and not yet
        // finished once.
        let sql =
            format!(
            "INSERT INTO runs (id, playbook, script_hash, input, origin, context, status, attempts, run_at,
                 claims, unfinished, locked_by, locked_until, created_at, updated_at)
             VALUES {}",
            rows("(?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)", creates.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, run) in creates {
            let lease = &run.lease;
            let (status, run_at, claims) = match lease {
                Some(lease) => (RunStatus::Running, lease.until, 1),
                None => (RunStatus::Queued, now, 0),
            };
            q = q
                .bind(&run.id)
                .bind(&run.playbook)
                .bind(&run.script_hash)
                .bind(run.input.to_string())
                .bind(&run.origin)
                .bind((!run.context.is_null()).then(|| run.context.to_string()))
                .bind(status.as_str())
                .bind(run_at)
                .bind(claims)
                .bind(claims)
                .bind(lease.as_ref().map(|l| l.worker.as_str()))
                .bind(lease.as_ref().map(|l| l.until))
                .bind(now)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
        for (i, _) in creates {
            results[*i] = Some(Ok(1));
        }
    }
    super::counts::runs_created(conn, now, creates.iter().map(|(_, r)| r.playbook.as_str())).await?;

    for steps in steps.chunks(ROWS_PER_STATEMENT) {
        // A step whose number is taken (another worker got there first) is not written, and
        // fails alone.
        let sql = format!(
            "INSERT INTO run_steps (run_id, seq, kind, request, outcome, ok, started_at, duration_ms)
             VALUES {}
             ON CONFLICT (run_id, seq) DO NOTHING RETURNING run_id, seq",
            rows("(?, ?, ?, ?, ?, ?, ?, ?)", steps.len(), sqlite)
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for (_, run_id, step) in steps {
            q = q
                .bind(run_id)
                .bind(step.seq)
                .bind(&step.kind)
                .bind(step.request.to_string())
                .bind(step.outcome.to_string())
                .bind(i32::from(step.ok))
                .bind(step.started_at)
                .bind(step.duration_ms);
        }
        let written: Vec<(String, i64)> = q.fetch_all(&mut *conn).await?;
        let written: HashSet<(String, i64)> = written.into_iter().collect();
        for (i, run_id, step) in steps {
            results[*i] = Some(if written.contains(&(run_id.clone(), step.seq)) {
                Ok(1)
            } else {
                Err(StoreError::StepTaken {
                    run_id: run_id.clone(),
                    seq: step.seq,
                })
            });
        }
    }

    for finishes in finishes.chunks(ROWS_PER_STATEMENT) {
        // A run that already ended keeps its outcome (a cancel racing a completion).
        let sql = format!(
            "WITH v (id, status, output, error, at) AS (VALUES {})
             UPDATE runs SET status = v.status, output = v.output, error = v.error, updated_at = v.at,
                 finished_at = v.at, unfinished = 0, run_at = NULL, locked_by = NULL, locked_until = NULL
             FROM v WHERE runs.id = v.id AND runs.status IN {PENDING}
             RETURNING runs.id, runs.playbook, runs.created_at, runs.parent_run",
            rows("(?, ?, ?, ?, ?)", finishes.len(), sqlite)
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for (_, run_id, status, output, error) in finishes {
            q = q
                .bind(run_id)
                .bind(status.as_str())
                .bind(output)
                .bind(error)
                .bind(now);
        }
        let ended: Vec<(String, String, i64, Option<String>)> = q.fetch_all(&mut *conn).await?;
        let status: std::collections::HashMap<&str, RunStatus> =
            finishes.iter().map(|(_, id, s, ..)| (id.as_str(), *s)).collect();
        let counted: Vec<_> = ended
            .iter()
            .map(|(id, p, at, _)| (p.as_str(), *at, status[id.as_str()]))
            .collect();
        super::counts::runs_ended(conn, &counted).await?;
        let parents: HashSet<&str> = ended
            .iter()
            .filter_map(|(.., parent)| parent.as_deref())
            .collect();
        wake_parents(conn, &parents, now, sqlite).await?;
        let done: HashSet<&str> = ended.iter().map(|(id, ..)| id.as_str()).collect();
        for (i, run_id, ..) in finishes {
            results[*i] = Some(Ok(u64::from(done.contains(run_id.as_str()))));
        }
    }

    let alerts: Vec<&StoredAlert> = alerts.iter().flat_map(|a| a.iter()).collect();
    for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO alerts (id, received_at, via, source, title, severity, occurred_at, data, observables, raw)
             VALUES {}",
            rows("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in chunk {
            q = q
                .bind(&a.id)
                .bind(a.received_at)
                .bind(&a.via)
                .bind(&a.alert.source)
                .bind(&a.alert.title)
                .bind(a.alert.severity.as_str())
                .bind(a.alert.occurred_at)
                .bind(a.alert.data.to_string())
                .bind(serde_json::to_string(&a.alert.observables).expect("observables serialise"))
                .bind(&a.alert.raw);
        }
        q.execute(&mut *conn).await?;
    }
    super::counts::alerts_inserted(conn, &alerts).await?;

    for reschedules in reschedules.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (id, status, run_at, error, at) AS (VALUES {})
             UPDATE runs SET status = v.status, error = v.error, updated_at = v.at,
                 run_at = CASE WHEN runs.woken_at IS NOT NULL AND v.status = 'waiting' THEN v.at ELSE v.run_at END,
                 locked_by = NULL, locked_until = NULL, woken_at = NULL, unfinished = 0
             FROM v WHERE runs.id = v.id AND runs.status IN {PENDING}
             RETURNING runs.id",
            rows("(?, ?, ?, ?, ?)", reschedules.len(), sqlite)
        );
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for (_, run_id, status, run_at, error) in reschedules {
            q = q
                .bind(run_id)
                .bind(status.as_str())
                .bind(run_at)
                .bind(error)
                .bind(now);
        }
        let done: Vec<(String,)> = q.fetch_all(&mut *conn).await?;
        let done: HashSet<String> = done.into_iter().map(|(id,)| id).collect();
        for (i, run_id, ..) in reschedules {
            results[*i] = Some(Ok(u64::from(done.contains(run_id))));
        }
    }
    Ok(())
}

/// Wake `parents`, the parents of runs that just ended (a child playbook's end is what its
/// parent waits for), as an answered question wakes its run: a waiting parent is due at
/// once, one being replayed is marked (`woken_at`) so its reschedule makes it due at once.
async fn wake_parents(
    conn: &mut AnyConnection,
    parents: &HashSet<&str>,
    now: i64,
    sqlite: bool,
) -> Result<()> {
    if parents.is_empty() {
        return Ok(());
    }
    // `now` is a number this function was given, written into the statement; the ids are bound.
    // On SQLite `+` keeps `runs_by_status` out of the plan: without statistics its planner
    // would read every pending run to find these few, where their keys are at hand.
    let plus = if sqlite { "+" } else { "" };
    let sql = format!(
        "UPDATE runs SET run_at = CASE WHEN status = 'waiting' THEN {now} ELSE run_at END, woken_at = {now}
         WHERE {plus}status IN {PENDING} AND id IN ({})",
        rows("?", parents.len(), sqlite)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in parents {
        q = q.bind(*id);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// `count` copies of the row `template`, comma-separated. Each `?` stays an anonymous `?` on
/// SQLite, bound in order (sqlx looks a named parameter up by walking SQLite's list of names,
/// which made binding grow with the square of the parameters: 75 % of the time for 500
/// ten-column rows), and becomes `$1`, `$2`, ... on PostgreSQL.
pub(super) fn rows(template: &str, count: usize, sqlite: bool) -> String {
    let mut sql = String::with_capacity((template.len() + 8) * count);
    let mut next = 1;
    for r in 0..count {
        if r > 0 {
            sql.push_str(", ");
        }
        for c in template.chars() {
            if c == '?' && !sqlite {
                sql.push_str(&format!("${next}"));
                next += 1;
            } else {
                sql.push(c);
            }
        }
    }
    sql
}

/// The rare writes, one statement each.
async fn execute_single(conn: &mut AnyConnection, write: &Write) -> Result<u64> {
    let done = match write {
        Write::SetAttempts { run_id, attempts } => {
            sqlx::query("UPDATE runs SET attempts = $1 WHERE id = $2")
                .bind(attempts)
                .bind(run_id)
                .execute(&mut *conn)
                .await?
        }
        Write::DropStep { run_id, seq } => {
            sqlx::query("DELETE FROM run_steps WHERE run_id = $1 AND seq = $2")
                .bind(run_id)
                .bind(seq)
                .execute(&mut *conn)
                .await?
        }
        Write::ExtendLease {
            run_id,
            worker,
            until,
        } => {
            let sql = format!(
                "UPDATE runs SET locked_until = $1, run_at = $1 WHERE id = $2 AND locked_by = $3 AND status IN {PENDING}"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(until)
                .bind(run_id)
                .bind(worker)
                .execute(&mut *conn)
                .await?
        }
        Write::InsertAlerts(_)
        | Write::PollDone(_)
        | Write::CreateRun(_)
        | Write::AppendStep { .. }
        | Write::FinishRun { .. }
        | Write::Reschedule { .. } => {
            unreachable!("grouped writes are not run one by one")
        }
    };
    Ok(done.rows_affected())
}

type Request = (Write, oneshot::Sender<Result<u64>>);

/// The handle to the group-commit task.
#[derive(Debug, Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Request>,
}

impl Batcher {
    /// Start the task that commits writes in groups on `pool` (a one-connection pool).
    pub(super) fn start(pool: sqlx::AnyPool) -> Batcher {
        let (queue, mut requests) = mpsc::channel::<Request>(4 * MAX_BATCH);
        tokio::spawn(async move {
            while let Some(first) = requests.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match requests.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                commit_batch(&pool, batch).await;
            }
        });
        Batcher { queue }
    }

    /// Queue `write`; returns once it is committed.
    pub(super) async fn write(&self, write: Write) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((write, reply))
            .await
            .map_err(|_| StoreError::Writer("its task has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Writer("its task has stopped".into()))?
    }
}

async fn commit_batch(pool: &sqlx::AnyPool, batch: Vec<Request>) {
    use sqlx::Connection as _;
    let (writes, replies): (Vec<Write>, Vec<_>) = batch.into_iter().unzip();
    let n = writes.len();
    let asked = std::time::Instant::now();
    let outcome: Result<Vec<Result<u64>>> = async {
        let mut conn = pool.acquire().await?;
        let acquired = asked.elapsed();
        let mut tx = conn.begin().await?;
        let results = execute_all(&mut tx, writes).await?;
        tx.commit().await?;
        // Where a group commit's time goes (`OSPREY_LOG=osprey::store=debug`): waiting for
        // the one writing connection (a triage or another transaction holds it), then the
        // statements and the commit.
        tracing::debug!(
            writes = n,
            wait_us = acquired.as_micros() as u64,
            total_us = asked.elapsed().as_micros() as u64,
            "group commit"
        );
        Ok(results)
    }
    .await;
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            // Nothing was committed: every write in the batch fails with the reason.
            tracing::error!(error = %e, writes = n, "a group commit failed");
            let message = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(StoreError::Writer(format!("write not committed: {message}"))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::RunStatus;
    use crate::store::testing::both_dialects;

    fn run(id: &str) -> Write {
        Write::CreateRun(NewRun {
            id: id.into(),
            playbook: "pb".into(),
            script_hash: "h".into(),
            input: serde_json::json!({ "id": id }),
            origin: "test".into(),
            context: serde_json::Value::Null,
            lease: None,
        })
    }

    fn step(run_id: &str, seq: i64) -> Write {
        Write::AppendStep {
            run_id: run_id.into(),
            step: StepRecord {
                seq,
                kind: "invoke".into(),
                request: serde_json::json!({ "seq": seq }),
                outcome: serde_json::json!(null),
                ok: true,
                started_at: 1,
                duration_ms: 0,
                unreadable: None,
            },
        }
    }

    fn finish(run_id: &str, status: RunStatus) -> Write {
        Write::FinishRun {
            run_id: run_id.into(),
            status,
            output: None,
            error: None,
        }
    }

    both_dialects!(a_group_keeps_each_runs_order_and_fails_writes_alone, |store| {
        let mut conn = store.writer.acquire().await.unwrap();
        let results = execute_all(
            &mut conn,
            vec![
                run("a"),
                run("b"),
                step("a", 1),
                step("a", 2),
                // Taken by the write just before it in the same group.
                step("a", 2),
                finish("b", RunStatus::Completed),
                // Comes after b's completion, so it changes nothing.
                finish("b", RunStatus::Cancelled),
                Write::Reschedule {
                    run_id: "a".into(),
                    status: RunStatus::Waiting,
                    run_at: 77,
                    error: None,
                },
            ],
        )
        .await
        .unwrap();
        drop(conn);
        let affected: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(n) => n.to_string(),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(
            affected,
            [
                "1",
                "1",
                "1",
                "1",
                "step 2 of run a is already recorded (another worker has the run)",
                "1",
                "0",
                "1"
            ]
        );
        assert_eq!(
            store.run("b").await.unwrap().unwrap().status,
            RunStatus::Completed
        );
        let a = store.run("a").await.unwrap().unwrap();
        assert_eq!((a.status, a.wake_at), (RunStatus::Waiting, Some(77)));
        assert_eq!(store.steps("a").await.unwrap().len(), 2);
    });

    both_dialects!(groups_larger_than_one_statement_are_split, |store| {
        let mut conn = store.writer.acquire().await.unwrap();
        let n = 2 * ROWS_PER_STATEMENT + 17;
        let mut writes: Vec<Write> = (0..n).map(|i| run(&format!("r{i}"))).collect();
        writes.extend((0..n).map(|i| step(&format!("r{i}"), 1)));
        let results = execute_all(&mut conn, writes).await.unwrap();
        drop(conn);
        assert_eq!(results.len(), 2 * n);
        assert!(results.iter().all(|r| matches!(r, Ok(1))));
        assert_eq!(store.run_counts().await.unwrap(), [(RunStatus::Queued, n as i64)]);
        assert_eq!(store.steps(&format!("r{}", n - 1)).await.unwrap().len(), 1);
    });
}
