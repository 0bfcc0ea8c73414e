//! Installing a plugin from the web console, against a real `osprey serve`: the console's pages
//! as a signed-in user reads them, and the API calls its script makes for their forms (the
//! session cookie with the CSRF token in `X-CSRF-Token`). An operator uploads a pack signed by
//! a trusted publisher, reviews what it is, who signed it and what it requests, and approves:
//! the running server has it, granted, audited as the operator. Unsigned and untrusted packs
//! are refused with the CLI's words; a pack over the upload limit is refused unread; roles
//! other than operator (and admin) reach neither the pages nor the calls; a request without
//! the CSRF token, a cancelled install, someone else's install and an unknown id install
//! nothing. And once in a real headless Chromium: the pages' forms, through `console.js`.

use crate::api::{set_password, sign_in};
use crate::packs::{build, echo, installs, key_line, keypair, s};
use crate::support::browser::Browser;
use crate::support::{Cli, Server, http_client};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use std::path::Path;

/// The tests' users' password (`api::set_password`).
const PASSWORD: &str = "correct horse battery";

/// A signed-in user of the server at `base`.
struct Session {
    base: String,
    cookie: String,
    csrf: String,
}

impl Session {
    async fn new(base: &str, user: &str) -> Session {
        let (cookie, csrf) = sign_in(base, user).await;
        Session {
            base: base.to_owned(),
            cookie,
            csrf,
        }
    }

