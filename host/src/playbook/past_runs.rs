//! `past_runs(#{ output, input, limit })`: the completed runs of the running playbook whose
//! output (and input) have the given top-level fields, newest first: a playbook's own
//! history, such as the earlier requests for one domain. Journaled (an `act` step), as it
//! changes between runs. Bounded twice: at most [`SCANNED`] of the newest completed runs are
//! looked at, and at most `limit` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) are
//! returned. Pure: the query as the script gave it, the match, and the shape of one result;
//! the store reads the runs (`runs/act.rs`), and `osprey playbook test` answers from a
//! case's `[[past_run]]`s with the same match.

use serde_json::{Map, Value};

/// The newest completed runs of the playbook looked at, at most.
pub const SCANNED: i64 = 1000;
/// Runs returned when the script gives no `limit`.
pub const DEFAULT_LIMIT: usize = 20;
/// Runs returned at most.
pub const MAX_LIMIT: usize = 100;

/// A `past_runs` query, read from the script's map.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Top-level fields the run's output must have, with these values.
    pub output: Map<String, Value>,
    /// Top-level fields the run's input must have, with these values.
    pub input: Map<String, Value>,
    pub limit: usize,
}

/// A query that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("past_runs: unknown field '{0}' (give output, input and limit)")]
    Unknown(String),
    #[error("past_runs: '{0}' must be a map of fields and the values they must have")]
    NotMap(&'static str),
    #[error("past_runs: limit must be a whole number from 1 to {MAX_LIMIT}, not {0}")]
    Limit(String),
}

impl Query {
    /// Read the script's map: `output` and `input` maps (each optional), `limit` 1 to
    /// [`MAX_LIMIT`].
    pub fn read(given: &Map<String, Value>) -> Result<Query, QueryError> {
        if let Some(k) = given
            .keys()
            .find(|k| !["output", "input", "limit"].contains(&k.as_str()))
        {
            return Err(QueryError::Unknown(k.clone()));
        }
        let map = |field: &'static str| match given.get(field) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(QueryError::NotMap(field)),
        };
        let limit = match given.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| QueryError::Limit(v.to_string()))?,
        };
        Ok(Query {
            output: map("output")?,
            input: map("input")?,
            limit,
        })
    }

    /// Whether a run with this input and output matches.
    pub fn matches(&self, input: &Value, output: &Value) -> bool {
        let has =
            |fields: &Map<String, Value>, v: &Value| fields.iter().all(|(k, want)| v.get(k) == Some(want));
        has(&self.input, input) && has(&self.output, output)
    }

    /// The matching runs among `runs` (newest first), at most `limit`, each shaped by
    /// [`entry`].
    pub fn select<'a>(&self, runs: impl IntoIterator<Item = Past<'a>>) -> Vec<Value> {
        runs.into_iter()
            .filter(|r| self.matches(r.input, r.output))
            .take(self.limit)
            .map(|r| r.entry())
            .collect()
    }
}

/// One completed run, as `past_runs` looks at it.
#[derive(Debug, Clone, Copy)]
pub struct Past<'a> {
    pub id: &'a str,
    /// What started it (`request:NAME` for a request form).
    pub origin: &'a str,
    pub input: &'a Value,
    pub output: &'a Value,
    pub finished_at: Option<i64>,
}

impl Past<'_> {
    /// What the script sees: `#{ run, origin, requester, finished_at, input, output }`
    /// (`requester` is the name behind a request form's run, else `()`).
    pub fn entry(&self) -> Value {
        serde_json::json!({
            "run": self.id,
            "origin": self.origin,
            "requester": self.origin.strip_prefix("request:"),
            "finished_at": self.finished_at,
            "input": self.input,
            "output": self.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn query(v: Value) -> Result<Query, QueryError> {
        Query::read(v.as_object().unwrap())
    }

    #[test]
    fn reads_defaults_and_refuses_what_is_wrong() {
        let q = query(json!({ "output": { "domain": "a.com" } })).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(q.input.is_empty());
        assert_eq!(
            query(json!({ "where": {} })),
            Err(QueryError::Unknown("where".into()))
        );
        assert_eq!(
            query(json!({ "output": "a.com" })),
            Err(QueryError::NotMap("output"))
        );
        assert_eq!(query(json!({ "limit": 0 })), Err(QueryError::Limit("0".into())));
        assert_eq!(
            query(json!({ "limit": 101 })),
            Err(QueryError::Limit("101".into()))
        );
        assert_eq!(query(json!({ "limit": 100 })).unwrap().limit, 100);
    }

    #[test]
    fn selects_matching_runs_newest_first_up_to_the_limit() {
        let q = query(json!({ "output": { "domain": "a.com" }, "limit": 2 })).unwrap();
        let input = json!({});
        let outs = [
            json!({ "domain": "a.com", "approved": true }),
            json!({ "domain": "b.com", "approved": true }),
            json!({ "domain": "a.com", "approved": false }),
            json!({ "domain": "a.com", "approved": true }),
            json!(null),
        ];
        let ids = ["r5", "r4", "r3", "r2", "r1"];
        let runs = outs.iter().zip(ids).map(|(o, id)| Past {
            id,
            origin: "request:alice",
            input: &input,
            output: o,
            finished_at: Some(1),
        });
        let got = q.select(runs);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["run"], "r5");
        assert_eq!(got[1]["run"], "r3");
        assert_eq!(got[1]["requester"], "alice");
        assert_eq!(got[1]["output"]["approved"], false);
    }
}
