//! One replay's state: taking a step from the journal or performing it and recording it,
//! and the stops the script cannot catch (waiting, failures, limits, interruptions).

use super::{Effects, Failure, FailureKind, QuestionWait, ScriptLimits, Step, StepKind, WaitError};
use crate::playbook::journal::{Interrupt, Interruption};
use rhai::{Dynamic, EvalAltResult, Position};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(super) struct ReplayState {
    pub(super) run_id: String,
    /// The id of the run's incident, if it has one.
    pub(super) incident: Option<String>,
    pub(super) journal: Vec<Step>,
    pub(super) next: u32,
    pub(super) effects: Box<dyn Effects>,
    pub(super) limits: ScriptLimits,
    pub(super) stop: Option<Stop>,
    /// Time spent outside the script (effects and journal writes).
    pub(super) outside: Duration,
    /// Bytes of the journal as JSON (requests and outcomes).
    pub(super) journal_bytes: usize,
    /// The plugins the script may call.
    pub(super) plugins: Vec<String>,
    pub(super) interrupt: Interrupt,
    /// Bytes this thread held when the replay started (`alloc_meter`).
    pub(super) memory_base: i64,
    /// Bytes held outside the script (the journal's new steps), not counted as its memory.
    pub(super) memory_outside: i64,
    /// When the replay started (its wall time is checked against this, less `outside`).
    pub(super) started: Instant,
    /// The containers checked for limits as the script uses them: by address, their length
    /// when last checked and the uses since (`guards.rs`).
    pub(super) containers: HashMap<usize, (usize, u32)>,
    /// The chart points `record` took in this replay.
    pub(super) recorded_points: usize,
}

/// A value as JSON for a step's request, at most `max_step_bytes` long.
pub(super) fn step_json(s: &Shared, v: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    let max = lock(s).limits.max_step_bytes;
    crate::playbook::json::to_json_value(v, max).map_err(Into::into)
}

/// Why the script was stopped from outside.
pub(super) enum Stop {
    Waiting(i64),
    Failed(Failure),
    Interrupted,
}

/// Where an engine's functions find the state of the replay it runs: the engine is built
/// once per thread and serves each replay there in turn (`replay.rs`), each putting its
/// state in the slot for its run and taking it out at its end.
pub(super) type Shared = Arc<Mutex<Option<ReplayState>>>;

/// The state of the replay running, locked.
pub(super) struct Locked<'a>(MutexGuard<'a, Option<ReplayState>>);

impl std::ops::Deref for Locked<'_> {
    type Target = ReplayState;
    fn deref(&self) -> &ReplayState {
        self.0
            .as_ref()
            .expect("a replay's functions are called only while it runs")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut ReplayState {
        self.0
            .as_mut()
            .expect("a replay's functions are called only while it runs")
    }
}

pub(super) fn terminate(tag: &str) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        Dynamic::from(tag.to_owned()),
        Position::NONE,
    ))
}

impl ReplayState {
    /// Take step `kind(request)`: from the journal if it is there, else by running `perform`
    /// and recording the result before returning it.
    pub(super) fn step(
        &mut self,
        kind: StepKind,
        request: Value,
        perform: impl FnOnce(&mut ReplayState, u32) -> (Value, bool),
    ) -> Result<(Value, bool), Box<EvalAltResult>> {
        self.try_step(kind, request, |st, seq| Ok(perform(st, seq)))
    }

