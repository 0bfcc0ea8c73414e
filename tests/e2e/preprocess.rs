//! Pre-processing through the real server: rules drop noise, fold duplicates into one
//! incident, open incidents and start playbooks that see the alert and the incident; and
//! `osprey rules test` shows what a rule set would have done.

use crate::support::{Cli, Server, eventually, http_client, write_playbook};
use serde_json::{Value, json};

fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_drop_deduplicate_and_open_incidents_that_start_playbooks() {
    let cli = Cli::new();
    write_playbook(
        &cli.playbooks_dir(),
        "stream-watch",
        "",
        r#"#{ incident: incident.id, kind: incident.type, client: alert.data.client, query: alert.data.query }"#,
    );
    write_playbook(
        &cli.playbooks_dir(),
        "noticer",
        "[[triggers]]\nkind = \"alert\"\nmatch = 'alert.source == \"passivedns\"'\n",
        // A domain goes on a list and comes off again: both are real changes, audited as the run.
        // (A name of its own per run: two incidents' runs go at the same time.)
        r#"let d = alert.observables.domains[0];
           let mine = run.id + "." + d;
           let added = list_add("seen-domains", mine, #{ ttl: "1h", reason: "seen in DNS" });
           let removed = list_remove("seen-domains", mine);
           let missing = "";
           try { list_add("no-such-list", d); } catch (e) { missing = e.message; }
           if added.value != mine || !removed || missing == "" { throw `list calls: ${added} ${removed} ${missing}`; }
           incident_set(#{ status: "active", owner: "analyst-1" });
           "noticed " + d"#,
    );
    cli.ok(&[
        "list",
        "create",
        "seen-domains",
        "--kind",
        "allow",
        "--type",
        "domain",
    ]);
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
        "streaming",
        "--match",
        r#"alert.source == "passivedns" && alert.data.query.ends_with("netflix.com")"#,
        "--action",
        "dedup",
        "--key",
        "alert.data.client",
        "--window",
        "1h",
        "--type",
        "streaming",
        "--playbook",
        "stream-watch",
    ]);
    let err = cli.fails(&[
        "rules",
        "set",
        "bad",
        "--match",
        "alert.source ==",
        "--action",
        "drop",
    ]);
    assert!(err.contains("rule 'bad': match"), "{err}");
    let err = cli.fails(&["rules", "set", "bad", "--match", "true", "--action", "dedup"]);
    assert!(err.contains("needs a key and a window"), "{err}");

    let token = cli
        .ok(&["token", "create", "sensor", "--scope", "intake"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let url = format!("http://{}/api/v1/alerts", server.addr);
    let http = http_client();
    let pdns = "1700000000.1||10.1.1.5||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1\n\
                1700000001.1||10.1.1.5||8.8.8.8||IN||api.netflix.com.||A||52.2.3.5||300||1\n\
                1700000002.1||10.1.1.6||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1\n";
    let r = http
        .post(format!("{url}?format=passivedns"))
        .bearer_auth(&token)
        .body(pdns)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(&url)
        .bearer_auth(&token)
        .body(r#"[{"source": "ids", "title": "ET SCAN nmap"}, {"source": "edr", "title": "odd process"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Two incidents: the first client's two lookups fold into one.
    let incidents = eventually(20, "two incidents", async || {
        let i = json_lines(&cli.ok(&["incident", "list", "--json"]));
        (i.len() == 2).then_some(i)
    })
    .await;
    let first = incidents
        .iter()
        .find(|i| i["occurrences"] == 2)
        .expect("one incident with two occurrences");
    assert_eq!(first["type"], "streaming");
    assert_eq!(first["dedup_key"], "10.1.1.5");
    assert_eq!(first["rule"], "streaming");
    let alerts = eventually(20, "every alert processed", async || {
        let a = json_lines(&cli.ok(&["alert", "list", "--json"]));
        a.iter().all(|a| !a["disposition"].is_null()).then_some(a)
    })
    .await;
    let disposition = |title: &str| {
        let a = alerts
            .iter()
            .find(|a| a["title"].as_str().unwrap().contains(title))
            .unwrap();
        (
            a["disposition"].as_str().unwrap().to_owned(),
            a["rule"].as_str().map(str::to_owned),
        )
    };
    assert_eq!(
        disposition("ET SCAN"),
        ("dropped".into(), Some("scanner-noise".into()))
    );
    assert_eq!(disposition("odd process"), ("unmatched".into(), None));
    assert_eq!(
        alerts.iter().filter(|a| a["disposition"] == "duplicate").count(),
        1
    );

    // Each new incident started the rule's playbook and the one whose trigger matched; the
    // scripts saw the alert and the incident.
    let id = first["id"].as_str().unwrap();
    let shown: Value = serde_json::from_str(&cli.ok(&["incident", "show", id, "--json"])).unwrap();
    let kinds: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .filter(|k| *k != "step")
        .collect();
    assert_eq!(kinds[..4], ["created", "run", "run", "duplicate"], "{shown:#}");
    // The runs' steps are on the same timeline.
    assert!(
        shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "step"),
        "{shown:#}"
    );
    assert_eq!(shown["alerts"].as_array().unwrap().len(), 2);
    for event in shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run")
    {
        let run_id = event["details"]["run"].as_str().unwrap().to_owned();
        // Ended: completed, or failed or set aside (shown whole below). The deadline is loose
        // for a loaded CI machine; the run takes well under a second alone.
        let run = eventually(60, "the run to end", async || {
            let r: Value = serde_json::from_str(&cli.ok(&["run", "show", &run_id, "--json"])).unwrap();
            matches!(
                r["run"]["status"].as_str(),
                Some("completed" | "failed" | "cancelled" | "dead")
            )
            .then_some(r)
        })
        .await;
        assert_eq!(run["run"]["status"], "completed", "{run:#}");
        match event["details"]["playbook"].as_str().unwrap() {
            "stream-watch" => assert_eq!(
                run["run"]["output"],
                json!({"incident": id, "kind": "streaming", "client": "10.1.1.5", "query": "www.netflix.com"})
            ),
            "noticer" => assert_eq!(run["run"]["output"], "noticed www.netflix.com"),
            other => panic!("unexpected playbook {other}"),
        }
    }

    // Closed, the incident takes no more duplicates: the next lookup opens a new one.
    cli.ok(&["incident", "close", id, "--reason", "owner is home"]);
    let r = http
        .post(format!("{url}?format=passivedns"))
        .bearer_auth(&token)
        .body("1700000100.1||10.1.1.5||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let third = eventually(20, "a third incident", async || {
        let incidents = json_lines(&cli.ok(&["incident", "list", "--json"]));
        (incidents.len() == 3).then(|| incidents[0]["id"].as_str().unwrap().to_owned())
    })
    .await;
    // Its runs finish (the noticer's list entry comes off again) before the server stops.
    let runs: Vec<String> = eventually(20, "the third incident's runs", async || {
        let shown: Value = serde_json::from_str(&cli.ok(&["incident", "show", &third, "--json"])).unwrap();
        let runs: Vec<String> = shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "run")
            .map(|e| e["details"]["run"].as_str().unwrap().to_owned())
            .collect();
        (runs.len() == 2).then_some(runs)
    })
    .await;
    for run_id in runs {
        eventually(20, "the run to complete", async || {
            let r: Value = serde_json::from_str(&cli.ok(&["run", "show", &run_id, "--json"])).unwrap();
            (r["run"]["status"] == "completed").then_some(())
        })
        .await;
    }
    drop(server);

    // What the rules would have done to the alerts received so far.
    let report: Value = serde_json::from_str(&cli.ok(&["rules", "test", "--json"])).unwrap();
    assert_eq!(report["alerts"], 6);
    assert_eq!(
        report["rules"][0],
        json!({"name": "scanner-noise", "action": "drop", "alerts": 1})
    );
    assert_eq!(report["rules"][1]["alerts"], 4);
    assert_eq!(report["unmatched"], 1);
    // A candidate set from a file, before it is stored.
    let file = cli.data_dir().join("candidate.toml");
    std::fs::write(
        &file,
        "[[rules]]\nname = \"all-dns\"\nmatch = 'alert.source == \"passivedns\"'\naction = \"drop\"\n",
    )
    .unwrap();
    let report: Value =
        serde_json::from_str(&cli.ok(&["rules", "test", "--json", "--file", file.to_str().unwrap()]))
            .unwrap();
    assert_eq!(report["rules"][0]["alerts"], 4);
    assert_eq!(report["unmatched"], 2);

    assert!(
        cli.ok(&["list", "show", "seen-domains", "--json"])
            .trim()
            .is_empty()
    );
    let audit = cli.ok(&["audit", "show", "-n", "100"]);
    for action in ["list.add", "list.remove", "incident.update"] {
        assert!(
            audit.lines().any(|l| l.contains(action) && l.contains("run:r")),
            "{action} by a run is not audited:\n{audit}"
        );
    }
    for action in ["rule.set", "incident.create", "incident.status"] {
        assert!(audit.contains(action), "{action} is not audited:\n{audit}");
    }
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}
