//! Outgoing mail through the real binary and a real SMTP server (aiosmtpd, `support/smtp.rs`):
//! `osprey mail test` delivers a multipart message; AUTH with the password from the secret
//! store (and a wrong one leaves the message queued with the server's answer, the password
//! never shown); a message queued while the SMTP server is down is delivered once it is up;
//! one that keeps failing is given up on after `mail.max_attempts`.

use crate::support::smtp::{SmtpSink, free_port};
use crate::support::{Cli, Server, eventually, run_id, store_of, text, write_playbook};
use osprey::store::runs::RunStatus;

/// `[mail]` to 127.0.0.1:`port` without TLS, plus `extra` lines.
pub(crate) fn configure(cli: &Cli, port: u16, extra: &str) {
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        format!("[mail]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n{extra}"),
    )
    .unwrap();
}

/// A row of `osprey mail outbox`.
#[derive(Debug)]
struct Row {
    id: i64,
    state: String,
    attempts: i64,
    line: String,
}

fn outbox(cli: &Cli) -> Vec<Row> {
    let out = cli.ok(&["mail", "outbox"]);
    out.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.contains("the outbox is empty"))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| matches!(*w, "pending" | "sent" | "failed"))
                .unwrap_or_else(|| panic!("no state in {line:?}"));
            Row {
                id: words[0].parse().unwrap(),
                state: words[at].to_owned(),
                attempts: words[at + 1].parse().unwrap(),
                line: line.to_owned(),
            }
        })
        .collect()
}

