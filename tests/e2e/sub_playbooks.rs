//! Sub-playbooks end to end: a parent starts a child with `playbook(name, input)` and gets
//! its result (a plugin call in the child), linked both ways in the store, the API and the
//! console; a child's failure is caught by its parent; a playbook that starts itself stops at
//! the depth limit; a server killed while the child runs leaves exactly one child, and the
//! parent finishes after the restart.

use crate::support::{Cli, Server, dist, eventually, http_client, run_id, store_of, write_playbook};
use osprey::store::runs::{RunRecord, RunStatus};
use serde_json::{Value, json};

fn install_echo(cli: &Cli) {
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-echo").to_str().unwrap(),
        "--grant-requested",
    ]);
}

/// A child that echoes its input through the test plugin (after `nap` seconds).
fn write_enrich(cli: &Cli, nap: u32) {
    write_playbook(
        &cli.playbooks_dir(),
        "enrich",
        "[inputs.ip]\ntype = \"string\"\n",
        &format!(
            r#"sleep({nap}); let r = invoke("test-echo", "echo", #{{ message: input.ip }}); #{{ verdict: "seen " + r.message }}"#
        ),
    );
}

/// A parent that starts `enrich` and returns what it got.
fn write_parent(cli: &Cli) {
    write_playbook(
        &cli.playbooks_dir(),
        "triage",
        "",
        r#"let r = playbook("enrich", #{ ip: "203.0.113.7" }); log("child said " + r.verdict); #{ child: r }"#,
    );
}

async fn ended(store: &osprey::store::Store, id: &str, secs: u64) -> RunRecord {
    eventually(secs, &format!("run {id} to end"), async || {
        let r = store.run(id).await.unwrap().unwrap();
        r.status.is_final().then_some(r)
    })
    .await
}

