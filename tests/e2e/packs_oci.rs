//! Packs through a real OCI registry on loopback (Debian's docker-registry, started by
//! scripts/lib/registry.sh): push a signed pack, install it by tag and by digest after
//! trusting its key, and call it; the layout other wasm tooling reads; a blob tampered with in
//! the registry's storage, a manifest that points at the wrong blob, and an unsigned pack are
//! refused, and nothing is installed by them.

use crate::packs::{echo, installs, key_line, keypair, s};
use crate::support::{Cli, dist, text};
use std::path::{Path, PathBuf};

/// The registry scripts/lib/registry.sh started: its HOST:PORT and its storage folder. Unset,
/// the test fails when CI is set (a pass without a registry proves nothing), else it says it
/// skips.
fn registry() -> Option<(String, PathBuf)> {
    match (
        std::env::var("OSPREY_TEST_REGISTRY"),
        std::env::var("OSPREY_TEST_REGISTRY_STORAGE"),
    ) {
        (Ok(host), Ok(storage)) => Some((host, PathBuf::from(storage))),
        _ if std::env::var_os("CI").is_some() => panic!(
            "OSPREY_TEST_REGISTRY and OSPREY_TEST_REGISTRY_STORAGE are not set and CI is: run the tests with scripts/test.sh, which starts a registry"
        ),
        _ => {
            eprintln!(
                "skipping: OSPREY_TEST_REGISTRY is not set (scripts/test.sh starts a registry and sets it)"
            );
            None
        }
    }
}

/// A repository no other test pushes to.
fn repository(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("osprey-test/{test}-{}-{nanos}", std::process::id())
}

/// A pack of the test-echo plugin, with a README no other test's pack has (so its pack
/// manifest and README are blobs of its own in the registry), signed with `key` if given.
fn pack(cli: &Cli, work: &Path, key: Option<&Path>) -> PathBuf {
    let dir = work.join("test-echo");
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["plugin.toml", "test_echo.wasm"] {
        std::fs::copy(dist().join("test-echo").join(file), dir.join(file)).unwrap();
    }
    std::fs::write(
        dir.join("README.md"),
        format!("# test-echo\n\n{}\n", repository("readme")),
    )
    .unwrap();
    let pack = work.join("echo.ospack");
    cli.ok(&["pack", "build", s(&dir), "-o", s(&pack)]);
    if let Some(key) = key {
        cli.ok(&["pack", "sign", s(&pack), "--key", s(key)]);
    }
    pack
}

/// `osprey pack push`; returns the manifest digest it reports.
fn push(cli: &Cli, pack: &Path, reference: &str) -> String {
    let said = cli.ok(&["pack", "push", s(pack), reference]);
    let digest = said
        .split("manifest digest ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no manifest digest in: {said}"))
        .to_owned();
    assert!(digest.starts_with("sha256:"), "{said}");
    let (base, _) = reference.rsplit_once(':').unwrap();
    assert!(
        said.contains(&format!("osprey plugin install {base}@{digest}")),
        "push says how to install exactly this push: {said}"
    );
    digest
}

/// One request to the registry's HTTP API, as other tools make them.
fn http(method: reqwest::Method, url: &str, accept: &str, body: Option<Vec<u8>>) -> (u16, Vec<u8>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut request = crate::support::http_client()
                .request(method, url)
                .header("accept", accept);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap().to_vec())
        })
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The OCI manifest at `host/repo:tag`, as the registry serves it.
fn manifest(host: &str, repo: &str, tag: &str) -> serde_json::Value {
    let (status, body) = http(
        reqwest::Method::GET,
        &format!("http://{host}/v2/{repo}/manifests/{tag}"),
        OCI_MANIFEST,
        None,
    );
    assert_eq!(status, 200, "{}", text(&body));
    serde_json::from_slice(&body).unwrap()
}

/// The layer of `manifest` whose file is `title`.
fn layer<'m>(manifest: &'m serde_json::Value, title: &str) -> &'m serde_json::Value {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["org.opencontainers.image.title"] == title)
        .unwrap_or_else(|| panic!("no layer '{title}' in {manifest}"))
}

