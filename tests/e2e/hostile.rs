//! Hostile plugins against the real runtime: each attack is stopped or denied with the right
//! typed error, nothing reaches a server it should not, and a well-behaved plugin called
//! right after still works.

use crate::support::fake_http::FakeHttp;
use crate::support::{TestHost, eventually};
use osprey::plugin::ErrorKind;
use osprey::store::audit::Actor;
use serde_json::json;
use std::time::{Duration, Instant};

async fn host() -> TestHost {
    let host = TestHost::new().await;
    host.install("test-hostile").await;
    host.install("test-echo").await;
    host
}

fn expect_err(
    r: Result<serde_json::Value, osprey::plugin::CallError>,
    kind: ErrorKind,
    needle: &str,
) -> osprey::plugin::CallError {
    let e = r.expect_err("the call must fail");
    assert_eq!(e.kind, kind, "wrong kind for: {}", e.message);
    assert!(e.message.contains(needle), "'{needle}' not in: {}", e.message);
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_is_stopped_at_the_deadline() {
    let host = host().await;
    host.grant("test-hostile", json!({"limits": {"timeout": "1s"}}))
        .await;
    let started = Instant::now();
    let e = expect_err(
        host.call("test-hostile", "spin", json!({})).await,
        ErrorKind::Timeout,
        "deadline of 1s",
    );
    assert!(e.retryable);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly, took {:?}",
        started.elapsed()
    );
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_blocked_in_the_host_is_stopped_at_the_deadline() {
    let host = host().await;
    host.grant("test-hostile", json!({"limits": {"timeout": "1s"}}))
        .await;
    let started = Instant::now();
    expect_err(
        host.call("test-hostile", "sleep", json!({})).await,
        ErrorKind::Timeout,
        "deadline",
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit() {
    let host = host().await;
    host.grant("test-hostile", json!({"limits": {"memory_mib": 16}}))
        .await;
    expect_err(
        host.call("test-hostile", "memory-bomb", json!({})).await,
        ErrorKind::LimitExceeded,
        "memory limit of 16 MiB",
    );
    host.assert_healthy().await;
    // The default limit stops it too.
    host.grant("test-hostile", json!({})).await;
    expect_err(
        host.call("test-hostile", "memory-bomb", json!({})).await,
        ErrorKind::LimitExceeded,
        "64 MiB",
    );
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_an_ungranted_host_is_denied_before_any_connection() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    // Nothing granted at all.
    let e = expect_err(
        host.call(
            "test-hostile",
            "fetch",
            json!({"url": fake.url("/ok?token=s3cr3t")}),
        )
        .await,
        ErrorKind::Denied,
        "denied by the grant",
    );
    assert!(e.message.contains(&fake.url("/ok")), "{}", e.message);
    assert!(
        !e.message.contains("s3cr3t"),
        "the query string is never shown: {}",
        e.message
    );
    assert_eq!(e.http.len(), 1);
    // Something else granted.
    host.grant("test-hostile", json!({"http": ["https://ipinfo.io"]}))
        .await;
    expect_err(
        host.call("test-hostile", "fetch", json!({"url": fake.url("/ok")}))
            .await,
        ErrorKind::Denied,
        "no granted HTTP pattern",
    );
    expect_err(
        host.call(
            "test-hostile",
            "fetch",
            json!({"url": "https://ipinfo.io.evil.example/x"}),
        )
        .await,
        ErrorKind::Denied,
        "no granted HTTP pattern",
    );
    assert_eq!(fake.total_hits(), 0, "a denied request never reaches the server");
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_name_that_resolves_to_loopback_is_denied() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    let port = fake.addr.port();
    host.grant(
        "test-hostile",
        json!({"http": [format!("http://localhost:{port}")]}),
    )
    .await;
    let e = expect_err(
        host.call(
            "test-hostile",
            "fetch",
            json!({"url": format!("http://localhost:{port}/ok")}),
        )
        .await,
        ErrorKind::Denied,
        "(Loopback, RFC 1122)",
    );
    assert!(e.message.contains("localhost"), "{}", e.message);
    assert!(e.message.contains("--private-range"), "{}", e.message);
    assert_eq!(fake.total_hits(), 0);
    // Naming the range in the grant opens it.
    host.grant(
        "test-hostile",
        json!({"http": [format!("http://localhost:{port}")], "private_ranges": ["127.0.0.0/8", "::1/128"]}),
    )
    .await;
    let out = host
        .call(
            "test-hostile",
            "fetch",
            json!({"url": format!("http://localhost:{port}/ok")}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(fake.hits("/ok"), 1);
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_metadata_and_private_addresses_are_denied_unless_named() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    let v6 = FakeHttp::start_on("[::1]:0").await;
    let port = fake.addr.port();
    host.grant(
        "test-hostile",
        json!({"http": [format!("http://127.0.0.1:{port}")]}),
    )
    .await;
    let mut targets = vec![
        format!("http://127.0.0.2:{port}/ok"),
        format!("http://127.0.0.1:{}/ok", port.wrapping_add(1).max(1)),
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://[::1]/".to_string(),
        "http://0.0.0.0/".to_string(),
    ];
    if let Some(v6) = &v6 {
        targets.push(v6.url("/ok"));
    }
    for url in &targets {
        expect_err(
            host.call("test-hostile", "fetch", json!({ "url": url })).await,
            ErrorKind::Denied,
            "denied by the grant",
        );
    }
    assert_eq!(fake.total_hits(), 0);
    if let Some(v6) = &v6 {
        assert_eq!(v6.total_hits(), 0);
    }
    // The address the grant names works.
    let out = host
        .call("test-hostile", "fetch", json!({"url": fake.url("/ok")}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body"], "hello from the fake");
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_returned_not_followed() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    host.grant(
        "test-hostile",
        json!({"http": [format!("http://127.0.0.1:{}/redirect", fake.addr.port())]}),
    )
    .await;
    let out = host
        .call("test-hostile", "fetch", json!({"url": fake.url("/redirect")}))
        .await
        .unwrap();
    assert_eq!(out["status"], 302);
    assert_eq!(out["location"], "/ok");
    assert_eq!(fake.hits("/ok"), 0, "the host did not follow the redirect");
    // Following it by hand is another request, outside the path prefix granted.
    expect_err(
        host.call("test-hostile", "fetch", json!({"url": fake.url("/ok")}))
            .await,
        ErrorKind::Denied,
        "no granted HTTP pattern",
    );
    assert_eq!(fake.hits("/ok"), 0);
}

/// The value of one series in the runtime's metrics, 0 when absent.
async fn http_denials(host: &TestHost) -> u64 {
    let text = host.app.metrics.scrape(&host.app.store).await.unwrap();
    let series = r#"osprey_plugin_denials_total{plugin="test-hostile",kind="http"} "#;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .map_or(0, |v| v.parse().expect("a count"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_a_vendor_could_decode_out_of_a_granted_prefix_are_denied_with_the_reason() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    let prefix = format!("http://127.0.0.1:{}/ok", fake.addr.port());
    host.grant("test-hostile", json!({ "http": [prefix] })).await;
    let out = host
        .call("test-hostile", "fetch", json!({"url": fake.url("/ok")}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200, "the prefix itself is granted");
    for (path, why) in [
        ("/ok/..%2fbig/1", "encoded slash (%2F)"),
        ("/ok/%2e%2e%5cbig/1", "encoded backslash (%5C)"),
        ("/ok/..;/big/1", "dot segment"),
    ] {
        let e = expect_err(
            host.call("test-hostile", "fetch", json!({"url": fake.url(path)}))
                .await,
            ErrorKind::Denied,
            why,
        );
        assert!(e.message.contains("restricts the path"), "{path}: {}", e.message);
        assert!(e.message.contains(&prefix), "{path}: {}", e.message);
    }
    assert_eq!(fake.total_hits(), 1, "no trick reached the server");
    assert_eq!(http_denials(&host).await, 3);
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_refused_before_the_gate_are_counted_and_reported_like_denials() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    host.grant(
        "test-hostile",
        json!({"http": [format!("http://127.0.0.1:{}", fake.addr.port())]}),
    )
    .await;
    // Headers the host's client owns.
    for header in ["connection", "host", "proxy-authorization"] {
        let e = expect_err(
            host.call(
                "test-hostile",
                "fetch",
                json!({"url": fake.url("/ok?token=s3cr3t"), "headers": [[header, "x"]]}),
            )
            .await,
            ErrorKind::Denied,
            &format!("the header '{header}' may not be set by a plugin"),
        );
        assert!(e.message.contains(&fake.url("/ok")), "{}", e.message);
        assert!(!e.message.contains("s3cr3t"), "{}", e.message);
        assert_eq!(e.http.len(), 1, "{:?}", e.http);
    }
    // A request built past the SDK, refused by wasmtime while it is built.
    expect_err(
        host.call("test-hostile", "raw-request", json!({"authority": "bad host"}))
            .await,
        ErrorKind::Denied,
        "the authority 'bad host' is not a valid host[:port]",
    );
    expect_err(
        host.call(
            "test-hostile",
            "raw-request",
            json!({"authority": "example.com", "path_bytes": 70_000}),
        )
        .await,
        ErrorKind::Denied,
        "at most 65534 bytes",
    );
    assert_eq!(fake.total_hits(), 0);
    assert_eq!(http_denials(&host).await, 5);
    // A request the host accepts still goes through.
    let out = host
        .call(
            "test-hostile",
            "fetch",
            json!({"url": fake.url("/ok"), "headers": [["x-trace", "1"]]}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(http_denials(&host).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_body_request_body_and_request_count_limits() {
    let host = host().await;
    let fake = FakeHttp::start().await;
    let granted = format!("http://127.0.0.1:{}", fake.addr.port());
    host.grant(
        "test-hostile",
        json!({"http": [granted], "limits": {"max_response_bytes": 1048576, "max_requests": 3}}),
    )
    .await;

    expect_err(
        host.call("test-hostile", "fetch", json!({"url": fake.url("/big/2")}))
            .await,
        ErrorKind::LimitExceeded,
        "1048576 bytes",
    );
    let out = host
        .call("test-hostile", "fetch", json!({"url": fake.url("/big/0")}))
        .await
        .unwrap();
    assert_eq!(out["status"], 200);

    expect_err(
        host.call(
            "test-hostile",
            "fetch",
            json!({"url": fake.url("/ok"), "count": 5}),
        )
        .await,
        ErrorKind::LimitExceeded,
        "3 outbound requests",
    );
    assert_eq!(fake.hits("/ok"), 3, "requests past the limit never left");

    expect_err(
        host.call(
            "test-hostile",
            "upload",
            json!({"url": fake.url("/upload"), "mib": 17}),
        )
        .await,
        ErrorKind::LimitExceeded,
        "request body",
    );
    assert_eq!(fake.hits("/upload"), 0);
    let out = host
        .call(
            "test-hostile",
            "upload",
            json!({"url": fake.url("/upload"), "mib": 1}),
        )
        .await
        .unwrap();
    assert_eq!(out["body"], "got 1048576 bytes");
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_per_plugin_granted_by_name_and_never_leave() {
    let host = host().await;
    let secret = secrecy::SecretString::from("the-echo-greeting".to_string());
    host.app
        .set_secret("test-echo", "greeting", &secret, &Actor::system())
        .await
        .unwrap();

    // Not granted.
    expect_err(
        host.call("test-hostile", "steal-secret", json!({"name": "greeting"}))
            .await,
        ErrorKind::Denied,
        "not granted",
    );
    // Granted the same name: it sees its own (unset) secret, never another plugin's.
    host.grant("test-hostile", json!({"secrets": ["greeting"]})).await;
    expect_err(
        host.call("test-hostile", "steal-secret", json!({"name": "greeting"}))
            .await,
        ErrorKind::NotFound,
        "no value yet",
    );
    // Its own secret, set and granted, still cannot be returned as output.
    let own = secrecy::SecretString::from("hostile-own-value".to_string());
    host.app
        .set_secret("test-hostile", "greeting", &own, &Actor::system())
        .await
        .unwrap();
    let e = expect_err(
        host.call("test-hostile", "steal-secret", json!({"name": "greeting"}))
            .await,
        ErrorKind::Denied,
        "never leave",
    );
    assert!(!e.message.contains("hostile-own-value"));

    // The owner reads it fine (length only).
    host.grant("test-echo", json!({"secrets": ["greeting"]})).await;
    let out = host
        .call("test-echo", "secret-length", json!({"name": "greeting"}))
        .await
        .unwrap();
    assert_eq!(out["length"], "the-echo-greeting".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_changed_by_another_process_is_taken_at_the_next_refresh() {
    // A call opens its secret from the plugin's policy, not from the store. What another
    // process (the CLI, another node) writes to the store, this runtime takes when it
    // refreshes (every `runtime.policy_refresh` in a server); what this process sets, at once.
    let owned = host().await;
    let host = &owned;
    host.grant("test-echo", json!({"secrets": ["greeting"]})).await;
    let call = || host.call("test-echo", "secret-length", json!({"name": "greeting"}));
    let length = || async { call().await.unwrap()["length"].as_u64().unwrap() };
    // What the CLI or another node does: seal and store, nothing told to this runtime.
    let set_elsewhere = |value: &'static str| async move {
        let sealed = host
            .app
            .vault
            .seal("test-echo", "greeting", &value.to_string().into());
        host.app
            .store
            .put_secret("test-echo", "greeting", &sealed, &Actor::cli())
            .await
            .unwrap();
    };

    // Set for the first time by another process: there at once (read from the store).
    set_elsewhere("four").await;
    assert_eq!(length().await, 4);
    host.app.runtime.refresh().await;
    assert_eq!(length().await, 4);

    // Changed by another process: the value in force until the refresh, the new one after.
    set_elsewhere("eleven-long").await;
    assert_eq!(length().await, 4);
    host.app.runtime.refresh().await;
    assert_eq!(length().await, 11);

    // Changed through this process's App (the API, a test): at once.
    host.app
        .set_secret(
            "test-echo",
            "greeting",
            &"six-ch".to_string().into(),
            &Actor::system(),
        )
        .await
        .unwrap();
    assert_eq!(length().await, 6);

    // Deleted by another process: gone after the refresh.
    assert!(
        host.app
            .store
            .delete_secret("test-echo", "greeting", &Actor::cli())
            .await
            .unwrap()
    );
    host.app.runtime.refresh().await;
    expect_err(call().await, ErrorKind::NotFound, "no value yet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filesystem_and_the_environment_are_empty() {
    let host = host().await;
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("OSPREY_HOSTILE_MARKER", "leaked") };
    let passwd = "/etc/passwd";
    expect_err(
        host.call("test-hostile", "read-file", json!({"path": passwd}))
            .await,
        ErrorKind::Denied,
        "filesystem",
    );
    expect_err(
        host.call("test-hostile", "list-dir", json!({"path": "/"})).await,
        ErrorKind::Denied,
        "filesystem",
    );
    let target = host.dir.path().join("owned.txt");
    expect_err(
        host.call(
            "test-hostile",
            "write-file",
            json!({"path": target.display().to_string()}),
        )
        .await,
        ErrorKind::Denied,
        "filesystem",
    );
    assert!(!target.exists(), "nothing was written");
    let env = host.call("test-hostile", "environment", json!({})).await.unwrap();
    assert_eq!(env["vars"], json!([]), "no environment variables: {env}");
    assert_eq!(env["args"], json!([]));
    assert_eq!(env["stdin"], "");
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_socket_call_fails_and_nothing_is_reached() {
    let host = host().await;
    // The component imports wasi:sockets (std::net through wasi-libc), and it loaded.
    let imports = host.app.runtime.get("test-hostile").unwrap().imports.clone();
    for interface in [
        "ip-name-lookup",
        "tcp",
        "udp",
        "instance-network",
        "tcp-create-socket",
    ] {
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with(&format!("wasi:sockets/{interface}@"))),
            "test-hostile imports wasi:sockets/{interface}: {imports:?}"
        );
    }
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let (tcp_addr, udp_addr) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
    // Even with HTTP to that very address granted: sockets follow no grant.
    host.grant("test-hostile", json!({"http": [format!("http://{tcp_addr}")]}))
        .await;

    let out = host
        .call(
            "test-hostile",
            "sockets",
            json!({"name": "localhost", "tcp": tcp_addr.to_string(), "udp": udp_addr.to_string()}),
        )
        .await
        .expect("the action runs and reports each attempt");
    let attempts = out["attempts"].as_array().unwrap();
    let whats: Vec<&str> = attempts.iter().map(|a| a["what"].as_str().unwrap()).collect();
    assert_eq!(
        whats,
        ["lookup", "tcp-connect", "tcp-listen", "udp-send"],
        "{out}"
    );
    for a in attempts {
        assert_ne!(a["outcome"], "ok", "a socket call got through: {a}");
    }
    // Sockets are refused at creation, before any address is used.
    for a in &attempts[1..] {
        assert_eq!(a["outcome"], "PermissionDenied", "{a}");
    }

    // The kernel queues a loopback connection or datagram before the sender's call returns,
    // so had one been made, it would be waiting now.
    let accepted = tcp.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the TCP listener saw a connection: {accepted:?}"
    );
    let mut buf = [0u8; 64];
    let received = udp.recv_from(&mut buf);
    assert!(
        matches!(&received, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the UDP socket received a datagram: {received:?}"
    );
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_panics_stack_overflows_and_floods_are_contained() {
    let host = host().await;
    expect_err(
        host.call("test-hostile", "huge-output", json!({"mib": 5})).await,
        ErrorKind::LimitExceeded,
        "limit is 4194304 bytes",
    );
    host.assert_healthy().await;
    let e = expect_err(
        host.call("test-hostile", "panic", json!({})).await,
        ErrorKind::Internal,
        "panicked",
    );
    assert!(
        e.message.contains("hostile plugin panicked on purpose"),
        "{}",
        e.message
    );
    host.assert_healthy().await;
    expect_err(
        host.call("test-hostile", "stack-overflow", json!({})).await,
        ErrorKind::LimitExceeded,
        "stack",
    );
    host.assert_healthy().await;
    // Printing and logging too much loses output, not the call.
    host.call("test-hostile", "print-flood", json!({}))
        .await
        .expect("printing a lot is not fatal");
    host.call("test-hostile", "log-flood", json!({}))
        .await
        .expect("logging a lot is not fatal");
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_quota_is_enforced() {
    let host = host().await;
    host.grant("test-hostile", json!({"kv_quota_bytes": 4096})).await;
    expect_err(
        host.call("test-hostile", "kv-flood", json!({})).await,
        ErrorKind::LimitExceeded,
        "kv quota of 4096 bytes",
    );
    assert!(host.app.store.kv_usage("test-hostile").await.unwrap() <= 4096);
    assert_eq!(host.app.store.kv_usage("test-echo").await.unwrap(), 0);
    host.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_gets_a_fresh_instance_and_inputs_are_validated() {
    let host = host().await;
    for _ in 0..3 {
        let out = host.call("test-echo", "counter", json!({})).await.unwrap();
        assert_eq!(out["count"], 1, "no state survives between calls");
    }
    expect_err(
        host.call("test-echo", "echo", json!({"message": 5})).await,
        ErrorKind::InvalidInput,
        "/message",
    );
    expect_err(
        host.call("test-echo", "echo", json!({})).await,
        ErrorKind::InvalidInput,
        "message",
    );
    expect_err(
        host.call("test-echo", "nope", json!({})).await,
        ErrorKind::InvalidInput,
        "it has: noop, echo",
    );
    let e = expect_err(
        host.call("test-echo", "fail", json!({"message": "slow down"}))
            .await,
        ErrorKind::RateLimited,
        "slow down",
    );
    assert!(e.retryable);
    expect_err(
        host.call("no-such-plugin", "x", json!({})).await,
        ErrorKind::NotFound,
        "installed: test-echo, test-hostile",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kv_store_round_trips_with_expiry() {
    let host = host().await;
    host.call("test-echo", "kv-put", json!({"key": "k", "value": "v"}))
        .await
        .unwrap();
    assert_eq!(
        host.call("test-echo", "kv-get", json!({"key": "k"}))
            .await
            .unwrap()["value"],
        "v"
    );
    host.call(
        "test-echo",
        "kv-put",
        json!({"key": "t", "value": "short", "ttl_seconds": 1}),
    )
    .await
    .unwrap();
    assert_eq!(
        host.call("test-echo", "kv-get", json!({"key": "t"}))
            .await
            .unwrap()["value"],
        "short"
    );
    // Gone once its second is over (polled; the deadline is far shorter than a misread TTL).
    eventually(5, "the one-second kv value to expire", async || {
        let got = host
            .call("test-echo", "kv-get", json!({"key": "t"}))
            .await
            .unwrap();
        got["value"].is_null().then_some(())
    })
    .await;
    assert_eq!(
        host.call("test-echo", "kv-delete", json!({"key": "k"}))
            .await
            .unwrap()["removed"],
        true
    );
    // Another plugin cannot see it.
    assert_eq!(host.app.store.kv_get("test-hostile", "k").await.unwrap(), None);
    expect_err(
        host.call("test-echo", "kv-get", json!({"key": ""})).await,
        ErrorKind::InvalidInput,
        "1 to 512 bytes",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_come_from_the_operator_over_manifest_defaults() {
    let host = host().await;
    assert_eq!(
        host.call("test-echo", "config", json!({"key": "motto"}))
            .await
            .unwrap()["value"],
        "stay calm"
    );
    assert_eq!(
        host.call("test-echo", "config", json!({"key": "color"}))
            .await
            .unwrap()["value"],
        json!(null)
    );
    host.app
        .store
        .set_plugin_config("test-echo", "motto", Some("carry on"), &Actor::system())
        .await
        .unwrap();
    host.app.runtime.refresh().await;
    assert_eq!(
        host.call("test-echo", "config", json!({"key": "motto"}))
            .await
            .unwrap()["value"],
        "carry on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_concurrent_calls_are_refused_not_queued_forever() {
    let host = TestHost::with_config(|c| c.runtime.max_instances = 2).await;
    host.install("test-hostile").await;
    host.install("test-echo").await;
    host.grant("test-hostile", json!({"limits": {"timeout": "2s"}}))
        .await;
    let calls = (0..3).map(|_| host.call("test-hostile", "sleep", json!({})));
    let results = futures::future::join_all(calls).await;
    let kinds: Vec<ErrorKind> = results.into_iter().map(|r| r.unwrap_err().kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == ErrorKind::Timeout).count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == ErrorKind::Unavailable).count(),
        1,
        "{kinds:?}"
    );
    host.assert_healthy().await;
}
