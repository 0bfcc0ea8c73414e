//! `osprey serve` as an operator runs it: ready quickly, healthy, picks up CLI changes, and
//! stops cleanly.

use crate::support::{Cli, Server, dist, eventually, http_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_answers_and_picks_up_installs() {
    let cli = Cli::new();
    // Reading the plugins needs a token whose role may (an auditor's).
    let token = cli
        .ok(&["token", "create", "auditor", "--role", "auditor"])
        .trim()
        .to_owned();
    let mut server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();
    let get = |path: &str| {
        let (http, url, token) = (http.clone(), format!("{base}{path}"), token.clone());
        async move { http.get(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    let ready: serde_json::Value = get("/readyz").await.text().await.unwrap().parse().unwrap();
    assert_eq!(ready["status"], "ready");
    let plugins: serde_json::Value = get("/api/v1/plugins")
        .await
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(plugins, serde_json::json!([]));

    // Installed and granted with the CLI while the server runs: it notices.
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-echo").to_str().unwrap(),
        "--grant-requested",
    ]);
    eventually(10, "the server to pick up the install", async || {
        let plugins: serde_json::Value = get("/api/v1/plugins")
            .await
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        (plugins[0]["name"] == "test-echo" && plugins[0]["granted"] == true).then_some(())
    })
    .await;

    // SIGTERM stops it cleanly.
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}
