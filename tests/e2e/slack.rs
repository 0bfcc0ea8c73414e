//! The Slack connector, end to end through the real binary: install from plugins/dist, a
//! fake Slack Web API on loopback named by `base_url` and the grant, the bot token,
//! `osprey plugin call` and a playbook run that finds a person by e-mail, asks them with
//! buttons and updates the message.

use crate::support::fake_slack::{FakeSlack, SOC_CHANNEL, SPENGLER, SPENGLER_EMAIL};
use crate::support::{Cli, connector, dist, run_id, write_playbook};
use serde_json::{Value, json};

const TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";

struct Slack {
    cli: Cli,
    /// Everything Osprey printed, to check the token never appears in it.
    printed: String,
}

impl Slack {
    fn ok(&mut self, action: &str, input: Value) -> Value {
        connector::ok(&self.cli, "slack", action, &input, &mut self.printed)
    }

    fn fails(&mut self, action: &str, input: Value, kind: &str, needle: &str) -> Value {
        connector::fails(
            &self.cli,
            "slack",
            action,
            &input,
            kind,
            needle,
            &mut self.printed,
        )
    }

    fn set_token(&mut self, value: &str) {
        connector::set_secret(&self.cli, "slack", "bot-token", value, &mut self.printed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_messages_end_to_end() {
    let fake = FakeSlack::start(TOKEN).await;
    let mut s = Slack {
        cli: Cli::new(),
        printed: String::new(),
    };
    let out = s
        .cli
        .ok(&["plugin", "install", dist().join("slack").to_str().unwrap()]);
    assert!(out.contains("https://slack.com/api"), "{out}");
    s.cli.ok(&[
        "plugin",
        "config",
        "slack",
        &format!("base_url={}", fake.base_url()),
    ]);
    s.cli.ok(&["plugin", "grant", "slack", "--requested"]);
    s.cli.ok(&["plugin", "grant", "slack", "--http", &fake.origin()]);

    // No token yet: denied with the command that sets it, before anything is sent.
    let ask = json!({"channel": "#soc", "text": "Contain *host-7*?", "buttons": [
        {"text": "Contain", "value": "q-42:contain", "style": "danger"},
        {"text": "Ignore", "value": "q-42:ignore", "action_id": "ignore"},
    ]});
    s.fails(
        "post-message",
        ask.clone(),
        "denied",
        "osprey secret set slack bot-token",
    );
    assert_eq!(fake.requests(), 0);

    // Post with buttons: the fake recorded the blocks Slack would show.
    s.set_token(TOKEN);
    let posted = s.ok("post-message", ask);
    assert_eq!(posted["channel"], SOC_CHANNEL);
    let ts = posted["ts"].as_str().unwrap().to_owned();
    let m = &fake.messages()[0];
    assert_eq!(
        (m.channel.as_str(), m.ts.as_str(), m.text.as_str()),
        (SOC_CHANNEL, ts.as_str(), "Contain *host-7*?")
    );
    assert_eq!(
        m.blocks[0],
        json!({"type": "section", "text": {"type": "mrkdwn", "text": "Contain *host-7*?"}})
    );
    let actions = &m.blocks[1];
    assert_eq!(
        (actions["type"].as_str(), actions["block_id"].as_str()),
        (Some("actions"), Some("osprey-buttons"))
    );
    assert_eq!(
        actions["elements"],
        json!([
            {"type": "button", "text": {"type": "plain_text", "text": "Contain", "emoji": true},
             "value": "q-42:contain", "action_id": "button-1", "style": "danger"},
            {"type": "button", "text": {"type": "plain_text", "text": "Ignore", "emoji": true},
             "value": "q-42:ignore", "action_id": "ignore"}
        ])
    );

    // Update it: the buttons go, the text changes.
    let updated = s.ok(
        "update-message",
        json!({"channel": SOC_CHANNEL, "ts": ts, "text": "Contained by ops"}),
    );
    assert_eq!(updated, json!({"channel": SOC_CHANNEL, "ts": ts}));
    let m = &fake.messages()[0];
    assert!(m.edited);
    assert_eq!(
        (m.text.as_str(), m.blocks.clone()),
        ("Contained by ops", json!([]))
    );

    // A person by e-mail.
    let user = s.ok("lookup-user-by-email", json!({"email": SPENGLER_EMAIL}));
    assert_eq!(user["id"], SPENGLER);
    assert_eq!(user["real_name"], "Egon Spengler");
    assert_eq!(user["email"], SPENGLER_EMAIL);

    // A playbook finds a person, asks them with buttons in a direct message, then updates it.
    write_playbook(
        &s.cli.playbooks_dir(),
        "ask-owner",
        "[inputs.email]\ntype = \"string\"\n",
        r#"
        let u = invoke("slack", "lookup-user-by-email", #{ email: input.email });
        let m = invoke("slack", "post-message", #{ user: u.id, text: "Was that you?",
            buttons: [#{ text: "Yes", value: "q-7:yes", style: "primary" }, #{ text: "No", value: "q-7:no" }] });
        let done = invoke("slack", "update-message", #{ channel: m.channel, ts: m.ts, text: "Thanks, noted" });
        #{ user: u.id, channel: m.channel, ts: done.ts }
        "#,
    );
    let out = s.cli.ok(&[
        "playbook",
        "run",
        "ask-owner",
        "--input",
        &json!({"email": SPENGLER_EMAIL}).to_string(),
    ]);
    s.printed.push_str(&out);
    let shown: Value = serde_json::from_str(&s.cli.ok(&["run", "show", &run_id(&out), "--json"])).unwrap();
    assert_eq!(shown["run"]["status"], "completed", "{shown}");
    let output = &shown["run"]["output"];
    assert_eq!(output["user"], SPENGLER);
    assert_eq!(
        output["channel"], "D0012A3CDE",
        "the direct message conversations.open gave"
    );
    let dm = fake
        .messages()
        .into_iter()
        .find(|m| m.channel == "D0012A3CDE")
        .expect("a DM was posted");
    assert_eq!(output["ts"], dm.ts.as_str());
    assert_eq!((dm.text.as_str(), dm.edited), ("Thanks, noted", true));

    // Not found: an unknown channel, an unknown message, an unknown address.
    s.fails(
        "post-message",
        json!({"channel": "C0NOPE0000", "text": "hi"}),
        "not-found",
        "channel_not_found",
    );
    s.fails(
        "update-message",
        json!({"channel": SOC_CHANNEL, "ts": "1.000009", "text": "x"}),
        "not-found",
        "message_not_found",
    );
    s.fails(
        "lookup-user-by-email",
        json!({"email": "nobody@ghostbusters.example"}),
        "not-found",
        "users_not_found",
    );

    // Blocks Slack refuses: invalid-input, with Slack's pointer to the block.
    let e = s.fails(
        "post-message",
        json!({"channel": SOC_CHANNEL, "text": "x", "blocks": [{"type": "actions", "elements": [{"type": "image"}]}]}),
        "invalid-input",
        "invalid_blocks",
    );
    assert!(
        e["message"].as_str().unwrap().contains("json-pointer:/blocks/0"),
        "{e}"
    );
    // Blocks Slack would refuse are refused before they are sent.
    let before = fake.requests();
    s.fails(
        "post-message",
        json!({"channel": SOC_CHANNEL, "text": "x", "buttons": [{"text": "", "value": "v"}]}),
        "invalid-input",
        "button 1",
    );
    s.fails(
        "post-message",
        json!({"text": "to nobody"}),
        "invalid-input",
        "either channel or user",
    );
    assert_eq!(fake.requests(), before);

    // Rate limited: HTTP 429 with Retry-After, passed on as the wait.
    fake.rate_limit(Some(30));
    let e = s.fails(
        "post-message",
        json!({"channel": SOC_CHANNEL, "text": "hi"}),
        "rate-limited",
        "HTTP 429: ratelimited",
    );
    assert_eq!(
        (e["retryable"].as_bool(), e["retry_after_ms"].as_u64()),
        (Some(true), Some(30_000))
    );
    fake.rate_limit(None);

    // An outage: unavailable, retryable, with Slack's wait.
    fake.outage(Some(4));
    let e = s.fails(
        "update-message",
        json!({"channel": SOC_CHANNEL, "ts": ts, "text": "x"}),
        "unavailable",
        "HTTP 503",
    );
    assert_eq!(
        (e["retryable"].as_bool(), e["retry_after_ms"].as_u64()),
        (Some(true), Some(4_000))
    );
    fake.outage(None);

    // A revoked or wrong token: invalid_auth, denied.
    s.set_token("xoxb-wrong");
    let e = s.fails(
        "post-message",
        json!({"channel": SOC_CHANNEL, "text": "hi"}),
        "denied",
        "invalid_auth",
    );
    assert_eq!(e["retryable"], false);

    assert!(!s.printed.contains(TOKEN), "the bot token leaked");
}
