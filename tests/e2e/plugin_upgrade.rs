//! `osprey plugin upgrade` through the real binary, from test-echo 0.1.0 to test-echo 0.2.0
//! (plugins/testing/echo-next, a real second component: it asks for a new host, drops most
//! actions, changes `echo`'s input and adds `shout`): what it shows, what it grants, and the
//! check of the playbooks that call the plugin, which blocks the upgrade unless forced.

use crate::packs::s;
use crate::support::{Cli, audit_export, dist, text, write_playbook};
use std::path::PathBuf;

fn next() -> PathBuf {
    let dir = dist().join("test-echo-0.2.0");
    assert!(
        dir.join("plugin.toml").exists(),
        "test-echo 0.2.0 is not built: run scripts/build-plugins.sh"
    );
    dir
}

fn inspect(cli: &Cli) -> serde_json::Value {
    serde_json::from_str(&cli.ok(&["plugin", "inspect", "test-echo", "--json"])).unwrap()
}

fn audited(cli: &Cli, action: &str) -> Vec<serde_json::Value> {
    audit_export(cli)
        .into_iter()
        .filter(|e| e["action"] == action)
        .collect()
}

fn install_echo(cli: &Cli) {
    let said = cli.ok(&["plugin", "install", s(&dist().join("test-echo")), "--yes"]);
    assert!(said.contains("installed test-echo 0.1.0"), "{said}");
}

#[test]
fn an_upgrade_shows_both_diffs_and_grants_a_new_host_only_when_approved() {
    let cli = Cli::new();
    let refused = cli.fails(&["plugin", "upgrade", "test-echo", s(&next())]);
    assert!(
        refused.contains("plugin 'test-echo' is not installed, so there is nothing to upgrade"),
        "{refused}"
    );
    install_echo(&cli);
    let refused = cli.fails(&["plugin", "upgrade", "test-echo", s(&dist().join("test-hostile"))]);
    assert!(
        refused.contains("the source holds plugin 'test-hostile', not 'test-echo'"),
        "{refused}"
    );

    let said = cli.ok(&["plugin", "upgrade", "test-echo", s(&next())]);
    for line in [
        "test-echo 0.2.0",
        "signed: folder, unsigned",
        "Upgrading from test-echo 0.1.0. Changes in what it requests:",
        "  + http https://echo.example.com",
        "  + action shout",
        "  - action kv-get",
        "  ~ action echo: its input schema changed",
        "No playbook calls it.",
        "installed test-echo 0.2.0",
        "not granted yet: http https://echo.example.com. Grant with `osprey plugin grant test-echo --requested`",
        "kept 0.1.0 with its grant",
    ] {
        assert!(said.contains(line), "missing {line:?} in:\n{said}");
    }
    assert!(!said.contains("- action noop"), "{said}");
    let now = inspect(&cli);
    assert_eq!(now["version"], "0.2.0");
    assert_eq!(now["granted"]["secrets"], serde_json::json!(["greeting"]));
    assert!(now["granted"].get("http").is_none(), "{now}");

    let upgrades = audited(&cli, "plugin.upgrade");
    assert_eq!(upgrades.len(), 1);
    let d = &upgrades[0]["details"];
    assert_eq!(d["version"], "0.2.0");
    assert_eq!(d["previous"], "0.1.0");
    assert_eq!(d["signer"], "folder, unsigned");
    assert_eq!(
        d["capability_diff"]["added"],
        serde_json::json!(["http https://echo.example.com"])
    );
    assert_eq!(d["action_diff"]["added"], serde_json::json!(["shout"]));
    assert_eq!(d["action_diff"]["input_changed"], serde_json::json!(["echo"]));
    assert!(
        d["action_diff"]["removed"]
            .as_array()
            .unwrap()
            .contains(&"kv-get".into()),
        "{d}"
    );
    assert_eq!(d["playbooks"]["forced"], false);

    // Back to 0.1.0, and up again approving what it requests: now the host is granted.
    cli.ok(&["plugin", "rollback", "test-echo"]);
    assert_eq!(inspect(&cli)["version"], "0.1.0");
    let said = cli.ok(&["plugin", "upgrade", "test-echo", s(&next()), "--yes"]);
    assert!(said.contains("granted what it requests"), "{said}");
    let now = inspect(&cli);
    assert_eq!(now["version"], "0.2.0");
    assert_eq!(
        now["granted"]["http"],
        serde_json::json!(["https://echo.example.com"])
    );
}

