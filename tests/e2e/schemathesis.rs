//! The API against its own OpenAPI document, by schemathesis (the API fuzzer; installed by
//! `scripts/lib/schemathesis.sh`, which `scripts/test.sh` runs): a real server, an admin
//! token, and requests generated from `/api/openapi.json` with a fixed seed and a bounded
//! number of examples (`tests/schemathesis/schemathesis.toml`), so a run is the same each
//! time and fits the time budget.
//!
//! The checks are those that hold by the document alone (see the config file for the ones
//! left out and why): no answer is a server error; every status, content type, header and
//! body is one the document declares; and every request the document refuses (a `limit`
//! out of bounds, a word not among an enum's, a body that is not an object, a field of the
//! wrong type or not declared) is refused.

use crate::support::{Cli, Server, text};
use std::path::PathBuf;
use std::process::Command;

/// The schemathesis binary: `$OSPREY_SCHEMATHESIS`, else where `scripts/lib/schemathesis.sh`
/// installs it. Missing is a failure that says how to install it, never a skip.
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("OSPREY_SCHEMATHESIS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/osprey/schemathesis/bin/schemathesis")
        });
    assert!(
        path.is_file(),
        "schemathesis is not at {}: run `bash scripts/lib/schemathesis.sh` to install it \
         (scripts/test.sh does), or point OSPREY_SCHEMATHESIS at it",
        path.display()
    );
    path
}

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let bin = schemathesis();
    let cli = Cli::new();
    let token = cli.ok(&["token", "create", "fuzzer", "--role", "admin"]);
    let token = token.trim();
    let server = Server::start(&cli);
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/schemathesis/schemathesis.toml");
    let report = cli.data_dir().join("schemathesis-report");

    let out = Command::new(&bin)
        .arg("--no-color")
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{}/api/openapi.json", server.addr))
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg("--report-dir")
        .arg(&report)
        .current_dir(cli.data_dir())
        .env_remove("SCHEMATHESIS_HOOKS")
        .output()
        .expect("schemathesis runs");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found answers that disagree with the OpenAPI document ({}):\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    // It did test: every operation, none skipped for want of a way to call it.
    assert!(stdout.contains("No issues found"), "{stdout}");
    drop(server);
}
