//! Group commit for the hot writes of runs (create, journal a step, reschedule, finish).
//!
//! On SQLite every commit costs a WAL append: about 180 µs on these machines, against 9 µs
//! for the same insert inside a larger transaction. So writes are queued to one task that
//! takes everything waiting, runs it in one transaction, commits once, and only then answers
//! each caller: a step is still durable before the script sees its outcome, but a hundred runs
//! share one commit. A statement that fails (a step number already written) fails alone;
//! SQLite rolls back only that statement. On PostgreSQL, which has its own group commit and
//! many connections, each write runs directly.

use super::runs::{NewRun, RunStatus, StepRecord};
use super::{Result, StoreError, now_ms};
use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

/// The most writes committed together.
const MAX_BATCH: usize = 512;

/// A write to the runs tables.
#[derive(Debug, Clone)]
pub(super) enum Write {
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
    /// Run this write on `conn`; returns the rows it affected.
    pub(super) async fn execute(&self, conn: &mut AnyConnection) -> Result<u64> {
        let now = now_ms();
        let done = match self {
            Write::CreateRun(run) => {
                sqlx::query(
                    "INSERT INTO runs (id, playbook, script_hash, input, origin, status, attempts, run_at, claims,
                         created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, 0, $6, $6)",
                )
                .bind(&run.id)
                .bind(&run.playbook)
                .bind(&run.script_hash)
                .bind(run.input.to_string())
                .bind(&run.origin)
                .bind(now)
                .execute(&mut *conn)
                .await?
            }
            Write::AppendStep { run_id, step } => {
                sqlx::query(
                    "INSERT INTO run_steps (run_id, seq, kind, request, outcome, ok, started_at, duration_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(run_id)
                .bind(step.seq)
                .bind(&step.kind)
                .bind(step.request.to_string())
                .bind(step.outcome.to_string())
                .bind(i32::from(step.ok))
                .bind(step.started_at)
                .bind(step.duration_ms)
                .execute(&mut *conn)
                .await?
            }
            Write::FinishRun { run_id, status, output, error } => {
                // A run that already ended keeps its outcome (a cancel racing a completion).
                let sql = format!(
                    "UPDATE runs SET status = $1, output = $2, error = $3, updated_at = $4, finished_at = $4,
                         run_at = NULL, locked_by = NULL, locked_until = NULL
                     WHERE id = $5 AND status IN {PENDING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(status.as_str())
                    .bind(output.as_deref())
                    .bind(error.as_deref())
                    .bind(now)
                    .bind(run_id)
                    .execute(&mut *conn)
                    .await?
            }
            Write::Reschedule { run_id, status, run_at, error } => {
                let sql = format!(
                    "UPDATE runs SET status = $1, error = $2, updated_at = $3, run_at = $4, locked_by = NULL,
                         locked_until = NULL
                     WHERE id = $5 AND status IN {PENDING}"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(status.as_str())
                    .bind(error.as_deref())
                    .bind(now)
                    .bind(run_at)
                    .bind(run_id)
                    .execute(&mut *conn)
                    .await?
            }
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
            Write::ExtendLease { run_id, worker, until } => {
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
        };
        Ok(done.rows_affected())
    }
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
    let mut results = Vec::with_capacity(batch.len());
    let outcome: Result<()> = async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        for (write, _) in &batch {
            results.push(write.execute(&mut tx).await);
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            for ((_, reply), result) in batch.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            // Nothing was committed: every write in the batch fails with the reason.
            tracing::error!(error = %e, writes = batch.len(), "a group commit failed");
            let message = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(StoreError::Writer(format!("write not committed: {message}"))));
            }
        }
    }
}
