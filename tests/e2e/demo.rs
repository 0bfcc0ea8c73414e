//! `osprey demo` with the repository's demo/ folder, plugins/dist and playbooks/: it sets up
//! a fresh data directory, prints a password for each role, serves, and within a minute the
//! API shows alerts from its trickle, incidents from its rules, the analysts' open questions
//! (the domain request, whose requester has no manager in the demo's directory, and an IDS
//! signature's "tune it?"), a block list the Bitcoin guard filled (served as an EDL), charts
//! with points (the Bitcoin guard's verdicts, Bonusly's gifts) and a defence validation whose
//! probes were all blocked; a person signs in with a printed password, sees the dashboard
//! with the demo banner and the pinned charts, and answers the question from the inbox. A
//! second start on the same data directory changes nothing but the passwords.

use crate::support::browser::Browser;
use crate::support::{Cli, Server, dist, eventually, http_client};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `osprey demo` on `cli`'s data directory; its stdout goes to `out`.
fn start_demo(cli: &Cli, out: &Path) -> Server {
    let mut command = cli.command();
    command
        .arg("demo")
        .args(["--listen", "127.0.0.1:0", "--rate", "120"])
        .arg("--plugins-dir")
        .arg(dist())
        .arg("--playbooks-dir")
        .arg(repo().join("playbooks"))
        .arg("--demo-dir")
        .arg(repo().join("demo"));
    let stdout = std::fs::File::create(out).unwrap();
    // Installing and compiling nine connectors into a fresh data directory takes a while.
    Server::spawn(command, Stdio::from(stdout), 240)
}

/// The `user NAME  password PASSWORD  (ROLES)` lines the demo printed.
fn passwords(out: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                ["user", name, "password", password, ..] => Some((name.to_string(), password.to_string())),
                _ => None,
            }
        })
        .collect()
}

