//! `plugin.toml`: who a plugin is, which component to load, what it requests, and which
//! settings it takes.

use crate::capability::Capabilities;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed and validated `plugin.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Lower-case letters, digits and dashes; unique on a server.
    pub name: String,
    /// Semantic version; must match what the component's `describe` says.
    pub version: String,
    pub description: String,
    /// The component file, relative to the manifest.
    pub component: PathBuf,
    /// What the plugin asks the operator to grant.
    #[serde(default)]
    pub requests: Capabilities,
    /// Settings the operator may set, with descriptions and defaults.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigKey>,
}

/// One setting a plugin takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKey {
    pub description: String,
    #[serde(default)]
    pub default: Option<String>,
}

/// A manifest that could not be used; the message names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct ManifestError {
    pub path: PathBuf,
    /// Not the error's `source`: the message says it already, and the CLI prints the chain.
    pub problem: ManifestProblem,
}

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestProblem {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("the plugin name '{0}' is reserved for the server's own secrets; rename the plugin")]
    Reserved(String),
    #[error("version '{version}' is not a semantic version: {source}")]
    Version {
        version: String,
        #[source]
        source: semver::Error,
    },
    #[error("component '{}' must be a file name inside the plugin folder", .0.display())]
    Component(PathBuf),
    #[error("config key '{0}' must be lower_snake_case")]
    ConfigKey(String),
}

/// The manifest's file name inside a plugin folder.
pub const MANIFEST_FILE: &str = "plugin.toml";

impl Manifest {
    /// Read and validate `dir/plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        let err = |problem: ManifestProblem| ManifestError {
            path: path.clone(),
            problem,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(ManifestProblem::Read(e)))?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| err(e.into()))?;
        manifest.validate().map_err(err)?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), ManifestProblem> {
        check_name(&self.name)?;
        semver::Version::parse(&self.version).map_err(|source| ManifestProblem::Version {
            version: self.version.clone(),
            source,
        })?;
        let c = &self.component;
        if c.is_absolute()
            || c.components()
                .any(|p| !matches!(p, std::path::Component::Normal(_)))
        {
            return Err(ManifestProblem::Component(c.clone()));
        }
        for key in self.config.keys() {
            if key.is_empty()
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ManifestProblem::ConfigKey(key.clone()));
            }
        }
        Ok(())
    }

    /// The path of the component file.
    pub fn component_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.component)
    }
}

/// A name a plugin may have: [`validate_name`]'s rule, and not the server's own.
pub fn check_name(name: &str) -> Result<(), ManifestProblem> {
    validate_name(name)?;
    if name == crate::vault::SERVER_SECRET_OWNER {
        return Err(ManifestProblem::Reserved(name.to_owned()));
    }
    Ok(())
}

/// Plugin names follow [`crate::names::check`].
pub fn validate_name(name: &str) -> Result<(), crate::names::NameError> {
    crate::names::check("plugin", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Manifest, ManifestError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), text).unwrap();
        Manifest::load(dir.path())
    }

    #[test]
    fn a_full_manifest_parses() {
        let m = load(
            r#"
            name = "ipinfo"
            version = "0.1.0"
            description = "IP enrichment"
            component = "ipinfo.wasm"
            [requests]
            http = ["https://ipinfo.io"]
            secrets = ["token"]
            [requests.limits]
            timeout = "10s"
            [config.base_url]
            description = "API base"
            default = "https://ipinfo.io"
            "#,
        )
        .unwrap();
        assert_eq!(m.requests.http[0].as_str(), "https://ipinfo.io");
        assert_eq!(m.config["base_url"].default.as_deref(), Some("https://ipinfo.io"));
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let base = "version = \"0.1.0\"\ndescription = \"d\"\ncomponent = \"x.wasm\"\n";
        for (text, want) in [
            (format!("name = \"Bad Name\"\n{base}"), "lower-case"),
            (
                format!("name = \"ok\"\n{base}").replace("0.1.0", "one"),
                "semantic version",
            ),
            (
                format!("name = \"ok\"\n{base}").replace("x.wasm", "../x.wasm"),
                "inside the plugin folder",
            ),
            (
                format!("name = \"ok\"\n{base}[requests]\nhttp = [\"ftp://x\"]\n"),
                "http or https",
            ),
            (
                format!("name = \"ok\"\n{base}[requests]\nsecret = [\"x\"]\n"),
                "unknown field",
            ),
            (format!("name = \"ok\"\n{base}colour = 1\n"), "unknown field"),
        ] {
            let e = load(&text).unwrap_err();
            assert!(e.path.ends_with(MANIFEST_FILE));
            assert!(e.to_string().contains(want), "{want}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Manifest::load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
