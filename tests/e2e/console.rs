//! The web console in a real headless Chromium against a real `osprey serve`: the
//! dashboard's charts drawn from real alerts and runs, an incident's one timeline and the
//! analyst's actions (each an API call made by the page as the signed-in user), the
//! auditor's plugin page with a refused grant change, the engineer's cancel and restart of a
//! run, and the pages each role may open. Screenshots of every page go to the artifacts
//! folder (`support::browser::artifacts_dir`).

use crate::support::browser::Browser;
use crate::support::{Cli, Server, dist, eventually, http_client, write_playbook};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

fn user(cli: &Cli, name: &str, role: &str) {
    cli.ok(&[
        "user",
        "add",
        name,
        "--email",
        &format!("{name}@example.com"),
        "--role",
        role,
    ]);
    let out = cli.run_with_stdin(&["user", "password", name], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{out:?}");
}

fn json(cli: &Cli, args: &[&str]) -> Value {
    serde_json::from_str(&cli.ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn incident_ids(cli: &Cli) -> Vec<String> {
    cli.ok(&["incident", "list", "--json"])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|i| i["id"].as_str().map(str::to_owned))
        .collect()
}

/// The text of the element matching `css`, or "" while there is none; a page that is being
/// reloaded (after a form) also reads as "" rather than failing.
async fn read(browser: &Browser, css: &str) -> String {
    let script = format!("const e = document.querySelector({css:?}); return e ? e.innerText : '';");
    match browser.client().execute(&script, vec![]).await {
        Ok(Value::String(text)) => text,
        _ => String::new(),
    }
}

/// Send alerts as newline-delimited JSON with an intake token.
async fn send_alerts(base: &str, token: &str, alerts: &[Value]) {
    let body: Vec<String> = alerts.iter().map(Value::to_string).collect();
    let r = http_client()
        .post(format!("{base}/api/v1/alerts"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(body.join("\n"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_reads_the_dashboard_and_works_an_incident() {
    let cli = Cli::new();
    write_playbook(
        &cli.playbooks_dir(),
        "triage-note",
        "minutes_saved = 15\n",
        r#"incident_note("enriched: nothing known about this host"); #{ checked: true }"#,
    );
    cli.ok(&[
        "rules",
        "set",
        "scans",
        "--match",
        r#"alert.title.contains("scan")"#,
        "--action",
        "drop",
    ]);
    cli.ok(&[
        "rules",
        "set",
        "beacons",
        "--match",
        "true",
        "--action",
        "incident",
        "--type",
        "malware",
        "--playbook",
        "triage-note",
    ]);
    user(&cli, "alice", "analyst");
    let intake = cli
        .ok(&["token", "create", "fw", "--scope", "intake"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let alerts: Vec<Value> = (0..3)
        .map(|i| serde_json::json!({"source": "fw", "title": format!("port scan {i}"), "severity": "low"}))
        .chain([
            serde_json::json!({"source": "edr", "title": "beacon from host-1", "severity": "high"}),
            serde_json::json!({"source": "edr", "title": "beacon from host-2", "severity": "critical"}),
        ])
        .collect();
    send_alerts(&base, &intake, &alerts).await;
    // Both incidents' runs have written their note.
    let ids = eventually(30, "two incidents with their playbook's note", async || {
        let ids = incident_ids(&cli);
        let noted = ids.iter().all(|id| {
            cli.ok(&["incident", "show", id, "--json"])
                .contains("enriched: nothing known")
        });
        (ids.len() == 2 && noted).then_some(ids)
    })
    .await;

    let browser = Browser::start("console-analyst").await;
    browser.login(&base, "alice", PASSWORD).await;
    browser.goto(&format!("{base}/")).await;
    browser.wait_for("#chart-open-incidents svg").await;
    let charts = browser
        .execute("return document.querySelectorAll('section.chart figure svg').length")
        .await;
    assert_eq!(charts, 6, "every chart has data to draw");
    let bars = browser
        .execute("return document.querySelectorAll('#chart-open-incidents svg rect').length")
        .await;
    assert!(bars.as_u64().unwrap() >= 2, "the severity chart has bars: {bars}");
    for (chart, expected) in [
        ("open-incidents", "2 open incident(s); 1 critical, 1 high"),
        ("alerts-per-source", "5 alert(s) from 2 source(s)"),
        ("preprocessing", "60% dropped"),
        ("runs", "2 run(s): 2 completed"),
        // 2 runs x 15 minutes.
        ("time-saved", "About 0.5 hour(s) saved by 2 completed run(s)"),
    ] {
        let caption = browser.text(&format!("#chart-{chart} figcaption")).await;
        assert!(caption.starts_with(expected), "{chart}: {caption}");
    }
    browser.screenshot("dashboard").await;

    browser.goto(&format!("{base}/incidents?severity=critical")).await;
    let rows = browser.find_all("#incidents tbody a").await;
    assert_eq!(rows.len(), 1, "the severity filter keeps the critical one");
    browser.goto(&format!("{base}/incidents")).await;
    browser.wait_for("#incidents tbody a").await;
    browser.screenshot("incidents").await;
    let critical = ids
        .iter()
        .find(|id| json(&cli, &["incident", "show", id, "--json"])["incident"]["severity"] == "critical")
        .unwrap()
        .clone();
    browser.click(&format!("a[href='/incidents/{critical}']")).await;
    browser.wait_for("#timeline li").await;
    let timeline = browser.text("#timeline").await;
    for expected in [
        "created",
        "alert",
        "Step",
        "enriched: nothing known about this host",
    ] {
        assert!(
            timeline.contains(expected),
            "the timeline shows {expected}: {timeline}"
        );
    }
    assert!(browser.text("#key-fields").await.contains("critical"));
    browser.screenshot("incident").await;

    // A note, a severity and an owner, each through the API as alice.
    browser.fill("#note", "Called the host's owner").await;
    browser.click("#note-form button").await;
    eventually(15, "the note on the reloaded timeline", async || {
        read(&browser, "#timeline")
            .await
            .contains("Called the host's owner")
            .then_some(())
    })
    .await;
    browser.select("#severity", "high").await;
    browser.click("#severity-form button").await;
    eventually(15, "the new severity", async || {
        read(&browser, "#key-fields").await.contains("high").then_some(())
    })
    .await;
    browser.select("#owner", "alice").await;
    browser.click("#assign-form button").await;
    eventually(15, "the owner", async || {
        (read(&browser, "#incident-owner").await.trim() == "alice").then_some(())
    })
    .await;
    let detail = json(&cli, &["incident", "show", &critical, "--json"]);
    assert_eq!(detail["incident"]["severity"], "high");
    assert_eq!(detail["incident"]["owner"], "alice");
    let note = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "note" && e["details"]["text"] == "Called the host's owner")
        .expect("the note is on the timeline");
    assert_eq!(note["actor"], "user:alice", "audited as the signed-in user");

    // Spawn a child: the page goes to it.
    browser.fill("#child-title", "Reimage host-2").await;
    browser.click("#spawn-form button").await;
    browser
        .wait_for_url("the child incident's page", |u| {
            u.path().starts_with("/incidents/") && !u.path().ends_with(&critical)
        })
        .await;
    browser.wait_for("#incident-title").await;
    assert_eq!(browser.text("#incident-title").await, "Reimage host-2");
    assert!(
        browser.page_text().await.contains(&critical),
        "the child names its parent"
    );

    // Closing without a reason is refused by the browser; with one, by nobody.
    browser.goto(&format!("{base}/incidents/{critical}")).await;
    browser.fill("#close-reason", "reimaged").await;
    browser.click("#close-form button").await;
    eventually(15, "the incident closed", async || {
        (read(&browser, "#incident-status").await == "closed").then_some(())
    })
    .await;
    browser.wait_for("#reopen-form").await;

    // On a phone: nothing scrolls sideways.
    browser.set_window_size(390, 844).await;
    browser.goto(&format!("{base}/incidents/{critical}")).await;
    assert!(
        !browser.scrolls_horizontally().await,
        "the incident page fits a phone"
    );
    browser.screenshot("incident-phone").await;
    browser.goto(&format!("{base}/")).await;
    browser.wait_for("#chart-open-incidents svg").await;
    assert!(
        !browser.scrolls_horizontally().await,
        "the dashboard fits a phone"
    );
    browser.screenshot("dashboard-phone").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_sees_grants_and_secret_names_but_cannot_change_a_grant() {
    let cli = Cli::new();
    cli.ok(&[
        "plugin",
        "install",
        dist().join("ipinfo").to_str().unwrap(),
        "--grant-requested",
    ]);
    cli.run_with_stdin(
        &["secret", "set", "ipinfo", "token"],
        "s3cret-value-never-shown\n",
    );
    // A playbook whose plugin call the grant refuses: the auditor's page lists the denial.
    cli.ok(&[
        "plugin",
        "install",
        dist().join("test-hostile").to_str().unwrap(),
        "--grant-requested",
    ]);
    write_playbook(
        &cli.playbooks_dir(),
        "exfil",
        "",
        r#"let kind = "none";
           try { invoke("test-hostile", "fetch", #{ url: "https://exfil.example.com/loot" }); }
           catch (e) { kind = e.kind; }
           kind"#,
    );
    user(&cli, "audrey", "auditor");
    let grants_before = cli
        .ok(&["audit", "export", "--action", "plugin.grant"])
        .lines()
        .count();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);

    let browser = Browser::start("console-auditor").await;
    browser.login(&base, "audrey", PASSWORD).await;
    browser.goto(&format!("{base}/plugins")).await;
    assert!(browser.text("#plugins").await.contains("ipinfo"));
    browser.screenshot("plugins").await;
    browser.goto(&format!("{base}/plugins/ipinfo")).await;
    let capabilities = browser.text("#capabilities").await;
    assert!(
        capabilities.contains("https://ipinfo.io") && capabilities.contains("granted"),
        "{capabilities}"
    );
    let secrets = browser.text("#secrets").await;
    assert!(
        secrets.contains("token") && secrets.contains("value set"),
        "{secrets}"
    );
    assert!(!browser.page_source().await.contains("s3cret-value-never-shown"));
    browser.screenshot("plugin").await;

    // The page lets an auditor try; the API refuses, and the page says so.
    browser
        .fill(
            "#grant",
            r#"{"http": ["https://ipinfo.io", "https://exfil.example.com"]}"#,
        )
        .await;
    browser.click("#grant-form button").await;
    let refusal = browser.wait_for("#grant-form .result.error").await;
    let refusal = refusal.text().await.unwrap();
    assert!(refusal.contains("403"), "{refusal}");
    browser.screenshot("grant-refused").await;
    let grants_after = cli
        .ok(&["audit", "export", "--action", "plugin.grant"])
        .lines()
        .count();
    assert_eq!(grants_before, grants_after, "no grant was changed");
    assert!(
        !cli.ok(&["plugin", "inspect", "ipinfo"])
            .contains("exfil.example.com")
    );

    // The refused call of a playbook, on the plugin's page.
    let run = cli.ok(&["playbook", "run", "exfil", "--detach"]);
    let run = run.split_whitespace().nth(1).unwrap().to_owned();
    eventually(30, "the exfil run done", async || {
        let v = json(&cli, &["run", "show", &run, "--json"]);
        (v["run"]["status"] == "completed").then_some(())
    })
    .await;
    browser.goto(&format!("{base}/plugins/test-hostile")).await;
    let calls = browser.text("#calls").await;
    assert!(
        calls.contains("fetch") && calls.contains("denied") && calls.contains(&run),
        "{calls}"
    );
    assert!(
        browser
            .text("#calls-summary")
            .await
            .contains("1 denied by the grant")
    );
    browser
        .execute("document.querySelector('#calls').scrollIntoView(); return null;")
        .await;
    browser.screenshot("plugin-denials").await;

    // The audit log, verified.
    browser.goto(&format!("{base}/audit?action=plugin.")).await;
    assert!(browser.text("#verification").await.contains("intact"));
    assert!(browser.text("#audit").await.contains("plugin.grant"));
    browser.screenshot("audit").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_cancels_and_restarts_a_run_from_its_page() {
    let cli = Cli::new();
    write_playbook(
        &cli.playbooks_dir(),
        "slow",
        "",
        r#"log("first"); sleep("1h"); log("second"); 1"#,
    );
    user(&cli, "erin", "engineer");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let started = cli.ok(&["playbook", "run", "slow", "--detach"]);
    let id = started.split_whitespace().nth(1).unwrap().to_owned();
    eventually(20, "the run waiting", async || {
        (json(&cli, &["run", "show", &id, "--json"])["run"]["status"] == "waiting").then_some(())
    })
    .await;

    let browser = Browser::start("console-engineer").await;
    browser.login(&base, "erin", PASSWORD).await;
    browser.goto(&format!("{base}/playbooks/slow")).await;
    assert!(browser.text("#source").await.contains(r#"sleep("1h")"#));
    browser.goto(&format!("{base}/runs/{id}")).await;
    assert_eq!(browser.text("#run-status").await, "waiting");
    assert!(browser.text("#steps").await.contains("log"));
    browser.screenshot("run-waiting").await;
    browser.click("#cancel-form button").await;
    browser.client().accept_alert().await.unwrap();
    eventually(15, "the run cancelled", async || {
        (json(&cli, &["run", "show", &id, "--json"])["run"]["status"] == "cancelled").then_some(())
    })
    .await;
    browser.wait_for("#restart-form").await;
    browser.select("#from-step", "1").await;
    browser.click("#restart-form button").await;
    eventually(20, "the run waiting again after its restart", async || {
        (json(&cli, &["run", "show", &id, "--json"])["run"]["status"] == "waiting").then_some(())
    })
    .await;
    let restarts = cli.ok(&["audit", "export", "--action", "run.restart"]);
    assert!(restarts.contains("user:erin"), "{restarts}");
    browser.goto(&format!("{base}/runs/{id}")).await;
    browser.screenshot("run-restarted").await;
    browser.close().await;
}

/// The console's pages and who may open them: 200, 403, or 303 (to the inbox for a requester
/// on the dashboard, to the sign-in page for nobody).
const PAGES: &[&str] = &[
    "/",
    "/incidents",
    "/inbox",
    "/playbooks",
    "/runs",
    "/plugins",
    "/plugin-installs",
    "/lists",
    "/audit",
    "/requests",
];

fn expected(role: &str, page: &str) -> u16 {
    let allowed: &[&str] = match role {
        "admin" => PAGES,
        "auditor" => &[
            "/",
            "/incidents",
            "/inbox",
            "/playbooks",
            "/runs",
            "/plugins",
            "/lists",
            "/audit",
        ],
        "operator" => &["/", "/inbox", "/plugins", "/plugin-installs", "/lists"],
        "engineer" => &["/", "/inbox", "/playbooks", "/runs", "/plugins"],
        "analyst" => &["/", "/incidents", "/inbox", "/playbooks", "/runs", "/lists"],
        "requester" => &["/inbox", "/requests"],
        other => panic!("no row for role {other}"),
    };
    match (role, page) {
        ("requester", "/") => 303,
        _ if allowed.contains(&page) => 200,
        _ => 403,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_opens_the_pages_its_role_allows() {
    // Every page route the console serves has a row here.
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/server/ui/mod.rs")).unwrap();
    for line in source.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap();
        if path.starts_with("/ui/static") {
            continue;
        }
        let list_page = path.split("/{").next().unwrap();
        let list_page = if list_page.is_empty() { "/" } else { list_page };
        assert!(
            PAGES.contains(&list_page),
            "console route {path} has no row in PAGES"
        );
    }

    let cli = Cli::new();
    let roles = ["admin", "operator", "engineer", "analyst", "auditor", "requester"];
    for role in roles {
        user(&cli, &format!("u-{role}"), role);
    }
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for page in PAGES {
        let r = http.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 303, "signed out: {page}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next=")
        );
    }
    for role in roles {
        let login = http
            .post(format!("{base}/login"))
            .form(&[
                ("user", format!("u-{role}").as_str()),
                ("password", PASSWORD),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status().as_u16(), 303, "{role} signs in");
        let cookie = login.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        for page in PAGES {
            let r = http
                .get(format!("{base}{page}"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            let body = r.text().await.unwrap();
            assert_eq!(
                status,
                expected(role, page),
                "{role} on {page}: {location:?} {body}"
            );
            if status == 403 {
                assert!(body.contains("do not allow this page"), "{body}");
            }
            if status == 200 {
                // The navigation offers no page the role would be refused.
                for other in PAGES.iter().filter(|p| expected(role, p) == 403) {
                    assert!(
                        !body.contains(&format!("<a href=\"{other}\"")),
                        "{role} is offered {other}"
                    );
                }
            }
        }
    }
}

/// Copy the bundled playbook `name` into `cli`'s playbooks folder.
fn bundled_playbook(cli: &Cli, name: &str) {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../playbooks")
        .join(name);
    let to = cli.playbooks_dir().join(name);
    std::fs::create_dir_all(&to).unwrap();
    for file in ["playbook.toml", "playbook.rhai"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_asks_for_a_domain_and_an_analyst_approves_it_in_the_inbox() {
    let cli = Cli::new();
    bundled_playbook(&cli, "allow-domain-request");
    cli.ok(&[
        "list",
        "create",
        "allowed-domains",
        "--kind",
        "allow",
        "--type",
        "domain",
    ]);
    user(&cli, "rita", "requester");
    user(&cli, "alice", "analyst");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);

    let requester = Browser::start("console-requester").await;
    requester.login(&base, "rita", PASSWORD).await;
    requester.goto(&format!("{base}/requests")).await;
    requester.click("a[href='/requests/allow-domain-request']").await;
    requester.wait_for("#request-form").await;
    requester.fill("#field-domain", "Vendor-Portal.example").await;
    requester.fill("#field-days", "3").await;
    requester
        .fill("#field-reason", "the auditors' vendor portal")
        .await;
    requester.screenshot("form").await;
    requester.click("#request-form button").await;
    requester
        .wait_for_url("the requests page after sending", |u| {
            u.path() == "/requests" && u.query().is_some_and(|q| q.starts_with("sent="))
        })
        .await;
    assert!(requester.text("#sent").await.contains("Your request was sent"));
    eventually(20, "the request waiting for an analyst", async || {
        read(&requester, "#mine")
            .await
            .contains("waiting for an answer")
            .then_some(())
    })
    .await;
    requester.screenshot("sent").await;

    // An analyst approves it from the inbox.
    let analyst = Browser::start("console-requester-analyst").await;
    analyst.login(&base, "alice", PASSWORD).await;
    analyst.goto(&format!("{base}/inbox")).await;
    let inbox = analyst.page_text().await;
    assert!(
        inbox.contains("rita asks to allow vendor-portal.example for 3 days"),
        "{inbox}"
    );
    analyst.click("input[name=decision][value=approve]").await;
    analyst.click("main form button[type=submit]").await;
    analyst
        .wait_for_url("the inbox again", |u| u.path() == "/inbox")
        .await;
    analyst.screenshot("approved").await;

    // The domain is on the allow list for 3 days, and the requester sees the answer.
    let entries = eventually(20, "the domain on the allow list", async || {
        let out = cli.ok(&["list", "show", "allowed-domains"]);
        out.contains("vendor-portal.example").then_some(out)
    })
    .await;
    assert!(entries.contains("rita"), "{entries}");
    requester.goto(&format!("{base}/requests")).await;
    eventually(20, "the request approved", async || {
        requester.goto(&format!("{base}/requests")).await;
        read(&requester, "#mine").await.contains("approved").then_some(())
    })
    .await;
    requester.screenshot("answered").await;
    // The analyst's list page shows the entry with its expiry.
    analyst.goto(&format!("{base}/lists/allowed-domains")).await;
    let row = analyst.text("#entries").await;
    assert!(
        row.contains("vendor-portal.example") && !row.contains("never"),
        "{row}"
    );
    analyst.screenshot("list").await;
    requester.close().await;
    analyst.close().await;
}
