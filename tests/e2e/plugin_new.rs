//! `osprey plugin new` as an author outside this repository meets it: the project it writes
//! builds for wasm32-wasip2 with cargo by itself (offline, with its own Cargo.lock and
//! vendored SDK), its unit tests pass on this machine's target, and by the steps its README
//! gives it packs, installs into an Osprey and answers a call against a fake vendor on
//! loopback.

use crate::support::fake_http::serve;
use crate::support::{Cli, text};
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The build folder of generated projects: beside this test binary's own target folder, so
/// the SDK's dependencies stay compiled between runs.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // <target>/debug/deps/e2e-HASH
    exe.ancestors().nth(3).unwrap().join("plugin-new")
}

/// `cargo ARGS` in `dir` as an author runs it: the project's rust-toolchain.toml decides the
/// toolchain (not the one running this test).
fn cargo(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} in {}: {}{}",
        dir.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A vendor that answers `GET /v1/reputation?q=...` for the bearer token `key`, as the
/// template's example action expects.
async fn fake_vendor(key: &'static str) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/v1/reputation",
        axum::routing::get(
            move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                if auth != Some(&format!("Bearer {key}")) {
                    return (StatusCode::UNAUTHORIZED, "bad key").into_response();
                }
                match q.get("q").map(String::as_str) {
                    Some("198.51.100.7") => {
                        axum::Json(serde_json::json!({"verdict": "malicious", "score": 87})).into_response()
                    }
                    _ => (StatusCode::NOT_FOUND, "never seen").into_response(),
                }
            },
        ),
    );
    (origin, serve(listener, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_project_builds_tests_packs_installs_and_answers_by_its_readme() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let new = |args: &[&str]| {
        cli.command()
            .args(["plugin", "new"])
            .args(args)
            .current_dir(work.path())
            .output()
            .unwrap()
    };

    let out = new(&["acme-lookup"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("cd acme-lookup") && said.contains("cargo build --release"),
        "{said}"
    );
    let project = work.path().join("acme-lookup");
    for file in [
        "README.md",
        "Cargo.lock",
        "rust-toolchain.toml",
        ".cargo/config.toml",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }

    // Writing again over it, or with a bad name, is refused and changes nothing.
    let again = new(&["acme-lookup"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already exists and is not empty"),
        "{}",
        text(&again.stderr)
    );
    let bad = new(&["Acme_Lookup"]);
    assert!(
        text(&bad.stderr).contains("plugin name 'Acme_Lookup' must be"),
        "{}",
        text(&bad.stderr)
    );
    assert!(!work.path().join("Acme_Lookup").exists());
    let help = cli.ok(&["plugin", "new", "--help"]);
    for needle in [
        "Examples:",
        "osprey plugin new acme-lookup",
        "--lang <LANG>",
        "python",
        "--dir <DIR>",
    ] {
        assert!(
            help.contains(needle),
            "plugin new --help lacks '{needle}':\n{help}"
        );
    }

    // README: build and test; the project starts formatted as `cargo fmt` would, SDK and all.
    cargo(&project, &["fmt", "--check"]);
    cargo(&project, &["build", "--release", "--offline", "--locked"]);
    let tested = cargo(
        &project,
        &["test", "--offline", "--locked", "--target", "host-tuple"],
    );
    let tested = text(&tested.stdout);
    assert!(tested.contains("test result: ok. 3 passed"), "{tested}");

    // README: pack, install, configure, call.
    let wasm = target_dir().join("wasm32-wasip2/release/acme_lookup.wasm");
    let dist = project.join("dist");
    std::fs::create_dir(&dist).unwrap();
    std::fs::copy(project.join("plugin.toml"), dist.join("plugin.toml")).unwrap();
    std::fs::copy(&wasm, dist.join("acme_lookup.wasm")).unwrap();
    pack_install_and_call(&cli, work.path(), &dist, "acme-lookup").await;
}

/// README's last steps for a built project's `dist/` folder: pack it, install the pack, point
/// it at a fake vendor (setting, grant, secret), and call its example action.
async fn pack_install_and_call(cli: &Cli, work: &Path, dist: &Path, name: &str) {
    let pack = work.join(format!("{name}-0.1.0.ospack"));
    cli.ok(&[
        "pack",
        "build",
        dist.to_str().unwrap(),
        "-o",
        pack.to_str().unwrap(),
    ]);
    let installed = cli.ok(&[
        "plugin",
        "install",
        pack.to_str().unwrap(),
        "--allow-unsigned",
        "--yes",
    ]);
    assert!(installed.contains("https://api.example.com"), "{installed}");

    let (origin, _vendor) = fake_vendor("k3y").await;
    cli.ok(&["plugin", "config", name, &format!("base_url={origin}")]);
    cli.ok(&["plugin", "grant", name, "--http", &origin]);
    let set = cli.run_with_stdin(&["secret", "set", name, "api_key"], "k3y");
    assert!(set.status.success(), "{}", text(&set.stderr));

    let call = |indicator: &str| {
        let input = serde_json::json!({ "indicator": indicator }).to_string();
        let out = cli.ok(&["plugin", "call", name, "lookup", "--input", &input]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    assert_eq!(
        call("198.51.100.7"),
        serde_json::json!({"indicator": "198.51.100.7", "verdict": "malicious", "score": 87})
    );
    assert_eq!(
        call("example.org"),
        serde_json::json!({"indicator": "example.org", "verdict": "unknown"})
    );
}

/// The componentize-py that scripts/build-plugins.sh installed (scripts/lib/componentize_py.sh):
/// a Python project's build.sh is pointed at it instead of installing its own from PyPI.
fn componentize_py() -> PathBuf {
    let venv = std::env::var_os("OSPREY_COMPONENTIZE_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/osprey/componentize-py")
        });
    let tool = venv.join("bin/componentize-py");
    assert!(
        tool.is_file(),
        "{} is missing: scripts/build-plugins.sh installs it (run the tests with scripts/test.sh)",
        tool.display()
    );
    tool
}

/// `./build.sh ARGS` in a Python project, with the componentize-py already installed.
fn build_sh(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("./build.sh")
        .args(args)
        .current_dir(dir)
        .env("COMPONENTIZE_PY", componentize_py())
        .output()
        .expect("build.sh runs");
    assert!(
        out.status.success(),
        "./build.sh {args:?} in {}: {}{}",
        dir.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_python_project_builds_tests_packs_installs_and_answers_by_its_readme() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let out = cli
        .command()
        .args(["plugin", "new", "acme-py", "--lang", "python"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("cd acme-py") && said.contains("./build.sh"),
        "{said}"
    );
    let project = work.path().join("acme-py");
    for file in [
        "README.md",
        "build.sh",
        "plugin.toml",
        "src/app.py",
        "tests/test_app.py",
        "vendor/osprey_sdk/plugin.py",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }

    // README: test, build, then the same pack, install and call as a Rust project.
    let tested = build_sh(&project, &["test"]);
    let tested = text(&tested.stderr);
    assert!(
        tested.contains("Ran 3 tests") && tested.contains("OK"),
        "{tested}"
    );
    build_sh(&project, &[]);
    let dist = project.join("dist");
    assert!(dist.join("acme_py.wasm").is_file() && dist.join("plugin.toml").is_file());
    pack_install_and_call(&cli, work.path(), &dist, "acme-py").await;
}
