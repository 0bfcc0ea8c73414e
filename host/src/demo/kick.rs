//! The scenarios the demo starts where they would otherwise wait for a schedule or a person:
//! a request form filled in by a demo user (so the inbox has a question), or a plain run. A
//! scenario whose playbook still has a run going (from an earlier start, waiting for its
//! answer) is not started again; one whose playbook is not loaded is skipped and said.

use super::spec::KickSpec;
use crate::app::App;
use crate::store::runs::RunStatus;

/// What became of one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kicked {
    /// Started: the run's id.
    Started(String),
    /// A run of its playbook is still going (queued, running or waiting): its id.
    Going(String),
    /// Not started, and why.
    Skipped(String),
}

/// Start each of `kicks`; one that cannot start does not stop the others.
pub async fn start(app: &App, kicks: &[KickSpec]) -> Vec<(String, Kicked)> {
    let mut done = Vec::new();
    for k in kicks {
        let kicked = match start_one(app, k).await {
            Ok(kicked) => kicked,
            Err(why) => Kicked::Skipped(why),
        };
        done.push((k.playbook.clone(), kicked));
    }
    done
}

async fn start_one(app: &App, k: &KickSpec) -> Result<Kicked, String> {
    if app.playbooks.get(&k.playbook).is_err() {
        return Err(format!(
            "playbook '{}' is not in the playbooks folder",
            k.playbook
        ));
    }
    for status in [RunStatus::Queued, RunStatus::Running, RunStatus::Waiting] {
        let going = app
            .store
            .runs(Some(&k.playbook), Some(status), 1)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(run) = going.into_iter().next() {
            return Ok(Kicked::Going(run.id));
        }
    }
    let started = match &k.requester {
        Some(name) => {
            let user = app
                .store
                .user(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user '{name}' (add it to the demo's [[user]] tables)"))?;
            app.executor
                .start_request(&k.playbook, &k.input, &user)
                .await
                .map_err(|e| e.to_string())?
        }
        None => app
            .executor
            .start(&k.playbook, &k.input, "demo")
            .await
            .map_err(|e| e.to_string())?,
    };
    Ok(Kicked::Started(started))
}
