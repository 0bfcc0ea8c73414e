//! Installing and upgrading plugins, for the CLI and the console alike: read the source
//! (`source.rs`: a folder, a pack file or an `oci://` pack, with its signer), prepare a plan
//! (`plan.rs`: the checked plugin, the installed version, the grant, and what changes:
//! `diff.rs`; on an upgrade, the playbooks that call it checked against it: `impact.rs`), and
//! apply it as approved (`apply.rs`; `kept.rs` keeps the replaced version for
//! a rollback). Nothing here prints or asks: callers show the plan and collect the approval.

pub mod apply;
pub mod diff;
pub mod impact;
pub mod kept;
pub mod plan;
pub mod source;

pub use apply::{Applied, Approval, GrantChoice, apply};
pub use diff::{ActionDiff, CapabilityDiff};
pub use impact::{Impact, ImpactFailure};
pub use plan::{InstallPlan, Mode, Previous, prepare};
pub use source::{Origin, Source, SourceError, Unpacked, fetch};

use crate::app::AppError;
use crate::plugin::PluginError;
use crate::store::StoreError;
use std::path::PathBuf;

/// Why an install or upgrade did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{dir} cannot be installed: {error}")]
    Check { dir: PathBuf, error: PluginError },
    #[error(
        "plugin '{name}' is not installed, so there is nothing to upgrade; install it with `osprey plugin install SOURCE`"
    )]
    NotInstalled { name: String },
    #[error(
        "the source holds plugin '{found}', not '{wanted}'; an upgrade replaces a plugin with a version of itself"
    )]
    OtherPlugin { wanted: String, found: String },
    #[error(
        "upgrading '{name}' would break {} playbook check(s) (run again with --force to upgrade anyway):\n  {}",
        .failures.len(),
        .failures.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n  ")
    )]
    PlaybooksBreak {
        name: String,
        failures: Vec<ImpactFailure>,
    },
    #[error("the playbook limits in the configuration are not valid: {0}")]
    RunLimits(crate::playbook::limits::LimitError),
    #[error("{0}")]
    Panicked(String),
    #[error(transparent)]
    Files(#[from] kept::KeptError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
}
