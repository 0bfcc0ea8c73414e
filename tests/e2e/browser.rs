//! The web console in a real browser: headless Chromium, driven through chromedriver
//! (`support/browser.rs`), against a real `osprey serve`. Proves that a person signs in
//! through the /login page (and that a wrong password shows the error), and answers a
//! playbook's question from the inbox by clicking, with the answer reaching the waiting run;
//! and that the inbox fits a phone's width (390 px) without scrolling sideways.
//!
//! Every step leaves a PNG screenshot in `$OSPREY_TEST_ARTIFACTS`, else
//! `$CARGO_TARGET_DIR/test-artifacts/browser`, else `target/test-artifacts/browser` (the
//! paths are printed; `cargo test ... -- --nocapture` shows them). Needs Chromium and
//! chromedriver (`scripts/test.sh` installs Debian's); without them these tests fail, saying
//! so.

use crate::support::browser::Browser;
use crate::support::{Cli, Server, eventually, text, write_playbook};
use serde_json::Value;

const PASSWORD: &str = "a-long-enough-passphrase";

/// A user who signs in with `PASSWORD`.
fn user(cli: &Cli, name: &str, roles: &str) {
    cli.ok(&[
        "user",
        "add",
        name,
        "--email",
        &format!("{name}@corp.example"),
        "--role",
        roles,
    ]);
    let out = cli.run_with_stdin(&["user", "password", name], &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_through_the_login_page() {
    let cli = Cli::new();
    user(&cli, "alice", "analyst");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let browser = Browser::start("sign_in").await;

    // Signed out, a page sends to the sign-in form, which comes back to it.
    browser.goto(&format!("{base}/whoami")).await;
    browser.wait_for("input[name=password]").await;
    assert_eq!(browser.url().await.path(), "/login");
    browser.screenshot("1-login-form").await;

    // A wrong password: the form again, with the error and nothing else.
    browser.fill("input[name=user]", "alice").await;
    browser.fill("input[name=password]", "not the password").await;
    browser.click("form[action='/login'] button[type=submit]").await;
    let error = browser.wait_for(".error").await.text().await.unwrap();
    assert!(error.contains("wrong user name or password"), "{error}");
    assert_eq!(browser.url().await.path(), "/login");
    assert!(
        !browser.page_source().await.contains("not the password"),
        "the password is not echoed"
    );
    browser.screenshot("2-wrong-password").await;

    // The right one, in the same form: signed in, and back where the browser was going.
    browser.fill("input[name=password]", PASSWORD).await;
    browser.click("form[action='/login'] button[type=submit]").await;
    browser
        .wait_for_url("/whoami after signing in", |u| u.path() == "/whoami")
        .await;
    let whoami = browser.text("body").await;
    assert!(whoami.contains("user: alice"), "{whoami}");
    assert!(whoami.contains("roles: analyst"), "{whoami}");
    browser.screenshot("3-whoami").await;

    // The console's pages are open to the session now.
    browser.goto(&format!("{base}/inbox")).await;
    browser.wait_for("h1").await;
    assert_eq!(browser.text("h1").await, "Inbox");
    assert!(browser.page_text().await.contains("alice"), "the user is shown");
    browser.screenshot("4-inbox").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_is_answered_from_the_inbox() {
    let cli = Cli::new();
    user(&cli, "alice", "soc");
    write_playbook(
        &cli.playbooks_dir(),
        "contain",
        "",
        r#"
        let a = ask(#{ user: "alice", title: "Block 203.0.113.7 at the firewall?",
                       text: "It scanned 40 hosts in a minute.", options: ["block", "watch", "ignore"] });
        #{ answer: a.answer, by: a.by, via: a.via, comment: a.comment }
        "#,
    );
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let out = cli.ok(&["playbook", "run", "contain", "--detach"]);
    let run = out.split_whitespace().nth(1).unwrap().to_owned();
    eventually(30, "the question", async || {
        cli.ok(&["question", "list", "--json"])
            .contains("Block 203.0.113.7")
            .then_some(())
    })
    .await;

    let browser = Browser::start("inbox").await;
    browser.login(&base, "alice", PASSWORD).await;
    browser.goto(&format!("{base}/inbox")).await;
    let form = "form[action^='/inbox/questions/']";
    browser.wait_for(form).await;
    let page = browser.page_text().await;
    assert!(page.contains("Block 203.0.113.7 at the firewall?"), "{page}");
    assert!(page.contains("It scanned 40 hosts in a minute."), "{page}");
    browser.screenshot("1-question").await;

    // On a phone: the same inbox, no sideways scrolling.
    browser.set_window_size(390, 844).await;
    browser.screenshot("2-question-phone").await;
    let widths = browser
        .execute("return [document.documentElement.scrollWidth, window.innerWidth];")
        .await;
    assert!(
        !browser.scrolls_horizontally().await,
        "the inbox scrolls sideways at 390 px (scrollWidth, innerWidth = {widths})"
    );
    browser.set_window_size(1280, 900).await;

    // Choose, comment, send.
    browser
        .click(&format!("{form} input[name=option][value=watch]"))
        .await;
    assert!(
        browser
            .find(&format!("{form} input[name=option][value=watch]"))
            .await
            .is_selected()
            .await
            .unwrap()
    );
    browser
        .fill(&format!("{form} textarea[name=comment]"), "seen from the lab")
        .await;
    browser.screenshot("3-answer-chosen").await;
    browser.click(&format!("{form} button[type=submit]")).await;

    // The inbox comes back without the question: it was recorded.
    browser
        .wait_for_url("the inbox again", |u| u.path() == "/inbox")
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while browser.page_text().await.contains("Block 203.0.113.7") {
        assert!(
            std::time::Instant::now() < deadline,
            "the answered question is still in the inbox:\n{}",
            browser.page_text().await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let page = browser.page_text().await;
    assert!(page.contains("0 question(s)"), "{page}");
    assert!(page.contains("Nothing waits for you"), "{page}");
    browser.screenshot("4-answered").await;

    // The run went on with the answer.
    let done = eventually(30, "the run completed", async || {
        let r: Value = serde_json::from_str(&cli.ok(&["run", "show", &run, "--json"])).unwrap();
        (r["run"]["status"] == "completed").then_some(r)
    })
    .await;
    let output = &done["run"]["output"];
    assert_eq!(output["answer"], "watch", "{done}");
    assert_eq!(output["by"], "user:alice", "{done}");
    assert_eq!(output["via"], "web", "{done}");
    assert_eq!(output["comment"], "seen from the lab", "{done}");
    browser.close().await;
}
