//! Playbooks written to hurt the server, against the real binary: values nested thousands
//! deep, a run whose replay keeps dying with the process, a loop that never takes a step
//! (cancelled, and interrupted by shutdown), a call to a plugin the playbook does not declare,
//! and a damaged row in the store. The server stays up and every list stays readable.

use crate::support::{
    Cli, Server, dist, eventually, http_client, raw_db as db, run_id, store_of, write_playbook,
};
use osprey::store::Store;
use osprey::store::runs::{RunRecord, RunStatus};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Start a run of `playbook` through the CLI, for the server to take.
fn start(cli: &Cli, playbook: &str) -> String {
    run_id(&cli.ok(&["playbook", "run", playbook, "--detach"]))
}

async fn run_of(store: &Store, id: &str) -> RunRecord {
    store.run(id).await.unwrap().expect("the run exists")
}

/// Wait until run `id` is in `status`.
async fn until_status(store: &Store, id: &str, status: RunStatus, secs: u64) -> RunRecord {
    eventually(secs, &format!("run {id} to be {status}"), async || {
        let r = run_of(store, id).await;
        (r.status == status).then_some(r)
    })
    .await
}

fn config(cli: &Cli, text: &str) {
    std::fs::write(cli.data_dir().join("osprey.toml"), text).unwrap();
}

