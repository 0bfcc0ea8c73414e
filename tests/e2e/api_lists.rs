//! Paged lists over HTTP: alerts and audit entries read a page at a time with the cursor
//! each page gives, every item once; bad paging parameters refused with 400 naming them.

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
