//! The audit log as an auditor meets it: every change by the CLI is recorded with who did
//! it, the chain verifies, the export recomputes outside Osprey, and a tampered entry is
//! named.

use crate::support::{Cli, dist};
use sha2::{Digest, Sha256};

#[test]
fn changes_are_chained_exported_and_tampering_is_named() {
    let cli = Cli::new();
    let echo = dist().join("test-echo");
    cli.ok(&["plugin", "install", echo.to_str().unwrap(), "--grant-requested"]);
    cli.ok(&["plugin", "grant", "test-echo", "--secret", "greeting"]);
    let out = cli.run_with_stdin(&["secret", "set", "test-echo", "greeting"], "very-secret-value");
    assert!(out.status.success());
    cli.ok(&["plugin", "config", "test-echo", "motto=carry on"]);
    cli.ok(&["secret", "delete", "test-echo", "greeting"]);

    let verified = cli.ok(&["audit", "verify"]);
    assert!(verified.contains("audit log intact: 7 entries"), "{verified}");

    // The first command made the server's link-signing key (a secret of its own).
    let shown = cli.ok(&["audit", "show", "--action", "secret."]);
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(
        shown.contains("secret.set") && shown.contains("secret.delete"),
        "{shown}"
    );

    // The export: one JSON line per entry, in order, with who did what; no secret value; and
    // the chain recomputes from the documented formula alone.
    let export = cli.ok(&["audit", "export"]);
    assert!(!export.contains("very-secret-value"));
    let entries: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "secret.set",
            "plugin.install",
            "plugin.grant",
            "plugin.grant",
            "secret.set",
            "plugin.configure",
            "secret.delete"
        ]
    );
    assert_eq!(entries[0]["actor"], "system");
    assert_eq!(entries[0]["details"], serde_json::json!({ "secret": "link-key" }));
    assert!(
        entries[1..]
            .iter()
            .all(|e| e["actor"].as_str().unwrap().starts_with("cli:"))
    );
    assert_eq!(entries[4]["details"], serde_json::json!({ "secret": "greeting" }));
    let mut prev = "0".repeat(64);
    for e in &entries {
        let fields = serde_json::to_string(&(
            e["seq"].as_i64().unwrap(),
            e["at"].as_i64().unwrap(),
            e["actor"].as_str().unwrap(),
            e["action"].as_str().unwrap(),
            e["target"].as_str().unwrap(),
            e["details"].to_string(),
        ))
        .unwrap();
        let mut h = Sha256::new();
        h.update(prev.as_bytes());
        h.update(fields.as_bytes());
        let hash = hex::encode(h.finalize());
        assert_eq!(e["prev_hash"], prev.as_str());
        assert_eq!(e["hash"], hash.as_str(), "entry {}", e["seq"]);
        prev = hash;
    }

    // Someone edits entry 4 in the database: verify fails and names it.
    let db = cli.data_dir().join("osprey.db");
    let tampered = tamper_with(&db);
    assert!(tampered);
    let out = cli.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let said = crate::support::text(&out.stdout);
    assert!(
        said.contains("BROKEN at entry 4") && said.contains("do not match its hash"),
        "{said}"
    );
}

fn tamper_with(db: &std::path::Path) -> bool {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::ConnectOptions as _;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 4")
            .execute(&mut conn)
            .await
            .unwrap()
            .rows_affected()
            == 1
    })
}
