//! The playbook functions that change what Osprey keeps (`incident_note`, `list_add`,
//! `ask`, ...): each is a journaled step of kind `act` whose request is
//! `{ "action": NAME, "args": { ... } }`. [`Act`] is that request, typed: the script
//! functions make one, the executor performs it (`runs/act.rs`), and `osprey playbook test`
//! fakes it (`testing/`).
//!
//! The stored JSON is the journal's format and must not change: a recorded step replays only
//! if the script asks for the same request. Maps a script passes (an incident's changes, a
//! task's spec, `list_add`'s options) are kept as given, unknown keys included.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A change a playbook asks for, as its `act` step's request names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "args", rename_all = "snake_case")]
pub enum Act {
    /// `incident_note(text)`: a note on the run's incident's timeline.
    IncidentNote { text: String },
    /// `incident_close(reason)`: close the run's incident.
    IncidentClose { reason: String },
    /// `incident_set(#{ title, severity, owner, role, status, fields })`: change the run's
    /// incident (as `cases::IncidentChanges` reads it).
    IncidentSet(Map<String, Value>),
    /// `incident_create(spec)`: a new top-level incident (`cases::IncidentSpec`).
    IncidentCreate(Map<String, Value>),
    /// `incident_spawn(spec)`: a child of the run's incident (`cases::IncidentSpec`).
    IncidentSpawn(Map<String, Value>),
    /// `incident_link(other)`: relate the run's incident to another.
    IncidentLink { other: String },
    /// `task_create(spec)`: a manual task (`cases::TaskSpec`).
    TaskCreate(Map<String, Value>),
    /// `list_add(list, value, #{ ttl, reason })`.
    ListAdd {
        list: String,
        value: String,
        /// The options as the script gave them (read with [`Act::list_ttl`] and
        /// [`Act::list_reason`]).
        #[serde(flatten)]
        options: Map<String, Value>,
    },
    /// `list_remove(list, value)`.
    ListRemove { list: String, value: String },
    /// `indicator(kind, value)`: what Osprey knows of an indicator (journaled: it changes
    /// between runs).
    IndicatorGet { kind: String, value: String },
    /// `indicator_set(kind, value, #{ verdict, score, source })`.
    IndicatorSet {
        kind: String,
        value: String,
        /// The verdict as the script gave it (read with [`Act::verdict`]).
        #[serde(flatten)]
        verdict: Map<String, Value>,
    },
    /// `notify(to, message)`: a notification on the incident's timeline and in the log.
    Notify { to: String, message: String },
    /// `ask`, `approve`, `form`: store the question (its answer is a later `question` step).
    QuestionAsk {
        kind: crate::humans::questions::Kind,
        spec: Value,
    },
    /// `send_email(#{ user | role | email, subject, text, talk_to_human, attachments })`.
    SendEmail(Map<String, Value>),
    /// `record(series, point)`: a data point for the playbook's charts (`chart.rs`).
    Record {
        series: String,
        point: Map<String, Value>,
    },
    /// `incidents(#{ severity, status, type, owner, since, limit })`: a search (journaled: it
    /// changes between runs), read by `search::IncidentQuery`.
    #[serde(rename = "incidents")]
    IncidentSearch(Map<String, Value>),
    /// `past_runs(#{ output, input, limit })`: this playbook's completed runs that match
    /// (`playbook/past_runs.rs`; journaled, as it changes between runs).
    PastRuns(Map<String, Value>),
    /// `state_get(key)`: what the playbook kept under `key` (`keep.rs`; journaled: it
    /// changes between runs).
    StateGet { key: String },
    /// `state_set(key, value)`: keep `value` under `key` for the playbook's next runs
    /// (`()` removes it).
    StateSet { key: String, value: Value },
    /// `alerts(#{ field, value, since, limit })`: a search of received alerts by a field
    /// (journaled: it changes between runs), read by `alert_search::AlertQuery`.
    #[serde(rename = "alerts")]
    AlertSearch(Map<String, Value>),
}

/// The arguments of `indicator_set`, read from what the script gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict<'a> {
    pub verdict: &'a str,
    pub score: Option<i64>,
    pub source: Option<&'a str>,
}

