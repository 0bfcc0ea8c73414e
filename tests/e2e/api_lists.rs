//! Paged lists over HTTP: alerts, audit entries, incidents, tasks and indicators read a page
//! at a time with the cursor each page gives, every item once; bad paging parameters refused
//! with 400 naming them.

use crate::support::{Cli, Server, http_client};
use serde_json::Value;
use std::collections::BTreeSet;

async fn get(http: &reqwest::Client, url: &str, token: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Every item of a list, following `next_cursor`; the number of pages read.
async fn all(http: &reqwest::Client, base: &str, path: &str, token: &str) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            None => format!("{base}{path}"),
            Some(c) => format!("{base}{path}{sep}cursor={c}"),
        };
        let (status, body) = get(http, &url, token).await;
        assert_eq!(status, 200, "{url}: {body}");
        pages += 1;
        items.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    (items, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_audit_entries_page_over_http() {
    let cli = Cli::new();
    let sender = cli
        .ok(&["token", "create", "sender", "--scope", "intake"])
        .trim()
        .to_owned();
    let auditor = cli
        .ok(&["token", "create", "reader", "--role", "auditor"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();

    let body: String = (0..12)
        .map(|i| format!("{{\"source\": \"s{}\", \"title\": \"alert {i}\"}}\n", i % 2))
        .collect();
    let r = http
        .post(format!("{base}/api/v1/alerts"))
        .bearer_auth(&sender)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Five a page: three pages, each alert once, newest first.
    let (alerts, pages) = all(&http, &base, "/api/v1/alerts?limit=5", &auditor).await;
    assert_eq!(pages, 3);
    let ids: Vec<&str> = alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 12);
    let times: Vec<i64> = alerts
        .iter()
        .map(|a| a["received_at"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    // By source, ascending, filtered to one source.
    let (s1, _) = all(
        &http,
        &base,
        "/api/v1/alerts?limit=2&sort=source&source=s1",
        &auditor,
    )
    .await;
    assert_eq!(s1.len(), 6);
    assert!(s1.iter().all(|a| a["source"] == "s1"));

    // Refusals name the parameter.
    for (query, word) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=nonsense", "cursor"),
        ("sort=title", "received_at, source"),
        ("disposition=eaten", "disposition"),
    ] {
        let (status, body) = get(&http, &format!("{base}/api/v1/alerts?{query}"), &auditor).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["title"].as_str().unwrap().contains(word), "{query}: {body}");
    }
    // A cursor is bound to its sort.
    let (_, first) = get(&http, &format!("{base}/api/v1/alerts?limit=1"), &auditor).await;
    let c = first["next_cursor"].as_str().unwrap();
    let (status, _) = get(
        &http,
        &format!("{base}/api/v1/alerts?sort=source&cursor={c}"),
        &auditor,
    )
    .await;
    assert_eq!(status, 400);

    // The audit log: oldest first, seq without gaps, two a page.
    let (entries, pages) = all(&http, &base, "/api/v1/audit?limit=2", &auditor).await;
    assert!(entries.len() >= 2, "{entries:?}");
    assert_eq!(pages, entries.len().div_ceil(2));
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let (status, body) = get(
        &http,
        &format!("{base}/api/v1/audit?after_seq=1&limit=500"),
        &auditor,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["items"].as_array().unwrap().len(), seqs.len() - 1);
    let (tokens, _) = all(&http, &base, "/api/v1/audit?action=token.&limit=1", &auditor).await;
    assert!(!tokens.is_empty());
    assert!(
        tokens
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("token."))
    );

    // Runs and lists answer in the same shape.
    let (status, body) = get(&http, &format!("{base}/api/v1/runs"), &auditor).await;
    assert_eq!(
        (status, body["next_cursor"].clone()),
        (200, Value::Null),
        "{body}"
    );
    let (status, body) = get(&http, &format!("{base}/api/v1/lists"), &auditor).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = get(&http, &format!("{base}/api/v1/lists/none-such/entries"), &auditor).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_tasks_and_indicators_page_over_http() {
    let cli = Cli::new();
    let analyst = cli
        .ok(&["token", "create", "analyst", "--role", "analyst"])
        .trim()
        .to_owned();
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = http_client();
    let post = async |path: &str, body: Value| {
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(&analyst)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()
    };
    let put = async |path: &str, body: Value| {
        let r = http
            .put(format!("{base}{path}"))
            .bearer_auth(&analyst)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    };

    // Seven incidents (two high), each with a task; a verdict on nine indicators.
    let mut incidents = Vec::new();
    for i in 0..7 {
        let severity = if i % 3 == 0 { "high" } else { "low" };
        let title = format!("incident {}", (b'g' - i as u8) as char);
        let r = post(
            "/api/v1/incidents",
            serde_json::json!({"title": title, "type": "phishing", "severity": severity}),
        )
        .await;
        let id = r["id"].as_str().unwrap().to_owned();
        post(
            "/api/v1/tasks",
            serde_json::json!({"title": format!("task {i}"), "role": "soc", "incident": id}),
        )
        .await;
        incidents.push(id);
    }
    for i in 0..9 {
        let verdict = if i < 4 { "malicious" } else { "benign" };
        put(
            &format!("/api/v1/indicators/ip/192.0.2.{i}"),
            serde_json::json!({"verdict": verdict}),
        )
        .await;
    }

    // Incidents: three a page, newest first, each once; by title; filtered.
    let (items, pages) = all(&http, &base, "/api/v1/incidents?limit=3", &analyst).await;
    assert_eq!(pages, 3);
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut newest_first: Vec<&str> = incidents.iter().map(String::as_str).collect();
    newest_first.reverse();
    assert_eq!(
        ids, newest_first,
        "ids are time-ordered, so newest first is by id"
    );
    let (items, _) = all(&http, &base, "/api/v1/incidents?limit=2&sort=title", &analyst).await;
    let titles: Vec<&str> = items.iter().map(|i| i["title"].as_str().unwrap()).collect();
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!((titles.len(), &titles), (7, &sorted));
    let (items, _) = all(&http, &base, "/api/v1/incidents?limit=1&severity=high", &analyst).await;
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["severity"] == "high"));

    // Tasks: of one incident, and all of them two a page, oldest first.
    let (items, _) = all(
        &http,
        &base,
        &format!("/api/v1/tasks?incident={}", incidents[2]),
        &analyst,
    )
    .await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["title"], "task 2");
    let (items, pages) = all(&http, &base, "/api/v1/tasks?limit=2&sort=created_at", &analyst).await;
    assert_eq!(pages, 4);
    let titles: Vec<&str> = items.iter().map(|t| t["title"].as_str().unwrap()).collect();
    assert_eq!(titles, (0..7).map(|i| format!("task {i}")).collect::<Vec<_>>());

    // Indicators: by value, two a page; by verdict.
    let (items, pages) = all(&http, &base, "/api/v1/indicators?limit=2&sort=value", &analyst).await;
    assert_eq!(pages, 5);
    let values: Vec<&str> = items.iter().map(|i| i["value"].as_str().unwrap()).collect();
    assert_eq!(values, (0..9).map(|i| format!("192.0.2.{i}")).collect::<Vec<_>>());
    let (items, _) = all(
        &http,
        &base,
        "/api/v1/indicators?limit=3&verdict=malicious&sort=-last_seen",
        &analyst,
    )
    .await;
    assert_eq!(items.len(), 4);
    assert!(items.iter().all(|i| i["verdict"] == "malicious"));

    // Refusals name what was wrong; a cursor belongs to its list's sort.
    for (path, word) in [
        ("/api/v1/incidents?limit=501", "limit"),
        (
            "/api/v1/incidents?sort=severity",
            "created_at, updated_at, status, title",
        ),
        ("/api/v1/incidents?severity=dire", "'dire' is not a severity"),
        ("/api/v1/tasks?status=later", "'later' is not a task status"),
        ("/api/v1/tasks?cursor=nonsense", "cursor"),
        ("/api/v1/indicators?sort=score", "last_seen, first_seen"),
        ("/api/v1/indicators?kind=planet", "'planet' is not a kind"),
    ] {
        let (status, body) = get(&http, &format!("{base}{path}"), &analyst).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body["title"].as_str().unwrap().contains(word), "{path}: {body}");
    }
    let (_, first) = get(&http, &format!("{base}/api/v1/incidents?limit=1"), &analyst).await;
    let c = first["next_cursor"].as_str().unwrap();
    let (status, _) = get(
        &http,
        &format!("{base}/api/v1/incidents?sort=title&cursor={c}"),
        &analyst,
    )
    .await;
    assert_eq!(status, 400);
}
