//! Inbound webhooks through the real server: `/hooks/PLUGIN/...` reaches a plugin granted
//! `webhooks` (test-echo, which checks an `X-Echo-Signature` HMAC with its secret and returns
//! its body as an alert event); everything else is refused before any call: a plugin not
//! granted, one built against WIT 0.1.0, an unknown name, a body over the limit. A plugin
//! that panics or never returns is answered 502/504 with nothing of its internals.

use crate::support::{Cli, Server, dist, eventually, http_client};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const KEY: &str = "echo-hook-signing-key";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// test-echo with `webhooks = true` among its requests, in `dir`.
fn echo_asking_for_webhooks(dir: &Path) -> PathBuf {
    asking_for_webhooks(dir, "test-echo", "test_echo.wasm")
}

/// The bundled test plugin `name` (component `component`) with `webhooks = true` among its
/// requests, in `dir`.
fn asking_for_webhooks(dir: &Path, name: &str, component: &str) -> PathBuf {
    let src = dist().join(name);
    let dst = dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::copy(src.join(component), dst.join(component)).unwrap();
    let manifest = std::fs::read_to_string(src.join("plugin.toml")).unwrap();
    assert!(manifest.contains("[requests]\n"), "{manifest}");
    let manifest = manifest.replace("[requests]\n", "[requests]\nwebhooks = true\n");
    std::fs::write(dst.join("plugin.toml"), manifest).unwrap();
    dst
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn alerts(cli: &Cli) -> Vec<Value> {
    cli.ok(&["alert", "list", "-n", "1000", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn post(server: &Server, path: &str, body: &str, signature: Option<&str>) -> reqwest::Response {
    let mut r = http_client()
        .post(format!("http://{}{path}", server.addr))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(sig) = signature {
        r = r.header("X-Echo-Signature", sig);
    }
    r.send().await.unwrap()
}

async fn problem(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    (status, serde_json::from_str(&r.text().await.unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_become_alerts_and_everything_else_is_refused_before_or_by_the_plugin() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    // The operator approves what the plugin asks for, webhooks among it.
    let said = cli.ok(&[
        "plugin",
        "install",
        s(&echo_asking_for_webhooks(work.path())),
        "--grant-requested",
    ]);
    assert!(said.contains("webhooks"), "{said}");
    let inspected: Value =
        serde_json::from_str(&cli.ok(&["plugin", "inspect", "test-echo", "--json"])).unwrap();
    assert_eq!(inspected["requested"]["webhooks"], true, "{inspected}");
    assert_eq!(inspected["granted"]["webhooks"], true, "{inspected}");
    cli.ok(&["plugin", "grant", "test-echo", "--timeout", "2s"]);
    let out = cli.run_with_stdin(&["secret", "set", "test-echo", "greeting"], KEY);
    assert!(out.status.success(), "{out:?}");
    // The 0.1.0 build, granted webhooks all the same: its contract has none.
    let v1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/echo-v0.1.0");
    cli.ok(&["plugin", "install", s(&v1)]);
    cli.ok(&[
        "plugin",
        "grant",
        "test-echo-v0-1",
        "--webhooks",
        "--secret",
        "greeting",
    ]);
    cli.ok(&[
        "rules",
        "set",
        "hooks",
        "--match",
        r#"alert.source == "test-echo""#,
        "--action",
        "dedup",
        "--key",
        "alert.data.host",
        "--window",
        "1h",
    ]);
    let reader = cli
        .ok(&["token", "create", "reader", "--role", "analyst"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);

    // A signed request reaches the plugin, which echoes it; its alert event is an alert.
    let body = json!({"title": "door opened", "host": "10.9.9.9"}).to_string();
    let r = post(
        &server,
        "/hooks/test-echo/events?site=hq",
        &body,
        Some(&sign(body.as_bytes())),
    )
    .await;
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-echo"], "1");
    assert!(h.get("set-cookie").is_none(), "{h:?}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let echoed: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &echoed["method"],
            &echoed["path"],
            &echoed["query"],
            &echoed["body"]
        ),
        (&json!("POST"), &json!("/events"), &json!("site=hq"), &json!(body))
    );
    assert!(
        echoed["run_id"].as_str().unwrap().starts_with("hook-"),
        "{echoed}"
    );
    // A second one about the same host: deduplicated into the same incident.
    let body2 = json!({"title": "door opened again", "host": "10.9.9.9"}).to_string();
    let r = post(
        &server,
        "/hooks/test-echo/events",
        &body2,
        Some(&sign(body2.as_bytes())),
    )
    .await;
    assert_eq!(r.status(), 200);
    let incident = eventually(20, "one incident of two alerts", async || {
        let out = cli.ok(&["incident", "list", "--json"]);
        let i: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (i.len() == 1 && i[0]["occurrences"] == 2).then(|| i[0].clone())
    })
    .await;
    assert_eq!(incident["dedup_key"], "10.9.9.9");
    let listed: Value = http_client()
        .get(format!("http://{}/api/v1/alerts", server.addr))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    for a in items {
        assert_eq!(a["source"], "test-echo", "{a}");
        assert_eq!(a["via"], "plugin:test-echo", "{a}");
    }

    // A bad signature: the plugin's own 401, and no alert.
    let r = post(
        &server,
        "/hooks/test-echo/events",
        &body,
        Some(&sign(b"something else")),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad signature");
    let r = post(&server, "/hooks/test-echo/events", &body, None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(alerts(&cli).len(), 2);

    // An answer event whose question is not a button's token is refused, and the response
    // still goes out.
    let r = post(&server, "/hooks/test-echo/answer", "{}", Some(&sign(b"{}"))).await;
    assert_eq!(r.status(), 200);

    // A plugin that panics, one that never returns: 502 and 504, nothing of the plugin said.
    let r = post(&server, "/hooks/test-echo/panic", "{}", Some(&sign(b"{}"))).await;
    let (status, p) = problem(r).await;
    assert_eq!(status, 502, "{p}");
    let text = p.to_string();
    assert!(!text.contains("panic") && !text.contains("wasm"), "{text}");
    let r = post(&server, "/hooks/test-echo/spin", "{}", Some(&sign(b"{}"))).await;
    let (status, p) = problem(r).await;
    assert_eq!(status, 504, "{p}");
    assert!(!p.to_string().contains("deadline of"), "{p}");
    server.assert_healthy().await;

    // A body over the limit is refused by its Content-Length, before it is sent.
    let mut tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /hooks/test-echo/events HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            16 * 1024 * 1024
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed without answering");
            head.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("413 before the body is sent");
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // And one that says nothing of its length is cut off while read.
    let big = format!("{{\"pad\":\"{}\"}}", "a".repeat(1024 * 1024));
    let r = http_client()
        .post(format!("http://{}/hooks/test-echo/events", server.addr))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(
            big.into_bytes()
                .chunks(64 * 1024)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // WIT 0.1.0, an unknown plugin: 404 with a problem, and no call.
    for path in [
        "/hooks/test-echo-v0-1/events",
        "/hooks/no-such-plugin/x",
        "/hooks/test-echo-v0-1",
    ] {
        let (status, p) = problem(post(&server, path, &body, Some(&sign(body.as_bytes()))).await).await;
        assert_eq!(status, 404, "{path}: {p}");
        assert_eq!(p["type"], "https://osprey.dev/problems/no-webhook", "{p}");
    }
    // Revoked: refused at once, signed or not, and the plugin never runs.
    cli.ok(&["plugin", "revoke", "test-echo", "--webhooks"]);
    eventually(20, "the revoke to take effect", async || {
        // Unsigned: the plugin's 401 until the revoke is in force.
        let r = post(&server, "/hooks/test-echo/events", &body, None).await;
        (r.status() == 404).then_some(())
    })
    .await;
    let r = post(
        &server,
        "/hooks/test-echo/events",
        &body,
        Some(&sign(body.as_bytes())),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(alerts(&cli).len(), 2);

    let metrics = server.metrics().await;
    for line in [
        r#"osprey_webhooks_total{plugin="test-echo",outcome="answered"} "#,
        r#"osprey_webhooks_total{plugin="test-echo",outcome="failed"} 2"#,
        r#"osprey_webhooks_total{plugin="test-echo",outcome="limited"} 2"#,
        r#"osprey_webhooks_total{plugin="test-echo-v0-1",outcome="refused"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("a webhook's answer event was refused; nothing changed"),
        "{logs}"
    );
    assert!(logs.contains("webhook handled"), "{logs}");
}

/// The Python SDK's webhook handler, through the same route: test-echo-py checks the same
/// signature with its secret and hands the body over as an alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_answers_webhooks_too() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let dir = asking_for_webhooks(work.path(), "test-echo-py", "test_echo_py.wasm");
    cli.ok(&["plugin", "install", s(&dir), "--grant-requested"]);
    let out = cli.run_with_stdin(&["secret", "set", "test-echo-py", "greeting"], KEY);
    assert!(out.status.success(), "{out:?}");
    let server = Server::start(&cli);

    let body = json!({"title": "badge reader", "host": "10.7.7.7"}).to_string();
    let r = post(
        &server,
        "/hooks/test-echo-py/in?x=1",
        &body,
        Some(&sign(body.as_bytes())),
    )
    .await;
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    assert_eq!(
        (
            &echoed["method"],
            &echoed["path"],
            &echoed["query"],
            &echoed["body"]
        ),
        (&json!("POST"), &json!("/in"), &json!("x=1"), &json!(body))
    );
    let arrived = eventually(20, "the Python plugin's alert", async || {
        alerts(&cli).into_iter().find(|a| a["data"]["host"] == "10.7.7.7")
    })
    .await;
    assert_eq!(arrived["source"], "test-echo-py", "{arrived}");

    // A forged signature is the plugin's 401, and no alert.
    let forged = json!({"title": "forged", "host": "10.7.7.8"}).to_string();
    let r = post(
        &server,
        "/hooks/test-echo-py/in",
        &forged,
        Some(&sign(b"something else")),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(alerts(&cli).iter().all(|a| a["data"]["host"] != "10.7.7.8"));
}
