//! The console dashboard's counts over many alerts (a load measurement that prints, not a
//! criterion bench).
//!
//! Fills a SQLite store (as `osprey serve` opens it) with N alerts from 8 sources spread over
//! the dashboard's 30-day view (through the group-commit writer, which keeps the per-day
//! counts as it commits, in batches of 10,000) and 1,000 runs of 10 playbooks, then times
//! `Store::dashboard` for the 30-day view (the six grouped counts behind `GET /?days=30`)
//! against a baseline measured in the same run on the same store: `Store::alerts(None, 50)`,
//! the newest 50 alerts (an index read, what a list page costs).
//!
//! Run: `cargo bench -p osprey --bench dashboard` (N = 10,000,000: about 3 minutes of fill
//! and 4 GB in the temporary folder; set DASHBOARD_ALERTS to change).

use osprey::app::App;
use osprey::config::Config;
use osprey::intake::{Alert, Observables, Severity};
use osprey::store::alerts::StoredAlert;
use osprey::store::now_ms;
use osprey::store::runs::NewRun;
use osprey::store::stats::DAY_MS;
use std::time::{Duration, Instant};

/// The server's allocator (mimalloc, metered), so the bench measures what `osprey serve` does.
#[global_allocator]
static ALLOCATOR: osprey::alloc_meter::ServerAllocator = osprey::alloc_meter::SERVER_ALLOCATOR;

const ITERATIONS: usize = 15;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let n: usize = std::env::var("DASHBOARD_ALERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        playbooks_dir: dir.path().join("playbooks"),
        ..Config::default()
    };
    rt.block_on(async {
        let app = App::open(config).await.unwrap();
        let now = now_ms();
        // The 30-day view: today and the 29 days before it, as the console asks for it.
        let since = now / DAY_MS - 29;
        let span = now - since * DAY_MS;
        let filled = Instant::now();
        for batch in 0..n.div_ceil(10_000) {
            let alerts: Vec<StoredAlert> = (batch * 10_000..((batch + 1) * 10_000).min(n))
                .map(|i| {
                    let received_at = since * DAY_MS + (i as i64 * span / n as i64);
                    let alert = Alert {
                        source: format!("source-{}", i % 8),
                        title: format!("alert {i}"),
                        severity: Severity::Low,
                        occurred_at: None,
                        data: serde_json::json!({}),
                        observables: Observables::default(),
                        raw: None,
                    };
                    StoredAlert::new(
                        format!("a{received_at:011x}{i:016x}"),
                        received_at,
                        "token:bench",
                        alert,
                    )
                })
                .collect();
            app.store.insert_alerts(alerts).await.unwrap();
        }
        let took = filled.elapsed();
        println!(
            "filled {n} alerts in {took:.1?} ({:.0} alerts/s)",
            n as f64 / took.as_secs_f64()
        );
        let runs = (0..1_000).map(|i| {
            let store = &app.store;
            async move {
                let run = NewRun {
                    id: format!("r{i:08}"),
                    playbook: format!("playbook-{}", i % 10),
                    script_hash: "h".into(),
                    input: serde_json::json!({}),
                    origin: "bench".into(),
                    context: serde_json::Value::Null,
                    lease: None,
                };
                store.create_run(&run).await
            }
        });
        for created in futures::future::join_all(runs).await {
            created.unwrap();
        }
        let mut dashboard = Vec::new();
        let mut baseline = Vec::new();
        for i in 0..ITERATIONS + 2 {
            let t = Instant::now();
            let d = app.store.dashboard(since).await.unwrap();
            let took = t.elapsed();
            assert_eq!(
                d.alerts_by_source_day.iter().map(|(_, _, c)| c).sum::<i64>(),
                n as i64,
                "every alert counted"
            );
            assert_eq!(
                d.runs_by_status.iter().map(|(_, c)| c).sum::<i64>(),
                1_000,
                "every run counted"
            );
            let t = Instant::now();
            let newest = app.store.alerts(None, 50).await.unwrap();
            let base = t.elapsed();
            assert_eq!(newest.len(), 50.min(n));
            // The first two warm the page cache.
            if i >= 2 {
                dashboard.push(took);
                baseline.push(base);
            }
        }
        let (d, b) = (median(dashboard), median(baseline));
        println!(
            "dashboard's 30-day view over {n} alerts: median {d:.2?}; newest-50 baseline {b:.2?}; ratio {:.1}x (budget: 50 ms)",
            d.as_secs_f64() / b.as_secs_f64()
        );
    });
}
