//! Applying a plan: the files copied into place (the replaced version kept for a rollback),
//! the install recorded in the audit log, only what was approved granted, and the plugin
//! loaded.

use super::InstallError;
use super::kept::{self, KeptError};
use super::plan::{InstallPlan, Mode};
use crate::app::App;
use crate::capability::Capabilities;
use crate::plugin::{LoadedPlugin, Manifest, manifest::MANIFEST_FILE};
use crate::store::audit::{Actor, Change};
use std::path::Path;
use std::sync::Arc;

/// What the operator grants with the install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantChoice {
    /// Nothing more than is granted today.
    Nothing,
    /// Everything the plugin requests (added to today's grant).
    Requested,
    /// These capabilities (added to today's grant).
    These(Capabilities),
}

/// The operator's answer to a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub grant: GrantChoice,
    /// Go ahead although the plan's checks failed (recorded in the audit log).
    pub force: bool,
}

/// What an applied plan did.
#[derive(Debug)]
pub struct Applied {
    /// The plugin as the runtime now runs it.
    pub plugin: Arc<LoadedPlugin>,
    /// The version replaced and kept for `osprey plugin rollback`.
    pub kept: Option<String>,
    /// Whether the grant was changed.
    pub granted: bool,
    /// What the plugin requests that its grant does not give, one line each.
    pub not_granted: Vec<String>,
    /// Secrets it requests that are not set.
    pub secrets_unset: Vec<String>,
}

/// Apply `plan` as approved by `actor`.
pub async fn apply(
    app: &App,
    plan: InstallPlan,
    approval: &Approval,
    actor: &Actor,
) -> Result<Applied, InstallError> {
    let m = plan.manifest();
    if let Some(impact) = plan.impact.as_ref().filter(|i| i.blocks() && !approval.force) {
        return Err(InstallError::PlaybooksBreak {
            name: m.name.clone(),
            failures: impact.failures.clone(),
        });
    }
    let plugins_dir = &app.runtime.options().plugins_dir;
    let kept = copy_into_place(plan.origin.dir(), m, plugins_dir)?;
    let mut details = serde_json::json!({
        "version": m.version.to_string(),
        "previous": plan.previous.as_ref().map(|p| p.version.clone()),
        "requests": m.requests,
    });
    let pack = match &plan.origin {
        super::Origin::Pack(unpacked) => Some(unpacked.audit.clone()),
        super::Origin::Folder(_) => None,
    };
    match &pack {
        Some(pack) => details["pack"] = pack.clone(),
        None => details["signer"] = "folder, unsigned".into(),
    }
    if let Some(diff) = &plan.capability_diff {
        details["capability_diff"] = serde_json::json!(diff);
    }
    if let Some(diff) = &plan.action_diff {
        details["action_diff"] = serde_json::json!(diff);
    }
    if let Some(impact) = &plan.impact {
        details["playbooks"] = serde_json::json!({
            "checked": impact.playbooks,
            "cases": impact.cases,
            "failures": impact.failures,
            "forced": impact.blocks(),
        });
    }
    let action = match plan.mode {
        Mode::Install => "plugin.install",
        Mode::Upgrade { .. } => "plugin.upgrade",
    };
    let change = Change {
        actor,
        action,
        target: format!("plugin:{}", m.name),
        details,
    };
    app.store
        .record_install(
            &m.name,
            &m.version.to_string(),
            pack.as_ref(),
            kept.as_deref(),
            &change,
        )
        .await?;
    let mut grant = plan.grant.clone();
    let granted = match &approval.grant {
        GrantChoice::Nothing => false,
        GrantChoice::Requested => {
            grant.union_with(&m.requests);
            true
        }
        GrantChoice::These(caps) => {
            grant.union_with(caps);
            true
        }
    };
    if granted {
        app.set_grant(&m.name, &grant, actor).await?;
    }
    let plugin = app.runtime.load_dir(&plugins_dir.join(&m.name)).await?;
    let not_granted = plugin.policy().grant.missing_from(&m.requests);
    let mut secrets_unset = Vec::new();
    for s in &m.requests.secrets {
        if app.store.secret(&m.name, s).await?.is_none() {
            secrets_unset.push(s.clone());
        }
    }
    Ok(Applied {
        plugin,
        kept,
        granted,
        not_granted,
        secrets_unset,
    })
}

/// Copy plugin.toml and the component into `<plugins_dir>/<name>`, replacing what was there
/// only once the new copy is complete. The version replaced is kept for a rollback; returns
/// its version.
fn copy_into_place(src: &Path, m: &Manifest, plugins_dir: &Path) -> Result<Option<String>, KeptError> {
    let io = |what: String| move |error| KeptError { what, error };
    std::fs::create_dir_all(plugins_dir).map_err(io(format!("creating {}", plugins_dir.display())))?;
    let target = plugins_dir.join(&m.name);
    let tmp = plugins_dir.join(format!(".install-{}-{}", m.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    std::fs::copy(src.join(MANIFEST_FILE), tmp.join(MANIFEST_FILE))
        .map_err(io(format!("copying {}", src.join(MANIFEST_FILE).display())))?;
    let component = m.component_path(Path::new(""));
    std::fs::copy(m.component_path(src), tmp.join(&component))
        .map_err(io(format!("copying {}", m.component_path(src).display())))?;
    let old = plugins_dir.join(format!(".old-{}-{}", m.name, std::process::id()));
    if target.exists() {
        std::fs::rename(&target, &old).map_err(io(format!("moving {} aside", target.display())))?;
    }
    std::fs::rename(&tmp, &target).map_err(io(format!("moving {} into place", target.display())))?;
    if old.exists() {
        return kept::keep(plugins_dir, &m.name, &old);
    }
    kept::discard(plugins_dir, &m.name)?;
    Ok(None)
}