impl Act {
    /// The action's name, as the journal stores it.
    pub fn name(&self) -> &'static str {
        match self {
            Act::IncidentNote { .. } => "incident_note",
            Act::IncidentClose { .. } => "incident_close",
            Act::IncidentSet(_) => "incident_set",
            Act::IncidentCreate(_) => "incident_create",
            Act::IncidentSpawn(_) => "incident_spawn",
            Act::IncidentLink { .. } => "incident_link",
            Act::TaskCreate(_) => "task_create",
            Act::ListAdd { .. } => "list_add",
            Act::ListRemove { .. } => "list_remove",
            Act::IndicatorGet { .. } => "indicator_get",
            Act::IndicatorSet { .. } => "indicator_set",
            Act::Notify { .. } => "notify",
            Act::QuestionAsk { .. } => "question_ask",
            Act::SendEmail(_) => "send_email",
            Act::Record { .. } => "record",
            Act::IncidentSearch(_) => "incidents",
            Act::PastRuns(_) => "past_runs",
            Act::StateGet { .. } => "state_get",
            Act::StateSet { .. } => "state_set",
            Act::AlertSearch(_) => "alerts",
        }
    }

    /// Whether the action changes the run's own incident, so a run without one may not
    /// ask for it.
    pub fn needs_incident(&self) -> bool {
        matches!(
            self,
            Act::IncidentNote { .. }
                | Act::IncidentClose { .. }
                | Act::IncidentSet(_)
                | Act::IncidentSpawn(_)
                | Act::IncidentLink { .. }
        )
    }

    /// `list_add`'s `ttl` option, when it is text.
    pub fn list_ttl(options: &Map<String, Value>) -> Option<&str> {
        options.get("ttl").and_then(Value::as_str)
    }

    /// `list_add`'s `reason` option, when it is text.
    pub fn list_reason(options: &Map<String, Value>) -> Option<&str> {
        options.get("reason").and_then(Value::as_str)
    }

    /// `indicator_set`'s verdict, score and source: the verdict text, a whole score, a
    /// text source (score and source may be left out or `()`).
    pub fn verdict(verdict: &Map<String, Value>) -> Result<Verdict<'_>, ActError> {
        const ACTION: &str = "indicator_set";
        let text = |field: &'static str| {
            verdict
                .get(field)
                .and_then(Value::as_str)
                .ok_or(ActError::NotText {
                    action: ACTION,
                    field,
                })
        };
        let score = match verdict.get("score") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| ActError::Invalid {
                action: ACTION,
                message: format!("the score must be a whole number, not {v}"),
            })?),
        };
        let source = match verdict.get("source") {
            None | Some(Value::Null) => None,
            Some(_) => Some(text("source")?),
        };
        Ok(Verdict {
            verdict: text("verdict")?,
            score,
            source,
        })
    }
}

/// An `act` step's request: the action, and the incident it is for (the run's incident; or,
/// for a run without one, an `incident` a script's map named).
#[derive(Debug, Clone, PartialEq)]
pub struct ActCall {
    pub act: Act,
    pub incident: Option<String>,
}

impl ActCall {
    /// The step's request as the journal stores it: `{ "action", "args" }`, with the run's
    /// incident as `args.incident` when it has one.
    pub fn request(&self) -> Value {
        let mut request = serde_json::to_value(&self.act).expect("an act serialises");
        if let Some(id) = &self.incident
            && let Some(args) = request["args"].as_object_mut()
        {
            args.insert("incident".into(), id.clone().into());
        }
        request
    }

    /// Read a stored request back.
    pub fn from_request(request: &Value) -> Result<ActCall, serde_json::Error> {
        let mut request = request.clone();
        let incident = request["args"]
            .as_object_mut()
            .and_then(|args| args.remove("incident"))
            .and_then(|i| i.as_str().map(str::to_owned));
        Ok(ActCall {
            act: serde_json::from_value(request)?,
            incident,
        })
    }

    /// The arguments as the journal stores them (`incident` included).
    pub fn args(&self) -> Value {
        self.request()["args"].take()
    }

    /// The incident, or why the action cannot be taken without one.
    pub fn incident(&self) -> Result<&str, ActError> {
        self.incident.as_deref().ok_or(ActError::NoIncident {
            action: self.act.name(),
        })
    }
}

