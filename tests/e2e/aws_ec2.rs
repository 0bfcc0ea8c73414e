//! The AWS EC2 connector, end to end through the real binary: install, grant, secrets,
//! region and endpoint settings, `osprey plugin call` against a fake EC2 on loopback that
//! checks every SigV4 signature with the same secret key (run with tags, describe, tag,
//! terminate; not found, malformed, throttled, a wrong secret), temporary credentials, and a
//! playbook whose launch, taken again with the same idempotency key, launches once.

use crate::support::fake_aws_ec2::FakeEc2;
use crate::support::{Cli, connector, dist, run_id, text, write_playbook};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const REGION: &str = "us-east-1";
const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7OSPREY1";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYOSPREYKEY1";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEOSPREYSESSIONTOKEN0001";
const WRONG_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGKEY99";

/// `osprey plugin call aws-ec2 ACTION --input INPUT --json`: success, and the `ok` output or
/// the `error`.
fn call(cli: &Cli, action: &str, input: Value, printed: &mut String) -> (bool, Value) {
    connector::call(cli, "aws-ec2", action, &input, printed)
}

fn ok(cli: &Cli, action: &str, input: Value, printed: &mut String) -> Value {
    let (ok, v) = call(cli, action, input, printed);
    assert!(ok, "{action}: {v}");
    v
}

