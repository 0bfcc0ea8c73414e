//! The store's runs and steps as a replay sees them ([`RunContext`], [`Step`]), and a new
//! step as the store keeps it. The playbook engine knows nothing of the store: the
//! conversions live here, on the executor's side of the `Effects` seam.

use crate::playbook::journal::UnknownStepKind;
use crate::playbook::{RunContext, Step};
use crate::store::runs::{RunRecord, StepRecord};
use crate::store::{Store, StoreError};

/// A stored step a replay cannot take: the run fails with this message.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Its request or outcome could not be read.
    #[error("step {seq}: {why}")]
    Unreadable { seq: i64, why: String },
    #[error("step {seq}: {source}")]
    UnknownKind { seq: i64, source: UnknownStepKind },
}

impl TryFrom<StepRecord> for Step {
    type Error = StepError;

    fn try_from(s: StepRecord) -> Result<Step, StepError> {
        if let Some(why) = s.unreadable {
            return Err(StepError::Unreadable { seq: s.seq, why });
        }
        let kind = s
            .kind
            .parse()
            .map_err(|source| StepError::UnknownKind { seq: s.seq, source })?;
        let mut request = s.request;
        if kind == crate::playbook::StepKind::Invoke
            && let Some(r) = request.as_object_mut()
        {
            // The replay compares the script's request with the journal's, which has no mark.
            r.remove(MOCKED);
        }
        Ok(Step {
            seq: s.seq as u32,
            kind,
            request,
            outcome: s.outcome,
            ok: s.ok,
            started_at: s.started_at,
            duration_ms: s.duration_ms,
        })
    }
}

impl From<&Step> for StepRecord {
    fn from(s: &Step) -> StepRecord {
        StepRecord {
            seq: i64::from(s.seq),
            kind: s.kind.as_str().to_owned(),
            request: s.request.clone(),
            outcome: s.outcome.clone(),
            ok: s.ok,
            started_at: s.started_at,
            duration_ms: s.duration_ms,
            unreadable: None,
        }
    }
}

/// The key that marks an `invoke` step's stored request as answered by a mock (mock mode),
/// for whoever reads the journal (the API, the console, `osprey run show`); a replay never
/// sees it.
pub const MOCKED: &str = "mocked";

/// Mark a plugin call's step, as it is stored, as answered by a mock.
pub fn mark_mocked(record: &mut StepRecord) {
    if let Some(r) = record.request.as_object_mut() {
        r.insert(MOCKED.to_owned(), serde_json::Value::Bool(true));
    }
}

impl From<&RunRecord> for RunContext {
    /// The context of a stored run: its input, and what it was started for.
    fn from(run: &RunRecord) -> RunContext {
        RunContext::of_stored(&run.id, &run.playbook, &run.input, &run.context)
    }
}

/// A run's stored steps as a replay takes them; the first it cannot take is the error.
pub fn journal_of(steps: Vec<StepRecord>) -> Result<Vec<Step>, StepError> {
    steps.into_iter().map(Step::try_from).collect()
}

/// Why a recorded run could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Step(#[from] StepError),
}

/// A run's journal, as a worker loads it to resume the run it claimed (the claim gave it
/// the run itself): empty for a run with no steps or no such run.
pub async fn load_journal(store: &Store, run_id: &str) -> Result<Vec<Step>, LoadError> {
    Ok(journal_of(store.steps(run_id).await?)?)
}

/// A stored run's context and journal (`None`: no such run). For replaying a recorded run
/// offline (`playbook::testing::replay_recorded`).
pub async fn load_recorded(
    store: &Store,
    run_id: &str,
) -> Result<Option<(RunContext, Vec<Step>)>, LoadError> {
    let Some(run) = store.run(run_id).await? else {
        return Ok(None);
    };
    let journal = load_journal(store, run_id).await?;
    Ok(Some((RunContext::from(&run), journal)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::StepKind;
    use serde_json::json;

    fn record(kind: &str) -> StepRecord {
        StepRecord {
            seq: 3,
            kind: kind.into(),
            request: json!({"action": "notify", "args": {"to": "soc", "message": "hi"}}),
            outcome: json!(null),
            ok: true,
            started_at: 10,
            duration_ms: 2,
            unreadable: None,
        }
    }

    #[test]
    fn a_stored_step_reads_as_the_replay_takes_it_and_writes_back_the_same() {
        for kind in StepKind::ALL {
            let stored = record(kind.as_str());
            let step = Step::try_from(stored.clone()).unwrap();
            assert_eq!((step.seq, step.kind), (3, kind));
            assert_eq!(StepRecord::from(&step), stored);
        }
        let e = Step::try_from(record("teleport")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("step 3: 'teleport' is not a kind of step"),
            "{e}"
        );
        let damaged = StepRecord {
            unreadable: Some("the outcome is not JSON".into()),
            ..record("act")
        };
        let e = journal_of(vec![record("log"), damaged]).unwrap_err();
        assert_eq!(e.to_string(), "step 3: the outcome is not JSON");
    }
}