/// Why an action was not taken. The step records it as a catchable `invalid-input` error
/// whose message is this error's text.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// These effects do not perform the action (a test's, an offline replay's).
    #[error("{0} is not available here")]
    Unavailable(&'static str),
    #[error("{action}: this run has no incident")]
    NoIncident { action: &'static str },
    #[error("incident_spawn: this run has no incident to spawn from")]
    NoIncidentToSpawnFrom,
    #[error("{action}: '{field}' must be a string")]
    NotText {
        action: &'static str,
        field: &'static str,
    },
    #[error("{action}: ttl: {source}")]
    Ttl {
        action: &'static str,
        source: crate::duration::DurationError,
    },
    /// The arguments, or the change they ask for, are not right.
    #[error("{action}: {message}")]
    Invalid { action: &'static str, message: String },
    /// The store failed (not the action's fault): the message says how.
    #[error("{action}: the store failed: {source}")]
    Store {
        action: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A request that did not read; the message names the action already.
    #[error(transparent)]
    Request(#[from] crate::cases::CaseError),
    /// A request that read but was refused (a bad severity, type name or due time).
    #[error("{action}: {source}")]
    Case {
        action: &'static str,
        #[source]
        source: crate::cases::CaseError,
    },
    /// A question or a mail refused by `humans` (its error, which names the action; boxed, as
    /// the engine does not know the humans service).
    #[error(transparent)]
    Refused(Box<dyn std::error::Error + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Requests as journals store them today, one of every action: each reads as its act,
    /// and writes back the same JSON, so recorded steps keep replaying.
    #[test]
    fn todays_stored_requests_read_back_and_write_the_same() {
        let stored = [
            (
                json!({"action": "incident_note", "args": {"text": "seen", "incident": "i1"}}),
                Act::IncidentNote { text: "seen".into() },
            ),
            (
                json!({"action": "incident_close", "args": {"reason": "done", "incident": "i1"}}),
                Act::IncidentClose {
                    reason: "done".into(),
                },
            ),
            (
                json!({"action": "incident_set", "args": {"severity": "high", "fields": {"x": null}, "incident": "i1"}}),
                Act::IncidentSet(
                    json!({"severity": "high", "fields": {"x": null}})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
            (
                json!({"action": "incident_create", "args": {"title": "t", "type": "phishing"}}),
                Act::IncidentCreate(
                    json!({"title": "t", "type": "phishing"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
            (
                json!({"action": "incident_spawn", "args": {"title": "child", "incident": "i1"}}),
                Act::IncidentSpawn(json!({"title": "child"}).as_object().unwrap().clone()),
            ),
            (
                json!({"action": "incident_link", "args": {"other": "i2", "incident": "i1"}}),
                Act::IncidentLink { other: "i2".into() },
            ),
            (
                json!({"action": "task_create", "args": {"title": "call", "due": "4h", "incident": "i1"}}),
                Act::TaskCreate(json!({"title": "call", "due": "4h"}).as_object().unwrap().clone()),
            ),
            (
                json!({"action": "list_add", "args": {"list": "blocked", "value": "203.0.113.7", "ttl": "30d", "reason": "bad", "other": 1}}),
                Act::ListAdd {
                    list: "blocked".into(),
                    value: "203.0.113.7".into(),
                    options: json!({"ttl": "30d", "reason": "bad", "other": 1})
                        .as_object()
                        .unwrap()
                        .clone(),
                },
            ),
            (
                json!({"action": "list_add", "args": {"list": "blocked", "value": "x"}}),
                Act::ListAdd {
                    list: "blocked".into(),
                    value: "x".into(),
                    options: Map::new(),
                },
            ),
            (
                json!({"action": "list_remove", "args": {"list": "blocked", "value": "x", "incident": "i1"}}),
                Act::ListRemove {
                    list: "blocked".into(),
                    value: "x".into(),
                },
            ),
            (
                json!({"action": "indicator_get", "args": {"kind": "ip", "value": "1.2.3.4"}}),
                Act::IndicatorGet {
                    kind: "ip".into(),
                    value: "1.2.3.4".into(),
                },
            ),
            (
                json!({"action": "indicator_set", "args": {"kind": "ip", "value": "1.2.3.4", "verdict": "malicious", "score": 90, "source": "af"}}),
                Act::IndicatorSet {
                    kind: "ip".into(),
                    value: "1.2.3.4".into(),
                    verdict: json!({"verdict": "malicious", "score": 90, "source": "af"})
                        .as_object()
                        .unwrap()
                        .clone(),
                },
            ),
            (
                json!({"action": "notify", "args": {"to": "soc", "message": "hi", "incident": "i1"}}),
                Act::Notify {
                    to: "soc".into(),
                    message: "hi".into(),
                },
            ),
            (
                json!({"action": "question_ask", "args": {"kind": "approve", "spec": {"to": {"role": "analyst"}, "title": "ok?"}, "incident": "i1"}}),
                Act::QuestionAsk {
                    kind: crate::humans::questions::Kind::Approve,
                    spec: json!({"to": {"role": "analyst"}, "title": "ok?"}),
                },
            ),
            (
                json!({"action": "send_email", "args": {"email": "a@example.com", "subject": "s", "text": "t"}}),
                Act::SendEmail(
                    json!({"email": "a@example.com", "subject": "s", "text": "t"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
            (
                json!({"action": "record", "args": {"series": "gifts", "point": {"to": "ann", "points": 10}}}),
                Act::Record {
                    series: "gifts".into(),
                    point: json!({"to": "ann", "points": 10}).as_object().unwrap().clone(),
                },
            ),
            (
                json!({"action": "incidents", "args": {"severity": "critical", "status": "open", "incident": "i1"}}),
                Act::IncidentSearch(
                    json!({"severity": "critical", "status": "open"})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
            (
                json!({"action": "past_runs", "args": {"output": {"domain": "a.example"}, "limit": 5}}),
                Act::PastRuns(
                    json!({"output": {"domain": "a.example"}, "limit": 5})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
            (
                json!({"action": "alerts", "args": {"field": "probe_id", "value": "p-1", "since": 1000}}),
                Act::AlertSearch(
                    json!({"field": "probe_id", "value": "p-1", "since": 1000})
                        .as_object()
                        .unwrap()
                        .clone(),
                ),
            ),
            (
                json!({"action": "state_get", "args": {"key": "next-index"}}),
                Act::StateGet {
                    key: "next-index".into(),
                },
            ),
            (
                json!({"action": "state_set", "args": {"key": "next-index", "value": 3}}),
                Act::StateSet {
                    key: "next-index".into(),
                    value: json!(3),
                },
            ),
        ];
        let mut names = std::collections::BTreeSet::new();
        for (request, act) in stored {
            let call = ActCall::from_request(&request).unwrap_or_else(|e| panic!("{request}: {e}"));
            assert_eq!(call.act, act, "{request}");
            assert_eq!(call.act.name(), request["action"], "{request}");
            assert_eq!(call.incident.as_deref(), request["args"]["incident"].as_str());
            assert_eq!(call.request(), request, "written back the same");
            assert_eq!(call.args(), request["args"]);
            names.insert(call.act.name());
        }
        assert_eq!(names.len(), 20, "every action: {names:?}");
    }

    #[test]
    fn a_map_naming_an_incident_gives_it_to_a_run_without_one() {
        let request = json!({"action": "task_create", "args": {"title": "t", "incident": "i9"}});
        let call = ActCall::from_request(&request).unwrap();
        assert_eq!(call.incident.as_deref(), Some("i9"));
        assert_eq!(
            call.act,
            Act::TaskCreate(json!({"title": "t"}).as_object().unwrap().clone())
        );
        let not_text = json!({"action": "task_create", "args": {"title": "t", "incident": 5}});
        assert_eq!(ActCall::from_request(&not_text).unwrap().incident, None);
    }

    #[test]
    fn a_verdict_is_read_as_the_store_takes_it() {
        let m = |v: Value| v.as_object().unwrap().clone();
        let full = m(json!({"verdict": "benign", "score": 3, "source": "me"}));
        assert_eq!(
            Act::verdict(&full).unwrap(),
            Verdict {
                verdict: "benign",
                score: Some(3),
                source: Some("me")
            }
        );
        let bare = m(json!({"verdict": "benign", "score": null}));
        assert_eq!(Act::verdict(&bare).unwrap().score, None);
        let e = Act::verdict(&m(json!({"verdict": "benign", "score": 1.5}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "indicator_set: the score must be a whole number, not 1.5"
        );
        let e = Act::verdict(&m(json!({"score": 1}))).unwrap_err();
        assert_eq!(e.to_string(), "indicator_set: 'verdict' must be a string");
    }
}
