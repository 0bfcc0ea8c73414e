//! Playbooks: Rhai scripts with their metadata, and the durable replay that runs them.
//! Only this module touches Rhai.
//!
//! A playbook is a folder: `playbook.toml` (name, inputs, triggers, plugins, limits),
//! `playbook.rhai` (the script), and optionally `tests/*.toml` (canned plugin responses and
//! expectations, run by `osprey playbook test`). PLAYBOOKS.md is the reference.

pub mod act;
pub mod alert_search;
mod api;
pub mod chart;
pub mod cron;
pub mod engine;
pub mod expr;
pub mod journal;
pub mod json;
pub mod keep;
pub mod limits;
pub mod meta;
pub mod past_runs;
mod report;
pub mod search;
pub mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sub_playbooks;

pub use act::{Act, ActCall, ActError};
pub use engine::{
    Effects, Failure, FailureKind, JournalError, MAX_RETRY_AFTER_MS, Outcome, PluginFailure, QuestionWait,
    Script, ScriptLimits, StartError, WaitError,
};
pub use journal::{Interrupt, RunContext, Step, StepKind};
pub use limits::{LimitOverrides, RunLimits};
pub use meta::{InputType, Meta, MetaError, RequestForm, Trigger};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use thiserror::Error;

/// A loaded playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    pub meta: Meta,
    pub script: Script,
    pub source: String,
    pub dir: PathBuf,
    /// SHA-256 of the metadata file and the script: changes whenever either does (the audit
    /// log records each new version the server loads).
    pub version: String,
}

#[derive(Debug, Error)]
pub enum PlaybookError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error("{path}:{error}")]
    Compile {
        path: PathBuf,
        error: engine::CompileError,
    },
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("no playbook named '{name}'{}", known_hint(.known))]
    NotFound { name: String, known: Vec<String> },
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        " (none are loaded; check playbooks_dir)".into()
    } else {
        format!(" (loaded: {})", known.join(", "))
    }
}

impl Playbook {
    /// Load and check the playbook in `dir`: metadata, then the script.
    pub fn load(dir: &Path) -> Result<Playbook, PlaybookError> {
        let meta = Meta::load(dir)?;
        let path = dir.join(meta::SCRIPT_FILE);
        let source = std::fs::read_to_string(&path).map_err(|e| PlaybookError::Io {
            path: path.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let script = engine::compile(&source).map_err(|error| PlaybookError::Compile { path, error })?;
        let meta_text = std::fs::read(dir.join(meta::META_FILE)).unwrap_or_default();
        let version = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(&meta_text);
            h.update([0]);
            h.update(source.as_bytes());
            hex::encode(h.finalize())
        };
        Ok(Playbook {
            meta,
            script,
            source,
            dir: dir.to_owned(),
            version,
        })
    }

    /// The limits of this playbook's runs: its `[limits]` over the server's defaults,
    /// capped by the server's maxima.
    pub fn limits(&self, limits: &RunLimits) -> ScriptLimits {
        limits.of(&self.meta.limits)
    }

    /// What an operator should know about this playbook that does not stop it loading:
    /// plugins its script calls by name that it does not declare (those calls will fail),
    /// and limits above the server's maxima (the maxima are used).
    pub fn warnings(&self, limits: &RunLimits) -> Vec<String> {
        let undeclared = engine::literal_invokes(&self.script)
            .into_iter()
            .filter(|p| !self.meta.plugins.contains(p))
            .map(|p| {
                format!(
                    "the script calls plugin '{p}', which playbook.toml does not declare in `plugins`: the call will fail"
                )
            });
        let above = limits
            .defaults
            .with(&self.meta.limits)
            .above(&limits.maxima)
            .into_iter()
            .map(|l| format!("[limits] {l}: the maximum is used"));
        undeclared.chain(above).collect()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }
}

/// The playbooks a server knows, by name; reloadable.
#[derive(Debug, Clone, Default)]
pub struct Playbooks {
    inner: Arc<RwLock<BTreeMap<String, Arc<Playbook>>>>,
}

impl Playbooks {
    /// Load every playbook folder under `dir`. Broken ones are returned as errors; the
    /// others load.
    pub fn load_dir(dir: &Path) -> (Playbooks, Vec<PlaybookError>) {
        let set = Playbooks::default();
        let errors = set.reload(dir);
        (set, errors)
    }

