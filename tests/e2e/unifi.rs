//! The UniFi connector, end to end through the real runtime: install from plugins/dist,
//! grant, secrets, settings, and calls against a fake controller on loopback (classic and
//! UniFi OS) whose address the grant names explicitly. The fake keeps real cookie sessions,
//! so every call below that succeeds logged in, and every write on UniFi OS carried the CSRF
//! token.

use crate::support::TestHost;
use crate::support::fake_unifi::{FakeUnifi, Flavour};
use osprey::plugin::{CallError, ErrorKind};
use osprey::store::audit::Actor;
use serde_json::{Value, json};

const USER: &str = "osprey-svc";
const PASS: &str = "c0rrect-h0rse-battery";
const PHONE: &str = "aa:bb:cc:00:00:01";
const LAPTOP: &str = "aa:bb:cc:00:00:02";

struct Harness {
    host: TestHost,
    fake: FakeUnifi,
}

impl Harness {
    async fn call(&self, action: &str, input: Value) -> Result<Value, CallError> {
        let out = self.host.call("unifi", action, input).await;
        // Neither the password nor any cookie or CSRF token ever comes out.
        let shown = match &out {
            Ok(v) => v.to_string(),
            Err(e) => e.message.clone(),
        };
        assert!(!shown.contains(PASS), "the password leaked: {shown}");
        for secret in self.fake.issued_secrets() {
            assert!(!shown.contains(&secret), "a session token leaked: {shown}");
        }
        out
    }

    async fn ok(&self, action: &str, input: Value) -> Value {
        self.call(action, input.clone())
            .await
            .unwrap_or_else(|e| panic!("{action} {input} failed: {:?} {}", e.kind, e.message))
    }

    async fn err(&self, action: &str, input: Value, kind: ErrorKind, needle: &str) -> CallError {
        let e = self.call(action, input).await.expect_err("the call must fail");
        assert_eq!(e.kind, kind, "wrong kind for: {}", e.message);
        assert!(e.message.contains(needle), "'{needle}' not in: {}", e.message);
        e
    }

    async fn configure(&self, key: &str, value: Option<&str>) {
        self.host
            .app
            .store
            .set_plugin_config("unifi", key, value, &Actor::system())
            .await
            .unwrap();
        self.host.app.runtime.refresh().await;
    }

    async fn set_secret(&self, name: &str, value: &str) {
        let value = secrecy::SecretString::from(value.to_owned());
        self.host
            .app
            .set_secret("unifi", name, &value, &Actor::system())
            .await
            .unwrap();
    }
}

