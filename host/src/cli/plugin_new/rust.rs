//! The Rust project of `osprey plugin new`: the templates in `host/templates/plugin-rust/`,
//! plus what makes it build outside this repository: the SDK's sources in
//! `vendor/osprey-sdk/` and the WIT folder its bindings name, laid out so the SDK's relative
//! `path:` resolves unchanged; the workspace tables and the release profile of
//! `plugins/Cargo.toml`; and a Cargo.lock cut from `plugins/Cargo.lock`. All of it is read
//! from this repository when osprey is compiled, so a moved SDK or a new WIT version needs no
//! edit here.

use super::{Project, cargo_lock, copy, render};
use anyhow::{Context as _, anyhow, bail};
use include_dir::{Dir, include_dir};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

static TEMPLATE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates/plugin-rust");
static SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../plugins/sdk");
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../wit");
const PLUGINS_WORKSPACE: &str = include_str!("../../../../plugins/Cargo.toml");
const PLUGINS_LOCK: &str = include_str!("../../../../plugins/Cargo.lock");
const TOOLCHAIN: &str = include_str!("../../../../rust-toolchain.toml");
/// The SDK's formatting, so `cargo fmt` in a project leaves the vendored SDK as it is.
const RUSTFMT: &str = include_str!("../../../../rustfmt.toml");

/// Where the SDK goes in a project: two levels down, so its bindings' `../../wit/...` is the
/// project's own `wit/`.
const SDK_DIR: &str = "vendor/osprey-sdk";
const SDK_PACKAGE: &str = "osprey-sdk";
/// What the example plugin says it is (Cargo.toml, plugin.toml and `describe` agree).
const DESCRIPTION: &str = "Reputation of IP addresses, domains, URLs and file hashes from the vendor's API";

pub(super) fn project(name: &str) -> anyhow::Result<Project> {
    let workspace: toml::Table =
        toml::from_str(PLUGINS_WORKSPACE).context("plugins/Cargo.toml as embedded")?;
    let lock = cargo_lock::Lock::parse(PLUGINS_LOCK)?;
    if lock.has(name) {
        bail!(
            "'{name}' is the name of a crate the plugin depends on, and a Cargo package cannot \
             share it: choose another name"
        );
    }
    let package = table(&workspace, &["workspace", "package"])?;
    let text = |key: &str| {
        package
            .get(key)
            .and_then(toml::Value::as_str)
            .ok_or_else(|| anyhow!("plugins/Cargo.toml has no workspace.package.{key}"))
    };
    let toolchain: toml::Table = toml::from_str(TOOLCHAIN).context("rust-toolchain.toml")?;
    let toolchain = table(&toolchain, &["toolchain"])?
        .get("channel")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| anyhow!("rust-toolchain.toml has no toolchain.channel"))?;
    let sdk_manifest: toml::Table = toml::from_str(sdk_file("Cargo.toml")?)?;
    let sdk_version = table(&sdk_manifest, &["package"])?
        .get("version")
        .and_then(toml::Value::as_str)
        .unwrap_or("?");
    let wit = wit_folder()?;
    let crate_name = name.replace('-', "_");

    let mut files = render(
        &TEMPLATE,
        &[
            ("name", name),
            ("crate", &crate_name),
            ("description", DESCRIPTION),
            ("edition", text("edition")?),
            ("rust_version", text("rust-version")?),
            ("toolchain", toolchain),
            ("sdk_version", &format!("{SDK_PACKAGE} {sdk_version}")),
            ("osprey_version", env!("CARGO_PKG_VERSION")),
            ("wit_folder", &format!("wit/{wit}")),
            ("release_profile", &release_profile(&workspace)?),
            ("workspace", &workspace_tables(&workspace)?),
        ],
    );
    let manifest = files
        .iter()
        .find(|(p, _)| p == Path::new("Cargo.toml"))
        .ok_or_else(|| anyhow!("the Rust template has no Cargo.toml"))?;
    let manifest: toml::Table = toml::from_str(std::str::from_utf8(&manifest.1)?)
        .context("the Rust template's Cargo.toml, filled in")?;
    let dependencies: Vec<String> = table(&manifest, &["dependencies"])?.keys().cloned().collect();
    files.push((
        PathBuf::from("Cargo.lock"),
        lock.for_root(name, "0.1.0", &dependencies)?.into_bytes(),
    ));
    files.push((PathBuf::from("rustfmt.toml"), RUSTFMT.into()));
    files.extend(copy(&SDK, Path::new(SDK_DIR)));
    let wit_dir = WIT
        .get_dir(&wit)
        .ok_or_else(|| anyhow!("the SDK's bindings name wit/{wit}, which osprey does not embed"))?;
    files.extend(copy(wit_dir, Path::new("wit")));
    files.sort();

    let next_steps = format!(
        "  cargo build --release                 # needs the wasm32-wasip2 target (rustup target add wasm32-wasip2)
  cargo test --target host-tuple        # the unit tests, on this machine
  mkdir -p dist && cp plugin.toml target/wasm32-wasip2/release/{crate_name}.wasm dist/
  osprey pack build dist                # writes {name}-0.1.0.ospack; then osprey pack sign
  osprey plugin install {name}-0.1.0.ospack
"
    );
    Ok(Project { files, next_steps })
}

fn sdk_file(path: &str) -> anyhow::Result<&'static str> {
    SDK.get_file(path)
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| anyhow!("the embedded SDK has no {path}"))
}

