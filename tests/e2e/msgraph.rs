//! The Microsoft Graph connector, end to end through the real binary: install from
//! plugins/dist, settings naming a fake identity platform and Graph on loopback, the grant,
//! the client secret, `osprey plugin call` and a playbook run. The token is fetched once and
//! reused across calls (each call is a new process and a fresh instance: the token lives in
//! the plugin's kv store), and fetched again when Graph expires it.

use crate::support::fake_msgraph::{ADELE, CLIENT_ID, FakeMsGraph, MIRIAM, SOC_GROUP, TENANT};
use crate::support::{Cli, connector, dist, run_id, write_playbook};
use serde_json::{Value, json};

const SECRET: &str = "Xq78Q~fake.client.secret.Zb3";

struct Graph {
    cli: Cli,
    /// Everything Osprey printed, to check no secret or token ever appears in it.
    printed: String,
}

impl Graph {
    fn ok(&mut self, action: &str, input: Value) -> Value {
        connector::ok(&self.cli, "msgraph", action, &input, &mut self.printed)
    }

    fn fails(&mut self, action: &str, input: Value, kind: &str, needle: &str) -> Value {
        connector::fails(
            &self.cli,
            "msgraph",
            action,
            &input,
            kind,
            needle,
            &mut self.printed,
        )
    }

