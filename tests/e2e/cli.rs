//! The command line as an operator meets it: help that teaches, errors that say what to do.

use crate::support::{Cli, dist, text};

#[test]
fn help_teaches_with_examples() {
    let cli = Cli::new();
    let top = cli.ok(&["--help"]);
    for needle in [
        "serve",
        "plugin",
        "secret",
        "Getting started",
        "osprey plugin grant ipinfo --requested",
    ] {
        assert!(top.contains(needle), "--help lacks '{needle}':\n{top}");
    }
    let grant = cli.ok(&["plugin", "grant", "--help"]);
    for needle in [
        "--http <PATTERN>",
        "--secret <NAME>",
        "--private-range <CIDR>",
        "--timeout <DURATION>",
        "*.example.com",
    ] {
        assert!(grant.contains(needle), "grant --help lacks '{needle}':\n{grant}");
    }
    let set = cli.ok(&["secret", "set", "--help"]);
    assert!(
        set.contains("stdin") && set.contains("never from the command line"),
        "{set}"
    );
    for sub in [
        vec!["serve"],
        vec!["plugin", "call"],
        vec!["plugin", "install"],
        vec!["plugin", "inspect"],
        vec!["plugin", "revoke"],
        vec!["plugin", "config"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let out = cli.ok(&args);
        assert!(out.len() > 200, "{sub:?} --help is too thin:\n{out}");
    }
}

#[test]
fn mistakes_get_clear_errors() {
    let cli = Cli::new();
    let err = cli.fails(&["plugin", "inspect", "nope"]);
    assert!(
        err.contains("no plugin named 'nope' is installed") && err.contains("osprey plugin install"),
        "{err}"
    );
    let err = cli.fails(&["plugin", "grant", "x", "--http", "ftp://example.com"]);
    assert!(err.contains("http or https"), "{err}");
    let err = cli.fails(&["plugin", "grant", "x", "--requested"]);
    assert!(err.contains("not installed"), "{err}");
    let err = cli.fails(&["plugin", "grant", "x", "--timeout", "soon"]);
    assert!(err.contains("--timeout"), "{err}");
    let err = cli.fails(&["plugin", "grant", "x", "--memory-mib", "100000"]);
    assert!(err.contains("runtime.max_memory_mib"), "{err}");
    let out = cli.run_with_stdin(&["secret", "set", "ipinfo", "token"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("empty"), "{}", text(&out.stderr));
    let err = cli.fails(&["secret", "set", "ipinfo", "bad name"]);
    assert!(err.contains("secret name"), "{err}");

    // A broken plugin folder is refused with the file and the reason, and nothing is installed.
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("plugin.toml"),
        "name = \"Bad\"\nversion = \"1\"\ndescription = \"\"\ncomponent = \"x.wasm\"\n",
    )
    .unwrap();
    let err = cli.fails(&["plugin", "install", broken.path().to_str().unwrap()]);
    assert!(err.contains("plugin.toml") && err.contains("lower-case"), "{err}");
    std::fs::write(
        broken.path().join("plugin.toml"),
        "name = \"fake\"\nversion = \"1.0.0\"\ndescription = \"\"\ncomponent = \"x.wasm\"\n",
    )
    .unwrap();
    std::fs::write(broken.path().join("x.wasm"), b"not wasm at all").unwrap();
    let err = cli.fails(&["plugin", "install", broken.path().to_str().unwrap()]);
    assert!(err.contains("not a usable WebAssembly component"), "{err}");
    // A component importing an interface Osprey does not link is refused, naming it.
    let name = b"wasi:nothing/thing@0.1.0";
    let mut component = b"\0asm\x0d\0\x01\0".to_vec(); // a component, binary version 0x0d
    // Type 0: an instance type exporting `f: func()`.
    component.extend([7, 14, 1, 0x42, 2, 1, 0x40, 0, 1, 0, 4, 0, 1, b'f', 1, 0]);
    component.extend([10, 5 + name.len() as u8, 1, 0, name.len() as u8]); // one import...
    component.extend(name);
    component.extend([5, 0]); // ...an instance of type 0
    std::fs::write(broken.path().join("x.wasm"), component).unwrap();
    let err = cli.fails(&["plugin", "install", broken.path().to_str().unwrap()]);
    assert!(
        err.contains("needs an import Osprey does not provide") && err.contains("wasi:nothing/thing"),
        "{err}"
    );
    assert!(cli.ok(&["plugin", "list"]).contains("no plugins installed"));
}

#[test]
fn install_grant_revoke_config_and_secrets() {
    let cli = Cli::new();
    let echo = dist().join("test-echo");
    cli.ok(&["plugin", "install", echo.to_str().unwrap()]);
    let list = cli.ok(&["plugin", "list"]);
    assert!(list.contains("test-echo") && list.contains("none"), "{list}");

    let out = cli.ok(&["plugin", "grant", "test-echo", "--requested", "--timeout", "5s"]);
    assert!(out.contains("greeting"), "{out}");
    assert!(
        cli.ok(&["plugin", "list"]).contains(" ok "),
        "granted what it requested"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&cli.ok(&["plugin", "inspect", "test-echo", "--json"])).unwrap();
    assert_eq!(inspect["limits_in_force"]["timeout"], "5s");

    // Secrets: set from stdin, listed by name, never shown.
    let out = cli.run_with_stdin(
        &["secret", "set", "test-echo", "greeting"],
        "hello-secret-value\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = cli.ok(&["secret", "list", "test-echo"]);
    assert!(
        listed.contains("greeting") && listed.contains("granted"),
        "{listed}"
    );
    assert!(!listed.contains("hello-secret-value"));
    let out = cli.ok(&[
        "plugin",
        "call",
        "test-echo",
        "secret-length",
        "--input",
        "{\"name\":\"greeting\"}",
    ]);
    assert!(
        out.contains("\"length\": 18"),
        "one trailing newline removed: {out}"
    );

    // Revoking the secret takes effect on the next call.
    cli.ok(&["plugin", "revoke", "test-echo", "--secret", "greeting"]);
    let out = cli.run(&[
        "plugin",
        "call",
        "test-echo",
        "secret-length",
        "--input",
        "{\"name\":\"greeting\"}",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("error: denied"),
        "{}",
        text(&out.stderr)
    );
    assert!(cli.ok(&["plugin", "list"]).contains("partial"));
    let err = cli.fails(&["plugin", "revoke", "test-echo", "--http", "https://nope.example"]);
    assert!(err.contains("is not granted"), "{err}");
    cli.ok(&["plugin", "revoke", "test-echo", "--all"]);

    // Settings: declared keys only.
    let out = cli.ok(&["plugin", "config", "test-echo"]);
    assert!(out.contains("stay calm (default)"), "{out}");
    cli.ok(&["plugin", "config", "test-echo", "motto=keep going"]);
    let out = cli.ok(&[
        "plugin",
        "call",
        "test-echo",
        "config",
        "--input",
        "{\"key\":\"motto\"}",
    ]);
    assert!(out.contains("keep going"), "{out}");
    let err = cli.fails(&["plugin", "config", "test-echo", "colour=red"]);
    assert!(
        err.contains("no setting 'colour'") && err.contains("color, motto"),
        "{err}"
    );
    cli.ok(&["plugin", "config", "test-echo", "--unset", "motto"]);
    assert!(
        cli.ok(&["plugin", "config", "test-echo"])
            .contains("stay calm (default)")
    );

    // Delete and remove.
    cli.ok(&["secret", "delete", "test-echo", "greeting"]);
    assert!(
        cli.fails(&["secret", "delete", "test-echo", "greeting"])
            .contains("no secret named")
    );
    cli.ok(&["plugin", "remove", "test-echo"]);
    assert!(cli.ok(&["plugin", "list"]).contains("no plugins installed"));
}

#[test]
fn a_component_importing_wasi_sockets_installs_and_its_sockets_are_denied() {
    let cli = Cli::new();
    cli.ok(&["plugin", "install", dist().join("test-hostile").to_str().unwrap()]);
    let inspect: serde_json::Value =
        serde_json::from_str(&cli.ok(&["plugin", "inspect", "test-hostile", "--json"])).unwrap();
    let imports = inspect["imports"].as_array().unwrap();
    assert!(
        imports
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("wasi:sockets/tcp@")),
        "{imports:?}"
    );
    let input = r#"{"name":"localhost","tcp":"127.0.0.1:9","udp":"127.0.0.1:9"}"#;
    let out: serde_json::Value =
        serde_json::from_str(&cli.ok(&["plugin", "call", "test-hostile", "sockets", "--input", input]))
            .unwrap();
    let attempts = out["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 4, "{out}");
    assert!(attempts.iter().all(|a| a["outcome"] != "ok"), "{out}");
}

#[test]
fn plugin_logs_are_attributed_and_capped() {
    let cli = Cli::new();
    cli.ok(&["plugin", "install", dist().join("test-hostile").to_str().unwrap()]);
    let out = cli.run(&["plugin", "call", "test-hostile", "log-flood"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let records = stderr
        .lines()
        .filter(|l| l.contains("osprey::plugin_log") && l.contains("test-hostile"))
        .count();
    // 256 records, one note that the rest were dropped.
    assert!((256..=258).contains(&records), "{records} plugin log lines");
    assert!(
        stderr.contains("more log records than allowed"),
        "{}",
        &stderr[stderr.len().saturating_sub(2000)..]
    );
    assert!(stderr.lines().all(|l| l.len() < 6000), "long messages are cut");
}

#[test]
fn the_compiled_component_is_cached_between_runs() {
    let cli = Cli::new();
    cli.ok(&["plugin", "install", dist().join("test-echo").to_str().unwrap()]);
    let cache = cli.data_dir().join("cache");
    let artifacts: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(artifacts.len(), 1, "one compiled artifact");
    let name = artifacts[0].file_name().to_string_lossy().into_owned();
    assert!(name.ends_with(".cwasm"), "{name}");
    let before = artifacts[0].metadata().unwrap().modified().unwrap();
    // A later run loads it instead of compiling again.
    let json: serde_json::Value = serde_json::from_str(&cli.ok(&["plugin", "list", "--json"])).unwrap();
    assert_eq!(json[0]["name"], "test-echo");
    let after = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .metadata()
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "the artifact was reused, not rewritten");
    // A corrupt artifact is discarded and rebuilt, not fatal.
    std::fs::write(artifacts[0].path(), b"garbage").unwrap();
    cli.ok(&["plugin", "call", "test-echo", "noop"]);
    assert!(std::fs::read(artifacts[0].path()).unwrap().len() > 1000);
}

#[test]
fn a_wrong_master_key_is_refused_before_anything_runs() {
    let cli = Cli::new();
    cli.ok(&["plugin", "list"]);
    let key = cli.data_dir().join("master.key");
    assert!(key.exists());
    std::fs::remove_file(&key).unwrap();
    let err = cli.fails(&["plugin", "list"]);
    assert!(
        err.contains("not the key this database's secrets were sealed with"),
        "{err}"
    );
}

#[test]
fn refusals_are_logged_with_the_plugin_and_the_url_without_its_query() {
    let cli = Cli::new();
    cli.ok(&["plugin", "install", dist().join("test-hostile").to_str().unwrap()]);
    let out = cli.run(&[
        "plugin",
        "call",
        "test-hostile",
        "fetch",
        "--input",
        r#"{"url":"http://203.0.113.5/path?token=abc123"}"#,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("outbound request refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{stderr}"));
    assert!(
        line.contains("test-hostile") && line.contains("http://203.0.113.5/path"),
        "{line}"
    );
    assert!(
        !stderr.contains("abc123"),
        "the query string is never logged:\n{stderr}"
    );
    assert!(stderr.contains("error: denied"), "{stderr}");
}