    /// [`step`](Self::step), whose `perform` may also stop the script instead of giving an
    /// outcome (nothing is journaled then).
    pub(super) fn try_step(
        &mut self,
        kind: StepKind,
        request: Value,
        perform: impl FnOnce(&mut ReplayState, u32) -> Result<(Value, bool), Box<EvalAltResult>>,
    ) -> Result<(Value, bool), Box<EvalAltResult>> {
        let seq = self.next;
        self.next += 1;
        if let Some(recorded) = self.journal.get(seq as usize - 1) {
            if recorded.kind != kind || recorded.request != request {
                let message = format!(
                    "non-determinism at step {seq}: the script now asks for {kind} {request}, but the journal recorded {} {}; \
                     the playbook changed in a way that breaks this run (restart it from step {seq} to take the new path)",
                    recorded.kind, recorded.request
                );
                return Err(self.fail(FailureKind::NonDeterminism, message, Some(seq), "non-determinism"));
            }
            return Ok((recorded.outcome.clone(), recorded.ok));
        }
        if seq > self.limits.max_steps {
            let message = format!("limit max_steps ({}) reached", self.limits.max_steps);
            return Err(self.fail(
                FailureKind::Limit {
                    limit: "max_steps".into(),
                },
                message,
                Some(seq),
                "limit",
            ));
        }
        if let Some(stop) = self.interrupted() {
            return Err(stop);
        }
        if self.effects.cancelled() {
            return Err(self.fail(
                FailureKind::Cancelled,
                "the run was cancelled".into(),
                Some(seq),
                "cancelled",
            ));
        }
        let request_bytes = crate::playbook::json::json_len(&request);
        if request_bytes > self.limits.max_step_bytes {
            return Err(self.step_too_large(seq, kind, request_bytes));
        }
        let outside = Instant::now();
        let held = crate::alloc_meter::thread_bytes();
        let started_at = self.effects.now_ms();
        let (mut outcome, mut ok) = perform(self, seq)?;
        if self.interrupt.get() == Interruption::ShutDown {
            // Shutting down: what this step got (perhaps an abandoned plugin call) is not
            // journaled; the step is taken again when the run is replayed.
            self.stop = Some(Stop::Interrupted);
            return Err(terminate("interrupted"));
        }
        if let Err(e) = crate::nesting::check(&outcome, crate::nesting::MAX_DEPTH) {
            // A plugin's output the store could not give back: a failure of that call.
            (outcome, ok) = (
                serde_json::json!({ "kind": "invalid-output", "message": format!("the output is {e}"), "retryable": false }),
                false,
            );
        }
        let bytes = request_bytes + crate::playbook::json::json_len(&outcome);
        if bytes > self.limits.max_step_bytes {
            return Err(self.step_too_large(seq, kind, bytes));
        }
        if self.journal_bytes + bytes > self.limits.max_journal_bytes {
            let message = format!(
                "limit max_journal_bytes ({}) reached: step {seq} ({kind}, {bytes} bytes) would make the journal {} bytes",
                self.limits.max_journal_bytes,
                self.journal_bytes + bytes
            );
            return Err(self.fail(
                FailureKind::Limit {
                    limit: "max_journal_bytes".into(),
                },
                message,
                Some(seq),
                "limit",
            ));
        }
        let step = Step {
            seq,
            kind,
            request,
            outcome: outcome.clone(),
            ok,
            started_at,
            duration_ms: (self.effects.now_ms() - started_at).max(0),
        };
        if let Err(e) = self.effects.record(&self.run_id, &step) {
            let message = format!("step {seq} could not be written to the journal: {e}");
            return Err(self.fail(FailureKind::Journal, message, Some(seq), "journal"));
        }
        self.journal.push(step);
        self.journal_bytes += bytes;
        self.memory_outside += crate::alloc_meter::thread_bytes() - held;
        self.outside += outside.elapsed();
        Ok((outcome, ok))
    }

    fn step_too_large(&mut self, seq: u32, kind: StepKind, bytes: usize) -> Box<EvalAltResult> {
        let message = format!(
            "limit max_step_bytes ({}) reached: step {seq} ({kind}) is {bytes} bytes as JSON",
            self.limits.max_step_bytes
        );
        self.fail(
            FailureKind::Limit {
                limit: "max_step_bytes".into(),
            },
            message,
            Some(seq),
            "limit",
        )
    }

