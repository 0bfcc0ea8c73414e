//! The scenarios the demo starts once at each start, where they would otherwise wait for a
//! schedule or a person: a request form filled in by a demo user (so the inbox has a
//! question), or a plain run. A scenario whose playbook is not loaded is skipped and said.

use super::spec::KickSpec;
use crate::app::App;

/// What starting one scenario did: the run's id, or why it was not started.
pub type Kicked = Result<String, String>;

/// Start each of `kicks`; one that cannot start does not stop the others.
pub async fn start(app: &App, kicks: &[KickSpec]) -> Vec<(String, Kicked)> {
    let mut done = Vec::new();
    for k in kicks {
        done.push((k.playbook.clone(), start_one(app, k).await));
    }
    done
}

async fn start_one(app: &App, k: &KickSpec) -> Kicked {
    if app.playbooks.get(&k.playbook).is_err() {
        return Err(format!(
            "playbook '{}' is not in the playbooks folder",
            k.playbook
        ));
    }
    match &k.requester {
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
                .map_err(|e| e.to_string())
        }
        None => app
            .executor
            .start(&k.playbook, &k.input, "demo")
            .await
            .map_err(|e| e.to_string()),
    }
}
