//! `osprey playbook test`: run a playbook against canned plugin responses, with a virtual
//! clock, and check what it did. No vendor, server or database is needed.
//!
//! Each `tests/*.toml` in a playbook folder is one case:
//!
//! ```toml
//! description = "a known-bad IP is blocked"
//! input = { ip = "203.0.113.7" }
//! start = "2026-11-30T09:00:00Z"          # optional start of the virtual clock
//! requester = { name = "alice", email = "alice@example.com" }   # optional: a request form's
//!                                         # requester (also alert, incident, breach)
//!
//! [[mock]]
//! plugin = "ipinfo"
//! action = "lookup"
//! when = { ip = "203.0.113.7" }           # optional: the input must contain these
//! output = { country = "NL" }             # or: error = { kind = "unavailable", message = "down", retryable = true }
//! times = 1                               # optional: answers at most this many calls
//!
//! [[incidents]]                           # optional: the incidents `incidents(...)` finds (filtered
//! id = "i1"                               # by its search), as the server gives them
//! title = "Ransomware on fs-01"
//! severity = "critical"
//! status = "active"
//! type = "ransomware"
//! created_at = 1798761600000
//!
//! [state]                                 # optional: what the playbook kept from earlier
//! next-index = 2                          # runs, as `state_get(key)` reads it
//! [[alerts]]                              # optional: the alerts `alerts(...)` finds (filtered
//! id = "a1"                               # by its search and the virtual clock: one received
//! received_at = 1798761660000             # later than the search is not there yet)
//! data = { probe_id = "p-1" }
//!
//! [[answer]]                              # answers the run's questions (ask/approve/form), in order
//! answer = "block now"                    # the option, true/false, or a map of a form's fields
//! by = "user:owner"                       # optional (default "user:tester"); comment = "..." too
//! # or: timeout = true                    # nobody answers: the question's on_timeout answer, or an error
//!
//! [[playbook]]                            # answers `playbook("enrich", input)`, in the style of [[mock]]
//! name = "enrich"
//! when = { ip = "203.0.113.7" }           # optional: the input must contain these
//! result = { verdict = "bad" }            # or: error = "enrich failed" (status = "failed" |
//!                                         # "cancelled" | "dead", default "failed")
//!                                         # or: run = true: the child playbook (a sibling
//!                                         # folder) runs offline with this case's [[mock]]s
//!                                         # and [[answer]]s
//! times = 1                               # optional: answers at most this many starts
//!
//! [[past_run]]                           # answers `past_runs(query)`: this playbook's earlier
//! finished = "2026-11-02T10:00:00Z"      # completed runs, newest first (the query's match
//! requester = "bob"                       # and limit apply); run, requester, input optional
//! output = { domain = "example.com", approved = false }
//!
//! [expect]
//! status = "completed"                    # completed | failed | waiting
//! output = { verdict = "bad" }            # optional: these keys of the result
//! error = "rate-limited"                  # optional: part of the failure message
//! steps = ["invoke ipinfo.lookup", "sleep", "log"]   # optional: every step, in order
//!
//! [[expect.act]]                          # optional: a call that changes something was made
//! action = "list_add"                     # with at least these arguments
//! args = { list = "blocked-ips", value = "203.0.113.7" }
//!
//! [[expect.record]]                       # optional: a chart point was recorded (`record`)
//! series = "gifts"                        # in this series, with at least these fields
//! point = { to = "ann", points = 10 }
//!
//! [expect.state]                          # optional: what the playbook keeps at the end
//! next-index = 5                          # (`state_set`), these keys with these values
//! ```
//!
//! The points a run records are in its report ([`CaseReport::records`]), each with the
//! virtual clock's time.
//!
//! Sleeps finish at once: the clock jumps to the wake-up time and the run is replayed from its
//! journal, exactly as a server would after the wait.