async fn scenario(flavour: Flavour) {
    let fake = FakeUnifi::start(flavour, USER, PASS).await;
    fake.add_client(PHONE, "192.168.1.23", "Annas-iPhone", Some("Anna's phone"), false);
    fake.add_client(LAPTOP, "192.168.1.40", "anna-laptop", None, true);
    fake.add_client("aa:bb:cc:00:00:03", "192.168.1.41", "livingroom-tv", None, false);
    let printer_rule = fake.add_rule(json!({
        "name": "allow printer", "enabled": true, "action": "accept", "ruleset": "LAN_IN",
        "rule_index": 2000, "protocol": "all", "src_address": "192.168.1.0/24",
        "dst_address": "192.168.1.9", "src_mac_address": "", "logging": false,
    }));

    let host = TestHost::new().await;
    host.install("unifi").await;
    let h = Harness { host, fake };
    h.configure("base_url", Some(&h.fake.origin())).await;

    // What it asks for, granted, but no credentials set: denied with the commands that fix
    // it, before anything is sent.
    let requested = json!({
        "http": ["https://unifi:8443"],
        "private_ranges": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        "secrets": ["username", "password"],
        "kv_quota_bytes": 65536,
    });
    h.host.grant("unifi", requested.clone()).await;
    let e = h
        .err(
            "list-clients",
            json!({}),
            ErrorKind::Denied,
            "osprey secret set unifi username",
        )
        .await;
    assert!(!e.retryable);
    assert_eq!(h.fake.requests(), 0);

    h.set_secret("username", USER).await;
    h.set_secret("password", PASS).await;
    h.err("list-clients", json!({}), ErrorKind::Denied, "grant").await;
    assert_eq!(h.fake.requests(), 0);

    // Name the fake's address in the grant.
    let mut grant = requested;
    grant["http"] = json!(["https://unifi:8443", h.fake.origin()]);
    h.host.grant("unifi", grant).await;

    // List the connected clients: one detection, one login, one API call.
    let out = h.ok("list-clients", json!({})).await;
    assert_eq!(out["count"], 3, "{out}");
    let phone = &out["clients"][0];
    assert_eq!(phone["mac"], PHONE);
    assert_eq!(phone["ip"], "192.168.1.23");
    assert_eq!(phone["hostname"], "Annas-iPhone");
    assert_eq!(phone["name"], "Anna's phone");
    assert_eq!(phone["is_wired"], false);
    assert_eq!(phone["blocked"], false);
    assert_eq!(phone["essid"], "Home");
    assert_eq!(phone["last_seen"], 1_760_000_000);
    assert_eq!(out["clients"][1]["is_wired"], true);
    assert_eq!(h.fake.logins(), 1);
    let (login, api) = match flavour {
        Flavour::Classic => ("POST /api/login", "/api/s/default"),
        Flavour::UnifiOs => ("POST /api/auth/login", "/proxy/network/api/s/default"),
    };
    assert_eq!(
        h.fake.seen(),
        vec![
            "GET /".to_owned(),
            login.to_owned(),
            format!("GET {api}/stat/sta")
        ]
    );

    // The session is kept: the next calls do not log in again.
    let out = h.ok("list-clients", json!({"mac": "AA-BB-CC-00-00-02"})).await;
    assert_eq!(out["count"], 1);
    assert_eq!(out["clients"][0]["hostname"], "anna-laptop");
    assert!(out["clients"][0].get("name").is_none(), "{out}");
    let out = h.ok("list-clients", json!({"ip": "192.168.1.41"})).await;
    assert_eq!(out["clients"][0]["mac"], "aa:bb:cc:00:00:03");
    let out = h.ok("list-clients", json!({"hostname": "ANNA-LAPTOP"})).await;
    assert_eq!(out["clients"][0]["mac"], LAPTOP);
    let out = h.ok("list-clients", json!({"ip": "192.168.1.99"})).await;
    assert_eq!(out["count"], 0);
    assert_eq!(out["clients"], json!([]));
    assert_eq!(h.fake.logins(), 1, "the kept session was reused");

    // Is the owner's phone connected? By host name (or alias), and by MAC.
    let out = h.ok("find-client", json!({"hostname": "annas-iphone"})).await;
    assert_eq!(out["found"], true);
    assert_eq!(out["matches"], 1);
    assert_eq!(out["client"]["mac"], PHONE);
    let out = h.ok("find-client", json!({"hostname": "Anna's phone"})).await;
    assert_eq!(out["client"]["mac"], PHONE);
    let out = h.ok("find-client", json!({"mac": "AABB.CC00.0002"})).await;
    assert_eq!(out["found"], true);
    assert_eq!(out["client"]["ip"], "192.168.1.40");
    let out = h.ok("find-client", json!({"mac": "aa:bb:cc:00:00:99"})).await;
    assert_eq!(out["found"], false);
    assert_eq!(out["matches"], 0);
    assert!(out.get("client").is_none(), "{out}");

    // Block the phone: the controller records it and disconnects it.
    let out = h.ok("block-client", json!({"mac": "AA:BB:CC:00:00:01"})).await;
    assert_eq!(out, json!({"mac": PHONE, "blocked": true}));
    assert!(h.fake.is_blocked(PHONE));
    let out = h.ok("find-client", json!({"hostname": "annas-iphone"})).await;
    assert_eq!(out["found"], false, "a blocked client is cut off");
    // Unblock it.
    let out = h.ok("unblock-client", json!({"mac": PHONE})).await;
    assert_eq!(out, json!({"mac": PHONE, "blocked": false}));
    assert!(!h.fake.is_blocked(PHONE));
    assert_eq!(h.ok("find-client", json!({"mac": PHONE})).await["found"], true);

    // A firewall rule for the phone's MAC: in LAN_IN, dropping, after the existing 2000.
    let out = h
        .ok(
            "create-firewall-rule",
            json!({"name": "osprey: cut off Anna's phone", "src_mac": "AA-BB-CC-00-00-01"}),
        )
        .await;
    let id = out["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 24);
    assert_eq!(out["created"], true);
    assert_eq!(out["ruleset"], "LAN_IN");
    assert_eq!(out["rule_index"], 2001);
    assert_eq!(out["action"], "drop");
    assert_eq!(out["enabled"], true);
    assert_eq!(out["src_mac"], PHONE);
    let stored = h.fake.rule(&id).expect("the controller has the rule");
    assert_eq!(stored["src_mac_address"], PHONE);
    assert_eq!(stored["action"], "drop");
    assert_eq!(stored["ruleset"], "LAN_IN");
    assert_eq!(stored["rule_index"], 2001);
    assert_eq!(stored["protocol"], "all");
    assert_eq!(stored["enabled"], true);
    assert_eq!(stored["src_address"], "");

    // The same rule again (a retried step): the existing one, not a second copy.
    let again = h
        .ok(
            "create-firewall-rule",
            json!({"name": "osprey: cut off Anna's phone", "src_mac": PHONE}),
        )
        .await;
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["created"], false);
    assert_eq!(h.fake.rules().len(), 2);

    // A rule by address, rejecting traffic to one destination, at a chosen index.
    let out = h
        .ok(
            "create-firewall-rule",
            json!({
                "name": "osprey: no streaming box", "src_address": "192.168.1.41",
                "dst_address": "203.0.113.0/24", "action": "reject", "ruleset": "LAN_IN",
                "rule_index": 2500, "protocol": "tcp"
            }),
        )
        .await;
    let second = out["id"].as_str().unwrap().to_owned();
    let stored = h.fake.rule(&second).unwrap();
    assert_eq!(stored["src_address"], "192.168.1.41");
    assert_eq!(stored["dst_address"], "203.0.113.0/24");
    assert_eq!(stored["action"], "reject");
    assert_eq!(stored["rule_index"], 2500);
    assert_eq!(stored["protocol"], "tcp");

    let out = h.ok("list-firewall-rules", json!({"ruleset": "LAN_IN"})).await;
    assert_eq!(out["count"], 3);
    let ids: Vec<&str> = out["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![printer_rule.as_str(), id.as_str(), second.as_str()]);
    assert_eq!(out["rules"][0]["name"], "allow printer");
    let out = h.ok("list-firewall-rules", json!({"ruleset": "WAN_OUT"})).await;
    assert_eq!(out["count"], 0);

    // Delete the rule; deleting it again finds nothing to delete.
    let out = h.ok("delete-firewall-rule", json!({"id": id})).await;
    assert_eq!(out, json!({"id": id, "deleted": true}));
    assert!(h.fake.rule(&id).is_none());
    assert_eq!(h.fake.rules().len(), 2);
    let out = h.ok("delete-firewall-rule", json!({"id": id})).await;
    assert_eq!(out["deleted"], false);
    h.ok("delete-firewall-rule", json!({"id": second})).await;
    assert_eq!(h.fake.rules().len(), 1, "only the printer rule is left");
    assert_eq!(h.fake.logins(), 1, "every call so far used one session");
    assert_eq!(h.fake.csrf_rejected(), 0);

    // Bad input is refused by the plugin before any request.
    let before = h.fake.requests();
    for mac in [
        "not-a-mac",
        "aa:bb:cc:00:00",
        "aa:bb:cc:00:00:0g",
        "aa:bb-cc:00:00:01",
    ] {
        h.err(
            "block-client",
            json!({"mac": mac}),
            ErrorKind::InvalidInput,
            "is not a MAC address",
        )
        .await;
    }
    h.err(
        "unblock-client",
        json!({"mac": ""}),
        ErrorKind::InvalidInput,
        "MAC address",
    )
    .await;
    h.err(
        "find-client",
        json!({"mac": "zz"}),
        ErrorKind::InvalidInput,
        "MAC address",
    )
    .await;
    h.err(
        "find-client",
        json!({}),
        ErrorKind::InvalidInput,
        "either 'mac' or 'hostname'",
    )
    .await;
    h.err(
        "list-clients",
        json!({"ip": "192.168.1"}),
        ErrorKind::InvalidInput,
        "IPv4 or IPv6",
    )
    .await;
    h.err(
        "create-firewall-rule",
        json!({"name": "x", "src_mac": PHONE, "src_address": "192.168.1.2"}),
        ErrorKind::InvalidInput,
        "one of them",
    )
    .await;
    h.err(
        "create-firewall-rule",
        json!({"name": "x", "src_mac": "phone"}),
        ErrorKind::InvalidInput,
        "MAC address",
    )
    .await;
    h.err(
        "create-firewall-rule",
        json!({"name": "x", "src_address": "192.168.1.0/40"}),
        ErrorKind::InvalidInput,
        "prefix length",
    )
    .await;
    h.err(
        "create-firewall-rule",
        json!({"name": "x", "src_address": "192.168.1.2", "rule_index": 3000}),
        ErrorKind::InvalidInput,
        "rule_index 3000",
    )
    .await;
    // The schema itself refuses an unknown action or field (the host checks it).
    h.err(
        "create-firewall-rule",
        json!({"name": "x", "src_address": "192.168.1.2", "action": "nuke"}),
        ErrorKind::InvalidInput,
        "",
    )
    .await;
    h.err(
        "block-client",
        json!({"mac": PHONE, "why": 1}),
        ErrorKind::InvalidInput,
        "",
    )
    .await;
    h.err(
        "delete-firewall-rule",
        json!({"id": "../../self"}),
        ErrorKind::InvalidInput,
        "24 hex",
    )
    .await;
    assert_eq!(h.fake.requests(), before, "nothing reached the controller");

    // The controller forgets the session (a restart, a timeout): one 401, one new login, and
    // the call succeeds.
    h.fake.expire_sessions();
    let (logins, rejected) = (h.fake.logins(), h.fake.rejected());
    let out = h.ok("block-client", json!({"mac": LAPTOP})).await;
    assert_eq!(out["blocked"], true);
    assert!(h.fake.is_blocked(LAPTOP));
    assert_eq!(h.fake.rejected(), rejected + 1);
    assert_eq!(h.fake.logins(), logins + 1);
    h.ok("unblock-client", json!({"mac": LAPTOP})).await;
    assert_eq!(h.fake.logins(), logins + 1);

    // A wrong password: a session that is still open keeps working; once it expires, the new
    // login is refused: denied, not retryable, naming the controller and the fix.
    h.set_secret("password", "wrong-password").await;
    h.ok("list-clients", json!({})).await;
    h.fake.expire_sessions();
    let failed = h.fake.failed_logins();
    let e = h
        .err(
            "list-clients",
            json!({}),
            ErrorKind::Denied,
            "refused the username or password",
        )
        .await;
    assert!(!e.retryable);
    assert!(e.message.contains(&h.fake.origin()), "{}", e.message);
    assert!(
        e.message.contains("osprey secret set unifi password"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("wrong-password"), "{}", e.message);
    assert_eq!(h.fake.failed_logins(), failed + 1, "one attempt, no hammering");
    h.set_secret("password", PASS).await;
    h.ok("list-clients", json!({})).await;

    // The controller is down (503 while it starts): unavailable, retryable.
    h.fake.outage(true);
    h.fake.expire_sessions();
    let e = h
        .err("list-clients", json!({}), ErrorKind::Unavailable, "HTTP 503")
        .await;
    assert!(e.retryable);
    h.fake.outage(false);

    // A site the controller does not have.
    h.configure("site", Some("branch-office")).await;
    h.err(
        "list-clients",
        json!({}),
        ErrorKind::InvalidInput,
        "no site 'branch-office'",
    )
    .await;
    h.configure("site", None).await;

    // The other kind of controller, set explicitly: its login path is not there.
    let other = match flavour {
        Flavour::Classic => "unifi-os",
        Flavour::UnifiOs => "classic",
    };
    h.configure("controller", Some(other)).await;
    h.err("list-clients", json!({}), ErrorKind::Upstream, "controller")
        .await;
    // The right kind, set explicitly: no detection request.
    let right = match flavour {
        Flavour::Classic => "classic",
        Flavour::UnifiOs => "unifi-os",
    };
    h.configure("controller", Some(right)).await;
    let before = h.fake.seen().len();
    assert_eq!(h.ok("list-clients", json!({})).await["count"], 3);
    assert!(
        !h.fake.seen()[before..].contains(&"GET /".to_owned()),
        "{:?}",
        h.fake.seen()
    );

    // Without a kept session, every call logs in and out again.
    h.fake.expire_sessions();
    h.configure("session_ttl_seconds", Some("0")).await;
    let (logins, logouts) = (h.fake.logins(), h.fake.logouts());
    h.ok("list-clients", json!({})).await;
    h.ok("block-client", json!({"mac": PHONE})).await;
    h.ok("unblock-client", json!({"mac": PHONE})).await;
    assert_eq!(h.fake.logins(), logins + 3);
    assert_eq!(h.fake.logouts(), logouts + 3);
    assert_eq!(h.fake.open_sessions(), 0, "nothing left open");
    assert!(!h.fake.is_blocked(PHONE));
    assert_eq!(h.fake.csrf_rejected(), 0, "every write carried the CSRF token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unifi_classic_controller_end_to_end() {
    scenario(Flavour::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unifi_os_console_end_to_end() {
    scenario(Flavour::UnifiOs).await;
}
