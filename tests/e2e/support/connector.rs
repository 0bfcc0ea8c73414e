//! Driving a connector as an operator does, for the connectors' end-to-end tests: calls
//! through `osprey plugin call --json` and secrets through `osprey secret set`, with
//! everything Osprey printed kept so a test can check no secret ever appears in it.

use super::{Cli, text};
use serde_json::Value;

/// `osprey plugin call PLUGIN ACTION --input INPUT --json`: whether it succeeded, and the
/// `ok` output or the `error`. What Osprey printed is added to `printed`.
pub fn call(cli: &Cli, plugin: &str, action: &str, input: &Value, printed: &mut String) -> (bool, Value) {
    let out = cli.run(&[
        "plugin",
        "call",
        plugin,
        action,
        "--input",
        &input.to_string(),
        "--json",
    ]);
    let stdout = text(&out.stdout);
    printed.push_str(&stdout);
    printed.push_str(&text(&out.stderr));
    let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    if out.status.success() {
        (true, v["ok"]["output"].clone())
    } else {
        (false, v["error"].clone())
    }
}

/// `osprey secret set PLUGIN NAME`, the value on stdin; what Osprey printed is added to
/// `printed`.
pub fn set_secret(cli: &Cli, plugin: &str, name: &str, value: &str, printed: &mut String) {
    let out = cli.run_with_stdin(&["secret", "set", plugin, name], value);
    assert!(out.status.success(), "{}", text(&out.stderr));
    printed.push_str(&text(&out.stdout));
}

/// A call that must succeed: its output.
pub fn ok(cli: &Cli, plugin: &str, action: &str, input: &Value, printed: &mut String) -> Value {
    let (ok, v) = call(cli, plugin, action, input, printed);
    assert!(ok, "{action} failed: {v}");
    v
}

/// A call that must fail, with an error of `kind` whose message holds `needle`: the error.
pub fn fails(
    cli: &Cli,
    plugin: &str,
    action: &str,
    input: &Value,
    kind: &str,
    needle: &str,
    printed: &mut String,
) -> Value {
    let (ok, e) = call(cli, plugin, action, input, printed);
    assert!(!ok, "{action} must fail: {e}");
    assert_eq!(e["kind"], kind, "{e}");
    assert!(
        e["message"].as_str().unwrap().contains(needle),
        "'{needle}' not in {e}"
    );
    e
}