/// A playbook folder in `cli`'s playbooks with one test case.
fn playbook_with_test(cli: &Cli, name: &str, script: &str, case: &str) {
    let pb = write_playbook(&cli.playbooks_dir(), name, "", script);
    std::fs::create_dir_all(pb.join("tests")).unwrap();
    std::fs::write(pb.join("tests/case.toml"), case).unwrap();
}

#[test]
fn an_upgrade_that_breaks_a_playbook_is_refused_naming_it_and_force_goes_ahead() {
    let cli = Cli::new();
    install_echo(&cli);
    // Uses `echo` as 0.1.0 takes it (0.2.0 requires `loud`) and `kv-get` (gone in 0.2.0).
    playbook_with_test(
        &cli,
        "echo-user",
        r#"let said = invoke("test-echo", "echo", #{ message: "hi" });
let kept = invoke("test-echo", "kv-get", #{ key: "k" });
#{ said: said.message, kept: kept.value }"#,
        r#"
[[mock]]
plugin = "test-echo"
action = "echo"
output = { message = "hi" }
[[mock]]
plugin = "test-echo"
action = "kv-get"
output = { value = "v" }
[expect]
status = "completed"
output = { said = "hi", kept = "v" }
"#,
    );
    // Uses only `noop`, which 0.2.0 keeps.
    playbook_with_test(
        &cli,
        "echo-noop",
        r#"invoke("test-echo", "noop", #{}); "done""#,
        "[[mock]]\nplugin = \"test-echo\"\naction = \"noop\"\n[expect]\nstatus = \"completed\"\noutput = \"done\"\n",
    );
    // Their tests pass today.
    let today = cli.ok(&["playbook", "test"]);
    assert!(today.contains("2 passed, 0 failed"), "{today}");

    let out = cli.run(&["plugin", "upgrade", "test-echo", s(&next()), "--yes"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout
            .contains("Playbooks that call it: echo-noop, echo-user (2 test cases run against this version)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "FAILED  playbook 'echo-user': it calls invoke(\"test-echo\", \"kv-get\", ...), and test-echo 0.2.0 has no action 'kv-get'"
        ),
        "{stdout}"
    );
    let case_line = stdout
        .lines()
        .find(|l| l.contains("FAILED  playbook 'echo-user', tests/case.toml:"))
        .unwrap_or_else(|| panic!("no failed case in:\n{stdout}"));
    assert!(
        case_line.contains(
            "refused: test-echo.echo {\"message\":\"hi\"}: input of test-echo/echo does not match its schema"
        ) && case_line.contains("\"loud\" is a required property"),
        "{case_line}"
    );
    assert!(!stdout.contains("playbook 'echo-noop'"), "{stdout}");
    assert!(
        stderr.contains("not upgraded: 2 playbook check(s) fail with test-echo 0.2.0"),
        "{stderr}"
    );
    assert_eq!(inspect(&cli)["version"], "0.1.0");
    assert!(audited(&cli, "plugin.upgrade").is_empty());

    let out = cli.run(&["plugin", "upgrade", "test-echo", s(&next()), "--yes", "--force"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("WARNING: --force: upgrading although 2 playbook check(s) fail"),
        "{stderr}"
    );
    assert_eq!(inspect(&cli)["version"], "0.2.0");
    let upgrades = audited(&cli, "plugin.upgrade");
    let checked = &upgrades[0]["details"]["playbooks"];
    assert_eq!(checked["forced"], true);
    assert_eq!(checked["checked"], serde_json::json!(["echo-noop", "echo-user"]));
    let failures = checked["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 2, "{checked}");
    assert!(failures.iter().all(|f| f["playbook"] == "echo-user"), "{checked}");
    assert_eq!(failures[1]["test"], "tests/case.toml");

    // The playbook's own tests see no difference (they mock the plugin); the upgrade's check
    // is what found the break.
    let after = cli.ok(&["playbook", "test"]);
    assert!(after.contains("2 passed, 0 failed"), "{after}");
}

#[test]
fn upgrade_help_has_examples() {
    let cli = Cli::new();
    let help = cli.ok(&["plugin", "upgrade", "--help"]);
    assert!(help.contains("Examples:"), "{help}");
    assert!(
        help.contains("osprey plugin upgrade ipinfo ipinfo-0.2.0.ospack"),
        "{help}"
    );
    assert!(help.contains("--force"), "{help}");
}
