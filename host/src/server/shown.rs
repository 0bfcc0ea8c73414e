//! What the API and the console show of a stored value: a value bigger than
//! [`MAX_SHOWN_BYTES`] as JSON is shown as its size and a preview, so one run with a
//! 64 MB journal step cannot make a page or an answer that big. The CLI shows all.

use crate::playbook::json::{json_len, preview};
use crate::store::runs::{RunRecord, StepRecord};
use serde_json::{Value, json};

/// The most of one value shown.
pub const MAX_SHOWN_BYTES: usize = 64 * 1024;
/// The preview of a value too big to show.
const PREVIEW_BYTES: usize = 1024;

/// `v`, or `{"truncated": true, "bytes": N, "preview": "..."}` if it is too big to show.
pub fn value(v: Value) -> Value {
    let bytes = json_len(&v);
    if bytes <= MAX_SHOWN_BYTES {
        return v;
    }
    json!({ "truncated": true, "bytes": bytes, "preview": preview(&v, PREVIEW_BYTES) })
}

/// A run with its values cut to what is shown.
pub fn run(mut r: RunRecord) -> RunRecord {
    r.input = value(r.input);
    r.output = r.output.map(value);
    r.context = value(r.context);
    r
}

/// A step with its values cut to what is shown.
pub fn step(mut s: StepRecord) -> StepRecord {
    s.request = value(s.request);
    s.outcome = value(s.outcome);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_values_are_shown_as_their_size_and_a_preview() {
        let small = json!({"a": [1, 2]});
        assert_eq!(value(small.clone()), small);
        let big = json!({ "log": "é".repeat(100_000) });
        let shown = value(big);
        assert_eq!(shown["truncated"], true);
        assert_eq!(shown["bytes"], 200_010);
        let preview = shown["preview"].as_str().unwrap();
        assert!(
            preview.starts_with("{\"log\":\"éé") && preview.ends_with('…'),
            "{preview}"
        );
        assert!(preview.len() <= PREVIEW_BYTES + 3);
    }
}
