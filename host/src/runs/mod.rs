//! Executing playbook runs: workers claim due jobs from the store's queue, replay the run's
//! script over its journal (the `playbook` module does the replay; this module supplies the
//! real effects: plugin calls through the runtime, journal writes to the store), and file
//! the outcome: completed, waiting until a time, retried with backoff, failed, or dead.
//!
//! - `mod.rs`: the executor's settings and its API (start, request, cancel, restart).
//! - `worker.rs`: the workers that claim, replay and file runs.
//! - `effects.rs`: the real effects of a replay; `act.rs`: the playbook actions performed.
//! - `journal.rs`: the store's runs and steps as the replay sees them, and back.

mod act;
mod effects;
mod journal;
#[cfg(test)]
mod tests;
mod worker;

pub use journal::{LoadError, StepError, load_journal, load_recorded};

use crate::playbook::{Interrupt, Playbook, Playbooks, RunLimits};
use crate::plugin::Runtime;
use crate::store::audit::Actor;
pub use crate::store::runs::NewRun;
use crate::store::runs::RunStatus;
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Settings of the run executor (`[runs]` in the config).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunsConfig {
    /// Runs replayed at once by one server. A run spends most of its time waiting (on a
    /// commit, a vendor, a timer), so this bounds throughput more than the cores do: the
    /// durable-runs bench finished 4,900 runs/s with 32, 6,600 with 64 and 8,000 with 128
    /// (BENCHMARKS.md). The default matches `runtime.max_instances`, so runs calling plugins
    /// all at once never find the pool full.
    pub workers: usize,
    /// How long a claimed job stays claimed without a heartbeat; a crashed node's runs are
    /// picked up by others after this.
    #[serde(with = "crate::duration::text")]
    pub lease: Duration,
    /// Attempts of a run that keeps failing with retryable errors, before it is dead-lettered.
    pub max_attempts: u32,
    /// Time zone of cron triggers that do not name one.
    pub timezone: chrono_tz::Tz,
    /// Replays of one run in a row that may end with the process dead (killed, or crashed
    /// by the script) before the run is set aside as dead instead of claimed again.
    pub max_unfinished_replays: u32,
}

impl RunsConfig {
    /// The most `workers`: each may hold a replay thread, and every worker's permit is
    /// taken at once at shutdown (a `u32`), so the bound keeps both far inside what the
    /// machine and the semaphore allow.
    pub const MAX_WORKERS: usize = 10_000;

    /// Refuse settings that would stop every run: `max_unfinished_replays = 0` would set
    /// aside each run at its first claim; more than [`Self::MAX_WORKERS`] workers could not
    /// be started (0 workers means 1).
    pub fn validate(&self) -> Result<(), RunsConfigError> {
        if self.max_unfinished_replays == 0 {
            return Err(RunsConfigError::NoUnfinishedReplays);
        }
        if self.workers > Self::MAX_WORKERS {
            return Err(RunsConfigError::TooManyWorkers(self.workers));
        }
        Ok(())
    }
}

/// Settings in `[runs]` that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RunsConfigError {
    #[error("runs.max_unfinished_replays must be at least 1 (0 would set every run aside as dead)")]
    NoUnfinishedReplays,
    #[error("runs.workers = {0} is above the most a server runs ({max})", max = RunsConfig::MAX_WORKERS)]
    TooManyWorkers(usize),
}

