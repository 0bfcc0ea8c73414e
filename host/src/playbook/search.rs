//! `incidents(#{ severity, status, type, owner, since, limit })`: a playbook's search over
//! incidents, read and checked here (pure). The executor asks the store with it
//! (`runs/act.rs`); `osprey playbook test` filters a case's canned `incidents` with
//! [`IncidentQuery::matches`], so a script sees the same answers offline.
//!
//! The search is an `act` step (`{ "action": "incidents", "args": {...} }`): its answer is
//! journaled, so a replay sees the incidents the first run saw.

use super::act::ActError;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Incidents one search returns when it names no `limit`.
pub const DEFAULT_LIMIT: u32 = 100;
/// Incidents one search returns at most.
pub const MAX_LIMIT: u32 = 500;

const ACTION: &str = "incidents";

/// Which incidents by status: one of the stored states, or `open` (any but closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusQuery {
    /// New, active or pending: not closed.
    Open,
    /// Exactly this state (one of the store's `IncidentStatus` names).
    Is(&'static str),
}

/// The store's state names (`IncidentStatus::NAMES`; a test in `runs/act.rs` holds them
/// equal), which a search may name besides `open`.
pub const STATUS_NAMES: [&str; 4] = ["new", "active", "pending", "closed"];

/// Since when: a time (Unix ms, as `now()` gives) or a duration back from the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    At(i64),
    Ago(i64),
}

/// A checked search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentQuery {
    /// The severity's name (`critical`); any if `None`.
    pub severity: Option<&'static str>,
    pub status: Option<StatusQuery>,
    /// The incident type.
    pub kind: Option<String>,
    pub owner: Option<String>,
    pub since: Option<Since>,
    pub limit: u32,
}

/// The map a script gives, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Given {
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    owner: Option<String>,
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

/// A search's `since`: a time in Unix ms (as `now()` gives) or a duration back from the
/// search ("24h"); none when not given. Shared by the searches (`alert_search.rs`).
pub(super) fn read_since(action: &'static str, given: Option<&Value>) -> Result<Option<Since>, ActError> {
    let invalid = |message: String| ActError::Invalid { action, message };
    Ok(match given {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(Since::At(n.as_i64().filter(|ms| *ms >= 0).ok_or_else(|| {
            invalid(format!(
                "since {n} is not a time in milliseconds (as now() gives)"
            ))
        })?)),
        Some(Value::String(s)) => Some(Since::Ago(
            crate::cases::duration_ms(s).map_err(|e| invalid(format!("since: {e}")))?,
        )),
        Some(other) => {
            return Err(invalid(format!(
                "since must be a time in milliseconds or a duration such as \"24h\", not {other}"
            )));
        }
    })
}

impl Since {
    /// The time it names, at `now`.
    pub fn at(self, now: i64) -> i64 {
        match self {
            Since::At(ms) => ms,
            Since::Ago(ms) => now.saturating_sub(ms),
        }
    }
}

