//! The Python project of `osprey plugin new --lang python`: the templates in
//! `host/templates/plugin-python/`, plus what makes it build outside this repository: the
//! Python SDK (`plugins/sdk-python/osprey_sdk`) in `vendor/osprey_sdk/`, and the WIT folder
//! and componentize-py version the bundled Python plugins are built with (read from
//! `scripts/build-plugins.sh` and `scripts/lib/componentize_py.sh`). All of it is read from
//! this repository when osprey is compiled.

use super::{Project, copy, render};
use anyhow::{anyhow, bail};
use include_dir::{Dir, include_dir};
use std::path::Path;

static TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/plugin-python");
static SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../plugins/sdk-python/osprey_sdk");
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../wit");
const BUILD_PLUGINS: &str = include_str!("../../../../scripts/build-plugins.sh");
const COMPONENTIZE_PY: &str = include_str!("../../../../scripts/lib/componentize_py.sh");
/// What the example plugin says it is (plugin.toml and `describe` agree).
const DESCRIPTION: &str = "Reputation of IP addresses, domains, URLs and file hashes from the vendor's API";

pub(super) fn project(name: &str) -> anyhow::Result<Project> {
    let wit = wit_folder()?;
    let version = assignment(COMPONENTIZE_PY, "COMPONENTIZE_PY_VERSION")
        .ok_or_else(|| anyhow!("scripts/lib/componentize_py.sh sets no COMPONENTIZE_PY_VERSION"))?;
    let module = name.replace('-', "_");
    let mut files = render(
        &TEMPLATE,
        &[
            ("name", name),
            ("crate", &module),
            ("description", DESCRIPTION),
            ("componentize_py_version", version),
            ("osprey_version", env!("CARGO_PKG_VERSION")),
            ("wit_folder", &format!("wit/{wit}")),
        ],
    );
    let sdk: Vec<_> = copy(&SDK, Path::new("vendor/osprey_sdk"))
        .into_iter()
        .filter(|(path, _)| path.extension().is_some_and(|e| e == "py"))
        .collect();
    files.extend(sdk);
    let wit_dir = WIT
        .get_dir(&wit)
        .ok_or_else(|| anyhow!("the Python plugins build against wit/{wit}, which osprey does not embed"))?;
    files.extend(copy(wit_dir, Path::new("wit")));
    files.sort();
    let next_steps =
        "  ./build.sh                            # installs componentize-py into .venv/ once, then dist/
  ./build.sh test                       # the unit tests, on this machine's Python
  osprey pack build dist                # then osprey pack sign, osprey plugin install
"
        .to_owned();
    Ok(Project { files, next_steps })
}

/// The executable files of a project: its build script.
pub(super) fn is_executable(path: &Path) -> bool {
    path == Path::new("build.sh")
}

/// The WIT folder the bundled Python plugins are built against (`v0.2.0` for
/// `python_wit=wit/v0.2.0` in `scripts/build-plugins.sh`).
fn wit_folder() -> anyhow::Result<String> {
    let path = assignment(BUILD_PLUGINS, "python_wit")
        .ok_or_else(|| anyhow!("scripts/build-plugins.sh sets no python_wit"))?;
    match path.strip_prefix("wit/") {
        Some(folder) if !folder.is_empty() && !folder.contains("..") => Ok(folder.to_owned()),
        _ => bail!("scripts/build-plugins.sh builds Python plugins against {path}, not a folder of wit/"),
    }
}

/// The value of the first top-level shell assignment `KEY=value` in `script`.
fn assignment<'a>(script: &'a str, key: &str) -> Option<&'a str> {
    script
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::super::tests::file;
    use super::*;

    #[test]
    fn the_project_vendors_the_python_sdk_and_the_contract_the_bundled_plugins_use() {
        let p = project("acme-py").unwrap();
        let wit = wit_folder().unwrap();
        assert!(wit.starts_with('v'), "{wit}");
        assert!(file(&p, &format!("wit/{wit}/plugin.wit")).contains("world integration"));
        assert!(file(&p, "vendor/osprey_sdk/plugin.py").contains("class Plugin"));
        assert!(file(&p, "build.sh").contains(&format!("wit=wit/{wit}")));
        assert!(
            file(&p, "build.sh").contains("version=0."),
            "{}",
            file(&p, "build.sh")
        );
        assert!(
            p.files
                .iter()
                .all(|(path, _)| !path.to_string_lossy().contains("__pycache__"))
        );
    }

    #[test]
    fn the_manifest_and_the_app_agree() {
        let p = project("acme-py").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugin.toml"), file(&p, "plugin.toml")).unwrap();
        let manifest = crate::plugin::manifest::Manifest::load(dir.path()).unwrap();
        assert_eq!(manifest.name, "acme-py");
        assert_eq!(manifest.component, Path::new("acme_py.wasm"));
        let app = file(&p, "src/app.py");
        assert!(
            app.contains(&format!(
                "Plugin(\"acme-py\", \"{}\", \"{}\")",
                manifest.version, manifest.description
            )),
            "{app}"
        );
        assert!(file(&p, "build.sh").contains("dist/acme_py.wasm"));
    }
}
