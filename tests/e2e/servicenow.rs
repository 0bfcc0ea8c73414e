//! The ServiceNow connector, end to end through the real binary: install, grant, secrets,
//! the instance URL, `osprey plugin call` against a fake instance on loopback (create, get,
//! update, work note, and polling by cursor with no item twice), basic auth and OAuth, and a
//! playbook that opens an incident and notes on it.

use crate::support::fake_servicenow::FakeServicenow;
use crate::support::{Cli, connector, dist, run_id, write_playbook};
use serde_json::{Value, json};

const USER: &str = "osprey.integration";
const PASSWORD: &str = "Pw-4c1d-77e0-aa2b";
const TOKEN: &str = "oauth_3b8f0e6d2a914c57";

fn call(cli: &Cli, action: &str, input: Value, printed: &mut String) -> (bool, Value) {
    connector::call(cli, "servicenow", action, &input, printed)
}

fn ok(cli: &Cli, action: &str, input: Value, printed: &mut String) -> Value {
    let (ok, v) = call(cli, action, input, printed);
    assert!(ok, "{action}: {v}");
    v
}

fn set_secret(cli: &Cli, name: &str, value: &str) {
    connector::set_secret(cli, "servicenow", name, value, &mut String::new());
}

/// Every page of `list-incidents` from `cursor`, `limit` at a time: the numbers in order
/// and the last cursor.
fn poll(cli: &Cli, cursor: &str, limit: u32, printed: &mut String) -> (Vec<String>, String) {
    let (mut numbers, mut cursor) = (Vec::new(), cursor.to_owned());
    loop {
        let page = ok(
            cli,
            "list-incidents",
            json!({"cursor": cursor, "limit": limit}),
            printed,
        );
        let items = page["items"].as_array().unwrap();
        numbers.extend(items.iter().map(|i| i["number"].as_str().unwrap().to_owned()));
        let next = page["cursor"].as_str().unwrap().to_owned();
        if items.is_empty() {
            assert_eq!(next, cursor, "an empty page keeps the cursor");
            return (numbers, cursor);
        }
        cursor = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicenow_end_to_end() {
    let fake = FakeServicenow::start(USER, PASSWORD, TOKEN).await;
    let cli = Cli::new();
    let mut printed = String::new();
    let p = &mut printed;

    p.push_str(&cli.ok(&["plugin", "install", dist().join("servicenow").to_str().unwrap()]));
    p.push_str(&cli.ok(&["plugin", "grant", "servicenow", "--requested"]));
    p.push_str(&cli.ok(&["plugin", "config", "servicenow", &format!("username={USER}")]));
    set_secret(&cli, "password", PASSWORD);

    // No instance configured: the plugin says which setting to set.
    let (_, e) = call(&cli, "get-incident", json!({"number": "INC0010001"}), p);
    assert_eq!(e["kind"], "invalid-input", "{e}");
    assert!(e["message"].as_str().unwrap().contains("instance_url"), "{e}");
    p.push_str(&cli.ok(&[
        "plugin",
        "config",
        "servicenow",
        &format!("instance_url={}", fake.origin()),
    ]));
    p.push_str(&cli.ok(&["plugin", "grant", "servicenow", "--http", &fake.origin()]));

    // Create, with basic auth (no OAuth token set), raw values asked for.
    let created = ok(
        &cli,
        "create-incident",
        json!({"short_description": "Phishing mail reported by ana", "urgency": "1", "impact": "2",
               "fields": {"category": "security"}}),
        p,
    );
    let sys_id = created["sys_id"].as_str().unwrap().to_owned();
    assert_eq!(sys_id.len(), 32);
    assert_eq!(created["number"], "INC0010001");
    assert_eq!(
        (created["state"].as_str(), created["priority"].as_str()),
        (Some("1"), Some("2"))
    );
    assert_eq!(created["record"]["category"], "security");
    assert_eq!(fake.last_auth(), "basic");
    assert_eq!(fake.last_query()["sysparm_display_value"], "false");

    // Get it by sys_id and by number; what is not there is not-found.
    assert_eq!(
        ok(&cli, "get-incident", json!({"sys_id": sys_id}), p)["number"],
        "INC0010001"
    );
    assert_eq!(
        ok(&cli, "get-incident", json!({"number": "inc0010001"}), p)["sys_id"],
        sys_id
    );
    let (_, e) = call(&cli, "get-incident", json!({"number": "INC0099999"}), p);
    assert_eq!(e["kind"], "not-found", "{e}");
    let (_, e) = call(
        &cli,
        "get-incident",
        json!({"sys_id": "0123456789abcdef0123456789abcdef"}),
        p,
    );
    assert_eq!(e["kind"], "not-found", "{e}");
    assert!(e["message"].as_str().unwrap().contains("No Record found"), "{e}");

    // Update, and a work note.
    fake.set_clock("2026-12-07 05:01:00");
    let updated = ok(
        &cli,
        "update-incident",
        json!({"sys_id": sys_id, "fields": {"state": "2"}}),
        p,
    );
    assert_eq!(updated["state"], "2");
    assert_eq!(updated["sys_updated_on"], "2026-12-07 05:01:00");
    ok(
        &cli,
        "add-work-note",
        json!({"sys_id": sys_id, "note": "Blocked the sender at the gateway."}),
        p,
    );
    assert_eq!(fake.work_notes(&sys_id), ["Blocked the sender at the gateway."]);
    let (_, e) = call(
        &cli,
        "update-incident",
        json!({"sys_id": "../sys_user", "fields": {"state": "2"}}),
        p,
    );
    assert_eq!(e["kind"], "invalid-input", "{e}");

    // Three more in the same second: polling two at a time sees each of the four once, in
    // the order of change (sys_id breaks the tie), and then nothing.
    fake.set_clock("2026-12-07 05:02:00");
    for n in 2..=4 {
        ok(
            &cli,
            "create-incident",
            json!({"short_description": format!("Alert {n}")}),
            p,
        );
    }
    let (seen, cursor) = poll(&cli, "", 2, p);
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], "INC0010001", "the oldest change first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, ["INC0010001", "INC0010002", "INC0010003", "INC0010004"]);
    assert!(cursor.starts_with("2026-12-07 05:02:00/"), "{cursor}");
    let (again, same) = poll(&cli, &cursor, 2, p);
    assert!(again.is_empty() && same == cursor, "{again:?}");

    // A change comes back once, from the cursor on; a filter narrows it.
    fake.set_clock("2026-12-07 05:03:00");
    ok(
        &cli,
        "add-work-note",
        json!({"sys_id": sys_id, "note": "Mailbox purged."}),
        p,
    );
    let (changed, cursor) = poll(&cli, &cursor, 2, p);
    assert_eq!(changed, ["INC0010001"]);
    assert!(cursor.starts_with("2026-12-07 05:03:00/"));
    let page = ok(&cli, "list-incidents", json!({"query": "category=security"}), p);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, e) = call(&cli, "list-incidents", json!({"cursor": "yesterday"}), p);
    assert_eq!(e["kind"], "invalid-input", "{e}");

    // Rate limited: the instance's Retry-After rides on the error.
    fake.rate_limited(true);
    let (_, e) = call(&cli, "get-incident", json!({"sys_id": sys_id}), p);
    assert_eq!(e["kind"], "rate-limited", "{e}");
    assert_eq!(
        (e["retryable"].as_bool(), e["retry_after_ms"].as_u64()),
        (Some(true), Some(9000))
    );
    fake.rate_limited(false);

    // A wrong password: denied with the instance's message.
    set_secret(&cli, "password", "wrong");
    let (_, e) = call(&cli, "get-incident", json!({"sys_id": sys_id}), p);
    assert_eq!(e["kind"], "denied", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("User Not Authenticated"),
        "{e}"
    );
    // An OAuth token wins over basic auth once it is set.
    set_secret(&cli, "oauth-token", TOKEN);
    ok(&cli, "get-incident", json!({"sys_id": sys_id}), p);
    assert_eq!(fake.last_auth(), "bearer");

    // A playbook opens an incident, notes on it, and reads it back by number.
    write_playbook(
        &cli.playbooks_dir(),
        "open-ticket",
        "",
        r#"let inc = invoke("servicenow", "create-incident", #{ short_description: "Malware on host-17", urgency: "1" });
        invoke("servicenow", "add-work-note", #{ sys_id: inc.sys_id, note: "Isolated by Osprey" });
        let back = invoke("servicenow", "get-incident", #{ number: inc.number });
        #{ number: back.number, sys_id: back.sys_id }"#,
    );
    let out = cli.ok(&["playbook", "run", "open-ticket"]);
    p.push_str(&out);
    let id = run_id(&out);
    assert!(out.contains(&format!("run {id} completed")), "{out}");
    let run: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(run["run"]["output"]["number"], "INC0010005", "{run}");
    let new_id = run["run"]["output"]["sys_id"].as_str().unwrap();
    assert_eq!(fake.work_notes(new_id), ["Isolated by Osprey"]);
    assert_eq!(fake.incidents(), 5);

    for secret in [PASSWORD, TOKEN] {
        assert!(
            !printed.contains(secret),
            "a secret leaked into what Osprey printed"
        );
    }
}
