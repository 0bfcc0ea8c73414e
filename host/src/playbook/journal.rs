//! What a replay sees of its run: the journal's numbered steps and the context the run was
//! started in. Pure types: the executor converts the store's records to these
//! (`runs/journal.rs`), and `osprey playbook test` builds them from a test case.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// What a step did; stored as its name (`invoke`, `sleep`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A plugin call (`invoke`, `invoke_cached`).
    Invoke,
    /// A wait until a time.
    Sleep,
    /// The time (`now()`).
    Now,
    /// A random number (`random`, `random_int`, `uuid`).
    Random,
    /// A log line (`log`, `print`, `debug`).
    Log,
    /// A change to what Osprey keeps (see [`super::act::Act`]).
    Act,
    /// The answer to a question asked by an earlier `act` step.
    Question,
    /// A child playbook (`playbook(name, input)`): its start (request `{playbook, input}`,
    /// outcome `{run}`), then its end (request `{run, playbook}`, outcome the child's
    /// `{run, playbook, status, output, error}`).
    Playbook,
}

impl StepKind {
    pub const ALL: [StepKind; 8] = [
        StepKind::Invoke,
        StepKind::Sleep,
        StepKind::Now,
        StepKind::Random,
        StepKind::Log,
        StepKind::Act,
        StepKind::Question,
        StepKind::Playbook,
    ];

    /// The name the journal stores.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Invoke => "invoke",
            StepKind::Sleep => "sleep",
            StepKind::Now => "now",
            StepKind::Random => "random",
            StepKind::Log => "log",
            StepKind::Act => "act",
            StepKind::Question => "question",
            StepKind::Playbook => "playbook",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored step kind this version of Osprey does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a kind of step (invoke, sleep, now, random, log, act, question, playbook)")]
pub struct UnknownStepKind(pub String);

impl std::str::FromStr for StepKind {
    type Err = UnknownStepKind;

    fn from_str(s: &str) -> Result<StepKind, UnknownStepKind> {
        StepKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownStepKind(s.to_owned()))
    }
}

/// One journaled step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based position in the run.
    pub seq: u32,
    pub kind: StepKind,
    /// What the script asked for; must be the same on every replay.
    pub request: Value,
    /// What it got.
    pub outcome: Value,
    /// Whether the outcome is a success (an `invoke` error is recorded with `ok = false`).
    pub ok: bool,
    /// Unix ms.
    pub started_at: i64,
    pub duration_ms: i64,
}

/// Where a replay happens.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub run_id: String,
    pub playbook: String,
    pub input: serde_json::Map<String, Value>,
    /// The alert the run was started for (`null` if none): `alert` in the script.
    pub alert: Value,
    /// The incident, as it was when the run started (`null` if none): `incident` in the script.
    pub incident: Value,
    /// The SLA breach the run was started for (`null` if none): `breach` in the script.
    pub breach: Value,
    /// Who asked, for a run started from a request form (`null` if none): `requester` in
    /// the script, `{ "name": ..., "email": ... }`.
    pub requester: Value,
    /// The plugins the playbook declares (`plugins` in `playbook.toml`): the only ones its
    /// script may call.
    pub plugins: Vec<String>,
    /// Set from outside to stop the replay between two operations.
    pub interrupt: Interrupt,
}

impl RunContext {
    /// The context of a stored run: its input, and what it was started for from its stored
    /// `context` (`alert`, `incident`, `breach`, `requester`). No plugins are declared yet.
    pub fn of_stored(id: &str, playbook: &str, input: &Value, context: &Value) -> RunContext {
        RunContext {
            run_id: id.to_owned(),
            playbook: playbook.to_owned(),
            input: input.as_object().cloned().unwrap_or_default(),
            alert: context["alert"].clone(),
            incident: context["incident"].clone(),
            breach: context["breach"].clone(),
            requester: context["requester"].clone(),
            plugins: Vec::new(),
            interrupt: Interrupt::default(),
        }
    }
}

/// Why a replay was asked to stop from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interruption {
    /// Nobody asked.
    None = 0,
    /// The run was cancelled: the replay fails as cancelled.
    Cancel = 1,
    /// The server is shutting down: the replay ends as interrupted, to be taken again.
    ShutDown = 2,
}

/// A switch that stops a replay from another thread: checked between the script's
/// operations, so a loop that never takes a step stops too.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicU8>);

impl Interrupt {
    /// The run was cancelled: the replay fails as cancelled.
    pub fn cancel(&self) {
        self.0.fetch_max(Interruption::Cancel as u8, Ordering::SeqCst);
    }

    /// The server is shutting down: the replay ends as interrupted.
    pub fn shut_down(&self) {
        self.0.fetch_max(Interruption::ShutDown as u8, Ordering::SeqCst);
    }

    /// What was asked so far (a shutdown outranks a cancel).
    pub fn get(&self) -> Interruption {
        match self.0.load(Ordering::Relaxed) {
            0 => Interruption::None,
            1 => Interruption::Cancel,
            _ => Interruption::ShutDown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_kinds_read_back_their_stored_names() {
        for kind in StepKind::ALL {
            assert_eq!(kind.as_str().parse::<StepKind>(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let e = "teleport".parse::<StepKind>().unwrap_err();
        assert!(
            e.to_string().starts_with("'teleport' is not a kind of step"),
            "{e}"
        );
    }

    #[test]
    fn a_shutdown_outranks_a_cancel() {
        let i = Interrupt::default();
        assert_eq!(i.get(), Interruption::None);
        i.cancel();
        assert_eq!(i.get(), Interruption::Cancel);
        i.shut_down();
        i.cancel();
        assert_eq!(i.get(), Interruption::ShutDown);
    }
}
