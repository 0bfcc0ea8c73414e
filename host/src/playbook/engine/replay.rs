//! A replay from start to end: the engine with this replay's functions, the script's
//! variables, and how it ended.

use super::state::{ReplayState, Shared, Stop, open_slot};
use super::{Effects, Failure, FailureKind, Outcome, RunContext, Script, ScriptLimits, Step};
use crate::playbook::api;
use crate::playbook::json::json_len;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Scope};
use serde_json::Value;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Room for the replay's stack: the script's values are dropped (and compared, and shown)
/// by recursion as deep as they are nested. Reserved, not committed: only what is used
/// costs memory.
const REPLAY_STACK_BYTES: usize = 1 << 30;

/// The stack to give a thread that replays (the server's runtime gives it to every thread
/// it starts, `tokio::runtime::Builder::thread_stack_size`): the replay's room plus what
/// the runtime's frames under it take. On such a thread a replay runs on the thread's own
/// stack; on any other, it maps a stack of its own and unmaps it at its end. That cost a
/// `mmap`, a `munmap` (which stops the other cores to flush their TLBs) and fresh zeroed
/// pages for every replay: half of the server's `munmap`s in `scripts/bench-e2e.sh`.
pub const REPLAY_THREAD_STACK_BYTES: usize = REPLAY_STACK_BYTES + (8 << 20);

/// Replay `script` for `run` over `journal`, performing new steps through `effects`.
/// Returns how it ended and the effects (to reuse), plus the full journal.
pub fn replay(
    script: &Script,
    limits: ScriptLimits,
    run: &RunContext,
    journal: Vec<Step>,
    effects: Box<dyn Effects>,
) -> (Outcome, Box<dyn Effects>, Vec<Step>) {
    if replays_in_place() {
        replay_here(script, limits, run, journal, effects)
    } else {
        stacker::grow(REPLAY_STACK_BYTES, || {
            replay_here(script, limits, run, journal, effects)
        })
    }
}

/// Whether a replay started here runs on this thread's own stack (else it maps one).
fn replays_in_place() -> bool {
    stacker::remaining_stack().is_some_and(|left| left >= REPLAY_STACK_BYTES)
}

thread_local! {
    /// This thread's replay engine and the slot its functions read the running replay's
    /// state from. Built at the thread's first replay and reused by the next: building an
    /// engine and registering its functions cost about as much as a short replay.
    static ENGINE: RefCell<Option<(Engine, Shared)>> = const { RefCell::new(None) };
}

/// An engine with every replay function, bound to an empty state slot.
fn replay_engine() -> (Engine, Shared) {
    let slot: Shared = Arc::new(Mutex::new(None));
    let mut engine = super::base_engine(&ScriptLimits::default());
    super::functions::register_effects(&mut engine, &slot);
    super::acts::register_acts(&mut engine, &slot);
    super::guards::register_guards(&mut engine, &slot);
    super::playbooks::register_playbooks(&mut engine, &slot);
    (engine, slot)
}

fn replay_here(
    script: &Script,
    limits: ScriptLimits,
    run: &RunContext,
    journal: Vec<Step>,
    effects: Box<dyn Effects>,
) -> (Outcome, Box<dyn Effects>, Vec<Step>) {
    ENGINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut cached) => {
            let (engine, slot) = cached.get_or_insert_with(replay_engine);
            replay_with(engine, slot, script, limits, run, journal, effects)
        }
        // A replay inside a replay on this thread (a test's child playbook, run offline
        // within its parent's step: `testing/mock_effects.rs`): an engine of its own.
        Err(_) => {
            let (mut engine, slot) = replay_engine();
            replay_with(&mut engine, &slot, script, limits, run, journal, effects)
        }
    })
}

fn replay_with(
    engine: &mut Engine,
    slot: &Shared,
    script: &Script,
    limits: ScriptLimits,
    run: &RunContext,
    journal: Vec<Step>,
    effects: Box<dyn Effects>,
) -> (Outcome, Box<dyn Effects>, Vec<Step>) {
    let journal_bytes = journal
        .iter()
        .map(|s| json_len(&s.request) + json_len(&s.outcome))
        .sum();
    let state = ReplayState {
        run_id: run.run_id.clone(),
        incident: run.incident["id"].as_str().map(str::to_owned),
        journal,
        next: 1,
        effects,
        limits,
        stop: None,
        outside: Duration::ZERO,
        journal_bytes,
        plugins: run.plugins.clone(),
        interrupt: run.interrupt.clone(),
        memory_base: crate::alloc_meter::thread_bytes(),
        memory_outside: 0,
        started: Instant::now(),
        containers: Default::default(),
        recorded_points: 0,
    };
    super::script::set_limits(engine, &limits);
    *open_slot(slot) = Some(state);

    let mut scope = Scope::new();
    let input = api::from_json_value(&Value::Object(run.input.clone())).unwrap_or(Dynamic::UNIT);
    scope.push_constant("input", input);
    let mut run_map = Map::new();
    run_map.insert("id".into(), run.run_id.clone().into());
    run_map.insert("playbook".into(), run.playbook.clone().into());
    scope.push_constant("run", run_map);
    // `()` for runs not started from an alert, a breach or a request.
    for (name, value) in [
        ("alert", &run.alert),
        ("incident", &run.incident),
        ("breach", &run.breach),
        ("requester", &run.requester),
    ] {
        scope.push_constant(name, api::from_json_value(value).unwrap_or(Dynamic::UNIT));
    }

    let result = engine.eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast);
    drop(scope);
    let state = open_slot(slot)
        .take()
        .expect("the replay's state stays in the slot while it runs");
    let current_step = if state.next > 1 {
        Some(state.next - 1)
    } else {
        None
    };
    let outcome = match (result, state.stop) {
        (_, Some(Stop::Waiting(wake_at))) => Outcome::Waiting { wake_at },
        (_, Some(Stop::Failed(f))) => Outcome::Failed(f),
        (_, Some(Stop::Interrupted)) => Outcome::Interrupted,
        (Ok(value), None) => match crate::playbook::json::to_json_value(&value, limits.max_step_bytes) {
            Ok(v) => Outcome::Completed(v),
            Err(e) => Outcome::Failed(Failure {
                kind: FailureKind::Script,
                message: format!("the script's result cannot be stored as JSON: {e}"),
                step: None,
            }),
        },
        (Err(e), None) => Outcome::Failed(failure_from(*e, &limits, current_step)),
    };
    (outcome, state.effects, state.journal)
}

