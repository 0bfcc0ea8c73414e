//! The REST API through the real server: incidents and tasks with tokens that act for users
//! (only the right user completes a task, once), refusals with the reason (unknown fields,
//! custom fields a type does not declare, bad rules, no token, a token without the scope,
//! bodies over the limit), rules set, listed, tested and removed, and every change in the
//! audit log under the token or the user it acts for. A signed-in web session calls the API
//! with its cookie and CSRF token, as its user. What the console does is an API call too:
//! child incidents, playbooks and their runs, plugin grants, list entries, the audit check.

use crate::support::{Cli, Server, dist, eventually, http_client, text, write_playbook};
use serde_json::{Value, json};

/// The password the tests' users sign in with.
const PASSWORD: &str = "correct horse battery";

/// Give `user` the tests' password.
pub(crate) fn set_password(cli: &Cli, user: &str) {
    let out = cli.run_with_stdin(&["user", "password", user], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Sign `user` in at `base` (`http://ADDR`): the session cookie (`osprey_session=...`) and the
/// session's CSRF token (from the signed-in page of `/login`).
pub(crate) async fn sign_in(base: &str, user: &str) -> (String, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([("user", user), ("password", PASSWORD)])
        .finish();
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signing in {user}");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = http
        .get(format!("{base}/login"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no CSRF token in {page}"))
        + marker.len();
    let csrf = page[start..].split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

fn token(cli: &Cli, name: &str, scope: &str, user: Option<&str>) -> String {
    let mut args = vec!["token", "create", name, "--scope", scope];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    cli.ok(&args).trim().to_owned()
}

/// One answer: status, content type, body as JSON (`null` if empty), Location,
/// WWW-Authenticate.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    location: Option<String>,
    authenticate: Option<String>,
}

impl Answer {
    /// The problem document's title.
    fn title(&self) -> &str {
        assert_eq!(self.content_type, "application/problem+json", "{}", self.body);
        self.body["title"].as_str().unwrap_or_default()
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

/// Who sends a request.
#[derive(Clone, Copy)]
enum Who<'a> {
    Nobody,
    Token(&'a str),
    /// A session cookie, with or without the CSRF header.
    Session {
        cookie: &'a str,
        csrf: Option<&'a str>,
    },
}

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            http: http_client(),
            base: format!("http://{}", server.addr),
        }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<String>) -> Answer {
        self.send_as(method, path, token.map(Who::Token).unwrap_or(Who::Nobody), body)
            .await
    }

    async fn send_as(&self, method: &str, path: &str, who: Who<'_>, body: Option<String>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        match who {
            Who::Nobody => {}
            Who::Token(t) => r = r.bearer_auth(t),
            Who::Session { cookie, csrf } => {
                r = r.header("cookie", cookie);
                if let Some(csrf) = csrf {
                    r = r.header("x-csrf-token", csrf);
                }
            }
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location");
        let authenticate = header("www-authenticate");
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&bytes)))
        };
        Answer {
            status,
            content_type,
            body,
            location,
            authenticate,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send("POST", path, Some(token), Some(body.to_string())).await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send("PATCH", path, Some(token), Some(body.to_string()))
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send("PUT", path, Some(token), Some(body.to_string())).await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.send("DELETE", path, Some(token), None).await
    }
}

