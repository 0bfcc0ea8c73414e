//! Seed 000, "This in business", end to end with the real binary: a member of staff asks for a
//! domain through the request form (over the API, as themselves); the bundled
//! `allow-domain-request` playbook checks the domain's history, asks VirusTotal (a fake on
//! loopback) and finds the requester's manager in Microsoft Graph (a fake on loopback); the
//! manager answers from the mail (a real SMTP server on loopback), following its links like a
//! person: GET shows the confirmation page, POST answers. An approved domain is served on the
//! EDL until it expires, and the expiry job removes it, audited. A malicious domain is refused
//! without asking anyone, and a domain the manager refused is closed with that answer when it
//! is asked for again.

use crate::streaming_guard::{link, links};
use crate::support::fake_msgraph::{CLIENT_ID, FakeMsGraph, TENANT};
use crate::support::fake_virustotal::FakeVirusTotal;
use crate::support::smtp::{ReceivedMail, SmtpSink};
use crate::support::{Cli, Server, dist, eventually, http_client};
use serde_json::{Value, json};

const VT_KEY: &str = "vt-test-key-0123456789abcdef";
const GRAPH_SECRET: &str = "Xq78Q~fake.client.secret.Zb3";
const REQUESTER: &str = "AdeleV@contoso.example";
const MANAGER: &str = "MiriamG@contoso.example";
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

struct Office {
    cli: Cli,
    server: Server,
    smtp: SmtpSink,
    /// Adele's API token (role requester, acting as her).
    token: String,
    /// The firewall's EDL token.
    edl: String,
    http: reqwest::Client,
    _vt: FakeVirusTotal,
    _graph: FakeMsGraph,
}

impl Office {
    fn base(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Send the request form as Adele; the run's id.
    async fn request(&self, domain: &str, days: i64, reason: &str) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/requests/allow-domain-request", self.base()))
            .bearer_auth(&self.token)
            .json(&json!({ "domain": domain, "days": days, "reason": reason }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let run: Value = r.json().await.unwrap();
        run["id"].as_str().unwrap().to_owned()
    }

    /// The mails to `to` whose subject contains `subject`.
    fn mails(&self, to: &str, subject: &str) -> Vec<ReceivedMail> {
        self.smtp
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)) && m.subject.contains(subject))
            .collect()
    }

    /// The first mail to `to` about `subject`, waiting for it.
    async fn mail(&self, to: &str, subject: &str) -> ReceivedMail {
        let what = format!("a mail to {to} about '{subject}'");
        eventually(45, &what, async || self.mails(to, subject).into_iter().next()).await
    }

    /// The run, once it has ended.
    async fn ended(&self, id: &str) -> Value {
        eventually(45, &format!("run {id} to end"), async || {
            let out = self.cli.ok(&["run", "show", id, "--json"]);
            let run = serde_json::from_str::<Value>(&out).ok()?["run"].take();
            ["completed", "failed"]
                .contains(&run["status"].as_str()?)
                .then_some(run)
        })
        .await
    }

    async fn edl_text(&self) -> String {
        let r = self
            .http
            .get(format!("{}/edl/allowed-domains.txt", self.base()))
            .bearer_auth(&self.edl)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    }

    /// Follow an answer link like a person: GET the confirmation page, then POST its form.
    async fn answer(&self, url: &str, form: &[(&str, &str)]) -> String {
        let page = self
            .http
            .get(url)
            .header("user-agent", BROWSER)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        assert!(
            page.contains("<form"),
            "the link shows a confirmation page: {page}"
        );
        let r = self
            .http
            .post(url.split('?').next().unwrap())
            .header("user-agent", BROWSER)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{body}");
        body
    }
}

