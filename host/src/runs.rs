//! Executing playbook runs: workers claim due jobs from the store's queue, replay the run's
//! script over its journal (the `playbook` module does the replay; this module supplies the
//! real effects: plugin calls through the runtime, journal writes to the store), and file
//! the outcome: completed, waiting until a time, retried with backoff, failed, or dead.

use crate::playbook::{
    Effects, Failure, FailureKind, Interrupt, Outcome, Playbook, Playbooks, PluginFailure, RunContext,
    RunLimits, Step,
};
use crate::plugin::{CallContext, Runtime};
use crate::store::audit::Actor;
use crate::store::incidents::IncidentStatus;
pub use crate::store::runs::NewRun;
use crate::store::runs::{ClaimedJob, RunStatus, StepRecord};
use crate::store::{Store, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Settings of the run executor (`[runs]` in the config).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunsConfig {
    /// Runs replayed at once by one server.
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
    /// Refuse settings that would stop every run: `max_unfinished_replays = 0` would set
    /// aside each run at its first claim.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_unfinished_replays == 0 {
            return Err(
                "runs.max_unfinished_replays must be at least 1 (0 would set every run aside as dead)".into(),
            );
        }
        Ok(())
    }
}

impl Default for RunsConfig {
    fn default() -> Self {
        RunsConfig {
            workers: 32,
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
    #[error("input of playbook '{playbook}': {message}")]
    Input { playbook: String, message: String },
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
    /// Woken when a run is started here or a worker frees up.
    wake: tokio::sync::Notify,
    /// `lists.max_entries`, for `list_add` in playbooks.
    max_list_entries: usize,
    /// Questions to people and mail (`ask`, `approve`, `form`, `send_email`).
    humans: Arc<crate::humans::Humans>,
    /// The runs being replayed here, each with the switch that stops its replay.
    replaying: std::sync::Mutex<HashMap<String, Interrupt>>,
    /// Turns true when the server shuts down: replays and plugin calls in flight stop.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

/// A fresh run id.
pub fn new_run_id() -> String {
    crate::store::new_id('r')
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
        let input = playbook
            .meta
            .resolve_input(input)
            .map_err(|message| RunError::Input {
                playbook: playbook.name().to_owned(),
                message,
            })?;
        let input = Value::Object(input);
        crate::nesting::check(&input, crate::nesting::MAX_DEPTH).map_err(|e| RunError::Input {
            playbook: playbook.name().to_owned(),
            message: format!("the input is {e}"),
        })?;
        Ok(NewRun {
            id: new_run_id(),
            playbook: playbook.name().to_owned(),
            script_hash: playbook.script.hash.clone(),
            input,
            origin: origin.to_owned(),
            context: Value::Null,
        })
    }

    /// Start a run of `playbook` now; returns its id.
    pub async fn start(
        &self,
        playbook: &str,
        input: &serde_json::Map<String, Value>,
        origin: &str,
    ) -> Result<String, RunError> {
        let pb = self.playbooks.get(playbook)?;
        let run = self.prepare_run(&pb, input, origin)?;
        self.store.create_run(&run).await?;
        self.wake.notify_one();
        tracing::debug!(run = %run.id, playbook, origin, "run started");
        Ok(run.id)
    }

    /// The request forms people may fill in: the loaded playbooks with `[request]`.
    pub fn request_forms(&self) -> Vec<crate::playbook::RequestFormInfo> {
        self.playbooks.request_forms()
    }

    /// Start a run of the request form `playbook` for `requester`, with the form's fields as
    /// `input` (checked like `start`'s); returns the run's id. The run's origin is
    /// `request:USER` and the script sees `requester` (`#{ name, email }`).
    pub async fn start_request(
        &self,
        playbook: &str,
        input: &serde_json::Map<String, Value>,
        requester: &crate::store::users::UserRecord,
    ) -> Result<String, RequestError> {
        let pb = self.playbooks.get(playbook).map_err(RunError::from)?;
        let Some(form) = &pb.meta.request else {
            return Err(RequestError::NotARequest(playbook.to_owned()));
        };
        if !form.allows(requester) {
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
        self.store.create_run(&run).await.map_err(RunError::from)?;
        self.wake.notify_one();
        tracing::info!(run = %run.id, playbook, requester = %requester.name, "request started");
        Ok(run.id)
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
    /// more as soon as one finishes, and otherwise wait for a run started here or for the
    /// next look at the queue (runs started by other processes, timers coming due). On
    /// shutdown, the runs in flight finish their replay first.
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
        tokio::spawn(async move {
            let slots = Arc::new(tokio::sync::Semaphore::new(me.config.workers.max(1)));
            let poll = Duration::from_millis(100);
            while !*shutdown.borrow() {
                let free = slots.available_permits();
                let claimed = if free == 0 {
                    Vec::new()
                } else {
                    let lease_until = now_ms() + me.config.lease.as_millis() as i64;
                    match me.store.claim_jobs(&me.node, lease_until, free as i64).await {
                        Ok(jobs) => jobs,
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
                    let me = me.clone();
                    tokio::spawn(async move {
                        me.process(job).await;
                        drop(permit);
                        me.wake.notify_one();
                    });
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
            me.interrupt_all();
            let _ = slots.acquire_many(me.config.workers.max(1) as u32).await;
            watch.abort();
        })
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
            let steps = store.steps(&run.id).await?;
            if let Some(bad) = steps.iter().find(|s| s.unreadable.is_some()) {
                let why = format!(
                    "step {}: {}",
                    bad.seq,
                    bad.unreadable.as_deref().unwrap_or_default()
                );
                store
                    .finish_run(&run.id, RunStatus::Failed, None, Some(&why))
                    .await?;
                return Ok(());
            }
            steps.into_iter().map(Step::from).collect()
        };
        let mut ctx = RunContext::of_run(run);
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
        });
        let script = pb.script.clone();
        let started = Instant::now();
        let replayed = tokio::task::spawn_blocking(move || {
            let (outcome, _, journal) =
                crate::playbook::engine::replay(&script, limits, &ctx, journal, effects);
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
                    && last.kind == "invoke"
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
                    let backoff = (1000i64 << attempts.min(8)).min(300_000);
                    store
                        .reschedule_run(&run.id, RunStatus::Queued, now_ms() + backoff, Some(&f.message))
                        .await?;
                    tracing::warn!(run = %run.id, attempts, backoff_ms = backoff, error = %f.message, "run will be retried");
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

/// The real effects of a replay: plugin calls through the runtime, journal writes to the
/// store. Runs on a blocking thread and waits on the async world with `block_on`.
struct LiveEffects {
    handle: tokio::runtime::Handle,
    plugins: Runtime,
    store: Store,
    run_id: String,
    checked: Instant,
    lost: Arc<AtomicBool>,
    max_list_entries: usize,
    humans: Arc<crate::humans::Humans>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Turns true on shutdown: a plugin call in flight is abandoned.
    shutting_down: tokio::sync::watch::Receiver<bool>,
}

impl Effects for LiveEffects {
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        input: &Value,
        run_id: &str,
        idempotency_key: &str,
    ) -> Result<Value, PluginFailure> {
        let ctx = CallContext {
            run_id: run_id.to_owned(),
            idempotency_key: idempotency_key.to_owned(),
        };
        let mut shutting_down = self.shutting_down.clone();
        let call = self.plugins.call(plugin, action, input, ctx);
        self.handle.block_on(async {
            tokio::select! {
                called = call => called.map(|o| o.output).map_err(|e| PluginFailure {
                    kind: e.kind.to_string(),
                    message: e.message,
                    retryable: e.retryable,
                }),
                // The replay is interrupted and this step is not journaled: taken again
                // (with the same idempotency key) when the run is replayed.
                _ = shutting_down.wait_for(|down| *down) => Err(PluginFailure {
                    kind: "interrupted".into(),
                    message: "the server is shutting down".into(),
                    retryable: true,
                }),
            }
        })
    }

    fn record(&mut self, run_id: &str, step: &Step) -> Result<(), String> {
        if self.lost.load(Ordering::SeqCst) {
            return Err("this worker lost its lease on the run; another worker has it".into());
        }
        let record = StepRecord::from(step);
        self.handle
            .block_on(self.store.append_step(run_id, &record))
            .map_err(|e| e.to_string())?;
        self.metrics.step_recorded(&step.kind, step.duration_ms);
        Ok(())
    }

    fn now_ms(&mut self) -> i64 {
        now_ms()
    }

    fn random_u64(&mut self) -> u64 {
        use chacha20poly1305::aead::rand_core::RngCore;
        chacha20poly1305::aead::OsRng.next_u64()
    }

    fn act(&mut self, action: &str, args: &Value, run_id: &str, key: &str) -> Result<Value, String> {
        let handle = self.handle.clone();
        handle.block_on(live_act(
            &self.store,
            &self.humans,
            action,
            args,
            run_id,
            key,
            self.max_list_entries,
        ))
    }

    fn question_wait(&mut self, id: &str) -> Result<crate::playbook::QuestionWait, String> {
        use crate::humans::Wait;
        use crate::playbook::QuestionWait;
        match self.handle.block_on(self.humans.wait(&self.store, id))? {
            Wait::Done(outcome) => Ok(QuestionWait::Done(outcome)),
            Wait::Until(at) => Ok(QuestionWait::Until(at)),
        }
    }

    fn cached_output(&mut self, plugin: &str, action: &str, input: &Value) -> Option<Value> {
        let key = crate::store::enrichment_cache::cache_key(plugin, action, input);
        match self.handle.block_on(self.store.cache_get(&key, now_ms())) {
            Ok(hit) => hit,
            Err(e) => {
                tracing::warn!(run = %self.run_id, plugin, action, error = %e, "the enrichment cache could not be read; calling the plugin");
                None
            }
        }
    }

    fn cache_output(&mut self, plugin: &str, action: &str, input: &Value, output: &Value, ttl: Duration) {
        let key = crate::store::enrichment_cache::cache_key(plugin, action, input);
        let put = self.store.cache_put(&key, plugin, action, output, ttl);
        if let Err(e) = self.handle.block_on(put) {
            tracing::warn!(run = %self.run_id, plugin, action, error = %e, "the output could not be cached");
        }
    }

    fn cancelled(&mut self) -> bool {
        // Looking at the store costs a query: at most twice a second.
        if self.checked.elapsed() < Duration::from_millis(500) {
            return false;
        }
        self.checked = Instant::now();
        matches!(self.handle.block_on(self.store.run(&self.run_id)), Ok(Some(r)) if r.status == RunStatus::Cancelled)
    }
}

/// What a playbook's `incident_*`, `list_*` and `notify` do, for real. Each is idempotent
/// under `key` (the step in flight at a crash is taken again).
async fn live_act(
    store: &Store,
    humans: &crate::humans::Humans,
    action: &str,
    args: &Value,
    run_id: &str,
    key: &str,
    max_list_entries: usize,
) -> Result<Value, String> {
    let actor = Actor::run(run_id);
    let text = |name: &str| -> Result<&str, String> {
        args[name]
            .as_str()
            .ok_or_else(|| format!("{action}: '{name}' must be a string"))
    };
    let incident = args["incident"].as_str();
    let store_err = |e: StoreError| {
        if let StoreError::Invalid(message) = e {
            return format!("{action}: {message}");
        }
        tracing::error!(run = %run_id, action, error = %e, "a playbook action failed in the store");
        format!("{action}: the store failed: {e}")
    };
    match action {
        "incident_note" => {
            let id = incident.ok_or("incident_note: this run has no incident")?;
            let details = serde_json::json!({ "text": text("text")? });
            store
                .incident_event_once(id, &actor, "note", details, key)
                .await
                .map_err(store_err)?;
            Ok(Value::Null)
        }
        "incident_close" => {
            let id = incident.ok_or("incident_close: this run has no incident")?;
            let current = store.incident(id).await.map_err(store_err)?;
            if current.is_some_and(|i| i.status != IncidentStatus::Closed) {
                store
                    .set_incident_status(id, IncidentStatus::Closed, Some(text("reason")?), &actor)
                    .await
                    .map_err(store_err)?;
            }
            Ok(Value::Null)
        }
        "incident_set" => {
            let id = incident.ok_or("incident_set: this run has no incident")?;
            let mut changes = args.clone();
            if let Some(m) = changes.as_object_mut() {
                m.remove("incident");
            }
            let changes: crate::cases::IncidentChanges = crate::cases::parse(action, &changes)?;
            let update = changes.update().map_err(|e| format!("{action}: {e}"))?;
            if let Some(status) = changes.status.as_deref() {
                let Some(to) = IncidentStatus::parse(status).filter(|s| *s != IncidentStatus::Closed) else {
                    return Err(format!(
                        "incident_set: status '{status}' is not one of new, active, pending (use incident_close to close)"
                    ));
                };
                store
                    .set_incident_status(id, to, None, &actor)
                    .await
                    .map_err(store_err)?;
            }
            store
                .update_incident(id, &update, &actor)
                .await
                .map_err(store_err)?;
            Ok(Value::Null)
        }
        "incident_create" | "incident_spawn" => {
            let parent = if action == "incident_spawn" {
                Some(incident.ok_or("incident_spawn: this run has no incident to spawn from")?)
            } else {
                None
            };
            let mut spec = args.clone();
            if let Some(m) = spec.as_object_mut() {
                m.remove("incident");
            }
            let spec: crate::cases::IncidentSpec = crate::cases::parse(action, &spec)?;
            let new = spec.into_new(parent).map_err(|e| format!("{action}: {e}"))?;
            let id = store
                .create_incident(&new, &[], &actor, Some(key))
                .await
                .map_err(store_err)?;
            Ok(Value::String(id))
        }
        "incident_link" => {
            let id = incident.ok_or("incident_link: this run has no incident")?;
            let other = text("other")?;
            let added = store
                .relate_incidents(id, other, &actor)
                .await
                .map_err(store_err)?;
            Ok(Value::Bool(added))
        }
        "task_create" => {
            let mut spec = args.clone();
            if let Some(m) = spec.as_object_mut() {
                m.remove("incident");
            }
            let spec: crate::cases::TaskSpec = crate::cases::parse(action, &spec)?;
            let new = spec.into_new(incident).map_err(|e| format!("{action}: {e}"))?;
            let task = store
                .create_task(&new, &actor, Some(key))
                .await
                .map_err(|e| match e {
                    crate::store::tasks::TaskError::Store(e) => store_err(e),
                    other => format!("{action}: {other}"),
                })?;
            Ok(serde_json::to_value(task).expect("a task serialises"))
        }
        "list_add" => {
            let ttl = match args.get("ttl").and_then(Value::as_str) {
                Some(t) => Some(crate::duration::parse(t).map_err(|e| format!("list_add: ttl: {e}"))?),
                None => None,
            };
            let expires_at = ttl.map(|t| now_ms() + t.as_millis() as i64);
            let reason = args
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("added by a playbook");
            let added = store
                .add_list_entry(
                    text("list")?,
                    text("value")?,
                    expires_at,
                    reason,
                    Some(run_id),
                    max_list_entries,
                    &actor,
                )
                .await
                .map_err(|e| format!("list_add: {e}"))?;
            let value = added
                .added
                .first()
                .or(added.updated.first())
                .cloned()
                .unwrap_or_default();
            Ok(
                serde_json::json!({ "value": value, "expires_at": expires_at, "new": !added.added.is_empty() }),
            )
        }
        "indicator_get" | "indicator_set" => {
            use crate::store::indicators::IndicatorError;
            let fail = |e: IndicatorError| match e {
                IndicatorError::Store(e) => store_err(e),
                other => format!("{action}: {other}"),
            };
            let (kind, value) = (text("kind")?, text("value")?);
            let found = if action == "indicator_get" {
                store.indicator(kind, value).await.map_err(fail)?
            } else {
                let score = match args.get("score") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_i64().ok_or_else(|| {
                        format!("indicator_set: the score must be a whole number, not {v}")
                    })?),
                };
                let source = match args.get("source") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(text("source")?),
                };
                let indicator = store
                    .set_verdict(kind, value, text("verdict")?, score, source, &actor)
                    .await
                    .map_err(fail)?;
                Some(indicator)
            };
            Ok(serde_json::to_value(found).expect("an indicator serialises"))
        }
        "list_remove" => {
            let removed = store
                .remove_list_entry(text("list")?, text("value")?, &actor)
                .await
                .map_err(|e| format!("list_remove: {e}"))?;
            Ok(Value::Bool(removed))
        }
        "notify" => {
            let (to, message) = (text("to")?, text("message")?);
            tracing::info!(run = %run_id, to, message, "notification");
            if let Some(id) = incident {
                let details = serde_json::json!({ "to": to, "message": message });
                store
                    .incident_event_once(id, &actor, "notification", details, key)
                    .await
                    .map_err(store_err)?;
            }
            Ok(Value::Null)
        }
        "question_ask" => {
            let kind = crate::humans::questions::Kind::parse(text("kind")?)
                .ok_or("question_ask: kind must be ask, approve or form")?;
            let q = humans
                .ask(store, kind, &args["spec"], run_id, incident, key)
                .await?;
            Ok(serde_json::json!({ "id": q.id, "due_at": q.due_at, "to": q.addressee() }))
        }
        "send_email" => {
            let mut spec = args.clone();
            if let Some(m) = spec.as_object_mut() {
                m.remove("incident");
            }
            humans.send_email(store, &spec, incident, key).await
        }
        other => Err(format!("no playbook action named '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;
    use crate::playbook::InputType;

    const FORM: &str = r#"
name = "allow"
description = "Allow a domain for a while"

[request]
title = "Allow a domain"
description = "Analysts approve it"
roles = ["staff"]

[inputs.domain]
type = "string"
description = "the domain to allow"

[inputs.days]
type = "integer"
description = "for how long"
default = 7

[inputs.note]
type = "string"
required = false
"#;

    #[tokio::test]
    async fn a_run_whose_replays_never_end_is_set_aside_as_dead() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let (executor, _dir) = executor(store, &[("pb", "name = \"pb\"\ndescription = \"d\"\n", "1")]);
        let id = executor.start("pb", &Default::default(), "test").await.unwrap();
        // Three claims whose replay never ended (the process died holding the lease,
        // which has run out).
        for _ in 0..3 {
            let claimed = store.claim_jobs("dead-node", now_ms() - 1, 1).await.unwrap();
            assert_eq!(claimed.len(), 1);
        }
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Dead);
        let error = run.error.unwrap();
        assert!(error.contains("did not end 3 times in a row"), "{error}");
        assert!(error.contains(&format!("osprey run restart {id}")), "{error}");

        // A run whose replays end (here: waiting) is never set aside, however often claimed.
        let (napper, _dir2) =
            super::tests_support::executor(store, &[("nap", "name = \"nap\"\ndescription = \"d\"\n", "2")]);
        let id = napper.start("nap", &Default::default(), "test").await.unwrap();
        for _ in 0..5 {
            store.claim_jobs("n", now_ms() - 1, 1).await.unwrap();
            store
                .reschedule_run(&id, RunStatus::Queued, 0, None)
                .await
                .unwrap();
        }
        assert!(napper.work_on(&id).await.unwrap());
        assert_eq!(
            store.run(&id).await.unwrap().unwrap().status,
            RunStatus::Completed
        );
    }

    #[tokio::test]
    async fn request_forms_list_the_playbooks_with_a_request_table() {
        let t = crate::store::testing::sqlite().await;
        let (executor, _dir) = executor(
            &t.store,
            &[
                ("allow", FORM, "requester.name"),
                ("plain", "name = \"plain\"\ndescription = \"d\"\n", "1"),
            ],
        );
        let forms = executor.request_forms();
        assert_eq!(forms.len(), 1, "{forms:?}");
        let f = &forms[0];
        assert_eq!(
            (f.playbook.as_str(), f.title.as_str(), f.description.as_str()),
            ("allow", "Allow a domain", "Analysts approve it")
        );
        assert_eq!(f.roles, vec!["staff"]);
        let fields: Vec<(&str, InputType, bool, Option<&Value>)> = f
            .fields
            .iter()
            .map(|x| (x.name.as_str(), x.kind, x.required, x.default.as_ref()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("domain", InputType::String, true, None),
                ("days", InputType::Integer, false, Some(&serde_json::json!(7))),
                ("note", InputType::String, false, None),
            ]
        );
        assert_eq!(f.fields[0].description, "the domain to allow");
        let shown = serde_json::to_value(f).unwrap();
        assert_eq!(shown["fields"][1]["type"], "integer");
        let alice = user(&t.store, "alice", None, &["staff"]).await;
        let bob = user(&t.store, "bob", None, &["requester"]).await;
        assert!(f.allows(&alice) && !f.allows(&bob));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_request_checks_the_form_the_user_and_the_input_then_runs_with_the_requester() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let (executor, _dir) = executor(
            store,
            &[
                (
                    "allow",
                    FORM,
                    "#{ who: requester.name, mail: requester.email, domain: input.domain, days: input.days }",
                ),
                ("plain", "name = \"plain\"\ndescription = \"d\"\n", "1"),
            ],
        );
        let alice = user(store, "alice", Some("alice@example.com"), &["staff"]).await;
        let bob = user(store, "bob", None, &["requester"]).await;
        let input = |v: Value| v.as_object().unwrap().clone();
        let domain = input(serde_json::json!({"domain": "example.com"}));

        let e = executor
            .start_request("plain", &domain, &alice)
            .await
            .unwrap_err();
        assert!(matches!(e, RequestError::NotARequest(_)), "{e}");
        assert!(e.to_string().contains("no [request] table"), "{e}");
        let e = executor.start_request("nope", &domain, &alice).await.unwrap_err();
        assert!(
            matches!(
                e,
                RequestError::Run(RunError::Playbook(
                    crate::playbook::PlaybookError::NotFound { .. }
                ))
            ),
            "{e}"
        );
        let e = executor.start_request("allow", &domain, &bob).await.unwrap_err();
        assert!(matches!(e, RequestError::Forbidden { .. }), "{e}");
        assert!(e.to_string().contains("open to the roles staff only"), "{e}");
        let e = executor
            .start_request("allow", &input(serde_json::json!({"days": 3})), &alice)
            .await
            .unwrap_err();
        assert!(matches!(e, RequestError::Run(RunError::Input { .. })), "{e}");
        assert!(e.to_string().contains("'domain' is required"), "{e}");
        let e = executor
            .start_request(
                "allow",
                &input(serde_json::json!({"domain": "x.com", "days": "3"})),
                &alice,
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("input 'days' must be of type Integer"),
            "{e}"
        );
        user(store, "carol", None, &["staff"]).await;
        store
            .set_user_disabled("carol", true, &Actor::cli())
            .await
            .unwrap();
        let carol = store.user("carol").await.unwrap().unwrap();
        let e = executor
            .start_request("allow", &domain, &carol)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("the user is disabled"), "{e}");
        assert!(
            store.runs(None, None, 10).await.unwrap().is_empty(),
            "refusals start nothing"
        );

        let id = executor.start_request("allow", &domain, &alice).await.unwrap();
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.origin, "request:alice");
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.input, serde_json::json!({"domain": "example.com", "days": 7}));
        assert_eq!(
            run.context,
            serde_json::json!({"requester": {"name": "alice", "email": "alice@example.com"}})
        );
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        assert_eq!(
            run.output,
            Some(
                serde_json::json!({"who": "alice", "mail": "alice@example.com", "domain": "example.com", "days": 7})
            )
        );
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use crate::store::users::UserRecord;

    /// An executor over `store` with the playbooks written to a temporary folder.
    pub fn executor(
        store: &Store,
        playbooks: &[(&str, &str, &str)],
    ) -> (Arc<Executor>, [tempfile::TempDir; 2]) {
        let dir = tempfile::tempdir().unwrap();
        for (name, meta, script) in playbooks {
            let pb = dir.path().join("playbooks").join(name);
            std::fs::create_dir_all(&pb).unwrap();
            std::fs::write(pb.join("playbook.toml"), meta).unwrap();
            std::fs::write(pb.join("playbook.rhai"), script).unwrap();
        }
        let (loaded, errors) = Playbooks::load_dir(&dir.path().join("playbooks"));
        assert!(errors.is_empty(), "{errors:?}");
        let (executor, plugins) = executor_with(store, loaded);
        (executor, [dir, plugins])
    }

    /// An executor over `store` running `playbooks` (the temporary folder holds the plugin
    /// folders, empty).
    pub fn executor_with(store: &Store, loaded: Playbooks) -> (Arc<Executor>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let vault = crate::vault::Vault::from_key(&[7; 32]);
        let (link_key, _) = crate::vault::LinkKey::generate(&vault);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let runtime = Runtime::new(
            crate::plugin::RuntimeOptions {
                plugins_dir: dir.path().join("plugins"),
                cache_dir: dir.path().join("cache"),
                limits: Default::default(),
                max_instances: 2,
                max_memory_mib: 64,
                metrics,
            },
            store.clone(),
            Arc::new(vault),
        )
        .unwrap();
        let humans = Arc::new(crate::humans::Humans::new(
            Default::default(),
            std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            link_key,
            false,
            Default::default(),
        ));
        let executor = Executor::new(
            store.clone(),
            runtime,
            loaded,
            RunLimits::default(),
            RunsConfig::default(),
            1000,
            humans,
        );
        (executor, dir)
    }

    pub async fn user(store: &Store, name: &str, email: Option<&str>, roles: &[&str]) -> UserRecord {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        store
            .create_user(name, email, &roles, &Actor::cli())
            .await
            .unwrap();
        store.user(name).await.unwrap().unwrap()
    }
}

#[cfg(test)]
mod bundled_request {
    //! The bundled request form `allow-domain-request`, through the real executor and store:
    //! started for a user, approved from the inbox, and the domain on the allow list.

    use super::tests_support::*;
    use super::*;
    use crate::store::lists::{EntryType, ListKind};
    use crate::store::questions::{Answerer, QuestionStatus};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn allow_domain_request_goes_from_the_form_to_the_allow_list() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
        let (playbooks, errors) = Playbooks::load_dir(&bundled);
        assert!(errors.is_empty(), "{errors:?}");
        let (executor, _dir) = executor_with(store, playbooks);
        assert!(
            executor
                .request_forms()
                .iter()
                .any(|f| f.playbook == "allow-domain-request" && f.title == "Allow a domain")
        );
        let alice = user(store, "alice", Some("alice@example.com"), &["requester"]).await;
        user(store, "bob", None, &["analyst"]).await;
        let input = serde_json::json!({"domain": "Example.com", "days": 3, "reason": "a webinar"});
        let id = executor
            .start_request("allow-domain-request", input.as_object().unwrap(), &alice)
            .await
            .unwrap();

        // The analysts are asked, and the run waits.
        assert!(executor.work_on(&id).await.unwrap());
        assert_eq!(store.run(&id).await.unwrap().unwrap().status, RunStatus::Waiting);
        let asked = store
            .questions(Some(QuestionStatus::Open), Some("bob"), 10)
            .await
            .unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].title, "alice asks to allow example.com for 3 days");
        let who = Answerer::User {
            name: "bob",
            from: None,
            agent: None,
        };
        let answer = serde_json::json!({"value": true, "comment": "ok"});
        store.answer_question(&asked[0].id, &answer, &who).await.unwrap();

        // Approved, but the list does not exist yet: the run fails and says what to do.
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("osprey list create allowed-domains --kind allow --type domain"),
            "{error}"
        );

        // The operator creates it and restarts the run from its list_add step.
        store
            .create_list(
                "allowed-domains",
                ListKind::Allow,
                EntryType::Domain,
                "",
                &Actor::cli(),
            )
            .await
            .unwrap();
        executor.restart(&id, 3, &Actor::cli()).await.unwrap();
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        let output = run.output.unwrap();
        assert_eq!(output["approved"], true);
        assert_eq!(output["domain"], "example.com");
        assert_eq!(output["by"], "user:bob");
        assert_eq!(output["mailed"], false, "mail is not configured here");
        let entries = store.list_entries("allowed-domains", false).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].value, "example.com");
        assert_eq!(
            entries[0].reason,
            "requested by alice: a webinar (approved by user:bob)"
        );
        let expires_in = entries[0].expires_at.unwrap() - crate::store::now_ms();
        assert!(
            (3 * 86_400_000 - 60_000..=3 * 86_400_000).contains(&expires_in),
            "{expires_in}"
        );
    }
}
