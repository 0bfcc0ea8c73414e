//! Seed 004's defence validation, end to end with the real binary and the real `probe`
//! plugin against servers on loopback: the bundled `defence-validation` playbook (run
//! directly, as its hourly cron would) downloads the EICAR test file through a web filter,
//! connects to a port the firewall must refuse, and fetches from a TLS server whose
//! certificate is not trusted.
//!
//! - Blocked (a 403 block page, a closed port, a refused handshake): no incident; and the
//!   alert-workflow check finds the SIEM's alert for the blocked download at Osprey's intake
//!   in time (no incident), or does not (an incident says the alert workflow failed).
//! - Not blocked (the EICAR file served with 200, an open port, a certificate the trust store
//!   accepts): one critical incident per control, naming it.

use crate::major_incident_report::run_playbook;
use crate::support::fake_tls::FakeTls;
use crate::support::fake_web_filter::FakeWebFilter;
use crate::support::{Cli, Server, bundled_playbook, dist, run_id, store_of, text};
use osprey::store::runs::RunStatus;
use serde_json::{Value, json};

const PLAYBOOK: &str = "defence-validation";

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The incidents the playbook opened.
fn validation_incidents(cli: &Cli) -> Vec<Value> {
    json_lines(&cli.ok(&["incident", "list", "--json"]))
        .into_iter()
        .filter(|i| i["type"] == "defence-validation")
        .collect()
}

/// A loopback port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Install the probe plugin granted exactly the targets of the test.
fn install_probe(cli: &Cli, targets: &[String]) {
    cli.ok(&["plugin", "install", dist().join("probe").to_str().unwrap()]);
    let mut args = vec!["plugin".to_owned(), "grant".into(), "probe".into()];
    for t in targets {
        args.extend(["--http".to_owned(), t.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli.ok(&args);
    bundled_playbook(cli, PLAYBOOK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_probes_open_nothing_and_a_missing_siem_alert_opens_an_incident() {
    let cli = Cli::new();
    let siem_token = cli
        .ok(&["token", "create", "siem", "--scope", "intake"])
        .trim()
        .to_owned();
    let filter = FakeWebFilter::start().await;
    let tls = FakeTls::start().await;
    let closed = closed_port();
    install_probe(
        &cli,
        &[
            format!("http://{}", filter.addr),
            format!("http://127.0.0.1:{closed}"),
            format!("https://{}", tls.addr),
        ],
    );
    let server = Server::start(&cli);
    filter.send_alerts_to(&server.addr, &siem_token);
    let store = store_of(&cli).await;

    // Every control blocks, and the SIEM's alert for the blocked download reaches intake.
    let input = json!({
        "eicar_url": filter.url("/blocked/eicar.com.txt?probe={probe}"),
        "firewall_url": format!("http://127.0.0.1:{closed}/"),
        "tls_url": tls.url("/"),
        "alert_within_seconds": 30,
        "check_every_seconds": 1,
    });
    let out = run_playbook(&cli, &store, PLAYBOOK, &input.to_string()).await;
    let hows: Vec<(&str, bool, &str)> = out["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["check"].as_str().unwrap(),
                p["blocked"].as_bool().unwrap(),
                p["how"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hows,
        [
            ("download", true, "block-page"),
            ("connect", true, "refused"),
            ("tls", true, "tls-certificate")
        ],
        "{out}"
    );
    assert_eq!(out["failed"], json!([]), "{out}");
    let marker = out["alert"]["probe"].as_str().unwrap().to_owned();
    assert_eq!(out["alert"]["arrived"], true, "{out}");
    assert_eq!(
        filter.seen(),
        std::slice::from_ref(&marker),
        "the probe's id went with the download"
    );
    // The alert found is the SIEM's, carrying the probe's id.
    let alerts = json_lines(&cli.ok(&["alert", "list", "--source", "siem", "--json"]));
    let alert = alerts
        .iter()
        .find(|a| a["id"] == out["alert"]["alert"])
        .unwrap_or_else(|| panic!("{out} names an alert not in {alerts:?}"));
    assert_eq!(alert["data"]["osprey_probe"], marker.as_str(), "{alert}");
    // The TLS server never saw a request: the handshake was refused.
    assert_eq!(tls.requests(), 0);
    assert_eq!(validation_incidents(&cli), Vec::<Value>::new());

    // The same probes, but the SIEM never raises the alert: the workflow check fails.
    let input = json!({
        "eicar_url": filter.url("/silent/eicar.com.txt"),
        "firewall_url": format!("http://127.0.0.1:{closed}/"),
        "tls_url": tls.url("/"),
        "alert_within_seconds": 2,
        "check_every_seconds": 1,
    });
    let out = run_playbook(&cli, &store, PLAYBOOK, &input.to_string()).await;
    assert_eq!(
        (out["failed"].clone(), out["alert"]["arrived"].clone()),
        (json!([]), json!(false)),
        "{out}"
    );
    let marker = out["alert"]["probe"].as_str().unwrap();
    let incidents = validation_incidents(&cli);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["severity"], "critical");
    let title = incidents[0]["title"].as_str().unwrap();
    assert!(
        title.starts_with("Alert workflow failed") && title.contains(marker),
        "{title}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_control_that_lets_its_probe_through_opens_a_critical_incident_naming_it() {
    let cli = Cli::new();
    // No download is blocked here, so the filter's SIEM has nothing to say.
    let filter = FakeWebFilter::start().await;
    let tls = FakeTls::start().await;
    install_probe(
        &cli,
        &[format!("http://{}", filter.addr), format!("https://{}", tls.addr)],
    );
    // The TLS policy accepts the certificate: its CA is in the trust store the run reads.
    let ca = cli.data_dir().join("test-ca.pem");
    std::fs::write(&ca, &tls.ca_pem).unwrap();

    // Run by the CLI itself (no server), as an operator checking the set-up would.
    let input = json!({
        "eicar_url": filter.url("/open/eicar.com.txt"),
        // The filter's own port answers: it is open.
        "firewall_url": filter.url("/"),
        "tls_url": tls.url("/"),
        "alert_field": "",
    });
    let out = cli
        .command()
        .args(["playbook", "run", PLAYBOOK, "--input", &input.to_string()])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let id = run_id(&text(&out.stdout));
    let run = store_of(&cli).await.run(&id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let output = run.output.unwrap();
    assert_eq!(
        output["failed"],
        json!(["download", "connect", "tls"]),
        "{output}"
    );
    let download = &output["probes"][0];
    assert_eq!(
        (download["how"].as_str(), download["blocked"].as_bool()),
        (Some("delivered"), Some(false))
    );
    assert_eq!(tls.requests(), 1, "the TLS probe got through to the server");

    let incidents = validation_incidents(&cli);
    assert_eq!(incidents.len(), 3, "{incidents:?}");
    assert!(
        incidents.iter().all(|i| i["severity"] == "critical"),
        "{incidents:?}"
    );
    let titles: Vec<&str> = incidents.iter().map(|i| i["title"].as_str().unwrap()).collect();
    for (control, says) in [
        (
            "web filter",
            "the EICAR test file was delivered (HTTP 200, 68 bytes)",
        ),
        ("firewall", "the port is open: it answered HTTP 404"),
        (
            "TLS policy",
            "the invalid certificate was accepted: the host answered HTTP 200",
        ),
    ] {
        let prefix = format!("Control failed: {control}");
        assert!(
            titles.iter().any(|t| t.starts_with(&prefix) && t.contains(says)),
            "no incident names the {control} saying '{says}': {titles:?}"
        );
    }
}