use super::Playbook;
use super::act::{Act, ActCall, ActError};
use super::engine::{
    self, Effects, JournalError, Outcome, PluginFailure, ScriptLimits, StartError, WaitError,
};
use super::journal::{RunContext, Step, StepKind};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One test case, from a `tests/*.toml` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub input: serde_json::Map<String, Value>,
    /// RFC 3339 start time of the virtual clock.
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default, rename = "mock")]
    pub mocks: Vec<Mock>,
    /// Canned answers to the run's questions, in the order they are asked.
    #[serde(default, rename = "answer")]
    pub answers: Vec<CannedAnswer>,
    /// The alert the run starts for (`alert` in the script), as pre-processing passes it.
    #[serde(default)]
    pub alert: Option<Value>,
    /// The incident the run starts for (`incident` in the script); give it an `id`.
    #[serde(default)]
    pub incident: Option<Value>,
    /// The SLA breach the run starts for (`breach` in the script).
    #[serde(default)]
    pub breach: Option<Value>,
    /// Who made the request, for a request form (`requester` in the script): `{ name, email }`.
    #[serde(default)]
    pub requester: Option<Value>,
    /// Canned results of the child playbooks the run starts (`playbook(name, input)`).
    #[serde(default, rename = "playbook")]
    pub playbooks: Vec<CannedPlaybook>,
    /// The incidents the server would have: what `incidents(...)` searches, offline.
    #[serde(default)]
    pub incidents: Vec<Value>,
    /// The playbook's earlier completed runs, newest first, that `past_runs` looks at.
    #[serde(default, rename = "past_run")]
    pub past_runs: Vec<CannedPastRun>,
    /// What the playbook kept from its earlier runs: what `state_get(key)` reads.
    #[serde(default)]
    pub state: serde_json::Map<String, Value>,
    /// The alerts the server would have received (`received_at` on the virtual clock, the
    /// sender's fields in `data`): what `alerts(...)` searches, offline.
    #[serde(default)]
    pub alerts: Vec<Value>,
    pub expect: Expect,
}

/// An earlier completed run of the playbook, for `past_runs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedPastRun {
    #[serde(default)]
    pub run: Option<String>,
    /// The name behind a request form's run (its origin is `request:NAME`).
    #[serde(default)]
    pub requester: Option<String>,
    /// RFC 3339: when it finished.
    pub finished: String,
    #[serde(default)]
    pub input: Value,
    pub output: Value,
}

/// A canned child playbook: its result, its failure, or the child itself run offline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedPlaybook {
    pub name: String,
    #[serde(default)]
    pub when: Option<serde_json::Map<String, Value>>,
    /// What the child returns.
    #[serde(default)]
    pub result: Option<Value>,
    /// The child's error: the parent gets a catchable error.
    #[serde(default)]
    pub error: Option<String>,
    /// How the failed child ended (`failed`, `cancelled`, `dead`); `failed` if not given.
    #[serde(default)]
    pub status: Option<ChildEnd>,
    /// Run the child playbook (the folder next to this one) with the case's mocks and answers.
    #[serde(default)]
    pub run: bool,
    #[serde(default)]
    pub times: Option<u32>,
}

/// How a canned child that did not complete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildEnd {
    Failed,
    Cancelled,
    Dead,
}

impl CannedPlaybook {
    /// What is wrong with this entry, if anything: exactly one of result, error and run.
    fn problem(&self) -> Option<String> {
        let given = [self.result.is_some(), self.error.is_some(), self.run];
        if given.iter().filter(|g| **g).count() > 1 {
            return Some(format!(
                "[[playbook]] '{}' may give only one of result, error and run",
                self.name
            ));
        }
        (self.status.is_some() && self.error.is_none()).then(|| {
            format!(
                "[[playbook]] '{}' has a status but no error (status says how a failed child ended)",
                self.name
            )
        })
    }
}

/// A canned answer to a plugin call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mock {
    pub plugin: String,
    pub action: String,
    #[serde(default)]
    pub when: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<PluginFailure>,
    #[serde(default)]
    pub times: Option<u32>,
}

impl Mock {
    /// Whether this mock answers `plugin.action(input)` after answering `used` calls: the
    /// same plugin and action, `when`'s keys equal in the input, and `times` not used up.
    pub fn answers(&self, plugin: &str, action: &str, input: &Value, used: u32) -> bool {
        self.plugin == plugin
            && self.action == action
            && self.times.is_none_or(|t| used < t)
            && self
                .when
                .as_ref()
                .is_none_or(|w| w.iter().all(|(k, v)| input.get(k) == Some(v)))
    }

    /// Its canned answer: the error, else the output, else `{}`.
    pub fn answer(&self) -> Result<Value, PluginFailure> {
        match (&self.output, &self.error) {
            (_, Some(e)) => Err(e.clone()),
            (Some(o), None) => Ok(o.clone()),
            (None, None) => Ok(Value::Object(Default::default())),
        }
    }

    /// Why this mock cannot answer anything as written.
    pub fn problem(&self) -> Option<String> {
        (self.output.is_some() && self.error.is_some())
            .then(|| format!("mock {}.{} has both output and error", self.plugin, self.action))
    }
}