/// Turn an error that escaped the script into a failure that says what happened.
fn failure_from(err: EvalAltResult, limits: &ScriptLimits, step: Option<u32>) -> Failure {
    let limit = |name: &str, value: String| Failure {
        kind: FailureKind::Limit { limit: name.into() },
        message: format!("limit {name} ({value}) reached"),
        step,
    };
    let inner = unwrap_calls(err);
    match inner {
        EvalAltResult::ErrorTooManyOperations(pos) => {
            let mut f = limit("max_operations", limits.max_operations.to_string());
            f.message.push_str(&format!(" at {pos}"));
            f
        }
        EvalAltResult::ErrorStackOverflow(pos) => {
            let mut f = limit("max_call_depth", limits.max_call_depth.to_string());
            f.message.push_str(&format!(" at {pos}"));
            f
        }
        EvalAltResult::ErrorDataTooLarge(what, pos) => {
            let (name, value) = if what.contains("limit max_map_len") {
                ("max_map_len", limits.max_map_len)
            } else if what.contains("limit max_array_len") {
                ("max_array_len", limits.max_array_len)
            } else if what.contains("string") || what.contains("String") {
                ("max_string_bytes", limits.max_string_bytes)
            } else if what.contains("rray") {
                ("max_array_len", limits.max_array_len)
            } else {
                ("max_map_len", limits.max_map_len)
            };
            let mut f = limit(name, value.to_string());
            f.message.push_str(&format!(": {what} too large at {pos}"));
            f
        }
        EvalAltResult::ErrorRuntime(value, pos) => {
            if let Some(map) = value.read_lock::<Map>()
                && map.contains_key("kind")
                && map.contains_key("plugin")
            {
                let retryable = map
                    .get("retryable")
                    .and_then(|v| v.as_bool().ok())
                    .unwrap_or(false);
                let retry_after_ms = map
                    .get("retry_after_ms")
                    .and_then(|v| v.as_int().ok())
                    .and_then(|ms| u64::try_from(ms).ok());
                let text = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
                return Failure {
                    kind: FailureKind::Plugin {
                        retryable,
                        retry_after_ms,
                    },
                    message: format!(
                        "{}/{} failed ({}): {} (not caught by the script, at {pos})",
                        text("plugin"),
                        text("action"),
                        text("kind"),
                        text("message")
                    ),
                    step,
                };
            }
            // A child playbook's error (`playbook(name, input)`) says what it is by itself.
            if let Some(map) = value.read_lock::<Map>()
                && map.contains_key("playbook")
                && let Some(message) = map.get("message").and_then(|m| m.clone().into_string().ok())
            {
                return Failure {
                    kind: FailureKind::Script,
                    message: format!("{message} (not caught by the script, at {pos})"),
                    step,
                };
            }
            Failure {
                kind: FailureKind::Script,
                message: format!("{value} (thrown at {pos})"),
                step,
            }
        }
        other => Failure {
            kind: FailureKind::Script,
            message: other.to_string(),
            step,
        },
    }
}

/// The innermost error of a chain of function calls.
fn unwrap_calls(err: EvalAltResult) -> EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => unwrap_calls(*inner),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::{REPLAY_THREAD_STACK_BYTES, replays_in_place};

    #[test]
    fn the_servers_threads_replay_on_their_own_stack_and_others_map_one() {
        // As `osprey serve` builds its runtime (main.rs): its blocking threads, where the
        // workers replay, and its async workers have the replay's room below the runtime's
        // frames.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_stack_size(REPLAY_THREAD_STACK_BYTES)
            .build()
            .unwrap();
        assert!(runtime.block_on(async { tokio::task::spawn_blocking(replays_in_place).await.unwrap() }));
        assert!(runtime.block_on(async { tokio::spawn(async { replays_in_place() }).await.unwrap() }));
        // A thread with the default stack does not: its replays map a stack of their own.
        assert!(!std::thread::spawn(replays_in_place).join().unwrap());
    }
}
