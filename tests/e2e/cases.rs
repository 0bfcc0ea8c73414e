//! Case management through the real binary and server: an incident type with SLA timers and
//! required fields, a breach that starts the playbook triggered on it, and what that playbook
//! can do (change the incident, add a note, give a task to a role, spawn a child, open and
//! relate another incident); tasks that only their role may complete; acknowledgement before
//! the deadline; everything on the timeline and in the audit log.

use crate::support::{Cli, Server, eventually, write_playbook};
use serde_json::Value;

fn show(cli: &Cli, id: &str) -> Value {
    serde_json::from_str(&cli.ok(&["incident", "show", id, "--json"])).unwrap()
}

fn kinds(incident: &Value) -> Vec<String> {
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sla_breach_starts_its_playbook_and_tasks_are_for_their_role() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        r#"
[incidents]
resolve = "1h"
task_due = "4h"

[incidents.types.miner]
acknowledge = "1s"
role = "soc"
fields.asset = { type = "text", required = true }
fields.confidence = { type = "choice", options = ["low", "high"] }
"#,
    )
    .unwrap();
    write_playbook(
        &cli.playbooks_dir(),
        "escalate",
        "[[triggers]]\nkind = \"sla\"\ntimers = [\"acknowledge\"]\nmatch = 'incident.type == \"miner\"'\n",
        r#"
        incident_set(#{ severity: "critical", fields: #{ confidence: "high" } });
        incident_note(`nobody acknowledged ${incident.title} in time (${breach.timer})`);
        let task = task_create(#{ title: "Look at " + incident.fields.asset, role: "soc-leads", due: "15m" });
        let hurry = task_create(#{ title: "Call the owner of " + incident.fields.asset, user: "alice", due: "1s" });
        let child = incident_spawn(#{ type: "containment", title: "Isolate " + incident.fields.asset, owner: "bob" });
        let other = incident_create(#{ type: "review", title: "Why was this not acknowledged?" });
        incident_link(other);
        let refused = "";
        try { incident_set(#{ fields: #{ colour: "red" } }); } catch (e) { refused = e.message; }
        #{ task: task.id, hurry: hurry.id, child: child, other: other, refused: refused }
        "#,
    );
    // A task's due timer breaching starts only the playbooks that trigger on `due`.
    write_playbook(
        &cli.playbooks_dir(),
        "chase",
        "[[triggers]]\nkind = \"sla\"\ntimers = [\"due\"]\n",
        r#"incident_note(`task ${breach.task} is late by ${breach.late_ms} ms`); breach.task"#,
    );
    cli.ok(&["user", "add", "alice", "--role", "soc-leads"]);
    cli.ok(&["user", "add", "bob", "--role", "net"]);
    let err = cli.fails(&["user", "add", "Eve"]);
    assert!(err.contains("user name 'Eve'"), "{err}");

    // Refused before the server starts: a field the type does not declare, a bad choice.
    let err = cli.fails(&[
        "incident",
        "create",
        "--type",
        "miner",
        "--title",
        "x",
        "--field",
        "colour=red",
    ]);
    assert!(
        err.contains("'colour' is not a field of incident type 'miner'"),
        "{err}"
    );
    let err = cli.fails(&[
        "incident",
        "create",
        "--type",
        "miner",
        "--title",
        "x",
        "--field",
        "confidence=maybe",
    ]);
    assert!(err.contains("one of low, high"), "{err}");
    assert!(
        cli.ok(&["incident", "list"]).contains("no incidents"),
        "nothing half-made"
    );

    let server = Server::start(&cli);
    let late = cli
        .ok(&[
            "incident",
            "create",
            "--type",
            "miner",
            "--title",
            "cpu at 100%",
            "--severity",
            "high",
            "--field",
            "asset=pc-17",
        ])
        .trim()
        .to_owned();
    // Acknowledged in time: its acknowledge timer stops and never breaches.
    let acked = cli
        .ok(&[
            "incident",
            "create",
            "--type",
            "miner",
            "--title",
            "fan noise",
            "--field",
            "asset=pc-3",
        ])
        .trim()
        .to_owned();
    cli.ok(&["incident", "ack", &acked]);

    // The breach is recorded and the playbook runs to the end.
    let run_id = eventually(20, "the escalate run", async || {
        let i = show(&cli, &late);
        i["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "run")
            .map(|e| e["details"]["run"].as_str().unwrap().to_owned())
    })
    .await;
    let run: Value = eventually(20, "the escalate run to complete", async || {
        let r: Value = serde_json::from_str(&cli.ok(&["run", "show", &run_id, "--json"])).unwrap();
        (r["run"]["status"] == "completed").then_some(r)
    })
    .await;
    let out = &run["run"]["output"];
    assert!(
        out["refused"]
            .as_str()
            .unwrap()
            .contains("'colour' is not a field"),
        "{run}"
    );

    let i = show(&cli, &late);
    let k = kinds(&i);
    for expected in [
        "created",
        "sla_breach",
        "run",
        "step",
        "update",
        "note",
        "task",
        "child",
        "related",
    ] {
        assert!(k.contains(&expected.to_owned()), "{expected} missing from {k:?}");
    }
    let breach = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "sla_breach")
        .unwrap();
    assert_eq!(breach["details"]["timer"], "acknowledge");
    assert_eq!(i["incident"]["severity"], "critical");
    assert_eq!(i["incident"]["role"], "soc", "the type's team");
    assert_eq!(i["incident"]["fields"]["confidence"], "high");
    let sla: Vec<(String, String)> = i["sla"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["timer"].as_str().unwrap().to_owned(),
                t["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(sla.iter().any(|(t, _)| t == "due"), "the task's timer: {sla:?}");
    assert_eq!(i["children"].as_array().unwrap().len(), 1);
    assert_eq!(i["children"][0]["owner"], "bob");
    assert_eq!(i["children"][0]["id"], out["child"]);
    assert_eq!(i["related"], serde_json::json!([out["other"]]));
    let child = show(&cli, out["child"].as_str().unwrap());
    assert_eq!(child["incident"]["parent_id"], late.as_str());

    // The 1 s task breached too: its playbook ran (and the escalate playbook did not run again).
    let hurry = out["hurry"].as_str().unwrap();
    eventually(20, "the late task's note", async || {
        let i = show(&cli, &late);
        i["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "note" && e["details"]["text"].as_str().unwrap().contains(hurry))
            .then_some(())
    })
    .await;
    let i = show(&cli, &late);
    let breaches: Vec<&str> = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "sla_breach")
        .map(|e| e["details"]["timer"].as_str().unwrap())
        .collect();
    assert_eq!(breaches, vec!["acknowledge", "due"]);
    let runs = i["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run")
        .count();
    assert_eq!(runs, 2, "escalate once, chase once");

    // Only the task's role may complete it.
    let task = out["task"].as_str().unwrap();
    assert!(cli.ok(&["task", "list", "--for", "alice"]).contains(task));
    assert!(!cli.ok(&["task", "list", "--for", "bob"]).contains(task));
    let err = cli.fails(&["task", "done", task, "--as", "bob"]);
    assert!(
        err.contains("neither that user nor a member of that role"),
        "{err}"
    );
    cli.ok(&[
        "task",
        "done",
        task,
        "--as",
        "alice",
        "--comment",
        "checked the miner",
    ]);
    let err = cli.fails(&["task", "done", task, "--as", "alice"]);
    assert!(err.contains("is done, not open"), "{err}");

    // The acknowledged incident never breached.
    let a = show(&cli, &acked);
    assert!(!kinds(&a).contains(&"sla_breach".to_owned()), "{a}");
    let ack = a["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timer"] == "acknowledge")
        .unwrap();
    assert!(ack["stopped_at"].is_i64() && ack["breached_at"].is_null(), "{a}");
    assert_eq!(a["incident"]["status"], "active");

    // Closing needs the required field (here cleared first), and stops the timers.
    cli.ok(&["incident", "set", &late, "--field", "asset="]);
    let err = cli.fails(&["incident", "close", &late, "--reason", "cleaned"]);
    assert!(err.contains("before its required fields are set: asset"), "{err}");
    cli.ok(&["incident", "set", &late, "--field", "asset=pc-17"]);
    cli.ok(&["incident", "close", &late, "--reason", "cleaned"]);
    let closed = show(&cli, &late);
    assert_eq!(closed["incident"]["status"], "closed");
    let resolve = closed["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timer"] == "resolve")
        .unwrap();
    assert!(
        resolve["stopped_at"].is_i64() && resolve["breached_at"].is_null(),
        "{closed}"
    );
    drop(server);

    // The audit log holds all of it, by the right actors, and its chain holds.
    let export = cli.ok(&["audit", "export"]);
    let entries: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let by = |action: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["actor"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(by("sla.breach"), vec!["system", "system"]);
    assert_eq!(
        by("task.create"),
        vec![format!("run:{run_id}"), format!("run:{run_id}")]
    );
    assert_eq!(by("task.done"), vec!["user:alice"]);
    assert_eq!(by("incident.relate"), vec![format!("run:{run_id}")]);
    assert_eq!(by("user.create").len(), 2);
    cli.ok(&["audit", "verify"]);
}