fn set_secret(cli: &Cli, name: &str, value: &str) {
    connector::set_secret(cli, "aws-ec2", name, value, &mut String::new());
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_ec2_end_to_end() {
    let fake = FakeEc2::start(REGION, ACCESS_KEY_ID, SECRET_ACCESS_KEY).await;
    let cli = Cli::new();
    let mut printed = String::new();
    let p = &mut printed;

    p.push_str(&cli.ok(&["plugin", "install", dist().join("aws-ec2").to_str().unwrap()]));
    p.push_str(&cli.ok(&["plugin", "grant", "aws-ec2", "--requested"]));
    set_secret(&cli, "access-key-id", ACCESS_KEY_ID);
    set_secret(&cli, "secret-access-key", SECRET_ACCESS_KEY);

    // No region: the plugin says which setting to set.
    let (_, e) = call(&cli, "describe-instances", json!({}), p);
    assert_eq!(e["kind"], "invalid-input", "{e}");
    assert!(e["message"].as_str().unwrap().contains("region=eu-west-1"), "{e}");
    p.push_str(&cli.ok(&["plugin", "config", "aws-ec2", &format!("region={REGION}")]));
    p.push_str(&cli.ok(&[
        "plugin",
        "config",
        "aws-ec2",
        &format!("endpoint={}", fake.endpoint()),
    ]));
    // The endpoint is not granted yet: nothing reaches it.
    let (_, e) = call(&cli, "describe-instances", json!({}), p);
    assert_eq!(e["kind"], "denied", "{e}");
    p.push_str(&cli.ok(&["plugin", "grant", "aws-ec2", "--http", &fake.endpoint()]));

    // Run one instance with tags: they are applied at launch; it starts pending.
    let run = ok(
        &cli,
        "run-instances",
        json!({"image_id": "ami-0abcdef1234567890", "instance_type": "t3.micro",
               "subnet_id": "subnet-0bb1c79de3example", "tags": {"Name": "forensics", "Case": "INC0010001"}}),
        p,
    );
    let instances = run["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{run}");
    let id = instances[0]["instance_id"].as_str().unwrap().to_owned();
    assert!(run["reservation_id"].as_str().unwrap().starts_with("r-"), "{run}");
    assert_eq!(instances[0]["state"], "pending");
    assert_eq!(instances[0]["instance_type"], "t3.micro");
    assert_eq!(instances[0]["subnet_id"], "subnet-0bb1c79de3example");
    assert_eq!(
        instances[0]["tags"],
        json!({"Name": "forensics", "Case": "INC0010001"})
    );
    assert!(
        instances[0]["launch_time"].as_str().unwrap().ends_with('Z'),
        "{run}"
    );
    assert_eq!(fake.launched(), 1);
    assert_eq!(
        fake.instance(&id).unwrap().tags,
        tags(&[("Case", "INC0010001"), ("Name", "forensics")])
    );

    // Describe it by id (it runs now), and find it by a tag filter.
    let described = ok(&cli, "describe-instances", json!({"instance_ids": [id]}), p);
    let one = &described["instances"][0];
    assert_eq!(
        (one["instance_id"].as_str(), one["state"].as_str()),
        (Some(id.as_str()), Some("running"))
    );
    assert!(
        one["private_ip"].as_str().unwrap().starts_with("10.0.1."),
        "{one}"
    );
    assert!(
        one["public_ip"].as_str().unwrap().starts_with("203.0.113."),
        "{one}"
    );
    assert_eq!(described["next_token"], Value::Null);
    let found = ok(
        &cli,
        "describe-instances",
        json!({"filters": {"tag:Case": ["INC0010001"], "instance-state-name": ["running"]}}),
        p,
    );
    assert_eq!(found["instances"].as_array().unwrap().len(), 1, "{found}");
    let none = ok(
        &cli,
        "describe-instances",
        json!({"filters": {"tag:Case": ["INC0099999"]}}),
        p,
    );
    assert_eq!(none["instances"], json!([]));

    // Tag it: the new tag joins the old ones.
    let tagged = ok(
        &cli,
        "create-tags",
        json!({"resource_ids": [id], "tags": {"quarantine": "yes & isolated"}}),
        p,
    );
    assert_eq!(tagged["resource_ids"], json!([id]));
    assert_eq!(
        fake.instance(&id).unwrap().tags,
        tags(&[
            ("Case", "INC0010001"),
            ("Name", "forensics"),
            ("quarantine", "yes & isolated")
        ])
    );

    // Unknown and malformed ids, in EC2's words.
    let (_, e) = call(
        &cli,
        "describe-instances",
        json!({"instance_ids": ["i-0123456789abcdef0"]}),
        p,
    );
    assert_eq!(e["kind"], "not-found", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("InvalidInstanceID.NotFound: The instance ID 'i-0123456789abcdef0' does not exist"),
        "{e}"
    );
    let (_, e) = call(
        &cli,
        "terminate-instances",
        json!({"instance_ids": ["nonsense"]}),
        p,
    );
    assert_eq!(e["kind"], "invalid-input", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("InvalidInstanceID.Malformed"),
        "{e}"
    );

    // Throttled: rate-limited, worth a retry.
    fake.throttle(true);
    let (_, e) = call(&cli, "describe-instances", json!({"instance_ids": [id]}), p);
    assert_eq!(e["kind"], "rate-limited", "{e}");
    assert_eq!(e["retryable"], true, "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("HTTP 503 RequestLimitExceeded"),
        "{e}"
    );
    fake.throttle(false);

    // Terminate: running → shutting-down, and terminated by the next look.
    let gone = ok(&cli, "terminate-instances", json!({"instance_ids": [id]}), p);
    assert_eq!(
        gone["instances"],
        json!([{"instance_id": id, "previous_state": "running", "current_state": "shutting-down"}])
    );
    let after = ok(&cli, "describe-instances", json!({"instance_ids": [id]}), p);
    assert_eq!(after["instances"][0]["state"], "terminated");

    // Five at once, all or none; a search pages by max_results and next_token.
    let five = ok(
        &cli,
        "run-instances",
        json!({"image_id": "ami-0abcdef1234567890", "instance_type": "t3.nano", "count": 5}),
        p,
    );
    assert_eq!(five["instances"].as_array().unwrap().len(), 5, "{five}");
    assert_eq!(fake.launched(), 6);
    let page = ok(&cli, "describe-instances", json!({"max_results": 5}), p);
    assert_eq!(page["instances"].as_array().unwrap().len(), 5, "{page}");
    let token = page["next_token"].as_str().unwrap();
    let last = ok(
        &cli,
        "describe-instances",
        json!({"max_results": 5, "next_token": token}),
        p,
    );
    assert_eq!(last["instances"].as_array().unwrap().len(), 1, "{last}");
    assert_eq!(last["next_token"], Value::Null);
    let (_, e) = call(
        &cli,
        "run-instances",
        json!({"image_id": "ami-0abcdef1234567890", "instance_type": "t3.nano", "count": 11}),
        p,
    );
    assert_eq!(e["kind"], "invalid-input", "{e}");

    // Temporary credentials: the session token is sent, signed, and checked by the fake.
    set_secret(&cli, "session-token", SESSION_TOKEN);
    ok(&cli, "describe-instances", json!({"max_results": 5}), p);
    assert_eq!(fake.last_session_token().as_deref(), Some(SESSION_TOKEN));
    let out = cli.run(&["secret", "delete", "aws-ec2", "session-token"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    p.push_str(&text(&out.stdout));

    // A playbook launches an instance; its step taken again (a restart: the same run, the
    // same idempotency key, so the same ClientToken) answers with the same instance and
    // launches nothing.
    write_playbook(
        &cli.playbooks_dir(),
        "forensics-box",
        "",
        r#"let run = invoke("aws-ec2", "run-instances", #{ image_id: "ami-0abcdef1234567890", instance_type: "t3.large", tags: #{ Case: "INC0010002" } });
        #{ id: run.instances[0].instance_id }"#,
    );
    let out = cli.ok(&["playbook", "run", "forensics-box"]);
    p.push_str(&out);
    let run = run_id(&out);
    assert!(out.contains(&format!("run {run} completed")), "{out}");
    let first: Value = serde_json::from_str(&cli.ok(&["run", "show", &run, "--json"])).unwrap();
    let box_id = first["run"]["output"]["id"].as_str().unwrap().to_owned();
    assert_ne!(box_id, id);
    assert_eq!(fake.launched(), 7);
    p.push_str(&cli.ok(&["run", "restart", &run, "--from-step", "1", "--follow"]));
    let again: Value = serde_json::from_str(&cli.ok(&["run", "show", &run, "--json"])).unwrap();
    assert_eq!(again["run"]["status"], "completed", "{again}");
    assert_eq!(again["run"]["output"]["id"], box_id.as_str(), "{again}");
    assert_eq!(fake.launched(), 7, "the same ClientToken launched once");

    // A wrong secret key: EC2 computes another signature, and the call is denied.
    set_secret(&cli, "secret-access-key", WRONG_SECRET);
    let (_, e) = call(&cli, "describe-instances", json!({}), p);
    assert_eq!(e["kind"], "denied", "{e}");
    assert_eq!(e["retryable"], false, "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("HTTP 403 SignatureDoesNotMatch"), "{e}");
    assert!(message.contains("osprey secret set aws-ec2"), "{e}");

    for secret in [ACCESS_KEY_ID, SECRET_ACCESS_KEY, WRONG_SECRET, SESSION_TOKEN] {
        assert!(
            !printed.contains(secret),
            "a secret leaked into what Osprey printed"
        );
    }
}
