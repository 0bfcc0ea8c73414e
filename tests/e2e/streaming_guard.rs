//! Seed 000, "How SOAR saved my marriage", end to end with the real binary: PassiveDNS
//! lookups of a streaming domain arrive; pre-processing folds repeats from one device into
//! its open incident; the bundled `streaming-guard` playbook asks the UniFi controller (a
//! fake on loopback) whether the owner's phone is home, and if not, asks the owner by email
//! (a real SMTP server on loopback). The test reads each mail and follows its links like a
//! person with a browser: GET shows the confirmation page, POST answers. It asserts on the
//! controller's final state for the block, justify-then-allow, owner-home and
//! timeout-default paths.

use crate::support::fake_unifi::{FakeUnifi, Flavour};
use crate::support::smtp::{ReceivedMail, SmtpSink};
use crate::support::{Cli, Server, dist, eventually, http_client};
use serde_json::Value;

const USER: &str = "osprey-svc";
const PASS: &str = "c0rrect-h0rse-battery";
const PHONE: &str = "aa:bb:cc:00:00:01";
const OWNER_MAIL: &str = "owner@home.example";
const FAMILY_MAIL: &str = "family@home.example";
const BROWSER: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile";

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The answer links in a mail's text part: (label, url).
pub(crate) fn links(mail: &ReceivedMail) -> Vec<(String, String)> {
    mail.text
        .lines()
        .filter_map(|l| {
            let (label, url) = l.rsplit_once(": ")?;
            (url.starts_with("http://") && url.contains("/a/"))
                .then(|| (label.trim().to_owned(), url.trim().to_owned()))
        })
        .collect()
}

pub(crate) fn link(mail: &ReceivedMail, label: &str) -> String {
    links(mail)
        .into_iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no link '{label}' in:\n{}", mail.text))
        .1
}

/// The URL without its query (the form posts there).
fn action_of(url: &str) -> &str {
    url.split('?').next().unwrap()
}

struct Home {
    cli: Cli,
    server: Server,
    smtp: SmtpSink,
    unifi: FakeUnifi,
    sensor: String,
    http: reqwest::Client,
}

