//! The API against its own OpenAPI document, by schemathesis (the API fuzzer; installed by
//! `scripts/lib/schemathesis.sh`, which `scripts/test.sh` runs): a real server, an admin
//! token, and requests generated from `/api/openapi.json` in all four phases (the
//! document's examples, its boundaries, random data, and sequences of calls), with a fixed
//! seed, one worker and a bounded number of examples, so a run is the same each time and
//! takes well under a minute.
//!
//! The checks ([`CHECKS`]) are those that hold by the document alone: no answer is a server
//! error; every status, content type, header and body is one the document declares; every
//! request the document refuses (a `limit` out of bounds, a word not among an enum's, a body
//! that is not an object, a field of the wrong type or not declared, a missing body that is
//! required) is refused; wrong methods answer 405 with `Allow`; a call without the token is
//! refused; what was deleted is gone and what was created is there. Left out:
//! `positive_data_acceptance`, since a request the document allows may still be refused
//! for what no schema can say (an id that does not exist, a cursor the server did not give,
//! an incident type not in the configuration, blank text, an integer written as `5.0`,
//! which JSON Schema counts as an integer and serde does not); and
//! `object_level_authorization`, which needs a second caller's credentials.

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

/// The checks run (see the file's doc for those left out).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
missing_required_header,unsupported_method,allow_header_conformance,ignored_auth,\
use_after_free,ensure_resource_availability";

/// The seed and the examples per operation and phase: about 4,800 requests.
const SEED: &str = "3";
const MAX_EXAMPLES: &str = "50";

#[test]
fn the_api_answers_as_its_openapi_document_says() {
    let bin = schemathesis();
    let cli = Cli::new();
    let token = cli.ok(&["token", "create", "fuzzer", "--role", "admin"]);
    let token = token.trim();
    let server = Server::start(&cli);
    let out = Command::new(&bin)
        .arg("--no-color")
        .arg("run")
        .arg(format!("http://{}/api/openapi.json", server.addr))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        .args([
            "--workers",
            "1",
            "--continue-on-failure",
            "--request-timeout",
            "10",
        ])
        // Its own folder: no schemathesis.toml or example database from elsewhere.
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
    // It did test every operation of the document.
    let number_after = |label: &str| -> usize {
        let rest = stdout
            .split(label)
            .nth(1)
            .unwrap_or_else(|| panic!("no '{label}' in:\n{stdout}"));
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no number after '{label}' in:\n{stdout}"))
    };
    let selected = number_after("Selected:");
    assert!(selected >= 48, "{selected} operations:\n{stdout}");
    assert_eq!(number_after("Tested:"), selected, "{stdout}");
    assert!(
        stdout.contains(&format!("Selected: {selected}/{selected}")),
        "{stdout}"
    );
    drop(server);
}
