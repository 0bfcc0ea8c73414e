//! Seed 004, "Deputising vs delegating", end to end with the real binary, a real SMTP server
//! and the fakes: a noisy IDS signature's investigation asks the analyst "tune it?" and
//! deputises the tuning to another team as a child incident that the parent tracks and that
//! outlives it (shared by later investigations of the same signature); and a POC-environment
//! request that the owner's manager (Microsoft Graph) approves by mail before the instance is
//! launched, tagged and reported through the aws-ec2 plugin (AWS EC2, SigV4-checked).

use crate::humans::{setup, user};
use crate::seed_bitcoin::{copy_dir, json_lines};
use crate::streaming_guard::link;
use crate::support::fake_aws_ec2::FakeEc2;
use crate::support::fake_msgraph::{CLIENT_ID, FakeMsGraph, TENANT};
use crate::support::smtp::{ReceivedMail, SmtpSink};
use crate::support::{Cli, Server, connector, dist, eventually, http_client};
use serde_json::{Value, json};

const SIGNATURE: &str = "2019401";
const GRAPH_SECRET: &str = "Xq78Q~fake.client.secret.Zb3";
const REGION: &str = "eu-west-1";
const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7DEVOPS01";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYDEVOPSKEY1";

fn bundled(cli: &Cli, name: &str) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../playbooks")
        .join(name);
    copy_dir(&repo, &cli.playbooks_dir().join(name));
}

fn incident(cli: &Cli, id: &str) -> Value {
    serde_json::from_str(&cli.ok(&["incident", "show", id, "--json"])).unwrap()
}

/// The mail to `to` whose subject starts with `subject`, waited for.
async fn mail_to(smtp: &SmtpSink, to: &str, subject: &str) -> ReceivedMail {
    eventually(30, &format!("a mail to {to}: {subject}"), async || {
        smtp.messages()
            .into_iter()
            .find(|m| m.to.iter().any(|t| t == to) && m.subject.starts_with(subject))
    })
    .await
}

