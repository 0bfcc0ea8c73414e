//! Indicators and the enrichment cache, end to end with the real binary: `invoke_cached` asks
//! a vendor (a fake ipinfo on loopback, its own kv cache turned off) once for two runs;
//! alerts' observables become sightings; a playbook's verdict is visible from the CLI and in
//! the audit log as the run.

use crate::support::fake_ipinfo::FakeIpinfo;
use crate::support::{Cli, Server, dist, eventually, http_client, run_id, text, write_playbook};
use serde_json::{Value, json};

const TOKEN: &str = "tok_cache_5d1e";

/// The run's steps, as `osprey run show --json` gives them.
fn steps(cli: &Cli, id: &str) -> Vec<Value> {
    let shown: Value = serde_json::from_str(&cli.ok(&["run", "show", id, "--json"])).unwrap();
    shown["steps"].as_array().unwrap().clone()
}

fn indicator(cli: &Cli, kind: &str, value: &str) -> Value {
    serde_json::from_str(&cli.ok(&["indicator", "show", kind, value, "--json"])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_cached_asks_the_vendor_once_an_hour_across_runs() {
    let fake = FakeIpinfo::start(TOKEN).await;
    let cli = Cli::new();
    cli.ok(&[
        "plugin",
        "install",
        dist().join("ipinfo").to_str().unwrap(),
        "--grant-requested",
    ]);
    cli.ok(&["plugin", "grant", "ipinfo", "--http", &fake.base_url()]);
    cli.ok(&[
        "plugin",
        "config",
        "ipinfo",
        &format!("base_url={}", fake.base_url()),
    ]);
    // The plugin's own cache off: every call it gets reaches the vendor.
    cli.ok(&["plugin", "config", "ipinfo", "cache_ttl_seconds=0"]);
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], TOKEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let inputs = "[inputs.ip]\ntype = \"string\"\n";
    write_playbook(
        &cli.playbooks_dir(),
        "where-plain",
        inputs,
        r#"invoke("ipinfo", "lookup", #{ ip: input.ip }).country"#,
    );
    write_playbook(
        &cli.playbooks_dir(),
        "where-cached",
        inputs,
        r#"invoke_cached("ipinfo", "lookup", #{ ip: input.ip }, "1h").country"#,
    );
    let run = |playbook: &str, ip: &str| {
        let out = cli.ok(&[
            "playbook",
            "run",
            playbook,
            "--input",
            &json!({ "ip": ip }).to_string(),
        ]);
        let id = run_id(&out);
        assert!(out.contains(&format!("run {id} completed")), "{out}");
        id
    };

    // Without the cache, each run asks.
    run("where-plain", "8.8.8.8");
    run("where-plain", "8.8.8.8");
    assert_eq!(fake.authorized(), 2);

    // With it, the first run asks and the second is answered from the cache.
    let first = run("where-cached", "8.8.8.8");
    assert_eq!(fake.authorized(), 3);
    let second = run("where-cached", "8.8.8.8");
    assert_eq!(fake.authorized(), 3, "the second run did not reach the vendor");
    for (id, cached) in [(&first, false), (&second, true)] {
        let s = steps(&cli, id);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0]["kind"], "invoke");
        assert_eq!(s[0]["request"]["cache_ttl_ms"], 3_600_000);
        assert_eq!(s[0]["outcome"]["cached"], cached, "{}", s[0]);
        assert_eq!(s[0]["outcome"]["output"]["country"], "US");
        let shown: Value = serde_json::from_str(&cli.ok(&["run", "show", id, "--json"])).unwrap();
        assert_eq!(shown["run"]["output"], "US");
    }
    // Another input is another entry.
    run("where-cached", "1.1.1.1");
    assert_eq!(fake.authorized(), 4);
    run("where-cached", "1.1.1.1");
    assert_eq!(fake.authorized(), 4);

    // A failure is not cached: with a wrong token the vendor is asked every time.
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], "wrong");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = fake.requests();
    for _ in 0..2 {
        let out = cli.run(&[
            "playbook",
            "run",
            "where-cached",
            "--input",
            r#"{"ip":"9.9.9.9"}"#,
        ]);
        assert!(!out.status.success(), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("denied"), "{}", text(&out.stdout));
    }
    assert_eq!(fake.requests(), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_make_sightings_and_a_playbook_verdict_is_kept_and_audited() {
    let cli = Cli::new();
    let sensor = cli
        .ok(&["token", "create", "sensor", "--scope", "intake"])
        .trim()
        .to_owned();
    cli.ok(&[
        "rules",
        "set",
        "scanner-noise",
        "--match",
        r#"alert.source == "scanner""#,
        "--action",
        "drop",
    ]);
    write_playbook(
        &cli.playbooks_dir(),
        "judge",
        "[inputs.ip]\ntype = \"string\"\n",
        r#"
        let before = indicator("ip", input.ip);
        let after = indicator_set("ip", input.ip, #{ verdict: "malicious", score: 80, source: "judge" });
        #{ before: before.verdict, sightings: after.sightings, verdict: after.verdict, none: indicator("domain", "never.example") == () }
        "#,
    );

    let server = Server::start(&cli);
    let md5 = "44d88612fea8a8f36de82e1278abb02f";
    let alerts = [
        json!({"source": "scanner", "title": "probe", "src": "203.0.113.9"}),
        json!({"source": "scanner", "title": "probe", "src": "203.0.113.9"}),
        json!({"source": "ids", "title": "C2 beacon", "src": "203.0.113.9", "host": "C2.Evil.Example",
               "file": md5.to_uppercase(), "mail": "Attacker@Evil.Example"}),
    ];
    let body: String = alerts.iter().map(|a| a.to_string() + "\n").collect();
    let r = http_client()
        .post(format!("http://{}/api/v1/alerts", server.addr))
        .bearer_auth(&sensor)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ip = eventually(20, "three sightings of the IP", async || {
        let out = cli.run(&["indicator", "show", "ip", "203.0.113.9", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["sightings"] == 3).then_some(v)
    })
    .await;
    drop(server);
    assert_eq!(ip["verdict"], "unknown");
    assert!(ip["first_seen"].as_i64().unwrap() <= ip["last_seen"].as_i64().unwrap());
    let shown = cli.ok(&["indicator", "show", "ip", "203.0.113.9"]);
    assert!(shown.contains("sightings  3"), "{shown}");
    // The other observables, in canonical form, looked up in any form.
    assert_eq!(indicator(&cli, "domain", "c2.evil.example")["sightings"], 1);
    assert_eq!(indicator(&cli, "hash", &md5.to_uppercase())["value"], md5);
    assert_eq!(indicator(&cli, "email", "attacker@evil.example")["sightings"], 1);
    let err = cli.fails(&["indicator", "show", "ip", "192.0.2.200"]);
    assert!(err.contains("no indicator ip '192.0.2.200'"), "{err}");
    let err = cli.fails(&["indicator", "show", "ip", "999.1.1.1"]);
    assert!(err.contains("'999.1.1.1' is not an IP address"), "{err}");

    // A playbook gives a verdict; it keeps the sightings and is audited as the run.
    let out = cli.ok(&["playbook", "run", "judge", "--input", r#"{"ip":"203.0.113.9"}"#]);
    let id = run_id(&out);
    let shown: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(
        shown["run"]["output"],
        json!({"before": "unknown", "sightings": 3, "verdict": "malicious", "none": true})
    );
    let ip = indicator(&cli, "ip", "203.0.113.9");
    assert_eq!(
        (ip["verdict"].as_str(), ip["score"].as_i64()),
        (Some("malicious"), Some(80))
    );
    assert_eq!(ip["sources"][0]["source"], "judge");
    let listed = cli.ok(&["indicator", "list", "--verdict", "malicious", "--json"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let audit: Vec<Value> = cli
        .ok(&["audit", "export", "--action", "indicator."])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["actor"], format!("run:{id}"));
    assert_eq!(audit[0]["target"], "indicator:ip:203.0.113.9");
    assert_eq!(audit[0]["details"]["verdict"], "malicious");

    // An analyst overrules it from the CLI; bad input is refused with the reason.
    let out = cli.ok(&[
        "indicator",
        "set",
        "ip",
        "203.0.113.9",
        "--verdict",
        "benign",
        "--score",
        "5",
        "--source",
        "ticket-42",
    ]);
    assert!(out.contains("ip 203.0.113.9 is benign (score 5)"), "{out}");
    let ip = indicator(&cli, "ip", "203.0.113.9");
    let sources: Vec<&str> = ip["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["judge", "ticket-42"]);
    let err = cli.fails(&["indicator", "set", "cidr", "10.1.2.3", "--verdict", "malicious"]);
    assert!(err.contains("'10.1.2.3' is not a CIDR"), "{err}");
    let err = cli.fails(&["indicator", "set", "ip", "192.0.2.1", "--verdict", "evil"]);
    assert!(err.contains("evil") && err.contains("malicious"), "{err}");
    let err = cli.fails(&[
        "indicator",
        "set",
        "ip",
        "192.0.2.1",
        "--verdict",
        "benign",
        "--score",
        "120",
    ]);
    assert!(err.contains("120"), "{err}");
    let table = cli.ok(&["indicator", "list"]);
    assert!(table.lines().next().unwrap().starts_with("KIND"), "{table}");
    assert!(table.contains("c2.evil.example"), "{table}");
    assert_eq!(
        cli.ok(&["audit", "export", "--action", "indicator."])
            .lines()
            .count(),
        2
    );
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}
