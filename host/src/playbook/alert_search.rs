//! `alerts(#{ field, value, since, limit })`: a playbook's search for the alerts Osprey
//! received whose field `field` (a top-level key of the alert's fields, as the sender sent
//! them) is `value`, read and checked here (pure). The executor asks the store with it
//! (`runs/act.rs`); `osprey playbook test` filters a case's canned `alerts` with
//! [`AlertQuery::matches`], so a script sees the same answers offline.
//!
//! A search is an `act` step (`{ "action": "alerts", "args": {...} }`), journaled like
//! `incidents(...)`. Its cost is bounded: it looks back at most [`MAX_LOOKBACK_MS`] and
//! returns at most [`MAX_LIMIT`] alerts, the newest first. A playbook that waits for an
//! alert (the defence validation's alert-workflow check) calls it in a bounded loop with
//! `sleep` between the searches.

use super::act::ActError;
use super::search::{Since, read_since};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Alerts one search returns when it names no `limit`.
pub const DEFAULT_LIMIT: u32 = 10;
/// Alerts one search returns at most.
pub const MAX_LIMIT: u32 = 100;
/// How far back a search looks when it names no `since`: a day.
pub const DEFAULT_LOOKBACK_MS: i64 = 24 * 3_600_000;
/// How far back a search may look: a week.
pub const MAX_LOOKBACK_MS: i64 = 7 * 24 * 3_600_000;
/// The longest field name.
const MAX_FIELD: usize = 64;

const ACTION: &str = "alerts";

/// A checked search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    /// The top-level key of the alert's fields (letters, digits, `_`, `-`).
    pub field: String,
    /// The text it must hold (a number matches its decimal text).
    pub value: String,
    pub since: Option<Since>,
    pub limit: u32,
}

/// The map a script gives, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Given {
    field: String,
    value: Value,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    limit: Option<i64>,
}

fn invalid(message: String) -> ActError {
    ActError::Invalid {
        action: ACTION,
        message,
    }
}

impl AlertQuery {
    /// Read a script's search map; the error says which key was wrong and what it takes.
    pub fn read(args: &Map<String, Value>) -> Result<AlertQuery, ActError> {
        let mut args = args.clone();
        // The run's incident, which the journal adds to every act's arguments.
        args.remove("incident");
        let given: Given = crate::cases::parse(ACTION, &Value::Object(args))?;
        let field = given.field.trim().to_owned();
        if field.is_empty()
            || field.len() > MAX_FIELD
            || !field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(format!(
                "field '{}' is not a field name (1 to {MAX_FIELD} letters, digits, '_' or '-')",
                super::api::quoted(&given.field)
            )));
        }
        let value = match given.value {
            Value::String(s) if !s.is_empty() => s,
            Value::Number(n) => n.to_string(),
            other => return Err(invalid(format!("value must be text or a number, not {other}"))),
        };
        let since = read_since(ACTION, given.since.as_ref())?;
        let limit = match given.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            Some(n) => return Err(invalid(format!("limit {n}: ask for 1 to {MAX_LIMIT} alerts"))),
        };
        Ok(AlertQuery {
            field,
            value,
            since,
            limit,
        })
    }

    /// The earliest receipt time searched, at `now`: `since`, or a day back, and never more
    /// than a week back.
    pub fn since_ms(&self, now: i64) -> i64 {
        let asked = self
            .since
            .map_or(now.saturating_sub(DEFAULT_LOOKBACK_MS), |s| s.at(now));
        asked.max(now.saturating_sub(MAX_LOOKBACK_MS))
    }

    /// Whether an alert (as JSON, as the store gives it: `received_at`, `data`) is one this
    /// search finds at `now`: received from `since` up to `now`, with the field's text or
    /// number equal to the value.
    pub fn matches(&self, alert: &Value, now: i64) -> bool {
        let received = alert.get("received_at").and_then(Value::as_i64);
        let held = match alert.get("data").and_then(|d| d.get(&self.field)) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        received.is_some_and(|at| at >= self.since_ms(now) && at <= now)
            && held.as_deref() == Some(self.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<AlertQuery, String> {
        AlertQuery::read(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_search_reads_with_its_defaults_and_bounds() {
        let q = read(json!({"field": "probe_id", "value": "p-1", "incident": "i1"})).unwrap();
        assert_eq!(
            q,
            AlertQuery {
                field: "probe_id".into(),
                value: "p-1".into(),
                since: None,
                limit: DEFAULT_LIMIT
            }
        );
        let now = 30 * 24 * 3_600_000;
        assert_eq!(q.since_ms(now), now - DEFAULT_LOOKBACK_MS);
        let q = read(json!({"field": "n", "value": 42, "since": 5, "limit": 100})).unwrap();
        assert_eq!((q.value.as_str(), q.limit), ("42", 100));
        // A search never looks back more than a week.
        assert_eq!(q.since_ms(now), now - MAX_LOOKBACK_MS);
        assert_eq!(
            read(json!({"field": "n", "value": "x", "since": "10m"}))
                .unwrap()
                .since_ms(now),
            now - 600_000
        );
    }

    #[test]
    fn wrong_searches_say_what_is_expected() {
        for (given, says) in [
            (json!({"value": "x"}), "missing field `field`"),
            (
                json!({"field": "a.b", "value": "x"}),
                "field 'a.b' is not a field name",
            ),
            (json!({"field": "", "value": "x"}), "is not a field name"),
            (
                json!({"field": "f", "value": ""}),
                "value must be text or a number",
            ),
            (
                json!({"field": "f", "value": [1]}),
                "value must be text or a number",
            ),
            (
                json!({"field": "f", "value": "x", "limit": 0}),
                "limit 0: ask for 1 to 100 alerts",
            ),
            (
                json!({"field": "f".repeat(100_000), "value": "x"}),
                "is not a field name (1 to",
            ),
            (
                json!({"field": "f", "value": "x", "limit": 101}),
                "limit 101: ask for 1 to 100 alerts",
            ),
            (
                json!({"field": "f", "value": "x", "since": "soon"}),
                "alerts: since:",
            ),
            (
                json!({"field": "f", "value": "x", "sort": "x"}),
                "unknown field `sort`",
            ),
        ] {
            let e = read(given.clone()).unwrap_err();
            assert!(e.contains(says), "{given}: {e}");
            assert!(e.starts_with("alerts"), "{e}");
        }
    }

    #[test]
    fn offline_matching_follows_the_field_and_the_clock() {
        let q = read(json!({"field": "probe", "value": "p-1", "since": 1000})).unwrap();
        let a = |at: i64, probe: Value| json!({"id": "a1", "received_at": at, "data": {"probe": probe}});
        assert!(q.matches(&a(1500, json!("p-1")), 2000));
        assert!(!q.matches(&a(1500, json!("p-2")), 2000));
        assert!(!q.matches(&a(500, json!("p-1")), 2000), "before since");
        assert!(!q.matches(&a(2500, json!("p-1")), 2000), "not arrived yet");
        let n = read(json!({"field": "probe", "value": 7, "since": 0})).unwrap();
        assert!(n.matches(&a(1, json!(7)), 2));
        assert!(!n.matches(&json!({"received_at": 1, "data": {}}), 2));
    }
}