async fn get(url: &str, token: &str) -> Value {
    let r = http_client().get(url).bearer_auth(token).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sets_up_serves_and_fills_the_console() {
    // SQLite only, also when the suite runs on PostgreSQL: the demo keeps its own database
    // file in its data directory, never a configured one (cli/demo.rs `configure`).
    let cli = Cli::sqlite();
    let out = cli.data_dir().join("demo-stdout.txt");
    let server = start_demo(&cli, &out);
    let base = format!("http://{}", server.addr);

    let printed = passwords(&out);
    for role in [
        "admin",
        "operator",
        "engineer",
        "analyst",
        "auditor",
        "requester",
        "devops",
    ] {
        assert!(
            printed.get(role).is_some_and(|p| p.len() >= 20),
            "a password for {role}:\n{}",
            std::fs::read_to_string(&out).unwrap()
        );
    }
    let stdout = std::fs::read_to_string(&out).unwrap();
    assert!(stdout.contains("new passwords at every start"), "{stdout}");
    assert!(
        !stdout.contains("skipped"),
        "every connector and rule of the demo is set up:\n{stdout}"
    );

    // Every bundled connector is installed and mocked.
    let plugins = cli.ok(&["plugin", "list"]);
    for name in [
        "ipinfo",
        "autofocus",
        "virustotal",
        "msgraph",
        "unifi",
        "bonusly",
        "aws-ec2",
        "probe",
    ] {
        assert!(plugins.contains(name), "{plugins}");
        let mock = cli.ok(&["plugin", "mock", name]);
        assert!(mock.contains("MOCK"), "{name}: {mock}");
    }

    let api = cli
        .ok(&[
            "token",
            "create",
            "demo-check",
            "--role",
            "analyst",
            "--user",
            "analyst",
        ])
        .trim()
        .to_owned();
    let edl = cli
        .ok(&["token", "create", "demo-edl", "--scope", "edl"])
        .trim()
        .to_owned();

    // Within a minute: alerts, incidents, an open question, a filled EDL.
    eventually(60, "alerts from the trickle", async || {
        (items(&get(&format!("{base}/api/v1/alerts"), &api).await).len() >= 3).then_some(())
    })
    .await;
    let incidents = eventually(60, "incidents of three kinds", async || {
        let list = items(&get(&format!("{base}/api/v1/incidents"), &api).await);
        let kinds: std::collections::BTreeSet<String> = list
            .iter()
            .filter_map(|i| i["type"].as_str().map(str::to_owned))
            .collect();
        (kinds.contains("bitcoin-connection") && kinds.contains("ids") && kinds.contains("streaming"))
            .then_some(list)
    })
    .await;
    assert!(!incidents.is_empty());
    let question = eventually(60, "the domain request in the analysts' inbox", async || {
        items(&get(&format!("{base}/api/v1/questions"), &api).await)
            .into_iter()
            .find(|q| q.to_string().contains("partner-portal.example"))
    })
    .await;
    assert!(
        question.to_string().contains("the analysts decide"),
        "the question says why the analysts decide: {question}"
    );
    eventually(
        60,
        "an IDS signature's tuning question in the analysts' inbox",
        async || {
            items(&get(&format!("{base}/api/v1/questions"), &api).await)
                .into_iter()
                .find(|q| {
                    q["title"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("Tune IDS signature "))
                })
        },
    )
    .await;
    let gifts_charted = async || {
        let chart = get(
            &format!("{base}/api/v1/playbooks/bonusly-month-end/charts/gifts"),
            &api,
        )
        .await;
        let given: f64 = chart["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["value"].as_f64())
            .sum();
        given >= 40.0
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !gifts_charted().await {
        if std::time::Instant::now() > deadline {
            let runs = get(&format!("{base}/api/v1/runs?playbook=bonusly-month-end"), &api).await;
            let mut shown = Vec::new();
            for r in items(&runs) {
                let id = r["id"].as_str().unwrap_or_default();
                shown.push(get(&format!("{base}/api/v1/runs/{id}"), &api).await);
            }
            let logs = server.logs.lock().unwrap().clone();
            let warnings: Vec<&String> = logs
                .iter()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("bonusly"))
                .collect();
            panic!(
                "timed out waiting for Bonusly's gifts on its chart; its runs: {shown:#?}\nthe server's warnings:\n{warnings:#?}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let validated = eventually(60, "a defence validation that ran", async || {
        items(&get(&format!("{base}/api/v1/runs?playbook=defence-validation"), &api).await)
            .into_iter()
            .find(|r| r["status"] == "completed")
    })
    .await;
    let validated = get(
        &format!("{base}/api/v1/runs/{}", validated["id"].as_str().unwrap()),
        &api,
    )
    .await;
    assert_eq!(
        validated["run"]["output"]["failed"],
        serde_json::json!([]),
        "every probe is blocked in the demo: {validated}"
    );
    eventually(60, "the bad IP on the EDL", async || {
        let r = http_client()
            .get(format!("{base}/edl/bitcoin-blocked.txt"))
            .bearer_auth(&edl)
            .send()
            .await
            .unwrap();
        r.text().await.unwrap().contains("203.0.113.66").then_some(())
    })
    .await;

    // The requester asks for a POC environment; nobody has a manager in the demo, so devops
    // approve it, and the mocked EC2 launches it.
    let token_for = |name: &str, role: &str| {
        cli.ok(&[
            "token",
            "create",
            &format!("demo-{name}"),
            "--role",
            role,
            "--user",
            name,
        ])
        .trim()
        .to_owned()
    };
    let requester = token_for("requester", "requester");
    let devops = token_for("devops", "engineer");
    let r = http_client()
        .post(format!("{base}/api/v1/requests/poc-environment"))
        .bearer_auth(&requester)
        .json(
            &serde_json::json!({"owner": "adele@demo.example", "region": "eu-west-1", "company": "Initech"}),
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}: {}",
        r.status(),
        r.text().await.unwrap()
    );
    let poc = eventually(60, "the POC environment in devops' inbox", async || {
        items(&get(&format!("{base}/api/v1/questions"), &devops).await)
            .into_iter()
            .find(|q| {
                q["title"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("POC environment for Initech"))
            })
    })
    .await;
    let r = http_client()
        .post(format!(
            "{base}/api/v1/questions/{}/answer",
            poc["id"].as_str().unwrap()
        ))
        .bearer_auth(&devops)
        .json(&serde_json::json!({"value": true}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{}: {}",
        r.status(),
        r.text().await.unwrap()
    );
    eventually(60, "the POC environment launched", async || {
        items(&get(&format!("{base}/api/v1/runs?playbook=poc-environment"), &api).await)
            .into_iter()
            .find(|r| r["status"] == "completed" && r["output"]["instance"].is_string())
    })
    .await;

    // Signed in with a printed password: the banner, the dashboard with data and the pinned
    // chart, and the question answered from the inbox.
    let browser = Browser::start("demo").await;
    browser.login(&base, "analyst", &printed["analyst"]).await;
    browser.goto(&format!("{base}/")).await;
    let banner = browser.wait_for("#banner").await.text().await.unwrap();
    assert_eq!(banner, "Demo: connectors are mocked");
    let chart = "#chart-bitcoin-node-guard-verdicts";
    browser.wait_for(chart).await;
    let chart_text = browser.text(chart).await;
    assert!(
        chart_text.contains("malicious"),
        "the pinned chart has points: {chart_text}"
    );
    assert!(
        browser.find_all(&format!("{chart} svg")).await.len() == 1,
        "the chart is drawn"
    );
    let gifts = "#chart-bonusly-month-end-gifts";
    browser.wait_for(gifts).await;
    assert!(
        browser.find_all(&format!("{gifts} svg")).await.len() == 1,
        "Bonusly's pinned chart is drawn"
    );
    browser.screenshot("1-dashboard").await;

    browser.goto(&format!("{base}/inbox")).await;
    let form = format!(
        "form[action='/inbox/questions/{}']",
        question["id"].as_str().unwrap()
    );
    browser.wait_for(&form).await;
    browser.screenshot("2-inbox").await;
    browser
        .click(&format!("{form} input[name=decision][value=approve]"))
        .await;
    browser.click(&format!("{form} button[type=submit]")).await;
    browser
        .wait_for_url("the inbox again", |u| u.path() == "/inbox")
        .await;
    browser.screenshot("3-answered").await;
    browser.close().await;

    // The approval reached the run: the domain is on the allow list, served as an EDL.
    eventually(30, "the approved domain on the allow list", async || {
        let r = http_client()
            .get(format!("{base}/edl/allowed-domains.txt"))
            .bearer_auth(&edl)
            .send()
            .await
            .unwrap();
        r.text()
            .await
            .unwrap()
            .contains("partner-portal.example")
            .then_some(())
    })
    .await;

    // A second start on the same data directory: new passwords, nothing installed again.
    drop(server);
    let installs = || {
        cli.ok(&["audit", "export", "--action", "plugin.install"])
            .lines()
            .count()
    };
    let audit_before = installs();
    let out2 = cli.data_dir().join("demo-stdout-2.txt");
    let again = start_demo(&cli, &out2);
    let printed2 = passwords(&out2);
    assert_ne!(
        printed2["admin"], printed["admin"],
        "passwords are new at every start"
    );
    let audit_after = installs();
    assert!(audit_before >= 9, "the connectors' installs are audited");
    assert_eq!(audit_before, audit_after, "a second start installs nothing again");
    drop(again);
}

#[test]
fn the_demo_refuses_the_real_data_directory() {
    let cli = Cli::new();
    // From the temporary folder, as `scripts/run.sh` would from the repository.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args(["--data-dir", "./data", "demo", "--no-trickle"])
        .current_dir(cli.data_dir())
        .env_remove("OSPREY_MASTER_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = crate::support::text(&out.stderr);
    assert!(err.contains("the demo does not run on ./data"), "{err}");
    assert!(
        !cli.data_dir().join("data").exists(),
        "nothing was made in ./data"
    );
}
