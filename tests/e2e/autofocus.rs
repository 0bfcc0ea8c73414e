//! The AutoFocus connector, end to end through the real runtime: install from plugins/dist,
//! grant, secret, settings, and calls against a fake AutoFocus on loopback whose address the
//! grant names explicitly.

use crate::support::TestHost;
use crate::support::fake_autofocus::FakeAutofocus;
use osprey::plugin::{CallError, ErrorKind};
use osprey::store::audit::Actor;
use serde_json::{Value, json};

const KEY: &str = "d32108a5-7c41-4b0e-9f3a-c04bda5b8450";
const REAL_API: &str = "https://autofocus.paloaltonetworks.com/api/v1.0";
const SHA256_GRAYWARE: &str = "7fa2c54d7dabb0503d75bdd13cc4d6a6520516a990fb7879ae052bad9520763b";

fn expect_err(r: Result<Value, CallError>, kind: ErrorKind, needle: &str) -> CallError {
    let e = r.expect_err("the call must fail");
    assert_eq!(e.kind, kind, "wrong kind for: {}", e.message);
    assert!(e.message.contains(needle), "'{needle}' not in: {}", e.message);
    assert!(!e.message.contains(KEY), "the API key leaked: {}", e.message);
    e
}

async fn set_key(host: &TestHost, key: &str) {
    let key = secrecy::SecretString::from(key.to_owned());
    host.app
        .set_secret("autofocus", "api_key", &key, &Actor::system())
        .await
        .unwrap();
}

async fn configure(host: &TestHost, key: &str, value: &str) {
    host.app
        .store
        .set_plugin_config("autofocus", key, Some(value), &Actor::system())
        .await
        .unwrap();
    host.app.runtime.refresh().await;
}

async fn ip(host: &TestHost, ip: &str) -> Result<Value, CallError> {
    host.call("autofocus", "ip-reputation", json!({ "ip": ip })).await
}

