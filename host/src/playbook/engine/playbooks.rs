//! `playbook(name, input)`: start another playbook as a run of its own and wait for its
//! result, as two journaled steps of kind `playbook`. The first starts the child (exactly
//! once: its id is journaled, and a start retaken after a crash finds the same child); the
//! second waits for its end as `ask` waits for an answer: the replay unwinds while the child
//! runs, and the child's end wakes the parent. A child that fails, is cancelled or is
//! dead-lettered is a catchable error `#{ kind: "playbook", status, message, retryable,
//! playbook, run }`.

use super::state::{Shared, lock, step_json};
use super::{FailureKind, StartError, StepKind};
use crate::playbook::api;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};
use serde_json::Value;

/// A catchable error map `#{ kind, message, retryable: false, playbook }` with `extra` keys.
fn playbook_error(kind: &str, message: String, name: &str, extra: &[(&str, &Value)]) -> Box<EvalAltResult> {
    let mut e = Map::new();
    e.insert("kind".into(), kind.into());
    e.insert("message".into(), message.into());
    e.insert("retryable".into(), false.into());
    e.insert("playbook".into(), name.into());
    for (key, value) in extra {
        if let Ok(v) = api::from_json_value(value) {
            e.insert((*key).into(), v);
        }
    }
    Box::new(EvalAltResult::ErrorRuntime(e.into(), Position::NONE))
}

/// Start child `name` with `input` and wait for its result.
fn call(state: &Shared, name: &str, input: Map) -> Result<Dynamic, Box<EvalAltResult>> {
    let input = step_json(state, &Dynamic::from_map(input))?;
    let request = serde_json::json!({ "playbook": name, "input": input });
    let mut st = lock(state);
    let (outcome, ok) = st.try_step(StepKind::Playbook, request, |st, seq| {
        let run_id = st.run_id.clone();
        match st.effects.start_playbook(name, &input, &run_id, seq) {
            Ok(child) => Ok((serde_json::json!({ "run": child }), true)),
            Err(e @ (StartError::Unknown(_) | StartError::Invalid(_) | StartError::Unavailable)) => Ok((
                serde_json::json!({ "kind": "invalid-input", "message": format!("playbook('{name}'): {e}"), "retryable": false }),
                false,
            )),
            Err(e @ StartError::TooDeep { .. }) => {
                let kind = FailureKind::Limit {
                    limit: "max_playbook_depth".into(),
                };
                Err(st.fail(kind, format!("step {seq}: {e}"), Some(seq), "limit"))
            }
            Err(StartError::Store(e)) => {
                let message = format!("step {seq}: playbook '{name}' could not be started: {e}");
                Err(st.fail(FailureKind::Journal, message, Some(seq), "journal"))
            }
        }
    })?;
    if !ok {
        let message = outcome["message"].as_str().unwrap_or("refused").to_owned();
        let kind = outcome["kind"].as_str().unwrap_or("invalid-input");
        return Err(playbook_error(kind, message, name, &[]));
    }
    let child = outcome["run"].as_str().unwrap_or_default().to_owned();
    let request = serde_json::json!({ "run": child, "playbook": name });
    let ended = st.wait_step(StepKind::Playbook, request, |st| st.effects.playbook_wait(&child))?;
    drop(st);
    child_result(name, &ended)
}

/// What a child's end gives the parent: its output, or the catchable error of a child that
/// did not complete.
fn child_result(name: &str, ended: &Value) -> Result<Dynamic, Box<EvalAltResult>> {
    let status = ended["status"].as_str().unwrap_or("failed");
    if status == "completed" {
        return api::from_json_value(&ended["output"]);
    }
    let run = &ended["run"];
    let why = ended["error"].as_str().unwrap_or("no reason given");
    let message = format!(
        "playbook '{name}' (run {}) ended {status}: {why}",
        run.as_str().unwrap_or("?")
    );
    Err(playbook_error(
        "playbook",
        message,
        name,
        &[("status", &Value::from(status)), ("run", run)],
    ))
}

/// Register `playbook(name, input)` and `playbook(name)`, bound to this replay's state.
pub(super) fn register_playbooks(engine: &mut Engine, state: &Shared) {
    let s = state.clone();
    engine.register_fn("playbook", move |name: &str, input: Map| call(&s, name, input));
    let s = state.clone();
    engine.register_fn("playbook", move |name: &str| call(&s, name, Map::new()));
}
