//! Allow and block lists through the real binary and server: `osprey list`, External Dynamic
//! Lists at `GET /edl/NAME.txt` (tokens as Bearer and as basic auth, ETag and If-None-Match),
//! the entry limit, and expiry with its audit entry.

use crate::support::{Cli, Server, eventually, http_client};

fn token(cli: &Cli, name: &str, scope: &str) -> String {
    cli.ok(&["token", "create", name, "--scope", scope])
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_served_as_edls_to_token_holders_and_expired_entries_go() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[lists]\nexpiry_interval = \"200ms\"\nmax_entries = 3\n",
    )
    .unwrap();
    let out = cli.ok(&[
        "list",
        "create",
        "blocked-ips",
        "--kind",
        "block",
        "--type",
        "ip",
        "--description",
        "scanners",
    ]);
    assert!(out.contains("/edl/blocked-ips.txt"), "{out}");
    let err = cli.fails(&["list", "create", "blocked-ips", "--kind", "block", "--type", "ip"]);
    assert!(err.contains("exists already"), "{err}");
    let out = cli.ok(&[
        "list",
        "add",
        "blocked-ips",
        "203.0.113.9",
        "10.1.2.3/8",
        "--reason",
        "scanning us",
    ]);
    assert!(out.contains("2 added") && out.contains("10.0.0.0/8"), "{out}");
    // A bad value is named with the type, and nothing of that call is added.
    let err = cli.fails(&[
        "list",
        "add",
        "blocked-ips",
        "192.0.2.1",
        "10.0.0.300",
        "--reason",
        "x",
    ]);
    assert!(err.contains("'10.0.0.300'") && err.contains("ip entry"), "{err}");
    let err = cli.fails(&["list", "add", "nope", "192.0.2.1", "--reason", "x"]);
    assert!(err.contains("no list named 'nope'"), "{err}");
    // Two more would be too many (max_entries = 3): nothing is added, nothing is lost.
    let err = cli.fails(&[
        "list",
        "add",
        "blocked-ips",
        "192.0.2.1",
        "192.0.2.2",
        "--reason",
        "x",
    ]);
    assert!(
        err.contains("would hold 4 live entries") && err.contains("lists.max_entries"),
        "{err}"
    );
    let edl = token(&cli, "firewall", "edl");
    let intake_only = token(&cli, "sensor", "intake");

    let server = Server::start(&cli);
    let url = format!("http://{}/edl/blocked-ips.txt", server.addr);
    let http = http_client();

    // No credentials, a wrong token, the right token under another name: 401 with a challenge.
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenges: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("Basic realm=\"osprey-edl\"")),
        "{challenges:?}"
    );
    let r = http.get(&url).bearer_auth("osp_nope").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&url)
        .basic_auth("someone-else", Some(&edl))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A token without scope edl: 403.
    let r = http.get(&url).bearer_auth(&intake_only).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(&url)
        .basic_auth("sensor", Some(&intake_only))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Bearer and basic auth: the same list, one entry per line.
    let r = http.get(&url).bearer_auth(&edl).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.text().await.unwrap(), "10.0.0.0/8\n203.0.113.9\n");
    let r = http
        .get(&url)
        .basic_auth("firewall", Some(&edl))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.text().await.unwrap(), "10.0.0.0/8\n203.0.113.9\n");

    // Unchanged: 304 without a body.
    let r = http
        .get(&url)
        .bearer_auth(&edl)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().await.unwrap().is_empty());

    // Unknown list: 404 in plain words.
    let r = http
        .get(format!("http://{}/edl/nope.txt", server.addr))
        .bearer_auth(&edl)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no list named 'nope'"));

    // A short-lived entry: served at once with a new ETag, gone after its expiry.
    cli.ok(&[
        "list",
        "add",
        "blocked-ips",
        "198.51.100.7",
        "--reason",
        "one scan",
        "--expires",
        "4s",
    ]);
    let r = http
        .get(&url)
        .bearer_auth(&edl)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "the list changed, so the old ETag does not match"
    );
    let new_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(new_etag, etag);
    assert_eq!(r.text().await.unwrap(), "10.0.0.0/8\n198.51.100.7\n203.0.113.9\n");
    let show = cli.ok(&["list", "show", "blocked-ips"]);
    assert!(
        show.contains("198.51.100.7") && show.contains("one scan") && show.contains("cli:"),
        "{show}"
    );

    let body = eventually(30, "the short-lived entry to leave the EDL", async || {
        let r = http.get(&url).bearer_auth(&edl).send().await.ok()?;
        let body = r.text().await.ok()?;
        (!body.contains("198.51.100.7")).then_some(body)
    })
    .await;
    assert_eq!(body, "10.0.0.0/8\n203.0.113.9\n");
    let audit = eventually(30, "the list.expire audit entry", async || {
        let out = cli.ok(&["audit", "show", "--action", "list."]);
        out.lines()
            .any(|l| l.contains("list.expire") && l.contains("198.51.100.7"))
            .then_some(out)
    })
    .await;
    for action in ["list.create", "list.add"] {
        assert!(audit.contains(action), "{audit}");
    }
    let expire = audit.lines().find(|l| l.contains("list.expire")).unwrap();
    assert!(
        expire.contains("system") && expire.contains("list:blocked-ips"),
        "{expire}"
    );
    let show = cli.ok(&["list", "show", "blocked-ips", "--expired"]);
    assert!(!show.contains("198.51.100.7"), "the job removed it: {show}");

    // Removal and deletion.
    let out = cli.ok(&["list", "remove", "blocked-ips", "203.0.113.9/32", "192.0.2.99"]);
    assert!(
        out.contains("1 removed") && out.contains("not on the list: 192.0.2.99"),
        "{out}"
    );
    let r = http.get(&url).bearer_auth(&edl).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "10.0.0.0/8\n");
    let out = cli.ok(&["list", "list"]);
    assert!(out.contains("blocked-ips") && out.contains("1 entries"), "{out}");
    cli.ok(&["list", "delete", "blocked-ips"]);
    let r = http.get(&url).bearer_auth(&edl).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let out = cli.ok(&["audit", "show", "--action", "list."]);
    assert!(
        out.contains("list.remove") && out.contains("list.delete"),
        "{out}"
    );
    assert!(cli.ok(&["audit", "verify"]).contains("intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_edls_can_be_served_without_auth_when_configured() {
    let cli = Cli::new();
    std::fs::write(
        cli.data_dir().join("osprey.toml"),
        "[lists]\nedl_auth = \"none\"\n",
    )
    .unwrap();
    cli.ok(&[
        "list",
        "create",
        "bad-domains",
        "--kind",
        "block",
        "--type",
        "domain",
    ]);
    cli.ok(&[
        "list",
        "add",
        "bad-domains",
        "Evil.Example.",
        "*.phish.example",
        "--reason",
        "phishing",
    ]);
    let server = Server::start(&cli);
    let r = http_client()
        .get(format!("http://{}/edl/bad-domains.txt", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "*.phish.example\nevil.example\n");
}
