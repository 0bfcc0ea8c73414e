//! Before an upgrade: the playbooks that call the plugin, checked against what the new
//! version offers. Statically, each `invoke("NAME", "ACTION", ...)` in a script must name an
//! action the new version has; then the playbooks' offline tests (`tests/*.toml`) run with
//! every call to the plugin first checked as the real host checks it (an unknown action or an
//! input its schema rejects is invalid input) before the test's mock answers.

use crate::playbook::engine::PluginFailure;
use crate::playbook::testing::{self, CallCheck};
use crate::playbook::{Playbook, RunLimits, engine};
use crate::plugin::LoadedPlugin;
use serde::Serialize;
use std::sync::Arc;

/// What the check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Impact {
    /// The playbooks that call the plugin, by name.
    pub playbooks: Vec<String>,
    /// How many of their test cases ran.
    pub cases: usize,
    /// What would break: each blocks the upgrade unless forced.
    pub failures: Vec<ImpactFailure>,
}

impl Impact {
    pub fn blocks(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// One thing that would break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImpactFailure {
    pub playbook: String,
    /// The test file (`tests/NAME.toml`) that failed; `None` for a call in the script itself.
    pub test: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for ImpactFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.test {
            Some(test) => write!(f, "playbook '{}', {test}: {}", self.playbook, self.reason),
            None => write!(f, "playbook '{}': {}", self.playbook, self.reason),
        }
    }
}

/// The check of plugin calls against `plugin`'s contract, for the playbooks' offline tests:
/// calls to other plugins pass to the mocks unchecked.
fn contract(plugin: Arc<LoadedPlugin>) -> CallCheck {
    Arc::new(move |name, action, input| {
        if name != plugin.name() {
            return Ok(());
        }
        plugin.check_input(action, input).map_err(|e| PluginFailure {
            kind: e.kind.to_string(),
            message: e.message,
            retryable: e.retryable,
        })
    })
}

/// Whether `playbook` calls the plugin `name`: it declares it, or names it in an `invoke`.
fn calls(playbook: &Playbook, name: &str) -> bool {
    playbook.meta.plugins.iter().any(|p| p == name)
        || engine::literal_invokes(&playbook.script)
            .iter()
            .any(|p| p == name)
}

/// Check `playbooks` against `new`, the version an upgrade would install; `installed` is the
/// version in place, to say whether a failing test fails with it too. Runs the tests: call it
/// off the async threads.
pub fn check(
    playbooks: &[Arc<Playbook>],
    new: Arc<LoadedPlugin>,
    installed: Option<Arc<LoadedPlugin>>,
    limits: &RunLimits,
) -> Impact {
    let name = new.name().to_owned();
    let actions: Vec<&str> = new.description.actions.iter().map(|a| a.name.as_str()).collect();
    let mut impact = Impact::default();
    let check_new = contract(new.clone());
    let check_installed = installed.map(contract);
    for pb in playbooks.iter().filter(|pb| calls(pb, &name)) {
        impact.playbooks.push(pb.name().to_owned());
        for (plugin, action) in engine::literal_invoke_actions(&pb.script) {
            if plugin == name && !actions.contains(&action.as_str()) {
                impact.failures.push(ImpactFailure {
                    playbook: pb.name().to_owned(),
                    test: None,
                    reason: format!(
                        "it calls invoke(\"{name}\", \"{action}\", ...), and {name} {} has no action '{action}' (it has: {})",
                        new.manifest.version,
                        actions.join(", ")
                    ),
                });
            }
        }
        let reports = testing::run_all_checked(pb, limits, Some(&check_new));
        impact.cases += reports.len();
        for report in reports.into_iter().filter(|r| !r.passed()) {
            let before = check_installed
                .as_ref()
                .map(|check| testing::run_file(pb, &report.file, limits, Some(check)).passed());
            let mut reason = report.problems.join("; ");
            if before == Some(false) {
                reason.push_str(" (it fails with the installed version too)");
            }
            impact.failures.push(ImpactFailure {
                playbook: pb.name().to_owned(),
                test: Some(format!(
                    "tests/{}",
                    report
                        .file
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )),
                reason,
            });
        }
    }
    impact
}
