//! Playbook dashboards end to end, with the real binary: a playbook records points across
//! runs, the API sums them per bucket and per group over a bounded window, the playbook's
//! console page draws its charts as SVG with the data, the pinned one is on the dashboard,
//! `osprey playbook test` asserts on recorded points, and a bad `[[chart]]` is refused at
//! load with its line and what is wrong.

use crate::api::{set_password, sign_in};
use crate::support::{Cli, Server, http_client, text, write_playbook};
use serde_json::Value;

const CHARTS: &str = r#"
[inputs.gifts]
type = "array"

[[chart]]
name = "gifts"
title = "Points given"
series = "gifts"
kind = "line"
sum = "points"
pin = true

[[chart]]
name = "gifts-per-hour"
title = "Gifts per hour"
series = "gifts"
kind = "bar"
bucket = "hour"

[[chart]]
name = "top-receivers"
title = "Who received most"
series = "gifts"
kind = "top"
group = "to"
sum = "points"
top = 5
"#;

/// Give each gift of the input as a point.
const SCRIPT: &str = r#"for g in input.gifts { record("gifts", g); } input.gifts.len()"#;

const DAY_MS: i64 = 86_400_000;

async fn get(url: &str, auth: (&str, &str)) -> (u16, String) {
    let r = http_client()
        .get(url)
        .header(auth.0, auth.1)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_points_are_summed_by_the_api_and_drawn_on_the_console() {
    let cli = Cli::new();
    let pb = write_playbook(&cli.playbooks_dir(), "bonus", CHARTS, SCRIPT);

    // `osprey playbook test`: the points a run records are asserted on, offline.
    std::fs::create_dir_all(pb.join("tests")).unwrap();
    std::fs::write(
        pb.join("tests/gives.toml"),
        "input = { gifts = [{ to = \"ann\", points = 10 }] }\n[expect]\nstatus = \"completed\"\n\
         [[expect.record]]\nseries = \"gifts\"\npoint = { to = \"ann\", points = 10 }\n",
    )
    .unwrap();
    std::fs::write(
        pb.join("tests/wrong.toml"),
        "input = { gifts = [{ to = \"ann\", points = 10 }] }\n[expect]\nstatus = \"completed\"\n\
         [[expect.record]]\nseries = \"gifts\"\npoint = { to = \"bob\" }\n",
    )
    .unwrap();
    let out = cli.run(&["playbook", "test", pb.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ok      bonus/gives.toml"), "{stdout}");
    assert!(
        stdout.contains("FAILED  bonus/wrong.toml")
            && stdout
                .contains(r#"expected a recorded point containing {"point":{"to":"bob"},"series":"gifts"}"#)
            && stdout.contains(r#"points recorded: {"at":"#),
        "{stdout}"
    );
    std::fs::remove_file(pb.join("tests/wrong.toml")).unwrap();

    // Two runs record three points (through the real executor and store).
    for gifts in [
        r#"{"gifts": [{"to": "ann", "points": 10}, {"to": "bob", "points": 10}]}"#,
        r#"{"gifts": [{"to": "ann", "points": 5}]}"#,
    ] {
        let out = cli.ok(&["playbook", "run", "bonus", "--input", gifts]);
        assert!(out.contains("completed"), "{out}");
    }
    let token = cli
        .ok(&["token", "create", "reader", "--role", "engineer"])
        .trim()
        .to_owned();
    cli.ok(&[
        "user",
        "add",
        "erin",
        "--email",
        "erin@example.com",
        "--role",
        "engineer",
    ]);
    set_password(&cli, "erin");
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    let bearer = format!("Bearer {token}");
    let api = ("authorization", bearer.as_str());

    // The line: 30 daily buckets, today's holds the sum of both runs' points.
    let (status, body) = get(&format!("{base}/api/v1/playbooks/bonus/charts/gifts"), api).await;
    assert_eq!(status, 200, "{body}");
    let chart: Value = serde_json::from_str(&body).unwrap();
    let points = chart["points"].as_array().unwrap();
    assert_eq!(points.len(), 30, "{chart}");
    assert_eq!(points.last().unwrap()["value"], 25.0, "{chart}");
    let total: f64 = points.iter().map(|p| p["value"].as_f64().unwrap()).sum();
    assert_eq!(total, 25.0, "{chart}");
    assert_eq!(chart["kind"], "line");
    assert_eq!(chart["sum"], "points");
    let today = points.last().unwrap()["at"].as_i64().unwrap();
    assert_eq!(today % DAY_MS, 0, "buckets start at UTC midnight");
    assert_eq!(chart["until"], today + DAY_MS);

    // From today only: one bucket.
    let (status, body) = get(
        &format!("{base}/api/v1/playbooks/bonus/charts/gifts?since={today}"),
        api,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let chart: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(chart["points"], serde_json::json!([{"at": today, "value": 25.0}]));

    // Counted per hour: three points (in one or two hours, should the runs straddle one).
    let (_, body) = get(
        &format!("{base}/api/v1/playbooks/bonus/charts/gifts-per-hour"),
        api,
    )
    .await;
    let chart: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(chart["points"].as_array().unwrap().len(), 48, "{chart}");
    let counted: f64 = chart["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(counted, 3.0, "{chart}");

    // The top table: grouped by recipient, summed, largest first.
    let (_, body) = get(
        &format!("{base}/api/v1/playbooks/bonus/charts/top-receivers"),
        api,
    )
    .await;
    let chart: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        chart["rows"],
        serde_json::json!([{"key": "ann", "value": 15.0}, {"key": "bob", "value": 10.0}])
    );

    // Bounded: too far back, an unknown parameter, an unknown chart.
    let far = today - 500 * DAY_MS;
    let (status, body) = get(
        &format!("{base}/api/v1/playbooks/bonus/charts/gifts?since={far}"),
        api,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("too far back: chart 'gifts' reads at most 400 days"),
        "{body}"
    );
    let (status, body) = get(
        &format!("{base}/api/v1/playbooks/bonus/charts/gifts?limit=5"),
        api,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown query parameter 'limit'"), "{body}");
    let (status, body) = get(&format!("{base}/api/v1/playbooks/bonus/charts/nope"), api).await;
    assert_eq!(status, 404);
    assert!(
        body.contains("has no chart named 'nope' (its charts: gifts, gifts-per-hour, top-receivers)"),
        "{body}"
    );
    let (_, body) = get(&format!("{base}/api/v1/playbooks/bonus"), api).await;
    let summary: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        summary["charts"],
        serde_json::json!(["gifts", "gifts-per-hour", "top-receivers"])
    );

    // The console: the playbook's page draws all three, with the data.
    let (cookie, _) = sign_in(&base, "erin").await;
    let console = ("cookie", cookie.as_str());
    let (status, page) = get(&format!("{base}/playbooks/bonus"), console).await;
    assert_eq!(status, 200);
    for id in ["gifts", "gifts-per-hour", "top-receivers"] {
        let at = page
            .find(&format!("id=\"chart-bonus-{id}\""))
            .unwrap_or_else(|| panic!("no chart {id} in {page}"));
        let card = &page[at..];
        assert!(
            card[..card.find("</section>").unwrap()].contains("<svg"),
            "{id}: {card}"
        );
    }
    assert!(page.contains("25 sum of points in the last 30 day(s)"), "{page}");
    assert!(page.contains("3 points in the last 2 day(s)"), "{page}");
    assert!(page.contains("<th>to</th><th>sum of points</th>"), "{page}");
    assert!(page.contains("<td>ann</td><td>15</td>"), "{page}");
    assert!(page.contains("Points given"), "{page}");

    // The dashboard shows the pinned chart only.
    let (status, dashboard) = get(&format!("{base}/"), console).await;
    assert_eq!(status, 200);
    let at = dashboard
        .find("id=\"chart-bonus-gifts\"")
        .expect("the pinned chart");
    assert!(dashboard[at..].contains("<svg"), "{dashboard}");
    assert!(dashboard[at..].contains("25 sum of points"), "{dashboard}");
    assert!(!dashboard.contains("chart-bonus-top-receivers"), "{dashboard}");
    assert!(
        dashboard.contains("id=\"chart-open-incidents\""),
        "the dashboard's own charts stay"
    );
}

#[test]
fn a_bad_chart_declaration_is_refused_at_load_with_its_line() {
    let cli = Cli::new();
    let dir = cli.playbooks_dir();
    write_playbook(
        &dir,
        "bad-chart",
        "\n[[chart]]\nname = \"top\"\ntitle = \"Top\"\nseries = \"gifts\"\nkind = \"top\"\n",
        r#"record("gifts", #{ to: "ann" })"#,
    );
    let out = cli.run(&["playbook", "validate", dir.join("bad-chart").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "bad-chart/playbook.toml:4: chart 'top': a top chart needs `group`, the field its rows are grouped by"
        ),
        "{stderr}"
    );
    // The server does not load it either, and says why.
    let listed = cli.run(&["playbook", "list"]);
    assert!(
        text(&listed.stderr).contains("chart 'top': a top chart needs `group`"),
        "{}",
        text(&listed.stderr)
    );
    let out = cli.run(&["playbook", "run", "bad-chart"]);
    assert_ne!(out.status.code(), Some(0));
}
