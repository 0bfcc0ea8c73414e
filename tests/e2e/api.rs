//! The REST API through the real server: incidents and tasks with tokens that act for users
//! (only the right user completes a task, once), refusals with the reason (unknown fields,
//! custom fields a type does not declare, bad rules, no token, a token without the scope,
//! bodies over the limit), rules set, listed, tested and removed, and every change in the
//! audit log under the token or the user it acts for.

use crate::support::{Cli, Server, http_client, text};
use serde_json::{Value, json};

fn token(cli: &Cli, name: &str, scope: &str, user: Option<&str>) -> String {
    let mut args = vec!["token", "create", name, "--scope", scope];
    if let Some(user) = user {
        args.extend(["--user", user]);
    }
    cli.ok(&args).trim().to_owned()
}

/// One answer: status, content type, body as JSON (`null` if empty), Location.
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
    location: Option<String>,
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

impl Api {
    fn new(server: &Server) -> Api {
        Api {
            http: http_client(),
            base: format!("http://{}", server.addr),
        }
    }

    async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<String>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let header = |name: &str| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let content_type = header("content-type").unwrap_or_default();
        let location = header("location");
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
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["id"], task.as_str());
    let r = api.get("/api/v1/tasks?for_user=bob", &bob).await;
    assert!(r.body.as_array().unwrap().is_empty(), "{}", r.body);

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
    assert_eq!(r.body.as_array().unwrap().len(), 3);
    let r = api.get("/api/v1/incidents?status=new&limit=1", &bob).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["status"], "new");
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
    assert_eq!(a.body.as_array().unwrap().len(), 1);

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
