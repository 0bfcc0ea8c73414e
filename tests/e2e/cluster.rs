//! Several nodes on one PostgreSQL: three `osprey serve` processes, each with a data
//! directory of its own (the same master key file, plugins folder, playbooks and
//! osprey.toml copied in), share one fresh database. Alerts go to all three; each opens an
//! incident whose playbook calls the test-echo plugin, which calls a fake vendor on loopback
//! that counts requests per step (`StepCounter`); a cron trigger fires every two seconds and
//! each fire sends a mail to a real SMTP sink; each incident's acknowledge timer breaches and
//! starts a playbook; a poller turns tickets of the fake ServiceNow into alerts. One node is
//! killed with kill -9 in the middle and started again later. Then: every accepted alert was
//! decided once (one incident each), every run completed, no step journaled before the crash
//! reached the vendor again, and each cron fire, breach, poll and mail happened once across
//! the cluster.

use crate::mail::configure;
use crate::polling::{PASSWORD as SN_PASSWORD, USER as SN_USER, open_ticket};
use crate::support::fake_servicenow::FakeServicenow;
use crate::support::postgres::{fresh_database, required_server};
use crate::support::smtp::SmtpSink;
use crate::support::step_counter::StepCounter;
use crate::support::{Cli, Server, dist, http_client, store_of, text, write_playbook};
use osprey::store::Store;
use osprey::store::runs::{RunRecord, RunStatus};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the cluster has to settle after the load: generous, the machine is shared.
const SETTLE: Duration = Duration::from_secs(120);

