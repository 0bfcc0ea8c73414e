//! The effects a test case runs with: canned plugin answers, children and questions, and a
//! virtual clock, shared with the harness that drives the run.

use super::*;

pub(super) struct MockState {
    pub(super) mocks: Vec<(Mock, u32)>,
    /// The canned children and how often each answered.
    pub(super) playbooks: Vec<(CannedPlaybook, u32)>,
    /// The ends of the children started so far (`child-N` is the N-th).
    pub(super) children: Vec<Value>,
    /// Where sibling playbooks are (a `run = true` child), and the limits they run with.
    pub(super) playbooks_dir: PathBuf,
    pub(super) limits: super::super::RunLimits,
    pub(super) check: Option<CallCheck>,
    pub(super) refused: Vec<String>,
    pub(super) clock: i64,
    pub(super) rng: u64,
    pub(super) unanswered: Vec<String>,
    pub(super) answers: Vec<CannedAnswer>,
    /// The questions asked so far, checked as a server checks them.
    pub(super) asked: Vec<crate::humans::questions::Question>,
    /// The chart points recorded so far: `{ series, point, at }`.
    pub(super) records: Vec<Value>,
    /// The case's incidents, for `incidents(...)`.
    pub(super) incidents: Vec<Value>,
    /// The earlier runs `past_runs` answers from: (id, origin, input, output, finished at).
    pub(super) past: Vec<(String, String, Value, Value, i64)>,
    /// What each playbook keeps (`state_get`, `state_set`), by the run id it runs as here
    /// (one per playbook: `test-run` and `test-run-NAME` for a child).
    pub(super) kept: std::collections::BTreeMap<String, serde_json::Map<String, Value>>,
    /// The case's alerts, for `alerts(...)`.
    pub(super) alerts: Vec<Value>,
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
pub(super) struct MockEffects(pub(super) Arc<Mutex<MockState>>, pub(super) u32);

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
                let query = super::super::search::IncidentQuery::read(filter)?;
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
                let query = super::super::alert_search::AlertQuery::read(filter)?;
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
                use super::super::past_runs::{Past, Query};
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
                } else if !kept.contains_key(key) && kept.len() >= super::super::keep::MAX_KEYS {
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
        if self.1 >= super::super::limits::MAX_PLAYBOOK_DEPTH {
            return Err(StartError::TooDeep {
                playbook: name.to_owned(),
                depth: self.1,
                max: super::super::limits::MAX_PLAYBOOK_DEPTH,
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
