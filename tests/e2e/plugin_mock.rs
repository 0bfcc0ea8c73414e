//! Mock mode through the real binary: ipinfo, installed and pointed at a fake ipinfo on
//! loopback, is mocked with canned cases and then with generated data; a playbook run and
//! direct calls get the mock's answers while the fake vendor counts zero requests; off again,
//! the fake answers. Cases that do not fit are refused; every change is audited; the mock
//! shows in `plugin list`, `inspect`, the journal, the API and the console, and a running
//! server picks up a mock set from the command line.

use crate::api::{set_password, sign_in};
use crate::support::fake_ipinfo::FakeIpinfo;
use crate::support::{Cli, Server, audit_export, dist, eventually, http_client, run_id, text};
use serde_json::{Value, json};
use sha2::Digest as _;

const TOKEN: &str = "tok_mock_91c2";

const CASES: &str = r#"
[[mock]]
plugin = "ipinfo"
action = "lookup"
when = { ip = "203.0.113.7" }
output = { ip = "203.0.113.7", country = "NL", org = "AS64500 Example Hosting B.V.", asn = "AS64500" }
"#;

/// ipinfo installed, granted, with its token, and pointed at `fake`; and the bundled
/// ip-enrichment playbook.
fn setup(cli: &Cli, fake: &FakeIpinfo) {
    cli.ok(&["plugin", "install", dist().join("ipinfo").to_str().unwrap()]);
    cli.ok(&[
        "plugin",
        "config",
        "ipinfo",
        &format!("base_url={}", fake.base_url()),
    ]);
    cli.ok(&[
        "plugin",
        "grant",
        "ipinfo",
        "--requested",
        "--http",
        &fake.base_url(),
    ]);
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], TOKEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/ip-enrichment");
    let to = cli.playbooks_dir().join("ip-enrichment");
    std::fs::create_dir_all(&to).unwrap();
    for file in ["playbook.toml", "playbook.rhai"] {
        std::fs::copy(bundled.join(file), to.join(file)).unwrap();
    }
}

