//! The audit log as an auditor meets it: every change by the CLI is recorded with who did
//! it, the chain verifies, the export recomputes outside Osprey with the master key, a
//! tampered entry is named, and a signed checkpoint kept outside catches a log that was cut
//! back with its head rolled back, emptied, or rechained without the key (also checked with
//! the standard `minisign` tool).

use crate::support::{Cli, dist, minisign_tool, text};
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
    // the chain recomputes from the documented formula and the master key alone.
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
    let key = audit_key(&cli);
    let mut prev = "0".repeat(64);
    for e in &entries {
        let hash = hmac_sha256(&key, &chain_message(&prev, e));
        assert_eq!(e["prev_hash"], prev.as_str());
        assert_eq!(e["hash"], hash.as_str(), "entry {}", e["seq"]);
        prev = hash;
    }

    // Someone edits entry 4 in the database: verify fails and names it.
    let tampered = tamper_with(&cli);
    assert!(tampered);
    let out = cli.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let said = crate::support::text(&out.stdout);
    assert!(
        said.contains("BROKEN at entry 4") && said.contains("do not match its MAC"),
        "{said}"
    );
}

fn tamper_with(cli: &Cli) -> bool {
    with_db(cli, async |conn| {
        sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 4")
            .execute(&mut *conn)
            .await
            .unwrap()
            .rows_affected()
            == 1
    })
}