fn row(cli: &Cli, id: i64) -> Row {
    outbox(cli)
        .into_iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("message {id} is not in the outbox"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_message_arrives_with_a_text_part_and_an_escaped_html_part() {
    let sink = SmtpSink::start();
    let cli = Cli::new();
    configure(&cli, sink.port(), "from = \"SOC Bot <soc-bot@example.org>\"\n");

    let out = cli.ok(&[
        "mail",
        "test",
        "alice@example.org",
        "--subject",
        "Tom & Jerry <test>",
    ]);
    assert!(
        out.contains("delivered test message 1 to alice@example.org"),
        "{out}"
    );
    let mails = sink.wait_for_count(1, 10).await;
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.to, vec!["alice@example.org"]);
    assert_eq!(m.envelope_from, "soc-bot@example.org");
    assert_eq!(m.from, "SOC Bot <soc-bot@example.org>");
    assert_eq!(m.subject, "Tom & Jerry <test>");
    assert_eq!(m.content_type, "multipart/alternative");
    assert!(m.raw.contains("Message-ID: <osprey.outbox.1."), "{}", m.raw);
    assert!(m.raw.contains("\r\nDate: "), "{}", m.raw);
    // The text part as written; the HTML part escaped, sized for a phone.
    assert!(
        m.text
            .contains("This is a test message from Osprey to <alice@example.org>"),
        "{}",
        m.text
    );
    assert!(m.text.contains("127.0.0.1:"), "{}", m.text);
    assert!(m.html.contains("Tom &amp; Jerry &lt;test&gt;"), "{}", m.html);
    assert!(m.html.contains("to &lt;alice@example.org&gt;"), "{}", m.html);
    assert!(
        !m.html.contains("<test>") && !m.html.contains("<alice@"),
        "{}",
        m.html
    );
    assert!(m.html.contains("name=\"viewport\"") && m.html.contains("max-width:600px"));

    let rows = outbox(&cli);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].state.as_str(), rows[0].attempts),
        ("sent", 1),
        "{rows:?}"
    );

    // Mistakes say what is wrong.
    let err = cli.fails(&["mail", "test", "not-an-address"]);
    assert!(err.contains("'not-an-address' is not a mail address"), "{err}");
    std::fs::write(cli.data_dir().join("osprey.toml"), "").unwrap();
    let err = cli.fails(&["mail", "test", "alice@example.org"]);
    assert!(
        err.contains("mail is off") && err.contains("--queue-only"),
        "{err}"
    );
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[mail]\nhost = \"127.0.0.1\"\nfrom = \"Osprey at localhost\"\n",
    )
    .unwrap();
    let err = cli.fails(&["mail", "outbox"]);
    assert!(
        err.contains("mail.from") && err.contains("Osprey at localhost"),
        "{err}"
    );
    assert_eq!(sink.messages().len(), 1, "nothing else was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_auth_uses_the_server_secret_and_never_shows_it() {
    const RIGHT: &str = "correct-horse-battery-staple";
    const WRONG: &str = "wrong-horse-battery-staple";
    let sink = SmtpSink::start_with_auth("osprey-mailer", RIGHT);
    let cli = Cli::new();
    configure(
        &cli,
        sink.port(),
        "username = \"osprey-mailer\"\npassword_secret = \"smtp-password\"\n",
    );
    let mut output = String::new();
    let mut keep = |out: &std::process::Output| {
        output.push_str(&text(&out.stdout));
        output.push_str(&text(&out.stderr));
    };

    // The secret is not set yet: the error says how to set it, and the message stays queued.
    let out = cli.run(&["mail", "test", "bob@example.org"]);
    keep(&out);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("osprey secret set osprey smtp-password"), "{err}");

    // A wrong password: the server's 535 is shown, and the message stays in the outbox.
    let out = cli.run_with_stdin(
        &["secret", "set", "osprey", "smtp-password"],
        &format!("{WRONG}\n"),
    );
    keep(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli.run(&["mail", "test", "bob@example.org"]);
    keep(&out);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("not delivered") && err.contains("535"), "{err}");
    assert!(err.contains("stays in the outbox"), "{err}");
    let wrong = row(&cli, 2);
    assert_eq!(
        (wrong.state.as_str(), wrong.attempts),
        ("pending", 1),
        "{wrong:?}"
    );
    assert!(wrong.line.contains("535"), "{}", wrong.line);
    assert!(sink.messages().is_empty());

    // The right password: delivered.
    let out = cli.run_with_stdin(&["secret", "set", "osprey", "smtp-password"], RIGHT);
    keep(&out);
    assert!(out.status.success());
    let out = cli.run(&["mail", "test", "bob@example.org"]);
    keep(&out);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("delivered test message 3"));
    assert!(!sink.messages().is_empty());

    // The server's sender retries the two earlier ones when they are due (5 s after).
    let server = Server::start(&cli);
    sink.wait_for_count(3, 30).await;
    eventually(10, "all three sent", async || {
        outbox(&cli).iter().all(|r| r.state == "sent").then_some(())
    })
    .await;
    assert_eq!(row(&cli, 2).attempts, 2);
    let out = cli.run(&["mail", "outbox"]);
    keep(&out);

    let logs = server.logs.lock().unwrap().join("\n");
    assert!(logs.contains("mail sent"), "{logs}");
    output.push_str(&logs);
    for secret in [RIGHT, WRONG] {
        assert!(!output.contains(secret), "the password was shown:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_while_the_smtp_server_is_down_is_delivered_when_it_is_up() {
    let port = free_port();
    let cli = Cli::new();
    configure(&cli, port, "");
    let server = Server::start(&cli);
    let out = cli.ok(&["mail", "test", "carol@example.org", "--queue-only"]);
    assert!(out.contains("queued test message 1"), "{out}");

    // The server's sender tries, fails (nothing listens), and keeps it for later.
    let failed = eventually(15, "a failed attempt", async || {
        let r = row(&cli, 1);
        (r.attempts >= 1).then_some(r)
    })
    .await;
    assert_eq!(failed.state, "pending", "{failed:?}");
    assert!(
        failed.line.contains(&format!("SMTP server 127.0.0.1:{port}")),
        "{}",
        failed.line
    );

    let sink = SmtpSink::start_on(port);
    let mails = sink.wait_for_count(1, 30).await;
    assert_eq!(mails[0].to, vec!["carol@example.org"]);
    eventually(10, "the message marked sent", async || {
        (row(&cli, 1).state == "sent").then_some(())
    })
    .await;
    let logs = server.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("sending mail failed; it will be tried again"),
        "{logs}"
    );
    assert!(logs.contains("mail sent"), "{logs}");
    assert_eq!(sink.messages().len(), 1, "sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_that_keeps_failing_is_given_up_on_after_max_attempts() {
    let port = free_port();
    let cli = Cli::new();
    configure(&cli, port, "max_attempts = 2\n");

    // The first attempt, by `mail test`: refused, kept for a retry.
    let err = cli.fails(&["mail", "test", "dave@example.org"]);
    assert!(
        err.contains(&format!("not delivered: SMTP server 127.0.0.1:{port}")),
        "{err}"
    );
    let r = row(&cli, 1);
    assert_eq!((r.state.as_str(), r.attempts), ("pending", 1), "{r:?}");
    assert!(
        r.line.contains(&format!("SMTP server 127.0.0.1:{port}")),
        "{}",
        r.line
    );

    // The second and last, by the server's sender 5 s later: given up on, with an error logged.
    let server = Server::start(&cli);
    let r = eventually(20, "the message marked failed", async || {
        let r = row(&cli, 1);
        (r.state == "failed").then_some(r)
    })
    .await;
    assert_eq!(r.attempts, 2, "{r:?}");
    assert!(r.line.contains("SMTP server 127.0.0.1"), "{}", r.line);
    let logs = server.logs.lock().unwrap().clone();
    let given_up = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "mail not sent: given up on")
        .unwrap_or_else(|| panic!("no error logged:\n{}", logs.join("\n")));
    assert_eq!(given_up["level"], "ERROR");
    assert_eq!(given_up["fields"]["outbox_id"], 1);
    assert_eq!(given_up["fields"]["attempts"], 2);
    assert_eq!(given_up["fields"]["to"], "dave@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mail_off_mail_stays_queued_and_the_server_says_so_once() {
    let cli = Cli::new();
    let out = cli.ok(&["mail", "test", "erin@example.org", "--queue-only"]);
    assert!(
        out.contains("queued test message 1") && out.contains("mail is off"),
        "{out}"
    );
    // The witness that the sender went round again after warning (it looks every second): a
    // run started after the warning that waits two seconds on the server's own clock.
    write_playbook(&cli.playbooks_dir(), "later", "", r#"sleep(2); "later""#);
    let mut server = Server::start(&cli);
    eventually(10, "the warning", async || {
        let logs = server.logs.lock().unwrap();
        logs.iter()
            .any(|l| l.contains("mail is queued but mail is off"))
            .then_some(())
    })
    .await;
    let id = run_id(&cli.ok(&["playbook", "run", "later", "--detach"]));
    let store = store_of(&cli).await;
    eventually(20, "the run waiting two seconds to complete", async || {
        (store.run(&id).await.unwrap().unwrap().status == RunStatus::Completed).then_some(())
    })
    .await;
    // Stopped, the server has logged all it will: count the warnings in its whole log.
    assert!(server.terminate().success());
    eventually(10, "the server's last log line", async || {
        let logs = server.logs.lock().unwrap();
        logs.iter().any(|l| l.contains("osprey stopped")).then_some(())
    })
    .await;
    let warnings = server
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("mail is queued but mail is off"))
        .count();
    assert_eq!(warnings, 1);
    let r = row(&cli, 1);
    assert_eq!((r.state.as_str(), r.attempts), ("pending", 0), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_when_configured() {
    // The sink offers no STARTTLS: with `tls = "starttls"` nothing is sent in the clear.
    let sink = SmtpSink::start();
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        format!(
            "[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\ntimeout = \"5s\"\n",
            sink.port()
        ),
    )
    .unwrap();
    let err = cli.fails(&["mail", "test", "frank@example.org"]);
    assert!(err.contains("not delivered") && err.contains("STARTTLS"), "{err}");
    assert!(sink.messages().is_empty());
    let r = row(&cli, 1);
    assert_eq!((r.state.as_str(), r.attempts), ("pending", 1), "{r:?}");
}
