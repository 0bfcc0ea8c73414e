//! The script functions that change what Osprey keeps (incidents, tasks, lists, indicators,
//! notifications, mail) and ask people (`ask`, `approve`, `form`): each an [`Act`] taken as
//! a journaled step of kind `act`, whose failure the script can catch like a plugin error.

use super::StepKind;
use super::state::{Shared, lock, step_json};
use crate::humans::questions::Kind;
use crate::playbook::act::{Act, ActCall, ActError};
use crate::playbook::api;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};
use serde_json::Value;

/// A catchable error map `#{ kind, message, retryable: false, action }`.
pub(super) fn act_error(kind: &str, message: String, action: &str) -> Box<EvalAltResult> {
    let mut e = Map::new();
    e.insert("kind".into(), kind.into());
    e.insert("message".into(), message.into());
    e.insert("retryable".into(), false.into());
    e.insert("action".into(), action.into());
    Box::new(EvalAltResult::ErrorRuntime(e.into(), Position::NONE))
}

/// Take `act` as a step: from the journal, or performed through the effects and recorded.
/// The run's incident goes with it; an action on the run's incident in a run without one
/// is refused before any step.
pub(super) fn take(state: &Shared, act: Act) -> Result<Dynamic, Box<EvalAltResult>> {
    take_for(state, act, None)
}

/// [`take`], on incident `other` instead of the run's when given (`incident_close(id, reason)`:
/// an incident the run created).
fn take_for(state: &Shared, act: Act, other: Option<String>) -> Result<Dynamic, Box<EvalAltResult>> {
    let mut st = lock(state);
    let action = act.name();
    let incident = other.or_else(|| st.incident.clone());
    if act.needs_incident() && incident.is_none() {
        let e = ActError::NoIncident { action };
        return Err(act_error("invalid-input", e.to_string(), action));
    }
    let request = ActCall { act, incident }.request();
    // What is performed is the request as the journal has it (a map's `incident` included).
    let call = ActCall::from_request(&request);
    let (outcome, ok) = st.step(StepKind::Act, request, |st, seq| {
        let key = format!("{}:{seq}", st.run_id);
        let run_id = st.run_id.clone();
        let done = match &call {
            Ok(call) => st.effects.act(call, &run_id, &key),
            Err(e) => Err(ActError::Invalid {
                action,
                message: e.to_string(),
            }),
        };
        match done {
            Ok(v) => (v, true),
            Err(e) => (
                serde_json::json!({ "kind": "invalid-input", "message": e.to_string(), "retryable": false }),
                false,
            ),
        }
    })?;
    drop(st);
    if ok {
        api::from_json_value(&outcome)
    } else {
        let mut err = api::from_json_value(&outcome)?;
        if let Some(mut map) = err.write_lock::<Map>() {
            map.insert("action".into(), action.into());
        }
        Err(Box::new(EvalAltResult::ErrorRuntime(err, Position::NONE)))
    }
}

/// A map the script gave, as JSON (at most `max_step_bytes`).
fn json_map(state: &Shared, map: Map) -> Result<serde_json::Map<String, Value>, Box<EvalAltResult>> {
    Ok(step_json(state, &Dynamic::from_map(map))?
        .as_object()
        .cloned()
        .unwrap_or_default())
}

/// A map the script gave, without the keys the function's own arguments set.
fn options(
    state: &Shared,
    map: Map,
    set: [&str; 2],
) -> Result<serde_json::Map<String, Value>, Box<EvalAltResult>> {
    let mut m = json_map(state, map)?;
    for key in set {
        m.remove(key);
    }
    Ok(m)
}

