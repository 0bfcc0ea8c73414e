//! The demo's wiring as data: `demo/setup.toml` (plugins, users, lists, rules, the scenarios
//! to start once) and `demo/alerts.toml` (the trickle's sample alerts), read and checked here.
//! The mock cases of a plugin are `demo/cases/NAME.toml`, read by the plugin runtime's own
//! reader (`plugin::mock::read_cases_file`).

use super::DemoError;
use crate::intake::Format;
use crate::preprocess::spec::RuleSpec;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// `demo/setup.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    /// The bundled connectors to install (those missing from the plugins folder are skipped).
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Demo users; each gets a new generated password at every start.
    #[serde(default, rename = "user")]
    pub users: Vec<UserSpec>,
    /// Lists the playbooks need (created once).
    #[serde(default, rename = "list")]
    pub lists: Vec<ListSpec>,
    /// Pre-processing rules, in order (stored by name, so a second start changes nothing).
    #[serde(default, rename = "rules")]
    pub rules: Vec<RuleSpec>,
    /// Scenarios started once at each start, where they would otherwise wait for a schedule
    /// or a person.
    #[serde(default, rename = "kick")]
    pub kicks: Vec<KickSpec>,
}

/// A demo user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSpec {
    pub name: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// A list to create.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    pub name: String,
    /// allow | block
    pub kind: String,
    /// ip | domain | url
    #[serde(rename = "type")]
    pub entry_type: String,
    #[serde(default)]
    pub description: String,
}

/// A scenario started at each start: a request form filled in by `requester`, or a plain
/// run (origin `demo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickSpec {
    pub playbook: String,
    /// The demo user who fills in the playbook's request form (the playbook must have one).
    #[serde(default)]
    pub requester: Option<String>,
    #[serde(default)]
    pub input: Map<String, Value>,
}

/// `demo/alerts.toml`: the samples the trickle sends, in turn.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrickleSpec {
    #[serde(rename = "alert")]
    pub alerts: Vec<AlertSpec>,
}

/// One kind of sample alert: each time its turn comes, the next of its bodies is sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// What it stands for (logged).
    pub name: String,
    /// The intake format: json, ndjson, passivedns or syslog.
    pub format: String,
    /// The source to record (`?source=`); default: the format's.
    #[serde(default)]
    pub source: Option<String>,
    /// How many turns it takes in each round of the samples (0: never).
    #[serde(default = "one")]
    pub repeat: u32,
    /// The bodies, sent in turn; `{now}` becomes the Unix time in seconds.
    pub bodies: Vec<String>,
}

fn one() -> u32 {
    1
}

impl DemoSpec {
    /// `DIR/setup.toml`.
    pub fn load(dir: &Path) -> Result<DemoSpec, DemoError> {
        read_toml(&dir.join("setup.toml"))
    }
}

impl TrickleSpec {
    /// `DIR/alerts.toml`, checked: a known format and at least one body for each sample.
    pub fn load(dir: &Path) -> Result<TrickleSpec, DemoError> {
        let path = dir.join("alerts.toml");
        let spec: TrickleSpec = read_toml(&path)?;
        for a in &spec.alerts {
            let problem = if Format::from_name(&a.format).is_none() {
                Some(format!(
                    "alert '{}' has format '{}'; the formats are: {}",
                    a.name,
                    a.format,
                    Format::NAMES.join(", ")
                ))
            } else if a.bodies.is_empty() {
                Some(format!("alert '{}' has no bodies", a.name))
            } else {
                None
            };
            if let Some(message) = problem {
                return Err(DemoError::Spec {
                    path: path.display().to_string(),
                    message,
                });
            }
        }
        if spec.alerts.iter().all(|a| a.repeat == 0) {
            return Err(DemoError::Spec {
                path: path.display().to_string(),
                message: "no alert has a repeat above 0, so the trickle would send nothing".into(),
            });
        }
        Ok(spec)
    }
}

/// The mock cases of plugin `name`, if the demo has some (`DIR/cases/NAME.toml`).
pub fn cases_file(dir: &Path, name: &str) -> Option<PathBuf> {
    Some(dir.join("cases").join(format!("{name}.toml"))).filter(|p| p.is_file())
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, DemoError> {
    let text = std::fs::read_to_string(path).map_err(|source| DemoError::Io {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| DemoError::Spec {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The repository's demo folder reads and checks.
    #[test]
    fn the_repository_demo_folder_reads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
        let setup = DemoSpec::load(&dir).unwrap();
        assert!(setup.users.len() >= 6, "a user for each role");
        assert!(!setup.rules.is_empty() && !setup.kicks.is_empty());
        for rule in &setup.rules {
            rule.validate().unwrap();
        }
        let trickle = TrickleSpec::load(&dir).unwrap();
        assert!(trickle.alerts.iter().any(|a| a.format == "passivedns"));
        for name in &setup.plugins {
            if let Some(path) = cases_file(&dir, name) {
                crate::plugin::mock::read_cases_file(&path).unwrap();
            }
        }
    }
}