async fn api_get(server: &Server, token: &str, path: &str) -> Value {
    let r = http_client()
        .get(format!("http://{}{path}", server.addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_gets_its_childs_result_and_both_runs_link_to_each_other() {
    let cli = Cli::new();
    install_echo(&cli);
    write_enrich(&cli, 0);
    write_parent(&cli);
    let server = Server::start(&cli);
    let parent = run_id(&cli.ok(&["playbook", "run", "triage", "--detach"]));
    let store = store_of(&cli).await;
    let run = ended(&store, &parent, 30).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(
        run.output,
        Some(json!({ "child": { "verdict": "seen 203.0.113.7" } }))
    );

    let children = store.child_runs(&parent).await.unwrap();
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert_eq!(
        (child.playbook.as_str(), child.status),
        ("enrich", RunStatus::Completed)
    );
    assert_eq!(child.parent_run.as_deref(), Some(parent.as_str()));
    assert_eq!(child.input, json!({ "ip": "203.0.113.7" }));
    assert_eq!(child.origin, format!("playbook:{parent}"));
    // The child's own timeline holds its plugin call; the parent's step names the child.
    let kinds: Vec<String> = store
        .steps(&child.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds, ["sleep", "invoke"]);
    let steps = store.steps(&parent).await.unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["playbook", "playbook", "log"]);
    assert_eq!(steps[0].outcome, json!({ "run": child.id }));
    assert_eq!(steps[1].outcome["status"], "completed");

    // The API's run view links both ways.
    let token = cli
        .ok(&["token", "create", "reader", "--role", "analyst"])
        .trim()
        .to_owned();
    let shown = api_get(&server, &token, &format!("/api/v1/runs/{parent}")).await;
    assert_eq!(shown["children"][0]["id"], json!(child.id));
    assert_eq!(shown["run"]["parent_run"], Value::Null);
    let shown = api_get(&server, &token, &format!("/api/v1/runs/{}", child.id)).await;
    assert_eq!(shown["run"]["parent_run"], json!(parent));
    assert_eq!(shown["children"], json!([]));

    // So do the console's run pages.
    let cookie = sign_in(&cli, &server).await;
    let page = |id: String| {
        let (addr, cookie) = (server.addr.clone(), cookie.clone());
        async move {
            let r = http_client()
                .get(format!("http://{addr}/runs/{id}"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.text().await.unwrap()
        }
    };
    let shown = page(parent.clone()).await;
    assert!(
        shown.contains(&format!("<a href=\"/runs/{}\">{}</a>", child.id, child.id)),
        "{shown}"
    );
    assert!(shown.contains("start playbook enrich") && shown.contains("wait for playbook enrich"));
    let shown = page(child.id.clone()).await;
    assert!(
        shown.contains(&format!(
            "<a href=\"/runs/{parent}\" id=\"parent-run\">{parent}</a>"
        )),
        "{shown}"
    );
}

/// An analyst signed in to the console: the session cookie.
async fn sign_in(cli: &Cli, server: &Server) -> String {
    const PASSWORD: &str = "correct horse battery";
    cli.ok(&[
        "user",
        "add",
        "ana",
        "--email",
        "ana@example.com",
        "--role",
        "analyst",
    ]);
    let out = cli.run_with_stdin(&["user", "password", "ana"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
    let login = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("http://{}/login", server.addr))
        .form(&[("user", "ana"), ("password", PASSWORD), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303, "ana signs in");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_child_is_a_catchable_error_in_its_parent() {
    let cli = Cli::new();
    install_echo(&cli);
    write_playbook(
        &cli.playbooks_dir(),
        "flaky",
        "",
        r#"invoke("test-echo", "echo", #{ message: "hi" }); throw "the vendor said no""#,
    );
    write_playbook(
        &cli.playbooks_dir(),
        "careful",
        "",
        r#"
        let got = ();
        try { got = playbook("flaky"); } catch (e) {
            got = #{ kind: e.kind, status: e.status, run: e.run, message: e.message };
        }
        let unknown = ();
        try { playbook("no-such-playbook", #{}); } catch (e) { unknown = e.message; }
        #{ got: got, unknown: unknown }
        "#,
    );
    let _server = Server::start(&cli);
    let parent = run_id(&cli.ok(&["playbook", "run", "careful", "--detach"]));
    let store = store_of(&cli).await;
    let run = ended(&store, &parent, 30).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let children = store.child_runs(&parent).await.unwrap();
    assert_eq!(children.len(), 1, "the unknown playbook started nothing");
    let child = &children[0];
    assert_eq!(child.status, RunStatus::Failed);
    let out = run.output.unwrap();
    assert_eq!(out["got"]["kind"], "playbook");
    assert_eq!(out["got"]["status"], "failed");
    assert_eq!(out["got"]["run"], json!(child.id));
    let message = out["got"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("playbook 'flaky' (run {}) ended failed:", child.id))
            && message.contains("the vendor said no"),
        "{message}"
    );
    let unknown = out["unknown"].as_str().unwrap();
    assert!(
        unknown.contains("no playbook named 'no-such-playbook'") && unknown.contains("careful"),
        "{unknown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_that_starts_itself_stops_at_the_depth_limit() {
    let cli = Cli::new();
    write_playbook(
        &cli.playbooks_dir(),
        "ouroboros",
        "",
        r#"try { playbook("ouroboros", #{}); } catch (e) { throw "level failed: " + e.message; }"#,
    );
    let _server = Server::start(&cli);
    let top = run_id(&cli.ok(&["playbook", "run", "ouroboros", "--detach"]));
    let store = store_of(&cli).await;
    let run = ended(&store, &top, 60).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert!(
        error.contains("limit max_playbook_depth (8) reached: this run is 8 playbooks deep and may not start playbook 'ouroboros'"),
        "{error}"
    );
    // The top run and eight below it, each the child of the one before, all ended.
    let mut chain = vec![top.clone()];
    loop {
        let children = store.child_runs(chain.last().unwrap()).await.unwrap();
        assert!(children.len() <= 1);
        let Some(child) = children.into_iter().next() else {
            break;
        };
        assert_eq!(ended(&store, &child.id, 10).await.status, RunStatus::Failed);
        chain.push(child.id);
    }
    assert_eq!(chain.len(), 9, "{chain:?}");
    let deepest = store.run(chain.last().unwrap()).await.unwrap().unwrap();
    assert!(
        deepest
            .error
            .unwrap()
            .starts_with("step 1: limit max_playbook_depth (8)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_the_child_runs_leaves_one_child_and_the_parent_finishes() {
    let cli = Cli::new();
    install_echo(&cli);
    write_enrich(&cli, 2);
    write_parent(&cli);
    let server = Server::start(&cli);
    let parent = run_id(&cli.ok(&["playbook", "run", "triage", "--detach"]));
    let store = store_of(&cli).await;
    let child = eventually(20, "the child to wait in its sleep", async || {
        let children = store.child_runs(&parent).await.unwrap();
        children.into_iter().find(|c| c.status == RunStatus::Waiting)
    })
    .await;
    let wake_at = child.wake_at.expect("a waiting run has a wake time");
    server.kill_9();
    eventually(10, "the child's wake time to pass", async || {
        (osprey::store::now_ms() > wake_at).then_some(())
    })
    .await;
    let _server = Server::start(&cli);
    let run = ended(&store, &parent, 30).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(
        run.output,
        Some(json!({ "child": { "verdict": "seen 203.0.113.7" } }))
    );
    let children = store.child_runs(&parent).await.unwrap();
    assert_eq!(children.len(), 1, "exactly one child: {children:?}");
    assert_eq!(children[0].id, child.id);
    let all = store.runs(Some("enrich"), None, 100).await.unwrap();
    assert_eq!(all.len(), 1, "no other run of the child's playbook");
    let kinds: Vec<String> = store
        .steps(&parent)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds, ["playbook", "playbook", "log"]);
}

#[test]
fn the_cli_follows_a_parent_through_its_child_without_a_server() {
    let cli = Cli::new();
    install_echo(&cli);
    write_enrich(&cli, 0);
    write_parent(&cli);
    let out = cli.ok(&["playbook", "run", "triage"]);
    assert!(
        out.contains("waits for run") && out.contains("of playbook enrich"),
        "{out}"
    );
    assert!(out.contains("\"verdict\": \"seen 203.0.113.7\""), "{out}");
}