#[test]
fn a_checkpoint_catches_a_rolled_back_emptied_or_rechained_log() {
    let cli = Cli::new();
    let set = |name: &str| {
        let out = cli.run_with_stdin(&["secret", "set", "osprey", name], "value");
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    for name in ["one", "two", "three"] {
        set(name);
    }
    // The auditor takes the public key once (this makes the checkpoint key, an entry of its
    // own), then a checkpoint, and keeps both outside.
    let outside = tempfile::tempdir().unwrap();
    let pubkey = outside.path().join("osprey-audit.pub");
    std::fs::write(&pubkey, cli.ok(&["audit", "pubkey"])).unwrap();
    let checkpoint = outside.path().join("checkpoint.json");
    let printed = cli.ok(&["audit", "checkpoint", checkpoint.to_str().unwrap()]);
    let statement: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(statement["format"], "osprey-audit-checkpoint-v1");
    assert_eq!(statement["head_seq"], 5, "{printed}");
    assert_eq!(statement["count"], 5);
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), printed);
    let entries = export(&cli);
    assert_eq!(statement["head_mac"], entries[4]["hash"]);
    assert_eq!(
        entries[4]["details"],
        serde_json::json!({ "secret": "checkpoint-key" })
    );

    // The standard minisign tool verifies the checkpoint with the printed public key.
    let minisign = std::process::Command::new(minisign_tool())
        .args(["-V", "-m"])
        .arg(&checkpoint)
        .arg("-p")
        .arg(&pubkey)
        .output()
        .unwrap();
    assert!(
        minisign.status.success(),
        "minisign: {}{}",
        text(&minisign.stdout),
        text(&minisign.stderr)
    );
    assert!(
        text(&minisign.stdout).contains("osprey audit checkpoint: 5 entries"),
        "{}",
        text(&minisign.stdout)
    );

    // Untouched, and grown since: it passes, with this server's key or the kept public key.
    set("four");
    let cp = checkpoint.to_str().unwrap();
    let said = cli.ok(&["audit", "verify", "--checkpoint", cp]);
    assert!(said.contains("extends the checkpoint: 6 entries"), "{said}");
    let said = cli.ok(&[
        "audit",
        "verify",
        "--checkpoint",
        cp,
        "--pubkey",
        pubkey.to_str().unwrap(),
    ]);
    assert!(said.contains("extends the checkpoint"), "{said}");

    // A changed checkpoint is refused by its signature.
    let forged = outside.path().join("forged.json");
    std::fs::write(&forged, printed.replace("\"head_seq\":5", "\"head_seq\":2")).unwrap();
    std::fs::copy(
        outside.path().join("checkpoint.json.minisig"),
        outside.path().join("forged.json.minisig"),
    )
    .unwrap();
    let err = cli.fails(&["audit", "verify", "--checkpoint", forged.to_str().unwrap()]);
    assert!(err.contains("signature does not verify"), "{err}");

    // A database writer cuts entries 5 and 6 off and rolls the head back to entry 4: the
    // chain alone still verifies; the checkpoint does not.
    let e4 = entries[3]["hash"].as_str().unwrap();
    sql(
        &cli,
        &[
            "DELETE FROM audit_log WHERE seq >= 5".into(),
            format!("UPDATE audit_head SET seq = 4, hash = '{e4}' WHERE id = 1"),
        ],
    );
    assert!(cli.ok(&["audit", "verify"]).contains("intact: 4 entries"));
    let out = cli.run(&["audit", "verify", "--checkpoint", cp]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.contains("ROLLED BACK")
            && said.contains("vouches for entries up to 5, but the log now ends at entry 4"),
        "{said}"
    );

    // ... or edits entry 2 and recomputes the chain with the unkeyed formula of before.
    sql(
        &cli,
        &["UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 2".into()],
    );
    rechain_without_the_key(&cli);
    let out = cli.run(&["audit", "verify", "--checkpoint", cp]);
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.contains("BROKEN at entry 1") && said.contains("without this server's audit key"),
        "{said}"
    );

    // ... or empties the log.
    sql(
        &cli,
        &[
            "DELETE FROM audit_log".into(),
            format!(
                "UPDATE audit_head SET seq = 0, hash = '{}' WHERE id = 1",
                "0".repeat(64)
            ),
        ],
    );
    assert!(cli.ok(&["audit", "verify"]).contains("intact: 0 entries"));
    let out = cli.run(&["audit", "verify", "--checkpoint", cp]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("the log now ends at entry 0"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_log_from_before_the_key_is_rechained_once_at_the_first_start() {
    let cli = Cli::new();
    for name in ["one", "two"] {
        let out = cli.run_with_stdin(&["secret", "set", "osprey", name], "value");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Make the database look as an older Osprey left it: the unkeyed chain, and the key
    // check of before.
    rechain_without_the_key(&cli);
    let (vault, _) = osprey::vault::Vault::open(None, &cli.data_dir().join("master.key")).unwrap();
    let legacy = vault.legacy_key_check();
    with_db(&cli, async |conn| {
        sqlx::query("UPDATE vault_key_check SET nonce = $1, ciphertext = $2 WHERE id = 1")
            .bind(legacy.nonce)
            .bind(legacy.ciphertext)
            .execute(&mut *conn)
            .await
            .unwrap();
    });
    let legacy_head = stored_hashes(&cli)[2].clone();

    // The first start of this version rechains it with the key and says what it found.
    let said = cli.ok(&["audit", "verify"]);
    assert!(said.contains("audit log intact: 4 entries"), "{said}");
    let entries = export(&cli);
    assert_eq!(entries[3]["action"], "audit.rechain");
    assert_eq!(
        entries[3]["details"],
        serde_json::json!({ "entries": 3, "legacy": "intact", "legacy_head": legacy_head })
    );
    let key = audit_key(&cli);
    assert_eq!(
        entries[0]["hash"],
        hmac_sha256(&key, &chain_message(&"0".repeat(64), &entries[0])).as_str()
    );
    // Once: the next start finds a keyed log and leaves it alone.
    assert!(
        cli.ok(&["audit", "verify"])
            .contains("audit log intact: 4 entries")
    );
    assert_eq!(export(&cli).len(), 4);
}

/// The stored hashes, in order, read from the SQLite file without starting Osprey (which
/// would upgrade the log).
fn stored_hashes(cli: &Cli) -> Vec<String> {
    with_db(cli, async |conn| {
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
    })
}

fn export(cli: &Cli) -> Vec<serde_json::Value> {
    cli.ok(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The audit chain key, from the master key file as the README documents it:
/// HKDF-SHA256(master key, no salt, info "osprey audit chain v1").
fn audit_key(cli: &Cli) -> [u8; 32] {
    use base64::Engine as _;
    let text = std::fs::read_to_string(cli.data_dir().join("master.key")).unwrap();
    let master = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, &master)
        .expand(b"osprey audit chain v1", &mut key)
        .unwrap();
    key
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// What an entry's MAC covers: the previous MAC, then JSON [seq, at, actor, action, target,
/// details-as-stored].
fn chain_message(prev: &str, e: &serde_json::Value) -> Vec<u8> {
    let fields = serde_json::to_string(&(
        e["seq"].as_i64().unwrap(),
        e["at"].as_i64().unwrap(),
        e["actor"].as_str().unwrap(),
        e["action"].as_str().unwrap(),
        e["target"].as_str().unwrap(),
        match &e["details"] {
            serde_json::Value::String(stored) => stored.clone(),
            details => details.to_string(),
        },
    ))
    .unwrap();
    format!("{prev}{fields}").into_bytes()
}

/// Open `cli`'s database as someone who can write it would.
fn with_db<T>(cli: &Cli, f: impl AsyncFnOnce(&mut sqlx::AnyConnection) -> T) -> T {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let mut conn = crate::support::raw_db(cli).await;
        f(&mut conn).await
    })
}

fn sql(cli: &Cli, statements: &[String]) {
    with_db(cli, async |conn| {
        for s in statements {
            sqlx::query(sqlx::AssertSqlSafe(s.clone()))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
    })
}

/// Recompute every entry's hash and the head with plain SHA-256, without the key.
fn rechain_without_the_key(cli: &Cli) {
    with_db(cli, async |conn| {
        let rows: Vec<(i64, i64, String, String, String, String)> =
            sqlx::query_as("SELECT seq, at, actor, action, target, details FROM audit_log ORDER BY seq")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let mut prev = "0".repeat(64);
        for (seq, at, actor, action, target, details) in rows {
            let e = serde_json::json!({
                "seq": seq, "at": at, "actor": actor, "action": action, "target": target,
                "details": details,
            });
            let hash = hex::encode(Sha256::digest(chain_message(&prev, &e)));
            sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
                .bind(&prev)
                .bind(&hash)
                .bind(seq)
                .execute(&mut *conn)
                .await
                .unwrap();
            prev = hash;
        }
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&prev)
            .execute(&mut *conn)
            .await
            .unwrap();
    })
}
