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
//! [[answer]]                              # answers the run's questions (ask/approve/form), in order
//! answer = "block now"                    # the option, true/false, or a map of a form's fields
//! by = "user:owner"                       # optional (default "user:tester"); comment = "..." too
//! # or: timeout = true                    # nobody answers: the question's on_timeout answer, or an error
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
//! ```
//!
//! Sleeps finish at once: the clock jumps to the wake-up time and the run is replayed from its
//! journal, exactly as a server would after the wait.

use super::Playbook;
use super::act::{Act, ActCall, ActError};
use super::engine::{self, Effects, JournalError, Outcome, PluginFailure, ScriptLimits, WaitError};
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
    pub expect: Expect,
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
    }
}

struct MockState {
    mocks: Vec<(Mock, u32)>,
    check: Option<CallCheck>,
    refused: Vec<String>,
    clock: i64,
    rng: u64,
    unanswered: Vec<String>,
    answers: Vec<CannedAnswer>,
    /// The questions asked so far, checked as a server checks them.
    asked: Vec<crate::humans::questions::Question>,
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

/// Canned plugin answers and a virtual clock, shared with the harness that drives the run.
struct MockEffects(Arc<Mutex<MockState>>);

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

    fn act(&mut self, call: &ActCall, _: &str, _: &str) -> Result<Value, ActError> {
        // Offline, changes to incidents and lists succeed and change nothing; the steps
        // taken (`expect.steps`) show them. No indicator is known. A question is checked
        // as a server would check it, and answered from the case's `[[answer]]`s.
        match &call.act {
            Act::IndicatorGet { .. } => Ok(Value::Null),
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
        check: check.cloned(),
        refused: Vec::new(),
        clock: start,
        rng: 0x9E37_79B9_7F4A_7C15,
        unanswered: Vec::new(),
        answers: case.answers.clone(),
        asked: Vec::new(),
    }));
    let mut effects: Box<dyn Effects> = Box::new(MockEffects(state.clone()));
    let limits = playbook.limits(limits);
    let mut journal = Vec::new();
    let mut outcome = Outcome::Waiting { wake_at: start };
    for _ in 0..10_000 {
        let (o, e, j) = engine::replay(&playbook.script, limits, &run, journal, effects);
        effects = e;
        journal = j;
        outcome = o;
        match &outcome {
            Outcome::Waiting { wake_at } if case.expect.status != ExpectedStatus::Waiting => {
                // Jump the virtual clock to the wake-up time and replay, as a server would.
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                st.clock = st.clock.max(*wake_at);
            }
            _ => break,
        }
    }
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
