//! A plugin's life through the real binary: an upgrade keeps the version it replaces with its
//! grant, `osprey plugin rollback` swaps them (twice is a round trip), a removal keeps the
//! plugin's data and `--purge` deletes it, all in the audit log.

use crate::packs::s;
use crate::support::{Cli, Server, audit_export, dist, eventually, http_client, text};
use std::path::{Path, PathBuf};

/// A changed copy of the test-echo plugin in `dir`: its `motto` setting defaults to "stay bold"
/// (the built one's is "stay calm"), so a call tells the two apart. The version stays 0.1.0:
/// the component carries its version, which plugin.toml must match, and building a second
/// component for this test would double the plugin build.
fn echo_changed(dir: &Path) -> PathBuf {
    let src = dist().join("test-echo");
    let dst = dir.join("test-echo-changed");
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    let manifest = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    let bumped = manifest.replace("default = \"stay calm\"", "default = \"stay bold\"");
    assert!(
        bumped.contains("stay bold"),
        "test-echo's plugin.toml changed; update this test:\n{manifest}"
    );
    std::fs::write(dst.join("plugin.toml"), bumped).unwrap();
    dst
}

/// Call `action` of test-echo with `input`; returns the output.
fn call(cli: &Cli, action: &str, input: &str) -> serde_json::Value {
    serde_json::from_str(&cli.ok(&["plugin", "call", "test-echo", action, "--input", input])).unwrap()
}

fn inspect(cli: &Cli) -> serde_json::Value {
    serde_json::from_str(&cli.ok(&["plugin", "inspect", "test-echo", "--json"])).unwrap()
}