#[test]
fn a_signed_pack_is_pushed_then_installed_by_tag_and_by_digest_and_called() {
    let Some((host, _)) = registry() else { return };
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    let pack = pack(&cli, work.path(), Some(&sk));
    let repo = repository("signed");
    let by_tag = format!("oci://{host}/{repo}:0.1.0");
    let digest = push(&cli, &pack, &by_tag);

    // The layout: a wasm OCI artifact whose application/wasm layer is the component itself.
    let m = manifest(&host, &repo, "0.1.0");
    assert_eq!(m["config"]["mediaType"], "application/vnd.wasm.config.v0+json");
    assert_eq!(m["layers"][0]["mediaType"], "application/wasm");
    let wasm = std::fs::read(dist().join("test-echo/test_echo.wasm")).unwrap();
    let (status, component) = http(
        reqwest::Method::GET,
        &format!(
            "http://{host}/v2/{repo}/blobs/{}",
            m["layers"][0]["digest"].as_str().unwrap()
        ),
        "*/*",
        None,
    );
    assert_eq!(status, 200);
    assert!(component == wasm, "the application/wasm layer is the component");
    for (title, media_type) in [
        ("osprey-pack.json", "application/vnd.osprey.pack.manifest.v1+json"),
        (
            "osprey-pack.json.minisig",
            "application/vnd.osprey.pack.signature.v1+minisign",
        ),
        (
            "osprey-pack.pub",
            "application/vnd.osprey.pack.public-key.v1+minisign",
        ),
        ("plugin.toml", "application/vnd.osprey.pack.file.v1"),
        ("README.md", "application/vnd.osprey.pack.file.v1"),
    ] {
        assert_eq!(layer(&m, title)["mediaType"], media_type, "{title}");
    }
    let (_, config) = http(
        reqwest::Method::GET,
        &format!(
            "http://{host}/v2/{repo}/blobs/{}",
            m["config"]["digest"].as_str().unwrap()
        ),
        "*/*",
        None,
    );
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["layerDigests"][0], m["layers"][0]["digest"]);

    // Pulled from the registry, the pack is judged as the file is: its signer is not trusted.
    let refused = cli.fails(&["plugin", "install", &by_tag]);
    assert!(
        refused.contains(&format!("{by_tag} is signed by key id")),
        "{refused}"
    );
    assert!(refused.contains("which this Osprey does not trust"), "{refused}");
    assert!(
        refused.contains(&format!("osprey trust add test-echo-publisher {}", key_line(&pk))),
        "{refused}"
    );

    cli.ok(&["trust", "add", "acme", s(&pk)]);
    let installed = cli.ok(&["plugin", "install", &by_tag, "--grant-requested"]);
    assert!(installed.contains(&format!("pulling {by_tag}")), "{installed}");
    assert!(installed.contains("signed by 'acme'"), "{installed}");
    assert!(installed.contains("installed test-echo 0.1.0"), "{installed}");
    echo(&cli, "from a registry");

    let file_digest =
        serde_json::from_str::<serde_json::Value>(&cli.ok(&["pack", "inspect", s(&pack), "--json"])).unwrap()
            ["digest"]
            .clone();
    let audited = installs(&cli);
    assert_eq!(audited.len(), 1);
    let p = &audited[0]["details"]["pack"];
    assert_eq!(p["oci"], by_tag.as_str());
    assert_eq!(p["oci_manifest_digest"], digest.as_str());
    assert_eq!(p["digest"], file_digest, "the pulled pack is the pushed file");
    assert_eq!(p["signer"]["trusted_as"], "acme");

    // By digest, on another Osprey that trusts the same publisher.
    let other = Cli::new();
    other.ok(&["trust", "add", "acme", s(&pk)]);
    let by_digest = format!("oci://{host}/{repo}@{digest}");
    let installed = other.ok(&["plugin", "install", &by_digest, "--grant-requested"]);
    assert!(installed.contains("installed test-echo 0.1.0"), "{installed}");
    echo(&other, "by digest");
    // A digest the registry does not hold is refused by the registry, and says so.
    let missing = format!("oci://{host}/{repo}@sha256:{}", "0".repeat(64));
    let e = other.fails(&["plugin", "install", &missing]);
    assert!(e.contains("404"), "{e}");
    // A reference without a tag or digest is refused before anything is asked.
    let e = other.fails(&["plugin", "install", &format!("oci://{host}/{repo}")]);
    assert!(e.contains("names no tag (:TAG) or digest"), "{e}");
}