/// The answer of the first of `mocks` (each with the calls it answered) that answers
/// `plugin.action(input)`, counted as used; `None` if none does.
pub fn take_answer(
    mocks: &mut [(Mock, u32)],
    plugin: &str,
    action: &str,
    input: &Value,
) -> Option<Result<Value, PluginFailure>> {
    let (mock, used) = mocks
        .iter_mut()
        .find(|(m, used)| m.answers(plugin, action, input, *used))?;
    *used += 1;
    Some(mock.answer())
}

/// A file of `[[mock]]` tables alone, as in a test case: the cases of a plugin in mock mode
/// (`osprey plugin mock NAME --cases FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockCases {
    #[serde(default, rename = "mock")]
    pub mocks: Vec<Mock>,
}

/// A canned answer to a question (`ask`, `approve`, `form`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedAnswer {
    #[serde(default)]
    pub answer: Option<Value>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
    /// Nobody answers in time.
    #[serde(default)]
    pub timeout: bool,
}

/// What the run must have done.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub status: ExpectedStatus,
    #[serde(default)]
    pub output: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub steps: Option<Vec<String>>,
    /// `[[expect.act]]`: calls that change what Osprey keeps (`list_add`, `incident_set`,
    /// `send_email`, ...) the run must have made, each `{ action, args }` with at least
    /// these arguments.
    #[serde(default, rename = "act")]
    pub acts: Vec<Value>,
    /// `[[expect.record]]`: points the run must have recorded, each `{ series, point }` with
    /// at least these fields.
    #[serde(default, rename = "record")]
    pub records: Vec<Value>,
    /// `[expect.state]`: what the playbook keeps at the end (`state_set`), key by key.
    #[serde(default)]
    pub state: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedStatus {
    Completed,
    Failed,
    Waiting,
}

/// A check of each plugin call a case makes, before its mock answers: an `Err` fails the
/// call as the real host would (an upgrade's check runs the cases against the contract of the
/// version it would install: unknown actions and inputs its schemas reject are refused).
/// Given `(plugin, action, input)`.
pub type CallCheck = std::sync::Arc<dyn Fn(&str, &str, &Value) -> Result<(), PluginFailure> + Send + Sync>;

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseReport {
    pub file: PathBuf,
    pub description: String,
    /// Empty when the case passed.
    pub problems: Vec<String>,
    /// The calls the [`CallCheck`] refused, each `plugin.action input: why`.
    pub refused: Vec<String>,
    /// The steps the run took, labelled (`invoke ipinfo.lookup`, `sleep`, ...).
    pub steps: Vec<String>,
    /// The chart points the run recorded, in order: `{ series, point, at }`.
    pub records: Vec<Value>,
}

impl CaseReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The label of a step, as `expect.steps` lists them.
pub fn step_label(step: &Step) -> String {
    match step.kind {
        StepKind::Invoke => format!(
            "invoke {}.{}",
            step.request["plugin"].as_str().unwrap_or("?"),
            step.request["action"].as_str().unwrap_or("?")
        ),
        StepKind::Act if step.request["action"] == "question_ask" => {
            step.request["args"]["kind"].as_str().unwrap_or("?").to_owned()
        }
        StepKind::Act => step.request["action"].as_str().unwrap_or("?").to_owned(),
        StepKind::Question => "answer".to_owned(),
        StepKind::Playbook if step.request.get("input").is_some() => {
            format!("playbook {}", step.request["playbook"].as_str().unwrap_or("?"))
        }
        StepKind::Playbook => format!("wait {}", step.request["playbook"].as_str().unwrap_or("?")),
        kind => kind.as_str().to_owned(),
    }
}

/// The case files of a playbook, sorted.
pub fn case_files(playbook: &Playbook) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(playbook.dir.join("tests"))
        .map(|e| {
            e.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Run every case of a playbook.
pub fn run_all(playbook: &Playbook, limits: &super::RunLimits) -> Vec<CaseReport> {
    run_all_checked(playbook, limits, None)
}

/// Run every case of a playbook, each plugin call first passed to `check` if given.
pub fn run_all_checked(
    playbook: &Playbook,
    limits: &super::RunLimits,
    check: Option<&CallCheck>,
) -> Vec<CaseReport> {
    case_files(playbook)
        .iter()
        .map(|f| run_file(playbook, f, limits, check))
        .collect()
}

/// Run one case file.
pub fn run_file(
    playbook: &Playbook,
    file: &Path,
    limits: &super::RunLimits,
    check: Option<&CallCheck>,
) -> CaseReport {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return broken(file, format!("cannot read: {e}")),
    };
    let case: Case = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            let line = e
                .span()
                .map(|s| super::meta::line_of(&text, s.start))
                .unwrap_or(0);
            return broken(file, format!("line {line}: {}", e.message()));
        }
    };
    run_case(playbook, file, &case, limits, check)
}

