//! Questions answered in Slack, end to end through the real server: a playbook asks with
//! `slack: "#soc"`; the server posts it through the slack plugin to a fake Slack (one button
//! per option, each carrying a signed token); the test sends what Slack sends on a click (a
//! form-encoded `block_actions` payload signed with the app's signing secret) to
//! `/hooks/slack/interactivity`. The genuine click answers the question once (the run completes
//! with it, the audit names `slack:MEMBER` and the Osprey user with that e-mail address, the
//! message is updated to say who answered, without buttons); a forged click and a stale one are
//! refused 401 by the plugin; a replayed click and another member's click on the answered
//! question change nothing, and each clicker is told why, in a message only they see. A
//! question to a channel Slack does not know stays open, and the failure is audited.

use crate::humans::{run_json, start, user};
use crate::support::fake_slack::{Click, FakeSlack, SOC_CHANNEL, SPENGLER, SPENGLER_EMAIL, VENKMAN};
use crate::support::{Cli, Server, dist, eventually, http_client, store_of, write_playbook};
use serde_json::Value;

const TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn send(server: &Server, click: &Click) -> (u16, String) {
    let r = http_client()
        .post(format!("http://{}/hooks/slack/interactivity", server.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-slack-request-timestamp", &click.timestamp)
        .header("x-slack-signature", &click.signature)
        .body(click.body.clone())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn audit(cli: &Cli, action: &str) -> Vec<Value> {
    cli.ok(&["audit", "export", "--action", action])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn secret(cli: &Cli, name: &str, value: &str) {
    let out = cli.run_with_stdin(&["secret", "set", "slack", name], value);
    assert!(out.status.success(), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_in_slack_is_answered_once_by_a_signed_click() {
    let fake = FakeSlack::start(TOKEN).await;
    let cli = Cli::new();
    // The operator installs the plugin with what it asks for (webhooks among it), points it
    // at the fake, and stores the bot token and the signing secret.
    let said = cli.ok(&[
        "plugin",
        "install",
        dist().join("slack").to_str().unwrap(),
        "--grant-requested",
    ]);
    assert!(said.contains("webhooks"), "{said}");
    cli.ok(&[
        "plugin",
        "config",
        "slack",
        &format!("base_url={}", fake.base_url()),
    ]);
    cli.ok(&["plugin", "grant", "slack", "--http", &fake.origin()]);
    secret(&cli, "bot-token", TOKEN);
    secret(&cli, "signing-secret", SIGNING_SECRET);
    // Egon is an Osprey user with the address his Slack profile shows.
    user(&cli, "egon", SPENGLER_EMAIL, "soc");
    let playbooks = cli.playbooks_dir();
    write_playbook(
        &playbooks,
        "contain",
        "",
        r##"
        let a = ask(#{ slack: "#soc", title: "Contain host-7?", text: "It beacons to a known C2.",
                       options: ["contain", "ignore"] });
        #{ answer: a.answer, by: a.by, via: a.via }
        "##,
    );
    write_playbook(
        &playbooks,
        "nowhere",
        "",
        r##"approve(#{ slack: "#nowhere", title: "Anyone there?" })"##,
    );
    let server = Server::start(&cli);
    let run = start(&cli, "contain");

    // The question is posted in #soc with a button per option, each with its own token.
    let posted = eventually(30, "the question posted in #soc", async || {
        fake.messages()
            .into_iter()
            .find(|m| m.text.contains("Contain host-7?"))
    })
    .await;
    assert_eq!(posted.channel, SOC_CHANNEL);
    assert!(
        posted.text.contains("It beacons to a known C2."),
        "{}",
        posted.text
    );
    let buttons = posted.blocks[1]["elements"].as_array().unwrap().clone();
    let ids: Vec<&str> = buttons.iter().map(|b| b["action_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["contain", "ignore"]);
    let values: Vec<&str> = buttons.iter().map(|b| b["value"].as_str().unwrap()).collect();
    assert!(
        values.iter().all(|v| v.contains('.')) && values[0] != values[1],
        "{values:?}"
    );
    let store = store_of(&cli).await;
    let question = eventually(30, "the question's post recorded", async || {
        let q = store
            .questions(None, None, 10)
            .await
            .unwrap()
            .into_iter()
            .find(|q| q.title == "Contain host-7?")?;
        let rows = store.slack_outbox_of(&q.id).await.unwrap();
        rows.first().filter(|r| r.sent_at.is_some()).map(|r| {
            assert_eq!(
                (r.channel.as_deref(), r.ts.as_deref()),
                (Some(SOC_CHANNEL), Some(posted.ts.as_str()))
            );
            q.id.clone()
        })
    })
    .await;
    let status = async || store.question(&question).await.unwrap().unwrap().status.as_str();

    // Forged (another secret) and stale (ten minutes old, correctly signed): 401, nothing changes.
    let now = now_secs();
    let forged = fake.click("not-the-signing-secret", SPENGLER, &posted.ts, "ignore", now);
    let (code, body) = send(&server, &forged).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");
    let stale = fake.click(SIGNING_SECRET, SPENGLER, &posted.ts, "ignore", now - 600);
    let (code, body) = send(&server, &stale).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("more than 5 minutes"), "{body}");
    assert_eq!(status().await, "open");
    assert_eq!(run_json(&cli, &run)["run"]["status"], "waiting");

    // The genuine click (and Venkman's, on the buttons he still sees, sent after it): the run
    // completes with the first.
    let click = fake.click(SIGNING_SECRET, SPENGLER, &posted.ts, "contain", now);
    let late = fake.click(SIGNING_SECRET, VENKMAN, &posted.ts, "ignore", now);
    let (code, body) = send(&server, &click).await;
    assert_eq!(code, 200, "{body}");
    let done = eventually(30, "the run completed", async || {
        let r = run_json(&cli, &run);
        (r["run"]["status"] == "completed").then_some(r)
    })
    .await;
    let output = &done["run"]["output"];
    assert_eq!(output["answer"], "contain", "{done}");
    assert_eq!(output["by"], format!("slack:{SPENGLER}"));
    assert_eq!(output["via"], "slack");
    let answered = audit(&cli, "question.answer");
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["actor"], format!("slack:{SPENGLER}"));
    assert_eq!(answered[0]["details"]["user"], "egon", "{:?}", answered[0]);
    assert_eq!(answered[0]["details"]["email"], SPENGLER_EMAIL);
    // The message now says who answered, and has no buttons.
    let updated = eventually(30, "the message updated", async || {
        fake.messages()
            .into_iter()
            .find(|m| m.ts == posted.ts && m.edited)
    })
    .await;
    assert!(
        updated
            .text
            .contains("*contain*, answered by <@W012A3CDE> (Osprey user egon)"),
        "{}",
        updated.text
    );
    assert_eq!(updated.blocks, serde_json::json!([]));

    // The same request again (within its five minutes), and Venkman clicking "ignore" after:
    // nothing changes, and each is told why, only to them.
    let (code, _) = send(&server, &click).await;
    assert_eq!(code, 200);
    let (code, _) = send(&server, &late).await;
    assert_eq!(code, 200);
    let told = eventually(30, "both clickers told", async || {
        let e = fake.ephemerals();
        (e.len() == 2).then_some(e)
    })
    .await;
    for (e, who) in told.iter().zip([SPENGLER, VENKMAN]) {
        assert_eq!((e.channel.as_str(), e.user.as_str()), (SOC_CHANNEL, who));
        assert!(
            e.text
                .contains("Your click changed nothing: this question was already answered, by <@W012A3CDE>"),
            "{}",
            e.text
        );
    }
    assert_eq!(audit(&cli, "question.answer").len(), 1);
    let q = store.question(&question).await.unwrap().unwrap();
    assert_eq!(q.answer.unwrap()["value"], "contain");
    let metrics = server.metrics().await;
    for line in [
        r#"osprey_webhook_answers_total{plugin="slack",outcome="taken"} 1"#,
        r#"osprey_webhook_answers_total{plugin="slack",outcome="refused"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }

    // A channel Slack does not know: the question still waits (inbox, API), and the failure
    // is audited and logged.
    let lost = start(&cli, "nowhere");
    let failed = eventually(30, "the failed post audited", async || {
        audit(&cli, "question.slack_failed").into_iter().next()
    })
    .await;
    assert!(
        failed["details"]["error"]
            .as_str()
            .unwrap()
            .contains("channel_not_found"),
        "{failed}"
    );
    assert_eq!(run_json(&cli, &lost)["run"]["status"], "waiting");
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("slack message not sent: given up on"), "{logs}");
}