#[test]
fn a_tampered_blob_and_a_manifest_pointing_at_the_wrong_blob_are_refused() {
    let Some((host, storage)) = registry() else { return };
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    cli.ok(&["trust", "add", "acme", s(&pk)]);
    let pack = pack(&cli, work.path(), Some(&sk));
    let repo = repository("tampered");
    push(&cli, &pack, &format!("oci://{host}/{repo}:good"));
    let good = manifest(&host, &repo, "good");

    // A manifest whose plugin.toml layer names the README's blob (a real blob, so the registry
    // takes the manifest): the pulled files no longer match the signed pack manifest.
    let mut wrong = good.clone();
    let readme = layer(&good, "README.md").clone();
    for l in wrong["layers"].as_array_mut().unwrap() {
        if l["annotations"]["org.opencontainers.image.title"] == "plugin.toml" {
            l["digest"] = readme["digest"].clone();
            l["size"] = readme["size"].clone();
        }
    }
    let (status, body) = http(
        reqwest::Method::PUT,
        &format!("http://{host}/v2/{repo}/manifests/wrong"),
        OCI_MANIFEST,
        Some(serde_json::to_vec(&wrong).unwrap()),
    );
    assert_eq!(status, 201, "{}", text(&body));
    let e = cli.fails(&["plugin", "install", &format!("oci://{host}/{repo}:wrong")]);
    assert!(e.contains("'plugin.toml' does not match osprey-pack.json"), "{e}");
    assert!(e.contains("changed after it was built"), "{e}");

    // A manifest that says a layer is shorter than its blob: the pull stops at the size the
    // manifest gives, before the digest could even be checked.
    let mut short = good.clone();
    for l in short["layers"].as_array_mut().unwrap() {
        if l["annotations"]["org.opencontainers.image.title"] == "README.md" {
            l["size"] = (l["size"].as_u64().unwrap() - 1).into();
        }
    }
    let (status, body) = http(
        reqwest::Method::PUT,
        &format!("http://{host}/v2/{repo}/manifests/short"),
        OCI_MANIFEST,
        Some(serde_json::to_vec(&short).unwrap()),
    );
    assert_eq!(status, 201, "{}", text(&body));
    let e = cli.fails(&["plugin", "install", &format!("oci://{host}/{repo}:short")]);
    assert!(e.contains("layer 'README.md'"), "{e}");
    assert!(e.contains("bytes its manifest says: refused"), "{e}");

    // A manifest larger than a pack's manifest may be is refused before it is read.
    let mut large = good.clone();
    large["annotations"]["padding"] = "x".repeat(70 * 1024).into();
    let (status, body) = http(
        reqwest::Method::PUT,
        &format!("http://{host}/v2/{repo}/manifests/large"),
        OCI_MANIFEST,
        Some(serde_json::to_vec(&large).unwrap()),
    );
    assert_eq!(status, 201, "{}", text(&body));
    let e = cli.fails(&["plugin", "install", &format!("oci://{host}/{repo}:large")]);
    assert!(
        e.contains("the manifest of oci://")
            && e.contains("is larger than a pack may be (65536 bytes at most)"),
        "{e}"
    );

    // One byte of a blob changed on the registry's disk (the pack manifest's, a blob of this
    // test's own): the registry serves it under its old digest, and the pull refuses it.
    let digest = layer(&good, "osprey-pack.json")["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_owned();
    let blob = storage.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{digest}/data",
        &digest[..2]
    ));
    let mut bytes = std::fs::read(&blob).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    let e = cli.fails(&["plugin", "install", &format!("oci://{host}/{repo}:good")]);
    assert!(e.contains("layer 'osprey-pack.json'"), "{e}");
    assert!(e.contains("failed its digest check"), "{e}");
    assert!(e.contains(&digest), "{e}");

    // Nothing was installed by either.
    assert!(installs(&cli).is_empty());
    assert!(cli.ok(&["plugin", "list"]).contains("no plugins installed"));
}