/// A loop that never takes a step, with limits that let it spin for minutes.
const SPIN: &str = "[limits]\nmax_operations = 1000000000\nwall_time = \"10m\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_nested_thousands_deep_fail_the_run_not_the_server() {
    let cli = Cli::new();
    let dir = cli.playbooks_dir();
    let build = "let a = []; for i in 0..2000 { a = [a]; }";
    write_playbook(&dir, "deep-output", "", &format!("{build} a"));
    write_playbook(&dir, "deep-json", "", &format!("{build} to_json(a)"));
    let server = Server::start(&cli);
    let store = store_of(&cli).await;
    for playbook in ["deep-output", "deep-json"] {
        let id = start(&cli, playbook);
        let run = until_status(&store, &id, RunStatus::Failed, 60).await;
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("nested more than 64 levels"),
            "{playbook}: {error}"
        );
    }
    server.assert_healthy().await;
    // Every list still reads.
    let listed = cli.ok(&["run", "list"]);
    assert!(
        listed.contains("deep-output") && listed.contains("deep-json"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_replay_dies_with_the_server_three_times_is_set_aside() {
    let cli = Cli::new();
    config(&cli, "[runs]\nlease = \"1s\"\nmax_unfinished_replays = 3\n");
    write_playbook(&cli.playbooks_dir(), "spin", SPIN, "loop { }");
    let store = store_of(&cli).await;
    let id = start(&cli, "spin");
    // Three times: the server takes the run, and dies while replaying it.
    for claim in 1..=3_i64 {
        let server = Server::start(&cli);
        eventually(60, &format!("claim {claim} of the run"), async || {
            let unfinished: i64 = sqlx::query_scalar("SELECT unfinished FROM runs WHERE id = $1")
                .bind(&id)
                .fetch_one(&mut db(&cli).await)
                .await
                .unwrap();
            (unfinished == claim).then_some(())
        })
        .await;
        server.kill_9();
        // The lease runs out before the next server may take it.
        eventually(30, "the lease to run out", async || {
            let expired: Option<i64> = sqlx::query_scalar("SELECT locked_until FROM runs WHERE id = $1")
                .bind(&id)
                .fetch_one(&mut db(&cli).await)
                .await
                .unwrap();
            (expired.unwrap_or(0) < osprey::store::now_ms()).then_some(())
        })
        .await;
    }
    let server = Server::start(&cli);
    let run = until_status(&store, &id, RunStatus::Dead, 60).await;
    let error = run.error.unwrap_or_default();
    assert!(error.contains("did not end 3 times in a row"), "{error}");
    assert!(error.contains(&format!("osprey run restart {id}")), "{error}");
    eventually(10, "the log line", async || {
        let logs = server.logs.lock().unwrap();
        logs.iter()
            .any(|l| l.contains("poison run set aside as dead"))
            .then_some(())
    })
    .await;
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_loop_that_takes_no_step_and_frees_its_worker() {
    let cli = Cli::new();
    config(&cli, "[runs]\nworkers = 1\n");
    let dir = cli.playbooks_dir();
    write_playbook(&dir, "spin", SPIN, "loop { }");
    write_playbook(&dir, "quick", "", "42");
    let server = Server::start(&cli);
    let store = store_of(&cli).await;
    let spin = start(&cli, "spin");
    until_status(&store, &spin, RunStatus::Running, 60).await;
    let quick = start(&cli, "quick");
    cli.ok(&["run", "cancel", &spin]);
    until_status(&store, &spin, RunStatus::Cancelled, 10).await;
    // The only worker is free again: the next run completes.
    let done = until_status(&store, &quick, RunStatus::Completed, 30).await;
    assert_eq!(done.output, Some(Value::from(42)));
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_a_spinning_replay_and_the_run_waits_for_the_next_start() {
    let cli = Cli::new();
    write_playbook(&cli.playbooks_dir(), "spin", SPIN, "log(\"started\"); loop { }");
    let mut server = Server::start(&cli);
    let store = store_of(&cli).await;
    let id = start(&cli, "spin");
    eventually(60, "the first step", async || {
        (store.steps(&id).await.unwrap().len() == 1).then_some(())
    })
    .await;
    let (tx, rx) = std::sync::mpsc::channel();
    let began = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(server.terminate());
    });
    let status = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server stops within 20 s of SIGTERM");
    assert!(status.success(), "{status}");
    assert!(began.elapsed() < Duration::from_secs(20));
    // Not failed: queued again with its journal, for the next server.
    let run = run_of(&store, &id).await;
    assert_eq!(run.status, RunStatus::Queued, "{:?}", run.error);
    assert_eq!(store.steps(&id).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_calls_only_the_plugins_it_declares() {
    let cli = Cli::new();
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-echo").to_str().unwrap(),
        "--grant-requested",
    ]);
    let dir = cli.playbooks_dir();
    let call = r#"invoke("test-echo", "echo", #{ message: "hi" }).message"#;
    let sneaky = write_playbook(&dir, "sneaky", "plugins = []\n", call);
    write_playbook(&dir, "honest", "plugins = [\"test-echo\"]\n", call);
    let validated = cli.run(&["playbook", "validate", sneaky.to_str().unwrap()]);
    assert!(validated.status.success());
    let warning = String::from_utf8_lossy(&validated.stderr);
    assert!(
        warning.contains("the script calls plugin 'test-echo', which playbook.toml does not declare"),
        "{warning}"
    );
    let server = Server::start(&cli);
    let store = store_of(&cli).await;
    let id = start(&cli, "sneaky");
    let run = until_status(&store, &id, RunStatus::Failed, 60).await;
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("may not call plugin 'test-echo': it declares none"),
        "{error}"
    );
    assert!(store.steps(&id).await.unwrap().is_empty(), "nothing was called");
    let id = start(&cli, "honest");
    let run = until_status(&store, &id, RunStatus::Completed, 60).await;
    assert_eq!(run.output, Some(Value::from("hi")));
    // The API shows each playbook's grant.
    let token = cli
        .ok(&["token", "create", "auditor", "--role", "auditor"])
        .trim()
        .to_owned();
    let shown: Value = http_client()
        .get(format!("http://{}/api/v1/playbooks/honest", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(shown["plugins"], serde_json::json!(["test-echo"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_row_is_listed_and_marked_and_the_others_read() {
    let cli = Cli::new();
    write_playbook(&cli.playbooks_dir(), "fine", "", "1");
    let server = Server::start(&cli);
    let store = store_of(&cli).await;
    let fine = start(&cli, "fine");
    until_status(&store, &fine, RunStatus::Completed, 60).await;
    // Written behind Osprey's back: an input nested deeper than any reader accepts.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    sqlx::query(
        "INSERT INTO runs (id, playbook, script_hash, input, origin, status, attempts, run_at, claims, created_at, updated_at)
         VALUES ('r-damaged', 'fine', 'x', $1, 'manual', 'failed', 0, NULL, 0, 1, 1)",
    )
    .bind(&deep)
    .execute(&mut db(&cli).await)
    .await
    .unwrap();
    let token = cli
        .ok(&["token", "create", "reader", "--role", "auditor"])
        .trim()
        .to_owned();
    let r = http_client()
        .get(format!("http://{}/api/v1/runs", server.addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let items = page["items"].as_array().unwrap();
    let damaged = items.iter().find(|r| r["id"] == "r-damaged").expect("listed");
    assert!(
        damaged["unreadable"]
            .as_str()
            .unwrap_or_default()
            .contains("input: recursion limit exceeded"),
        "{damaged}"
    );
    assert!(
        items
            .iter()
            .any(|r| r["id"] == fine.as_str() && r["unreadable"].is_null())
    );
    let listed = cli.ok(&["run", "list"]);
    assert!(listed.contains("r-damaged") && listed.contains(&fine), "{listed}");
    // And nothing so deep gets in through the API: a body nested 10,000 deep is refused
    // before it is parsed.
    let admin = cli
        .ok(&["token", "create", "admin", "--role", "admin"])
        .trim()
        .to_owned();
    let deep_body = format!(
        "{{\"title\": \"x\", \"fields\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = http_client()
        .post(format!("http://{}/api/v1/incidents", server.addr))
        .bearer_auth(&admin)
        .body(deep_body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("nested more than 64 levels"), "{text}");
    server.assert_healthy().await;
}