async fn indicator(host: &TestHost, kind: &str, value: &str) -> Result<Value, CallError> {
    host.call(
        "autofocus",
        "indicator-reputation",
        json!({ "type": kind, "value": value }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autofocus_reputation_end_to_end() {
    let fake = FakeAutofocus::start(KEY).await;
    fake.set_verdict("203.0.113.66", "MALWARE");
    fake.set_verdict("198.51.100.7", "BENIGN");
    fake.set_verdict("2001:db8::bad", "MALWARE");
    fake.set_verdict("login-verify.example", "PHISHING");
    fake.set_verdict("http://login-verify.example/account/", "PHISHING");
    fake.set_verdict(SHA256_GRAYWARE, "GRAYWARE");
    fake.set_verdict("203.0.113.99", "MALWARE");
    fake.set_malformed("203.0.113.250");

    let host = TestHost::new().await;
    host.install("autofocus").await;
    configure(&host, "base_url", &fake.base_url()).await;

    // Granted what it asks for (the real API, the secret, kv), but no key set yet: denied
    // with the command that fixes it, before anything is sent.
    let requested = json!({"http": [REAL_API], "secrets": ["api_key"], "kv_quota_bytes": 1048576});
    host.grant("autofocus", requested.clone()).await;
    expect_err(
        ip(&host, "203.0.113.66").await,
        ErrorKind::Denied,
        "osprey secret set autofocus api_key",
    );
    assert_eq!(fake.requests(), 0);

    // With a key, the fake's loopback address is still not granted: the host refuses.
    set_key(&host, KEY).await;
    expect_err(ip(&host, "203.0.113.66").await, ErrorKind::Denied, "grant");
    assert_eq!(fake.requests(), 0);

    // Name the fake's address in the grant.
    let mut grant = requested;
    grant["http"] = json!([REAL_API, fake.origin()]);
    host.grant("autofocus", grant).await;

    // A malicious IP: verdict, tags, sample counts and dates from the card.
    let out = ip(&host, "203.0.113.66").await.unwrap();
    assert_eq!(out["indicator"], "203.0.113.66");
    assert_eq!(out["type"], "ip");
    assert_eq!(out["found"], true);
    assert_eq!(out["verdict"], "malicious");
    assert_eq!(out["pan_verdicts"], json!({"PAN_DB": "MALWARE"}));
    assert_eq!(out["tags"], json!(["Unit42.Upatre", "Unit42.FormBook"]));
    assert_eq!(out["malware_samples"], 95);
    assert_eq!(out["grayware_samples"], 5);
    assert_eq!(out["benign_samples"], 0);
    assert_eq!(out["seen_by"], json!(["WF_SAMPLE"]));
    assert_eq!(out["first_seen"], "2019-08-20T00:38:15Z");
    assert_eq!(out["last_seen"], "2020-05-28T03:04:19Z");
    assert_eq!(out["cached"], false);
    let q = fake.last_query();
    assert_eq!(q["indicatorType"], "ipv4_address");
    assert_eq!(q["indicatorValue"], "203.0.113.66");
    assert_eq!(q["includeTags"], "true");
    assert_eq!(fake.authorized(), 1);

    // The second lookup comes from the plugin's kv cache and never reaches AutoFocus.
    let out = ip(&host, "203.0.113.66").await.unwrap();
    assert_eq!(out["cached"], true);
    assert_eq!(out["verdict"], "malicious");
    assert_eq!(fake.requests(), 1, "the cache saved a request");

    // A benign IP.
    let out = ip(&host, "198.51.100.7").await.unwrap();
    assert_eq!(out["verdict"], "benign");
    assert_eq!(out["found"], true);
    assert_eq!(out["tags"], json!([]));
    assert_eq!(out["malware_samples"], 0);
    assert!(out.get("first_seen").is_none(), "{out}");

    // IPv6, written loosely, is looked up in canonical form.
    let out = ip(&host, " 2001:DB8:0::BAD ").await.unwrap();
    assert_eq!(out["indicator"], "2001:db8::bad");
    assert_eq!(out["verdict"], "malicious");
    assert_eq!(fake.last_query()["indicatorType"], "ipv6_address");

    // An IP AutoFocus has no card for (it answers 404 with an HTML page): found false,
    // verdict unknown, not an error; and not cached.
    for _ in 0..2 {
        let before = fake.requests();
        let out = ip(&host, "192.0.2.1").await.unwrap();
        assert_eq!(out["found"], false);
        assert_eq!(out["verdict"], "unknown");
        assert_eq!(out["pan_verdicts"], json!({}));
        assert_eq!(fake.requests(), before + 1);
    }

    // The same code for domains, URLs and hashes.
    let out = indicator(&host, "domain", "Login-Verify.Example.").await.unwrap();
    assert_eq!(out["indicator"], "login-verify.example");
    assert_eq!(out["type"], "domain");
    assert_eq!(out["verdict"], "malicious");
    assert_eq!(fake.last_query()["indicatorType"], "domain");
    let out = indicator(&host, "url", "http://login-verify.example/account/")
        .await
        .unwrap();
    assert_eq!(out["verdict"], "malicious");
    assert_eq!(fake.last_query()["indicatorType"], "url");
    assert_eq!(
        fake.last_query()["indicatorValue"],
        "http://login-verify.example/account/"
    );
    let out = indicator(&host, "hash", &SHA256_GRAYWARE.to_ascii_uppercase())
        .await
        .unwrap();
    assert_eq!(out["indicator"], SHA256_GRAYWARE);
    assert_eq!(out["verdict"], "suspicious");
    assert_eq!(out["pan_verdicts"], json!({"WF_SAMPLE": "GRAYWARE"}));
    assert_eq!(fake.last_query()["indicatorType"], "filehash");
    let out = indicator(&host, "ip", "198.51.100.7").await.unwrap();
    assert_eq!(out["cached"], true, "both actions share the cache");

    // Invalid input never leaves the plugin (or the host, for what the schema rules out).
    let before = fake.requests();
    expect_err(
        ip(&host, "not-an-ip").await,
        ErrorKind::InvalidInput,
        "not an IPv4 or IPv6",
    );
    expect_err(
        ip(&host, "203.0.113.300").await,
        ErrorKind::InvalidInput,
        "203.0.113.300",
    );
    expect_err(
        indicator(&host, "hash", "abc123").await,
        ErrorKind::InvalidInput,
        "MD5, SHA-1 or SHA-256",
    );
    expect_err(
        indicator(&host, "domain", "http://x.example/").await,
        ErrorKind::InvalidInput,
        "type \"url\"",
    );
    expect_err(
        indicator(&host, "email", "a@b.example").await,
        ErrorKind::InvalidInput,
        "",
    );
    expect_err(
        host.call(
            "autofocus",
            "ip-reputation",
            json!({"ip": "203.0.113.66", "x": 1}),
        )
        .await,
        ErrorKind::InvalidInput,
        "",
    );
    assert_eq!(fake.requests(), before);

    // A 200 that is not AutoFocus's JSON.
    expect_err(ip(&host, "203.0.113.250").await, ErrorKind::Upstream, "JSON");

    // The point allotment is spent: AutoFocus's 503 "Minute Bucket Exceeded".
    fake.quota_spent(true);
    let e = expect_err(
        ip(&host, "203.0.113.99").await,
        ErrorKind::RateLimited,
        "Minute Bucket Exceeded",
    );
    assert!(e.retryable);
    assert!(e.message.contains("wait 54 s"), "{}", e.message);
    fake.quota_spent(false);

    // An outage: a bare 503.
    fake.outage(true);
    let e = expect_err(
        ip(&host, "203.0.113.99").await,
        ErrorKind::Unavailable,
        "HTTP 503",
    );
    assert!(e.retryable);
    fake.outage(false);
    assert_eq!(ip(&host, "203.0.113.99").await.unwrap()["verdict"], "malicious");

    // A wrong key: AutoFocus's 401, denied, not retryable, with the fix.
    set_key(&host, "wrong-key").await;
    let e = expect_err(ip(&host, "192.0.2.1").await, ErrorKind::Denied, "HTTP 401");
    assert!(!e.retryable);
    assert!(
        e.message.contains("osprey secret set autofocus api_key"),
        "{}",
        e.message
    );
    set_key(&host, KEY).await;

    // With the cache off, every lookup asks AutoFocus.
    configure(&host, "cache_ttl_seconds", "0").await;
    let before = fake.requests();
    ip(&host, "198.51.100.7").await.unwrap();
    let out = ip(&host, "198.51.100.7").await.unwrap();
    assert_eq!(out["cached"], false);
    assert_eq!(fake.requests(), before + 2);
}
