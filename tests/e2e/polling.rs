//! Polling intake through the real binary against the fake ServiceNow: a poller on
//! `list-incidents` turns tickets into alerts; across a server restart in the middle every
//! ticket becomes exactly one alert (the cursor is committed with the alerts); a failing
//! instance (500) backs the poller off and shows its error in `osprey intake poll list` and
//! the metrics; the checks of `osprey intake poll add`.

use crate::support::fake_servicenow::FakeServicenow;
use crate::support::{Cli, Server, dist, eventually, http_client, text};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub(crate) const USER: &str = "osprey.integration";
pub(crate) const PASSWORD: &str = "Pw-9e2a-11c4-0b7d";

/// Open a ticket on the fake instance, as a person would through its portal, a minute after
/// the previous one; its number. (Each in its own second: a record changed in the second of
/// the cursor with a lower sys_id after the poll is a limit of `list-incidents`' cursor, not
/// what this test is about.)
pub(crate) async fn open_ticket(fake: &FakeServicenow, what: &str) -> String {
    static MINUTE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let m = MINUTE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    fake.set_clock(&format!("2026-12-07 {:02}:{:02}:00", 5 + m / 60, m % 60));
    let r = http_client()
        .post(format!("{}/api/now/table/incident", fake.origin()))
        .basic_auth(USER, Some(PASSWORD))
        .json(&json!({"short_description": what}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["result"]["number"].as_str().unwrap().to_owned()
}

/// `path` of the console as a signed-in auditor.
async fn console_page(cli: &Cli, addr: &str, path: &str) -> String {
    const PW: &str = "correct horse battery staple";
    cli.ok(&[
        "user",
        "add",
        "audrey",
        "--email",
        "audrey@example.com",
        "--role",
        "auditor",
    ]);
    let out = cli.run_with_stdin(&["user", "password", "audrey"], &format!("{PW}\n"));
    assert!(out.status.success(), "{out:?}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = http
        .post(format!("http://{addr}/login"))
        .form(&[("user", "audrey"), ("password", PW), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303, "signs in");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let r = http
        .get(format!("http://{addr}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// The ticket numbers of the alerts the poller made, one per alert (duplicates kept).
fn polled_numbers(cli: &Cli) -> Vec<String> {
    let out = cli.ok(&[
        "alert",
        "list",
        "--source",
        "poll:tickets",
        "-n",
        "1000",
        "--json",
    ]);
    out.lines()
        .map(|l| {
            let a: Value = serde_json::from_str(l).unwrap();
            assert_eq!(a["via"], "poll:tickets", "{a}");
            a["data"]["number"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The poller as `osprey intake poll list --json` shows it.
fn poller(cli: &Cli) -> Value {
    let out = cli.ok(&["intake", "poll", "list", "--json"]);
    let line = out
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no poller listed: {out}"));
    serde_json::from_str(line).unwrap()
}

/// Wait for `n` alerts from the poller; returns their numbers.
async fn wait_for_alerts(cli: &Cli, n: usize) -> Vec<String> {
    eventually(60, &format!("{n} polled alerts"), async || {
        let got = polled_numbers(cli);
        (got.len() >= n).then_some(got)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_become_alerts_once_across_a_restart_and_a_failing_instance_backs_off() {
    let fake = FakeServicenow::start(USER, PASSWORD, "unused-token").await;
    let cli = Cli::new();
    // Short intervals for the test: the floor is a setting.
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[intake]\npoll_min_every = \"1s\"\n",
    )
    .unwrap();
    cli.ok(&["plugin", "install", dist().join("servicenow").to_str().unwrap()]);
    cli.ok(&["plugin", "grant", "servicenow", "--requested"]);
    cli.ok(&["plugin", "grant", "servicenow", "--http", &fake.origin()]);
    cli.ok(&["plugin", "config", "servicenow", &format!("username={USER}")]);
    cli.ok(&[
        "plugin",
        "config",
        "servicenow",
        &format!("instance_url={}", fake.origin()),
    ]);
    let out = cli.run_with_stdin(&["secret", "set", "servicenow", "password"], PASSWORD);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // What `add` refuses, and why.
    let add = |every: &str, action: &str, name: &str| {
        cli.fails(&[
            "intake",
            "poll",
            "add",
            name,
            "--plugin",
            "servicenow",
            "--action",
            action,
            "--every",
            every,
        ])
    };
    assert!(
        add("500ms", "list-incidents", "tickets").contains("below the floor of 1s (intake.poll_min_every)")
    );
    assert!(add("2days", "list-incidents", "tickets").contains("above the most"));
    assert!(add("1s", "list-incidents", "Tickets").contains("poller name 'Tickets'"));
    let e = add("1s", "list-tickets", "tickets");
    assert!(
        e.contains("has no action 'list-tickets'") && e.contains("list-incidents"),
        "{e}"
    );
    let e = cli.fails(&[
        "intake", "poll", "add", "x", "--plugin", "nope", "--action", "a", "--every", "1m",
    ]);
    assert!(e.contains("no plugin named 'nope'"), "{e}");

    // Two per poll, so the tickets take several polls and the restart falls among them.
    let out = cli.ok(&[
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
    assert!(
        out.contains("poller tickets polls servicenow.list-incidents every 1s"),
        "{out}"
    );
    assert!(cli.ok(&["intake", "poll", "list"]).contains("last run never"));

    let mut opened = BTreeSet::new();
    for i in 0..3 {
        opened.insert(open_ticket(&fake, &format!("user report {i}")).await);
    }
    let mut server = Server::start(&cli);
    let got = wait_for_alerts(&cli, 3).await;
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), opened);

    // More tickets; stop the server while it works through them.
    for i in 3..9 {
        opened.insert(open_ticket(&fake, &format!("user report {i}")).await);
    }
    wait_for_alerts(&cli, 4).await;
    assert!(server.terminate().success());
    let before = polled_numbers(&cli).len();
    assert!(
        before < opened.len(),
        "the restart falls in the middle ({before} of {})",
        opened.len()
    );
    for i in 9..11 {
        opened.insert(open_ticket(&fake, &format!("user report {i}")).await);
    }
    let server = Server::start(&cli);
    wait_for_alerts(&cli, opened.len()).await;
    // Two more polls that find nothing new, then: each ticket exactly once.
    let polls = poller(&cli)["polls"].as_i64().unwrap();
    eventually(30, "two more polls", async || {
        (poller(&cli)["polls"].as_i64().unwrap() >= polls + 2).then_some(())
    })
    .await;
    let mut got = polled_numbers(&cli);
    got.sort();
    assert_eq!(
        got,
        opened.iter().cloned().collect::<Vec<_>>(),
        "every ticket exactly once"
    );
    let p = poller(&cli);
    assert_eq!(
        (p["items"].as_i64(), p["bad_items"].as_i64()),
        (Some(opened.len() as i64), Some(0))
    );

    // The instance fails: the poller backs off (twice the interval, then four times) and says why.
    fake.broken(true);
    let p = eventually(30, "two failed polls", async || {
        let p = poller(&cli);
        (p["failures"].as_i64().unwrap() >= 2).then_some(p)
    })
    .await;
    let error = p["last_error"].as_str().unwrap();
    assert!(
        error.contains("servicenow.list-incidents: unavailable") && error.contains("HTTP 500"),
        "{error}"
    );
    let wait = p["next_due"].as_i64().unwrap() - p["last_run_at"].as_i64().unwrap();
    assert!(wait >= 3900, "backed off {wait} ms after two failures");
    let shown = cli.ok(&["intake", "poll", "list"]);
    assert!(
        shown.contains("failing (") && shown.contains("Internal Server Error"),
        "{shown}"
    );
    let metrics = server.metrics().await;
    // Counted by this process: the alerts it committed, after the restart.
    let accepted = format!(
        r#"osprey_poll_items_total{{poller="tickets",outcome="accepted"}} {}"#,
        opened.len() - before
    );
    for line in [
        r#"osprey_polls_total{poller="tickets",outcome="failed"} "#,
        &accepted,
        r#"osprey_poll_lag_seconds{poller="tickets"} "#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }

    // And in the console, on the plugins page.
    let page = console_page(&cli, &server.addr, "/plugins").await;
    assert!(page.contains(r#"<table id="pollers">"#), "{page}");
    assert!(page.contains("failing (") && page.contains("HTTP 500"), "{page}");

    // It recovers: the next ticket arrives and the failures are cleared.
    fake.broken(false);
    opened.insert(open_ticket(&fake, "after the outage").await);
    wait_for_alerts(&cli, opened.len()).await;
    let p = eventually(30, "the failures cleared", async || {
        let p = poller(&cli);
        (p["failures"] == 0).then_some(p)
    })
    .await;
    assert!(p["last_error"].is_null(), "{p}");

    // Removed, it polls no more.
    cli.ok(&["intake", "poll", "remove", "tickets"]);
    assert_eq!(cli.ok(&["intake", "poll", "list"]).trim(), "no pollers");
    assert!(
        cli.fails(&["intake", "poll", "remove", "tickets"])
            .contains("no poller named 'tickets'")
    );
}
