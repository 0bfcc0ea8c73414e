//! `state_get(key)` and `state_set(key, value)`: what a playbook keeps between its runs
//! (`playbook/keep.rs`), each an `act` step checked here before it is taken.

use super::acts::{act_error, take};
use super::state::Shared;
use crate::playbook::act::Act;
use crate::playbook::keep::{self, MAX_VALUE_BYTES};
use rhai::{Dynamic, Engine};

/// Register `state_get` and `state_set`, bound to this replay's state.
pub(super) fn register_keep(engine: &mut Engine, state: &Shared) {
    let s = state.clone();
    engine.register_fn("state_get", move |key: &str| {
        keep::check_key(key)
            .map_err(|e| act_error("invalid-input", format!("state_get: {e}"), "state_get"))?;
        take(&s, Act::StateGet { key: key.into() })
    });
    let s = state.clone();
    engine.register_fn("state_set", move |key: &str, value: Dynamic| {
        let invalid = |e: String| act_error("invalid-input", format!("state_set: {e}"), "state_set");
        keep::check_key(key).map_err(|e| invalid(e.to_string()))?;
        let value = crate::playbook::json::to_json_value(&value, MAX_VALUE_BYTES)
            .map_err(|e| invalid(format!("the value of '{key}': {e}")))?;
        keep::check_value(key, &value).map_err(|e| invalid(e.to_string()))?;
        take(
            &s,
            Act::StateSet {
                key: key.into(),
                value,
            },
        )
    });
}
