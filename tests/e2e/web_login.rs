//! Signing in to the web console: a password set with the CLI, a session cookie from
//! `POST /login`, pages behind it, CSRF on sign-out, audited failures and the limit on them.

use crate::support::{Cli, Server, text};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const PASSWORD: &str = "correct horse battery";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("web-login-test/1")
        .build()
        .unwrap()
}

fn form(fields: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

async fn post_form(
    http: &reqwest::Client,
    url: String,
    cookie: Option<&str>,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields));
    if let Some(c) = cookie {
        req = req.header(COOKIE, c);
    }
    req.send().await.unwrap()
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The value of the hidden field `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

fn audit(cli: &Cli, prefix: &str) -> Vec<serde_json::Value> {
    cli.ok(&["audit", "export", "--action", prefix])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_sign_in_with_a_password_and_a_session_cookie() {
    let cli = Cli::new();
    cli.ok(&["user", "add", "alice", "--role", "soc", "--role", "analyst"]);

    // Passwords come from stdin; short ones are refused with a clear message.
    let out = cli.run_with_stdin(&["user", "password", "alice"], "hunter2\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("too short") && err.contains("at least 12"), "{err}");
    let out = cli.run_with_stdin(&["user", "password", "nobody"], &format!("{PASSWORD}\n"));
    assert!(
        text(&out.stderr).contains("no user 'nobody'"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.run_with_stdin(&["user", "password", "alice"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let set = audit(&cli, "user.password");
    assert_eq!(set.len(), 1);
    assert!(
        !set[0].to_string().contains("argon2"),
        "never the hash: {}",
        set[0]
    );

    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = client();

    // Not signed in: sent to the sign-in page, which comes back here.
    let resp = http.get(format!("{base}/whoami")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, LOCATION), "/login?next=%2Fwhoami");
    let resp = http
        .get(format!("{base}/login?next=%2Fwhoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("name=\"viewport\"") && page.contains("type=\"password\""),
        "{page}"
    );
    assert_eq!(hidden(&page, "next"), "/whoami");

    // Signing in sets the session cookie and goes where `next` says.
    let resp = post_form(
        &http,
        format!("{base}/login"),
        None,
        &[("user", "alice"), ("password", PASSWORD), ("next", "/whoami")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, LOCATION), "/whoami");
    let set_cookie = header(&resp, SET_COOKIE);
    assert!(set_cookie.starts_with("osprey_session="), "{set_cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attr), "{attr} in {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP by default: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let resp = http
        .get(format!("{base}/whoami"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "user: alice\nroles: analyst soc\n");
    let logins = audit(&cli, "user.login");
    assert_eq!(logins.len(), 1, "{logins:?}");
    assert_eq!(logins[0]["action"], "user.login");
    assert_eq!(logins[0]["actor"], "user:alice");
    assert_eq!(logins[0]["details"]["remote"], "127.0.0.1");
    assert_eq!(logins[0]["details"]["user_agent"], "web-login-test/1");

    // `next` must be a path here: anything else goes to the inbox.
    let resp = post_form(
        &http,
        format!("{base}/login"),
        None,
        &[
            ("user", "alice"),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, LOCATION), "/");

    // Signing out needs the session's CSRF token, shown on the sign-in page when signed in.
    let page = http
        .get(format!("{base}/login"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("signed in as <strong>alice</strong>"), "{page}");
    let csrf = hidden(&page, "csrf");
    let resp = post_form(&http, format!("{base}/logout"), Some(&cookie), &[]).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("expired; reload the page"));
    let resp = post_form(
        &http,
        format!("{base}/logout"),
        Some(&cookie),
        &[("csrf", "not-it")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let still = http
        .get(format!("{base}/whoami"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.status(),
        StatusCode::OK,
        "a refused sign-out changes nothing"
    );
    let resp = post_form(&http, format!("{base}/logout"), Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(header(&resp, LOCATION), "/login");
    assert!(header(&resp, SET_COOKIE).contains("Max-Age=0"));
    let resp = http
        .get(format!("{base}/whoami"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "the session is gone");
    assert_eq!(audit(&cli, "user.logout").len(), 1);

    // A wrong password and an unknown user get the same answer, and both are audited.
    let resp = post_form(
        &http,
        format!("{base}/login"),
        None,
        &[("user", "mallory"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.unwrap().contains("wrong user name or password"));
    for _ in 0..4 {
        let resp = post_form(
            &http,
            format!("{base}/login"),
            None,
            &[("user", "alice"), ("password", "not the password")],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let page = resp.text().await.unwrap();
        assert!(page.contains("wrong user name or password"), "{page}");
        assert!(!page.contains("not the password"), "the password is not echoed");
    }
    let failed = audit(&cli, "user.login_failed");
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0]["target"], "user:mallory");
    assert_eq!(failed[1]["target"], "user:alice");
    assert_eq!(failed[1]["details"]["remote"], "127.0.0.1");

    // Five failures from this address within 15 minutes: the next attempt is refused, even
    // with the right password.
    let resp = post_form(
        &http,
        format!("{base}/login"),
        None,
        &[("user", "alice"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!header(&resp, reqwest::header::RETRY_AFTER).is_empty());
    assert!(header(&resp, SET_COOKIE).is_empty(), "no session");
    assert!(
        resp.text().await.unwrap().contains("too many failed sign-ins"),
        "says why"
    );
    assert_eq!(
        audit(&cli, "user.login_failed").len(),
        5,
        "a refused attempt checks nothing"
    );
}

/// A sign-in posted with `headers` (name, value), as a browser would send them.
async fn sign_in_with(http: &reqwest::Client, base: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("user", "carol"),
            ("password", PASSWORD),
            ("next", "/whoami"),
        ]));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_a_form_posted_from_another_site() {
    let cli = Cli::new();
    cli.ok(&["user", "add", "carol", "--role", "analyst"]);
    let out = cli.run_with_stdin(&["user", "password", "carol"], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = client();

    // A hostile page's form, with the right password: refused, no session.
    for headers in [
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
        vec![("sec-fetch-site", "cross-site")],
        vec![
            ("sec-fetch-site", "same-site"),
            ("origin", "https://other.example"),
        ],
        // Browsers without Sec-Fetch-Site: the Origin tells.
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
    ] {
        let resp = sign_in_with(&http, &base, &headers).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(header(&resp, SET_COOKIE).is_empty(), "no session: {headers:?}");
        let page = resp.text().await.unwrap();
        assert!(
            page.contains("sent from another site") && page.contains("sign-in page"),
            "{headers:?}: {page}"
        );
    }
    let refused = audit(&cli, "user.login_failed");
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert_eq!(refused[0]["target"], "user:carol");
    assert_eq!(refused[0]["details"]["reason"], "cross_site");
    let signed_in = audit(&cli, "user.login");
    assert!(
        signed_in.iter().all(|e| e["action"] == "user.login_failed"),
        "nobody signed in: {signed_in:?}"
    );

    // Five refusals count like five failures: the address is locked now, so the rest of the
    // test signs in from a fresh server (the limiter is per process).
    drop(server);
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);

    // The server's own form (same origin), a bookmark (none), an old browser with a
    // matching Origin, and curl (neither header) all sign in.
    let origin = base.clone();
    for headers in [
        vec![("sec-fetch-site", "same-origin"), ("origin", origin.as_str())],
        vec![("sec-fetch-site", "none")],
        vec![("origin", origin.as_str())],
        vec![],
    ] {
        let resp = sign_in_with(&http, &base, &headers).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{headers:?}");
        assert_eq!(header(&resp, LOCATION), "/whoami");
        assert!(
            header(&resp, SET_COOKIE).starts_with("osprey_session="),
            "{headers:?}"
        );
    }

    // Signing out from another site is refused too, even with the session's CSRF token.
    let resp = sign_in_with(&http, &base, &[]).await;
    let cookie = header(&resp, SET_COOKIE).split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{base}/login"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = hidden(&page, "csrf");
    let resp = http
        .post(format!("{base}/logout"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .body(form(&[("csrf", &csrf)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("sent from another site"));
    let still = http
        .get(format!("{base}/whoami"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK, "the session is still there");
    let resp = post_form(&http, format!("{base}/logout"), Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "the same sign-out from here works"
    );
}

/// The password line `osprey user first-admin` prints.
fn printed_password(out: &str) -> String {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("password:"))
        .unwrap_or_else(|| panic!("no password in {out}"))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_run_makes_an_admin_whose_printed_password_signs_in_once_shown() {
    let cli = Cli::new();
    // A fresh data directory: the user `admin` is made and its password printed.
    let out = cli.ok(&["user", "first-admin"]);
    assert!(
        out.contains("First sign-in: http://127.0.0.1:8080/login"),
        "{out}"
    );
    assert!(out.contains("user:     admin"), "{out}");
    let password = printed_password(&out);
    assert!(password.len() >= 32, "a long generated password: {password}");
    let made = audit(&cli, "user.create");
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["target"], "user:admin");
    assert!(!audit(&cli, "user.password")[0].to_string().contains(&password));

    // Run again (every `scripts/run.sh` does): nothing changes and nothing is shown.
    let again = cli.ok(&["user", "first-admin"]);
    assert_eq!(again.trim(), "administrators who can sign in: admin");
    assert_eq!(audit(&cli, "user.password").len(), 1, "the password stays");

    // The printed password signs in, as an administrator.
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let http = client();
    let resp = post_form(
        &http,
        format!("{base}/login"),
        None,
        &[("user", "admin"), ("password", &password), ("next", "/whoami")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = header(&resp, SET_COOKIE).split(';').next().unwrap().to_owned();
    let resp = http
        .get(format!("{base}/whoami"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "user: admin\nroles: admin\n");
    drop(server);

    // An `admin` disabled while no other administrator can sign in: refused, saying how out.
    cli.ok(&["user", "disable", "admin"]);
    let err = cli.fails(&["user", "first-admin"]);
    assert!(
        err.contains("exists but is disabled") && err.contains("osprey user enable admin"),
        "{err}"
    );
    // Another administrator with a password: nothing to do.
    cli.ok(&["user", "add", "carol", "--role", "admin"]);
    cli.run_with_stdin(&["user", "password", "carol"], &format!("{PASSWORD}\n"));
    assert_eq!(
        cli.ok(&["user", "first-admin"]).trim(),
        "administrators who can sign in: carol"
    );
}