fn broken(file: &Path, problem: String) -> CaseReport {
    CaseReport {
        file: file.to_owned(),
        description: String::new(),
        problems: vec![problem],
        refused: Vec::new(),
        steps: Vec::new(),
        records: Vec::new(),
    }
}

struct MockState {
    mocks: Vec<(Mock, u32)>,
    /// The canned children and how often each answered.
    playbooks: Vec<(CannedPlaybook, u32)>,
    /// The ends of the children started so far (`child-N` is the N-th).
    children: Vec<Value>,
    /// Where sibling playbooks are (a `run = true` child), and the limits they run with.
    playbooks_dir: PathBuf,
    limits: super::RunLimits,
    check: Option<CallCheck>,
    refused: Vec<String>,
    clock: i64,
    rng: u64,
    unanswered: Vec<String>,
    answers: Vec<CannedAnswer>,
    /// The questions asked so far, checked as a server checks them.
    asked: Vec<crate::humans::questions::Question>,
    /// The chart points recorded so far: `{ series, point, at }`.
    records: Vec<Value>,
    /// The case's incidents, for `incidents(...)`.
    incidents: Vec<Value>,
    /// The earlier runs `past_runs` answers from: (id, origin, input, output, finished at).
    past: Vec<(String, String, Value, Value, i64)>,
    /// What each playbook keeps (`state_get`, `state_set`), by the run id it runs as here
    /// (one per playbook: `test-run` and `test-run-NAME` for a child).
    kept: std::collections::BTreeMap<String, serde_json::Map<String, Value>>,
    /// The case's alerts, for `alerts(...)`.
    alerts: Vec<Value>,
}

/// Why a question of a test case has no answer.
#[derive(Debug, thiserror::Error)]
enum CannedAnswerError {
    #[error("no question {0}")]
    NoQuestion(String),
    #[error("question {0} has no canned answer; add an [[answer]] to the test")]
    NoAnswer(usize),
    #[error("the canned answer to question {n} is not a valid answer: {why}")]
    Invalid { n: usize, why: String },
}

/// Canned plugin answers and a virtual clock, shared with the harness that drives the run
/// (and with the children it runs offline), and how deep this run is.
struct MockEffects(Arc<Mutex<MockState>>, u32);

impl MockEffects {
    /// Start child `name`: its canned end, or the child itself run offline to its end.
    fn child_end(&mut self, name: &str, input: &Value) -> Result<Value, StartError> {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let found = st.playbooks.iter_mut().find(|(p, used)| {
            p.name == name
                && p.times.is_none_or(|t| *used < t)
                && p.when
                    .as_ref()
                    .is_none_or(|w| w.iter().all(|(k, v)| input.get(k) == Some(v)))
        });
        let Some((canned, used)) = found else {
            let what = format!("playbook {name} {input}");
            st.unanswered.push(what.clone());
            return Err(StartError::Invalid(format!(
                "no canned result for {what}; add a [[playbook]] to the test"
            )));
        };
        *used += 1;
        let canned = canned.clone();
        if let Some(error) = &canned.error {
            let status = match canned.status.unwrap_or(ChildEnd::Failed) {
                ChildEnd::Failed => "failed",
                ChildEnd::Cancelled => "cancelled",
                ChildEnd::Dead => "dead",
            };
            return Ok(serde_json::json!({ "status": status, "output": null, "error": error }));
        }
        if !canned.run {
            let output = canned.result.clone().unwrap_or(Value::Null);
            return Ok(serde_json::json!({ "status": "completed", "output": output, "error": null }));
        }
        let dir = st.playbooks_dir.join(name);
        let limits = st.limits;
        drop(st);
        let child = Playbook::load(&dir)
            .map_err(|e| StartError::Unknown(format!("no playbook '{name}' next to this one: {e}")))?;
        if child.name() != name {
            return Err(StartError::Unknown(format!(
                "the folder {} holds playbook '{}', not '{name}'",
                dir.display(),
                child.name()
            )));
        }
        let input = child
            .meta
            .resolve_input(&input.as_object().cloned().unwrap_or_default())
            .map_err(|e| StartError::Invalid(format!("input of playbook '{name}': {e}")))?;
        let run = RunContext {
            run_id: format!("test-run-{name}"),
            playbook: name.to_owned(),
            input,
            plugins: child.meta.plugins.clone(),
            ..RunContext::default()
        };
        let effects = Box::new(MockEffects(self.0.clone(), self.1 + 1));
        let (outcome, _, _) = drive(&child, &run, &limits, effects, &self.0, false);
        Ok(match outcome {
            Outcome::Completed(v) => serde_json::json!({ "status": "completed", "output": v, "error": null }),
            Outcome::Failed(f) => {
                serde_json::json!({ "status": "failed", "output": null, "error": f.message })
            }
            Outcome::Waiting { .. } | Outcome::Interrupted => {
                serde_json::json!({ "status": "failed", "output": null, "error": "the child did not end" })
            }
        })
    }
}

