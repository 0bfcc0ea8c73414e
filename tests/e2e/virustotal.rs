//! The virustotal connector, written in Python (plugins/virustotal on plugins/sdk-python),
//! through the path a third party's plugin takes: `osprey pack build` of what
//! `scripts/build-plugins.sh` made, signed with a publisher key the operator trusts,
//! installed from the pack, granted, given its API key, and called by hand and by a playbook
//! against a fake VirusTotal on loopback that follows the real paths, auth header, JSON and
//! error bodies.

use crate::packs::{key_line, keypair, s};
use crate::support::fake_virustotal::FakeVirusTotal;
use crate::support::{Cli, dist, run_id, text, write_playbook};
use serde_json::{Value, json};

const KEY: &str = "vt_5e0c9d2b7a41f86e3d";

/// `osprey plugin call virustotal ACTION` with `input`: (succeeded, the JSON answer, stderr).
fn call(cli: &Cli, action: &str, input: Value) -> (bool, Value, String) {
    let input = input.to_string();
    let out = cli.run(&[
        "plugin",
        "call",
        "virustotal",
        action,
        "--input",
        &input,
        "--json",
    ]);
    let stdout = text(&out.stdout);
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    let said = format!("{stdout}{}", text(&out.stderr));
    (out.status.success(), v, said)
}

