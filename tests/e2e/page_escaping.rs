//! What a playbook puts in a question (its title, text and options, with `<script>` and
//! quotes) is shown as text, escaped, on the pages people answer it on: the answer link's
//! page and the inbox. With the real binary and a real SMTP server on loopback.

use crate::humans::{inbox, sign_in, user};
use crate::streaming_guard::links;
use crate::support::smtp::SmtpSink;
use crate::support::{Server, eventually, http_client, write_playbook};

/// The question, in the playbook's Rhai (quotes escaped for Rhai).
const SCRIPT: &str = r#"
    ask(#{ user: "alice",
           title: "<script>alert(\"title\")</script> Block 'x'?",
           text: "<script>alert('text')</script> said \"hi\"",
           options: ["<script>alert(1)</script> \"yes\" & 'no'", "watch"] });
"#;

/// The same texts as an HTML page must carry them.
const ESCAPED: [&str; 3] = [
    "&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt; Block &#x27;x&#x27;?",
    "&lt;script&gt;alert(&#x27;text&#x27;)&lt;/script&gt; said &quot;hi&quot;",
    "value=\"&lt;script&gt;alert(1)&lt;/script&gt; &quot;yes&quot; &amp; &#x27;no&#x27;\"",
];

fn assert_escaped(page: &str, which: &str) {
    assert!(
        !page.contains("<script>alert"),
        "{which}: a script got through:\n{page}"
    );
    for escaped in ESCAPED {
        assert!(page.contains(escaped), "{which}: no {escaped} in:\n{page}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_texts_are_escaped_on_the_answer_page_and_the_inbox() {
    let smtp = SmtpSink::start();
    let cli = crate::humans::setup(&smtp, "");
    user(&cli, "alice", "alice@corp.example", "soc");
    write_playbook(&cli.playbooks_dir(), "hostile", "", SCRIPT);
    let server = Server::start(&cli);
    let addr = server.addr.clone();
    cli.ok(&["playbook", "run", "hostile", "--detach"]);
    let http = http_client();

    // The answer link's page (mailed to alice).
    let mail = eventually(30, "the question's mail", async || {
        smtp.messages()
            .into_iter()
            .find(|m| m.to == ["alice@corp.example"])
    })
    .await;
    let (_, url) = links(&mail).into_iter().next().expect("an answer link");
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_escaped(&r.text().await.unwrap(), "the answer page");

    // The inbox, signed in as alice.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&no_redirects, &addr, "alice").await;
    assert_escaped(&inbox(&no_redirects, &addr, &cookie).await, "the inbox");
}
