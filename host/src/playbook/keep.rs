//! What a playbook keeps between its runs: `state_get(key)` and `state_set(key, value)`, a
//! small key-value store per playbook (such as where a round robin stopped). Both are
//! journaled `act` steps, so a replay sees what the first pass saw; the store keeps the
//! values (`store/playbook_state.rs`). Bounded here, before any step: a key is a name, a
//! value at most [`MAX_VALUE_BYTES`] of JSON and [`MAX_VALUE_DEPTH`] deep, and a playbook
//! keeps at most [`MAX_KEYS`] keys. Setting `()` removes the key.

use serde_json::Value;

/// The largest value kept, as JSON text.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// How deep a kept value may nest.
pub const MAX_VALUE_DEPTH: usize = 8;
/// The most keys one playbook keeps; a new key past it is refused.
pub const MAX_KEYS: usize = 100;

/// Why a key or a value cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepError {
    #[error("{0}")]
    Key(#[from] crate::names::NameError),
    #[error("the value of '{key}' is {what}; at most {limit}")]
    Value {
        key: String,
        what: String,
        limit: String,
    },
}

/// Check a key: a name (1-64 lower-case letters, digits and dashes, starting with a letter).
pub fn check_key(key: &str) -> Result<(), KeepError> {
    Ok(crate::names::check("state key", key)?)
}

/// Check a value to keep under `key`: at most [`MAX_VALUE_DEPTH`] deep and
/// [`MAX_VALUE_BYTES`] long as JSON.
pub fn check_value(key: &str, value: &Value) -> Result<(), KeepError> {
    let err = |what: String, limit: String| KeepError::Value {
        key: key.to_owned(),
        what,
        limit,
    };
    crate::nesting::check(value, MAX_VALUE_DEPTH)
        .map_err(|e| err(e.to_string(), MAX_VALUE_DEPTH.to_string()))?;
    let len = value.to_string().len();
    if len > MAX_VALUE_BYTES {
        return Err(err(
            format!("{len} bytes as JSON"),
            format!("{MAX_VALUE_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_names_and_values_are_small() {
        assert!(check_key("next-index").is_ok());
        let e = check_key("Next Index").unwrap_err().to_string();
        assert!(e.contains("state key name 'Next Index'"), "{e}");
        assert!(check_value("k", &json!({"next": 3, "names": ["ana"]})).is_ok());
        let e = check_value("k", &json!("x".repeat(MAX_VALUE_BYTES)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the value of 'k' is 16386 bytes as JSON; at most 16384 bytes"),
            "{e}"
        );
        let deep = (0..10).fold(json!(1), |v, _| json!([v]));
        let e = check_value("k", &deep).unwrap_err().to_string();
        assert!(e.contains("at most 8"), "{e}");
    }
}