/// Follow an answer link like a person: open the confirmation page, then send the form.
async fn answer_by_link(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> String {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<form"));
    let r = http
        .post(url.split('?').next().unwrap())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let page = r.text().await.unwrap();
    assert_eq!(status, 200, "{page}");
    page
}

/// The incidents opened by the IDS rule (not the tuning ones), oldest first.
fn investigations(cli: &Cli) -> Vec<Value> {
    let mut found: Vec<Value> = json_lines(&cli.ok(&["incident", "list", "--json"]))
        .into_iter()
        .filter(|i| i["type"] == "ids-alert")
        .collect();
    found.sort_by_key(|i| i["created_at"].as_i64());
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_signature_is_deputised_to_the_tuning_team_and_tracked_from_its_investigations() {
    let smtp = SmtpSink::start();
    let cli = setup(
        &smtp,
        "[incidents.types.signature-tuning]\nacknowledge = \"4h\"\nresolve = \"5d\"\nrole = \"tuning\"\n",
    );
    user(&cli, "andy", "andy@example.com", "analyst");
    user(&cli, "laura", "laura@example.com", "tuning");
    bundled(&cli, "noisy-signature-tuning");
    cli.ok(&[
        "rules",
        "set",
        "ids-dedup",
        "--match",
        r#"alert.source == "ids""#,
        "--action",
        "dedup",
        "--key",
        "alert.data.signature_id",
        "--window",
        "1h",
        "--type",
        "ids-alert",
    ]);
    let sensor = cli
        .ok(&["token", "create", "ids", "--scope", "intake"])
        .trim()
        .to_owned();
    let andy_api = cli
        .ok(&[
            "token", "create", "andy-api", "--role", "analyst", "--user", "andy",
        ])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();
    let send_alerts = async |n: usize| {
        let body: String = (0..n)
            .map(|k| {
                json!({"source": "ids", "title": "ET POLICY Vulnerable Java Version",
                       "signature_id": SIGNATURE, "signature": "ET POLICY Vulnerable Java Version",
                       "src_ip": format!("10.1.2.{}", k + 1)})
                .to_string()
                    + "\n"
            })
            .collect();
        let r = http
            .post(format!("{base}/api/v1/alerts"))
            .bearer_auth(&sensor)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };

    // Three noisy alerts: one investigation; the analyst is asked by mail (nobody owns it).
    send_alerts(3).await;
    let ask = mail_to(&smtp, "andy@example.com", "Tune IDS signature 2019401").await;
    assert!(
        ask.text.contains("ET POLICY Vulnerable Java Version"),
        "{}",
        ask.text
    );
    let first = investigations(&cli);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["occurrences"], 3);
    let parent = first[0]["id"].as_str().unwrap().to_owned();
    // "Tune it", through the mail's link.
    let page = answer_by_link(&http, &link(&ask, "Tune it"), &[("option", "Tune it")]).await;
    assert!(page.contains("Tune it"), "{page}");

    // The child: a tuning incident for the tuning team, with its own SLA, spawned from the
    // parent, whose timeline and detail show it and its status.
    let shown = eventually(30, "the tuning incident spawned", async || {
        let shown = incident(&cli, &parent);
        (!shown["children"].as_array().unwrap().is_empty()).then_some(shown)
    })
    .await;
    let child = shown["children"][0].clone();
    let tuning = child["id"].as_str().unwrap().to_owned();
    assert_eq!(child["type"], "signature-tuning");
    assert_eq!(child["role"], "tuning");
    assert_eq!(child["parent_id"], parent.as_str());
    assert_eq!(child["status"], "new");
    assert_eq!(child["dedup_key"], format!("tuning:ids:{SIGNATURE}"));
    let timeline = shown["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["kind"] == "child" && e["details"]["child"] == tuning.as_str()),
        "{timeline:?}"
    );
    let note = eventually(30, "the parent's note", async || {
        incident(&cli, &parent)["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "note")
            .cloned()
    })
    .await;
    assert!(
        note["details"]["text"].as_str().unwrap().contains(&tuning),
        "{note}"
    );
    let tuning_shown = incident(&cli, &tuning);
    let timers: Vec<(&str, i64)> = tuning_shown["sla"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["timer"].as_str().unwrap(), t["duration_ms"].as_i64().unwrap()))
        .collect();
    assert!(timers.contains(&("acknowledge", 4 * 3_600_000)), "{timers:?}");
    assert!(timers.contains(&("resolve", 5 * 86_400_000)), "{timers:?}");
    // The API shows the child from the parent too.
    let detail: Value = http
        .get(format!("{base}/api/v1/incidents/{parent}"))
        .bearer_auth(&andy_api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["children"][0]["id"], tuning.as_str(), "{detail}");

    // The analyst closes the investigation without waiting: the tuning incident stays open.
    cli.ok(&[
        "incident",
        "close",
        &parent,
        "--reason",
        "false positive; tuning requested",
    ]);
    assert_eq!(incident(&cli, &parent)["incident"]["status"], "closed");
    assert_eq!(incident(&cli, &tuning)["incident"]["status"], "new");

    // The signature fires again: a new investigation, answered through the API this time; it
    // is related to the same tuning incident instead of spawning another (1-many).
    send_alerts(1).await;
    let second = eventually(30, "the second investigation", async || {
        let all = investigations(&cli);
        (all.len() == 2).then(|| all[1]["id"].as_str().unwrap().to_owned())
    })
    .await;
    let question = eventually(30, "andy's second question", async || {
        let page: Value = http
            .get(format!("{base}/api/v1/questions"))
            .bearer_auth(&andy_api)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["status"] == "open")
            .and_then(|q| q["id"].as_str().map(str::to_owned))
    })
    .await;
    let r = http
        .post(format!("{base}/api/v1/questions/{question}/answer"))
        .bearer_auth(&andy_api)
        .json(&json!({"value": "Tune it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let related = eventually(30, "the second investigation related", async || {
        let shown = incident(&cli, &second);
        let related = shown["related"].as_array().unwrap().clone();
        (!related.is_empty()).then_some(related)
    })
    .await;
    assert_eq!(related, vec![Value::from(tuning.clone())]);
    assert_eq!(
        incident(&cli, &second)["children"],
        json!([]),
        "nothing spawned again"
    );
    let tunings: Vec<Value> = json_lines(&cli.ok(&["incident", "list", "--json"]))
        .into_iter()
        .filter(|i| i["type"] == "signature-tuning")
        .collect();
    assert_eq!(
        tunings.len(),
        1,
        "one tuning incident for the signature: {tunings:?}"
    );
    assert_eq!(
        incident(&cli, &tuning)["related"],
        json!([second]),
        "the tuning incident knows the investigations that asked for it"
    );
    drop(server);
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}

/// The set-up DevOps do once: the directory and EC2 connectors against their fakes, the
/// requester and the devops team.
fn devops_setup(cli: &Cli, graph: &FakeMsGraph, ec2: &FakeEc2) {
    let mut printed = String::new();
    for plugin in ["msgraph", "aws-ec2"] {
        cli.ok(&["plugin", "install", dist().join(plugin).to_str().unwrap()]);
        cli.ok(&["plugin", "grant", plugin, "--requested"]);
    }
    for setting in [
        format!("tenant={TENANT}"),
        format!("client_id={CLIENT_ID}"),
        format!("login_base={}", graph.origin()),
        format!("graph_base={}", graph.origin()),
    ] {
        cli.ok(&["plugin", "config", "msgraph", &setting]);
    }
    cli.ok(&["plugin", "grant", "msgraph", "--http", &graph.origin()]);
    connector::set_secret(cli, "msgraph", "client-secret", GRAPH_SECRET, &mut printed);
    cli.ok(&[
        "plugin",
        "config",
        "aws-ec2",
        &format!("endpoint={}", ec2.endpoint()),
    ]);
    cli.ok(&["plugin", "grant", "aws-ec2", "--http", &ec2.endpoint()]);
    connector::set_secret(cli, "aws-ec2", "access-key-id", ACCESS_KEY_ID, &mut printed);
    connector::set_secret(
        cli,
        "aws-ec2",
        "secret-access-key",
        SECRET_ACCESS_KEY,
        &mut printed,
    );
    assert!(!printed.contains(SECRET_ACCESS_KEY) && !printed.contains(GRAPH_SECRET));
    user(cli, "sam", "sam@example.com", "requester");
    user(cli, "dave", "dave@example.com", "devops");
    bundled(cli, "poc-environment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poc_environment_is_approved_by_the_owners_manager_then_launched_tagged_and_reported() {
    let graph = FakeMsGraph::start(GRAPH_SECRET).await;
    let ec2 = FakeEc2::start(REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY).await;
    let smtp = SmtpSink::start();
    let cli = setup(&smtp, "");
    devops_setup(&cli, &graph, &ec2);
    let sam = cli
        .ok(&[
            "token",
            "create",
            "sam-api",
            "--role",
            "requester",
            "--user",
            "sam",
        ])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();
    let request = async |owner: &str| {
        let r = http
            .post(format!("{base}/api/v1/requests/poc-environment"))
            .bearer_auth(&sam)
            .json(&json!({"owner": owner, "region": REGION, "company": "Initech"}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{status} {body}");
        body
    };

    // Adele's environment: her manager, Miriam, is found in the directory and asked by mail.
    let sent = request("AdeleV@contoso.example").await;
    let run_of_request = sent["id"].as_str().unwrap().to_owned();
    assert_eq!(
        sent["origin"], "request:sam",
        "the run is the requester's: {sent}"
    );
    let ask = mail_to(&smtp, "MiriamG@contoso.example", "POC environment for Initech").await;
    assert!(
        ask.text.contains("sam asks for a POC environment for Initech"),
        "{}",
        ask.text
    );
    assert!(
        ask.text.contains("t3.medium instance in eu-west-1"),
        "{}",
        ask.text
    );
    assert_eq!(ec2.launched(), 0, "nothing is launched before the approval");
    answer_by_link(&http, &link(&ask, "Approve"), &[("decision", "approve")]).await;

    // The requester's report: the instance, its region and state, and a "talk to a human"
    // link; the instance is in EC2, running, with its tags.
    let report = mail_to(
        &smtp,
        "sam@example.com",
        "Your POC environment for Initech is running",
    )
    .await;
    let id = report.subject.rsplit(": ").next().unwrap().to_owned();
    assert!(id.starts_with("i-"), "{}", report.subject);
    assert!(
        report.text.contains(&format!("is running in {REGION}")),
        "{}",
        report.text
    );
    let talk = link(&report, "Talk to a human");
    let r = http.get(&talk).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(ec2.launched(), 1);
    let seen = ec2.instance(&id).expect("the instance in EC2");
    assert_eq!(seen.state, "running");
    let tracked = seen
        .tags
        .get("Incident")
        .cloned()
        .expect("tagged with its incident");
    for (key, value) in [
        ("Owner", "AdeleV@contoso.example"),
        ("Company", "Initech"),
        ("RequestedBy", "sam"),
        ("ManagedBy", "DevOps"),
        ("Name", "poc-Initech"),
    ] {
        assert_eq!(
            seen.tags.get(key).map(String::as_str),
            Some(value),
            "{:?}",
            seen.tags
        );
    }
    assert!(
        seen.tags["ApprovedBy"].contains("MiriamG@contoso.example"),
        "{:?}",
        seen.tags
    );
    // DevOps own it: an incident of their team tracks it; the run is the requester's.
    let shown = incident(&cli, &tracked);
    assert_eq!(shown["incident"]["role"], "devops");
    assert_eq!(shown["incident"]["type"], "poc-environment");
    assert!(
        shown["incident"]["title"].as_str().unwrap().contains(&id),
        "{shown}"
    );
    assert!(report.text.contains(&tracked), "{}", report.text);
    let run: Value = serde_json::from_str(&cli.ok(&["run", "show", &run_of_request, "--json"])).unwrap();
    assert_eq!(run["run"]["status"], "completed", "{run}");
    assert_eq!(run["run"]["output"]["instance"], id.as_str(), "{run}");

    // Miriam has no manager: the devops team is asked instead, refuses, and sam is told.
    request("MiriamG@contoso.example").await;
    let ask = mail_to(
        &smtp,
        "dave@example.com",
        "POC environment for Initech, owned by Miriam",
    )
    .await;
    answer_by_link(
        &http,
        &link(&ask, "Deny"),
        &[("decision", "deny"), ("comment", "one per quarter")],
    )
    .await;
    let refused = mail_to(&smtp, "sam@example.com", "Refused: POC environment for Initech").await;
    assert!(
        refused.text.contains("refused it: one per quarter"),
        "{}",
        refused.text
    );
    assert_eq!(ec2.launched(), 1, "a refused request launches nothing");
    drop(server);
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}