    /// Refuse a new call to a plugin the playbook does not declare. A step the journal
    /// already has (recorded before the playbook changed) replays as it was.
    pub(super) fn check_declared(&mut self, plugin: &str, request: &Value) -> Result<(), Box<EvalAltResult>> {
        if self.plugins.iter().any(|p| p == plugin) {
            return Ok(());
        }
        // Only then the journal: comparing the request is the dearer check, and `step` makes
        // it again for every step replayed.
        let seq = self.next;
        let recorded = self
            .journal
            .get(seq as usize - 1)
            .is_some_and(|s| s.kind == StepKind::Invoke && &s.request == request);
        if recorded {
            return Ok(());
        }
        let declared = if self.plugins.is_empty() {
            "it declares none".to_owned()
        } else {
            format!("it declares {}", self.plugins.join(", "))
        };
        let message = format!(
            "step {seq}: the playbook may not call plugin '{plugin}': {declared} (add it to `plugins` in playbook.toml)"
        );
        Err(self.fail(
            FailureKind::Undeclared {
                plugin: plugin.to_owned(),
            },
            message,
            Some(seq),
            "undeclared",
        ))
    }

    /// The stop to raise if the replay was interrupted from outside.
    pub(super) fn interrupted(&mut self) -> Option<Box<EvalAltResult>> {
        match self.interrupt.get() {
            Interruption::None => None,
            Interruption::Cancel => Some(self.fail(
                FailureKind::Cancelled,
                "the run was cancelled".into(),
                None,
                "cancelled",
            )),
            Interruption::ShutDown => {
                self.stop = Some(Stop::Interrupted);
                Some(terminate("interrupted"))
            }
        }
    }

    /// Stop the script between two operations: limit `limit` was reached.
    pub(super) fn stop_at_limit(&mut self, limit: &str, message: String) -> Dynamic {
        self.stop = Some(Stop::Failed(Failure {
            kind: FailureKind::Limit { limit: limit.into() },
            message,
            step: None,
        }));
        Dynamic::from("limit".to_string())
    }

    /// Memory the script holds now, in bytes.
    pub(super) fn memory(&self) -> i64 {
        crate::alloc_meter::thread_bytes() - self.memory_base - self.memory_outside
    }

    /// Take step `kind(request)` that waits for something outside: from the journal if it
    /// is there; else `probe` says whether it is ready (then it is recorded and returned) or
    /// until when to wait (then the replay unwinds with `Waiting`, recording nothing).
    pub(super) fn wait_step(
        &mut self,
        kind: StepKind,
        request: Value,
        probe: impl FnOnce(&mut ReplayState) -> Result<QuestionWait, WaitError>,
    ) -> Result<Value, Box<EvalAltResult>> {
        let seq = self.next;
        if self.journal.get(seq as usize - 1).is_none() {
            let outside = Instant::now();
            let probed = probe(self);
            self.outside += outside.elapsed();
            match probed {
                Ok(QuestionWait::Until(wake_at)) => {
                    self.stop = Some(Stop::Waiting(wake_at));
                    return Err(terminate("waiting"));
                }
                Ok(QuestionWait::Done(outcome)) => {
                    return self
                        .step(kind, request, move |_, _| (outcome, true))
                        .map(|(v, _)| v);
                }
                Err(e) => {
                    // The store could not be read: the replay is retried later.
                    let message = format!("step {seq}: {e}");
                    return Err(self.fail(FailureKind::Journal, message, Some(seq), "question"));
                }
            }
        }
        self.step(kind, request, |_, _| (Value::Null, true))
            .map(|(v, _)| v)
    }

    pub(super) fn fail(
        &mut self,
        kind: FailureKind,
        message: String,
        step: Option<u32>,
        tag: &str,
    ) -> Box<EvalAltResult> {
        self.stop = Some(Stop::Failed(Failure { kind, message, step }));
        terminate(tag)
    }
}

/// The state of the replay running (a panic in a step leaves the lock poisoned, not the
/// state wrong: the next replay replaces it).
pub(super) fn lock(s: &Shared) -> Locked<'_> {
    Locked(open_slot(s))
}

/// The slot itself, for a replay to fill at its start and empty at its end.
pub(super) fn open_slot(s: &Shared) -> MutexGuard<'_, Option<ReplayState>> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}
