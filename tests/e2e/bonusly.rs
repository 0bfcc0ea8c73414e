//! The Bonusly connector, end to end through the real binary: install, grant, secret,
//! config, `osprey plugin call` against a fake Bonusly on loopback, and a playbook whose
//! give, taken again with the same idempotency key (a restart from its step), gives once.

use crate::support::fake_bonusly::FakeBonusly;
use crate::support::{Cli, connector, dist, run_id, text, write_playbook};
use serde_json::{Value, json};

const TOKEN: &str = "bly_9f2c7e41d0a8b3";

/// `osprey plugin call bonusly ACTION --input INPUT --json`: success, and the `ok` or `error`.
fn call(cli: &Cli, action: &str, input: Value, printed: &mut String) -> (bool, Value) {
    connector::call(cli, "bonusly", action, &input, printed)
}

fn set_token(cli: &Cli, token: &str) {
    connector::set_secret(cli, "bonusly", "access-token", token, &mut String::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bonusly_end_to_end() {
    let fake = FakeBonusly::start(TOKEN).await;
    let cli = Cli::new();
    let mut printed = String::new();

    printed.push_str(&cli.ok(&["plugin", "install", dist().join("bonusly").to_str().unwrap()]));
    printed.push_str(&cli.ok(&["plugin", "grant", "bonusly", "--requested"]));
    printed.push_str(&cli.ok(&[
        "plugin",
        "config",
        "bonusly",
        &format!("base_url={}", fake.base_url()),
    ]));
    set_token(&cli, TOKEN);

    // The fake's loopback address is not granted yet: nothing reaches it.
    let (ok, e) = call(&cli, "giving-balance", json!({}), &mut printed);
    assert!(!ok);
    assert_eq!(e["kind"], "denied", "{e}");
    assert_eq!(fake.gives(), 0);
    printed.push_str(&cli.ok(&["plugin", "grant", "bonusly", "--http", &fake.base_url()]));

    // The balance, with who the token belongs to.
    let (ok, out) = call(&cli, "giving-balance", json!({}), &mut printed);
    assert!(ok, "{out}");
    assert_eq!(out["giving_balance"], 40);
    assert_eq!(out["giving_balance_with_currency"], "40 points");
    assert_eq!(out["user"]["username"], "bo");
    assert_eq!(out["user"]["id"], "5f1a00000000000000000b01");

    // Users, a page at a time, or by email.
    let (ok, out) = call(&cli, "list-users", json!({"limit": 2}), &mut printed);
    assert!(ok, "{out}");
    assert_eq!(out["count"], 2);
    let (_, next) = call(&cli, "list-users", json!({"limit": 2, "skip": 2}), &mut printed);
    assert_eq!(next["users"][0]["username"], "cy");
    let (_, ana) = call(
        &cli,
        "list-users",
        json!({"email": "ana@example.com"}),
        &mut printed,
    );
    assert_eq!(
        ana["users"],
        json!([{"id": "5f1a00000000000000000a01", "username": "ana",
        "email": "ana@example.com", "display_name": "Ana Lima", "first_name": "Ana", "last_name": "Lima"}])
    );

    // A give in Bonusly's own form, and one by email.
    let (ok, bonus) = call(
        &cli,
        "give-bonus",
        json!({"reason": "+10 @ana for catching the phish #security"}),
        &mut printed,
    );
    assert!(ok, "{bonus}");
    assert_eq!(bonus["amount"], 10);
    assert_eq!(bonus["hashtag"], "#security");
    assert_eq!(bonus["receivers"][0]["username"], "ana");
    assert_eq!(bonus["giver"]["username"], "bo");
    assert_eq!(bonus["replayed"], false);
    let (ok, bonus) = call(
        &cli,
        "give-bonus",
        json!({"reason": "for the runbook", "receiver_email": "cy@example.com", "amount": 5, "hashtag": "teamwork"}),
        &mut printed,
    );
    assert!(ok, "{bonus}");
    assert_eq!(bonus["receivers"][0]["username"], "cy");
    assert_eq!((fake.gives(), fake.giving_balance("bo")), (2, 25));

    // Bonusly's refusals are invalid input with its message; nothing is given.
    for (input, says) in [
        (
            json!({"reason": "+100 @cy for everything #teamwork"}),
            "You don't have enough to give",
        ),
        (
            json!({"reason": "+1 @nobody for x #teamwork"}),
            "Couldn't find @nobody",
        ),
        (json!({"reason": "+1 @cy for x"}), "#hashtag"),
    ] {
        let (ok, e) = call(&cli, "give-bonus", input, &mut printed);
        assert!(!ok);
        assert_eq!(e["kind"], "invalid-input", "{e}");
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
        assert_eq!(e["retryable"], false);
    }
    // What the plugin can tell is wrong never leaves it.
    let (_, e) = call(&cli, "give-bonus", json!({"reason": "thanks!"}), &mut printed);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("names no amount and receiver"),
        "{e}"
    );
    assert_eq!(fake.gives(), 2);

    // Rate limited: Bonusly's Retry-After rides on the error.
    fake.rate_limited(true);
    let (ok, e) = call(&cli, "giving-balance", json!({}), &mut printed);
    assert!(!ok);
    assert_eq!(e["kind"], "rate-limited", "{e}");
    assert_eq!(e["retryable"], true);
    assert_eq!(e["retry_after_ms"], 17_000);
    let (_, e) = call(
        &cli,
        "give-bonus",
        json!({"reason": "+1 @cy for x #teamwork"}),
        &mut printed,
    );
    assert_eq!(e["kind"], "rate-limited", "{e}");
    fake.rate_limited(false);
    // The refused give left no pending mark: the next attempt goes through.
    assert_eq!(fake.gives(), 2);

    // A playbook gives once; its step taken again (same run, same idempotency key) returns
    // the recorded bonus instead of giving twice.
    write_playbook(
        &cli.playbooks_dir(),
        "thank-responder",
        "",
        r#"let bonus = invoke("bonusly", "give-bonus", #{ reason: "+5 @ana for closing INC0010001 #security" });
        #{ id: bonus.id, replayed: bonus.replayed }"#,
    );
    let out = cli.ok(&["playbook", "run", "thank-responder"]);
    printed.push_str(&out);
    let id = run_id(&out);
    assert!(out.contains(&format!("run {id} completed")), "{out}");
    let first: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(first["run"]["output"]["replayed"], false, "{first}");
    assert_eq!((fake.gives(), fake.giving_balance("bo")), (3, 20));

    let out = cli.ok(&["run", "restart", &id, "--from-step", "1", "--follow"]);
    printed.push_str(&out);
    let again: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(again["run"]["status"], "completed", "{again}");
    assert_eq!(again["run"]["output"]["replayed"], true, "{again}");
    assert_eq!(again["run"]["output"]["id"], first["run"]["output"]["id"]);
    assert_eq!((fake.gives(), fake.giving_balance("bo")), (3, 20), "given once");

    // A give cut off after Bonusly made it (its answer never arrived before the call's
    // 1 s deadline): the run's retry of the step (same idempotency key) is refused rather
    // than giving a second time, and so is a restart from that step.
    printed.push_str(&cli.ok(&["plugin", "grant", "bonusly", "--timeout", "1s"]));
    fake.hold_gives(true);
    write_playbook(
        &cli.playbooks_dir(),
        "thank-again",
        "",
        r#"invoke("bonusly", "give-bonus", #{ reason: "+1 @cy for the write-up #teamwork" })"#,
    );
    let out = cli.run(&["playbook", "run", "thank-again"]);
    let stdout = text(&out.stdout);
    printed.push_str(&stdout);
    let cut = run_id(&stdout);
    assert!(stdout.contains(&format!("run {cut} failed")), "{stdout}");
    assert!(
        stdout.contains(&format!("idempotency key '{cut}:1')")),
        "{stdout}"
    );
    assert!(stdout.contains("it is not sent again"), "{stdout}");
    assert_eq!(fake.gives(), 4, "Bonusly made the give once");
    fake.hold_gives(false);
    fake.release_gives();
    let out = cli.run(&["run", "restart", &cut, "--from-step", "1", "--follow"]);
    printed.push_str(&text(&out.stdout));
    let run: Value = serde_json::from_str(&cli.ok(&["run", "show", &cut, "--json"])).unwrap();
    assert_eq!(run["run"]["status"], "failed", "{run}");
    assert_eq!(fake.gives(), 4, "given once");

    // A wrong token: denied, with the fix, and the token never printed.
    set_token(&cli, "bly_wrong");
    let (ok, e) = call(&cli, "giving-balance", json!({}), &mut printed);
    assert!(!ok);
    assert_eq!(e["kind"], "denied", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 401: Invalid access token"),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("osprey secret set bonusly access-token")
    );
    assert!(
        !printed.contains(TOKEN),
        "the token leaked into what Osprey printed"
    );
}
