//! Seed 004's major incident report, end to end with the real binary and a real SMTP server
//! on loopback: the bundled `major-incident-report` playbook (run directly, as its cron would
//! every 30 minutes) searches the open critical incidents; with none (only a closed critical
//! one and an open high one) it sends nothing; with one open, each address on the
//! distribution list gets a mail naming it, with an HTML report and a CSV attached. The test
//! opens the attachments as a reader would: the CSV parses and lists the incident, the HTML
//! shows its title escaped. An attachment the server refuses (a path for a name, an unknown
//! type) is a catchable error that says why.

use crate::mail::configure;
use crate::support::smtp::{ReceivedMail, SmtpSink};
use crate::support::{Cli, Server, bundled_playbook, eventually, run_id, store_of, write_playbook};
use osprey::store::runs::RunStatus;
use serde_json::{Value, json};

const PLAYBOOK: &str = "major-incident-report";
const LIST: [&str; 2] = ["cio@corp.example", "soc-managers@corp.example"];
/// A title an attacker could have written into an alert.
const TITLE: &str = r#"Ransomware on <fs-01> & "finance", =cmd"#;

/// Run the playbook now, as its schedule would, and wait for the run's output.
async fn run_report(cli: &Cli, store: &osprey::store::Store) -> Value {
    let input = json!({ "recipients": LIST }).to_string();
    run_playbook(cli, store, PLAYBOOK, &input).await
}

/// Start `playbook` with `input` on the server and wait for its output.
pub(crate) async fn run_playbook(
    cli: &Cli,
    store: &osprey::store::Store,
    playbook: &str,
    input: &str,
) -> Value {
    let id = run_id(&cli.ok(&["playbook", "run", playbook, "--input", input, "--detach"]));
    eventually(30, "the report's run to complete", async || {
        let run = store.run(&id).await.unwrap().unwrap();
        assert!(
            !matches!(
                run.status,
                RunStatus::Failed | RunStatus::Cancelled | RunStatus::Dead
            ),
            "the run failed: {:?}",
            run.error
        );
        (run.status == RunStatus::Completed).then(|| run.output.unwrap())
    })
    .await
}

fn create(cli: &Cli, title: &str, severity: &str) -> String {
    cli.ok(&[
        "incident",
        "create",
        "--type",
        "ransomware",
        "--title",
        title,
        "--severity",
        severity,
    ])
    .trim()
    .to_owned()
}

fn attachment<'a>(mail: &'a ReceivedMail, suffix: &str) -> &'a crate::support::smtp::ReceivedAttachment {
    mail.attachments
        .iter()
        .find(|a| a.name.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} attachment in:\n{}", mail.raw))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_distribution_list_gets_a_report_only_while_a_critical_incident_is_open() {
    let sink = SmtpSink::start();
    let cli = Cli::new();
    configure(&cli, sink.port(), "");
    bundled_playbook(&cli, PLAYBOOK);
    write_playbook(
        &cli.playbooks_dir(),
        "bad-attachment",
        "",
        r#"
        let refused = [];
        for name in ["../evil.csv", "a.exe"] {
            try {
                send_email(#{ email: "cio@corp.example", subject: "s", text: "t",
                    attachments: [#{ name: name, text: "x" }] });
            } catch (e) { refused.push(e.message); }
        }
        refused
        "#,
    );
    let _server = Server::start(&cli);
    let store = store_of(&cli).await;

    // An attachment the server refuses is a catchable error that says why.
    let refused = run_playbook(&cli, &store, "bad-attachment", "{}").await;
    let refused: Vec<&str> = refused
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with("send_email: attachment name '../evil.csv' is not a safe file name"),
        "{refused:?}"
    );
    assert!(
        refused[1].contains("attachment 'a.exe': give a content_type"),
        "{refused:?}"
    );

    // No critical incident open: a closed critical one and an open high one. No mail.
    let old = create(&cli, "Contained last week", "critical");
    cli.ok(&["incident", "close", &old, "--reason", "contained"]);
    create(&cli, "Phishing wave", "high");
    let out = run_report(&cli, &store).await;
    assert_eq!(out, json!({ "sent": false, "open": 0 }));
    // The decision is made in the run's transaction: nothing was queued for the sender.
    assert!(store.outbox(10).await.unwrap().is_empty(), "no mail was queued");

    // A critical incident opens: every address on the list gets the report.
    let id = create(&cli, TITLE, "critical");
    let out = run_report(&cli, &store).await;
    assert_eq!(out["sent"], true, "{out}");
    assert_eq!(out["incidents"], json!([id]));
    assert_eq!(out["mailed"], json!(LIST));
    let mails = sink.wait_for_count(2, 30).await;
    assert_eq!(
        mails.len(),
        2,
        "one mail per address, and none from the first run"
    );
    for (mail, to) in mails.iter().zip(LIST) {
        assert_eq!(mail.to, vec![to]);
        assert_eq!(mail.subject, "Major incident report: 1 critical incident is open");
        assert_eq!(mail.content_type, "multipart/mixed", "{}", mail.raw);
        assert!(
            mail.text.contains(&id),
            "the text names the incident: {}",
            mail.text
        );
        assert_eq!(mail.attachments.len(), 2, "{:?}", mail.attachments);

        let csv_file = attachment(mail, ".csv");
        assert!(csv_file.name.starts_with("major-incidents-"), "{}", csv_file.name);
        assert_eq!(csv_file.content_type, "text/csv");
        let mut reader = csv::Reader::from_reader(csv_file.text.as_bytes());
        let headers: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(
            headers,
            [
                "Incident",
                "Title",
                "Status",
                "Type",
                "Owner",
                "Team",
                "Opened",
                "Last update"
            ]
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(
            rows.len(),
            1,
            "only the open critical incident: {}",
            csv_file.text
        );
        assert_eq!(&rows[0][0], id);
        assert_eq!(&rows[0][1], TITLE, "the title whole, commas and quotes included");
        assert_eq!(&rows[0][2], "new");
        assert_eq!(&rows[0][3], "ransomware");

        let html = attachment(mail, ".html");
        assert_eq!(html.content_type, "text/html");
        assert!(html.text.starts_with("<!DOCTYPE html>"), "{}", html.text);
        assert!(
            html.text
                .contains("Ransomware on &lt;fs-01&gt; &amp; &quot;finance&quot;, =cmd"),
            "the title, escaped: {}",
            html.text
        );
        assert!(!html.text.contains("<fs-01>"), "{}", html.text);
        assert!(html.text.contains(&format!("<td>{id}</td>")), "{}", html.text);
        assert!(!html.text.contains("Phishing wave") && !html.text.contains("Contained last week"));
    }
}