    /// A console page.
    async fn page(&self, path: &str) -> (u16, String) {
        let r = http_client()
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A call to the API as the console's script makes it (without the CSRF token if not
    /// `csrf`).
    fn call(&self, method: Method, path: &str, csrf: bool) -> RequestBuilder {
        let r = http_client()
            .request(method, format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if csrf {
            r.header("x-csrf-token", &self.csrf)
        } else {
            r
        }
    }

    /// `POST /api/v1/plugin-installs` with `pack` as the body, as the upload form sends it.
    async fn upload(&self, pack: &Path) -> (u16, Value) {
        let r = self
            .call(Method::POST, "/api/v1/plugin-installs", true)
            .header("content-type", "application/octet-stream")
            .body(std::fs::read(pack).unwrap())
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    /// `POST /api/v1/plugin-installs/ID/apply` with `grant`.
    async fn apply(&self, id: &str, grant: &str, csrf: bool) -> (u16, Value) {
        let r = self
            .call(Method::POST, &format!("/api/v1/plugin-installs/{id}/apply"), csrf)
            .json(&json!({ "grant": grant }))
            .send()
            .await
            .unwrap();
        answer(r).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        answer(self.call(Method::GET, path, true).send().await.unwrap()).await
    }
}

async fn answer(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A user `name` with `role` and the tests' password.
fn user(cli: &Cli, name: &str, role: &str) {
    cli.ok(&["user", "add", name, "--role", role]);
    set_password(cli, name);
}

/// The installed plugins' names, as the running server lists them.
async fn installed(session: &Session) -> Vec<String> {
    let (status, list) = session.get("/api/v1/plugins").await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_uploads_a_signed_pack_reviews_it_and_approves() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    cli.ok(&["trust", "add", "acme", &key_line(&pk)]);
    let pack = build(&cli, work.path(), "echo.ospack");
    cli.ok(&["pack", "sign", s(&pack), "--key", s(&sk)]);
    let inspected: Value = serde_json::from_str(&cli.ok(&["pack", "inspect", s(&pack), "--json"])).unwrap();
    let digest = inspected["digest"].as_str().unwrap().to_owned();
    let key_id = inspected["signer"]["key_id"].as_str().unwrap().to_owned();
    user(&cli, "olga", "operator");
    let server = Server::start(&cli);
    let olga = Session::new(&format!("http://{}", server.addr), "olga").await;

    // The plugins page leads to the install page, which offers both sources.
    let (status, list) = olga.page("/plugins").await;
    assert_eq!(status, 200);
    assert!(list.contains("href=\"/plugin-installs\""), "{list}");
    let (status, form) = olga.page("/plugin-installs").await;
    assert_eq!(status, 200, "{form}");
    for want in [
        "data-api=\"/api/v1/plugin-installs\"",
        "data-upload=\"pack\"",
        "name=\"source\"",
        "at most 64 MiB",
    ] {
        assert!(form.contains(want), "{want} in {form}");
    }

    // The upload is checked and waits for review: nothing is installed yet.
    let (status, review) = olga.upload(&pack).await;
    assert_eq!(status, 201, "{review}");
    let id = review["id"].as_str().unwrap().to_owned();
    assert_eq!(review["name"], "test-echo");
    assert_eq!(review["version"], "0.1.0");
    assert_eq!(review["digest"], digest.as_str());
    assert_eq!(review["signer"]["trusted_as"], "acme");
    assert_eq!(review["signer"]["key_id"], key_id.as_str());
    assert_eq!(review["requested"]["secrets"], json!(["greeting"]));
    assert_eq!(review["granted"], Value::Null);
    assert!(review["upgrade"].is_null(), "{review}");
    assert!(
        review["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "echo"),
        "{review}"
    );
    assert!(installed(&olga).await.is_empty());

    // The review page says what the CLI's prompt says, and its forms name only the id.
    let (status, page) = olga.page(&format!("/plugin-installs/{id}")).await;
    assert_eq!(status, 200, "{page}");
    for want in [
        "Install test-echo 0.1.0?",
        &format!("key id {key_id}, trusted as &#x27;acme&#x27;"),
        &digest,
        "<code>greeting</code>",
        "kv store bytes",
        "<code>4096</code>",
        "not granted",
        &format!("data-api=\"/api/v1/plugin-installs/{id}/apply\""),
        "value=\"requested\"",
        "value=\"none\"",
        "data-method=\"DELETE\"",
    ] {
        assert!(page.contains(want), "{want} in {page}");
    }

    // Without the session's CSRF token the approval is refused, and the install still waits.
    let (status, refused) = olga.apply(&id, "requested", false).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["type"], "https://osprey.dev/problems/csrf");
    assert!(installed(&olga).await.is_empty());

    let (status, done) = olga.apply(&id, "requested", true).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["name"], "test-echo");
    assert_eq!(done["granted"], true);
    assert_eq!(done["not_granted"], json!([]));
    assert_eq!(done["secrets_unset"], json!(["greeting"]));
    // The id is spent.
    let (status, _) = olga.apply(&id, "requested", true).await;
    assert_eq!(status, 404);

    // The running server has it, granted what it requested.
    let (status, plugin) = olga.get("/api/v1/plugins/test-echo").await;
    assert_eq!(status, 200, "{plugin}");
    assert_eq!(plugin["version"], "0.1.0");
    assert_eq!(plugin["granted"]["secrets"], json!(["greeting"]));
    assert_eq!(plugin["missing"], json!([]));
    let (_, page) = olga.page("/plugins/test-echo").await;
    assert!(page.contains("badge granted"), "{page}");
    echo(&cli, "installed from the console");

    // Audited as the operator, with the pack's digest and signer.
    let audited = installs(&cli);
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0]["actor"], "user:olga");
    let p = &audited[0]["details"]["pack"];
    assert_eq!(p["digest"], digest.as_str());
    assert_eq!(p["signer"]["trusted_as"], "acme");
    assert!(p.get("allow_unsigned").is_none(), "{p}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_cancelled_and_foreign_installs_install_nothing() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    let (other_sk, other_pk) = keypair(work.path(), "other", None);
    cli.ok(&["trust", "add", "acme", &key_line(&pk)]);
    let unsigned = build(&cli, work.path(), "unsigned.ospack");
    let untrusted = build(&cli, work.path(), "untrusted.ospack");
    cli.ok(&["pack", "sign", s(&untrusted), "--key", s(&other_sk)]);
    let signed = build(&cli, work.path(), "signed.ospack");
    cli.ok(&["pack", "sign", s(&signed), "--key", s(&sk)]);
    user(&cli, "olga", "operator");
    user(&cli, "oscar", "operator");
    user(&cli, "anna", "analyst");
    user(&cli, "aude", "auditor");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let olga = Session::new(&base, "olga").await;

    // Unsigned and untrusted packs: refused with the CLI's message.
    let (status, refused) = olga.upload(&unsigned).await;
    assert_eq!(status, 400, "{refused}");
    let title = refused["title"].as_str().unwrap();
    assert!(
        title.contains(
            "the uploaded pack is not signed; Osprey installs packs signed by a publisher you trust"
        ),
        "{title}"
    );
    let (status, refused) = olga.upload(&untrusted).await;
    assert_eq!(status, 400, "{refused}");
    let title = refused["title"].as_str().unwrap();
    assert!(title.contains("which this Osprey does not trust"), "{title}");
    assert!(
        title.contains(&format!(
            "osprey trust add test-echo-publisher {}",
            key_line(&other_pk)
        )),
        "{title}"
    );
    // Not a pack at all.
    let r = olga
        .call(Method::POST, "/api/v1/plugin-installs", true)
        .header("content-type", "application/octet-stream")
        .body("not a pack")
        .send()
        .await
        .unwrap();
    let (status, refused) = answer(r).await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["title"]
            .as_str()
            .unwrap()
            .starts_with("the uploaded pack is refused"),
        "{refused}"
    );

    // A pack larger than the limit is refused on its Content-Length, before its body is read.
    let head = format!(
        "POST /api/v1/plugin-installs HTTP/1.1\r\nhost: {}\r\ncookie: {}\r\nx-csrf-token: {}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        server.addr,
        olga.cookie,
        olga.csrf,
        64 * 1024 * 1024 + 1
    );
    let status_line = raw_status(&server.addr, &head).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    // Without the CSRF token, an upload is refused.
    let r = olga
        .call(Method::POST, "/api/v1/plugin-installs", false)
        .header("content-type", "application/octet-stream")
        .body(std::fs::read(&signed).unwrap())
        .send()
        .await
        .unwrap();
    let (status, refused) = answer(r).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["type"], "https://osprey.dev/problems/csrf");