fn call(cli: &Cli, ip: &str) -> (bool, Value) {
    let input = json!({ "ip": ip }).to_string();
    let out = cli.run(&["plugin", "call", "ipinfo", "lookup", "--input", &input, "--json"]);
    let stdout = text(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    (out.status.success(), v)
}

fn list_json(cli: &Cli) -> Value {
    let list: Value = serde_json::from_str(&cli.ok(&["plugin", "list", "--json"])).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ipinfo")
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mocked_plugin_answers_from_cases_or_generated_data_and_never_reaches_the_vendor() {
    let fake = FakeIpinfo::start(TOKEN).await;
    let cli = Cli::new();
    setup(&cli, &fake);
    let cases = cli.data_dir().join("ipinfo-cases.toml");
    std::fs::write(&cases, CASES).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(CASES.as_bytes()));

    // Cases that do not fit the plugin are refused, naming the case; nothing is set.
    let bad = cli.data_dir().join("bad.toml");
    std::fs::write(&bad, CASES.replace("country = \"NL\"", "country = 31")).unwrap();
    let err = cli.fails(&["plugin", "mock", "ipinfo", "--cases", bad.to_str().unwrap()]);
    assert!(
        err.contains("case 1") && err.contains("output schema") && err.contains("country"),
        "{err}"
    );
    std::fs::write(&bad, CASES.replace("action = \"lookup\"", "action = \"whois\"")).unwrap();
    let err = cli.fails(&["plugin", "mock", "ipinfo", "--cases", bad.to_str().unwrap()]);
    assert!(err.contains("no action 'whois'"), "{err}");
    // A huge file is refused before it is read.
    std::fs::write(&bad, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    let err = cli.fails(&["plugin", "mock", "ipinfo", "--cases", bad.to_str().unwrap()]);
    assert!(err.contains("larger than"), "{err}");
    assert_eq!(list_json(&cli)["mock"], Value::Null);

    // Mocked with the cases: list, inspect and the mock's own view say so.
    let out = cli.ok(&["plugin", "mock", "ipinfo", "--cases", cases.to_str().unwrap()]);
    assert!(out.contains("MOCK") && out.contains(&digest[..12]), "{out}");
    let listed = cli.ok(&["plugin", "list"]);
    let row = listed.lines().find(|l| l.starts_with("ipinfo")).unwrap();
    assert!(row.contains("MOCK"), "{listed}");
    assert_eq!(list_json(&cli)["mock"]["cases_digest"], digest.as_str());
    assert!(
        cli.ok(&["plugin", "inspect", "ipinfo"])
            .contains("MOCK: answers from cases")
    );
    assert!(cli.ok(&["plugin", "mock", "ipinfo"]).contains("MOCK"));

    // A playbook run gets the canned answer; the step is marked; the vendor saw nothing.
    let input = r#"{"ip":"203.0.113.7","watch_countries":["NL"]}"#;
    let out = cli.ok(&["playbook", "run", "ip-enrichment", "--input", input]);
    assert!(out.contains("invoke ipinfo.lookup MOCK"), "{out}");
    let id = run_id(&out);
    let run: Value = serde_json::from_str(&cli.ok(&["run", "show", &id, "--json"])).unwrap();
    assert_eq!(run["run"]["status"], "completed", "{run}");
    assert_eq!(run["run"]["output"]["verdict"], "suspicious", "{run}");
    assert_eq!(run["run"]["output"]["asn"], "AS64500", "{run}");
    let step = &run["steps"][0];
    assert_eq!(step["kind"], "invoke", "{run}");
    assert_eq!(step["request"]["mocked"], true, "{run}");
    assert_eq!(fake.requests(), 0);

    // An input no case answers is an error naming the action; a bad input is still refused
    // by the input schema.
    let (ok, v) = call(&cli, "8.8.8.8");
    assert!(!ok);
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ipinfo/lookup") && msg.contains("no case answers"),
        "{v}"
    );
    assert_eq!(v["error"]["mocked"], true, "{v}");
    let out = cli.run(&["plugin", "call", "ipinfo", "lookup", "--input", "{}", "--json"]);
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v["error"]["kind"], "invalid-input", "{v}");
    assert_eq!(fake.requests(), 0);

    // Generated data: valid against the action's output schema, the same for the same input.
    cli.ok(&["plugin", "mock", "ipinfo", "--generate"]);
    let inspect: Value = serde_json::from_str(&cli.ok(&["plugin", "inspect", "ipinfo", "--json"])).unwrap();
    let schema = &inspect["actions"][0]["output_schema"];
    let validator = jsonschema::validator_for(schema).unwrap();
    let (ok, first) = call(&cli, "8.8.8.8");
    assert!(ok, "{first}");
    assert_eq!(first["ok"]["mocked"], true, "{first}");
    assert!(first["ok"]["http"].as_array().unwrap().is_empty(), "{first}");
    let output = &first["ok"]["output"];
    let problems: Vec<String> = validator.iter_errors(output).map(|e| e.to_string()).collect();
    assert!(problems.is_empty(), "{output}: {problems:?}");
    assert!(output["ip"].is_string(), "{output}");
    let (_, again) = call(&cli, "8.8.8.8");
    assert_eq!(again["ok"]["output"], *output, "a replay gets the same data");
    for ip in ["1.1.1.1", "9.9.9.9", "2001:db8::1"] {
        let (ok, v) = call(&cli, ip);
        assert!(ok, "{v}");
        assert!(validator.iter_errors(&v["ok"]["output"]).next().is_none(), "{v}");
    }
    assert_eq!(fake.requests(), 0);

    // Off: the (fake) vendor answers again, and nothing is marked.
    let out = cli.ok(&["plugin", "mock", "ipinfo", "--off"]);
    assert!(out.contains("no longer mocked"), "{out}");
    let (ok, v) = call(&cli, "8.8.8.8");
    assert!(ok, "{v}");
    assert_eq!(v["ok"]["output"]["country"], "US", "{v}");
    assert_eq!(v["ok"].get("mocked"), None, "{v}");
    assert_eq!(fake.requests(), 1);
    let listed = cli.ok(&["plugin", "list"]);
    assert!(!listed.contains("MOCK"), "{listed}");
    assert_eq!(list_json(&cli)["mock"], Value::Null);
    assert!(
        cli.ok(&["plugin", "mock", "ipinfo", "--off"])
            .contains("was not in mock mode")
    );

    // Audited on and off, by whom, with the cases' digest (never their text); the refused
    // attempts changed nothing and audited nothing.
    let audit = audit_export(&cli);
    let of = |action: &str| -> Vec<&Value> { audit.iter().filter(|e| e["action"] == action).collect() };
    let on = of("plugin.mock");
    assert_eq!(on.len(), 2, "{audit:?}");
    assert_eq!(on[0]["target"], "plugin:ipinfo");
    assert_eq!(on[0]["details"]["cases_sha256"], digest.as_str());
    assert_eq!(on[1]["details"]["generate"], true);
    assert!(on[0]["actor"].as_str().unwrap().starts_with("cli:"), "{}", on[0]);
    let off = of("plugin.unmock");
    assert_eq!(off.len(), 1, "{audit:?}");
    assert_eq!(off[0]["details"]["generate"], true);
    assert!(
        !serde_json::to_string(&audit)
            .unwrap()
            .contains("AS64500 Example Hosting")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_picks_up_a_mock_and_shows_it_in_the_api_and_the_console() {
    let fake = FakeIpinfo::start(TOKEN).await;
    let cli = Cli::new();
    setup(&cli, &fake);
    cli.ok(&[
        "user",
        "add",
        "olivia",
        "--email",
        "olivia@example.com",
        "--role",
        "operator",
    ]);
    set_password(&cli, "olivia");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let (cookie, csrf) = sign_in(&base, "olivia").await;
    let http = http_client();
    let plugin = async |http: &reqwest::Client| -> Value {
        let r = http
            .get(format!("{base}/api/v1/plugins/ipinfo"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    };
    assert_eq!(plugin(&http).await["mock"], Value::Null);

    // Set from the command line while the server runs: the server picks it up.
    let cases = cli.data_dir().join("ipinfo-cases.toml");
    std::fs::write(&cases, CASES).unwrap();
    cli.ok(&["plugin", "mock", "ipinfo", "--cases", cases.to_str().unwrap()]);
    let shown = eventually(30, "the server to pick up the mock", async || {
        let p = plugin(&http).await;
        (!p["mock"].is_null()).then_some(p)
    })
    .await;
    assert_eq!(shown["mock"]["generate"], false);
    assert_eq!(shown["mock"]["cases_sha256"].as_str().map(str::len), Some(64));

    // The console shows a MOCK badge on the plugins page and the plugin's page.
    for page in ["/plugins", "/plugins/ipinfo"] {
        let html = http
            .get(format!("{base}{page}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("class=\"badge mock\""), "{page}: {html}");
    }

    // The console's form: the API as the signed-in operator, with the CSRF token. Cases
    // that break the output schema are refused with 400.
    let put = |body: Value| {
        http.put(format!("{base}/api/v1/plugins/ipinfo/mock"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&body)
            .send()
    };
    let r = put(json!({ "cases": CASES.replace("\"NL\"", "[1]") }))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.unwrap();
    assert!(
        problem["title"]
            .as_str()
            .unwrap_or_default()
            .contains("output schema"),
        "{problem}"
    );
    let r = put(json!({ "generate": true })).await.unwrap();
    assert_eq!(r.status(), 200);
    let detail: Value = r.json().await.unwrap();
    assert_eq!(detail["mock"]["generate"], true, "{detail}");
    assert_eq!(detail["mock"]["set_by"], "user:olivia", "{detail}");
    // Without the CSRF token, refused.
    let r = http
        .delete(format!("{base}/api/v1/plugins/ipinfo/mock"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .delete(format!("{base}/api/v1/plugins/ipinfo/mock"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["mock"], Value::Null);
    let audit = audit_export(&cli);
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "plugin.unmock" && e["actor"] == "user:olivia"),
        "{audit:?}"
    );
    assert_eq!(fake.requests(), 0);
    server.assert_healthy().await;
}
