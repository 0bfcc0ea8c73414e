//! Plugin packs through the real binary: build, sign (with Osprey or with Debian's `minisign`
//! tool), trust, install and call; and every refusal an operator can meet: unsigned, signed by
//! a key nobody trusts, tampered after signing. `minisign -V` checks Osprey's signatures.

use crate::support::{Cli, audit_export, dist, minisign_tool, output_with_stdin, text};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the minisign tool in `dir` with `stdin`, and require success.
fn minisign(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(minisign_tool());
    command.args(args).current_dir(dir);
    let out = output_with_stdin(command, stdin);
    assert!(
        out.status.success(),
        "minisign {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// A publisher's key pair made by the minisign tool in `dir`: (secret key, public key). With
/// a password, the secret key is encrypted with it.
pub(crate) fn keypair(dir: &Path, name: &str, password: Option<&str>) -> (PathBuf, PathBuf) {
    let (sk, pk) = (dir.join(format!("{name}.key")), dir.join(format!("{name}.pub")));
    let (sk_s, pk_s) = (sk.to_str().unwrap(), pk.to_str().unwrap());
    match password {
        None => minisign(dir, &["-G", "-W", "-p", pk_s, "-s", sk_s], ""),
        Some(pw) => minisign(dir, &["-G", "-p", pk_s, "-s", sk_s], &format!("{pw}\n{pw}\n")),
    };
    (sk, pk)
}

/// The base64 line of a minisign public key file.
pub(crate) fn key_line(pub_file: &Path) -> String {
    std::fs::read_to_string(pub_file)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned()
}

pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `osprey pack build` of the test-echo plugin into `dir/name`.
pub(crate) fn build(cli: &Cli, dir: &Path, name: &str) -> PathBuf {
    let pack = dir.join(name);
    let said = cli.ok(&["pack", "build", s(&dist().join("test-echo")), "-o", s(&pack)]);
    assert!(said.contains("digest sha256:"), "{said}");
    assert!(said.contains("unsigned"), "{said}");
    pack
}

/// The plugin.install entries of the audit log.
pub(crate) fn installs(cli: &Cli) -> Vec<serde_json::Value> {
    audit_export(cli)
        .into_iter()
        .filter(|e| e["action"] == "plugin.install")
        .collect()
}

#[test]
fn a_pack_signed_by_osprey_is_trusted_installed_called_and_checks_with_minisign() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    let pack = build(&cli, work.path(), "echo.ospack");

    let said = cli.ok(&["pack", "sign", s(&pack), "--key", s(&sk)]);
    assert!(
        said.contains(&key_line(&pk)),
        "signing says which key to trust: {said}"
    );

    // Nobody trusts the key yet: refused, with the key id and the exact command that trusts it.
    let refused = cli.fails(&["plugin", "install", s(&pack)]);
    let key_id = std::fs::read_to_string(&pk).unwrap();
    // minisign writes the id without leading zeros (`%PRIX64`); Osprey shows all 16 digits.
    let key_id = format!(
        "{:0>16}",
        key_id.lines().next().unwrap().rsplit(' ').next().unwrap()
    );
    assert!(
        refused.contains(&format!("signed by key id {key_id}")),
        "{refused}"
    );
    let command = refused
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("osprey trust add "))
        .unwrap_or_else(|| panic!("no trust command in: {refused}"));
    assert_eq!(
        command,
        format!("osprey trust add test-echo-publisher {}", key_line(&pk))
    );
    assert!(cli.ok(&["plugin", "list"]).contains("no plugins installed"));

    // Run the command as printed.
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    let trusted = cli.ok(&args);
    assert!(trusted.contains(&key_id), "{trusted}");
    let listed = cli.ok(&["trust", "list"]);
    assert!(
        listed.contains("test-echo-publisher") && listed.contains(&key_id),
        "{listed}"
    );

    // Inspect says what it requests, who signed it, and its digest.
    let inspected = cli.ok(&["pack", "inspect", s(&pack)]);
    for want in [
        "test-echo 0.1.0",
        "digest:  sha256:",
        &format!("key id {key_id}, trusted as 'test-echo-publisher'"),
        "echo —",
        "greeting",
        "kv quota",
        "4 KiB",
    ] {
        assert!(inspected.contains(want), "{want} in:\n{inspected}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["pack", "inspect", s(&pack), "--json"])).unwrap();
    assert_eq!(json["signer"]["trusted_as"], "test-echo-publisher");
    assert_eq!(json["requests"]["secrets"][0], "greeting");
    let digest = json["digest"].as_str().unwrap().to_owned();

    let installed = cli.ok(&["plugin", "install", s(&pack), "--grant-requested"]);
    assert!(
        installed.contains("signed by 'test-echo-publisher'"),
        "{installed}"
    );
    assert!(installed.contains("installed test-echo 0.1.0"), "{installed}");
    echo(&cli, "from a pack");

    let audited = installs(&cli);
    assert_eq!(audited.len(), 1);
    let p = &audited[0]["details"]["pack"];
    assert_eq!(p["digest"], digest.as_str());
    assert_eq!(p["signer"]["key_id"], key_id.as_str());
    assert_eq!(p["signer"]["trusted_as"], "test-echo-publisher");
    assert!(p.get("allow_unsigned").is_none(), "{p}");

    let verified = cli.ok(&["pack", "verify", s(&pack), "--key", s(&pk)]);
    assert!(verified.contains("signature good"), "{verified}");

    // The standard tool verifies Osprey's signature over the payload.
    let manifest = work.path().join("manifest.json");
    cli.ok(&["pack", "payload", s(&pack), "-o", s(&manifest)]);
    let checked = minisign(work.path(), &["-V", "-m", s(&manifest), "-p", s(&pk)], "");
    let said = format!("{}{}", text(&checked.stdout), text(&checked.stderr));
    assert!(
        said.contains(&format!("osprey-pack test-echo 0.1.0 {digest}")),
        "{said}"
    );

    // Once the key is no longer trusted, its packs are refused again.
    cli.ok(&["trust", "remove", "test-echo-publisher"]);
    let refused = cli.fails(&["plugin", "install", s(&pack)]);
    assert!(refused.contains("does not trust"), "{refused}");
    let trust_changes: Vec<String> = audit_export(&cli)
        .iter()
        .filter_map(|e| {
            e["action"]
                .as_str()
                .filter(|a| a.starts_with("trust."))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(trust_changes, ["trust.add", "trust.remove"]);
}

#[test]
fn a_pack_signed_with_the_minisign_tool_verifies_and_installs() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    // A publisher's usual key: encrypted with a password.
    let (sk, pk) = keypair(work.path(), "vendor", Some("correct horse"));
    let pack = build(&cli, work.path(), "echo.ospack");
    let manifest = work.path().join("manifest.json");
    cli.ok(&["pack", "payload", s(&pack), "-o", s(&manifest)]);
    minisign(
        work.path(),
        &["-S", "-s", s(&sk), "-m", s(&manifest)],
        "correct horse\n",
    );
    let sig = work.path().join("manifest.json.minisig");

    // Without the public key the pack carries only the signature: installers are told to get
    // the publisher's key.
    let bare = work.path().join("bare.ospack");
    cli.ok(&["pack", "sign", s(&pack), "--signature", s(&sig), "-o", s(&bare)]);
    let refused = cli.fails(&["plugin", "install", s(&bare)]);
    assert!(refused.contains("carries no public key"), "{refused}");
    assert!(
        refused.contains("osprey trust add test-echo-publisher PUBLISHER_KEY.pub"),
        "{refused}"
    );

    let said = cli.ok(&[
        "pack",
        "sign",
        s(&pack),
        "--signature",
        s(&sig),
        "--public-key",
        s(&pk),
    ]);
    assert!(said.contains("(verified)"), "{said}");
    let verified = cli.ok(&["pack", "verify", s(&pack)]);
    assert!(verified.contains("signature good"), "{verified}");

    cli.ok(&["trust", "add", "vendor", s(&pk)]);
    cli.ok(&["plugin", "install", s(&bare), "--grant-requested"]);
    echo(&cli, "minisign");

    // A signature made by the tool over anything else is refused when it is put in.
    let other = work.path().join("other.txt");
    std::fs::write(&other, "not the manifest").unwrap();
    minisign(
        work.path(),
        &["-S", "-s", s(&sk), "-m", s(&other)],
        "correct horse\n",
    );
    let e = cli.fails(&[
        "pack",
        "sign",
        s(&pack),
        "--signature",
        s(&work.path().join("other.txt.minisig")),
        "--public-key",
        s(&pk),
    ]);
    assert!(e.contains("is not a signature of this pack's manifest"), "{e}");

    // And Osprey signs with the same encrypted key, given its password.
    let pw = work.path().join("pw.txt");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let resigned = work.path().join("resigned.ospack");
    cli.ok(&[
        "pack",
        "sign",
        s(&pack),
        "--key",
        s(&sk),
        "--password-file",
        s(&pw),
        "-o",
        s(&resigned),
    ]);
    let e = cli.fails(&["pack", "sign", s(&pack), "--key", s(&sk), "-o", s(&resigned)]);
    assert!(e.contains("is encrypted: give --password-file"), "{e}");
    let said = cli.ok(&["plugin", "install", s(&resigned)]);
    assert!(said.contains("signed by 'vendor'"), "{said}");
}

/// The offset of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the bytes are in the pack")
}

#[test]
fn unsigned_untrusted_and_tampered_packs_are_refused_and_allow_unsigned_is_audited() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    let (other_sk, _) = keypair(work.path(), "other", None);
    cli.ok(&["trust", "add", "acme", &key_line(&pk)]);

    let unsigned = build(&cli, work.path(), "unsigned.ospack");
    let refused = cli.fails(&["plugin", "install", s(&unsigned)]);
    assert!(refused.contains("is not signed"), "{refused}");
    assert!(refused.contains("--allow-unsigned"), "{refused}");
    let verified = cli.run(&["pack", "verify", s(&unsigned)]);
    assert!(!verified.status.success());
    assert!(text(&verified.stdout).contains("not signed"));

    // Signed by a key that is not trusted here (a wrong key).
    let wrong = build(&cli, work.path(), "wrong.ospack");
    cli.ok(&["pack", "sign", s(&wrong), "--key", s(&other_sk)]);
    let refused = cli.fails(&["plugin", "install", s(&wrong)]);
    assert!(refused.contains("which this Osprey does not trust"), "{refused}");
    let verified = cli.run(&["pack", "verify", s(&wrong), "--key", s(&pk)]);
    assert!(!verified.status.success());
    assert!(text(&verified.stdout).contains("not by the key given"));

    // A trusted signature, then one byte of the component changed.
    let signed = build(&cli, work.path(), "signed.ospack");
    cli.ok(&["pack", "sign", s(&signed), "--key", s(&sk)]);
    let bytes = std::fs::read(&signed).unwrap();
    let wasm = std::fs::read(dist().join("test-echo/test_echo.wasm")).unwrap();
    let mut tampered = bytes.clone();
    tampered[find(&bytes, &wasm[..64]) + 40] ^= 0x20;
    let tampered_file = work.path().join("tampered.ospack");
    std::fs::write(&tampered_file, &tampered).unwrap();
    for args in [
        vec!["plugin", "install", s(&tampered_file), "--allow-unsigned"],
        vec!["pack", "verify", s(&tampered_file)],
    ] {
        let e = cli.fails(&args);
        assert!(
            e.contains("test_echo.wasm' does not match osprey-pack.json"),
            "{e}"
        );
        assert!(e.contains("changed after it was built"), "{e}");
    }

    // The manifest changed (its version), so the signature no longer covers it.
    let mut tampered = bytes.clone();
    let at = find(&bytes, b"\"version\": \"0.1.0\"") + 16;
    tampered[at] = b'9';
    std::fs::write(&tampered_file, &tampered).unwrap();
    let e = cli.fails(&["plugin", "install", s(&tampered_file)]);
    assert!(e.contains("the signature is not valid"), "{e}");

    // Nothing was installed by any of these.
    assert!(installs(&cli).is_empty());

    // --allow-unsigned installs, loudly, and the audit log says so.
    let out = cli.run(&["plugin", "install", s(&unsigned), "--allow-unsigned"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("WARNING: --allow-unsigned"),
        "{}",
        text(&out.stderr)
    );
    let audited = installs(&cli);
    assert_eq!(audited.len(), 1);
    let p = &audited[0]["details"]["pack"];
    assert_eq!(p["signer"], "unsigned");
    assert_eq!(p["allow_unsigned"], true);
    assert!(p["digest"].as_str().unwrap().starts_with("sha256:"));
    echo(&cli, "unsigned");
    // Folder installs go on as before, with no pack in their audit entry.
    cli.ok(&["plugin", "install", s(&dist().join("test-echo"))]);
    let audited = installs(&cli);
    assert_eq!(audited.len(), 2);
    assert!(audited[1]["details"].get("pack").is_none());
}

/// Call test-echo's `echo` with `message`, and require it back.
pub(crate) fn echo(cli: &Cli, message: &str) {
    let out = cli.ok(&[
        "plugin",
        "call",
        "test-echo",
        "echo",
        "--input",
        &format!(r#"{{"message":"{message}"}}"#),
    ]);
    assert!(out.contains(message), "{out}");
}

#[test]
fn a_key_file_far_larger_than_any_key_is_refused_unread() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("huge.pub");
    std::fs::write(&big, vec![b'A'; 1024 * 1024]).unwrap();
    let refused = cli.fails(&["trust", "add", "vendor", s(&big)]);
    assert!(refused.contains("is over 64 KiB"), "{refused}");
    let listed = cli.ok(&["trust", "list"]);
    assert!(!listed.contains("vendor"), "{listed}");
}
