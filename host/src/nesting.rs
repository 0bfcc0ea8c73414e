//! The one nesting limit of JSON values Osprey accepts, and its checks.
//!
//! Whatever Osprey accepts it must be able to read back. Values are stored inside other
//! values (an alert in a run's context, a plugin's output in a journal step, a step in an API
//! answer), and the readers (serde_json) refuse text nested deeper than 128. So every value
//! that comes in (an alert, an API body, a playbook's value, a plugin's output) may be at most
//! [`MAX_DEPTH`] deep, and the stores wrap it in at most [`WRAPPING`] more levels: what is
//! stored is at most [`STORED_DEPTH`] deep, well below what the readers accept.
//!
//! The checks are iterative, so a hostile value cannot overflow the stack while being checked.

use serde_json::Value;

/// How deep a value that comes in may be nested: `{"a": [1]}` is 2 deep, `1` is 0.
pub const MAX_DEPTH: usize = 64;
/// How many levels the stores and answers wrap around a value, at most.
pub const WRAPPING: usize = 8;
/// The deepest a stored value can be.
pub const STORED_DEPTH: usize = MAX_DEPTH + WRAPPING;

/// A value nested deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nested more than {limit} levels deep (arrays and objects inside each other)")]
pub struct TooDeep {
    pub limit: usize,
}

/// Check a parsed value against `limit` levels.
pub fn check(value: &Value, limit: usize) -> Result<(), TooDeep> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth + 1 > limit {
            return Err(TooDeep { limit });
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    Ok(())
}

/// Check JSON text against `limit` levels before parsing it (brackets outside strings).
pub fn check_text(text: &[u8], limit: usize) -> Result<(), TooDeep> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn depth_is_counted_in_arrays_and_objects() {
        assert_eq!(check(&json!(1), 0), Ok(()));
        assert_eq!(check(&json!([]), 0), Err(TooDeep { limit: 0 }));
        assert_eq!(check(&json!({"a": [1]}), 2), Ok(()));
        assert_eq!(check(&json!({"a": [1]}), 1), Err(TooDeep { limit: 1 }));
        assert_eq!(check(&json!([1, {"b": {"c": []}}]), 4), Ok(()));
        assert_eq!(check(&json!([1, {"b": {"c": []}}]), 3), Err(TooDeep { limit: 3 }));
    }

    #[test]
    fn text_and_value_agree_and_strings_do_not_count() {
        for depth in [1, 63, 64, 65, 100] {
            let text = nested(depth);
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                check_text(text.as_bytes(), MAX_DEPTH).is_ok(),
                depth <= MAX_DEPTH,
                "{depth}"
            );
            assert_eq!(check(&value, MAX_DEPTH).is_ok(), depth <= MAX_DEPTH, "{depth}");
        }
        let tricky = r#"{"a": "[[[[\"[[[", "b": ["\\", "{"]}"#;
        assert_eq!(check_text(tricky.as_bytes(), 2), Ok(()));
        assert_eq!(check_text(tricky.as_bytes(), 1), Err(TooDeep { limit: 1 }));
    }

    #[test]
    fn a_very_deep_value_is_checked_without_recursion() {
        // Built by hand: serde_json itself refuses to parse it.
        let mut v = json!(1);
        for _ in 0..100_000 {
            v = Value::Array(vec![v]);
        }
        assert!(check(&v, MAX_DEPTH).is_err());
        assert!(check_text(nested(1_000_000).as_bytes(), MAX_DEPTH).is_err());
        // Dropping it recursively would overflow the test thread's stack: unwind by hand.
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Null);
        }
    }
}
