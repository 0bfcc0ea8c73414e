//! People in the loop, with the real binary and a real SMTP server on loopback: the inbox of
//! a signed-in user answers questions and completes tasks in place (and refuses a task of a
//! role the user is not in), a question without a default times out into an error the
//! script catches, an expired link says so, and the "talk to a human" link escalates an
//! incident to the on-call role.

use crate::streaming_guard::link;
use crate::support::smtp::SmtpSink;
use crate::support::{Cli, Server, eventually, http_client, write_playbook};
use serde_json::Value;

const PASSWORD: &str = "a-long-enough-passphrase";

/// A data dir whose config sends mail to `smtp`, with `extra` config appended.
pub(crate) fn setup(smtp: &SmtpSink, extra: &str) -> Cli {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        format!(
            "[mail]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n{extra}",
            smtp.port()
        ),
    )
    .unwrap();
    cli
}

pub(crate) fn user(cli: &Cli, name: &str, email: &str, roles: &str) {
    cli.ok(&["user", "add", name, "--email", email, "--role", roles]);
    let out = cli.run_with_stdin(&["user", "password", name], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
}

/// Sign in; returns the session cookie.
pub(crate) async fn sign_in(http: &reqwest::Client, addr: &str, name: &str) -> String {
    let r = http
        .post(format!("http://{addr}/login"))
        .form(&[("user", name), ("password", PASSWORD), ("next", "/inbox")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

pub(crate) async fn inbox(http: &reqwest::Client, addr: &str, cookie: &str) -> String {
    let r = http
        .get(format!("http://{addr}/inbox"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

pub(crate) fn run_json(cli: &Cli, id: &str) -> Value {
    let out = cli.ok(&["run", "show", id, "--json"]);
    serde_json::from_str(&out).unwrap()
}

pub(crate) fn start(cli: &Cli, playbook: &str) -> String {
    let out = cli.ok(&["playbook", "run", playbook, "--detach"]);
    out.split_whitespace().nth(1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_answers_questions_and_completes_only_ones_own_tasks() {
    let smtp = SmtpSink::start();
    let cli = setup(&smtp, "");
    user(&cli, "alice", "alice@corp.example", "soc");
    user(&cli, "mallory", "mallory@corp.example", "sales");
    // One role question, one role task (delegation to soc), one question with a short due
    // time and no default (the script catches the timeout).
    write_playbook(
        &cli.playbooks_dir(),
        "review",
        "",
        r#"
        let t = task_create(#{ title: "Call the user back", role: "soc", due: "1h" });
        let a = approve(#{ role: "soc", title: "Reset the VPN password?", text: "The user asked twice.", remind: "1s" });
        let late = "answered";
        try {
            ask(#{ user: "alice", title: "Anything else?", options: ["no", "yes"], due: "1s" });
        } catch (e) {
            late = e.kind;
        }
        #{ approved: a.answer, by: a.by, via: a.via, comment: a.comment, late: late, task: t.id }
        "#,
    );
    let server = Server::start(&cli);
    let addr = server.addr.clone();
    let run = start(&cli, "review");
    let http = http_client();

    // The question reached alice by mail too (she is in the role).
    let mail = eventually(30, "the approval mail", async || {
        smtp.messages()
            .into_iter()
            .find(|m| m.subject.contains("Reset the VPN password?"))
    })
    .await;
    assert_eq!(mail.to, vec!["alice@corp.example".to_owned()]);
    assert!(!link(&mail, "Approve").is_empty());
    // Unanswered, it is mailed again as a reminder, with the same (still unused) link.
    let reminder = eventually(30, "a reminder", async || {
        smtp.messages()
            .into_iter()
            .find(|m| m.subject == "Reminder: Reset the VPN password?")
    })
    .await;
    assert_eq!(link(&reminder, "Approve"), link(&mail, "Approve"));

    // Signed out: the inbox sends to the sign-in page.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://{addr}/inbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login?next=")
    );

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mallory = sign_in(&no_redirects, &addr, "mallory").await;
    let page = inbox(&no_redirects, &addr, &mallory).await;
    assert!(!page.contains("Reset the VPN password?"), "not mallory's: {page}");
    assert!(!page.contains("Call the user back"), "not mallory's: {page}");
    // Mallory tries anyway: the task of a role she is not in is refused, and stays open.
    let task_id = eventually(30, "the task", async || {
        let out = cli.ok(&["task", "list", "--json"]);
        out.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .find(|t| t["title"] == "Call the user back")
            .map(|t| t["id"].as_str().unwrap().to_owned())
    })
    .await;
    let r = no_redirects
        .post(format!("http://{addr}/inbox/tasks/{task_id}"))
        .header("cookie", &mallory)
        .form(&[("csrf", csrf(&page).as_str()), ("comment", "done!")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("neither that user nor a member of that role"),
        "{body}"
    );

    let alice = sign_in(&no_redirects, &addr, "alice").await;
    let page = inbox(&no_redirects, &addr, &alice).await;
    assert!(page.contains("Reset the VPN password?"), "{page}");
    assert!(page.contains("Call the user back"), "{page}");
    let token = csrf(&page);
    let question_action = {
        let at = page.find("/inbox/questions/").unwrap();
        page[at..].split('"').next().unwrap().to_owned()
    };
    // Without the CSRF token: refused.
    let r = no_redirects
        .post(format!("http://{addr}{question_action}"))
        .header("cookie", &alice)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // No decision: the inbox comes back with the error, nothing recorded.
    let r = no_redirects
        .post(format!("http://{addr}{question_action}"))
        .header("cookie", &alice)
        .form(&[("csrf", token.as_str()), ("comment", "hmm")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("choose approve or deny"));
    let r = no_redirects
        .post(format!("http://{addr}{question_action}"))
        .header("cookie", &alice)
        .form(&[
            ("csrf", token.as_str()),
            ("decision", "approve"),
            ("comment", "verified by phone"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = no_redirects
        .post(format!("http://{addr}/inbox/tasks/{task_id}"))
        .header("cookie", &alice)
        .form(&[("csrf", token.as_str()), ("comment", "called")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // The run went on with the answer, and caught the timeout of the unanswered question.
    let done = eventually(30, "the run completed", async || {
        let r = run_json(&cli, &run);
        (r["run"]["status"] == "completed").then_some(r)
    })
    .await;
    let output = &done["run"]["output"];
    assert_eq!(output["approved"], true, "{done}");
    assert_eq!(output["by"], "user:alice");
    assert_eq!(output["via"], "web");
    assert_eq!(output["comment"], "verified by phone");
    assert_eq!(output["late"], "timeout");
    let tasks = cli.ok(&["task", "list", "--json"]);
    let task: Value = tasks
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|t| t["id"] == task_id.as_str())
        .unwrap();
    assert_eq!(task["status"], "done", "{task}");
    assert_eq!(task["completed_by"], "alice", "{task}");

    // The mailed link of the answered question: already answered, nothing changes.
    let (status, page) = {
        let r = http.get(link(&mail, "Approve")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already answered by alice"), "{page}");

    // The timed-out question's link (mailed to alice) says it expired.
    let late = eventually(30, "the second mail", async || {
        smtp.messages()
            .into_iter()
            .find(|m| m.subject.contains("Anything else?"))
    })
    .await;
    let r = http.get(link(&late, "yes")).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talk_to_a_human_escalates_to_the_on_call_role() {
    let smtp = SmtpSink::start();
    let cli = setup(
        &smtp,
        "[humans]\noncall_role = \"oncall\"\n\n[incidents.types.access-request]\nacknowledge = \"2h\"\n",
    );
    user(&cli, "olga", "olga@corp.example", "oncall");
    user(&cli, "oscar", "oscar@corp.example", "oncall");
    cli.ok(&["user", "add", "requester", "--email", "bob@corp.example"]);
    // The acknowledgement to the requester carries the link.
    write_playbook(
        &cli.playbooks_dir(),
        "acknowledge",
        "[[triggers]]\nkind = \"alert\"\nmatch = 'alert.source == \"helpdesk\"'\n",
        r#"
        send_email(#{ user: "requester", subject: "We got your request", talk_to_human: true,
                      text: "Your request is being handled automatically.\n\nWe will write when it is done." });
        "#,
    );
    cli.ok(&[
        "rules",
        "set",
        "helpdesk",
        "--match",
        r#"alert.source == "helpdesk""#,
        "--action",
        "incident",
        "--type",
        "access-request",
    ]);
    let sensor = cli
        .ok(&["token", "create", "helpdesk", "--scope", "intake"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let http = http_client();
    let r = http
        .post(format!("http://{}/api/v1/alerts", server.addr))
        .bearer_auth(&sensor)
        .header("content-type", "application/json")
        .body(
            serde_json::json!({ "source": "helpdesk", "title": "access to the wiki", "severity": "low" })
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mail = eventually(30, "the acknowledgement", async || {
        smtp.messages()
            .into_iter()
            .find(|m| m.subject == "We got your request")
    })
    .await;
    assert_eq!(mail.to, vec!["bob@corp.example".to_owned()]);
    assert!(mail.html.contains("Talk to a human"), "{}", mail.html);
    let url = link(&mail, "Talk to a human");
    let incident = || -> Value {
        let out = cli.ok(&["incident", "list", "--json"]);
        serde_json::from_str(out.lines().next().unwrap()).unwrap()
    };
    // Opening it asks for confirmation and changes nothing.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("talk to a human"));
    let before = incident();
    assert_eq!(before["severity"], "low");
    assert!(before["owner"].is_null(), "{before}");
    // Acknowledged by an analyst before the requester asks for a human: the response
    // (acknowledge) timer is stopped.
    let id = before["id"].as_str().unwrap().to_owned();
    cli.ok(&["incident", "ack", &id]);
    let ack_timer = |cli: &Cli| -> Value {
        let shown: Value = serde_json::from_str(&cli.ok(&["incident", "show", &id, "--json"])).unwrap();
        shown["sla"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["timer"] == "acknowledge")
            .cloned()
            .unwrap()
    };
    assert!(!ack_timer(&cli)["stopped_at"].is_null());
    let r = http
        .post(&url)
        .header("user-agent", "curl-like")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let after = incident();
    assert_eq!(after["severity"], "high", "{after}");
    assert_eq!(after["role"], "oncall");
    assert!(
        ["olga", "oscar"].contains(&after["owner"].as_str().unwrap()),
        "{after}"
    );
    // The response SLA (acknowledge) started again from the escalation: running, due in 2h.
    assert!(after["acknowledged_at"].is_null(), "{after}");
    assert_eq!(
        after["status"], "new",
        "for the on-call person to acknowledge: {after}"
    );
    let timer = ack_timer(&cli);
    assert!(timer["stopped_at"].is_null(), "{timer}");
    let left = timer["due_at"].as_i64().unwrap() - osprey::store::now_ms();
    assert!(left > 7_000_000 && left <= 7_200_000, "{timer}");
    let shown = cli.ok(&["incident", "show", &id]);
    assert!(shown.contains("escalated"), "{shown}");
    let audit = cli.ok(&["audit", "export", "--action", "incident.escalate"]);
    let entry: Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(entry["actor"], "user:requester");
    assert_eq!(entry["details"]["from"], "127.0.0.1");
    assert_eq!(entry["details"]["user_agent"], "curl-like");
    // Once only.
    let r = http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 410);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_to_an_address_is_in_the_inbox_of_the_user_who_has_it_even_without_mail() {
    // No [mail]: the address must belong to an Osprey user, who answers in the inbox.
    let cli = Cli::new();
    user(&cli, "miriam", "Miriam.G@corp.example", "staff");
    user(&cli, "mallory", "mallory@corp.example", "staff");
    write_playbook(
        &cli.playbooks_dir(),
        "to-manager",
        "",
        r#"
        let a = approve(#{ email: "miriam.g@corp.example", title: "Allow partner.example for 7 days?" });
        #{ approved: a.answer, by: a.by }
        "#,
    );
    write_playbook(
        &cli.playbooks_dir(),
        "to-stranger",
        "",
        r#"approve(#{ email: "nobody@elsewhere.example", title: "Anyone?" })"#,
    );
    // Mallory's own question, so her inbox has a form (and its CSRF token).
    write_playbook(
        &cli.playbooks_dir(),
        "to-mallory",
        "",
        r#"ask(#{ user: "mallory", title: "Coffee?", options: ["yes", "no"] })"#,
    );
    let server = Server::start(&cli);
    let addr = server.addr.clone();
    let stranger = start(&cli, "to-stranger");
    let run = start(&cli, "to-manager");
    start(&cli, "to-mallory");
    let _ = http_client(); // installs the TLS provider reqwest needs
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // An address nobody here has still needs mail, and says so.
    let failed = eventually(30, "the stranger's run failed", async || {
        let r = run_json(&cli, &stranger);
        (r["run"]["status"] == "failed").then_some(r)
    })
    .await;
    let error = failed["run"]["error"].to_string();
    assert!(error.contains("needs mail") && error.contains("inbox"), "{error}");

    // Mallory does not see Miriam's question, nor may she answer it.
    let mallory = sign_in(&http, &addr, "mallory").await;
    let miriam = sign_in(&http, &addr, "miriam").await;
    let page = eventually(30, "the question in miriam's inbox", async || {
        let page = inbox(&http, &addr, &miriam).await;
        page.contains("Allow partner.example for 7 days?").then_some(page)
    })
    .await;
    let action = {
        let at = page.find("/inbox/questions/").unwrap();
        page[at..].split('"').next().unwrap().to_owned()
    };
    let not_hers = eventually(30, "mallory's own question", async || {
        let page = inbox(&http, &addr, &mallory).await;
        page.contains("Coffee?").then_some(page)
    })
    .await;
    assert!(!not_hers.contains("Allow partner.example"), "{not_hers}");
    let r = http
        .post(format!("http://{addr}{action}"))
        .header("cookie", &mallory)
        .form(&[("csrf", csrf(&not_hers).as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "not hers to answer");

    let r = http
        .post(format!("http://{addr}{action}"))
        .header("cookie", &miriam)
        .form(&[("csrf", csrf(&page).as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let done = eventually(30, "the run completed", async || {
        let r = run_json(&cli, &run);
        (r["run"]["status"] == "completed").then_some(r)
    })
    .await;
    assert_eq!(done["run"]["output"]["approved"], true, "{done}");
    assert_eq!(done["run"]["output"]["by"], "user:miriam");
}