/// The first node's setup, done once through the CLI against the shared database: the
/// plugins, their grants, settings and secrets, the rule, the poller, the playbooks and the
/// settings file.
fn set_up_first_node(cli: &Cli, smtp: &SmtpSink, vendor: &str, servicenow: &FakeServicenow) {
    configure(
        cli,
        smtp.port(),
        // Short leases so a dead node's runs are taken over within seconds.
        "[runs]\nlease = \"2s\"\nworkers = 4\n\n[intake]\npoll_min_every = \"1s\"\n\n\
         [incidents.types.cluster]\nacknowledge = \"3s\"\n",
    );
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-echo").to_str().unwrap(),
        "--grant-requested",
    ]);
    cli.ok(&["plugin", "grant", "test-echo", "--http", vendor]);
    cli.ok(&["plugin", "install", dist().join("servicenow").to_str().unwrap()]);
    cli.ok(&["plugin", "grant", "servicenow", "--requested"]);
    cli.ok(&["plugin", "grant", "servicenow", "--http", &servicenow.origin()]);
    cli.ok(&["plugin", "config", "servicenow", &format!("username={SN_USER}")]);
    cli.ok(&[
        "plugin",
        "config",
        "servicenow",
        &format!("instance_url={}", servicenow.origin()),
    ]);
    let out = cli.run_with_stdin(&["secret", "set", "servicenow", "password"], SN_PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Two steps at the vendor per incident, so a crash can fall between them.
    write_playbook(
        &cli.playbooks_dir(),
        "enrich",
        "",
        &format!(
            r#"invoke("test-echo", "ping", #{{ url: "{vendor}/ping" }});
               invoke("test-echo", "ping", #{{ url: "{vendor}/ping" }});
               incident.id"#
        ),
    );
    write_playbook(
        &cli.playbooks_dir(),
        "tick",
        "[[triggers]]\nkind = \"cron\"\nschedule = \"*/2 * * * * *\"\n",
        r#"send_email(#{ email: "soc@corp.example", subject: "tick " + run.id, text: "a cron fire" }); run.id"#,
    );
    write_playbook(
        &cli.playbooks_dir(),
        "escalate",
        "[[triggers]]\nkind = \"sla\"\ntimers = [\"acknowledge\"]\n",
        "incident.id",
    );
    cli.ok(&[
        "rules",
        "set",
        "per-alert",
        "--match",
        r#"alert.source == "sensor""#,
        "--action",
        "incident",
        "--type",
        "cluster",
        "--playbook",
        "enrich",
    ]);
    cli.ok(&[
        "intake",
        "poll",
        "add",
        "tickets",
        "--plugin",
        "servicenow",
        "--action",
        "list-incidents",
        "--every",
        "1s",
        "--input",
        r#"{"limit": 2}"#,
    ]);
}

/// Another node on the same database: what it needs of the first one's data directory.
fn join(first: &Cli, database: &str) -> Cli {
    let node = Cli::on_database(database);
    std::fs::copy(
        first.data_dir().join("master.key"),
        node.data_dir().join("master.key"),
    )
    .unwrap();
    std::fs::copy(
        first.data_dir().join("osprey.toml"),
        node.data_dir().join("osprey.toml"),
    )
    .unwrap();
    copy_dir(
        &first.data_dir().join("plugins"),
        &node.data_dir().join("plugins"),
    );
    copy_dir(&first.playbooks_dir(), &node.playbooks_dir());
    node
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Post `n` alerts numbered from `first` to `addr` in one NDJSON request; the ids of those
/// accepted (with their titles), or none if the node did not answer 2xx.
async fn post_alerts(addr: &str, token: &str, first: usize, n: usize) -> Vec<(String, String)> {
    let body: String = (first..first + n)
        .map(|i| {
            format!(
                "{{\"source\": \"sensor\", \"title\": \"alert {i}\", \"src\": \"198.51.{}.{}\"}}\n",
                i / 250,
                i % 250
            )
        })
        .collect();
    let Ok(r) = http_client()
        .post(format!("http://{addr}/api/v1/alerts"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
    else {
        return Vec::new();
    };
    if !r.status().is_success() {
        return Vec::new();
    }
    let Ok(answer) = r.json::<Value>().await else {
        return Vec::new();
    };
    answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter_map(|(k, item)| {
            item["id"]
                .as_str()
                .map(|id| (id.to_owned(), format!("alert {}", first + k)))
        })
        .collect()
}

async fn runs_of(store: &Store, playbook: &str) -> Vec<RunRecord> {
    store.runs(Some(playbook), None, 10_000).await.unwrap()
}

/// Where the cluster stands, and whether it has settled: every accepted alert decided, every
/// incident's run and breach run completed, at least `ticks` cron runs completed and each
/// of them with its mail delivered, and every ticket polled. Settled: the completed cron runs.
async fn settled(
    store: &Store,
    accepted: &BTreeMap<String, String>,
    smtp: &SmtpSink,
    tickets: usize,
    ticks: usize,
) -> Result<BTreeSet<String>, String> {
    let alerts = store.alerts(None, 10_000).await.unwrap();
    let undecided = alerts
        .iter()
        .filter(|a| accepted.contains_key(&a.id) && a.disposition.is_none())
        .count();
    let polled = alerts.iter().filter(|a| a.via == "poll:tickets").count();
    let done = |runs: &[RunRecord]| runs.iter().filter(|r| r.status == RunStatus::Completed).count();
    let (enrich, escalate, tick) = (
        runs_of(store, "enrich").await,
        runs_of(store, "escalate").await,
        runs_of(store, "tick").await,
    );
    let subjects: BTreeSet<String> = smtp.messages().into_iter().map(|m| m.subject).collect();
    let ticked: BTreeSet<String> = tick
        .iter()
        .filter(|r| r.status == RunStatus::Completed)
        .map(|r| r.id.clone())
        .collect();
    let unmailed = ticked
        .iter()
        .filter(|id| !subjects.contains(&format!("tick {id}")))
        .count();
    let state = format!(
        "{undecided} of {} accepted alerts undecided; enrich runs {}/{} completed; escalate runs {}/{} completed \
         (of {} incidents); {} tick runs completed ({unmailed} of them without their mail yet); {polled} of {tickets} tickets polled",
        accepted.len(),
        done(&enrich),
        enrich.len(),
        done(&escalate),
        escalate.len(),
        accepted.len(),
        ticked.len(),
    );
    let all_done = undecided == 0
        && done(&enrich) == accepted.len()
        && enrich.len() == accepted.len()
        && done(&escalate) >= accepted.len()
        && ticked.len() >= ticks
        && unmailed == 0
        && polled >= tickets;
    if all_done { Ok(ticked) } else { Err(state) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_postgres_survive_kill_9_and_do_each_singleton_once() {
    let Some(server) = required_server("the cluster test") else {
        return;
    };
    let database = fresh_database(&server);
    let vendor = StepCounter::start(Duration::from_millis(20)).await;
    let smtp = SmtpSink::start();
    let servicenow = FakeServicenow::start(SN_USER, SN_PASSWORD, "unused-token").await;

    let first = Cli::on_database(&database);
    set_up_first_node(&first, &smtp, &vendor.base_url, &servicenow);
    let token = first
        .ok(&["token", "create", "sensor", "--scope", "intake"])
        .trim()
        .to_owned();
    let nodes = [join(&first, &database), join(&first, &database)];
    let nodes = [&first, &nodes[0], &nodes[1]];
    let mut servers: Vec<Option<Server>> = nodes.iter().map(|n| Some(Server::start(n))).collect();
    let store = store_of(&first).await;
    let started = Instant::now();

    let mut tickets = BTreeSet::new();
    let mut accepted = BTreeMap::new();
    let mut next = 0;
    // Load on all three, batches of five round the nodes.
    let mut load =
        async |servers: &[Option<Server>], batches: usize, accepted: &mut BTreeMap<String, String>| {
            for b in 0..batches {
                if let Some(s) = &servers[b % servers.len()] {
                    accepted.extend(post_alerts(&s.addr, &token, next, 5).await);
                    next += 5;
                }
            }
        };
    for i in 0..2 {
        tickets.insert(open_ticket(&servicenow, &format!("before the crash {i}")).await);
    }
    load(&servers, 24, &mut accepted).await;

    // Kill the second node once runs are under way, while more load comes.
    let deadline = Instant::now() + SETTLE;
    while vendor.counts().len() < 30 {
        assert!(
            Instant::now() < deadline,
            "no runs got under way: {:?}",
            vendor.counts().len()
        );
        load(&servers, 3, &mut accepted).await;
    }
    // The steps journaled so far (read just before the kill: a step in flight on the node
    // that dies may be taken over and journaled by another node within its lease).
    let mut journaled_before = BTreeSet::new();
    for run in runs_of(&store, "enrich").await {
        for step in store.steps(&run.id).await.unwrap() {
            journaled_before.insert(format!("{}:{}", run.id, step.seq));
        }
    }
    servers[1].take().unwrap().kill_9();
    let killed_at = started.elapsed();
    for i in 0..2 {
        tickets.insert(open_ticket(&servicenow, &format!("while one node is down {i}")).await);
    }
    load(&servers, 24, &mut accepted).await;

    // Back again; more load on all three.
    servers[1] = Some(Server::start(nodes[1]));
    for i in 0..2 {
        tickets.insert(open_ticket(&servicenow, &format!("after the restart {i}")).await);
    }
    load(&servers, 15, &mut accepted).await;

    let deadline = Instant::now() + SETTLE;
    let ticked = loop {
        match settled(&store, &accepted, &smtp, tickets.len(), 3).await {
            Ok(ticked) => break ticked,
            Err(state) => {
                if Instant::now() > deadline {
                    let logs: Vec<String> = servers
                        .iter()
                        .flatten()
                        .flat_map(|s| s.logs.lock().unwrap().clone())
                        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                        .take(40)
                        .collect();
                    panic!(
                        "the cluster did not settle in {SETTLE:?}: {state}\n{}",
                        logs.join("\n")
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Stop the cluster, so nothing changes while it is checked.
    for s in servers.iter_mut().flatten() {
        s.terminate();
    }
    eprintln!(
        "cluster: {} alerts accepted; node 2 killed {killed_at:?} after the start; settled after {:?}",
        accepted.len(),
        started.elapsed()
    );

    // Every accepted alert decided once: one incident each, with that alert alone.
    let incidents = store.incidents(None, 10_000).await.unwrap();
    let mut by_title: HashMap<&str, usize> = HashMap::new();
    for i in &incidents {
        *by_title.entry(i.title.as_str()).or_default() += 1;
    }
    let alerts: HashMap<String, _> = store
        .alerts(Some("sensor"), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    for (id, title) in &accepted {
        let a = &alerts[id];
        assert_eq!(a.disposition.as_deref(), Some("incident"), "alert {id} ({title})");
        assert_eq!(by_title.get(title.as_str()), Some(&1), "one incident for {title}");
    }
    assert_eq!(
        incidents.len(),
        accepted.len(),
        "no incident without an accepted alert"
    );
    for i in &incidents {
        assert_eq!(
            store.incident_alert_ids(&i.id).await.unwrap().len(),
            1,
            "{}",
            i.title
        );
    }

    // Every run completed; a step journaled before the crash reached the vendor once, any
    // other step at most twice (the step in flight when the node died carries its key).
    let counts = vendor.counts();
    let enrich = runs_of(&store, "enrich").await;
    assert_eq!(enrich.len(), accepted.len(), "one run per incident");
    let mut resent = 0;
    for run in &enrich {
        assert_eq!(run.status, RunStatus::Completed, "run {}", run.id);
        let steps = store.steps(&run.id).await.unwrap();
        assert_eq!(steps.len(), 2, "run {}", run.id);
        for s in steps {
            let key = format!("{}:{}", run.id, s.seq);
            let n = counts.get(&key).copied().unwrap_or(0);
            if journaled_before.contains(&key) {
                assert_eq!(
                    n, 1,
                    "step {key} was journaled before the crash and reached the vendor again"
                );
            } else {
                assert!((1..=2).contains(&n), "step {key} reached the vendor {n} times");
                resent += usize::from(n == 2);
            }
        }
    }
    assert!(!journaled_before.is_empty(), "the crash came after some steps");
    assert!(
        journaled_before.len() < 2 * accepted.len(),
        "the crash came before the end ({} steps journaled)",
        journaled_before.len()
    );
    assert_eq!(
        counts.len(),
        2 * accepted.len(),
        "the vendor saw only the runs' own steps"
    );

    // Each SLA breach once: one breach on each incident's timeline, one escalate run each.
    let escalate = runs_of(&store, "escalate").await;
    let mut escalated: HashMap<String, usize> = HashMap::new();
    for run in &escalate {
        assert_eq!(run.status, RunStatus::Completed, "run {}", run.id);
        *escalated
            .entry(run.output.clone().unwrap().as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for i in &incidents {
        assert_eq!(escalated.get(&i.id), Some(&1), "one escalate run for {}", i.id);
        let breaches = store
            .incident_timeline(&i.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "sla_breach")
            .count();
        assert_eq!(breaches, 1, "one breach recorded for {}", i.id);
    }

    // Each cron occurrence fired once, whichever node fired it, and each fire's mail was
    // delivered once (a message in flight at the crash could be sent again; none was then).
    let ticks = runs_of(&store, "tick").await;
    let mut fires = BTreeSet::new();
    for run in &ticks {
        let fire_at = run.context["cron"]["fire_at"]
            .as_i64()
            .expect("a cron run names its occurrence");
        assert!(fires.insert(fire_at), "occurrence {fire_at} fired twice");
    }
    let mut mails: HashMap<String, usize> = HashMap::new();
    for m in smtp.messages() {
        *mails.entry(m.subject).or_default() += 1;
    }
    for id in &ticked {
        let n = mails.get(&format!("tick {id}")).copied().unwrap_or(0);
        assert!((1..=2).contains(&n), "the mail of {id} came {n} times");
    }
    let twice = mails.values().filter(|n| **n > 1).count();
    assert!(
        twice <= 1,
        "{twice} mails came twice; only one can have been in flight at the crash"
    );
    let ids: BTreeSet<String> = ticks.iter().map(|r| format!("tick {}", r.id)).collect();
    assert!(
        mails.keys().all(|subject| ids.contains(subject)),
        "a mail per fire, nothing else: {mails:?}"
    );

    // Each poll once: every ticket became exactly one alert.
    let polled: Vec<String> = store
        .alerts(Some("poll:tickets"), 1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.alert.data["number"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = polled.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        tickets.iter().cloned().collect::<Vec<_>>(),
        "every ticket exactly once"
    );
    eprintln!(
        "cluster: {} steps journaled before the crash, {resent} in-flight steps sent again, {} cron fires, {} mails sent twice",
        journaled_before.len(),
        ticks.len(),
        twice
    );
}
