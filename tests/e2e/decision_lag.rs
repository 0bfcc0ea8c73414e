//! Pre-processing behind intake: a server killed while decisions lag decides every accepted
//! alert exactly once after it restarts, and while decisions lag past `intake.max_undecided`
//! intake slows senders with 503 and Retry-After, stores nothing of what it refused, and
//! `/metrics` shows the lag.

use crate::support::{Cli, Server, eventually, http_client, store_of};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Distinct source addresses: the dedup rule opens one incident per address.
const KEYS: usize = 100;

fn setup(cli: &Cli) -> String {
    cli.ok(&[
        "rules",
        "set",
        "by-source-ip",
        "--match",
        "alert.source == \"fw\"",
        "--action",
        "dedup",
        "--key",
        "alert.data.src",
        "--window",
        "1h",
    ]);
    cli.ok(&[
        "rules",
        "set",
        "noise",
        "--match",
        "alert.source == \"noise\"",
        "--action",
        "drop",
    ]);
    cli.ok(&["token", "create", "loader", "--scope", "intake"])
        .trim()
        .to_owned()
}

/// A body of `n` NDJSON alerts: every seventh is noise, the rest firewall alerts over [`KEYS`]
/// addresses.
fn body(batch: usize, n: usize) -> String {
    (0..n)
        .map(|i| {
            let source = if i % 7 == 0 { "noise" } else { "fw" };
            format!(
                "{{\"source\":\"{source}\",\"title\":\"b{batch} i{i}\",\"src\":\"10.0.0.{}\"}}\n",
                i % KEYS
            )
        })
        .collect()
}

/// The ids a 2xx answer accepted.
fn accepted_ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

async fn metric(server: &Server, name: &str) -> f64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// Every stored alert, by id: (source, disposition, incident).
fn alerts(cli: &Cli) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    cli.ok(&["alert", "list", "-n", "1000000", "--json"])
        .lines()
        .map(|l| {
            let a: Value = serde_json::from_str(l).unwrap();
            let text = |k: &str| a[k].as_str().map(str::to_owned);
            (
                text("id").unwrap(),
                (text("source").unwrap(), text("disposition"), text("incident_id")),
            )
        })
        .collect()
}

/// Each accepted alert decided exactly once: noise dropped, each firewall alert in exactly
/// one incident (one incident per address, its occurrences its alerts).
async fn assert_decided_once(cli: &Cli, accepted: &BTreeSet<String>) {
    let stored = alerts(cli);
    let ids: BTreeSet<String> = stored.keys().cloned().collect();
    assert_eq!(&ids, accepted, "the store holds exactly the accepted alerts");
    let fw: BTreeSet<&String> = stored
        .iter()
        .filter(|(_, (source, ..))| source == "fw")
        .map(|(id, _)| id)
        .collect();
    for (id, (source, disposition, incident)) in &stored {
        match source.as_str() {
            "noise" => assert_eq!(disposition.as_deref(), Some("dropped"), "{id}"),
            _ => {
                assert!(
                    matches!(disposition.as_deref(), Some("incident" | "duplicate")),
                    "{id}: {disposition:?}"
                );
                assert!(incident.is_some(), "{id}");
            }
        }
    }
    let store = store_of(cli).await;
    let incidents = store.incidents(None, 10_000).await.unwrap();
    assert_eq!(
        incidents.len(),
        KEYS,
        "one incident per address: {:?}",
        incidents.iter().map(|i| &i.dedup_key).collect::<Vec<_>>()
    );
    let mut linked = Vec::new();
    for incident in &incidents {
        let ids = store.incident_alert_ids(&incident.id).await.unwrap();
        assert_eq!(
            incident.occurrences as usize,
            ids.len(),
            "incident {}: its occurrences are its alerts",
            incident.id
        );
        linked.extend(ids);
    }
    let unique: BTreeSet<&String> = linked.iter().collect();
    assert_eq!(linked.len(), unique.len(), "no alert is in an incident twice");
    assert_eq!(unique, fw, "every firewall alert is in exactly one incident");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_decisions_lag_decides_every_accepted_alert_once_after_restart() {
    let cli = Cli::new();
    let token = setup(&cli);
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();
    let mut accepted = BTreeSet::new();
    // Post until pre-processing is well behind what was accepted, then crash at once.
    let mut behind = 0.0;
    for batch in 0..40 {
        let r = http
            .post(format!("{base}/api/v1/alerts"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body(batch, 5_000))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        accepted.extend(accepted_ids(&r.json().await.unwrap()));
        behind = metric(&server, "osprey_alerts_undecided").await;
        if behind >= 2_000.0 {
            break;
        }
    }
    assert!(
        behind >= 2_000.0,
        "pre-processing never fell 2,000 alerts behind, so this test would prove nothing"
    );
    server.kill_9();

    let server = Server::start(&cli);
    eventually(
        180,
        "every accepted alert decided after the restart",
        async || (metric(&server, "osprey_alerts_undecided").await == 0.0).then_some(()),
    )
    .await;
    assert_eq!(metric(&server, "osprey_preprocess_lag_seconds").await, 0.0);
    drop(server);
    assert_decided_once(&cli, &accepted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_slows_senders_while_decisions_lag_and_metrics_show_the_lag() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[intake]\nmax_undecided = 1000\n",
    )
    .unwrap();
    let token = setup(&cli);
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();
    let mut accepted = BTreeSet::new();
    let mut refused = None;
    let mut lag = 0.0;
    for batch in 0..200 {
        let r = http
            .post(format!("{base}/api/v1/alerts"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body(batch, 2_000))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            let retry_after = r.headers()["retry-after"].to_str().unwrap().to_owned();
            let problem: Value = r.json().await.unwrap();
            refused = Some((retry_after, problem));
            lag = metric(&server, "osprey_preprocess_lag_seconds").await;
            break;
        }
        assert_eq!(r.status(), 200);
        accepted.extend(accepted_ids(&r.json().await.unwrap()));
    }
    let (retry_after, problem) = refused.expect("intake never slowed the sender down");
    assert_eq!(retry_after, "1");
    let title = problem["title"].as_str().unwrap();
    assert!(
        title.contains("pre-processing is") && title.contains("intake.max_undecided is 1000"),
        "{problem}"
    );
    assert!(lag > 0.0, "the lag shows while senders are slowed");
    assert!(metric(&server, "osprey_intake_throttled_total").await >= 1.0);
    eventually(180, "every accepted alert decided", async || {
        (metric(&server, "osprey_alerts_undecided").await == 0.0).then_some(())
    })
    .await;
    // Caught up, intake takes alerts again.
    let r = http
        .post(format!("{base}/api/v1/alerts"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(body(999, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    accepted.extend(accepted_ids(&r.json().await.unwrap()));
    eventually(60, "the last alerts decided", async || {
        (metric(&server, "osprey_alerts_undecided").await == 0.0).then_some(())
    })
    .await;
    drop(server);
    assert_decided_once(&cli, &accepted).await;
}