    // Other roles reach neither the pages nor the calls.
    for name in ["anna", "aude"] {
        let other = Session::new(&base, name).await;
        let (status, page) = other.page("/plugin-installs").await;
        assert_eq!(status, 403, "{name}: {page}");
        assert!(page.contains("do not allow this page"), "{page}");
        let (_, list) = other.page("/plugins").await;
        assert!(
            !list.contains("/plugin-installs"),
            "{name} is offered the install page"
        );
        let (status, refused) = other.upload(&signed).await;
        assert_eq!(status, 403, "{name}: {refused}");
        assert_eq!(refused["type"], "https://osprey.dev/problems/permission-denied");
    }

    // A prepared install is its preparer's: another operator neither sees nor applies it.
    let (status, review) = olga.upload(&signed).await;
    assert_eq!(status, 201, "{review}");
    let id = review["id"].as_str().unwrap().to_owned();
    let oscar = Session::new(&base, "oscar").await;
    let (status, _) = oscar.get(&format!("/api/v1/plugin-installs/{id}")).await;
    assert_eq!(status, 404);
    let (status, _) = oscar.apply(&id, "requested", true).await;
    assert_eq!(status, 404);
    let (status, page) = oscar.page(&format!("/plugin-installs/{id}")).await;
    assert_eq!(status, 404, "{page}");
    let anna = Session::new(&base, "anna").await;
    let (status, _) = anna.page(&format!("/plugin-installs/{id}")).await;
    assert_eq!(status, 403);

    // Cancelled, it is gone.
    let (status, _) = olga.get(&format!("/api/v1/plugin-installs/{id}")).await;
    assert_eq!(status, 200);
    let r = olga
        .call(Method::DELETE, &format!("/api/v1/plugin-installs/{id}"), true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = olga.apply(&id, "requested", true).await;
    assert_eq!(status, 404);
    let (status, page) = olga.page(&format!("/plugin-installs/{id}")).await;
    assert_eq!(status, 404);
    assert!(page.contains("it expired"), "{page}");
    // An id that was never given.
    let (status, gone) = olga.apply("no-such-install", "none", true).await;
    assert_eq!(status, 404, "{gone}");

    assert!(installed(&olga).await.is_empty());
    assert!(installs(&cli).is_empty());
    drop(server);
}

/// The status line the server at `addr` answers to `head` (a request's head, its body not
/// sent).
async fn raw_status(addr: &str, head: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(&mut stream);
    let read = reader.read_line(&mut line);
    tokio::time::timeout(std::time::Duration::from_secs(30), read)
        .await
        .expect("the server answers without waiting for the body")
        .unwrap();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_installs_a_pack_by_clicking_through_the_console() {
    let cli = Cli::new();
    let work = tempfile::tempdir().unwrap();
    let (sk, pk) = keypair(work.path(), "acme", None);
    cli.ok(&["trust", "add", "acme", &key_line(&pk)]);
    let pack = build(&cli, work.path(), "echo.ospack");
    cli.ok(&["pack", "sign", s(&pack), "--key", s(&sk)]);
    user(&cli, "olga", "operator");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);

    let browser = Browser::start("console-install").await;
    browser.login(&base, "olga", PASSWORD).await;
    browser.goto(&format!("{base}/plugins")).await;
    browser.click("#install-link").await;
    browser.wait_for("#upload-form").await;
    browser
        .find("#pack")
        .await
        .send_keys(s(&pack))
        .await
        .expect("choosing the pack file");
    browser.click("#upload-form button").await;
    browser
        .wait_for_url("the review page", |u| u.path().starts_with("/plugin-installs/"))
        .await;
    let signer = browser.text("#signer").await;
    assert!(signer.contains("trusted as 'acme'"), "{signer}");
    let capabilities = browser.text("#capabilities").await;
    assert!(
        capabilities.contains("greeting") && capabilities.contains("not granted"),
        "{capabilities}"
    );
    browser.screenshot("review").await;
    assert!(
        installs(&cli).is_empty(),
        "nothing is installed before the approval"
    );

    browser.click("#approve-form button").await;
    browser
        .wait_for_url("the plugin's page", |u| u.path() == "/plugins/test-echo")
        .await;
    let capabilities = browser.text("#capabilities").await;
    assert!(
        capabilities.contains("greeting") && !capabilities.contains("not granted"),
        "{capabilities}"
    );
    browser.screenshot("installed").await;
    browser.close().await;
    let audited = installs(&cli);
    assert_eq!(audited.len(), 1);
    assert_eq!(audited[0]["actor"], "user:olga");
    echo(&cli, "clicked through the console");
    drop(server);
}
