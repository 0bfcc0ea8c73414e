//! Preparing an install or upgrade: the plugin checked and compiled, compared with the
//! installed version (what it requests, what it can do), with who signed it and what is
//! granted today. Nothing is changed until [`super::apply`].

use super::InstallError;
use super::diff::{ActionDiff, CapabilityDiff};
use super::impact::{self, Impact};
use super::source::{Origin, signer_text};
use crate::app::App;
use crate::capability::Capabilities;
use crate::pack::Signer;
use crate::plugin::{ActionInfo, LoadedPlugin, Manifest};
use std::sync::Arc;

/// What the operator asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `osprey plugin install`: a new plugin, or a new version of an installed one.
    Install,
    /// `osprey plugin upgrade NAME`: `NAME` must be installed, and the source must hold it.
    Upgrade { name: String },
}

/// The installed version a plan replaces.
#[derive(Debug, Clone)]
pub struct Previous {
    pub version: String,
    pub requests: Capabilities,
    pub actions: Vec<ActionInfo>,
}

/// An install or upgrade, checked and ready to apply.
#[derive(Debug)]
pub struct InstallPlan {
    pub mode: Mode,
    /// Where the files are (a pack's temporary folder lives as long as the plan).
    pub origin: Origin,
    /// The plugin, compiled and described (not yet loaded into the runtime).
    pub checked: Arc<LoadedPlugin>,
    /// The installed version it replaces, if any.
    pub previous: Option<Previous>,
    /// The grant in force today (empty if nothing was ever granted).
    pub grant: Capabilities,
    /// Whether a grant was ever recorded for this plugin.
    pub granted_before: bool,
    /// Changes in what it requests, on an upgrade.
    pub capability_diff: Option<CapabilityDiff>,
    /// Changes in its actions, on an upgrade.
    pub action_diff: Option<ActionDiff>,
    /// On an upgrade: the playbooks that call the plugin, checked against the new version.
    pub impact: Option<Impact>,
}

impl InstallPlan {
    pub fn manifest(&self) -> &Manifest {
        &self.checked.manifest
    }

    pub fn name(&self) -> &str {
        &self.checked.manifest.name
    }

    /// Who signed it: the pack's signer, `None` for a folder.
    pub fn signer(&self) -> Option<&Signer> {
        self.origin.signer()
    }

    /// Who signed it, in one line: "folder, unsigned" for a folder.
    pub fn signed_by(&self) -> String {
        match self.signer() {
            None => "folder, unsigned".into(),
            Some(signer) => signer_text(signer),
        }
    }

    /// What it requests that today's grant does not give, one line each.
    pub fn not_granted(&self) -> Vec<String> {
        self.grant.missing_from(&self.manifest().requests)
    }
}

/// Check the plugin in `origin` (compile it, ask it to describe itself) and compare it with
/// the installed version. An upgrade of a plugin that is not installed, or from a source
/// that holds another plugin, is refused.
pub async fn prepare(app: &App, origin: Origin, mode: Mode) -> Result<InstallPlan, InstallError> {
    let installed = |name: &str| app.runtime.get(name).ok();
    if let Mode::Upgrade { name } = &mode
        && installed(name).is_none()
    {
        return Err(InstallError::NotInstalled { name: name.clone() });
    }
    // The name first, from plugin.toml: an upgrade from the wrong source is refused before
    // anything is compiled.
    if let Mode::Upgrade { name: wanted } = &mode {
        let found = Manifest::load(origin.dir())
            .map_err(|error| InstallError::Check {
                dir: origin.dir().to_owned(),
                error: error.into(),
            })?
            .name;
        if *wanted != found {
            return Err(InstallError::OtherPlugin {
                wanted: wanted.clone(),
                found,
            });
        }
    }
    let checked = app
        .runtime
        .check_dir(origin.dir())
        .await
        .map_err(|error| InstallError::Check {
            dir: origin.dir().to_owned(),
            error,
        })?;
    let checked = Arc::new(checked);
    let name = checked.manifest.name.clone();
    let previous = installed(&name).map(|p| Previous {
        version: p.manifest.version.to_string(),
        requests: p.manifest.requests.clone(),
        actions: p.description.actions.clone(),
    });
    let capability_diff = previous
        .as_ref()
        .map(|p| CapabilityDiff::between(&p.requests, &checked.manifest.requests));
    let action_diff = previous
        .as_ref()
        .map(|p| ActionDiff::between(&p.actions, &checked.description.actions));
    let impact = match &mode {
        Mode::Install => None,
        Mode::Upgrade { .. } => {
            let limits = app.config.run_limits().map_err(InstallError::RunLimits)?;
            let playbooks = app.playbooks.list();
            let (new, installed) = (checked.clone(), installed(&name));
            let check = move || impact::check(&playbooks, new, installed, &limits);
            Some(
                tokio::task::spawn_blocking(check)
                    .await
                    .map_err(|e| InstallError::Panicked(format!("checking the playbooks panicked: {e}")))?,
            )
        }
    };
    let grant = app.grant(&name).await?;
    let granted_before = app.store.grant(&name).await?.is_some();
    Ok(InstallPlan {
        mode,
        origin,
        checked,
        previous,
        grant,
        granted_before,
        capability_diff,
        action_diff,
        impact,
    })
}
