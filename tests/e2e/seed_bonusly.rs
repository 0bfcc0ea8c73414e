//! Seed 004's Bonusly month-end, end to end with the real binary against a fake Bonusly on
//! loopback: the bundled `bonusly-month-end` playbook, run directly (as its cron would on the
//! 30th), gives 10 points at a time to the people on its list in turn while the giving
//! balance is at least 10. The fake's books show who got what, in order: the first run stops
//! when the balance is below 10, the next month's run carries the turn on from where the
//! first stopped, a run restarted over its gives gives nothing twice, and a run with too
//! little left gives nothing. Each give is on the run's timeline, in its output, and a point
//! of the playbook's gifts chart.

use crate::support::fake_bonusly::FakeBonusly;
use crate::support::{Cli, bundled_playbook, connector, run_id, store_of};
use serde_json::{Value, json};

const TOKEN: &str = "bly_5d1e0c7a2b";
const PLAYBOOK: &str = "bonusly-month-end";

/// Run the playbook now for `people`, as its schedule would, to its end; its id and
/// `run show --json`.
fn run_month_end(cli: &Cli, people: &[&str]) -> (String, Value) {
    let input = json!({ "people": people }).to_string();
    let out = cli.ok(&["playbook", "run", PLAYBOOK, "--input", &input]);
    let id = run_id(&out);
    assert!(out.contains(&format!("run {id} completed")), "{out}");
    let shown: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    (id, shown)
}

/// The messages of the run's log steps, in order.
fn logged(shown: &Value) -> Vec<String> {
    shown["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "log")
        .map(|s| s["request"]["message"].as_str().unwrap().to_owned())
        .collect()
}

fn given(fake: &FakeBonusly, from: usize) -> Vec<(String, i64)> {
    fake.given()[from..].to_vec()
}

fn tens(names: &[&str]) -> Vec<(String, i64)> {
    names.iter().map(|n| ((*n).to_owned(), 10)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn month_end_gives_in_turn_until_the_balance_is_spent_and_carries_the_turn_over() {
    let fake = FakeBonusly::start(TOKEN).await;
    fake.add_user("5f1a00000000000000000d01", "dee", "Dee", "Ramos");
    let cli = Cli::new();
    let mut printed = String::new();
    printed.push_str(&cli.ok(&[
        "plugin",
        "install",
        crate::support::dist().join("bonusly").to_str().unwrap(),
    ]));
    printed.push_str(&cli.ok(&["plugin", "grant", "bonusly", "--requested"]));
    printed.push_str(&cli.ok(&["plugin", "grant", "bonusly", "--http", &fake.base_url()]));
    printed.push_str(&cli.ok(&[
        "plugin",
        "config",
        "bonusly",
        &format!("base_url={}", fake.base_url()),
    ]));
    connector::set_secret(&cli, "bonusly", "access-token", TOKEN, &mut printed);
    bundled_playbook(&cli, PLAYBOOK);
    let listed = cli.ok(&["playbook", "list"]);
    assert!(listed.contains("cron \"*/30 9-14 30 * *\""), "{listed}");
    let people = ["ana", "cy", "dee"];

    // November: 25 points left. ana and cy get 10 each; 5 left is less than 10: it stops.
    fake.set_giving_balance("bo", 25);
    let (first, run) = run_month_end(&cli, &people);
    assert_eq!(given(&fake, 0), tens(&["ana", "cy"]));
    assert_eq!(fake.giving_balance("bo"), 5);
    let out = &run["run"]["output"];
    assert_eq!(
        (out["balance"].clone(), out["given"].clone(), out["left"].clone()),
        (json!(25), json!(2), json!(5)),
        "{out}"
    );
    assert_eq!(out["gifts"][1]["to"], "cy", "{out}");
    assert_eq!(out["refused"], "", "{out}");
    let log = logged(&run);
    assert!(log[0].starts_with("gave +10 to @ana (bonus 6a7b"), "{log:?}");
    assert!(
        log[1].starts_with("gave +10 to @cy") && log[1].ends_with("5 points left to give"),
        "{log:?}"
    );

    // December: 35 points. The turn goes on after cy: dee, then round to ana and cy.
    fake.set_giving_balance("bo", 35);
    let (second, run) = run_month_end(&cli, &people);
    assert_eq!(given(&fake, 2), tens(&["dee", "ana", "cy"]));
    assert_eq!(fake.giving_balance("bo"), 5);
    assert_eq!(run["run"]["output"]["given"], 3);

    // The run taken again from its first give (a restart after a crash): each give has the
    // same idempotency key, so Bonusly gives nothing more.
    let gives_step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["request"]["action"] == "give-bonus")
        .map(|s| s["seq"].as_i64().unwrap())
        .unwrap();
    printed.push_str(&cli.ok(&[
        "run",
        "restart",
        &second,
        "--from-step",
        &gives_step.to_string(),
        "--follow",
    ]));
    let again: Value = serde_json::from_str(&cli.ok(&["run", "show", &second, "--json"])).unwrap();
    assert_eq!(again["run"]["status"], "completed", "{again}");
    assert_eq!(again["run"]["output"]["given"], 3);
    assert_eq!(fake.given().len(), 5, "given once: {:?}", fake.given());
    assert_eq!(fake.giving_balance("bo"), 5);

    // 5 points left: nothing is given, and the turn stays after cy.
    let (_, run) = run_month_end(&cli, &people);
    assert_eq!(run["run"]["output"]["given"], 0);
    assert_eq!(
        logged(&run),
        ["5 points left to give: less than 10, nothing given"]
    );
    assert_eq!(fake.given().len(), 5);
    let store = store_of(&cli).await;
    assert_eq!(
        store.playbook_state(&first, "last-receiver").await.unwrap(),
        Some(json!("cy"))
    );

    // The gifts chart has the five points, 10 each.
    let now = osprey::store::now_ms();
    let top = store
        .point_top(
            PLAYBOOK,
            "gifts",
            now - 86_400_000,
            now + 60_000,
            "to",
            Some("points"),
            10,
        )
        .await
        .unwrap();
    let mut top: Vec<(String, f64)> = top;
    top.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        top,
        [
            ("ana".to_owned(), 20.0),
            ("cy".to_owned(), 20.0),
            ("dee".to_owned(), 10.0)
        ]
    );
    assert!(
        !printed.contains(TOKEN),
        "the token leaked into what Osprey printed"
    );
}
