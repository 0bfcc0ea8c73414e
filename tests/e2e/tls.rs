//! HTTPS from a plugin: the system's trust store decides (so an operator adds an internal CA
//! the usual way, here through SSL_CERT_FILE), and an untrusted certificate stops the request
//! before anything is sent.

use crate::support::fake_tls::FakeTls;
use crate::support::{Cli, dist, text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_uses_the_system_trust_store() {
    let server = FakeTls::start().await;
    let cli = Cli::new();
    cli.ok(&["plugin", "install", dist().join("test-hostile").to_str().unwrap()]);
    cli.ok(&[
        "plugin",
        "grant",
        "test-hostile",
        "--http",
        &format!("https://127.0.0.1:{}", server.addr.port()),
    ]);
    let input = format!("{{\"url\":\"{}\"}}", server.url("/ok"));

    // Not trusted: refused during the handshake, no request sent.
    let out = cli
        .command()
        .args(["plugin", "call", "test-hostile", "fetch", "--input", &input])
        .env("SSL_CERT_FILE", "/nonexistent/empty-trust-store.pem")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("TLS") && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    assert_eq!(server.requests(), 0);

    // Trusted through the system's usual knob.
    let ca = cli.data_dir().join("test-ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let out = cli
        .command()
        .args(["plugin", "call", "test-hostile", "fetch", "--input", &input])
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello over tls");
    assert_eq!(server.requests(), 1);
}
