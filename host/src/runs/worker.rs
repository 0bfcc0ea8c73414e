//! The workers: claim due jobs, keep their leases, replay each run over its journal with the
//! real effects, and file the outcome: completed, waiting until a time, queued again after a
//! shutdown, retried with backoff, failed, dead-lettered, or set aside as poison.

use super::Executor;
use super::effects::LiveEffects;
use super::journal::LoadError;
use crate::playbook::{Failure, FailureKind, MAX_RETRY_AFTER_MS, Outcome, RunContext, Step, StepKind};
use crate::store::runs::{ClaimedJob, RunStatus};
use crate::store::{StoreError, now_ms};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

impl Executor {
    /// Claim up to `max` due jobs and process them, concurrently. Returns how many.
    pub async fn work_once(self: &Arc<Self>, max: usize) -> Result<usize, StoreError> {
        let lease_until = now_ms() + self.config.lease.as_millis() as i64;
        let jobs = self.store.claim_jobs(&self.node, lease_until, max as i64).await?;
        let n = jobs.len();
        let tasks: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let me = self.clone();
                tokio::spawn(async move { me.process(job).await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        Ok(n)
    }

    /// Process one specific run if it is due (for `osprey playbook run` following its own
    /// run). Returns whether it was claimed.
    pub async fn work_on(self: &Arc<Self>, run_id: &str) -> Result<bool, StoreError> {
        let lease_until = now_ms() + self.config.lease.as_millis() as i64;
        match self.store.claim_run(run_id, &self.node, lease_until).await? {
            Some(job) => {
                self.process(job).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Run workers until `shutdown` turns true: keep up to `workers` runs in flight, claim
    /// more as soon as one finishes, and otherwise wait for a run queued here or for the
    /// next look at the queue (runs started by other processes, timers coming due). A run
    /// created here while a worker is free skips the queue: it is created claimed and handed
    /// to that worker (`Executor::reserve_workers`). On shutdown, the runs in flight finish
    /// their replay first.
    pub fn spawn_workers(
        self: &Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        let watch = {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Err(e) = me.interrupt_cancelled().await {
                        tracing::warn!(error = %e, "looking for cancelled runs failed");
                    }
                }
            })
        };
        // From now on runs created here may go straight to a free worker.
        self.working.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            let slots = me.slots.clone();
            let poll = Duration::from_millis(100);
            while !*shutdown.borrow() {
                let free = slots.available_permits();
                let claimed = if free == 0 {
                    Vec::new()
                } else {
                    let lease_until = now_ms() + me.config.lease.as_millis() as i64;
                    let asked = Instant::now();
                    match me.store.claim_jobs(&me.node, lease_until, free as i64).await {
                        Ok(jobs) => {
                            tracing::debug!(
                                free,
                                claimed = jobs.len(),
                                us = asked.elapsed().as_micros() as u64,
                                "claimed"
                            );
                            jobs
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "claiming runs failed");
                            Vec::new()
                        }
                    }
                };
                let full = free > 0 && claimed.len() == free;
                for job in claimed {
                    let permit = slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    me.spawn_job(job, permit);
                }
                if full {
                    // There may be more: look again once slots free up. A short pause lets
                    // several finish, so one claim fetches several runs instead of one each.
                    tokio::select! {
                        _ = me.wake.notified() => {}
                        _ = shutdown.changed() => {}
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    tokio::select! {
                        _ = me.wake.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
            // The replays in flight stop between two operations and are queued again.
            me.working.store(false, Ordering::SeqCst);
            me.interrupt_all();
            let _ = slots.acquire_many(me.config.workers.max(1) as u32).await;
            watch.abort();
        })
    }

    /// A worker's permit, if one is free and the workers run (not shutting down). A run
    /// handed to a worker just as the server shuts down is queued again by its replay, as
    /// any run in flight then is.
    pub(super) fn free_worker(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let running = || self.working.load(Ordering::SeqCst) && !*self.shutting_down.borrow();
        if !running() {
            return None;
        }
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        running().then_some(permit)
    }

    /// Process `job` in a task of its own, on the worker whose `permit` it holds; once it
    /// ends, the worker is free and the claim loop may look for more.
    pub(super) fn spawn_job(self: &Arc<Self>, job: ClaimedJob, permit: tokio::sync::OwnedSemaphorePermit) {
        let me = self.clone();
        tokio::spawn(async move {
            me.process(job).await;
            drop(permit);
            me.wake.notify_one();
        });
    }

    /// Replay one claimed run and file the outcome.
    async fn process(self: &Arc<Self>, job: ClaimedJob) {
        if let Err(e) = self.process_inner(&job).await {
            // The lease runs out and the job is claimed again.
            tracing::error!(run = %job.run_id, error = %e, "processing a run failed; it will be retried when its lease expires");
        }
    }

    async fn process_inner(self: &Arc<Self>, job: &ClaimedJob) -> Result<(), StoreError> {
        let store = &self.store;
        let run = &job.run;
        if job.unfinished > i64::from(self.config.max_unfinished_replays) {
            let message = format!(
                "set aside: its replay did not end {} times in a row (the server stopped while \
                 replaying it, perhaps killed by it); `osprey run restart {}` tries again",
                job.unfinished - 1,
                run.id
            );
            store
                .finish_run(&run.id, RunStatus::Dead, None, Some(&message))
                .await?;
            tracing::error!(run = %run.id, playbook = %run.playbook, unfinished = job.unfinished - 1, "poison run set aside as dead");
            return Ok(());
        }
        if let Some(why) = &run.unreadable {
            store
                .finish_run(&run.id, RunStatus::Failed, None, Some(why))
                .await?;
            tracing::warn!(run = %run.id, error = %why, "run failed: its stored data is unreadable");
            return Ok(());
        }
        let pb = match self.playbooks.get(&run.playbook) {
            Ok(pb) => pb,
            Err(e) => {
                store
                    .finish_run(&run.id, RunStatus::Failed, None, Some(&e.to_string()))
                    .await?;
                return Ok(());
            }
        };
        // A run claimed for the first time has an empty journal; any other may not.
        let journal: Vec<Step> = if job.attempts == 1 {
            Vec::new()
        } else {
            match super::journal::load_journal(store, &run.id).await {
                Ok(journal) => journal,
                Err(LoadError::Store(e)) => return Err(e),
                Err(LoadError::Step(e)) => {
                    store
                        .finish_run(&run.id, RunStatus::Failed, None, Some(&e.to_string()))
                        .await?;
                    return Ok(());
                }
            }
        };
        let mut ctx = RunContext::from(run);
        ctx.plugins = pb.meta.plugins.clone();
        self.replaying().insert(run.id.clone(), ctx.interrupt.clone());
        if *self.shutting_down.borrow() {
            ctx.interrupt.shut_down();
        }
        let limits = pb.limits(&self.limits);

        // Keep the lease while the replay runs; if it is lost, stop at the next step.
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let (store, id, node, lost) = (store.clone(), run.id.clone(), self.node.clone(), lost.clone());
            let lease = self.config.lease;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store
                        .extend_lease(&id, &node, now_ms() + lease.as_millis() as i64)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(run = %id, error = %e, "lease heartbeat failed"),
                    }
                }
            })
        };
        let effects = Box::new(LiveEffects {
            handle: tokio::runtime::Handle::current(),
            plugins: self.plugins.clone(),
            store: store.clone(),
            run_id: run.id.clone(),
            checked: Instant::now(),
            lost,
            max_list_entries: self.max_list_entries,
            humans: self.humans.clone(),
            metrics: self.plugins.options().metrics.clone(),
            shutting_down: self.shutting_down.subscribe(),
            playbooks: self.playbooks.clone(),
            context: run.context.clone(),
            mocked: false,
        });
        // The playbook itself, not a copy of its script (a deep copy of the syntax tree).
        let playbook = pb.clone();
        let started = Instant::now();
        let replayed = tokio::task::spawn_blocking(move || {
            let (outcome, _, journal) =
                crate::playbook::engine::replay(&playbook.script, limits, &ctx, journal, effects);
            (outcome, journal)
        })
        .await;
        heartbeat.abort();
        self.replaying().remove(&run.id);
        let (outcome, journal) = match replayed {
            Ok(r) => r,
            Err(e) => {
                let f = Failure {
                    kind: FailureKind::Script,
                    message: format!("the replay crashed: {e}"),
                    step: None,
                };
                (Outcome::Failed(f), Vec::new())
            }
        };
        let ms = started.elapsed().as_millis() as u64;
        match outcome {
            Outcome::Completed(output) => {
                store
                    .finish_run(&run.id, RunStatus::Completed, Some(&output), None)
                    .await?;
                tracing::info!(run = %run.id, playbook = %run.playbook, steps = journal.len(), ms, "run completed");
            }
            Outcome::Interrupted => {
                store
                    .reschedule_run(&run.id, RunStatus::Queued, now_ms(), None)
                    .await?;
                tracing::info!(run = %run.id, steps = journal.len(), "replay interrupted by shutdown; the run is queued again");
            }
            Outcome::Waiting { wake_at } => {
                store
                    .reschedule_run(&run.id, RunStatus::Waiting, wake_at, None)
                    .await?;
                tracing::debug!(run = %run.id, wake_at, "run waiting");
            }
            Outcome::Failed(f) if f.kind == FailureKind::Cancelled => {
                store
                    .finish_run(&run.id, RunStatus::Cancelled, None, Some(&f.message))
                    .await?;
            }
            Outcome::Failed(f) if f.retryable() => {
                let attempts = run.attempts + 1;
                // A retryable plugin failure the script did not handle: take that call again.
                if let Some(last) = journal.last()
                    && last.kind == StepKind::Invoke
                    && !last.ok
                    && matches!(f.kind, FailureKind::Plugin { .. })
                {
                    store.drop_last_step(&run.id, last.seq as i64).await?;
                }
                store.set_run_attempts(&run.id, attempts).await?;
                if attempts >= i64::from(self.config.max_attempts) {
                    let message = format!("gave up after {attempts} attempts: {}", f.message);
                    store
                        .finish_run(&run.id, RunStatus::Dead, None, Some(&message))
                        .await?;
                    tracing::warn!(run = %run.id, error = %message, "run dead-lettered");
                } else {
                    let (wait_ms, message) = retry_wait(&f, attempts, now_ms());
                    store
                        .reschedule_run(&run.id, RunStatus::Queued, now_ms() + wait_ms, Some(&message))
                        .await?;
                    tracing::warn!(run = %run.id, attempts, wait_ms, error = %message, "run will be retried");
                }
            }
            Outcome::Failed(f) => {
                store
                    .finish_run(&run.id, RunStatus::Failed, None, Some(&f.message))
                    .await?;
                tracing::warn!(run = %run.id, playbook = %run.playbook, error = %f.message, "run failed");
            }
        }
        Ok(())
    }
}

