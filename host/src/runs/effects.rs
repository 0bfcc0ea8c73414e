//! The real effects of a replay: plugin calls through the runtime, journal writes, the
//! enrichment cache and questions through the store, and the playbook actions (`act.rs`).

use crate::playbook::{
    ActCall, ActError, Effects, JournalError, Playbooks, PluginFailure, QuestionWait, StartError, Step,
    WaitError,
};
use crate::plugin::{CallContext, CallError, Runtime};
use crate::store::runs::{RunStatus, StepRecord};
use crate::store::{Store, now_ms};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The real effects of a replay: plugin calls through the runtime, journal writes to the
/// store. Runs on a blocking thread and waits on the async world with `block_on`.
pub(super) struct LiveEffects {
    pub(super) handle: tokio::runtime::Handle,
    pub(super) plugins: Runtime,
    pub(super) store: Store,
    pub(super) run_id: String,
    /// When the store was last asked whether the run was cancelled.
    pub(super) checked: Instant,
    /// Set when the lease heartbeat finds the run taken by another worker.
    pub(super) lost: Arc<AtomicBool>,
    pub(super) max_list_entries: usize,
    pub(super) humans: Arc<crate::humans::Humans>,
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    /// Turns true on shutdown: a plugin call in flight is abandoned.
    pub(super) shutting_down: tokio::sync::watch::Receiver<bool>,
    /// Whether the last plugin call was answered by a mock (mock mode): its step is marked
    /// so when it is journaled, and its output is not cached.
    pub(super) mocked: bool,
    /// The loaded playbooks, for `playbook(name, input)`.
    pub(super) playbooks: Playbooks,
    /// What the run was started for, as stored (its children start for the same).
    pub(super) context: Value,
}

/// How long a parent waits for its child before it looks again, if the child's end has not
/// woken it before (it does, in the transaction that ends the child).
const CHILD_LOOK_AGAIN_MS: i64 = 10 * 60 * 1000;

impl LiveEffects {
    /// How deep this run is: 0 for a run a trigger started, its child's depth + 1.
    fn depth(&self) -> u32 {
        self.context
            .get("depth")
            .map(|d| d.as_u64().and_then(|d| u32::try_from(d).ok()).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }
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
        let mocked = &mut self.mocked;
        *mocked = false;
        self.handle.block_on(async {
            tokio::select! {
                called = call => {
                    *mocked = called.as_ref().map_or_else(|e| e.mocked, |o| o.mocked);
                    called.map(|o| o.output).map_err(PluginFailure::from)
                }
                // The replay is interrupted and this step is not journaled: taken again
                // (with the same idempotency key) when the run is replayed.
                _ = shutting_down.wait_for(|down| *down) => Err(PluginFailure {
                    kind: "interrupted".into(),
                    message: "the server is shutting down".into(),
                    retryable: true,
                    retry_after_ms: None,
                }),
            }
        })
    }

    fn record(&mut self, run_id: &str, step: &Step) -> Result<(), JournalError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(JournalError::LeaseLost);
        }
        let mut record = StepRecord::from(step);
        if step.kind == crate::playbook::StepKind::Invoke && std::mem::take(&mut self.mocked) {
            super::journal::mark_mocked(&mut record);
        }
        self.handle
            .block_on(self.store.append_step(run_id, &record))
            .map_err(|e| JournalError::Store(Box::new(e)))?;
        self.metrics.step_recorded(step.kind.as_str(), step.duration_ms);
        Ok(())
    }

    fn now_ms(&mut self) -> i64 {
        now_ms()
    }

    fn random_u64(&mut self) -> u64 {
        use chacha20poly1305::aead::rand_core::RngCore;
        chacha20poly1305::aead::OsRng.next_u64()
    }

    fn act(&mut self, call: &ActCall, run_id: &str, key: &str) -> Result<Value, ActError> {
        let handle = self.handle.clone();
        handle.block_on(super::act::perform(
            &self.store,
            &self.humans,
            call,
            run_id,
            key,
            self.max_list_entries,
        ))
    }

    fn question_wait(&mut self, id: &str) -> Result<QuestionWait, WaitError> {
        use crate::humans::Wait;
        let waited = self.handle.block_on(self.humans.wait(&self.store, id));
        match waited.map_err(|e| WaitError::Failed(e.into()))? {
            Wait::Done(outcome) => Ok(QuestionWait::Done(outcome)),
            Wait::Until(at) => Ok(QuestionWait::Until(at)),
        }
    }

    fn start_playbook(
        &mut self,
        name: &str,
        input: &Value,
        run_id: &str,
        seq: u32,
    ) -> Result<String, StartError> {
        let depth = self.depth();
        let max = crate::playbook::limits::MAX_PLAYBOOK_DEPTH;
        if depth >= max {
            return Err(StartError::TooDeep {
                playbook: name.to_owned(),
                depth,
                max,
            });
        }
        let pb = self
            .playbooks
            .get(name)
            .map_err(|e| StartError::Unknown(e.to_string()))?;
        let input = input.as_object().cloned().unwrap_or_default();
        let mut run = super::new_run(&pb, &input, &format!("playbook:{run_id}"))
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        // The child starts for what its parent started for (alert, incident, breach,
        // requester), one level deeper.
        let mut context = self.context.as_object().cloned().unwrap_or_default();
        context.insert("parent_run".into(), run_id.into());
        context.insert("depth".into(), (depth + 1).into());
        run.context = Value::Object(context);
        let created = self.store.create_child_run(&run, run_id, i64::from(seq));
        let child = self
            .handle
            .block_on(created)
            .map_err(|e| StartError::Store(Box::new(e)))?;
        tracing::info!(run = %run_id, child = %child, playbook = name, "child playbook started");
        Ok(child)
    }

    fn playbook_wait(&mut self, child: &str) -> Result<QuestionWait, WaitError> {
        let found = self.handle.block_on(self.store.run(child));
        let Some(run) = found.map_err(|e| WaitError::Failed(Box::new(e)))? else {
            return Err(WaitError::Failed(format!("the child run {child} is gone").into()));
        };
        if !run.status.is_final() {
            return Ok(QuestionWait::Until(now_ms() + CHILD_LOOK_AGAIN_MS));
        }
        Ok(QuestionWait::Done(serde_json::json!({
            "run": run.id, "playbook": run.playbook, "status": run.status,
            "output": run.output, "error": run.error,
        })))
    }

    fn cached_output(&mut self, plugin: &str, action: &str, input: &Value) -> Option<Value> {
        // A mocked plugin answers from its mock, not from what the real one answered.
        if self.plugins.get(plugin).is_ok_and(|p| p.mock().is_some()) {
            return None;
        }
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
        // Fake data never outlives the mock in the cache.
        if self.mocked {
            return;
        }
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

/// A plugin call's error as the engine journals it: the one conversion, for live runs and
/// for the upgrade check's replay of offline tests.
impl From<CallError> for PluginFailure {
    fn from(e: CallError) -> Self {
        PluginFailure {
            kind: e.kind.to_string(),
            message: e.message,
            retryable: e.retryable,
            retry_after_ms: e
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}
