//! Seed 004, "Auto validating Bitcoin miners", end to end with the real binary: firewall
//! connection logs arrive, a rule folds repeats of one source IP within an hour into one
//! incident, the bundled `bitcoin-node-guard` playbook asks AutoFocus (a fake on loopback)
//! for the IP's reputation; a bad IP is enriched with ipinfo, put on a block list that the
//! firewall pulls as an EDL, and the owner is mailed (read from a real SMTP server, with its
//! "talk to a human" link); a good one closes its incident.

use crate::support::fake_autofocus::FakeAutofocus;
use crate::support::fake_ipinfo::FakeIpinfo;
use crate::support::smtp::SmtpSink;
use crate::support::{Server, dist, eventually, http_client};
use serde_json::{Value, json};

const AUTOFOCUS_KEY: &str = "0f4c1d6e-2b8a-4d3e-9c71-5a6b7c8d9e0f";
const IPINFO_TOKEN: &str = "ipinfo-test-token";
const BAD: &str = "203.0.113.66";
const GOOD: &str = "198.51.100.7";

pub(crate) fn json_lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_node_guard_blocks_bad_ips_through_the_edl_and_closes_good_ones() {
    let autofocus = FakeAutofocus::start(AUTOFOCUS_KEY).await;
    autofocus.set_verdict(BAD, "MALWARE");
    autofocus.set_verdict(GOOD, "BENIGN");
    let ipinfo = FakeIpinfo::start(IPINFO_TOKEN).await;

    // The operator's set-up, all through the CLI; mail goes to a real SMTP server.
    let smtp = SmtpSink::start();
    let cli = crate::humans::setup(&smtp, "");
    for (plugin, fake_url, secret, value) in [
        ("autofocus", autofocus.base_url(), "api_key", AUTOFOCUS_KEY),
        ("ipinfo", ipinfo.base_url(), "token", IPINFO_TOKEN),
    ] {
        let dir = dist().join(plugin);
        cli.ok(&["plugin", "install", dir.to_str().unwrap(), "--grant-requested"]);
        let origin = fake_url
            .trim_end_matches('/')
            .split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/");
        cli.ok(&["plugin", "grant", plugin, "--http", &origin]);
        cli.ok(&["plugin", "config", plugin, &format!("base_url={fake_url}")]);
        let out = cli.run_with_stdin(&["secret", "set", plugin, secret], value);
        assert!(out.status.success(), "{}", crate::support::text(&out.stderr));
    }
    let repo_playbook =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/bitcoin-node-guard");
    copy_dir(&repo_playbook, &cli.playbooks_dir().join("bitcoin-node-guard"));
    cli.ok(&[
        "list",
        "create",
        "bitcoin-blocked",
        "--kind",
        "block",
        "--type",
        "ip",
    ]);
    cli.ok(&[
        "rules",
        "set",
        "bitcoin-dedup",
        "--match",
        r#"alert.source == "panos-traffic""#,
        "--action",
        "dedup",
        "--key",
        "alert.data.src_ip",
        "--window",
        "1h",
        "--type",
        "bitcoin-connection",
    ]);
    let sensor = cli
        .ok(&["token", "create", "firewall-logs", "--scope", "intake"])
        .trim()
        .to_owned();
    let firewall = cli
        .ok(&["token", "create", "panorama", "--scope", "edl"])
        .trim()
        .to_owned();

    let server = Server::start(&cli);
    let http = http_client();
    // Five inbound connections: three from the bad IP, two from the good one.
    let logs: String = [BAD, GOOD, BAD, GOOD, BAD]
        .iter()
        .map(|ip| {
            json!({"source": "panos-traffic", "title": format!("inbound bitcoin from {ip}"),
                   "src_ip": ip, "dst_port": 8333, "app": "bitcoin"})
            .to_string()
                + "\n"
        })
        .collect();
    let r = http
        .post(format!("http://{}/api/v1/alerts", server.addr))
        .bearer_auth(&sensor)
        .body(logs)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // One incident per IP; each one's run ends; the good one closes, the bad one stays open.
    eventually(30, "both incidents handled", async || {
        let i = json_lines(&cli.ok(&["incident", "list", "--json"]));
        let settled = i.len() == 2
            && i.iter().all(|i| {
                let shown: Value =
                    serde_json::from_str(&cli.ok(&["incident", "show", i["id"].as_str().unwrap(), "--json"]))
                        .unwrap();
                shown["timeline"].as_array().unwrap().iter().any(|e| {
                    e["kind"] == "notification" || (e["kind"] == "status" && e["details"]["to"] == "closed")
                })
            });
        settled.then_some(())
    })
    .await;
    // Read again: the list taken before the timelines were looked at may predate the changes.
    let incidents = json_lines(&cli.ok(&["incident", "list", "--json"]));
    let by_key = |ip: &str| incidents.iter().find(|i| i["dedup_key"] == ip).unwrap().clone();
    let bad = by_key(BAD);
    let good = by_key(GOOD);
    assert_eq!(
        (bad["occurrences"].as_i64(), good["occurrences"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(good["status"], "closed");
    assert!(
        good["close_reason"].as_str().unwrap().contains("benign"),
        "{good}"
    );
    assert_eq!(bad["status"], "new");
    assert_eq!(bad["severity"], "high");
    let shown: Value =
        serde_json::from_str(&cli.ok(&["incident", "show", bad["id"].as_str().unwrap(), "--json"])).unwrap();
    let timeline = shown["timeline"].as_array().unwrap();
    let note = timeline
        .iter()
        .find(|e| e["kind"] == "note")
        .expect("a note on the bad IP's incident");
    assert!(
        note["details"]["text"]
            .as_str()
            .unwrap()
            .contains("AutoFocus says malicious"),
        "{note}"
    );
    let notice = timeline.iter().find(|e| e["kind"] == "notification").unwrap();
    assert_eq!(notice["details"]["to"], "owner@example.com");
    assert!(notice["details"]["message"].as_str().unwrap().contains(BAD));
    // The owner's mail: the IP, AutoFocus's verdict, and a "talk to a human" link that
    // opens its confirmation page.
    let mails = smtp.wait_for_count(1, 30).await;
    assert_eq!(mails.len(), 1, "one mail, for the bad IP only");
    let mail = &mails[0];
    assert_eq!(mail.to, ["owner@example.com"]);
    assert_eq!(
        mail.subject,
        format!("Osprey blocked {BAD}: AutoFocus says malicious")
    );
    assert!(mail.text.contains("bitcoin-blocked for 30d"), "{}", mail.text);
    assert!(mail.text.contains("Unit42"), "{}", mail.text);
    let talk = crate::streaming_guard::link(mail, "Talk to a human");
    let r = http.get(&talk).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<form"));
    // AutoFocus was asked once per IP (the rule folded the repeats); ipinfo only for the bad one.
    assert_eq!(autofocus.authorized(), 2);
    assert_eq!(ipinfo.authorized(), 1);

    // The firewall pulls the EDL: the bad IP, nothing else; then a 304 while nothing changes.
    let edl = format!("http://{}/edl/bitcoin-blocked.txt", server.addr);
    let r = http
        .get(&edl)
        .basic_auth("panorama", Some(&firewall))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.text().await.unwrap(), format!("{BAD}\n"));
    let r = http
        .get(&edl)
        .basic_auth("panorama", Some(&firewall))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    // The entry says which run put it there and expires in 30 days.
    let entries = json_lines(&cli.ok(&["list", "show", "bitcoin-blocked", "--json"]));
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry["value"], BAD);
    assert!(entry["run_id"].as_str().unwrap().starts_with('r'));
    // The expiry is reckoned when the playbook's step runs, the entry's creation a moment later.
    let days =
        (entry["expires_at"].as_i64().unwrap() - entry["created_at"].as_i64().unwrap()) as f64 / 86_400_000.0;
    assert!((days - 30.0).abs() < 0.001, "{days} days");
    drop(server);
    let audit = cli.ok(&["audit", "show", "-n", "200"]);
    for action in [
        "list.add",
        "incident.update",
        "incident.status",
        "incident.create",
    ] {
        assert!(audit.contains(action), "{action} not audited:\n{audit}");
    }
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
    // The IPs' indicators: three and two sightings; AutoFocus's verdict on the bad one, kept
    // by its run (audited as the run).
    let indicator = |ip: &str| -> Value {
        serde_json::from_str(&cli.ok(&["indicator", "show", "ip", ip, "--json"])).unwrap()
    };
    let (bad_ip, good_ip) = (indicator(BAD), indicator(GOOD));
    assert_eq!(
        (bad_ip["sightings"].as_i64(), good_ip["sightings"].as_i64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (bad_ip["verdict"].as_str(), bad_ip["score"].as_i64()),
        (Some("malicious"), Some(90))
    );
    assert_eq!(bad_ip["sources"][0]["source"], "autofocus");
    assert_eq!(good_ip["verdict"], "unknown");
    let set = cli.ok(&["audit", "export", "--action", "indicator.set"]);
    assert_eq!(set.lines().count(), 1, "{set}");
    assert!(set.contains("\"actor\":\"run:r"), "{set}");
}