/// How long a retryable failed run waits before its next attempt, and the run's error that
/// says why: the plugin's `retry-after` when it gave one (at most [`MAX_RETRY_AFTER_MS`]),
/// else the backoff (2, 4, 8, 16 s, ... up to 5 minutes) after `attempts` attempts.
fn retry_wait(f: &Failure, attempts: i64, now: i64) -> (i64, String) {
    match f.kind {
        FailureKind::Plugin {
            retry_after_ms: Some(asked),
            ..
        } => {
            let wait = asked.min(MAX_RETRY_AFTER_MS);
            let wait_ms = i64::try_from(wait).expect("24 hours of ms fit an i64");
            let at = chrono::DateTime::from_timestamp_millis(now + wait_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let capped = if asked > wait {
                " (the most Osprey waits; it asked for longer)"
            } else {
                ""
            };
            let message = format!(
                "{}; retrying at {at}, in {}{capped}, as the plugin asked (retry-after)",
                f.message,
                humantime::format_duration(std::time::Duration::from_millis(wait)),
            );
            (wait_ms, message)
        }
        _ => ((1000i64 << attempts.min(8)).min(300_000), f.message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::retry_wait;
    use crate::playbook::{Failure, FailureKind};

    fn plugin_failure(retry_after_ms: Option<u64>) -> Failure {
        Failure {
            kind: FailureKind::Plugin {
                retryable: true,
                retry_after_ms,
            },
            message: "ipinfo/lookup failed (rate-limited): daily quota".into(),
            step: Some(1),
        }
    }

    #[test]
    fn a_retry_after_replaces_the_backoff_and_is_capped_at_a_day() {
        let now = 1_800_000_000_000;
        assert_eq!(retry_wait(&plugin_failure(None), 1, now).0, 2000);
        assert_eq!(retry_wait(&plugin_failure(None), 4, now).0, 16_000);
        let (wait, message) = retry_wait(&plugin_failure(Some(3_600_000)), 1, now);
        assert_eq!(wait, 3_600_000);
        assert!(
            message.contains("retrying at 2027-01-15T09:00:00Z, in 1h, as the plugin asked"),
            "{message}"
        );
        let (wait, message) = retry_wait(&plugin_failure(Some(u64::from(u32::MAX))), 1, now);
        assert_eq!(wait, 24 * 3_600_000);
        assert!(message.contains("in 1day (the most Osprey waits"), "{message}");
    }
}