fn set_key(cli: &Cli, key: &str) -> String {
    let out = cli.run_with_stdin(&["secret", "set", "virustotal", "api-key"], &format!("{key}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_virustotal_connector_installs_from_a_signed_pack_and_serves_a_playbook() {
    let fake = FakeVirusTotal::start(KEY).await;
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let mut printed = String::new();

    // Pack what build-plugins.sh built, sign it, trust the signer, install the signed pack.
    let pack = work.path().join("virustotal.ospack");
    printed += &cli.ok(&["pack", "build", s(&dist().join("virustotal")), "-o", s(&pack)]);
    let (sk, pk) = keypair(work.path(), "threatintel", None);
    printed += &cli.ok(&["pack", "sign", s(&pack), "--key", s(&sk)]);
    printed += &cli.ok(&["trust", "add", "threatintel", &key_line(&pk)]);
    let installed = cli.ok(&["plugin", "install", s(&pack), "--grant-requested"]);
    printed += &installed;
    for want in [
        "signed by 'threatintel'",
        "installed virustotal 0.1.0",
        "https://www.virustotal.com/api/v3",
        "api-key",
        "domain-report",
        "ip-report",
    ] {
        assert!(installed.contains(want), "{want} in:\n{installed}");
    }

    // Point it at the fake, name the fake in the grant, give it the key.
    printed += &cli.ok(&[
        "plugin",
        "config",
        "virustotal",
        &format!("base_url={}", fake.base_url()),
    ]);
    printed += &cli.ok(&["plugin", "grant", "virustotal", "--http", &fake.base_url()]);
    printed += &set_key(&cli, KEY);

    let (ok, v, out) = call(&cli, "domain-report", json!({"domain": "Malware.Example."}));
    printed += &out;
    assert!(ok, "{out}");
    assert_eq!(
        v["ok"]["output"],
        json!({
            "domain": "malware.example",
            "reputation": -42,
            "malicious": true,
            "last_analysis_stats": {"harmless": 51, "malicious": 9, "suspicious": 2, "undetected": 30, "timeout": 0},
            "last_analysis_date": 1_765_000_000,
            "categories": {"Forcepoint ThreatSeeker": "malicious web sites", "BitDefender": "malware"},
            "creation_date": 1_700_000_000
        })
    );
    assert_eq!(
        v["ok"]["http"][0]["url"],
        format!("{}/api/v3/domains/malware.example", fake.base_url())
    );

    let (ok, v, out) = call(&cli, "ip-report", json!({"ip": "8.8.8.8"}));
    printed += &out;
    assert!(ok, "{out}");
    assert_eq!(
        v["ok"]["output"],
        json!({
            "ip": "8.8.8.8",
            "reputation": 536,
            "malicious": false,
            "last_analysis_stats": {"harmless": 62, "malicious": 0, "suspicious": 0, "undetected": 30, "timeout": 0},
            "last_analysis_date": 1_765_100_000,
            "as_owner": "GOOGLE",
            "asn": 15169,
            "country": "US",
            "network": "8.8.8.0/24"
        })
    );
    assert_eq!(fake.authorized(), 2);

    // VirusTotal's answers become the kinds a playbook acts on.
    let expect_error =
        |printed: &mut String, action: &str, input: Value, kind: &str, says: &str, retryable: bool| {
            let (ok, v, out) = call(&cli, action, input);
            printed.push_str(&out);
            assert!(!ok, "{out}");
            assert_eq!(v["error"]["kind"], kind, "{v}");
            assert_eq!(v["error"]["retryable"], retryable, "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{says} in {message}");
        };
    expect_error(
        &mut printed,
        "domain-report",
        json!({"domain": "unknown.example"}),
        "not-found",
        "VirusTotal has no report on domain unknown.example",
        false,
    );
    expect_error(
        &mut printed,
        "ip-report",
        json!({"ip": "192.0.2.7"}),
        "not-found",
        "NotFoundError",
        false,
    );
    expect_error(
        &mut printed,
        "domain-report",
        json!({"domain": "quota.example"}),
        "rate-limited",
        "429 QuotaExceededError: Quota exceeded",
        true,
    );
    expect_error(
        &mut printed,
        "domain-report",
        json!({"domain": "busy.example"}),
        "rate-limited",
        "TooManyRequestsError",
        true,
    );
    expect_error(
        &mut printed,
        "ip-report",
        json!({"ip": "not-an-ip"}),
        "invalid-input",
        "is not an IPv4 or IPv6 address",
        false,
    );
    let before = fake.requests();
    printed += &set_key(&cli, "vt_wrong_key");
    expect_error(
        &mut printed,
        "domain-report",
        json!({"domain": "malware.example"}),
        "denied",
        "WrongCredentialsError",
        false,
    );
    assert_eq!(fake.requests(), before + 1, "the wrong key reached the fake once");
    printed += &set_key(&cli, KEY);

    // Called by a playbook: two reports and a lookup that finds nothing, caught by kind.
    write_playbook(
        &cli.playbooks_dir(),
        "vt-triage",
        "[inputs.domain]\ntype = \"string\"\n[inputs.ip]\ntype = \"string\"\n",
        r#"
        let d = invoke("virustotal", "domain-report", #{ domain: input.domain });
        let i = invoke("virustotal", "ip-report", #{ ip: input.ip });
        let unknown = "";
        try { invoke("virustotal", "domain-report", #{ domain: "nobody.example" }); } catch (e) { unknown = e.kind; }
        #{ block: d.malicious || i.malicious, owner: i.as_owner, bad_engines: d.last_analysis_stats.malicious, unknown: unknown }
        "#,
    );
    let out = cli.ok(&[
        "playbook",
        "run",
        "vt-triage",
        "--input",
        r#"{"domain":"malware.example","ip":"8.8.8.8"}"#,
    ]);
    printed += &out;
    let id = run_id(&out);
    assert!(out.contains(&format!("run {id} completed")), "{out}");
    let shown: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(
        shown["run"]["output"],
        json!({"block": true, "owner": "GOOGLE", "bad_engines": 9, "unknown": "not-found"})
    );
    assert_eq!(shown["steps"].as_array().unwrap().len(), 3, "{shown}");

    // The key went to the fake in its header, and nowhere else.
    printed += &cli.ok(&["run", "show", &id]);
    printed += &cli.ok(&["plugin", "inspect", "virustotal"]);
    printed += &cli.ok(&["audit", "export"]);
    assert!(!printed.contains(KEY), "the API key was printed:\n{printed}");
}
