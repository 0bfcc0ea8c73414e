//! Playbooks end to end: validate and test from the CLI, run and follow, the timeline,
//! restart from a step, cancel, waits that survive a server crash, non-determinism, and 50
//! concurrent runs surviving `kill -9` without repeating a completed step.

use crate::support::step_counter::StepCounter;
use crate::support::{Cli, Server, TestHost, dist, eventually, run_id, store_of, text, write_playbook};
use osprey::store::runs::RunStatus;
use serde_json::json;
use std::sync::Arc;

fn install_echo(cli: &Cli) {
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-echo").to_str().unwrap(),
        "--grant-requested",
    ]);
}

#[test]
fn validate_and_test_report_problems_with_file_and_line() {
    let cli = Cli::new();
    let dir = cli.playbooks_dir();
    write_playbook(
        &dir,
        "bad-cron",
        "\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 25 * * *\"\n",
        "1",
    );
    let err = cli.run(&["playbook", "validate", dir.join("bad-cron").to_str().unwrap()]);
    assert_eq!(err.status.code(), Some(1));
    let stderr = text(&err.stderr);
    assert!(
        stderr.contains("bad-cron/playbook.toml:4: cron schedule '0 25 * * *'"),
        "{stderr}"
    );

    write_playbook(&dir, "bad-script", "", "let x = ;\n");
    let stderr = text(
        &cli.run(&["playbook", "validate", dir.join("bad-script").to_str().unwrap()])
            .stderr,
    );
    assert!(stderr.contains("bad-script/playbook.rhai:1:"), "{stderr}");

    // A case that fails says what differed.
    let pb = write_playbook(
        &dir,
        "greeter",
        "",
        r#"invoke("test-echo", "echo", #{ message: "hi" }).message"#,
    );
    std::fs::create_dir_all(pb.join("tests")).unwrap();
    std::fs::write(
        pb.join("tests/ok.toml"),
        "[[mock]]\nplugin = \"test-echo\"\naction = \"echo\"\noutput = { message = \"hi\" }\n[expect]\nstatus = \"completed\"\noutput = \"hi\"\n",
    )
    .unwrap();
    std::fs::write(
        pb.join("tests/wrong.toml"),
        "[[mock]]\nplugin = \"test-echo\"\naction = \"echo\"\noutput = { message = \"hello\" }\n[expect]\nstatus = \"completed\"\noutput = \"hi\"\n",
    )
    .unwrap();
    std::fs::write(
        pb.join("tests/unmocked.toml"),
        "[expect]\nstatus = \"completed\"\n",
    )
    .unwrap();
    let out = cli.run(&["playbook", "test", pb.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ok      greeter/ok.toml"), "{stdout}");
    assert!(stdout.contains("FAILED  greeter/wrong.toml"), "{stdout}");
    assert!(
        stdout.contains("expected output containing \"hi\", got \"hello\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("no canned response for test-echo.echo"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 2 failed"), "{stdout}");
}

#[test]
fn the_bundled_playbooks_pass_their_tests() {
    let cli = Cli::new();
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
    let out = cli
        .command()
        .args(["playbook", "test"])
        .env("OSPREY_PLAYBOOKS_DIR", &bundled)
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("ip-enrichment/vendor-blip.toml"), "{stdout}");
    assert!(
        !stdout.contains("FAILED") && !stdout.contains("has no tests"),
        "{stdout}"
    );
}

#[test]
fn a_run_is_followed_shown_restarted_onto_another_branch_and_cancelled() {
    let cli = Cli::new();
    install_echo(&cli);
    write_playbook(
        &cli.playbooks_dir(),
        "mood",
        "[inputs.who]\ntype = \"string\"\n",
        r#"
        log(`checking on ${input.who}`);
        let motto = invoke("test-echo", "config", #{ key: "motto" }).value;
        if motto == "stay calm" { #{ who: input.who, mood: "calm" } } else { #{ who: input.who, mood: "restless", motto: motto } }
        "#,
    );
    let out = cli.ok(&["playbook", "run", "mood", "--input", r#"{"who":"ops"}"#]);
    let id = run_id(&out);
    assert!(
        out.contains("#1   log") && out.contains("checking on ops"),
        "{out}"
    );
    assert!(
        out.contains("#2   invoke test-echo.config") && out.contains("stay calm"),
        "{out}"
    );
    assert!(
        out.contains(&format!("run {id} completed")) && out.contains("\"calm\""),
        "{out}"
    );

    let shown = cli.ok(&["run", "show", &id]);
    assert!(
        shown.contains("completed") && shown.contains("Timeline (2 steps)"),
        "{shown}"
    );
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(json["run"]["output"]["mood"], "calm");
    assert_eq!(json["steps"][1]["request"]["input"]["key"], "motto");
    assert!(cli.ok(&["run", "list"]).contains(&id));

    // The world changed; re-open the run at step 2 and it takes the other branch. Step 1 is
    // kept (not logged again).
    cli.ok(&["plugin", "config", "test-echo", "motto=keep moving"]);
    let out = cli.ok(&["run", "restart", &id, "--from-step", "2", "--follow"]);
    assert!(out.contains("restarts from step 2 (1 steps cut"), "{out}");
    assert!(out.contains("restless") && out.contains("keep moving"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(json["steps"].as_array().unwrap().len(), 2);
    let err = cli.fails(&["run", "restart", &id, "--from-step", "9"]);
    assert!(err.contains("between 1 and 3"), "{err}");

    // Cancel a waiting run.
    write_playbook(&cli.playbooks_dir(), "napper", "", r#"sleep("1h"); "rested""#);
    let out = cli.ok(&["playbook", "run", "napper"]);
    let nap = run_id(&out);
    assert!(out.contains("is waiting until"), "{out}");
    cli.ok(&["run", "cancel", &nap]);
    assert!(cli.ok(&["run", "show", &nap]).contains("cancelled"));
    let err = cli.fails(&["run", "cancel", &nap]);
    assert!(err.contains("already ended"), "{err}");
    let err = cli.fails(&["playbook", "run", "napper", "--input", r#"{"x":1}"#]);
    assert!(err.contains("no input 'x'"), "{err}");
    let err = cli.fails(&["playbook", "run", "nope"]);
    assert!(
        err.contains("no playbook named 'nope'") && err.contains("mood, napper"),
        "{err}"
    );
}

#[test]
fn a_changed_script_is_caught_as_non_determinism_on_replay() {
    let cli = Cli::new();
    install_echo(&cli);
    let pb = write_playbook(
        &cli.playbooks_dir(),
        "drift",
        "",
        r#"invoke("test-echo", "echo", #{ message: "a" }); sleep("1h"); "done""#,
    );
    let id = run_id(&cli.ok(&["playbook", "run", "drift"]));
    std::fs::write(
        pb.join("playbook.rhai"),
        r#"invoke("test-echo", "echo", #{ message: "b" }); sleep("1h"); "done""#,
    )
    .unwrap();
    // Replaying the journal (steps 1-2 kept) against the edited script.
    let out = cli.run(&["run", "restart", &id, "--from-step", "3", "--follow"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("non-determinism at step 1"), "{stdout}");
    assert!(
        stdout.contains(r#""message":"a""#) && stdout.contains(r#""message":"b""#),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_survives_a_server_crash_and_wakes_on_time() {
    let cli = Cli::new();
    install_echo(&cli);
    write_playbook(
        &cli.playbooks_dir(),
        "naps",
        "",
        r#"log("before"); sleep(2); log("after"); "woke""#,
    );
    let server = Server::start(&cli);
    let id = run_id(&cli.ok(&["playbook", "run", "naps", "--detach"]));
    let store = store_of(&cli).await;
    let wake_at = eventually(20, "the run to wait", async || {
        let r = store.run(&id).await.unwrap().unwrap();
        (r.status == RunStatus::Waiting).then_some(r.wake_at)
    })
    .await
    .expect("a waiting run has a wake time");
    server.kill_9();
    // The wake time passes while no server runs: the restarted one must catch up on it.
    eventually(10, "the run's wake time to pass", async || {
        (osprey::store::now_ms() > wake_at).then_some(())
    })
    .await;
    let _server = Server::start(&cli);
    let run = eventually(20, "the run to complete after the restart", async || {
        let r = store.run(&id).await.unwrap().unwrap();
        (r.status == RunStatus::Completed).then_some(r)
    })
    .await;
    assert_eq!(run.output, Some(json!("woke")));
    let kinds: Vec<String> = store
        .steps(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["log", "sleep", "log"],
        "nothing before the wait was repeated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_runs_survive_kill_9_without_repeating_a_completed_step() {
    let counter = StepCounter::start(std::time::Duration::from_millis(40)).await;
    let vendor = counter.base_url.clone();
    let cli = Cli::new();
    // Commands run in the data directory, so they all read this ./osprey.toml.
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[runs]\nlease = \"2s\"\nworkers = 8\n",
    )
    .unwrap();
    cli.ok(&["plugin", "install", dist().join("test-echo").to_str().unwrap()]);
    cli.ok(&["plugin", "grant", "test-echo", "--http", &vendor]);
    write_playbook(
        &cli.playbooks_dir(),
        "pinger",
        "",
        &format!(r#"for i in 0..5 {{ invoke("test-echo", "ping", #{{ url: "{vendor}/ping" }}); }} "done""#),
    );
    let store = store_of(&cli).await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(run_id(&cli.ok(&["playbook", "run", "pinger", "--detach"])));
    }

    let server = Server::start(&cli);
    // Kill it mid-way: some steps journaled, far from all.
    eventually(60, "the first steps", async || {
        let done: usize = futures::future::join_all(ids.iter().map(|id| store.steps(id)))
            .await
            .into_iter()
            .map(|s| s.unwrap().len())
            .sum();
        (done >= 40).then_some(())
    })
    .await;
    server.kill_9();
    let mut journaled_before = Vec::new();
    for id in &ids {
        for s in store.steps(id).await.unwrap() {
            journaled_before.push(format!("{id}:{}", s.seq));
        }
    }
    assert!(
        journaled_before.len() < 250,
        "the crash came before the end ({} steps)",
        journaled_before.len()
    );

    let _server = Server::start(&cli);
    eventually(120, "every run to complete after the restart", async || {
        let mut all = true;
        for id in &ids {
            all &= store.run(id).await.unwrap().unwrap().status == RunStatus::Completed;
        }
        all.then_some(())
    })
    .await;
    let counts = counter.counts();
    let repeated = counts.values().filter(|n| **n > 1).count();
    eprintln!(
        "{} steps journaled before the crash; {repeated} in-flight steps were sent again after it",
        journaled_before.len()
    );
    for key in &journaled_before {
        assert_eq!(
            counts.get(key),
            Some(&1),
            "step {key} completed before the crash and reached the vendor again"
        );
    }
    for id in &ids {
        let steps = store.steps(id).await.unwrap();
        assert_eq!(steps.len(), 5, "run {id}");
        for s in steps {
            let n = counts.get(&format!("{id}:{}", s.seq)).copied().unwrap_or(0);
            assert!(
                (1..=2).contains(&n),
                "step {id}:{} reached the vendor {n} times",
                s.seq
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_triggers_fire_on_schedule_once_across_nodes_and_follow_the_missed_policy() {
    use osprey::schedule::{Clock, Scheduler};
    use std::sync::atomic::{AtomicI64, Ordering};
    struct ManualClock(AtomicI64);
    impl Clock for ManualClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    };

    let playbooks = tempfile::tempdir().unwrap();
    write_playbook(
        playbooks.path(),
        "month-end",
        "[[triggers]]\nkind = \"cron\"\nschedule = \"*/30 9-14 30 * *\"\ntimezone = \"Europe/London\"\ninput = { amount = 10 }\n[inputs.amount]\ntype = \"integer\"\n",
        "input.amount",
    );
    write_playbook(
        playbooks.path(),
        "skipper",
        "[[triggers]]\nkind = \"cron\"\nschedule = \"0 * * * *\"\nmissed = \"skip\"\n",
        "1",
    );
    let dir = playbooks.path().to_owned();
    let host = TestHost::with_config(|c| c.playbooks_dir = dir).await;
    let clock = Arc::new(ManualClock(AtomicI64::new(at("2026-11-30T08:59:00Z"))));
    // Two schedulers over one store: two nodes.
    let node = |c: Arc<ManualClock>| {
        Scheduler::new(
            host.app.executor.clone(),
            host.app.playbooks.clone(),
            c,
            chrono_tz::UTC,
        )
    };
    let (a, b) = (node(clock.clone()), node(clock.clone()));
    let month_end_runs = async || {
        host.app
            .store
            .runs(Some("month-end"), None, 100)
            .await
            .unwrap()
            .len()
    };

    assert!(
        a.tick().await.unwrap().is_empty(),
        "first look: schedules set up, nothing due"
    );
    clock.0.store(at("2026-11-30T09:00:00Z"), Ordering::SeqCst);
    let (ra, rb) = (a.tick().await.unwrap(), b.tick().await.unwrap());
    assert_eq!(
        ra.len() + rb.len(),
        2,
        "month-end and skipper each fire once, on one node: {ra:?} {rb:?}"
    );
    assert_eq!(month_end_runs().await, 1);
    let run = host
        .app
        .store
        .runs(Some("month-end"), None, 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(run.input, json!({"amount": 10}));
    assert_eq!(run.origin, "cron #0");
    assert_eq!(
        run.context,
        json!({"cron": {"fire_at": at("2026-11-30T09:00:00Z")}}),
        "the run names its occurrence"
    );
    assert!(
        a.tick().await.unwrap().is_empty() && b.tick().await.unwrap().is_empty(),
        "not again at the same time"
    );

    clock.0.store(at("2026-11-30T09:30:05Z"), Ordering::SeqCst);
    let (ra, rb) = futures::future::join(a.tick(), b.tick()).await;
    assert_eq!(ra.unwrap().len() + rb.unwrap().len(), 1, "two nodes, one run");
    assert_eq!(month_end_runs().await, 2);

    // Down from 09:31 until 12:10: "once" fires one catch-up run; "skip" fires none.
    clock.0.store(at("2026-11-30T12:10:00Z"), Ordering::SeqCst);
    let fired = a.tick().await.unwrap();
    assert_eq!(
        month_end_runs().await,
        3,
        "one run for all the missed occurrences"
    );
    assert_eq!(
        fired.len(),
        1,
        "skipper skipped its missed 10:00, 11:00 and 12:00: {fired:?}"
    );
    // Then the schedule goes on: next at 12:30...
    clock.0.store(at("2026-11-30T12:30:00Z"), Ordering::SeqCst);
    a.tick().await.unwrap();
    assert_eq!(month_end_runs().await, 4);
    // ...down again over 13:00-14:30: one catch-up on the 1st, then nothing until the 30th.
    clock.0.store(at("2026-12-01T09:00:00Z"), Ordering::SeqCst);
    a.tick().await.unwrap();
    assert_eq!(month_end_runs().await, 5);
    clock.0.store(at("2026-12-01T09:30:00Z"), Ordering::SeqCst);
    a.tick().await.unwrap();
    assert_eq!(
        month_end_runs().await,
        5,
        "*/30 9-14 30 * * does not fire on the 1st"
    );
    clock.0.store(at("2026-12-30T09:00:00Z"), Ordering::SeqCst);
    a.tick().await.unwrap();
    assert_eq!(month_end_runs().await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_failing_with_a_retryable_error_is_retried_then_dead_lettered() {
    let playbooks = tempfile::tempdir().unwrap();
    write_playbook(
        playbooks.path(),
        "flaky",
        "",
        r#"log("trying"); invoke("test-echo", "fail", #{ message: "vendor says slow down" })"#,
    );
    write_playbook(
        playbooks.path(),
        "broken",
        "",
        r#"log("x"); throw "a bug in the playbook""#,
    );
    let dir = playbooks.path().to_owned();
    let host = TestHost::with_config(|c| {
        c.playbooks_dir = dir;
        c.runs.max_attempts = 2;
    })
    .await;
    host.install("test-echo").await;
    let store = &host.app.store;

    let id = host
        .app
        .executor
        .start("flaky", &Default::default(), "test")
        .await
        .unwrap();
    host.app.executor.work_once(4).await.unwrap();
    let run = store.run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Queued, "a retryable failure is retried");
    assert!(
        run.error.as_deref().unwrap().contains("rate-limited"),
        "{:?}",
        run.error
    );
    assert!(run.wake_at.unwrap() > osprey::store::now_ms(), "after a backoff");
    let kinds: Vec<String> = store
        .steps(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["log"],
        "the failed call is dropped from the journal, to be taken again"
    );

    let run = eventually(15, "the second attempt", async || {
        host.app.executor.work_once(4).await.unwrap();
        let r = store.run(&id).await.unwrap().unwrap();
        r.status.is_final().then_some(r)
    })
    .await;
    assert_eq!(run.status, RunStatus::Dead);
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .starts_with("gave up after 2 attempts"),
        "{:?}",
        run.error
    );
    assert_eq!(
        store.steps(&id).await.unwrap().len(),
        1,
        "'trying' was logged once, not per attempt"
    );

    // A bug in the script is not retried.
    let id = host
        .app
        .executor
        .start("broken", &Default::default(), "test")
        .await
        .unwrap();
    host.app.executor.work_once(4).await.unwrap();
    let run = store.run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error.as_deref().unwrap().contains("a bug in the playbook"),
        "{:?}",
        run.error
    );
}