    /// Replace the loaded playbooks with what is in `dir` now.
    pub fn reload(&self, dir: &Path) -> Vec<PlaybookError> {
        let mut loaded = BTreeMap::new();
        let mut errors = Vec::new();
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|e| {
                e.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.join(meta::META_FILE).is_file())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        for d in dirs {
            match Playbook::load(&d) {
                Ok(p) => {
                    if let Some(prev) = loaded.get(p.name()) {
                        let prev: &Arc<Playbook> = prev;
                        errors.push(PlaybookError::Io {
                            path: d.clone(),
                            message: format!(
                                "a playbook named '{}' is already loaded from {}",
                                p.name(),
                                prev.dir.display()
                            ),
                        });
                        continue;
                    }
                    loaded.insert(p.name().to_owned(), Arc::new(p));
                }
                Err(e) => errors.push(e),
            }
        }
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        errors
    }

    /// Add (or replace) one playbook.
    pub fn insert(&self, playbook: Playbook) {
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(playbook.name().to_owned(), Arc::new(playbook));
    }

    pub fn get(&self, name: &str) -> Result<Arc<Playbook>, PlaybookError> {
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(name).cloned().ok_or_else(|| PlaybookError::NotFound {
            name: name.to_owned(),
            known: map.keys().cloned().collect(),
        })
    }

    pub fn list(&self) -> Vec<Arc<Playbook>> {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// A request form, as a page or the API shows it: a playbook with `[request]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RequestFormInfo {
    /// The playbook's name (`POST /api/v1/requests/{playbook}` starts it).
    pub playbook: String,
    /// What the form is called.
    pub title: String,
    pub description: String,
    /// The roles whose members may make the request; empty: anyone allowed to start requests.
    pub roles: Vec<String>,
    /// The form's fields: the playbook's inputs, in the order `playbook.toml` declares them.
    pub fields: Vec<RequestFormField>,
}

/// One field of a request form.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RequestFormField {
    /// The input's name (the key in the request's JSON body).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: InputType,
    pub description: String,
    /// Whether the request must give it (no default, and not `required = false`).
    pub required: bool,
    /// The value taken when the request leaves it out.
    pub default: Option<serde_json::Value>,
}

impl RequestFormInfo {
    /// Whether a user with `roles` (and `disabled` or not) may make this request (the rule
    /// `start_request` applies).
    pub fn allows(&self, roles: &[String], disabled: bool) -> bool {
        meta::roles_allow(&self.roles, roles, disabled)
    }

    fn of(playbook: &Playbook) -> Option<RequestFormInfo> {
        let form = playbook.meta.request.as_ref()?;
        Some(RequestFormInfo {
            playbook: playbook.name().to_owned(),
            title: form.title.clone(),
            description: form.description.clone(),
            roles: form.roles.clone(),
            fields: playbook
                .meta
                .inputs_in_order()
                .map(|(name, spec)| RequestFormField {
                    name: name.to_owned(),
                    kind: spec.kind,
                    description: spec.description.clone(),
                    required: spec.is_required(),
                    default: spec.default.clone(),
                })
                .collect(),
        })
    }
}

impl Playbooks {
    /// The request forms: every loaded playbook with `[request]`, by name.
    pub fn request_forms(&self) -> Vec<RequestFormInfo> {
        self.list()
            .iter()
            .filter_map(|p| RequestFormInfo::of(p))
            .collect()
    }
}

/// Names, sizes and modification times of every playbook file under `dir`: changes when a
/// playbook is added, edited or removed.
pub fn dir_signature(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in [meta::META_FILE, meta::SCRIPT_FILE] {
            let path = entry.path().join(file);
            if let Ok(m) = std::fs::metadata(&path) {
                out.push((path, m.len(), m.modified().ok()));
            }
        }
    }
    out.sort();
    out
}