/// The WIT folder the SDK's bindings are generated from (`v0.1.0` for
/// `path: "../../wit/v0.1.0"` in `src/bindings.rs`).
fn wit_folder() -> anyhow::Result<String> {
    let bindings = sdk_file("src/bindings.rs")?;
    let path = bindings
        .split_once("path:")
        .and_then(|(_, rest)| rest.trim_start().strip_prefix('"'))
        .and_then(|rest| rest.split_once('"'))
        .map(|(path, _)| path)
        .ok_or_else(|| anyhow!("the SDK's src/bindings.rs names no `path: \"...\"`"))?;
    match path.strip_prefix("../../wit/") {
        Some(folder) if !folder.is_empty() && !folder.contains("..") => {
            Ok(folder.trim_end_matches('/').to_owned())
        }
        _ => bail!("the SDK's bindings read {path}, not a folder of ../../wit/"),
    }
}

/// The table at `keys` in `t`.
fn table<'a>(t: &'a toml::Table, keys: &[&str]) -> anyhow::Result<&'a toml::Table> {
    keys.iter().try_fold(t, |t, key| {
        t.get(*key)
            .and_then(toml::Value::as_table)
            .ok_or_else(|| anyhow!("no table [{}]", keys.join(".")))
    })
}

/// `[profile.release]` of the plugins workspace.
fn release_profile(workspace: &toml::Table) -> anyhow::Result<String> {
    Ok(section(
        "profile.release",
        table(workspace, &["profile", "release"])?,
    ))
}

/// `[workspace]` with the plugins workspace's resolver, `[workspace.package]` and
/// `[workspace.dependencies]`: the SDK's path is the vendored one, other path dependencies
/// (the bundled plugins' own) are left out.
fn workspace_tables(workspace: &toml::Table) -> anyhow::Result<String> {
    let mut head = toml::Table::new();
    if let Some(resolver) = table(workspace, &["workspace"])?.get("resolver") {
        head.insert("resolver".into(), resolver.clone());
    }
    let mut dependencies = toml::Table::new();
    for (name, spec) in table(workspace, &["workspace", "dependencies"])? {
        let is_path = spec.as_table().is_some_and(|t| t.contains_key("path"));
        if name == SDK_PACKAGE {
            let mut sdk = toml::Table::new();
            sdk.insert("path".into(), SDK_DIR.into());
            dependencies.insert(name.clone(), sdk.into());
        } else if !is_path {
            dependencies.insert(name.clone(), spec.clone());
        }
    }
    Ok([
        section("workspace", &head),
        section("workspace.package", table(workspace, &["workspace", "package"])?),
        section("workspace.dependencies", &dependencies),
    ]
    .join("\n"))
}

/// `[header]` and one `key = value` line per entry, tables inline.
fn section(header: &str, entries: &toml::Table) -> String {
    let mut out = format!("[{header}]\n");
    for (key, value) in entries {
        let value = match value {
            toml::Value::Table(t) => inline(t),
            other => other.to_string(),
        };
        let _ = writeln!(out, "{key} = {value}");
    }
    out
}

fn inline(t: &toml::Table) -> String {
    let entries: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::super::tests::file;
    use super::*;

    #[test]
    fn the_project_vendors_the_sdk_and_the_wit_folder_its_bindings_name() {
        let p = project("acme-lookup").unwrap();
        let wit = wit_folder().unwrap();
        assert!(wit.starts_with('v'), "{wit}");
        let bindings = file(&p, "vendor/osprey-sdk/src/bindings.rs");
        assert!(bindings.contains(&format!("\"../../wit/{wit}\"")), "{bindings}");
        assert!(file(&p, &format!("wit/{wit}/plugin.wit")).contains("world integration"));
        file(&p, "vendor/osprey-sdk/Cargo.toml");
    }

    #[test]
    fn the_manifests_agree_and_follow_the_plugins_workspace() {
        let p = project("acme-lookup").unwrap();
        let cargo: toml::Table = toml::from_str(&file(&p, "Cargo.toml")).unwrap();
        let plugins: toml::Table = toml::from_str(PLUGINS_WORKSPACE).unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some("acme-lookup"));
        assert_eq!(cargo["profile"]["release"], plugins["profile"]["release"]);
        assert_eq!(cargo["workspace"]["package"], plugins["workspace"]["package"]);
        let deps = cargo["workspace"]["dependencies"].as_table().unwrap();
        assert_eq!(deps["osprey-sdk"]["path"].as_str(), Some("vendor/osprey-sdk"));
        assert_eq!(deps["schemars"], plugins["workspace"]["dependencies"]["schemars"]);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plugin.toml"), file(&p, "plugin.toml")).unwrap();
        let manifest = crate::plugin::manifest::Manifest::load(dir.path()).unwrap();
        assert_eq!(manifest.name, "acme-lookup");
        assert_eq!(manifest.component, Path::new("acme_lookup.wasm"));
        assert_eq!(
            Some(manifest.version.as_str()),
            cargo["package"]["version"].as_str()
        );
        assert_eq!(
            Some(manifest.description.as_str()),
            cargo["package"]["description"].as_str()
        );
        assert!(file(&p, "src/lib.rs").contains("Plugin::new(\n        \"acme-lookup\","));
    }

    #[test]
    fn a_name_cargo_already_uses_in_the_lock_is_refused() {
        let e = project("osprey-sdk").err().unwrap().to_string();
        assert!(e.contains("'osprey-sdk' is the name of a crate"), "{e}");
    }
}
