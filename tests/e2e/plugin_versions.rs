//! Versions of the WIT contract: a component built against 0.1.0 (kept built, in
//! tests/fixtures/echo-v0.1.0) installs and answers next to one built against 0.2.0, every
//! host import serving both; and a 0.2.0 error's `retry-after` sets when a run retries, both
//! the executor's retry of a failed run and the script's `retry`.

use crate::support::{Cli, TestHost, dist, text, write_playbook};
use osprey::plugin::{ErrorKind, WitVersion};
use osprey::store::now_ms;
use osprey::store::runs::RunStatus;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The built 0.1.0 fixture, which describes itself as `test-echo-v0-1`.
fn fixture_v0_1_0() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/echo-v0.1.0")
}

const OLD: &str = "test-echo-v0-1";
const NEW: &str = "test-echo";
const HOUR_MS: i64 = 3_600_000;

#[test]
fn a_0_1_0_component_installs_and_answers_next_to_a_0_2_0_one() {
    let cli = Cli::new();
    for dir in [fixture_v0_1_0(), dist().join(NEW)] {
        cli.ok(&["plugin", "install", dir.to_str().unwrap(), "--grant-requested"]);
    }
    let call = |plugin: &str, action: &str, input: &str| -> serde_json::Value {
        serde_json::from_str(&cli.ok(&["plugin", "call", plugin, action, "--input", input])).unwrap()
    };
    for plugin in [OLD, NEW] {
        // The export, and each osprey import (secrets, kv, config, log) through its version's
        // adapter.
        assert_eq!(
            call(plugin, "echo", r#"{"message":"hi"}"#)["message"],
            "hi",
            "{plugin}"
        );
        let out = cli.run_with_stdin(
            &["secret", "set", plugin, "greeting"],
            &format!("hello from {plugin}\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(
            call(plugin, "secret-length", r#"{"name":"greeting"}"#)["length"],
            json!(format!("hello from {plugin}").len()),
        );
        call(
            plugin,
            "kv-put",
            &format!(r#"{{"key":"k","value":"kept by {plugin}"}}"#),
        );
        assert_eq!(
            call(plugin, "kv-get", r#"{"key":"k"}"#)["value"],
            format!("kept by {plugin}")
        );
        assert_eq!(call(plugin, "config", r#"{"key":"motto"}"#)["value"], "stay calm");
        assert!(call(plugin, "context", "{}")["run_id"].is_string());
        let err = cli.fails(&[
            "plugin",
            "call",
            plugin,
            "fail",
            "--input",
            r#"{"message":"slow down"}"#,
        ]);
        assert!(
            err.contains("rate-limited") && err.contains("slow down"),
            "{plugin}: {err}"
        );
    }
    // The operator sees which contract each was built against.
    let listed: serde_json::Value = serde_json::from_str(&cli.ok(&["plugin", "list", "--json"])).unwrap();
    let contract = |name: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["contract"].clone())
    };
    assert_eq!(contract(OLD), Some(json!("0.1.0")));
    assert_eq!(contract(NEW), Some(json!("0.2.0")));
    assert!(
        cli.ok(&["plugin", "inspect", OLD])
            .contains("contract:  osprey:plugin@0.1.0")
    );
    // Each plugin kept its own kv and secret: the two versions share one implementation of
    // the imports, not one plugin's data.
    assert_eq!(
        call(OLD, "kv-get", r#"{"key":"k"}"#)["value"],
        format!("kept by {OLD}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_component_is_served_its_own_version_and_only_0_2_0_errors_say_when_to_retry() {
    let host = TestHost::new().await;
    host.install_from(&fixture_v0_1_0(), OLD).await;
    host.install(NEW).await;
    assert_eq!(host.app.runtime.get(OLD).unwrap().contract(), WitVersion::V0_1_0);
    assert_eq!(host.app.runtime.get(NEW).unwrap().contract(), WitVersion::V0_2_0);
    // The new action exists only in the component built against 0.2.0.
    let old_actions: Vec<String> = host
        .app
        .runtime
        .get(OLD)
        .unwrap()
        .description
        .actions
        .iter()
        .map(|a| a.name.clone())
        .collect();
    assert!(!old_actions.contains(&"fail-later".to_owned()), "{old_actions:?}");

    let e = host
        .call(
            NEW,
            "fail-later",
            json!({"message": "daily quota spent", "retry_after_ms": HOUR_MS}),
        )
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.retryable), (ErrorKind::RateLimited, true));
    assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(serde_json::to_value(&e).unwrap()["retry_after_ms"], HOUR_MS);

    let e = host
        .call(OLD, "fail", json!({"message": "slow down"}))
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.retryable, e.retry_after),
        (ErrorKind::RateLimited, true, None)
    );
    assert!(serde_json::to_value(&e).unwrap().get("retry_after_ms").is_none());
}

/// A host whose playbooks folder holds `name` with `script`.
async fn host_with_playbook(name: &str, script: &str) -> (TestHost, tempfile::TempDir) {
    let playbooks = tempfile::tempdir().unwrap();
    write_playbook(playbooks.path(), name, "", script);
    let dir = playbooks.path().to_owned();
    let host = TestHost::with_config(|c| c.playbooks_dir = dir).await;
    host.install(NEW).await;
    (host, playbooks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_retried_when_the_plugin_said_not_before() {
    let (host, _playbooks) = host_with_playbook(
        "quota",
        r#"invoke("test-echo", "fail-later", #{ message: "daily quota spent", retry_after_ms: 3600000 })"#,
    )
    .await;
    let store = &host.app.store;
    let id = host
        .app
        .executor
        .start("quota", &Default::default(), "test")
        .await
        .unwrap();
    let before = now_ms();
    host.app.executor.work_once(4).await.unwrap();
    let after = now_ms();
    let run = store.run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Queued, "a retryable failure is retried");
    assert_eq!(run.attempts, 1);
    // Not after the 2 s backoff: an hour from the failure, as the plugin asked.
    let wake_at = run.wake_at.unwrap();
    assert!(
        (before + HOUR_MS..=after + HOUR_MS).contains(&wake_at),
        "wakes at {wake_at}, an hour after {before}..{after}"
    );
    let error = run.error.unwrap();
    let at = chrono::DateTime::from_timestamp_millis(wake_at)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        error.contains("daily quota spent")
            && error.contains(&format!("retrying at {at}, in 1h, as the plugin asked")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripts_retry_sleeps_as_long_as_the_plugin_said_and_journals_it() {
    let (host, _playbooks) = host_with_playbook(
        "patient",
        r#"retry(3, "2s", || invoke("test-echo", "fail-later", #{ message: "come back in 90 s", retry_after_ms: 90000 }))"#,
    )
    .await;
    let store = &host.app.store;
    let id = host
        .app
        .executor
        .start("patient", &Default::default(), "test")
        .await
        .unwrap();
    let before = now_ms();
    host.app.executor.work_once(4).await.unwrap();
    let after = now_ms();
    let run = store.run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    let wake_at = run.wake_at.unwrap();
    assert!(
        (before + 90_000..=after + 90_000).contains(&wake_at),
        "wakes at {wake_at}"
    );
    let steps = store.steps(&id).await.unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["invoke", "sleep"]);
    assert!(!steps[0].ok);
    assert_eq!(
        steps[0].outcome["retry_after_ms"], 90_000,
        "the journal keeps what the plugin asked"
    );
    assert_eq!(steps[1].request, json!({ "ms": 90_000 }), "not the 2 s backoff");
}
