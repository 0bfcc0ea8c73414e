//! Alert intake through the real server: tokens, formats, each item's fate, the limits
//! (body size, alerts per request, requests in flight), durability of a 2xx, and syslog.

use crate::support::{Cli, Server, eventually, http_client};
use serde_json::{Value, json};

fn token(cli: &Cli, name: &str) -> String {
    cli.ok(&["token", "create", name, "--scope", "intake"])
        .trim()
        .to_owned()
}

fn stored(cli: &Cli) -> Vec<Value> {
    cli.ok(&["alert", "list", "-n", "1000", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn log_field(server: &Server, message: &str, field: &str) -> Option<String> {
    server.logs.lock().unwrap().iter().find_map(|l| {
        let v: Value = serde_json::from_str(l).ok()?;
        (v["fields"]["message"] == message).then(|| v["fields"][field].as_str().map(str::to_owned))?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_authenticated_parsed_reported_item_by_item_and_durable() {
    let cli = Cli::new();
    let fw = token(&cli, "firewall");
    let server = Server::start(&cli);
    let url = format!("http://{}/api/v1/alerts", server.addr);
    let http = http_client();

    // No token, a wrong one: 401 and nothing stored.
    let r = http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(&url)
        .bearer_auth("osp_nope")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // One object.
    let r = http
        .post(&url)
        .bearer_auth(&fw)
        .body(
            json!({"source": "fw-eu", "title": "port scan from 203.0.113.9", "severity": "high"}).to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(1), Some(0))
    );

    // NDJSON with a bad line 3: the others are stored, each line's fate is reported.
    let ndjson = "{\"title\": \"a\", \"url\": \"https://evil.example.com/x?y=1\"}\n\n{\"title\": \"b\"\n{\"title\": \"c\", \"sha\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}\n";
    let r = http
        .post(&url)
        .bearer_auth(&fw)
        .body(ndjson)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(1))
    );
    let items = answer["items"].as_array().unwrap();
    assert_eq!(items[0]["at"], "line");
    assert_eq!(items[0]["n"], 1);
    assert!(items[0]["id"].is_string());
    assert_eq!(items[1]["n"], 3);
    assert!(
        items[1]["error"].as_str().unwrap().contains("invalid JSON"),
        "{answer}"
    );
    assert_eq!(items[2]["n"], 4);

    // An array with a bad element.
    let r = http
        .post(&url)
        .bearer_auth(&fw)
        .body(json!([{"title": "d"}, 42, {"title": "e", "severity": "apocalyptic"}]).to_string())
        .send()
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(answer["accepted"], 1);
    assert_eq!(answer["items"][1]["at"], "item");
    assert!(
        answer["items"][1]["error"]
            .as_str()
            .unwrap()
            .contains("expected a JSON object")
    );
    assert!(
        answer["items"][2]["error"]
            .as_str()
            .unwrap()
            .contains("apocalyptic")
    );

    // Nothing good: 400 naming the line.
    let r = http
        .post(&url)
        .bearer_auth(&fw)
        .body("{\"severity\": \"bogus\"}\n\n{\"title\": \"y\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert!(problem["title"].as_str().unwrap().contains("bogus"), "{problem}");
    assert_eq!(problem["items"][0]["n"], 1);
    assert_eq!(problem["items"][1]["n"], 3);
    assert!(
        problem["items"][1]["error"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"),
        "{problem}"
    );
    let r = http.post(&url).bearer_auth(&fw).body("").send().await.unwrap();
    assert_eq!(r.status(), 400);

    // PassiveDNS lines, as gamelinux/passivedns writes them.
    let pdns = "1322849924.408856||10.1.1.5||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1\n";
    let r = http
        .post(format!("{url}?format=passivedns"))
        .bearer_auth(&fw)
        .body(pdns)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{url}?format=yaml"))
        .bearer_auth(&fw)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("passivedns"));

    // A 2xx means committed: kill -9 at once, and every accepted alert is there.
    server.kill_9();
    let alerts = stored(&cli);
    assert_eq!(alerts.len(), 5, "{alerts:#?}");
    let dns = alerts.iter().find(|a| a["source"] == "passivedns").unwrap();
    assert_eq!(dns["observables"]["domains"], json!(["www.netflix.com"]));
    assert_eq!(
        dns["observables"]["ips"],
        json!(["10.1.1.5", "52.2.3.4", "8.8.8.8"])
    );
    assert_eq!(dns["via"], "token:firewall");
    let a = alerts.iter().find(|a| a["title"] == "a").unwrap();
    assert_eq!(a["observables"]["domains"], json!(["evil.example.com"]));
    let c = alerts.iter().find(|a| a["title"] == "c").unwrap();
    assert_eq!(c["observables"]["sha256"].as_array().unwrap().len(), 1);
    let high = alerts.iter().find(|a| a["source"] == "fw-eu").unwrap();
    assert_eq!(high["severity"], "high");

    // A revoked token stops working at once.
    cli.ok(&["token", "revoke", "firewall"]);
    let server = Server::start(&cli);
    let r = http
        .post(format!("http://{}/api/v1/alerts", server.addr))
        .bearer_auth(&fw)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let audit = cli.ok(&["audit", "show", "--action", "token."]);
    assert!(
        audit.contains("token.create") && audit.contains("token.revoke"),
        "{audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413_and_503_and_store_nothing_of_the_refused() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[intake]\nmax_body_bytes = 2048\nmax_alerts_per_request = 3\nmax_in_flight = 1\n",
    )
    .unwrap();
    let t = token(&cli, "sensor");
    let server = Server::start(&cli);
    let url = format!("http://{}/api/v1/alerts", server.addr);
    let http = http_client();

    let big = format!("{{\"title\": \"{}\"}}", "x".repeat(3000));
    let r = http.post(&url).bearer_auth(&t).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("max_body_bytes"));

    let four = "{\"title\": \"1\"}\n{\"title\": \"2\"}\n{\"title\": \"3\"}\n{\"title\": \"4\"}\n";
    let r = http.post(&url).bearer_auth(&t).body(four).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("max_alerts_per_request"));

    // One request in flight (its body still coming): the next is told to come back.
    // The slow request is written by hand on a raw connection: its head and half its body,
    // so the server holds it open while another arrives. If that other one happened to be in
    // flight when the slow one came in, the slow one is the one refused: then start over.
    let body = b"{\"title\": \"slow one\"}";
    let mut tries = 0;
    let (mut slow, refused, refused_title) = loop {
        tries += 1;
        assert!(
            tries <= 20,
            "never saw a request refused while another was in flight"
        );
        let mut slow = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        let head = format!(
            "POST /api/v1/alerts HTTP/1.1\r\nhost: osprey\r\nauthorization: Bearer {t}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut slow, head.as_bytes())
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut slow, &body[..10])
            .await
            .unwrap();
        let title = format!("eager {tries}");
        let r = http
            .post(&url)
            .bearer_auth(&t)
            .body(json!({ "title": title }).to_string())
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            break (slow, r, title);
        }
        // The slow one was refused, or had not come in yet: drop it (its half body is never
        // stored) and try again.
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    tokio::io::AsyncWriteExt::write_all(&mut slow, &body[10..])
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut slow, &mut answer)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Now there is room again.
    let r = http
        .post(&url)
        .bearer_auth(&t)
        .body("{\"title\": \"later\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    drop(server);
    let titles: Vec<String> = stored(&cli)
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        titles.contains(&"slow one".to_owned()) && titles.contains(&"later".to_owned()),
        "{titles:?}"
    );
    assert!(
        !titles.iter().any(|t| *t == refused_title || t == "1"),
        "{titles:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_udp_and_tcp_becomes_alerts() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[intake]\nsyslog_udp = \"127.0.0.1:0\"\nsyslog_tcp = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let server = Server::start(&cli);
    let udp_addr = eventually(10, "the UDP listener", async || {
        log_field(&server, "syslog listener on UDP", "addr")
    })
    .await;
    let tcp_addr = eventually(10, "the TCP listener", async || {
        log_field(&server, "syslog listener on TCP", "addr")
    })
    .await;

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(
            b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick from 198.51.100.7",
            &udp_addr,
        )
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(&tcp_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"<165>1 2003-10-11T22:14:15.003Z host.example.com evntslog - ID47 - login from 192.0.2.1\nnot syslog\n<14>1 2003-10-11T22:14:16Z host.example.com app - - - second\n",
    )
    .await
    .unwrap();
    drop(tcp);
    let alerts = eventually(10, "three syslog alerts", async || {
        let a = stored(&cli);
        (a.len() >= 3).then_some(a)
    })
    .await;
    assert_eq!(
        alerts.len(),
        3,
        "the line that is not syslog is skipped: {alerts:#?}"
    );
    let udp = alerts.iter().find(|a| a["via"] == "syslog-udp").unwrap();
    assert_eq!(udp["severity"], "critical");
    assert_eq!(udp["observables"]["ips"], json!(["198.51.100.7"]));
    assert_eq!(alerts.iter().filter(|a| a["via"] == "syslog-tcp").count(), 2);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_that_got_a_2xx_survives_kill_9_during_an_ingest_load() {
    let cli = Cli::new();
    let t = token(&cli, "loader");
    let server = Server::start(&cli);
    let url = format!("http://{}/api/v1/alerts", server.addr);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    // Eight senders post batches of 50 NDJSON alerts as fast as they are answered.
    let senders: Vec<_> = (0..8)
        .map(|s| {
            let (url, t, acknowledged) = (url.clone(), t.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let http = http_client();
                for batch in 0.. {
                    let body: String = (0..50)
                        .map(|i| {
                            format!("{{\"title\": \"s{s} b{batch} i{i}\", \"src\": \"10.0.{s}.{i}\"}}\n")
                        })
                        .collect();
                    let Ok(r) = http.post(&url).bearer_auth(&t).body(body).send().await else {
                        return;
                    };
                    if r.status() != 200 {
                        continue;
                    }
                    let Ok(text) = r.text().await else { return };
                    let answer: Value = serde_json::from_str(&text).unwrap();
                    let ids = answer["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["id"].as_str().unwrap().to_owned());
                    acknowledged.lock().unwrap().extend(ids);
                }
            })
        })
        .collect();
    // Let the load run, then crash the server in the middle of it.
    eventually(30, "a few thousand acknowledged alerts", async || {
        (acknowledged.lock().unwrap().len() >= 2000).then_some(())
    })
    .await;
    server.kill_9();
    for s in senders {
        let _ = s.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored: std::collections::HashSet<String> = cli
        .ok(&["alert", "list", "-n", "1000000", "--json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged alerts were lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(stored.len() >= acknowledged.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tiny_items_is_refused_while_parsing_in_bounded_memory() {
    let cli = Cli::new();
    let t = token(&cli, "flood");
    let server = Server::start(&cli);
    let url = format!("http://{}/api/v1/alerts", server.addr);
    let http = http_client();
    // 3.4 million empty objects in 10 MB: once 1.5 GB of parsed values.
    let array = format!("[{}]", vec!["{}"; 3_400_000].join(","));
    let ndjson = "{}\n".repeat(3_400_000);
    let before = server.peak_memory();
    for body in [array, ndjson] {
        let r = http.post(&url).bearer_auth(&t).body(body).send().await.unwrap();
        assert_eq!(r.status(), 413);
        let text = r.text().await.unwrap();
        assert!(text.contains("more than 10000 alerts in one request"), "{text}");
    }
    let grown = server.peak_memory().saturating_sub(before);
    assert!(grown < 200 << 20, "the server grew by {} MiB", grown >> 20);
    assert!(stored(&cli).is_empty());
    server.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_that_is_not_utf8_or_an_alert_nested_too_deep_is_refused_alone() {
    let cli = Cli::new();
    let t = token(&cli, "sensor");
    let server = Server::start(&cli);
    let url = format!("http://{}/api/v1/alerts", server.addr);
    let deep = format!(
        "{{\"title\": \"deep\", \"x\": {}1{}}}",
        "[".repeat(126),
        "]".repeat(126)
    );
    let mut body = b"{\"title\": \"first\"}\n{\"title\": \"caf\xe9\"}\n".to_vec();
    body.extend_from_slice(deep.as_bytes());
    body.extend_from_slice(b"\n{\"title\": \"last\"}\n");
    let r = http_client()
        .post(&url)
        .bearer_auth(&t)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(
        (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
        (Some(2), Some(2)),
        "{answer}"
    );
    let items = answer["items"].as_array().unwrap();
    assert!(
        items[1]["error"].as_str().unwrap().contains("not valid UTF-8"),
        "{answer}"
    );
    assert!(
        items[2]["error"]
            .as_str()
            .unwrap()
            .contains("nested more than 64 levels"),
        "{answer}"
    );
    let titles: Vec<String> = stored(&cli)
        .iter()
        .map(|a| a["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(titles.contains(&"first".to_owned()) && titles.contains(&"last".to_owned()));
    // What was accepted reads back everywhere.
    cli.ok(&["alert", "list"]);
}
