//! The ipinfo connector, end to end through the real binary: install, grant, secret, config,
//! call against a fake ipinfo on loopback whose address the grant names explicitly.

use crate::support::fake_ipinfo::FakeIpinfo;
use crate::support::{Cli, dist, text};
use serde_json::Value;

const TOKEN: &str = "tok_7f3a9c1e5b";

fn call_json(cli: &Cli, ip: &str) -> (bool, Value, String) {
    let input = format!("{{\"ip\":\"{ip}\"}}");
    let out = cli.run(&["plugin", "call", "ipinfo", "lookup", "--input", &input, "--json"]);
    let stdout = text(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    (out.status.success(), v, text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipinfo_lookup_end_to_end() {
    let fake = FakeIpinfo::start(TOKEN).await;
    let cli = Cli::new();
    let mut everything_printed = String::new();
    let mut keep = |s: &str| everything_printed.push_str(s);

    // Install: nothing granted yet.
    let out = cli.ok(&["plugin", "install", dist().join("ipinfo").to_str().unwrap()]);
    keep(&out);
    assert!(out.contains("https://ipinfo.io"), "{out}");
    assert!(out.contains("not granted yet"), "{out}");

    // Point it at the fake.
    keep(&cli.ok(&[
        "plugin",
        "config",
        "ipinfo",
        &format!("base_url={}", fake.base_url()),
    ]));

    // Not granted: the secret is refused before anything is sent.
    let (ok, v, err) = call_json(&cli, "8.8.8.8");
    keep(&err);
    assert!(!ok);
    assert_eq!(v["error"]["kind"], "denied", "{v}");
    assert_eq!(fake.requests(), 0);

    // Grant what it asks for (ipinfo.io and the token) and set the token from stdin.
    keep(&cli.ok(&["plugin", "grant", "ipinfo", "--requested"]));
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], &format!("{TOKEN}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    keep(&text(&out.stdout));
    keep(&text(&out.stderr));

    // The fake's address is not granted yet: denied by the host, nothing reaches the fake.
    let (ok, v, err) = call_json(&cli, "8.8.8.8");
    keep(&err);
    assert!(!ok);
    assert_eq!(v["error"]["kind"], "denied", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{}/8.8.8.8/json", fake.base_url())),
        "{msg}"
    );
    assert!(msg.contains("denied by the grant"), "{msg}");
    assert_eq!(fake.requests(), 0);

    // Name the fake's loopback address in the grant.
    keep(&cli.ok(&["plugin", "grant", "ipinfo", "--http", &fake.base_url()]));
    let (ok, v, err) = call_json(&cli, "8.8.8.8");
    keep(&err);
    assert!(ok, "{v} {err}");
    let output = &v["ok"]["output"];
    assert_eq!(output["country"], "US");
    assert_eq!(output["org"], "AS15169 Google LLC");
    assert_eq!(output["asn"], "AS15169");
    assert_eq!(output["hostname"], "dns.google");
    assert_eq!(output["cached"], false);
    assert_eq!(v["ok"]["http"][0]["outcome"], "status");
    assert_eq!(v["ok"]["http"][0]["detail"], 200);
    assert_eq!(fake.authorized(), 1);

    // The second lookup of the same IP comes from the plugin's kv cache.
    let (ok, v, _) = call_json(&cli, "8.8.8.8");
    assert!(ok);
    assert_eq!(v["ok"]["output"]["cached"], true);
    assert_eq!(fake.requests(), 1, "the cache saved a request");

    // Private addresses come back as bogons; invalid input never leaves the plugin.
    let (ok, v, _) = call_json(&cli, "10.1.2.3");
    assert!(ok);
    assert_eq!(v["ok"]["output"]["bogon"], true);
    let (ok, v, _) = call_json(&cli, "not-an-ip");
    assert!(!ok);
    assert_eq!(v["error"]["kind"], "invalid-input");
    assert_eq!(fake.requests(), 2);

    // Vendor errors become typed errors: rate limiting...
    fake.rate_limit_after(fake.authorized());
    let (ok, v, _) = call_json(&cli, "1.1.1.1");
    assert!(!ok);
    assert_eq!(v["error"]["kind"], "rate-limited", "{v}");
    assert_eq!(v["error"]["retryable"], true);
    fake.rate_limit_after(0);

    // ...and a wrong token.
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], "wrong-token");
    assert!(out.status.success());
    let (ok, v, err) = call_json(&cli, "1.1.1.1");
    keep(&err);
    assert!(!ok);
    assert_eq!(v["error"]["kind"], "denied", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("HTTP 403"),
        "{v}"
    );

    // The plain-text form for humans.
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], TOKEN);
    assert!(out.status.success());
    let out = cli.ok(&[
        "plugin",
        "call",
        "ipinfo",
        "lookup",
        "--input",
        "{\"ip\":\"1.1.1.1\"}",
    ]);
    keep(&out);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["country"], "AU");

    // The auditor's view: requested and granted side by side, secret names without values.
    let out = cli.ok(&["plugin", "inspect", "ipinfo"]);
    keep(&out);
    assert!(out.contains("https://ipinfo.io"), "{out}");
    assert!(out.contains(&fake.base_url()), "{out}");
    assert!(out.contains("token"), "{out}");
    let json: Value = serde_json::from_str(&cli.ok(&["plugin", "inspect", "ipinfo", "--json"])).unwrap();
    assert_eq!(json["requested"]["secrets"][0], "token");
    assert_eq!(json["granted"]["secrets"][0], "token");
    assert_eq!(json["secrets_set"][0], "token");
    assert_eq!(json["actions"][0]["name"], "lookup");
    assert_eq!(json["actions"][0]["input_schema"]["required"][0], "ip");

    // The token never appeared in anything Osprey printed, nor in its database file.
    assert!(
        !everything_printed.contains(TOKEN),
        "the token leaked into CLI output"
    );
    // Read as bytes from the SQLite file; on PostgreSQL the files are the server's (the
    // sealing is the same code whichever database stores it).
    if !cli.on_sqlite() {
        return;
    }
    let db = std::fs::read(cli.data_dir().join("osprey.db")).unwrap();
    assert!(
        !db.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
        "the token is stored in plaintext"
    );
    let wal = cli.data_dir().join("osprey.db-wal");
    if let Ok(wal) = std::fs::read(wal) {
        assert!(
            !wal.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "the token is in the WAL in plaintext"
        );
    }
}