impl Home {
    async fn dns(&self, device: &str, query: &str) {
        let line = format!("1760000000.5||{device}||10.0.0.1||IN||{query}.||A||52.2.3.4||300||1\n");
        let r = self
            .http
            .post(format!(
                "http://{}/api/v1/alerts?format=passivedns",
                self.server.addr
            ))
            .bearer_auth(&self.sensor)
            .body(line)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// The first mail to `to` whose subject contains `subject`.
    async fn mail(&self, to: &str, subject: &str) -> ReceivedMail {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let found = self
                .smtp
                .messages()
                .into_iter()
                .find(|m| m.to.iter().any(|t| t == to) && m.subject.contains(subject));
            if let Some(m) = found {
                return m;
            }
            if std::time::Instant::now() > deadline {
                panic!(
                    "no mail to {to} about '{subject}'; mails: {:?}\nruns:\n{}\nserver log:\n{}",
                    self.smtp
                        .messages()
                        .iter()
                        .map(|m| (&m.to, &m.subject))
                        .collect::<Vec<_>>(),
                    self.cli.ok(&["run", "list"]),
                    self.server.logs.lock().unwrap().join("\n")
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    fn incident_of(&self, device: &str) -> Option<Value> {
        let out = self.cli.ok(&["incident", "list", "--json"]);
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|i| {
                i["dedup_key"]
                    .as_str()
                    .is_some_and(|k| k == device || k.ends_with(&format!(":{device}")))
            })
    }

    async fn closed(&self, device: &str) -> Value {
        eventually(45, &format!("the incident of {device} closed"), async || {
            self.incident_of(device).filter(|i| i["status"] == "closed")
        })
        .await
    }

    fn rule_for(&self, device: &str) -> Option<Value> {
        self.unifi
            .rules()
            .into_iter()
            .find(|r| r["src_address"] == device)
    }

    /// GET a link like a browser (or a mail scanner): the confirmation page.
    async fn open(&self, url: &str) -> (u16, String) {
        let r = self
            .http
            .get(url)
            .header("user-agent", BROWSER)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// POST the confirmation page's form.
    async fn submit(&self, url: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(action_of(url))
            .header("user-agent", BROWSER)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

async fn home() -> Home {
    let smtp = SmtpSink::start();
    let unifi = FakeUnifi::start(Flavour::UnifiOs, USER, PASS).await;
    unifi.add_client("aa:bb:cc:00:00:42", "192.168.1.40", "livingroom-tv", None, false);

    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        format!(
            "[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Osprey <osprey@home.example>\"\n",
            smtp.port()
        ),
    )
    .unwrap();
    let dir = dist().join("unifi");
    cli.ok(&["plugin", "install", dir.to_str().unwrap(), "--grant-requested"]);
    cli.ok(&["plugin", "grant", "unifi", "--http", &unifi.origin()]);
    cli.ok(&[
        "plugin",
        "config",
        "unifi",
        &format!("base_url={}", unifi.origin()),
    ]);
    for (name, value) in [("username", USER), ("password", PASS)] {
        let out = cli.run_with_stdin(&["secret", "set", "unifi", name], value);
        assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    }
    cli.ok(&["user", "add", "owner", "--email", OWNER_MAIL]);

    // The bundled playbook as shipped, and a copy that answers in seconds for the device
    // whose owner never answers (the timeout path).
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/streaming-guard");
    let main = cli.playbooks_dir().join("streaming-guard");
    copy_dir(&repo, &main);
    let toml = std::fs::read_to_string(main.join("playbook.toml")).unwrap();
    let toml = toml
        .replace(
            "default = \"family@example.com\"",
            &format!("default = \"{FAMILY_MAIL}\""),
        )
        .replace("default = \"10m\"", "default = \"1h\"");
    std::fs::write(
        main.join("playbook.toml"),
        toml.replace(
            "match = 'alert.source == \"passivedns\"'",
            "match = 'alert.source == \"passivedns\" && alert.data.client != \"10.0.0.99\"'",
        ),
    )
    .unwrap();
    let quick = cli.playbooks_dir().join("streaming-guard-quick");
    copy_dir(&repo, &quick);
    std::fs::write(
        quick.join("playbook.toml"),
        toml.replace("name = \"streaming-guard\"", "name = \"streaming-guard-quick\"")
            .replace("default = \"30m\"", "default = \"2s\"")
            .replace(
                "match = 'alert.source == \"passivedns\"'",
                "match = 'alert.source == \"passivedns\" && alert.data.client == \"10.0.0.99\"'",
            ),
    )
    .unwrap();
    cli.ok(&[
        "playbook",
        "validate",
        main.to_str().unwrap(),
        quick.to_str().unwrap(),
    ]);
    cli.ok(&[
        "rules",
        "set",
        "streaming-dedup",
        "--match",
        r#"alert.source == "passivedns""#,
        "--action",
        "dedup",
        "--key",
        "alert.data.client",
        "--window",
        "12h",
        "--type",
        "streaming",
    ]);
    let sensor = cli
        .ok(&["token", "create", "passivedns-pi", "--scope", "intake"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    Home {
        cli,
        server,
        smtp,
        unifi,
        sensor,
        http: http_client(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_guard_asks_the_owner_by_email_and_acts_on_the_controller() {
    let h = home().await;

    // --- Block: the owner is out and chooses "block now" from the email. ---
    h.dns("10.0.0.21", "www.netflix.com").await;
    // A second lookup from the same device folds into its open incident: one question only.
    h.dns("10.0.0.21", "occ-0-1.nflxvideo.net").await;
    let ask = h
        .mail(OWNER_MAIL, "Streaming on 10.0.0.21 while you are out")
        .await;
    assert!(
        ask.html.contains("block now") && ask.html.contains("<a "),
        "{}",
        ask.html
    );
    assert_eq!(links(&ask).len(), 3, "one link per option:\n{}", ask.text);
    let block = link(&ask, "block now");
    // A mail scanner (or a person) opening the link answers nothing.
    let (status, page) = h.open(&block).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Send my answer") && page.contains("value=\"block now\" checked"),
        "{page}"
    );
    // Answering spends the link in the same commit that closes the question, so a second GET
    // that still shows the form (not 410) proves the first answered nothing; the POST's 200
    // below proves the same of the second. No answer, no rule: the run is still waiting.
    let (status, _) = h.open(&block).await;
    assert_eq!(status, 200, "a GET can be repeated: nothing was used");
    assert!(h.rule_for("10.0.0.21").is_none(), "a GET must not answer");
    assert_ne!(h.incident_of("10.0.0.21").unwrap()["status"], "closed");
    // The POST from the page answers.
    let (status, page) = h.submit(&block, &[("option", "block now")]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("block now"), "{page}");
    let incident = h.closed("10.0.0.21").await;
    let rule = h.rule_for("10.0.0.21").expect("a firewall rule for the device");
    assert_eq!(rule["action"], "drop", "{rule}");
    assert!(
        incident["close_reason"]
            .as_str()
            .unwrap()
            .contains("decided by user:owner"),
        "{incident}"
    );
    // The link is spent: used again, it says so and changes nothing.
    let (status, page) = h.submit(&block, &[("option", "allow")]).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("already used"), "{page}");
    let (status, page) = h.open(&block).await;
    assert_eq!(status, 410, "{page}");
    // A tampered link is refused.
    let url = action_of(&block);
    let last = url.chars().last().unwrap();
    let tampered = format!("{}{}", &url[..url.len() - 1], if last == 'A' { 'B' } else { 'A' });
    let (status, page) = h.open(&tampered).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("not valid"), "{page}");
    assert_eq!(
        h.smtp
            .messages()
            .iter()
            .filter(|m| m.subject.contains("10.0.0.21"))
            .count(),
        1,
        "the folded second lookup asked nothing"
    );

    // --- Justify, then allow. ---
    h.dns("10.0.0.22", "www.disneyplus.com").await;
    let ask = h
        .mail(OWNER_MAIL, "Streaming on 10.0.0.22 while you are out")
        .await;
    let justify = link(&ask, "ask for a justification");
    let (status, _) = h.open(&justify).await;
    assert_eq!(status, 200);
    let (status, page) = h.submit(&justify, &[("option", "ask for a justification")]).await;
    assert_eq!(status, 200, "{page}");
    // The questionnaire goes to the device's user, outside Osprey: a link, no account.
    let questionnaire = h.mail(FAMILY_MAIL, "Why are you streaming right now?").await;
    let form_url = link(&questionnaire, "Open the questionnaire");
    let (status, page) = h.open(&form_url).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Why do you need it?") && page.contains("For how long?"),
        "{page}"
    );
    // Invalid answers: the form comes back with what is wrong, nothing recorded.
    let (status, page) = h
        .submit(&form_url, &[("reason", ""), ("how_long", "forever")])
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("this field is required"), "{page}");
    assert!(page.contains("is not a duration"), "{page}");
    assert!(page.contains("forever"), "the typed value is shown again: {page}");
    let (status, page) = h
        .submit(
            &form_url,
            &[
                ("reason", "homework: <b>history</b> documentary"),
                ("how_long", "3d"),
            ],
        )
        .await;
    assert_eq!(status, 422, "3d is over the form's 1d maximum: {page}");
    assert!(
        page.contains("&lt;b&gt;history&lt;/b&gt;"),
        "what was typed is escaped: {page}"
    );
    let (status, page) = h
        .submit(
            &form_url,
            &[
                ("reason", "homework: <b>history</b> documentary"),
                ("how_long", "2h"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    // The answers go back to the owner, who approves.
    let verdict = h
        .mail(OWNER_MAIL, "Justification for streaming on 10.0.0.22")
        .await;
    assert!(
        verdict.text.contains("homework: <b>history</b> documentary"),
        "{}",
        verdict.text
    );
    assert!(
        verdict
            .html
            .contains("homework: &lt;b&gt;history&lt;/b&gt; documentary"),
        "{}",
        verdict.html
    );
    assert!(verdict.text.contains("2h"), "{}", verdict.text);
    let approve = link(&verdict, "Approve");
    let (status, page) = h.open(&approve).await;
    assert_eq!(status, 200, "{page}");
    let (status, page) = h
        .submit(&approve, &[("decision", "approve"), ("comment", "ok, this once")])
        .await;
    assert_eq!(status, 200, "{page}");
    let incident = h.closed("10.0.0.22").await;
    assert!(
        incident["close_reason"]
            .as_str()
            .unwrap()
            .contains("allowed by the owner: homework"),
        "{incident}"
    );
    assert!(h.rule_for("10.0.0.22").is_none(), "allowed: no rule");

    // --- Nobody answers: the question times out and takes its default, "block now". ---
    h.dns("10.0.0.99", "www.netflix.com").await;
    let ask = h
        .mail(OWNER_MAIL, "Streaming on 10.0.0.99 while you are out")
        .await;
    let incident = h.closed("10.0.0.99").await;
    assert!(
        incident["close_reason"]
            .as_str()
            .unwrap()
            .contains("decided by timeout"),
        "{incident}"
    );
    assert!(h.rule_for("10.0.0.99").is_some(), "the default blocked it");
    // Its link is now expired, and says so.
    let (status, page) = h.open(&link(&ask, "allow")).await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired"), "{page}");

    // --- The owner is home: their phone is on the Wi-Fi; nobody is asked. ---
    h.unifi.add_client(
        PHONE,
        "192.168.1.23",
        "owners-phone",
        Some("Owner's phone"),
        false,
    );
    h.dns("10.0.0.23", "www.primevideo.com").await;
    let incident = h.closed("10.0.0.23").await;
    assert!(
        incident["close_reason"]
            .as_str()
            .unwrap()
            .contains("owner is home"),
        "{incident}"
    );
    assert!(h.rule_for("10.0.0.23").is_none());
    assert!(!h.smtp.messages().iter().any(|m| m.subject.contains("10.0.0.23")));

    // Who answered, when, from where and with which browser is in the audit log.
    let audit = h.cli.ok(&["audit", "export", "--action", "question."]);
    let entries: Vec<Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let answers: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "question.answer")
        .collect();
    assert_eq!(answers.len(), 4, "{audit}");
    assert!(
        answers
            .iter()
            .any(|e| e["actor"] == format!("email:{FAMILY_MAIL}")),
        "{audit}"
    );
    for e in &answers {
        assert_eq!(e["details"]["from"], "127.0.0.1", "{e}");
        assert_eq!(e["details"]["user_agent"], BROWSER, "{e}");
        assert_eq!(e["details"]["via"], "link", "{e}");
    }
    assert!(
        entries.iter().any(|e| e["action"] == "question.timeout"),
        "{audit}"
    );
    h.cli.ok(&["audit", "verify"]);
}