/// Replay `playbook` until it ends, jumping the virtual clock over its waits (unless
/// `keep_waiting`, which returns the first wait), as a server would.
fn drive(
    playbook: &Playbook,
    run: &RunContext,
    limits: &super::RunLimits,
    mut effects: Box<dyn Effects>,
    state: &Arc<Mutex<MockState>>,
    keep_waiting: bool,
) -> (Outcome, Box<dyn Effects>, Vec<Step>) {
    let limits = playbook.limits(limits);
    let mut journal = Vec::new();
    let mut outcome = Outcome::Waiting { wake_at: 0 };
    for _ in 0..10_000 {
        let (o, e, j) = engine::replay(&playbook.script, limits, run, journal, effects);
        effects = e;
        journal = j;
        outcome = o;
        match &outcome {
            Outcome::Waiting { wake_at } if !keep_waiting => {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                st.clock = st.clock.max(*wake_at);
            }
            _ => break,
        }
    }
    (outcome, effects, journal)
}

impl Effects for MockEffects {
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        input: &Value,
        _: &str,
        _: &str,
    ) -> Result<Value, PluginFailure> {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(check) = &st.check
            && let Err(refused) = check(plugin, action, input)
        {
            st.refused
                .push(format!("{plugin}.{action} {input}: {}", refused.message));
            return Err(refused);
        }
        match take_answer(&mut st.mocks, plugin, action, input) {
            Some(answer) => answer,
            None => {
                let what = format!("{plugin}.{action} {input}");
                st.unanswered.push(what.clone());
                Err(PluginFailure {
                    kind: "internal".into(),
                    message: format!("no canned response for {what}; add a [[mock]] to the test"),
                    retryable: false,
                    retry_after_ms: None,
                })
            }
        }
    }

    fn record(&mut self, _: &str, _: &Step) -> Result<(), JournalError> {
        Ok(())
    }

    fn now_ms(&mut self) -> i64 {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clock
    }

    fn act(&mut self, call: &ActCall, run_id: &str, key: &str) -> Result<Value, ActError> {
        // Offline, changes to incidents and lists succeed and change nothing; the steps
        // taken (`expect.steps`) show them; a new incident's id is `test-incident-STEP`. No
        // indicator is known. A question is checked as a server would check it, and
        // answered from the case's `[[answer]]`s.
        match &call.act {
            Act::IndicatorGet { .. } => Ok(Value::Null),
            Act::IncidentSearch(filter) => {
                let query = super::search::IncidentQuery::read(filter)?;
                let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let mut found: Vec<Value> = st
                    .incidents
                    .iter()
                    .filter(|i| query.matches(i, st.clock))
                    .cloned()
                    .collect();
                // The newest first, as the server answers.
                found.sort_by_key(|i| std::cmp::Reverse(i["created_at"].as_i64()));
                found.truncate(query.limit as usize);
                Ok(Value::Array(found))
            }
            Act::AlertSearch(filter) => {
                let query = super::alert_search::AlertQuery::read(filter)?;
                let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let mut found: Vec<Value> = st
                    .alerts
                    .iter()
                    .filter(|a| query.matches(a, st.clock))
                    .cloned()
                    .collect();
                // The newest first, as the server answers.
                found.sort_by_key(|a| std::cmp::Reverse(a["received_at"].as_i64()));
                found.truncate(query.limit as usize);
                Ok(Value::Array(found))
            }
            Act::SendEmail(spec) => {
                // Attachments are checked as the server checks them (count, size, names).
                if let Some(given) = spec.get("attachments") {
                    let specs = crate::cases::parse("send_email: attachments", given)?;
                    crate::mail::attachment::check(specs).map_err(|e| ActError::Invalid {
                        action: "send_email",
                        message: e.to_string(),
                    })?;
                }
                Ok(call.args())
            }
            Act::IncidentCreate(_) | Act::IncidentSpawn(_) => {
                let step = key.rsplit(':').next().unwrap_or(key);
                Ok(Value::from(format!("test-incident-{step}")))
            }
            Act::PastRuns(given) => {
                use super::past_runs::{Past, Query};
                let query = Query::read(given).map_err(|e| ActError::Invalid {
                    action: call.act.name(),
                    message: e.to_string(),
                })?;
                let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let runs = st.past.iter().map(|(id, origin, input, output, at)| Past {
                    id,
                    origin,
                    input,
                    output,
                    finished_at: Some(*at),
                });
                Ok(Value::Array(query.select(runs)))
            }
            Act::ListAdd { options, .. } => {
                // What the store answers, `#{ value, expires_at, new }`, over the arguments.
                let mut out = call.args().as_object().cloned().unwrap_or_default();
                let expires_at = match Act::list_ttl(options) {
                    Some(t) => {
                        let ttl = crate::duration::parse(t).map_err(|source| ActError::Ttl {
                            action: call.act.name(),
                            source,
                        })?;
                        let clock = self.0.lock().unwrap_or_else(|p| p.into_inner()).clock;
                        Value::from(clock + ttl.as_millis() as i64)
                    }
                    None => Value::Null,
                };
                out.insert("expires_at".into(), expires_at);
                out.insert("new".into(), true.into());
                Ok(Value::Object(out))
            }
            Act::StateGet { key } => {
                let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let kept = st.kept.get(run_id).and_then(|k| k.get(key));
                Ok(kept.cloned().unwrap_or(Value::Null))
            }
            Act::StateSet { key, value } => {
                let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let kept = st.kept.entry(run_id.to_owned()).or_default();
                if value.is_null() {
                    kept.remove(key);
                } else if !kept.contains_key(key) && kept.len() >= super::keep::MAX_KEYS {
                    return Err(ActError::Invalid {
                        action: "state_set",
                        message: format!(
                            "the playbook already keeps {} keys, the most a playbook may",
                            kept.len()
                        ),
                    });
                } else {
                    kept.insert(key.clone(), value.clone());
                }
                Ok(Value::Null)
            }
            Act::Record { series, point } => {
                let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                let at = st.clock;
                st.records
                    .push(serde_json::json!({ "series": series, "point": point, "at": at }));
                Ok(Value::Null)
            }
            Act::QuestionAsk { kind, spec } => {
                let spec: crate::humans::questions::Spec = crate::cases::parse(kind.as_str(), spec)?;
                let checked = spec.check(*kind).map_err(|e| ActError::Invalid {
                    action: kind.as_str(),
                    message: e.to_string(),
                })?;
                let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
                st.asked.push(checked.question);
                Ok(serde_json::json!({ "id": format!("q{}", st.asked.len()) }))
            }
            _ => Ok(call.args()),
        }
    }

    fn question_wait(&mut self, id: &str) -> Result<engine::QuestionWait, WaitError> {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let failed = |e: CannedAnswerError| WaitError::Failed(Box::new(e));
        let n: usize = id
            .trim_start_matches('q')
            .parse()
            .map_err(|_| failed(CannedAnswerError::NoQuestion(id.to_owned())))?;
        let question = n
            .checked_sub(1)
            .and_then(|i| st.asked.get(i))
            .cloned()
            .ok_or_else(|| failed(CannedAnswerError::NoQuestion(id.to_owned())))?;
        if st.answers.is_empty() {
            return Err(failed(CannedAnswerError::NoAnswer(n)));
        }
        let canned = st.answers.remove(0);
        let at = st.clock;
        let (status, answer, by) = if canned.timeout {
            let default = question.default.clone().unwrap_or(Value::Null);
            ("timed_out", default, "timeout".to_owned())
        } else {
            let given = serde_json::json!({
                "value": canned.answer.clone().unwrap_or(Value::Null),
                "comment": canned.comment.clone().unwrap_or_default(),
            });
            let checked = question.check_answer(&given).map_err(|e| {
                failed(CannedAnswerError::Invalid {
                    n,
                    why: crate::humans::questions::describe(&e),
                })
            })?;
            (
                "answered",
                checked,
                canned.by.clone().unwrap_or_else(|| "user:tester".into()),
            )
        };
        Ok(engine::QuestionWait::Done(serde_json::json!({
            "question": id, "answer": answer["value"], "comment": answer["comment"].as_str().unwrap_or(""),
            "by": by, "at": at, "via": if status == "timed_out" { "timeout" } else { "test" },
            "timed_out": status == "timed_out", "status": status,
        })))
    }

    fn start_playbook(&mut self, name: &str, input: &Value, _: &str, _: u32) -> Result<String, StartError> {
        if self.1 >= super::limits::MAX_PLAYBOOK_DEPTH {
            return Err(StartError::TooDeep {
                playbook: name.to_owned(),
                depth: self.1,
                max: super::limits::MAX_PLAYBOOK_DEPTH,
            });
        }
        let end = self.child_end(name, input)?;
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let id = format!("child-{}", st.children.len() + 1);
        let mut end = end;
        end["run"] = id.clone().into();
        end["playbook"] = name.into();
        st.children.push(end);
        Ok(id)
    }

    fn playbook_wait(&mut self, run: &str) -> Result<engine::QuestionWait, WaitError> {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let end = run
            .strip_prefix("child-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| st.children.get(n.checked_sub(1)?));
        match end {
            Some(end) => Ok(engine::QuestionWait::Done(end.clone())),
            None => Err(WaitError::Failed(format!("no child run {run}").into())),
        }
    }

    fn random_u64(&mut self) -> u64 {
        // xorshift64*: deterministic, so test runs are repeatable.
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        st.rng ^= st.rng >> 12;
        st.rng ^= st.rng << 25;
        st.rng ^= st.rng >> 27;
        st.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Run one case, each plugin call first passed to `check` if given.
pub fn run_case(
    playbook: &Playbook,
    file: &Path,
    case: &Case,
    limits: &super::RunLimits,
    check: Option<&CallCheck>,
) -> CaseReport {
    let mut problems = Vec::new();
    let start = match &case.start {
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.timestamp_millis(),
            Err(e) => return broken(file, format!("start '{s}': {e}")),
        },
        None => 1_798_761_600_000, // 2027-01-01T00:00:00Z
    };
    if let Some(problem) = case.playbooks.iter().find_map(CannedPlaybook::problem) {
        return broken(file, problem);
    }
    let mut past = Vec::new();
    for (n, p) in case.past_runs.iter().enumerate() {
        let finished = match chrono::DateTime::parse_from_rfc3339(&p.finished) {
            Ok(t) => t.timestamp_millis(),
            Err(e) => {
                return broken(
                    file,
                    format!("[[past_run]] {}: finished '{}': {e}", n + 1, p.finished),
                );
            }
        };
        let id = p.run.clone().unwrap_or_else(|| format!("past-{}", n + 1));
        let origin = p
            .requester
            .as_ref()
            .map_or_else(|| "cli".to_owned(), |r| format!("request:{r}"));
        past.push((id, origin, p.input.clone(), p.output.clone(), finished));
    }
    if let Some(problem) = case.mocks.iter().find_map(Mock::problem) {
        return broken(file, problem);
    }
    let input = match playbook.meta.resolve_input(&case.input) {
        Ok(i) => i,
        Err(e) => return broken(file, format!("input: {e}")),
    };
    let run = RunContext {
        run_id: "test-run".into(),
        playbook: playbook.name().to_owned(),
        input,
        alert: case.alert.clone().unwrap_or_default(),
        breach: case.breach.clone().unwrap_or_default(),
        incident: case.incident.clone().unwrap_or_default(),
        requester: case.requester.clone().unwrap_or_default(),
        plugins: playbook.meta.plugins.clone(),
        interrupt: Default::default(),
    };
    let state = Arc::new(Mutex::new(MockState {
        mocks: case.mocks.iter().map(|m| (m.clone(), 0)).collect(),
        playbooks: case.playbooks.iter().map(|p| (p.clone(), 0)).collect(),
        children: Vec::new(),
        playbooks_dir: playbook.dir.parent().map(Path::to_owned).unwrap_or_default(),
        limits: *limits,
        check: check.cloned(),
        refused: Vec::new(),
        clock: start,
        rng: 0x9E37_79B9_7F4A_7C15,
        unanswered: Vec::new(),
        answers: case.answers.clone(),
        asked: Vec::new(),
        records: Vec::new(),
        incidents: case.incidents.clone(),
        past,
        kept: [(run.run_id.clone(), case.state.clone())].into(),
        alerts: case.alerts.clone(),
    }));
    let effects: Box<dyn Effects> = Box::new(MockEffects(state.clone(), 0));
    let keep_waiting = case.expect.status == ExpectedStatus::Waiting;
    let (outcome, effects, journal) = drive(playbook, &run, limits, effects, &state, keep_waiting);
    let labels: Vec<String> = journal.iter().map(step_label).collect();
    let (status, output, error) = match &outcome {
        Outcome::Completed(v) => (ExpectedStatus::Completed, Some(v.clone()), None),
        Outcome::Waiting { .. } => (ExpectedStatus::Waiting, None, None),
        Outcome::Failed(f) => (ExpectedStatus::Failed, None, Some(f.message.clone())),
        Outcome::Interrupted => (ExpectedStatus::Failed, None, Some("interrupted".into())),
    };
    if status != case.expect.status {
        problems.push(format!(
            "expected the run to end {:?}, it ended {status:?}{}",
            case.expect.status,
            error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    if let Some(want) = &case.expect.output {
        match &output {
            Some(got) if contains(got, want) => {}
            Some(got) => problems.push(format!("expected output containing {want}, got {got}")),
            None => problems.push(format!(
                "expected output containing {want}, but the run did not complete"
            )),
        }
    }
    if let Some(want) = &case.expect.error {
        match &error {
            Some(got) if got.contains(want.as_str()) => {}
            Some(got) => problems.push(format!("expected an error containing '{want}', got: {got}")),
            None => problems.push(format!(
                "expected an error containing '{want}', but the run did not fail"
            )),
        }
    }
    if let Some(want) = &case.expect.steps
        && *want != labels
    {
        problems.push(format!("expected steps {want:?}, took {labels:?}"));
    }
    for want in &case.expect.acts {
        let acts: Vec<&Value> = journal
            .iter()
            .filter(|s| s.kind == StepKind::Act)
            .map(|s| &s.request)
            .collect();
        if !acts.iter().any(|got| contains(got, want)) {
            problems.push(format!(
                "expected a call containing {want}; the calls were: {}",
                if acts.is_empty() {
                    "none".to_owned()
                } else {
                    acts.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
                }
            ));
        }
    }
    drop(effects);
    let st = state.lock().unwrap_or_else(|p| p.into_inner());
    for want in &case.expect.records {
        if !st.records.iter().any(|got| contains(got, want)) {
            problems.push(format!(
                "expected a recorded point containing {want}; the points were: {}",
                if st.records.is_empty() {
                    "none".to_owned()
                } else {
                    st.records
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    }
    if let Some(want) = &case.expect.state {
        let kept = st.kept.get(&run.run_id).cloned().unwrap_or_default();
        for (key, value) in want {
            let got = kept.get(key).unwrap_or(&Value::Null);
            if got != value {
                problems.push(format!(
                    "expected the playbook to keep {key} = {value}, it keeps {got}"
                ));
            }
        }
    }
    for u in &st.unanswered {
        if case.expect.status != ExpectedStatus::Failed {
            problems.push(format!("no canned response for {u}"));
        }
    }
    // A refused call fails the case even when the case expects a failure: it depends on
    // something the checked contract does not offer.
    for r in &st.refused {
        problems.push(format!("refused: {r}"));
    }
    CaseReport {
        file: file.to_owned(),
        description: case.description.clone(),
        problems,
        refused: st.refused.clone(),
        steps: labels,
        records: st.records.clone(),
    }
}

/// Whether `got` contains everything in `want` (objects recursively; other values equal).
pub fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        _ => got == want,
    }
}

/// Effects for replaying a recorded run offline: every step must come from the journal.
struct Offline;

impl Effects for Offline {
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        _: &Value,
        _: &str,
        _: &str,
    ) -> Result<Value, PluginFailure> {
        Err(PluginFailure {
            kind: "internal".into(),
            message: format!("offline replay: {plugin}.{action} is past the end of the journal"),
            retryable: false,
            retry_after_ms: None,
        })
    }
    fn record(&mut self, _: &str, _: &Step) -> Result<(), JournalError> {
        Ok(())
    }
    fn now_ms(&mut self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
    fn random_u64(&mut self) -> u64 {
        0
    }
}

/// Replay a recorded run offline against `playbook`'s script: what the run would do now,
/// without calling any plugin. Steps past the end of the journal fail.
pub fn replay_recorded(
    playbook: &Playbook,
    run: &RunContext,
    journal: Vec<Step>,
    limits: ScriptLimits,
) -> Outcome {
    let mut ctx = run.clone();
    ctx.plugins = playbook.meta.plugins.clone();
    engine::replay(&playbook.script, limits, &ctx, journal, Box::new(Offline)).0
}