impl IncidentQuery {
    /// Read a script's search map; the error says which key was wrong and what it takes.
    pub fn read(args: &Map<String, Value>) -> Result<IncidentQuery, ActError> {
        let mut args = args.clone();
        // The run's incident, which the journal adds to every act's arguments.
        args.remove("incident");
        let given: Given = crate::cases::parse(ACTION, &Value::Object(args))?;
        let severity = match &given.severity {
            Some(s) => Some(
                crate::cases::severity(s)
                    .map_err(|e| invalid(e.to_string()))?
                    .as_str(),
            ),
            None => None,
        };
        let status = match given.status.as_deref().map(str::trim) {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("open") => Some(StatusQuery::Open),
            Some(s) => Some(StatusQuery::Is(
                STATUS_NAMES
                    .into_iter()
                    .find(|n| n.eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        invalid(format!(
                            "'{}' is not a status (open, {})",
                            super::api::quoted(s),
                            STATUS_NAMES.join(", ")
                        ))
                    })?,
            )),
        };
        let since = read_since(ACTION, given.since.as_ref())?;
        let limit = match given.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            Some(n) => return Err(invalid(format!("limit {n}: ask for 1 to {MAX_LIMIT} incidents"))),
        };
        Ok(IncidentQuery {
            severity,
            status,
            kind: given.kind,
            owner: given.owner,
            since,
            limit,
        })
    }

    /// The earliest creation time searched, at `now`.
    pub fn since_ms(&self, now: i64) -> Option<i64> {
        self.since.map(|s| s.at(now))
    }

    /// Whether an incident (as JSON, as the store gives it: `severity`, `status`, `type`,
    /// `owner`, `created_at`) is one this search finds at `now`.
    pub fn matches(&self, incident: &Value, now: i64) -> bool {
        let text = |key: &str| incident.get(key).and_then(Value::as_str);
        let status = text("status");
        self.severity.is_none_or(|s| text("severity") == Some(s))
            && self.kind.as_deref().is_none_or(|k| text("type") == Some(k))
            && self.owner.as_deref().is_none_or(|o| text("owner") == Some(o))
            && match self.status {
                None => true,
                Some(StatusQuery::Open) => status != Some("closed"),
                Some(StatusQuery::Is(s)) => status == Some(s),
            }
            && self.since_ms(now).is_none_or(|since| {
                incident
                    .get("created_at")
                    .and_then(Value::as_i64)
                    .is_some_and(|at| at >= since)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<IncidentQuery, String> {
        IncidentQuery::read(v.as_object().unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_search_reads_with_its_defaults() {
        let q = read(json!({})).unwrap();
        assert_eq!(
            q,
            IncidentQuery {
                severity: None,
                status: None,
                kind: None,
                owner: None,
                since: None,
                limit: DEFAULT_LIMIT
            }
        );
        let q = read(
            json!({"severity": "Crit", "status": "OPEN", "type": "ransomware", "owner": "bob",
            "since": "24h", "limit": 500, "incident": "i1"}),
        )
        .unwrap();
        assert_eq!(q.severity, Some("critical"));
        assert_eq!(q.status, Some(StatusQuery::Open));
        assert_eq!(q.since, Some(Since::Ago(86_400_000)));
        assert_eq!(q.since_ms(100_000_000), Some(13_600_000));
        assert_eq!(q.limit, 500);
        let q = read(json!({"status": "pending", "since": 1_700_000_000_000i64})).unwrap();
        assert_eq!(q.status, Some(StatusQuery::Is("pending")));
        assert_eq!(q.since_ms(5), Some(1_700_000_000_000));
    }

    #[test]
    fn wrong_words_and_limits_say_what_is_expected() {
        for (given, says) in [
            (
                json!({"severity": "huge"}),
                "'huge' is not a severity (info, low, medium, high, critical)",
            ),
            (
                json!({"status": "opne"}),
                "'opne' is not a status (open, new, active, pending, closed)",
            ),
            (json!({"limit": 0}), "limit 0: ask for 1 to 500 incidents"),
            (json!({"limit": 501}), "limit 501: ask for 1 to 500 incidents"),
            (json!({"since": "soon"}), "incidents: since:"),
            (json!({"since": -1}), "not a time in milliseconds"),
            (
                json!({"since": [1]}),
                "since must be a time in milliseconds or a duration",
            ),
            (json!({"sevrity": "high"}), "unknown field `sevrity`"),
        ] {
            let e = read(given.clone()).unwrap_err();
            assert!(e.contains(says), "{given}: {e}");
            assert!(e.starts_with("incidents"), "{e}");
        }
    }

    #[test]
    fn offline_matching_follows_the_filter() {
        let i = json!({"id": "i1", "severity": "critical", "status": "active", "type": "ransomware",
            "owner": "bob", "created_at": 1000});
        let closed = json!({"id": "i2", "severity": "critical", "status": "closed", "type": "ransomware",
            "created_at": 2000});
        let open = read(json!({"severity": "critical", "status": "open"})).unwrap();
        assert!(open.matches(&i, 0) && !open.matches(&closed, 0));
        assert!(read(json!({"status": "closed"})).unwrap().matches(&closed, 0));
        assert!(!read(json!({"severity": "high"})).unwrap().matches(&i, 0));
        assert!(!read(json!({"type": "phishing"})).unwrap().matches(&i, 0));
        assert!(!read(json!({"owner": "eve"})).unwrap().matches(&i, 0));
        let recent = read(json!({"since": "1s"})).unwrap();
        assert!(recent.matches(&closed, 2500) && !recent.matches(&i, 2500));
    }
}
