//! The seam between a replay and the world: what a replay may do, and how each thing fails.

use super::Step;
use crate::playbook::act::{ActCall, ActError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// A plugin call that failed, as the script sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginFailure {
    pub kind: String,
    pub message: String,
    pub retryable: bool,
    /// How long the plugin asked to wait before the call is made again (WIT 0.2.0's
    /// `retry-after`), in ms. Journals written before it existed read back without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The longest wait a plugin's `retry-after` is honoured for (24 hours); a longer one waits
/// this long. Past it, the run's retry is a question for a person, not a timer.
pub const MAX_RETRY_AFTER_MS: u64 = 24 * 3600 * 1000;

/// Why a new step could not be written to the journal (the replay is retried later).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("this worker lost its lease on the run; another worker has it")]
    LeaseLost,
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

/// Why a replay could not find out where a question stands (the replay is retried later).
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("questions to people are not available here")]
    Unavailable,
    #[error("starting playbooks is not available here")]
    NoPlaybooks,
    #[error(transparent)]
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

/// Why a child playbook (`playbook(name, input)`) was not started. The first two are
/// journaled as the script's catchable `invalid-input` error; too deep stops the run at its
/// limit; a store failure retries the replay later.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No playbook has that name: why, naming the loaded ones.
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "limit max_playbook_depth ({max}) reached: this run is {depth} playbooks deep and may not start playbook '{playbook}' (a playbook that starts itself, or a cycle of playbooks?)"
    )]
    TooDeep { playbook: String, depth: u32, max: u32 },
    #[error("starting playbooks is not available here")]
    Unavailable,
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

/// What a replay may do to the world. The executor's implementation calls plugins and writes
/// the journal to the store; `osprey playbook test` uses canned responses and a virtual clock.
pub trait Effects: Send + 'static {
    /// Call a plugin action (the journal was already consulted).
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        input: &Value,
        run_id: &str,
        idempotency_key: &str,
    ) -> Result<Value, PluginFailure>;
    /// Persist a new step; the script sees its outcome only if this succeeds.
    fn record(&mut self, run_id: &str, step: &Step) -> Result<(), JournalError>;
    /// The current time, Unix ms.
    fn now_ms(&mut self) -> i64;
    /// A random number for `random()`, `random_int()` and `uuid()`.
    fn random_u64(&mut self) -> u64;
    /// Whether the run was cancelled meanwhile (checked between steps).
    fn cancelled(&mut self) -> bool {
        false
    }
    /// Change what Osprey keeps (the journal was already consulted): see
    /// [`Act`](crate::playbook::act::Act). The change must be idempotent under
    /// `idempotency_key`: the one step in flight at a crash is taken again.
    fn act(&mut self, call: &ActCall, run_id: &str, idempotency_key: &str) -> Result<Value, ActError> {
        let _ = (run_id, idempotency_key);
        Err(ActError::Unavailable(call.act.name()))
    }
    /// For `ask`, `approve` and `form`: whether question `id` (asked by an earlier `act`
    /// step) is closed, with what the script gets, or until when to wait.
    fn question_wait(&mut self, id: &str) -> Result<QuestionWait, WaitError> {
        let _ = id;
        Err(WaitError::Unavailable)
    }
    /// For `playbook(name, input)`: start a run of playbook `name` as the child of run
    /// `run_id` at its step `seq` (its incident, alert and requester go with it), and return
    /// its id. Exactly once: if that step already started a child (a crash before the step
    /// was journaled), its id is returned and nothing is started.
    fn start_playbook(
        &mut self,
        name: &str,
        input: &Value,
        run_id: &str,
        seq: u32,
    ) -> Result<String, StartError> {
        let _ = (name, input, run_id, seq);
        Err(StartError::Unavailable)
    }
    /// For `playbook(name, input)`: whether child run `run` ended, with
    /// `{run, playbook, status, output, error}`, or until when to wait (its end wakes the
    /// parent before that).
    fn playbook_wait(&mut self, run: &str) -> Result<QuestionWait, WaitError> {
        let _ = run;
        Err(WaitError::NoPlaybooks)
    }
    /// For `invoke_cached`: the output of `plugin.action(input)` if the enrichment cache
    /// holds one that has not expired (the journal was already consulted). Offline
    /// (`osprey playbook test`) there is no cache, and canned responses answer.
    fn cached_output(&mut self, plugin: &str, action: &str, input: &Value) -> Option<Value> {
        let _ = (plugin, action, input);
        None
    }
    /// For `invoke_cached`: keep a successful output for `ttl`.
    fn cache_output(&mut self, plugin: &str, action: &str, input: &Value, output: &Value, ttl: Duration) {
        let _ = (plugin, action, input, output, ttl);
    }
}

/// Where a question (or a child playbook) a run waits on stands.
#[derive(Debug, Clone, PartialEq)]
pub enum QuestionWait {
    /// Closed: `#{ question, answer, comment, by, at, via, timed_out, status }`.
    Done(Value),
    /// Still open: replay again at this time (Unix ms) if not woken before.
    Until(i64),
}
