//! Durable replay of a playbook script. Only this module (with `api.rs`) touches Rhai.
//!
//! A run is its script plus a journal of numbered steps. Every call with an effect or a
//! nondeterministic result (`invoke`, `sleep`, `now`, `random`, `log`, the `act`s) is a step:
//! if the journal has it, the recorded outcome is returned at once (after checking that the
//! script asks for the same thing); if not, the effect is performed, the step is recorded
//! through [`Effects::record`] (committed before the script sees it), and the script goes on.
//! When the script must wait (`sleep` into the future) the replay unwinds with
//! [`Outcome::Waiting`]; nothing but the journal is kept, and the next replay picks up where
//! this one stopped.
//!
//! Stops the script cannot catch (waiting, non-determinism, limits, cancellation) are raised
//! as Rhai's `ErrorTerminated`, which `try`/`catch` does not intercept. Plugin errors are
//! ordinary catchable errors whose value is a map `#{kind, message, retryable, plugin, action}`.
//!
//! - `script.rs`: compiling (the language, the prelude), and what can be read from a script
//!   without running it.
//! - `effects.rs`: the [`Effects`] seam, what a replay may do to the world.
//! - `state.rs`: one replay's state: taking a step from the journal or performing it, and
//!   the stops (waiting, failures, limits).
//! - `functions.rs`: the script functions with an effect (`invoke`, `sleep`, `now`,
//!   `random`, `log`, ...); `acts.rs`: those that change what Osprey keeps and ask people.
//! - `keep.rs`: `state_get` and `state_set`, what a playbook keeps between its runs.
//! - `playbooks.rs`: `playbook(name, input)`, a child playbook started and waited for.
//! - `guards.rs`: the limits checked as the script runs (memory, wall time, containers).
//! - `replay.rs`: a replay from start to end, and how it ended; the engine each thread keeps
//!   for its replays, whose functions find the running replay's state in a slot.

mod acts;
mod effects;
mod functions;
mod guards;
mod keep;
mod playbooks;
mod replay;
mod script;
mod state;

pub use super::journal::{Interrupt, RunContext, Step, StepKind};
pub use super::limits::ScriptLimits;
pub use effects::{
    Effects, JournalError, MAX_RETRY_AFTER_MS, PluginFailure, QuestionWait, StartError, WaitError,
};
pub use replay::{REPLAY_THREAD_STACK_BYTES, replay};
pub(super) use script::base_engine;
pub use script::{
    CompileError, ExpressionError, Script, check_expression, compile, literal_invoke_actions, literal_invokes,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a replay ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The script returned; its value (as JSON).
    Completed(Value),
    /// The script waits until this time (Unix ms).
    Waiting { wake_at: i64 },
    /// The script failed.
    Failed(Failure),
    /// The server is shutting down: the replay stopped between operations and nothing of it
    /// was lost (the journal holds every step taken); replay it again later.
    Interrupted,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// The step being taken when it failed, if any.
    pub step: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum FailureKind {
    /// An error in the script (a thrown value, a type error, a missing variable).
    Script,
    /// A plugin error the script did not catch; `retry_after_ms` when the plugin said how
    /// long to wait before calling again.
    Plugin {
        retryable: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A limit was hit; `limit` is its name in `[limits]`.
    Limit { limit: String },
    /// The script asked for something other than what the journal recorded.
    NonDeterminism,
    /// The run was cancelled.
    Cancelled,
    /// The script called a plugin its playbook does not declare in `plugins`.
    Undeclared { plugin: String },
    /// The journal could not be written (the store is down): retry later.
    Journal,
}

impl Failure {
    /// Whether retrying the replay later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Plugin { retryable: true, .. } | FailureKind::Journal
        )
    }
}