#[test]
fn an_unsigned_pack_from_a_registry_is_refused_as_a_file_is_and_allow_unsigned_is_audited() {
    let Some((host, _)) = registry() else { return };
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let pack = pack(&cli, work.path(), None);
    let reference = format!("oci://{host}/{}:0.1.0", repository("unsigned"));
    let out = cli.run(&["pack", "push", s(&pack), &reference]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("is not signed: installers refuse it"),
        "{}",
        text(&out.stderr)
    );

    let refused = cli.fails(&["plugin", "install", &reference]);
    assert!(
        refused.contains(&format!(
            "{reference} is not signed; Osprey installs packs signed by a publisher you trust"
        )),
        "{refused}"
    );
    assert!(installs(&cli).is_empty());

    let out = cli.run(&["plugin", "install", &reference, "--allow-unsigned"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("WARNING: --allow-unsigned"));
    let audited = installs(&cli);
    assert_eq!(audited.len(), 1);
    let p = &audited[0]["details"]["pack"];
    assert_eq!(p["signer"], "unsigned");
    assert_eq!(p["allow_unsigned"], true);
    assert_eq!(p["oci"], reference.as_str());
    echo(&cli, "unsigned");
}

/// The password of the registry with a sign-in (scripts/lib/registry.sh keeps its bcrypt hash).
const REGISTRY_PASSWORD: &str = "osprey-test-password";

#[test]
fn a_registry_that_wants_a_sign_in_gets_the_password_from_the_environment_only() {
    let Some(_) = registry() else { return };
    let auth = std::env::var("OSPREY_TEST_REGISTRY_AUTH")
        .expect("scripts/lib/registry.sh sets OSPREY_TEST_REGISTRY_AUTH with OSPREY_TEST_REGISTRY");
    let (user, host) = auth.split_once('@').unwrap();
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    cli.ok(&["trust", "add", "acme", s(&pk)]);
    let pack = pack(&cli, work.path(), Some(&sk));
    let reference = format!("oci://{host}/{}:0.1.0", repository("signed-in"));
    let run = |args: &[&str], password: Option<&str>| {
        let mut c = cli.command();
        c.env_remove("OSPREY_REGISTRY_PASSWORD");
        if let Some(p) = password {
            c.env("OSPREY_REGISTRY_PASSWORD", p);
        }
        c.args(args).output().unwrap()
    };

    // Anonymous, and a user without a password, are refused; a wrong password by the registry.
    let out = run(&["pack", "push", s(&pack), &reference], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("wants a sign-in, or refused this one"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["pack", "push", s(&pack), &reference, "--username", user], None);
    assert!(
        text(&out.stderr)
            .contains("--username needs its password in the environment variable OSPREY_REGISTRY_PASSWORD"),
        "{}",
        text(&out.stderr)
    );
    let out = run(
        &["pack", "push", s(&pack), &reference, "--username", user],
        Some("not the password"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("wants a sign-in, or refused this one"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &["pack", "push", s(&pack), &reference, "--username", user],
        Some(REGISTRY_PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["plugin", "install", &reference], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("give --username NAME"),
        "{}",
        text(&out.stderr)
    );
    assert!(installs(&cli).is_empty());
    let out = run(
        &[
            "plugin",
            "install",
            &reference,
            "--username",
            user,
            "--grant-requested",
        ],
        Some(REGISTRY_PASSWORD),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("installed test-echo 0.1.0"));
    echo(&cli, "signed in");
}
