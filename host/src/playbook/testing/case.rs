//! The format of a test case (`tests/*.toml`), read with serde: the case, its canned plugin
//! answers, children, earlier runs, answers to questions, and what it expects.

use super::super::engine::PluginFailure;
use serde::Deserialize;
use serde_json::Value;

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
    pub(super) fn problem(&self) -> Option<String> {
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