/// The audit log, as exported.
fn audit(cli: &Cli) -> Vec<Value> {
    cli.ok(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Whether the audit log has `action` on `target` by `actor`.
fn audited(log: &[Value], action: &str, target: &str, actor: &str) -> bool {
    log.iter()
        .any(|e| e["action"] == action && e["target"] == target && e["actor"] == actor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_and_tasks_through_the_api_are_checked_and_audited() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[incidents]\nacknowledge = \"30m\"\nresolve = \"1d\"\n",
    )
    .unwrap();
    cli.ok(&["user", "add", "alice", "--role", "soc"]);
    cli.ok(&["user", "add", "bob", "--role", "net"]);
    let alice = token(&cli, "alice-api", "incidents", Some("alice"));
    let bob = token(&cli, "bob-api", "incidents", Some("bob"));
    let bot = token(&cli, "soar-bot", "incidents", None);
    let sender = token(&cli, "sender", "intake", None);
    let err = cli.fails(&[
        "token",
        "create",
        "ghost",
        "--scope",
        "incidents",
        "--user",
        "nobody",
    ]);
    assert!(err.contains("no user 'nobody'"), "{err}");
    let err = cli.fails(&["token", "create", "x", "--scope", "everything"]);
    assert!(
        err.contains("incidents, rules"),
        "the new scopes are listed: {err}"
    );
    let listed = cli.ok(&["token", "list"]);
    let line = listed.lines().find(|l| l.starts_with("alice-api")).unwrap();
    assert!(line.contains("user alice"), "{listed}");
    assert!(!listed.contains("ghost"), "{listed}");
    let server = Server::start(&cli);
    let api = Api::new(&server);

    // No token, a bad one: 401. A token without the scope: 403.
    let r = api.send("GET", "/api/v1/incidents", None, None).await;
    assert_eq!(r.status, 401);
    assert!(r.title().contains("Authorization: Bearer"), "{}", r.body);
    let r = api.get("/api/v1/incidents", "osp_made-up").await;
    assert_eq!(r.status, 401);
    let r = api.get("/api/v1/incidents", &sender).await;
    assert_eq!(r.status, 403);
    assert!(r.title().contains("incidents"), "{}", r.body);
    let r = api
        .post(
            "/api/v1/incidents",
            &sender,
            json!({"title": "x", "type": "phishing"}),
        )
        .await;
    assert_eq!(r.status, 403);

    // Create: 201 with the incident; refusals name the problem.
    let r = api
        .post(
            "/api/v1/incidents",
            &alice,
            json!({"title": "Phishing mail to finance", "type": "phishing", "severity": "high"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/api/v1/incidents/{id}").as_str())
    );
    assert_eq!(r.body["status"], "new");
    assert_eq!(r.body["severity"], "high");
    let r = api
        .post(
            "/api/v1/incidents",
            &alice,
            json!({"title": "x", "type": "phishing", "colour": "red"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("unknown field `colour`"), "{}", r.body);
    let r = api
        .post(
            "/api/v1/incidents",
            &alice,
            json!({"title": "x", "type": "phishing", "severity": "apocalyptic"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.title().contains("'apocalyptic' is not a severity"),
        "{}",
        r.body
    );
    let r = api
        .post(
            "/api/v1/incidents",
            &alice,
            json!({"title": "x", "type": "phishing", "parent": "i-nope"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("no parent incident 'i-nope'"), "{}", r.body);
    let r = api
        .send(
            "POST",
            "/api/v1/incidents",
            Some(&alice),
            Some("{\"title\": ".into()),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("not valid JSON"), "{}", r.body);
    let big = json!({"title": "x".repeat(1024 * 1024 + 1), "type": "phishing"}).to_string();
    let r = api
        .send("POST", "/api/v1/incidents", Some(&alice), Some(big))
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.content_type, "application/problem+json");

    // Change it: severity, owner, status at once; custom fields the type does not declare are
    // refused, and nothing of that request is changed.
    let path = format!("/api/v1/incidents/{id}");
    let r = api
        .patch(
            &path,
            &alice,
            json!({"severity": "critical", "owner": "alice", "status": "active"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["severity"], &r.body["owner"], &r.body["status"]),
        (&json!("critical"), &json!("alice"), &json!("active"))
    );
    let r = api
        .patch(
            &path,
            &bot,
            json!({"severity": "low", "fields": {"asset": "pc-1"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.title()
            .contains("incident type 'phishing' has no custom fields (declare them in [incidents.types.phishing.fields])"),
        "{}",
        r.body
    );
    let r = api.patch(&path, &bot, json!({"status": "closed"})).await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("/close"), "{}", r.body);
    let r = api
        .patch(&path, &bot, json!({"owner": "bob", "priority": 1}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("unknown field `priority`"), "{}", r.body);
    let r = api.get(&path, &bot).await;
    assert_eq!(
        r.body["incident"]["severity"], "critical",
        "the refused change changed nothing"
    );
    assert_eq!(r.body["incident"]["owner"], "alice");
    let r = api
        .patch("/api/v1/incidents/i-nope", &bot, json!({"severity": "low"}))
        .await;
    assert_eq!(r.status, 404);

    // A note, a child, a related incident, the SLA paused and resumed.
    let r = api
        .post(
            &format!("{path}/notes"),
            &alice,
            json!({"text": "called the user"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api
        .post(&format!("{path}/notes"), &alice, json!({"text": "  "}))
        .await;
    assert_eq!(r.status, 400);
    let r = api
        .post(
            "/api/v1/incidents",
            &bot,
            json!({"title": "Block the sender", "type": "containment", "parent": id, "role": "net"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let child = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["parent_id"], id.as_str());
    let r = api
        .post(
            "/api/v1/incidents",
            &bot,
            json!({"title": "Same sender last week", "type": "phishing"}),
        )
        .await;
    let other = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .post(&format!("{path}/related"), &bot, json!({"incident": other}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"added": true, "related": [other]}));
    let r = api
        .post(&format!("{path}/related"), &bot, json!({"incident": "i-nope"}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("no incident 'i-nope'"), "{}", r.body);
    let r = api.post(&format!("{path}/sla/pause"), &bot, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["timers"], 1, "the resolve timer (acknowledge was met)");
    let r = api.post(&format!("{path}/sla/resume"), &bot, json!({})).await;
    assert_eq!(r.body["timers"], 1);

    // A task for role soc: bob (net) may not complete it, a token for no user may not, alice
    // (soc) may, once.
    let r = api
        .post(
            "/api/v1/tasks",
            &bot,
            json!({"title": "Reset the user's password", "role": "soc", "incident": id, "due": "4h"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let task = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["created_by"], "token:soar-bot");
    let r = api
        .post("/api/v1/tasks", &bot, json!({"title": "nobody's", "due": "4h"}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("a user, a role, or both"), "{}", r.body);
    let r = api
        .post(
            "/api/v1/tasks",
            &bot,
            json!({"title": "t", "role": "soc", "due": "soon"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let done = format!("/api/v1/tasks/{task}/complete");
    let r = api.post(&done, &bob, json!({"comment": "mine now"})).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.title().contains("user 'bob'") && r.title().contains("role 'soc'"),
        "{}",
        r.body
    );
    let r = api.post(&done, &bot, json!({})).await;
    assert_eq!(r.status, 403);
    assert!(r.title().contains("does not act for a user"), "{}", r.body);
    let r = api
        .post(&done, &alice, json!({"comment": "reset and told them"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "done");
    assert_eq!(r.body["completed_by"], "alice");
    let r = api.post(&done, &alice, json!({})).await;
    assert_eq!(r.status, 409);
    assert!(r.title().contains("is done, not open"), "{}", r.body);
    let r = api.post("/api/v1/tasks/t-nope/complete", &alice, json!({})).await;
    assert_eq!(r.status, 404);
    let r = api.get(&format!("/api/v1/tasks/{task}"), &bob).await;
    assert_eq!(r.body["comment"], "reset and told them");
    let r = api.get("/api/v1/tasks?for_user=alice&status=done", &bob).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["id"], task.as_str());
    let r = api.get("/api/v1/tasks?for_user=bob", &bob).await;
    assert!(r.body["items"].as_array().unwrap().is_empty(), "{}", r.body);

    // Another task, delegated to bob, then cancelled.
    let r = api
        .post(
            "/api/v1/tasks",
            &alice,
            json!({"title": "Check the mail gateway", "user": "alice"}),
        )
        .await;
    let second = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            &format!("/api/v1/tasks/{second}/delegate"),
            &alice,
            json!({"user": "bob", "due": "1h"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["assignee"], "bob");
    let r = api
        .post(&format!("/api/v1/tasks/{second}/cancel"), &alice, json!({}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("missing field `reason`"), "{}", r.body);
    let r = api
        .post(
            &format!("/api/v1/tasks/{second}/cancel"),
            &alice,
            json!({"reason": "not needed"}),
        )
        .await;
    assert_eq!(r.body["status"], "cancelled");

    // The incident shows it all.
    let r = api.get(&path, &bob).await;
    assert_eq!(r.status, 200);
    let kinds: Vec<&str> = r.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "created",
        "update",
        "status",
        "note",
        "child",
        "related",
        "sla_pause",
        "task",
        "task_done",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let note = r.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "note")
        .unwrap();
    assert_eq!(note["actor"], "user:alice");
    assert_eq!(note["details"]["text"], "called the user");
    assert_eq!(r.body["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["tasks"][0]["id"], task.as_str());
    assert_eq!(r.body["tasks"][0]["status"], "done");
    assert_eq!(r.body["children"][0]["id"], child.as_str());
    assert_eq!(r.body["related"], json!([other]));
    let timers: Vec<(&str, &str)> = r.body["sla"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["timer"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert!(timers.contains(&("acknowledge", "met")), "{timers:?}");
    assert!(timers.contains(&("resolve", "running")), "{timers:?}");
    assert!(timers.contains(&("due", "met")), "{timers:?}");
    let r = api.get("/api/v1/incidents/i-nope", &bob).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.title(), "no incident 'i-nope'");

    // Close with a reason, once; closed is closed until re-opened.
    let r = api.post(&format!("{path}/close"), &alice, json!({})).await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("missing field `reason`"), "{}", r.body);
    let r = api
        .post(
            &format!("{path}/close"),
            &alice,
            json!({"reason": "password reset, sender blocked"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "closed");
    assert_eq!(r.body["close_reason"], "password reset, sender blocked");
    let r = api
        .post(&format!("{path}/close"), &alice, json!({"reason": "again"}))
        .await;
    assert_eq!(r.status, 409);
    let r = api.patch(&path, &alice, json!({"status": "pending"})).await;
    assert_eq!(r.status, 409);
    let r = api.post(&format!("{path}/reopen"), &alice, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "active");
    let r = api.post(&format!("{path}/reopen"), &alice, json!({})).await;
    assert_eq!(r.status, 409);

    // Lists and their parameters.
    let r = api.get("/api/v1/incidents", &bob).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["next_cursor"], Value::Null);
    let r = api.get("/api/v1/incidents?status=new&limit=1", &bob).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["status"], "new");
    for (query, says) in [
        ("status=bogus", "'bogus' is not a status"),
        ("limit=0", "limit '0'"),
        ("limit=501", "from 1 to 500"),
        ("colour=red", "unknown query parameter 'colour'"),
    ] {
        let r = api.get(&format!("/api/v1/incidents?{query}"), &bob).await;
        assert_eq!(r.status, 400, "{query}");
        assert!(r.title().contains(says), "{query}: {}", r.body);
    }
    drop(server);

    // Every change is audited under the user the token acts for, or the token.
    let log = audit(&cli);
    let incident = format!("incident:{id}");
    for (action, target, actor) in [
        ("incident.create", incident.as_str(), "user:alice"),
        ("incident.update", incident.as_str(), "user:alice"),
        ("incident.status", incident.as_str(), "user:alice"),
        ("incident.relate", incident.as_str(), "token:soar-bot"),
        ("sla.pause", incident.as_str(), "token:soar-bot"),
        ("sla.resume", incident.as_str(), "token:soar-bot"),
        ("task.create", &format!("task:{task}"), "token:soar-bot"),
        ("task.done", &format!("task:{task}"), "user:alice"),
        ("task.delegate", &format!("task:{second}"), "user:alice"),
        ("task.cancel", &format!("task:{second}"), "user:alice"),
    ] {
        assert!(
            audited(&log, action, target, actor),
            "no {action} of {target} by {actor}"
        );
    }
    let made = log
        .iter()
        .find(|e| e["action"] == "token.create" && e["target"] == "token:alice-api")
        .unwrap();
    assert_eq!(made["details"]["user"], "alice");
    assert!(made["actor"].as_str().unwrap().starts_with("cli:"), "{made}");
    assert!(
        !log.iter()
            .any(|e| e["actor"] == "user:bob" || e["details"].to_string().contains("apocalyptic")),
        "refused requests changed nothing"
    );
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_set_listed_tested_and_removed_through_the_api() {
    let cli = Cli::new();
    let rules = token(&cli, "rules-bot", "rules", None);
    let incidents = token(&cli, "incidents-bot", "incidents", None);
    let sender = token(&cli, "sender", "intake", None);
    let server = Server::start(&cli);
    let api = Api::new(&server);

    let r = api.get("/api/v1/rules", &incidents).await;
    assert_eq!(r.status, 403);
    let r = api.send("GET", "/api/v1/rules", None, None).await;
    assert_eq!(r.status, 401);
    let r = api.get("/api/v1/incidents", &rules).await;
    assert_eq!(r.status, 403, "scope rules is not scope incidents");

    // Set: 201 new, 200 replaced; the name comes from the path.
    let scans = json!({"match": "alert.title.contains(\"SCAN\")", "action": "drop"});
    let r = api
        .put("/api/v1/rules/scanner-noise", &rules, scans.clone())
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["position"], 1);
    assert_eq!(r.location.as_deref(), Some("/api/v1/rules/scanner-noise"));
    let r = api
        .put(
            "/api/v1/rules/everything-else?position=2",
            &rules,
            json!({"name": "everything-else", "match": "true", "action": "incident", "severity": "low"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut disabled = scans.clone();
    disabled["enabled"] = false.into();
    let r = api.put("/api/v1/rules/scanner-noise", &rules, disabled).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["position"], 1, "a replaced rule keeps its place");
    // A rule may be called `test`.
    let r = api
        .put(
            "/api/v1/rules/test",
            &rules,
            json!({"match": "false", "action": "drop"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = api.delete("/api/v1/rules/test", &rules).await;
    assert_eq!(r.status, 204);

    // Bad rules are refused with the reason, and not stored.
    for (name, body, says) in [
        (
            "dedup-bad",
            json!({"match": "true", "action": "dedup", "key": "alert.source"}),
            "rule 'dedup-bad': a dedup rule needs a key and a window",
        ),
        (
            "bad-match",
            json!({"match": "alert.source ==", "action": "drop"}),
            "rule 'bad-match': match",
        ),
        (
            "typo",
            json!({"matches": "true", "action": "drop"}),
            "unknown field `matches`",
        ),
        ("no-action", json!({"match": "true"}), "missing field `action`"),
        (
            "other-name",
            json!({"name": "renamed", "match": "true", "action": "drop"}),
            "the body names \"renamed\"",
        ),
        (
            "ghost-playbook",
            json!({"match": "true", "action": "incident", "playbooks": ["nope"]}),
            "no playbook named 'nope'",
        ),
        (
            "Bad Name",
            json!({"match": "true", "action": "drop"}),
            "rule name 'Bad Name'",
        ),
    ] {
        let r = api.put(&format!("/api/v1/rules/{name}"), &rules, body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert!(r.title().contains(says), "{name}: {}", r.body);
    }
    let r = api.put("/api/v1/rules/x?position=0", &rules, scans.clone()).await;
    assert_eq!(r.status, 400);

    let r = api.get("/api/v1/rules", &rules).await;
    assert_eq!(r.status, 200);
    let listed: Vec<(&str, i64, bool)> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spec"]["name"].as_str().unwrap(),
                r["position"].as_i64().unwrap(),
                r["spec"]["enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("scanner-noise", 1, false), ("everything-else", 2, true)]
    );

    // Test a candidate set over the alerts received, changing nothing.
    let r = api
        .http
        .post(format!("{}/api/v1/alerts", api.base))
        .bearer_auth(&sender)
        .body("{\"title\": \"ET SCAN nmap\"}\n{\"title\": \"malware on pc-1\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api
        .post(
            "/api/v1/rules/test",
            &rules,
            json!({"rules": [{"name": "scans", "match": "alert.title.contains(\"SCAN\")", "action": "drop"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["alerts"], 2);
    assert_eq!(
        r.body["rules"][0],
        json!({"name": "scans", "action": "drop", "alerts": 1})
    );
    assert_eq!(r.body["unmatched"], 1);
    assert_eq!(r.body["examples"]["scans"], "ET SCAN nmap");
    let r = api.post("/api/v1/rules/test", &rules, json!({})).await;
    assert_eq!(r.status, 200, "the stored rules: {}", r.body);
    assert_eq!(
        r.body["rules"][1]["alerts"], 2,
        "scanner-noise is disabled: {}",
        r.body
    );
    let r = api
        .post(
            "/api/v1/rules/test",
            &rules,
            json!({"rules": [{"name": "x", "match": "(", "action": "drop"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("rule 'x'"), "{}", r.body);

    // Remove.
    let r = api.delete("/api/v1/rules/scanner-noise", &rules).await;
    assert_eq!(r.status, 204);
    let r = api.delete("/api/v1/rules/scanner-noise", &rules).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.title(), "no rule named 'scanner-noise'");
    let r = api.get("/api/v1/rules", &rules).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["position"], 1);
    drop(server);

    let log = audit(&cli);
    let by_bot = |action: &str, target: &str| audited(&log, action, target, "token:rules-bot");
    assert!(by_bot("rule.set", "rule:scanner-noise"));
    assert!(by_bot("rule.set", "rule:everything-else"));
    assert!(by_bot("rule.remove", "rule:scanner-noise"));
    assert!(by_bot("rule.remove", "rule:test"));
    let sets = log.iter().filter(|e| e["action"] == "rule.set").count();
    assert_eq!(sets, 4, "refused rules are not stored");
    assert!(cli.ok(&["rules", "list"]).contains("everything-else"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indicators_are_read_and_judged_through_the_api() {
    let cli = Cli::new();
    let analyst = token(&cli, "intel-bot", "incidents", None);
    let sensor = token(&cli, "sensor", "intake", None);
    let server = Server::start(&cli);
    let api = Api::new(&server);

    // A CIDR holds a slash: the path takes the rest of the URL as the value.
    let a = api
        .put(
            "/api/v1/indicators/cidr/203.0.113.7/24",
            &analyst,
            json!({"verdict": "malicious", "score": 80, "source": "abuse-feed"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["value"], "203.0.113.0/24", "normalised");
    assert_eq!(a.body["verdict"], "malicious");
    let a = api.get("/api/v1/indicators/cidr/203.0.113.0/24", &analyst).await;
    assert_eq!((a.status, a.body["score"].as_i64()), (200, Some(80)));
    let a = api.get("/api/v1/indicators?verdict=malicious", &analyst).await;
    assert_eq!(a.body["items"].as_array().unwrap().len(), 1);

    // Refusals say what was wrong; nothing is stored.
    let a = api
        .put(
            "/api/v1/indicators/ip/999.1.1.1",
            &analyst,
            json!({"verdict": "malicious"}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert!(a.title().contains("'999.1.1.1' is not"), "{}", a.title());
    let a = api
        .put(
            "/api/v1/indicators/ip/192.0.2.1",
            &analyst,
            json!({"verdict": "evil"}),
        )
        .await;
    assert!(a.title().contains("verdict 'evil'"), "{}", a.title());
    let a = api
        .put(
            "/api/v1/indicators/ip/192.0.2.1",
            &analyst,
            json!({"verdict": "benign", "score": 120}),
        )
        .await;
    assert!(a.title().contains("score 120"), "{}", a.title());
    let a = api
        .put(
            "/api/v1/indicators/ip/192.0.2.1",
            &analyst,
            json!({"verdict": "benign", "colour": 1}),
        )
        .await;
    assert!(a.title().contains("unknown field `colour`"), "{}", a.title());
    let a = api.get("/api/v1/indicators/ip/192.0.2.1", &analyst).await;
    assert_eq!(a.status, 404);
    let a = api.get("/api/v1/indicators?kind=planet", &analyst).await;
    assert!(a.title().contains("'planet' is not a kind"), "{}", a.title());
    // An intake token may not.
    let a = api.get("/api/v1/indicators", &sensor).await;
    assert_eq!(a.status, 403);
    drop(server);
    assert!(audited(
        &audit(&cli),
        "indicator.set",
        "indicator:cidr:203.0.113.0/24",
        "token:intel-bot"
    ));
}

fn role_token(cli: &Cli, name: &str, role: &str) -> String {
    cli.ok(&["token", "create", name, "--role", role])
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_session_calls_the_api_with_its_csrf_token() {
    let cli = Cli::new();
    cli.ok(&["user", "add", "alice", "--role", "analyst", "--role", "soc"]);
    cli.ok(&["user", "add", "audrey", "--role", "auditor"]);
    set_password(&cli, "alice");
    set_password(&cli, "audrey");
    let server = Server::start(&cli);
    let api = Api::new(&server);
    let (cookie, csrf) = sign_in(&api.base, "alice").await;
    let alice = Who::Session {
        cookie: &cookie,
        csrf: Some(&csrf),
    };
    let incident = json!({"title": "Phishing mail", "type": "phishing"}).to_string();

    // The cookie with its CSRF token: the user, on every method.
    let r = api.send_as("GET", "/api/v1/incidents", alice, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["items"], json!([]));
    // The cookie alone authenticates nothing, GET included; nor does another CSRF token.
    let cookie_only = Who::Session {
        cookie: &cookie,
        csrf: None,
    };
    let r = api.send_as("GET", "/api/v1/incidents", cookie_only, None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["type"], "https://osprey.dev/problems/csrf");
    assert!(r.title().contains("`X-CSRF-Token` header"), "{}", r.body);
    let forged = Who::Session {
        cookie: &cookie,
        csrf: Some("not-the-token"),
    };
    let r = api
        .send_as("POST", "/api/v1/incidents", forged, Some(incident.clone()))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["type"], "https://osprey.dev/problems/csrf");
    assert!(r.title().contains("not this session's"), "{}", r.body);
    // A bearer header wins over the cookie: a bad token is refused even with a good session.
    let r = api
        .http
        .get(format!("{}/api/v1/incidents", api.base))
        .bearer_auth("osp_made-up")
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Neither: 401 naming both ways in.
    let r = api.send_as("GET", "/api/v1/incidents", Who::Nobody, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.authenticate.as_deref(), Some("Bearer"));
    assert!(
        r.title().contains("Authorization: Bearer") && r.title().contains("X-CSRF-Token"),
        "{}",
        r.body
    );

    // The analyst opens and changes an incident and completes her team's task, as herself.
    let r = api
        .send_as("POST", "/api/v1/incidents", alice, Some(incident))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/incidents/{id}");
    let r = api
        .send_as(
            "PATCH",
            &path,
            alice,
            Some(json!({"severity": "high", "owner": "alice"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (&r.body["severity"], &r.body["owner"]),
        (&json!("high"), &json!("alice"))
    );
    let task = json!({"title": "Reset the password", "role": "soc", "incident": id});
    let r = api
        .send_as("POST", "/api/v1/tasks", alice, Some(task.to_string()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let task = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .send_as(
            "POST",
            &format!("/api/v1/tasks/{task}/complete"),
            alice,
            Some(json!({"comment": "done from the console"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["completed_by"], "alice");

    // The auditor reads and changes nothing.
    let (a_cookie, a_csrf) = sign_in(&api.base, "audrey").await;
    let audrey = Who::Session {
        cookie: &a_cookie,
        csrf: Some(&a_csrf),
    };
    let r = api.send_as("GET", &path, audrey, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["incident"]["severity"], "high");
    let r = api
        .send_as(
            "PATCH",
            &path,
            audrey,
            Some(json!({"severity": "low"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["type"], "https://osprey.dev/problems/permission-denied");
    assert_eq!(
        r.title(),
        "the roles of user 'audrey' do not allow this (incidents-write)"
    );
    // Her CSRF token is not alice's.
    let mixed = Who::Session {
        cookie: &a_cookie,
        csrf: Some(&csrf),
    };
    let r = api.send_as("GET", &path, mixed, None).await;
    assert_eq!(r.status, 403);

    // A disabled user's session calls nothing.
    cli.ok(&["user", "disable", "alice"]);
    let r = api.send_as("GET", &path, alice, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.title().contains("sign in again"), "{}", r.body);
    drop(server);

    let log = audit(&cli);
    let incident = format!("incident:{id}");
    for (action, target) in [
        ("incident.create", incident.as_str()),
        ("incident.update", incident.as_str()),
        ("task.done", &format!("task:{task}")),
    ] {
        assert!(
            audited(&log, action, target, "user:alice"),
            "no {action} of {target} by user:alice"
        );
    }
    assert!(
        !log.iter()
            .any(|e| e["actor"] == "user:audrey" && e["action"] != "user.login"),
        "the auditor changed nothing"
    );
    assert_eq!(
        log.iter().filter(|e| e["action"] == "incident.create").count(),
        1,
        "refused requests changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_incidents_list_entries_and_the_audit_check_through_the_api() {
    let cli = Cli::new();
    let analyst = role_token(&cli, "analyst-bot", "analyst");
    let auditor = role_token(&cli, "auditor-bot", "auditor");
    cli.ok(&["list", "create", "blocked-ips", "--kind", "block", "--type", "ip"]);
    let server = Server::start(&cli);
    let api = Api::new(&server);

    // A child incident: the path names the parent.
    let r = api
        .post(
            "/api/v1/incidents",
            &analyst,
            json!({"title": "Miner on pc-17", "type": "malware"}),
        )
        .await;
    let parent = r.body["id"].as_str().unwrap().to_owned();
    let r = api
        .post(
            &format!("/api/v1/incidents/{parent}/children"),
            &analyst,
            json!({"title": "Re-image pc-17", "type": "containment", "owner": "bob"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let child = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["parent_id"], parent.as_str());
    assert_eq!(r.body["owner"], "bob");
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/api/v1/incidents/{child}").as_str())
    );
    let r = api.get(&format!("/api/v1/incidents/{parent}"), &auditor).await;
    assert_eq!(r.body["children"][0]["id"], child.as_str());
    let r = api
        .post(
            "/api/v1/incidents/i-nope/children",
            &analyst,
            json!({"title": "x", "type": "containment"}),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.title(), "no incident 'i-nope'");
    let r = api
        .post(
            &format!("/api/v1/incidents/{parent}/children"),
            &analyst,
            json!({"title": "x", "type": "containment", "parent": "i-other"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("unknown field `parent`"), "{}", r.body);

    // List entries: added in canonical form, updated, refused with the reason, removed.
    let entries = "/api/v1/lists/blocked-ips/entries";
    let r = api
        .post(
            entries,
            &analyst,
            json!({"value": "198.51.100.7/24", "reason": "scanning us", "ttl": "7d"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["value"], "198.51.100.0/24");
    assert_eq!(r.body["new"], true);
    let expires = r.body["expires_at"].as_i64().unwrap();
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        (expires - osprey::store::now_ms() - week).abs() < 60_000,
        "{expires}"
    );
    let r = api
        .post(
            entries,
            &analyst,
            json!({"value": "198.51.100.0/24", "reason": "still scanning"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["new"].clone(), r.body["expires_at"].clone()),
        (json!(false), Value::Null)
    );
    let r = api
        .post(entries, &analyst, json!({"value": "203.0.113.9", "reason": "c2"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for (body, says) in [
        (
            json!({"value": "not-an-ip", "reason": "x"}),
            "'not-an-ip' is not a valid ip entry",
        ),
        (
            json!({"value": "192.0.2.1", "reason": "x", "ttl": "1d", "expires_at": 1}),
            "ttl or expires_at, not both",
        ),
        (
            json!({"value": "192.0.2.1", "reason": "x", "ttl": "soon"}),
            "entry: ttl",
        ),
        (json!({"value": "192.0.2.1"}), "missing field `reason`"),
    ] {
        let r = api.post(entries, &analyst, body).await;
        assert_eq!(r.status, 400, "{says}: {}", r.body);
        assert!(r.title().contains(says), "{says}: {}", r.body);
    }
    let r = api
        .post(
            "/api/v1/lists/nope/entries",
            &analyst,
            json!({"value": "192.0.2.1", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = api.delete(&format!("{entries}/198.51.100.0/24"), &analyst).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = api.delete(&format!("{entries}/198.51.100.0/24"), &analyst).await;
    assert_eq!(r.status, 404);
    assert!(r.title().contains("is not on list 'blocked-ips'"), "{}", r.body);
    let r = api.delete(&format!("{entries}/203.0.113.9"), &auditor).await;
    assert_eq!(r.status, 403, "the auditor changes nothing");
    let r = api.get(entries, &auditor).await;
    let values: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["203.0.113.9"]);
    assert_eq!(r.body["items"][0]["added_by"], "token:analyst-bot");

    // The audit log's chain, checked: intact, and only readable with audit-read.
    let r = api.get("/api/v1/audit/verify", &auditor).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["intact"], true);
    assert!(r.body["entries"].as_i64().unwrap() >= 8, "{}", r.body);
    assert_eq!(r.body["head"].as_str().unwrap().len(), 64);
    let r = api.get("/api/v1/audit/verify", &analyst).await;
    assert_eq!(r.status, 403);
    // Newest first, and the audit entries of the changes above.
    let r = api.get("/api/v1/audit?sort=-seq&limit=2", &auditor).await;
    let seqs: Vec<i64> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.len() == 2 && seqs[0] > seqs[1], "{seqs:?}");
    drop(server);

    let log = audit(&cli);
    for (action, target) in [
        ("incident.create", format!("incident:{child}")),
        ("list.add", "list:blocked-ips".to_owned()),
        ("list.update", "list:blocked-ips".to_owned()),
        ("list.remove", "list:blocked-ips".to_owned()),
    ] {
        assert!(
            audited(&log, action, &target, "token:analyst-bot"),
            "no {action} of {target}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbooks_runs_and_plugin_grants_through_the_api() {
    let cli = Cli::new();
    cli.ok(&["plugin", "install", dist().join("test-echo").to_str().unwrap()]);
    write_playbook(
        &cli.playbooks_dir(),
        "napper",
        "minutes_saved = 15\n[inputs.hours]\ntype = \"integer\"\ndefault = 1\n\
         [[triggers]]\nkind = \"sla\"\ntimers = [\"resolve\"]\n",
        "let t = now(); sleep(\"1h\"); \"rested\"",
    );
    let engineer = role_token(&cli, "engineer-bot", "engineer");
    let operator = role_token(&cli, "operator-bot", "operator");
    let auditor = role_token(&cli, "auditor-bot", "auditor");
    let server = Server::start(&cli);
    let api = Api::new(&server);

    // Playbooks, with their metadata; one with its script.
    let r = api.get("/api/v1/playbooks", &auditor).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["next_cursor"], Value::Null);
    let napper = &r.body["items"][0];
    assert_eq!(napper["name"], "napper");
    assert_eq!(napper["minutes_saved"], 15);
    assert_eq!(napper["inputs"]["hours"]["type"], "integer");
    assert_eq!(napper["triggers"][0]["kind"], "sla");
    assert_eq!(napper["triggers"][0]["summary"], "sla resolve");
    assert_eq!(napper["revision"].as_str().unwrap().len(), 64);
    let r = api.get("/api/v1/playbooks/napper", &auditor).await;
    assert_eq!(r.body["source"], "let t = now(); sleep(\"1h\"); \"rested\"");
    assert_eq!(r.body["name"], "napper");
    let r = api.get("/api/v1/playbooks/nope", &auditor).await;
    assert_eq!(r.status, 404);
    assert!(r.title().contains("no playbook named 'nope'"), "{}", r.body);

    // A run started, waiting, restarted from its first step, then cancelled.
    let r = api
        .post("/api/v1/playbooks/napper/runs", &auditor, json!({}))
        .await;
    assert_eq!(r.status, 403);
    let r = api
        .post(
            "/api/v1/playbooks/napper/runs",
            &engineer,
            json!({"input": {"hours": 2}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.location.as_deref(), Some(format!("/api/v1/runs/{id}").as_str()));
    assert_eq!(r.body["input"], json!({"hours": 2}));
    assert_eq!(r.body["origin"], "manual by token:engineer-bot");
    let run = format!("/api/v1/runs/{id}");
    let steps = eventually(20, "the run to wait", async || {
        let r = api.get(&run, &auditor).await;
        (r.body["run"]["status"] == "waiting").then(|| r.body["steps"].as_array().unwrap().len())
    })
    .await;
    assert!(steps >= 1);
    let r = api
        .post(
            &format!("{run}/restart"),
            &engineer,
            json!({"from_step": steps + 2}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.title().contains(&format!("between 1 and {}", steps + 1)),
        "{}",
        r.body
    );
    let r = api
        .post(&format!("{run}/restart"), &engineer, json!({"from_step": 1}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cut"], steps);
    eventually(20, "the restarted run to wait again", async || {
        let r = api.get(&run, &auditor).await;
        (r.body["run"]["status"] == "waiting" && r.body["steps"].as_array().unwrap().len() == steps)
            .then_some(())
    })
    .await;
    let r = api.post(&format!("{run}/cancel"), &engineer, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let r = api.post(&format!("{run}/cancel"), &engineer, json!({})).await;
    assert_eq!(r.status, 409);
    assert!(r.title().contains("already ended"), "{}", r.body);
    let r = api.post("/api/v1/runs/r-nope/cancel", &engineer, json!({})).await;
    assert_eq!(r.status, 404);
    let r = api
        .post(
            "/api/v1/playbooks/napper/runs",
            &engineer,
            json!({"input": {"x": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.title().contains("no input 'x'"), "{}", r.body);
    let r = api
        .post("/api/v1/playbooks/nope/runs", &engineer, json!({}))
        .await;
    assert_eq!(r.status, 404);

    // A plugin: what it asks for beside what it has, secrets by name only.
    let out = cli.run_with_stdin(&["secret", "set", "test-echo", "greeting"], "very-secret-value");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r = api.get("/api/v1/plugins/test-echo", &auditor).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["granted"], Value::Null);
    assert_eq!(r.body["requested"]["secrets"], json!(["greeting"]));
    assert!(
        r.body["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "echo" && a["input_schema"].is_object()),
        "{}",
        r.body
    );
    assert_eq!(r.body["secrets"][0]["name"], "greeting");
    assert_eq!(r.body["secrets"][0]["requested"], true);
    assert_eq!(r.body["secrets"][0]["granted"], false);
    assert!(r.body["secrets"][0]["set_at"].is_i64(), "{}", r.body);
    assert!(!r.body.to_string().contains("very-secret-value"), "never a value");
    assert_eq!(r.body["history"][0]["action"], "secret.set", "newest first");
    assert!(
        r.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "plugin.install")
    );
    let r = api.get("/api/v1/plugins/nope", &auditor).await;
    assert_eq!(r.status, 404);

    // Its grant replaced: refused with the reason, then set; the answer shows it.
    let grant = "/api/v1/plugins/test-echo/grant";
    let r = api.put(grant, &engineer, json!({})).await;
    assert_eq!(r.status, 403, "engineers do not grant");
    for (body, says) in [
        (json!({"secrets": ["bad name!"]}), "secret name 'bad name!'"),
        (json!({"colour": 1}), "unknown field `colour`"),
        (json!({"http": ["ftp://x"]}), "grant:"),
        (
            json!({"limits": {"memory_mib": 1_000_000}}),
            "outside what this server allows",
        ),
    ] {
        let r = api.put(grant, &operator, body).await;
        assert_eq!(r.status, 400, "{says}: {}", r.body);
        assert!(r.title().contains(says), "{says}: {}", r.body);
    }
    let r = api
        .put(
            grant,
            &operator,
            json!({"secrets": ["greeting"], "kv_quota_bytes": 4096, "limits": {"timeout": "5s"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["granted"]["secrets"], json!(["greeting"]));
    assert_eq!(r.body["missing"], json!([]));
    assert_eq!(r.body["limits"]["timeout"], "5s");
    assert_eq!(r.body["secrets"][0]["granted"], true);
    let r = api.put("/api/v1/plugins/nope/grant", &operator, json!({})).await;
    assert_eq!(r.status, 404);
    eventually(20, "the new grant to be in force", async || {
        let r = api.get("/api/v1/plugins/test-echo", &auditor).await;
        (r.body["granted"]["kv_quota_bytes"] == 4096).then_some(())
    })
    .await;
    drop(server);

    let log = audit(&cli);
    assert!(audited(
        &log,
        "run.restart",
        &format!("run:{id}"),
        "token:engineer-bot"
    ));
    assert!(audited(
        &log,
        "run.cancel",
        &format!("run:{id}"),
        "token:engineer-bot"
    ));
    let grants: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "plugin.grant" && e["target"] == "plugin:test-echo")
        .collect();
    assert_eq!(grants.len(), 1, "refused grants are not stored: {grants:?}");
    assert_eq!(grants[0]["actor"], "token:operator-bot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_answered_through_the_api_by_its_addressee_only() {
    let cli = Cli::new();
    cli.ok(&[
        "user",
        "add",
        "alice",
        "--email",
        "alice@example.com",
        "--role",
        "analyst",
    ]);
    cli.ok(&[
        "user",
        "add",
        "bob",
        "--email",
        "bob@example.com",
        "--role",
        "analyst",
    ]);
    let alice = cli.ok(&[
        "token",
        "create",
        "alice-api",
        "--role",
        "analyst",
        "--user",
        "alice",
    ]);
    let bob = cli.ok(&["token", "create", "bob-api", "--role", "analyst", "--user", "bob"]);
    let machine = cli.ok(&["token", "create", "bot", "--role", "analyst"]);
    let (alice, bob, machine) = (alice.trim(), bob.trim(), machine.trim());
    write_playbook(
        &cli.playbooks_dir(),
        "contain",
        "",
        r#"let a = ask(#{ user: "alice", title: "Block 203.0.113.7?", options: ["block", "watch"] });
           #{ answer: a.answer, by: a.by, comment: a.comment }"#,
    );
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let run = cli.ok(&["playbook", "run", "contain", "--detach"]);
    let run = run.split_whitespace().nth(1).unwrap().to_owned();
    let http = http_client();
    let list = |token: &str| {
        http.get(format!("{base}/api/v1/questions"))
            .bearer_auth(token.to_owned())
            .send()
    };
    let id = eventually(30, "alice's question", async || {
        let page: Value = serde_json::from_str(&list(alice).await.unwrap().text().await.unwrap()).unwrap();
        page["items"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    let bobs: Value = serde_json::from_str(&list(bob).await.unwrap().text().await.unwrap()).unwrap();
    assert_eq!(bobs["items"], json!([]), "bob has no questions");
    assert_eq!(
        list(machine).await.unwrap().status(),
        403,
        "a token for nobody has no inbox"
    );

    let answer = |token: &str, body: Value| {
        http.post(format!("{base}/api/v1/questions/{id}/answer"))
            .bearer_auth(token.to_owned())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = answer(alice, json!({"value": "nuke"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text().await.unwrap().contains("option"),
        "the refusal names the field"
    );
    let r = answer(bob, json!({"value": "block"})).await.unwrap();
    assert_eq!(r.status(), 403, "bob is not the addressee");
    let r = answer(alice, json!({"value": "block", "comment": "seen twice"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let r = answer(alice, json!({"value": "watch"})).await.unwrap();
    assert_eq!(r.status(), 409, "answered once");

    let done = eventually(30, "the run completed with the answer", async || {
        let v: Value = serde_json::from_str(&cli.ok(&["run", "show", &run, "--json"])).ok()?;
        (v["run"]["status"] == "completed").then_some(v)
    })
    .await;
    assert_eq!(done["run"]["output"]["answer"], "block");
    assert_eq!(done["run"]["output"]["by"], "user:alice");
    assert_eq!(done["run"]["output"]["comment"], "seen twice");
}