/// Register the functions that change what Osprey keeps and ask people, each bound to this
/// replay's state.
pub(super) fn register_acts(engine: &mut Engine, state: &Shared) {
    let s = state.clone();
    engine.register_fn("incident_note", move |text: &str| {
        take(&s, Act::IncidentNote { text: text.into() })
    });
    let s = state.clone();
    engine.register_fn("incident_close", move |reason: &str| {
        take(
            &s,
            Act::IncidentClose {
                reason: reason.into(),
            },
        )
    });
    let s = state.clone();
    engine.register_fn("incident_close", move |id: &str, reason: &str| {
        let act = Act::IncidentClose {
            reason: reason.into(),
        };
        take_for(&s, act, Some(id.into()))
    });
    let s = state.clone();
    engine.register_fn("incident_set", move |changes: Map| {
        take(&s, Act::IncidentSet(json_map(&s, changes)?))
    });
    let s = state.clone();
    engine.register_fn("list_add", move |list: &str, value: &str, given: Map| {
        let options = options(&s, given, ["list", "value"])?;
        take(
            &s,
            Act::ListAdd {
                list: list.into(),
                value: value.into(),
                options,
            },
        )
    });
    let s = state.clone();
    engine.register_fn("list_add", move |list: &str, value: &str| {
        take(
            &s,
            Act::ListAdd {
                list: list.into(),
                value: value.into(),
                options: Default::default(),
            },
        )
    });
    // Indicators: a read (journaled, as it changes between runs) and a verdict.
    let s = state.clone();
    engine.register_fn("indicator", move |kind: &str, value: &str| {
        take(
            &s,
            Act::IndicatorGet {
                kind: kind.into(),
                value: value.into(),
            },
        )
    });
    let s = state.clone();
    engine.register_fn("indicator_set", move |kind: &str, value: &str, given: Map| {
        let verdict = options(&s, given, ["kind", "value"])?;
        take(
            &s,
            Act::IndicatorSet {
                kind: kind.into(),
                value: value.into(),
                verdict,
            },
        )
    });
    let s = state.clone();
    engine.register_fn("list_remove", move |list: &str, value: &str| {
        take(
            &s,
            Act::ListRemove {
                list: list.into(),
                value: value.into(),
            },
        )
    });
    // Create an incident (top-level) or spawn a child of the run's incident; both return
    // the new incident's id.
    let s = state.clone();
    engine.register_fn("incident_create", move |spec: Map| {
        take(&s, Act::IncidentCreate(json_map(&s, spec)?))
    });
    let s = state.clone();
    engine.register_fn("incident_spawn", move |spec: Map| {
        take(&s, Act::IncidentSpawn(json_map(&s, spec)?))
    });
    let s = state.clone();
    engine.register_fn("incident_link", move |other: &str| {
        take(&s, Act::IncidentLink { other: other.into() })
    });
    let s = state.clone();
    engine.register_fn("task_create", move |spec: Map| {
        take(&s, Act::TaskCreate(json_map(&s, spec)?))
    });
    // A search over incidents: journaled, as its answer changes between runs.
    let s = state.clone();
    engine.register_fn("incidents", move |filter: Map| {
        take(&s, Act::IncidentSearch(json_map(&s, filter)?))
    });
    let s = state.clone();
    engine.register_fn("incidents", move || {
        take(&s, Act::IncidentSearch(Default::default()))
    });
    // A search of received alerts by a field: journaled too.
    let s = state.clone();
    engine.register_fn("alerts", move |filter: Map| {
        take(&s, Act::AlertSearch(json_map(&s, filter)?))
    });
    let s = state.clone();
    engine.register_fn("past_runs", move |query: Map| {
        take(&s, Act::PastRuns(json_map(&s, query)?))
    });
    let s = state.clone();
    engine.register_fn("send_email", move |spec: Map| {
        take(&s, Act::SendEmail(json_map(&s, spec)?))
    });
    // ask / approve / form: an `act` step that stores the question (and mails it), then a
    // `question` step that waits for its answer: the replay unwinds while it is open and
    // the answer (or the default, at the due time) is journaled when it comes.
    for kind in [Kind::Ask, Kind::Approve, Kind::Form] {
        let s = state.clone();
        engine.register_fn(
            kind.as_str(),
            move |spec: Map| -> Result<Dynamic, Box<EvalAltResult>> {
                let spec = step_json(&s, &Dynamic::from_map(spec))?;
                let asked = step_json(&s, &take(&s, Act::QuestionAsk { kind, spec })?)?;
                let id = asked["id"].as_str().unwrap_or_default().to_owned();
                let mut st = lock(&s);
                let request = serde_json::json!({ "question": id });
                let outcome =
                    st.wait_step(StepKind::Question, request, |st| st.effects.question_wait(&id))?;
                drop(st);
                question_result(kind.as_str(), &outcome)
            },
        );
    }
    // record: a data point for the playbook's charts, checked here (a series name, a small
    // map) and bounded per run; the replay counts its points from the start each time.
    let s = state.clone();
    engine.register_fn("record", move |series: &str, point: Map| {
        use crate::playbook::chart::{self, MAX_POINT_BYTES, MAX_POINTS_PER_RUN};
        let invalid = |message: String| act_error("invalid-input", message, "record");
        let json = crate::playbook::json::to_json_value(&Dynamic::from_map(point), MAX_POINT_BYTES)
            .map_err(|e| invalid(format!("record: {e}")))?;
        chart::check_point(series, &json).map_err(|e| invalid(e.to_string()))?;
        let taken = {
            let mut st = lock(&s);
            st.recorded_points += 1;
            st.recorded_points
        };
        if taken > MAX_POINTS_PER_RUN {
            return Err(invalid(format!(
                "record: this run already recorded {MAX_POINTS_PER_RUN} points, the most one run may"
            )));
        }
        let Value::Object(point) = json else {
            return Err(invalid("record: the point must be a map".into()));
        };
        take(
            &s,
            Act::Record {
                series: series.into(),
                point,
            },
        )
    });
    super::keep::register_keep(engine, state);
    let s = state.clone();
    engine.register_fn("notify", move |to: &str, message: &str| {
        take(
            &s,
            Act::Notify {
                to: to.into(),
                message: message.into(),
            },
        )
    });
}

/// What an answered question gives the script, or the catchable error of one that timed out
/// without a default (`kind: "timeout"`) or was cancelled (`kind: "cancelled"`).
fn question_result(function: &str, outcome: &Value) -> Result<Dynamic, Box<EvalAltResult>> {
    let failed = match outcome["status"].as_str() {
        Some("timed_out") if outcome["answer"].is_null() => {
            Some(("timeout", "was not answered in time and has no default"))
        }
        Some("cancelled") => Some(("cancelled", "was cancelled")),
        _ => None,
    };
    if let Some((kind, what)) = failed {
        let question = outcome["question"].as_str().unwrap_or("?");
        return Err(act_error(
            kind,
            format!("{function}: question {question} {what}"),
            function,
        ));
    }
    api::from_json_value(outcome)
}
