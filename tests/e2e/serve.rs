//! `osprey serve` as an operator runs it: ready quickly, healthy, picks up CLI changes, and
//! stops cleanly.

use crate::support::{Cli, dist};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_answers_and_picks_up_installs() {
    let cli = Cli::new();
    let mut child = cli
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("OSPREY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed if the test fails half-way, so no server outlives it.
    struct KillOnDrop(Option<std::process::Child>);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Some(mut c) = self.0.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let stderr = child.stderr.take().unwrap();
    let mut guard = KillOnDrop(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs that it is ready");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "osprey is ready" {
            break v["fields"]["addr"].as_str().unwrap().to_owned();
        }
    };
    let base = format!("http://{addr}");
    let http = crate::support::http_client();
    assert_eq!(
        http.get(format!("{base}/healthz")).send().await.unwrap().status(),
        200
    );
    let ready: serde_json::Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ready["status"], "ready");
    let plugins: serde_json::Value = http
        .get(format!("{base}/api/v1/plugins"))
        .send()
        .await
        .unwrap()
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
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let plugins: serde_json::Value = http
            .get(format!("{base}/api/v1/plugins"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .parse()
            .unwrap();
        if plugins[0]["name"] == "test-echo" && plugins[0]["granted"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not pick up the install: {plugins}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM stops it cleanly.
    let mut child = guard.0.take().unwrap();
    let pid = child.id().to_string();
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}
