//! Resident memory of many waiting runs (a load measurement, printed, not a criterion bench).
//!
//! Starts the executor in this process (as `osprey serve` runs it), measures VmRSS, creates
//! N runs of a playbook that sleeps for an hour, lets the workers drive them all to
//! `waiting`, and measures VmRSS again; then, as the baseline, the VmRSS that N parked threads
//! add (a thread per waiting run). A waiting run is only rows in the store: the figure
//! shows that it holds no thread, no script state and no memory in the server.
//!
//! With `WAITING_ON=question` each run instead asks a person (`ask`, due in an hour) and
//! waits for the answer: a question, its signed link and its mail (composed, in the outbox)
//! per run, as with `[mail]` on.
//!
//! Run: `cargo bench -p osprey --bench waiting_runs` (N = 10,000; set WAITING_RUNS to change;
//! `WAITING_ON=question` for open questions).

use osprey::app::App;
use osprey::config::Config;
use osprey::store::runs::RunStatus;
use std::time::Instant;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    // `cargo bench` passes --bench; nothing to filter here.
    let n: usize = std::env::var("WAITING_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("playbooks/napper");
    std::fs::create_dir_all(&pb).unwrap();
    std::fs::write(
        pb.join("playbook.toml"),
        "name = \"napper\"\ndescription = \"bench\"\n",
    )
    .unwrap();
    let questions = std::env::var("WAITING_ON").is_ok_and(|v| v == "question");
    let script = if questions {
        r#"log("asking"); let a = ask(#{ user: "owner", title: `Block ${run.id}?`, text: "A question that waits an hour.",
              options: ["block", "allow"], due: "1h", on_timeout: "block" }); a.answer"#
    } else {
        r#"log("going to sleep"); sleep("1h"); "rested""#
    };
    std::fs::write(pb.join("playbook.rhai"), script).unwrap();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        playbooks_dir: dir.path().join("playbooks"),
        ..Config::default()
    };
    // Mail on, so each question also composes and queues its mail (nothing sends it here).
    config.mail.host = Some("127.0.0.1".into());
    rt.block_on(async {
        let app = App::open(config).await.unwrap();
        app.store
            .create_user(
                "owner",
                Some("owner@example.com"),
                &[],
                &osprey::store::audit::Actor::system(),
            )
            .await
            .unwrap();
        let what = if questions { "open questions" } else { "waiting runs" };
        // Warm up: one run through every path, so the baseline includes the code and caches.
        let id = app
            .executor
            .start("napper", &Default::default(), "bench")
            .await
            .unwrap();
        while !app.executor.work_on(&id).await.unwrap() {}
        let idle = rss_kib();
        // Created first, then driven: the two phases are timed apart.
        let started = Instant::now();
        // Started 500 at a time, as concurrent triggers would.
        let no_input = Default::default();
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            futures::future::try_join_all(chunk.iter().map(|_| app.executor.start("napper", &no_input, "bench")))
                .await
                .unwrap();
        }
        let created = started.elapsed();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = app.executor.spawn_workers(stopped);
        loop {
            let counts = app.store.run_counts().await.unwrap();
            let waiting = counts.iter().find(|(s, _)| *s == RunStatus::Waiting).map_or(0, |(_, c)| *c);
            if waiting as usize > n {
                break;
            }
            assert_eq!(
                counts.iter().find(|(s, _)| *s == RunStatus::Failed).map_or(0, |(_, c)| *c),
                0,
                "runs failed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        println!(
            "waiting_runs: created {n} runs in {:.2} s ({:.0}/s), drove them to `waiting` in {:.2} s ({:.0}/s)",
            created.as_secs_f64(),
            n as f64 / created.as_secs_f64(),
            (started.elapsed() - created).as_secs_f64(),
            n as f64 / (started.elapsed() - created).as_secs_f64()
        );
        let _ = stop.send(true);
        workers.await.unwrap();
        let loaded = rss_kib();
        println!(
            "waiting_runs: VmRSS idle {} KiB, with {n} {what} {} KiB: {:+.1} MiB",
            idle,
            loaded,
            (loaded as f64 - idle as f64) / 1024.0
        );
        // Counted after measuring: loading them all would itself take memory.
        if questions {
            let open = app.store.questions(Some(osprey::store::questions::QuestionStatus::Open), None, i64::MAX).await.unwrap().len();
            let queued = app.store.outbox(i64::MAX).await.unwrap().len();
            println!("waiting_runs: {open} open questions, {queued} mails in the outbox");
            assert!(open > n && queued > n);
        }
    });
    // The baseline: what a thread per waiting run costs (each parked, doing nothing, with
    // the default 2 MiB stack reserved and only what it touched resident).
    let before = rss_kib();
    let release = std::sync::Arc::new(std::sync::Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let release = release.clone();
            std::thread::spawn(move || {
                release.wait();
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let parked = rss_kib();
    release.wait();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "waiting_runs: baseline, {n} parked threads: {:+.1} MiB",
        (parked as f64 - before as f64) / 1024.0
    );
}
