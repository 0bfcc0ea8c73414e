//! `GET /metrics` on the real server: alerts ingested by source and decided by rule, a
//! playbook's plugin calls and the runtime's denials, step durations and runs by status, in
//! the OpenMetrics text format a Prometheus server scrapes; and, through the library, the
//! runtime's count of refused secrets and calls of plugins that are not installed.

use crate::support::{Cli, Server, TestHost, dist, eventually, http_client, write_playbook};
use osprey::plugin::ErrorKind;
use osprey::store::audit::Actor;
use serde_json::json;
use std::collections::HashMap;

/// The samples of an exposition: `name{labels}` to value.
fn samples(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample is a series and a value");
            (series.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_alerts_rules_plugin_calls_denials_steps_and_runs() {
    let cli = Cli::new();
    // Granted what it asks for: the secret `greeting`, and no outbound HTTP at all.
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-echo").to_str().unwrap(),
        "--grant-requested",
    ]);
    // One call that works, then two the runtime refuses (caught, so the run completes).
    write_playbook(
        &cli.playbooks_dir(),
        "echoer",
        "",
        r#"let said = invoke("test-echo", "echo", #{ message: alert.title }).message;
           let refused = [];
           try { invoke("test-echo", "ping", #{ url: "http://127.0.0.1:9/nope" }); } catch (e) { refused.push(e.kind); }
           try { invoke("test-echo", "secret-length", #{ name: "not-granted" }); } catch (e) { refused.push(e.kind); }
           if refused.len() != 2 || refused[0] != "denied" || refused[1] != "denied" { throw `expected two denials, got ${refused}`; }
           said"#,
    );
    cli.ok(&[
        "rules",
        "set",
        "scanner-noise",
        "--match",
        r#"alert.source == "ids""#,
        "--action",
        "drop",
    ]);
    cli.ok(&[
        "rules",
        "set",
        "edr-incidents",
        "--match",
        r#"alert.source == "edr""#,
        "--action",
        "incident",
        "--playbook",
        "echoer",
    ]);
    let token = cli
        .ok(&["token", "create", "sensor", "--scope", "intake"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();

    // Before anything happened: served without a token, every run status at 0.
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let before = samples(&text);
    assert_eq!(before[r#"osprey_runs{status="completed"}"#], "0", "{text}");
    assert_eq!(before["osprey_run_queue_depth"], "0", "{text}");
    assert_eq!(before["osprey_questions_open"], "0", "{text}");

    let r = http
        .post(format!("{base}/api/v1/alerts"))
        .bearer_auth(&token)
        .body(
            r#"[{"source": "ids", "title": "ET SCAN nmap 1"},
                {"source": "edr", "title": "odd process"},
                {"source": "ids", "title": "ET SCAN nmap 2"},
                {"source": "edr", "title": "odder process"},
                {"source": "ids", "title": "ET SCAN nmap 3"}]"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Both incidents' runs complete; then every counter has its final value.
    let (m, text) = eventually(60, "two completed runs in /metrics", async || {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let m = samples(&text);
        (m.get(r#"osprey_runs{status="completed"}"#).map(String::as_str) == Some("2")).then_some((m, text))
    })
    .await;
    let expect = [
        (r#"osprey_alerts_ingested_total{source="ids"}"#, "3"),
        (r#"osprey_alerts_ingested_total{source="edr"}"#, "2"),
        (
            r#"osprey_alerts_preprocessed_total{outcome="dropped",rule="scanner-noise"}"#,
            "3",
        ),
        (
            r#"osprey_alerts_preprocessed_total{outcome="incident",rule="edr-incidents"}"#,
            "2",
        ),
        (
            r#"osprey_plugin_calls_total{plugin="test-echo",action="echo",outcome="ok"}"#,
            "2",
        ),
        (
            r#"osprey_plugin_calls_total{plugin="test-echo",action="ping",outcome="denied"}"#,
            "2",
        ),
        (
            r#"osprey_plugin_calls_total{plugin="test-echo",action="secret-length",outcome="denied"}"#,
            "2",
        ),
        (
            r#"osprey_plugin_denials_total{plugin="test-echo",kind="http"}"#,
            "2",
        ),
        (
            r#"osprey_plugin_denials_total{plugin="test-echo",kind="secret"}"#,
            "2",
        ),
        // Three invoke steps per run, each journaled once.
        (r#"osprey_run_step_duration_seconds_count{kind="invoke"}"#, "6"),
        (
            r#"osprey_run_step_duration_seconds_bucket{le="+Inf",kind="invoke"}"#,
            "6",
        ),
        (r#"osprey_runs{status="completed"}"#, "2"),
        (r#"osprey_runs{status="failed"}"#, "0"),
        (r#"osprey_runs{status="dead"}"#, "0"),
        ("osprey_run_queue_depth", "0"),
        ("osprey_sla_breaches_total", "absent"),
        ("osprey_mail_sent_total", "0"),
    ];
    assert!(text.contains("# TYPE osprey_alerts_ingested counter"), "{text}");
    assert!(
        text.contains("# TYPE osprey_run_step_duration_seconds histogram"),
        "{text}"
    );
    for (series, value) in expect {
        let got = m.get(series).map_or("absent", String::as_str);
        assert_eq!(got, value, "{series} in:\n{text}");
    }
    // Nothing was counted twice or under another label.
    let total = |prefix: &str| -> u64 {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(total("osprey_alerts_ingested_total"), 5, "{text}");
    assert_eq!(total("osprey_alerts_preprocessed_total"), 5, "{text}");
    assert_eq!(total("osprey_plugin_calls_total"), 6, "{text}");
    assert_eq!(total("osprey_plugin_denials_total"), 4, "{text}");
    let sum: f64 = m[r#"osprey_run_step_duration_seconds_sum{kind="invoke"}"#]
        .parse()
        .unwrap();
    assert!(sum > 0.0 && sum < 60.0, "{text}");
}

/// The runtime counts what it refuses by kind, in the process's metrics: a secret not
/// granted, a secret in the output, and a call of a plugin that is not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_counts_refused_secrets_and_unknown_plugins() {
    let host = TestHost::new().await;
    host.install("test-hostile").await;
    let e = host
        .call("test-hostile", "steal-secret", json!({"name": "greeting"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Denied, "{}", e.message);
    host.grant("test-hostile", json!({"secrets": ["greeting"]})).await;
    let own = secrecy::SecretString::from("hostile-own-value".to_string());
    host.app
        .set_secret("test-hostile", "greeting", &own, &Actor::system())
        .await
        .unwrap();
    let e = host
        .call("test-hostile", "steal-secret", json!({"name": "greeting"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Denied, "{}", e.message);
    let e = host.call("no-such-plugin", "run", json!({})).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{}", e.message);

    let text = host.app.metrics.scrape(&host.app.store).await.unwrap();
    let m = samples(&text);
    for (series, value) in [
        (
            r#"osprey_plugin_denials_total{plugin="test-hostile",kind="secret"}"#,
            "1",
        ),
        (
            r#"osprey_plugin_denials_total{plugin="test-hostile",kind="secret-in-output"}"#,
            "1",
        ),
        (
            r#"osprey_plugin_calls_total{plugin="test-hostile",action="steal-secret",outcome="denied"}"#,
            "2",
        ),
        (
            r#"osprey_plugin_calls_total{plugin="no-such-plugin",action="run",outcome="not-found"}"#,
            "1",
        ),
    ] {
        assert_eq!(
            m.get(series).map_or("absent", String::as_str),
            value,
            "{series} in:\n{text}"
        );
    }
}
