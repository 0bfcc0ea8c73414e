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

mod case;
mod mock_effects;
mod recorded;

pub use case::*;
pub use recorded::replay_recorded;

use mock_effects::{MockEffects, MockState};

use super::Playbook;
use super::act::{Act, ActCall, ActError};
use super::engine::{
    self, Effects, JournalError, Outcome, PluginFailure, ScriptLimits, StartError, WaitError,
};
use super::journal::{RunContext, Step, StepKind};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