async fn office() -> Office {
    let smtp = SmtpSink::start();
    let vt = FakeVirusTotal::start(VT_KEY).await;
    let graph = FakeMsGraph::start(GRAPH_SECRET).await;
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        format!(
            "[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Osprey <osprey@contoso.example>\"\n\n[lists]\nexpiry_interval = \"200ms\"\n",
            smtp.port()
        ),
    )
    .unwrap();

    // The plugins, as an operator installs them: grant, settings, secret.
    cli.ok(&["plugin", "install", dist().join("virustotal").to_str().unwrap()]);
    cli.ok(&["plugin", "grant", "virustotal", "--requested"]);
    cli.ok(&["plugin", "grant", "virustotal", "--http", &vt.base_url()]);
    cli.ok(&[
        "plugin",
        "config",
        "virustotal",
        &format!("base_url={}", vt.base_url()),
    ]);
    let out = cli.run_with_stdin(
        &["secret", "set", "virustotal", "api-key"],
        &format!("{VT_KEY}\n"),
    );
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    cli.ok(&["plugin", "install", dist().join("msgraph").to_str().unwrap()]);
    for setting in [
        format!("tenant={TENANT}"),
        format!("client_id={CLIENT_ID}"),
        format!("login_base={}", graph.origin()),
        format!("graph_base={}", graph.origin()),
    ] {
        cli.ok(&["plugin", "config", "msgraph", &setting]);
    }
    cli.ok(&["plugin", "grant", "msgraph", "--requested"]);
    cli.ok(&["plugin", "grant", "msgraph", "--http", &graph.origin()]);
    let out = cli.run_with_stdin(&["secret", "set", "msgraph", "client-secret"], GRAPH_SECRET);
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));

    // The bundled playbook, with one change so the test need not wait days: an approval
    // lasts `days * 15` seconds instead of `days` days.
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/allow-domain-request");
    let to = cli.playbooks_dir().join("allow-domain-request");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(from.join("playbook.toml"), to.join("playbook.toml")).unwrap();
    let script = std::fs::read_to_string(from.join("playbook.rhai")).unwrap();
    assert!(script.contains("ttl: `${days}d`"));
    std::fs::write(
        to.join("playbook.rhai"),
        script.replace("ttl: `${days}d`", "ttl: `${days * 15}s`"),
    )
    .unwrap();
    cli.ok(&["playbook", "validate", to.to_str().unwrap()]);

    cli.ok(&[
        "list",
        "create",
        "allowed-domains",
        "--kind",
        "allow",
        "--type",
        "domain",
    ]);
    cli.ok(&[
        "user",
        "add",
        "adele",
        "--email",
        REQUESTER,
        "--role",
        "requester",
    ]);
    let token = cli
        .ok(&[
            "token",
            "create",
            "adele-api",
            "--role",
            "requester",
            "--user",
            "adele",
        ])
        .trim()
        .to_owned();
    let edl = cli
        .ok(&["token", "create", "firewall", "--scope", "edl"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    Office {
        cli,
        server,
        smtp,
        token,
        edl,
        http: http_client(),
        _vt: vt,
        _graph: graph,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_request_goes_to_the_manager_then_the_allow_list_and_expires() {
    let o = office().await;

    // Adele asks for a clean, old domain: her manager Miriam gets the mail with everything.
    let run = o
        .request("Partner-Portal.example", 1, "supplier onboarding this week")
        .await;
    let ask = o
        .mail(MANAGER, "adele asks to allow partner-portal.example")
        .await;
    for needle in [
        "partner-portal.example",
        "1 day",
        "supplier onboarding this week",
        REQUESTER,
        "VirusTotal: 0 engines say malicious",
        "business and economy",
        "registered: 2010-01-01",
        "No earlier request for this domain.",
    ] {
        assert!(ask.text.contains(needle), "'{needle}' not in:\n{}", ask.text);
    }
    assert!(o.edl_text().await.lines().all(|l| l != "partner-portal.example"));

    // She approves from the mail.
    let body = o
        .answer(
            &link(&ask, "Approve"),
            &[("decision", "approve"), ("comment", "ok for the onboarding")],
        )
        .await;
    assert!(body.to_lowercase().contains("thank"), "{body}");
    let served = eventually(30, "the domain on the EDL", async || {
        let text = o.edl_text().await;
        text.lines()
            .any(|l| l == "partner-portal.example")
            .then_some(text)
    })
    .await;
    assert!(served.contains("partner-portal.example"));

    // Adele is told, with a link to talk to a human.
    let told = o.mail(REQUESTER, "Allowed: partner-portal.example").await;
    assert!(told.text.contains("ok for the onboarding"), "{}", told.text);
    let human = link(&told, "Talk to a human");
    let page = o
        .http
        .get(&human)
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let ended = o.ended(&run).await;
    assert_eq!(ended["status"], "completed", "{ended}");
    assert_eq!(ended["output"]["outcome"], "approved", "{ended}");
    assert_eq!(
        ended["output"]["approver"].as_str().unwrap().to_lowercase(),
        MANAGER.to_lowercase()
    );

    // The entry expires (15 seconds here): the expiry job removes it, audited.
    eventually(60, "the domain to leave the EDL", async || {
        let text = o.edl_text().await;
        (!text.lines().any(|l| l == "partner-portal.example")).then_some(())
    })
    .await;
    let audit = eventually(30, "the list.expire audit entry", async || {
        let out = o.cli.ok(&["audit", "show", "--action", "list."]);
        out.lines()
            .any(|l| l.contains("list.expire") && l.contains("partner-portal.example"))
            .then_some(out)
    })
    .await;
    let expire = audit.lines().find(|l| l.contains("list.expire")).unwrap();
    assert!(expire.contains("list:allowed-domains"), "{expire}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_domain_is_refused_at_once_and_a_refused_one_stays_refused() {
    let o = office().await;

    // VirusTotal knows malware.example: refused without asking anyone.
    let run = o.request("malware.example", 2, "a download").await;
    let told = o.mail(REQUESTER, "Not allowed: malware.example").await;
    assert!(
        told.text.contains("VirusTotal knows it as malicious (9 engines"),
        "{}",
        told.text
    );
    assert!(
        !links(&told).is_empty(),
        "the refusal has a talk-to-a-human link: {}",
        told.text
    );
    let ended = o.ended(&run).await;
    assert_eq!(ended["output"]["outcome"], "malicious", "{ended}");
    assert!(o.mails(MANAGER, "malware.example").is_empty());

    // The manager refuses games.example (VirusTotal has no report of it: she is told so).
    let first = o.request("games.example", 1, "team building").await;
    let ask = o.mail(MANAGER, "adele asks to allow games.example").await;
    assert!(
        ask.text.contains("VirusTotal knows nothing of this domain"),
        "{}",
        ask.text
    );
    o.answer(
        &link(&ask, "Deny"),
        &[("decision", "deny"), ("comment", "gaming is not work")],
    )
    .await;
    let refused = o.mail(REQUESTER, "Not allowed: games.example").await;
    assert!(refused.text.contains("gaming is not work"), "{}", refused.text);
    assert_eq!(o.ended(&first).await["output"]["outcome"], "refused");

    // Asked again: closed with that answer, and the manager is not asked a second time.
    let again = o.request("Games.example", 3, "team building, again").await;
    let ended = o.ended(&again).await;
    assert_eq!(ended["output"]["outcome"], "refused-before", "{ended}");
    assert_eq!(ended["output"]["refused_before"], first.as_str());
    let closed = eventually(30, "the second refusal mail", async || {
        let all = o.mails(REQUESTER, "Not allowed: games.example");
        (all.len() == 2).then(|| all.into_iter().find(|m| m.text.contains("it was refused on")))?
    })
    .await;
    assert!(closed.text.contains("gaming is not work"), "{}", closed.text);
    assert!(
        closed.text.contains(&MANAGER.to_lowercase()) || closed.text.contains(MANAGER),
        "{}",
        closed.text
    );
    assert_eq!(o.mails(MANAGER, "games.example").len(), 1);
    assert!(
        o.edl_text()
            .await
            .lines()
            .all(|l| l != "games.example" && l != "malware.example")
    );
}