fn motto(cli: &Cli) -> serde_json::Value {
    call(cli, "config", r#"{"key":"motto"}"#)["value"].clone()
}

fn set_secret(cli: &Cli, value: &str) {
    let out = cli.run_with_stdin(&["secret", "set", "test-echo", "greeting"], &format!("{value}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn audited(cli: &Cli, action: &str) -> Vec<serde_json::Value> {
    audit_export(cli)
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

#[test]
fn an_upgrade_keeps_the_previous_version_with_its_grant_and_rollback_returns_to_it() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let echo = dist().join("test-echo");

    let refused = cli.fails(&["plugin", "rollback", "test-echo"]);
    assert!(refused.contains("'test-echo' is not installed"), "{refused}");
    cli.ok(&["plugin", "install", s(&echo), "--grant-requested"]);
    let refused = cli.fails(&["plugin", "rollback", "test-echo"]);
    assert!(
        refused.contains("no previous version to roll back to"),
        "{refused}"
    );
    set_secret(&cli, "hello");
    call(&cli, "kv-put", r#"{"key":"k","value":"v1"}"#);
    assert_eq!(motto(&cli), "stay calm");

    // The upgrade keeps the old folder where the runtime does not load it, and says how to
    // return.
    let said = cli.ok(&["plugin", "install", s(&echo_changed(work.path()))]);
    assert!(said.contains("Upgrading from test-echo 0.1.0"), "{said}");
    assert!(
        said.contains("kept 0.1.0") && said.contains("osprey plugin rollback test-echo"),
        "{said}"
    );
    let plugins = cli.data_dir().join("plugins");
    assert!(plugins.join(".previous/test-echo/plugin.toml").is_file());
    let listed: serde_json::Value = serde_json::from_str(&cli.ok(&["plugin", "list", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(motto(&cli), "stay bold");
    cli.ok(&[
        "plugin",
        "grant",
        "test-echo",
        "--http",
        "https://api.example.com",
    ]);
    assert_eq!(inspect(&cli)["granted"]["http"][0], "https://api.example.com");

    // Back to the old folder and the grant it had: no api.example.com.
    let said = cli.ok(&["plugin", "rollback", "test-echo"]);
    assert!(
        said.contains("rolled back 'test-echo' from 0.1.0 to 0.1.0"),
        "{said}"
    );
    assert!(said.contains("its grant is back"), "{said}");
    let now = inspect(&cli);
    assert_eq!(
        now["granted"],
        serde_json::json!({"kv_quota_bytes": 4096, "secrets": ["greeting"]})
    );
    assert_eq!(motto(&cli), "stay calm");
    // Its data was never touched.
    assert_eq!(call(&cli, "kv-get", r#"{"key":"k"}"#)["value"], "v1");
    assert_eq!(call(&cli, "secret-length", r#"{"name":"greeting"}"#)["length"], 5);

    // A second rollback returns to the changed copy with its grant.
    cli.ok(&["plugin", "rollback", "test-echo"]);
    let now = inspect(&cli);
    assert_eq!(now["granted"]["http"][0], "https://api.example.com");
    assert_eq!(motto(&cli), "stay bold");

    let rollbacks = audited(&cli, "plugin.rollback");
    assert_eq!(rollbacks.len(), 2, "{rollbacks:?}");
    assert_eq!(rollbacks[0]["details"]["version"], "0.1.0");
    assert_eq!(rollbacks[0]["details"]["from"], "0.1.0");
    assert_eq!(
        rollbacks[1]["details"]["grant"]["http"][0],
        "https://api.example.com"
    );
    let installs = audited(&cli, "plugin.install");
    assert_eq!(installs[1]["details"]["previous"], "0.1.0");

    // A removal takes the kept version with it: nothing to roll back to after a reinstall.
    cli.ok(&["plugin", "remove", "test-echo"]);
    assert!(!plugins.join(".previous/test-echo").exists());
    cli.ok(&["plugin", "install", s(&echo)]);
    let refused = cli.fails(&["plugin", "rollback", "test-echo"]);
    assert!(
        refused.contains("no previous version to roll back to"),
        "{refused}"
    );
}

#[test]
fn remove_keeps_the_plugins_data_and_purge_deletes_it() {
    let cli = Cli::new();
    let echo = dist().join("test-echo");
    cli.ok(&["plugin", "install", s(&echo), "--grant-requested"]);
    set_secret(&cli, "hello");
    call(&cli, "kv-put", r#"{"key":"k","value":"v1"}"#);
    cli.ok(&["plugin", "config", "test-echo", "color=red"]);

    let said = cli.ok(&["plugin", "remove", "test-echo"]);
    assert!(
        said.contains("kv data are kept") && said.contains("osprey plugin remove test-echo --purge"),
        "{said}"
    );
    // A reinstall picks up where it left off.
    cli.ok(&["plugin", "install", s(&echo)]);
    assert_eq!(call(&cli, "kv-get", r#"{"key":"k"}"#)["value"], "v1");
    assert_eq!(call(&cli, "secret-length", r#"{"name":"greeting"}"#)["length"], 5);

    let said = cli.ok(&["plugin", "remove", "test-echo", "--purge"]);
    assert!(
        said.contains("purged 'test-echo': 1 kv entries, 1 secrets, 1 settings, its grant"),
        "{said}"
    );
    assert!(!cli.ok(&["plugin", "list"]).contains("test-echo"));
    let purges = audited(&cli, "plugin.purge");
    assert_eq!(purges.len(), 1, "{purges:?}");
    assert_eq!(purges[0]["target"], "plugin:test-echo");
    assert_eq!(
        purges[0]["details"],
        serde_json::json!({"kv_entries": 1, "secrets": 1, "grant": true, "settings": 1})
    );
    let removes = audited(&cli, "plugin.remove");
    assert_eq!(removes.len(), 2);
    assert_eq!(removes[1]["details"]["version"], "0.1.0");

    // Reinstalled, it starts from nothing: no grant, no secret, no kv entry, no setting.
    cli.ok(&["plugin", "install", s(&echo)]);
    let now = inspect(&cli);
    assert_eq!(now["granted"], serde_json::Value::Null, "{now}");
    assert_eq!(now["secrets_set"], serde_json::json!([]));
    assert_eq!(now["config"]["color"], serde_json::Value::Null, "{now}");
    cli.ok(&["plugin", "grant", "test-echo", "--requested"]);
    assert_eq!(
        call(&cli, "kv-get", r#"{"key":"k"}"#)["value"],
        serde_json::Value::Null
    );
    let out = cli.run(&[
        "plugin",
        "call",
        "test-echo",
        "secret-length",
        "--input",
        r#"{"name":"greeting"}"#,
    ]);
    assert!(!out.status.success(), "the secret is gone");

    // Purging what a plain removal kept works without the plugin installed.
    cli.ok(&["plugin", "config", "test-echo", "color=blue"]);
    cli.ok(&["plugin", "remove", "test-echo"]);
    let said = cli.ok(&["plugin", "remove", "test-echo", "--purge"]);
    assert!(said.contains("1 settings, its grant"), "{said}");
    assert!(
        cli.fails(&["plugin", "remove", "test-echo"])
            .contains("test-echo")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_picks_up_a_rollback() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let token = cli
        .ok(&["token", "create", "auditor", "--role", "auditor"])
        .trim()
        .to_owned();
    cli.ok(&[
        "plugin",
        "install",
        s(&dist().join("test-echo")),
        "--grant-requested",
    ]);
    cli.ok(&["plugin", "install", s(&echo_changed(work.path()))]);
    cli.ok(&[
        "plugin",
        "grant",
        "test-echo",
        "--http",
        "https://api.example.com",
    ]);
    let mut server = Server::start(&cli);
    let url = format!("http://{}/api/v1/plugins/test-echo", server.addr);
    let http = http_client();
    let show = async || -> serde_json::Value {
        let response = http.get(&url).bearer_auth(&token).send().await.unwrap();
        response.text().await.unwrap().parse().unwrap()
    };
    let shown = show().await;
    assert_eq!(shown["settings"]["motto"], "stay bold", "{shown}");
    assert_eq!(shown["granted"]["http"][0], "https://api.example.com");

    cli.ok(&["plugin", "rollback", "test-echo"]);
    eventually(10, "the server to pick up the rollback", async || {
        let shown = show().await;
        (shown["settings"]["motto"] == "stay calm" && shown["granted"]["http"].is_null()).then_some(())
    })
    .await;
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}

#[test]
fn a_rollback_to_a_pack_names_its_digest() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let pack = work.path().join("echo.ospack");
    cli.ok(&["pack", "build", s(&dist().join("test-echo")), "-o", s(&pack)]);
    cli.ok(&["plugin", "install", s(&pack), "--allow-unsigned"]);
    let installed = audited(&cli, "plugin.install");
    let digest = installed[0]["details"]["pack"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{digest}");

    cli.ok(&["plugin", "install", s(&echo_changed(work.path()))]);
    let said = cli.ok(&["plugin", "rollback", "test-echo"]);
    assert!(said.contains(&format!("pack {digest}")), "{said}");
    assert!(said.contains("nothing was granted"), "{said}");
    let rollback = &audited(&cli, "plugin.rollback")[0]["details"];
    assert_eq!(rollback["pack"]["digest"], digest.as_str());
    assert_eq!(rollback["pack"]["allow_unsigned"], true);
    assert_eq!(rollback["from_pack"], serde_json::Value::Null);

    // Back to the folder install: it came from no pack.
    cli.ok(&["plugin", "rollback", "test-echo"]);
    let rollback = &audited(&cli, "plugin.rollback")[1]["details"];
    assert_eq!(rollback["pack"], serde_json::Value::Null);
    assert_eq!(rollback["from_pack"]["digest"], digest.as_str());
}

#[test]
fn install_with_yes_says_it_is_compiling_and_grants_what_is_requested() {
    let cli = Cli::new();
    let out = cli.run(&["plugin", "install", s(&dist().join("test-echo")), "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("compiling the component"), "{said}");
    // Granted without a prompt: kv (a granted quota) works.
    call(&cli, "kv-put", r#"{"key":"k","value":"granted"}"#);
    assert_eq!(call(&cli, "kv-get", r#"{"key":"k"}"#)["value"], "granted");
}