    fn set_secret(&mut self, value: &str) {
        connector::set_secret(&self.cli, "msgraph", "client-secret", value, &mut self.printed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msgraph_directory_end_to_end() {
    let fake = FakeMsGraph::start(SECRET).await;
    let mut g = Graph {
        cli: Cli::new(),
        printed: String::new(),
    };
    let out = g
        .cli
        .ok(&["plugin", "install", dist().join("msgraph").to_str().unwrap()]);
    assert!(out.contains("https://login.microsoftonline.com"), "{out}");
    for setting in [
        format!("tenant={TENANT}"),
        format!("client_id={CLIENT_ID}"),
        format!("login_base={}", fake.origin()),
        format!("graph_base={}", fake.origin()),
    ] {
        g.cli.ok(&["plugin", "config", "msgraph", &setting]);
    }
    g.cli.ok(&["plugin", "grant", "msgraph", "--requested"]);
    g.cli
        .ok(&["plugin", "grant", "msgraph", "--http", &fake.origin()]);

    // No secret yet: denied with the command that sets it, before anything is sent.
    g.fails(
        "get-user",
        json!({"user": ADELE}),
        "denied",
        "osprey secret set msgraph client-secret",
    );
    assert_eq!(fake.token_requests(), 0);

    // A wrong secret: the identity platform's invalid_client, denied, and Graph never asked.
    g.set_secret("not-the-secret");
    let e = g.fails(
        "get-user",
        json!({"user": ADELE}),
        "denied",
        "invalid_client: AADSTS7000215",
    );
    assert_eq!(e["retryable"], false);
    assert_eq!((fake.token_requests(), fake.graph_requests()), (1, 0));

    // The right one: a user by UPN (any case), with the $select fields.
    g.set_secret(SECRET);
    let adele = g.ok("get-user", json!({"user": "adelev@CONTOSO.example"}));
    assert_eq!(adele["id"], ADELE);
    assert_eq!(adele["display_name"], "Adele Vance");
    assert_eq!(adele["user_principal_name"], "AdeleV@contoso.example");
    assert_eq!(adele["department"], "Retail", "asked for with $select");
    assert_eq!(adele["account_enabled"], true);
    assert!(adele.get("mobile_phone").is_none(), "{adele}");
    assert!(fake.last_query()["$select"].contains("department"));
    assert_eq!(fake.token_requests(), 2);

    // The manager, from another process: the kept token is reused.
    let manager = g.ok("get-manager", json!({"user": ADELE}));
    assert_eq!(manager["id"], MIRIAM);
    assert_eq!(manager["job_title"], "Director");
    assert_eq!(fake.token_requests(), 2, "the token was reused");

    // A group's members, page by page.
    fake.page_size(2);
    let all = g.ok("group-members", json!({"group": SOC_GROUP}));
    assert_eq!(
        (all["count"].as_u64(), all["complete"].as_bool()),
        (Some(5), Some(true)),
        "{all}"
    );
    assert_eq!(all["members"][0]["user_principal_name"], "AdeleV@contoso.example");
    assert_eq!(all["members"][4]["type"], "group");
    assert_eq!(all["members"][4]["display_name"], "SOC Leads");
    assert_eq!(fake.last_query()["$skiptoken"], "4");
    let first = g.ok("group-members", json!({"group": SOC_GROUP, "max_pages": 1}));
    assert_eq!(
        (first["count"].as_u64(), first["complete"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(fake.token_requests(), 2);

    // A playbook asks whose manager someone is.
    write_playbook(
        &g.cli.playbooks_dir(),
        "whose-manager",
        "[inputs.user]\ntype = \"string\"\n",
        r#"
        let m = invoke("msgraph", "get-manager", #{ user: input.user });
        #{ manager: m.user_principal_name, name: m.display_name }
        "#,
    );
    let out = g.cli.ok(&[
        "playbook",
        "run",
        "whose-manager",
        "--input",
        r#"{"user":"GradyA@contoso.example"}"#,
    ]);
    g.printed.push_str(&out);
    let shown: Value = serde_json::from_str(&g.cli.ok(&["run", "show", &run_id(&out), "--json"])).unwrap();
    assert_eq!(shown["run"]["status"], "completed", "{shown}");
    assert_eq!(
        shown["run"]["output"],
        json!({"manager": "MiriamG@contoso.example", "name": "Miriam Graham"})
    );
    assert_eq!(fake.token_requests(), 2);

    // Graph expires the token: the plugin drops it, gets a new one and asks again, once.
    fake.expire_tokens();
    let before = fake.graph_requests();
    assert_eq!(
        g.ok("get-user", json!({"user": MIRIAM}))["display_name"],
        "Miriam Graham"
    );
    assert_eq!(fake.token_requests(), 3, "one new token");
    assert_eq!(
        fake.graph_requests(),
        before + 2,
        "the refused request and its retry"
    );
    g.ok("get-user", json!({"user": MIRIAM}));
    assert_eq!(fake.token_requests(), 3, "and the new one is kept");

    // Not found: no such user, and a user without a manager.
    g.fails(
        "get-user",
        json!({"user": "nobody@contoso.example"}),
        "not-found",
        "Request_ResourceNotFound",
    );
    g.fails(
        "get-manager",
        json!({"user": MIRIAM}),
        "not-found",
        "manager for user",
    );
    g.fails(
        "group-members",
        json!({"group": "00000000-0000-0000-0000-000000000000"}),
        "not-found",
        "group",
    );

    // Throttled: rate-limited, with Graph's wait; down: unavailable, with its wait.
    fake.throttle(Some(17));
    let e = g.fails(
        "get-user",
        json!({"user": ADELE}),
        "rate-limited",
        "TooManyRequests",
    );
    assert_eq!(
        (e["retryable"].as_bool(), e["retry_after_ms"].as_u64()),
        (Some(true), Some(17_000))
    );
    fake.throttle(None);
    fake.outage(Some(5));
    let e = g.fails("get-user", json!({"user": ADELE}), "unavailable", "HTTP 503");
    assert_eq!(e["retry_after_ms"], 5_000);
    fake.outage(None);

    // Input that cannot name one object never leaves the plugin.
    let before = fake.graph_requests();
    g.fails(
        "get-user",
        json!({"user": "../groups/x"}),
        "invalid-input",
        "slash",
    );
    assert_eq!(fake.graph_requests(), before);

    // Neither the client secret nor an access token was ever printed.
    assert!(!g.printed.contains(SECRET), "the client secret leaked");
    assert!(!g.printed.contains(".fake."), "an access token leaked");
}