impl Default for RunsConfig {
    fn default() -> Self {
        RunsConfig {
            workers: 128,
            lease: Duration::from_secs(30),
            max_attempts: 5,
            timezone: chrono_tz::UTC,
            max_unfinished_replays: 3,
        }
    }
}

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Playbook(#[from] crate::playbook::PlaybookError),
    #[error("input of playbook '{playbook}': {source}")]
    Input {
        playbook: String,
        source: crate::playbook::meta::InputError,
    },
    #[error("input of playbook '{playbook}': the input is {source}")]
    InputTooDeep {
        playbook: String,
        source: crate::nesting::TooDeep,
    },
    #[error("no run with id '{0}'")]
    NoSuchRun(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a request (a run started from a request form) was not started.
#[derive(Debug, Error)]
pub enum RequestError {
    /// The playbook exists but has no `[request]` table.
    #[error("playbook '{0}' is not a request form (its playbook.toml has no [request] table)")]
    NotARequest(String),
    /// The user is disabled, or not in any of the form's roles.
    #[error("user '{user}' may not make the request '{playbook}': {why}")]
    Forbidden {
        playbook: String,
        user: String,
        why: String,
    },
    /// No such playbook, an input that is not right, or the store failed: as for `start`.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Runs playbooks.
pub struct Executor {
    store: Store,
    plugins: Runtime,
    playbooks: Playbooks,
    limits: RunLimits,
    config: RunsConfig,
    node: String,
    /// Woken when a run is queued here or a worker frees up.
    wake: tokio::sync::Notify,
    /// One permit per worker (`workers`): a run in flight here holds one.
    slots: Arc<tokio::sync::Semaphore>,
    /// True while the workers run (`spawn_workers`): a run started here then goes straight
    /// to a free worker.
    working: std::sync::atomic::AtomicBool,
    /// `lists.max_entries`, for `list_add` in playbooks.
    max_list_entries: usize,
    /// Questions to people and mail (`ask`, `approve`, `form`, `send_email`).
    humans: Arc<crate::humans::Humans>,
    /// The runs being replayed here, each with the switch that stops its replay.
    replaying: std::sync::Mutex<HashMap<String, Interrupt>>,
    /// Turns true when the server shuts down: replays and plugin calls in flight stop.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

/// Workers of this server held for runs about to be created claimed
/// ([`Executor::reserve_workers`]); dropped, they are free again.
#[must_use = "dropping the reserved workers frees them"]
pub struct ReservedWorkers(Vec<tokio::sync::OwnedSemaphorePermit>);

/// A fresh run id.
pub fn new_run_id() -> String {
    crate::store::new_id('r')
}

/// Check `input` against `playbook`'s inputs and make the run (not stored yet).
fn new_run(
    playbook: &Playbook,
    input: &serde_json::Map<String, Value>,
    origin: &str,
) -> Result<NewRun, RunError> {
    let input = playbook
        .meta
        .resolve_input(input)
        .map_err(|source| RunError::Input {
            playbook: playbook.name().to_owned(),
            source,
        })?;
    let input = Value::Object(input);
    crate::nesting::check(&input, crate::nesting::MAX_DEPTH).map_err(|source| RunError::InputTooDeep {
        playbook: playbook.name().to_owned(),
        source,
    })?;
    Ok(NewRun {
        id: new_run_id(),
        playbook: playbook.name().to_owned(),
        script_hash: playbook.script.hash.clone(),
        input,
        origin: origin.to_owned(),
        context: Value::Null,
        lease: None,
    })
}

impl Executor {
    pub fn new(
        store: Store,
        plugins: Runtime,
        playbooks: Playbooks,
        limits: RunLimits,
        config: RunsConfig,
        max_list_entries: usize,
        humans: Arc<crate::humans::Humans>,
    ) -> Arc<Executor> {
        let node = format!("{}-{}", std::process::id(), &new_run_id()[18..26]);
        Arc::new(Executor {
            store,
            plugins,
            playbooks,
            limits,
            config,
            node,
            wake: tokio::sync::Notify::new(),
            slots: Arc::new(tokio::sync::Semaphore::new(config.workers.max(1))),
            working: Default::default(),
            max_list_entries,
            humans,
            replaying: Default::default(),
            shutting_down: tokio::sync::watch::Sender::new(false),
        })
    }

    fn replaying(&self) -> std::sync::MutexGuard<'_, HashMap<String, Interrupt>> {
        self.replaying.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stop every replay in flight here (shutdown): each ends between two operations, its
    /// run queued again with its journal intact.
    pub fn interrupt_all(&self) {
        self.shutting_down.send_replace(true);
        for interrupt in self.replaying().values() {
            interrupt.shut_down();
        }
    }

    /// Interrupt the replays here of runs cancelled meanwhile (by this node or another).
    async fn interrupt_cancelled(&self) -> Result<(), StoreError> {
        let ids: Vec<String> = self.replaying().keys().cloned().collect();
        for id in self.store.cancelled_among(&ids).await? {
            if let Some(interrupt) = self.replaying().get(&id) {
                interrupt.cancel();
            }
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn playbooks(&self) -> &Playbooks {
        &self.playbooks
    }

    /// Check `input` against `playbook`'s inputs and make the run (not stored yet).
    pub fn prepare_run(
        &self,
        playbook: &Playbook,
        input: &serde_json::Map<String, Value>,
        origin: &str,
    ) -> Result<NewRun, RunError> {
        new_run(playbook, input, origin)
    }

    /// Start a run of `playbook` now; returns its id.
    pub async fn start(
        self: &Arc<Self>,
        playbook: &str,
        input: &serde_json::Map<String, Value>,
        origin: &str,
    ) -> Result<String, RunError> {
        let pb = self.playbooks.get(playbook)?;
        let run = self.prepare_run(&pb, input, origin)?;
        let id = self.launch(run).await?;
        tracing::debug!(run = %id, playbook, origin, "run started");
        Ok(id)
    }

    /// Store `run`, committed when this returns, and get it replayed; returns its id. With
    /// a worker free here, the run is created already claimed and handed to it: no claim to
    /// wait for and no second write. Otherwise it is queued, and the workers (of this server
    /// or another) claim it in turn.
    async fn launch(self: &Arc<Self>, run: NewRun) -> Result<String, StoreError> {
        let mut runs = [run];
        let workers = self.reserve_workers(&mut runs);
        self.store.create_run(&runs[0]).await?;
        self.hand_over(&runs, workers);
        let [run] = runs;
        Ok(run.id)
    }

    /// Reserve this server's free workers for `runs`, about to be created: each run that
    /// gets one is marked claimed by it (its lease set). Once their creation is committed,
    /// [`Executor::hand_over`] gives them to their workers; if it is not, dropping what this
    /// returns frees the workers again.
    pub fn reserve_workers<'a>(&self, runs: impl IntoIterator<Item = &'a mut NewRun>) -> ReservedWorkers {
        let mut permits = Vec::new();
        for run in runs {
            let Some(permit) = self.free_worker() else {
                break;
            };
            run.lease = Some(crate::store::runs::Lease {
                worker: self.node.clone(),
                until: crate::store::now_ms() + self.config.lease.as_millis() as i64,
            });
            permits.push(permit);
        }
        ReservedWorkers(permits)
    }

    /// Give the runs just created claimed (`reserve_workers`) to their workers, and tell the
    /// claim loop if any were queued instead.
    pub fn hand_over<'a>(
        self: &Arc<Self>,
        runs: impl IntoIterator<Item = &'a NewRun>,
        workers: ReservedWorkers,
    ) {
        let mut permits = workers.0.into_iter();
        let mut queued = false;
        for run in runs {
            match crate::store::runs::ClaimedJob::created(run) {
                Some(job) => {
                    let permit = permits
                        .next()
                        .expect("a worker was reserved for each claimed run");
                    self.spawn_job(job, permit);
                }
                None => queued = true,
            }
        }
        if queued {
            self.wake.notify_one();
        }
    }

    /// The request forms people may fill in: the loaded playbooks with `[request]`.
    pub fn request_forms(&self) -> Vec<crate::playbook::RequestFormInfo> {
        self.playbooks.request_forms()
    }

    /// Start a run of the request form `playbook` for `requester`, with the form's fields as
    /// `input` (checked like `start`'s); returns the run's id. The run's origin is
    /// `request:USER` and the script sees `requester` (`#{ name, email }`).
    pub async fn start_request(
        self: &Arc<Self>,
        playbook: &str,
        input: &serde_json::Map<String, Value>,
        requester: &crate::store::users::UserRecord,
    ) -> Result<String, RequestError> {
        let pb = self.playbooks.get(playbook).map_err(RunError::from)?;
        let Some(form) = &pb.meta.request else {
            return Err(RequestError::NotARequest(playbook.to_owned()));
        };
        if !form.allows(&requester.roles, requester.disabled_at.is_some()) {
            let why = if requester.disabled_at.is_some() {
                "the user is disabled".to_owned()
            } else {
                format!("it is open to the roles {} only", form.roles.join(", "))
            };
            return Err(RequestError::Forbidden {
                playbook: playbook.to_owned(),
                user: requester.name.clone(),
                why,
            });
        }
        let origin = format!("request:{}", requester.name);
        let mut run = self.prepare_run(&pb, input, &origin)?;
        run.context = serde_json::json!({
            "requester": { "name": requester.name, "email": requester.email },
        });
        let id = self.launch(run).await.map_err(RunError::from)?;
        tracing::info!(run = %id, playbook, requester = %requester.name, "request started");
        Ok(id)
    }

    /// Tell the workers that runs were queued (by another part of this process).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Cancel a run that has not ended.
    pub async fn cancel(&self, run_id: &str, actor: &Actor) -> Result<RunStatus, RunError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| RunError::NoSuchRun(run_id.to_owned()))?;
        if run.status.is_final() {
            return Err(RunError::Invalid(format!(
                "run {run_id} already ended ({})",
                run.status
            )));
        }
        if !self.store.cancel_run(run_id, actor).await? {
            return Err(RunError::Invalid(format!(
                "run {run_id} ended before it could be cancelled"
            )));
        }
        // A replay spinning here stops now; one on another node at its next look.
        if let Some(interrupt) = self.replaying().get(run_id) {
            interrupt.cancel();
        }
        Ok(RunStatus::Cancelled)
    }

    /// Cut the journal of a run back to before step `from_step` and run it again from there,
    /// with the playbook's current script.
    pub async fn restart(&self, run_id: &str, from_step: i64, actor: &Actor) -> Result<u64, RunError> {
        let run = self
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| RunError::NoSuchRun(run_id.to_owned()))?;
        let steps = self.store.steps(run_id).await?;
        if from_step < 1 || from_step > steps.len() as i64 + 1 {
            return Err(RunError::Invalid(format!(
                "run {run_id} has {} steps; restart from a step between 1 and {}",
                steps.len(),
                steps.len() + 1
            )));
        }
        let pb = self.playbooks.get(&run.playbook)?;
        let cut = self
            .store
            .restart_run(run_id, from_step, &pb.script.hash, actor)
            .await?;
        tracing::info!(run = %run_id, from_step, cut, "run restarted");
        Ok(cut)
    }
}
