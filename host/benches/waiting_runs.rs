//! Resident memory of many waiting runs, and the time to claim due jobs among them (a load
//! measurement, printed, not a criterion bench).
//!
//! Starts the executor in this process (as `osprey serve` runs it), measures its memory,
//! creates N runs of a playbook that sleeps for an hour, lets the workers drive them all to
//! `waiting`, and measures the memory again once it has settled; then, as the baseline, the
//! VmRSS that N parked threads add (a thread per waiting run; at most 10,000 spawned, scaled to
//! N). A waiting run is only rows in the store: the figure shows that it holds no thread, no
//! script state and no memory in the server. Memory is printed as VmRSS and its two parts,
//! RssAnon (what the process holds, SQLite's page caches among it: bounded, 128 MiB for the
//! writer and 16 MiB per reader, filled as pages are read) and RssFile (file-backed pages: on SQLite mostly the
//! database file, mapped with mmap_size = 1 GiB, so a large database's pages count in VmRSS
//! although they are the OS page cache). On PostgreSQL the database's memory is the server's
//! processes', not this one's.
//!
//! Then, with the N runs waiting and the workers stopped, the queue's two claims:
//! - nothing due: `claim_jobs` 1,000 times (what an idle worker does every 100 ms), median
//!   and p99;
//! - 100 due: 100 runs of a second playbook that sleeps 1 s are started and driven to
//!   `waiting`; once all 100 are due, the one `claim_jobs` that takes them is timed (it must
//!   take exactly those 100), and they are set aside (cancelled). Five rounds.
//!
//! With `WAITING_ON=question` each run instead asks a person (`ask`, due in an hour) and
//! waits for the answer: a question, its signed link and its mail (composed, in the outbox)
//! per run, as with `[mail]` on.
//!
//! Run: `cargo bench -p osprey --bench waiting_runs` (N = 10,000; set WAITING_RUNS to change;
//! `WAITING_ON=question` for open questions; `WAITING_WORKERS` for more run workers than the
//! server's default while the runs are driven to `waiting`; `OSPREY_BENCH_DATABASE_URL` for
//! PostgreSQL, see `common/mod.rs`).

mod common;

use osprey::app::App;
use osprey::config::Config;
use osprey::store::now_ms;
use osprey::store::runs::RunStatus;
use std::time::{Duration, Instant};

/// The server's allocator (mimalloc, metered), so the bench measures what `osprey serve` does.
#[global_allocator]
static ALLOCATOR: osprey::alloc_meter::ServerAllocator = osprey::alloc_meter::SERVER_ALLOCATOR;

/// The process's resident memory, in KiB (`/proc/self/status`).
struct Memory {
    /// VmRSS: all of it.
    rss: u64,
    /// RssAnon: anonymous pages, what the process holds itself.
    anon: u64,
    /// RssFile: file-backed pages (mapped files, the database's among them on SQLite).
    file: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    Memory {
        rss: field("VmRSS:"),
        anon: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

fn mib(kib: i64) -> f64 {
    kib as f64 / 1024.0
}

/// The `q` quantile (0..=1) of sorted durations, in µs.
fn quantile_us(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// Calls of `claim_jobs` with nothing due.
const IDLE_CLAIMS: usize = 1_000;
/// Runs made due at once, and rounds of that.
const DUE: usize = 100;
const DUE_ROUNDS: usize = 5;
/// The most jobs a timed claim may take: more than are due, so a claim taking exactly `DUE`
/// shows that no other run was due.
const CLAIM_LIMIT: i64 = 2 * DUE as i64;
/// The most threads the baseline parks (more are scaled from these).
const BASELINE_THREADS: usize = 10_000;

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
    // The runs made due for the claim of several due jobs.
    let dozer = dir.path().join("playbooks/dozer");
    std::fs::create_dir_all(&dozer).unwrap();
    std::fs::write(
        dozer.join("playbook.toml"),
        "name = \"dozer\"\ndescription = \"bench\"\n",
    )
    .unwrap();
    std::fs::write(dozer.join("playbook.rhai"), r#"sleep("1s"); "rested""#).unwrap();
    let mut config = Config {
        data_dir: dir.path().to_owned(),
        playbooks_dir: dir.path().join("playbooks"),
        ..Config::default()
    };
    // Mail on, so each question also composes and queues its mail (nothing sends it here).
    config.mail.host = Some("127.0.0.1".into());
    if let Some(workers) = std::env::var("WAITING_WORKERS").ok().and_then(|v| v.parse().ok()) {
        config.runs.workers = workers;
    }
    let workers = config.runs.workers;
    let database = common::use_bench_database(&mut config);
    println!("waiting_runs: {n} runs on {database}, {workers} run workers");
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
        let idle = memory();
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
        // Counting the runs reads them all: look less often the more there are (every 2 s
        // with 1,000,000), so the looking does not slow what it watches.
        let look_every = Duration::from_millis((n as u64 / 500).max(20));
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
            tokio::time::sleep(look_every).await;
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
        // Once settled: the allocator gives back what the drive freed a while after it.
        let loaded = settled();
        println!(
            "waiting_runs: VmRSS idle {} KiB (RssAnon {}, RssFile {}), with {n} {what} {} KiB (RssAnon {}, RssFile {}): \
             VmRSS {:+.1} MiB, RssAnon {:+.1} MiB, RssFile {:+.1} MiB",
            idle.rss,
            idle.anon,
            idle.file,
            loaded.rss,
            loaded.anon,
            loaded.file,
            mib(loaded.rss as i64 - idle.rss as i64),
            mib(loaded.anon as i64 - idle.anon as i64),
            mib(loaded.file as i64 - idle.file as i64)
        );
        // Counted after measuring: loading them all would itself take memory.
        if questions {
            let open = app.store.questions(Some(osprey::store::questions::QuestionStatus::Open), None, i64::MAX).await.unwrap().len();
            let queued = app.store.outbox(i64::MAX).await.unwrap().len();
            println!("waiting_runs: {open} open questions, {queued} mails in the outbox");
            assert!(open > n && queued > n);
        }

        // The claim an idle worker makes, with nothing due among the N waiting.
        let claimer = "bench-claimer";
        let lease_until = || now_ms() + 3_600_000;
        let mut idle_claims = Vec::with_capacity(IDLE_CLAIMS);
        for _ in 0..IDLE_CLAIMS {
            let t = Instant::now();
            let claimed = app.store.claim_jobs(claimer, lease_until(), CLAIM_LIMIT).await.unwrap();
            idle_claims.push(t.elapsed());
            assert!(claimed.is_empty(), "a run was due: {:?}", claimed[0].run);
        }
        idle_claims.sort();
        println!(
            "waiting_runs: claim_jobs with nothing due among {n} {what}: median {:.0} µs, p99 {:.0} µs ({IDLE_CLAIMS} calls)",
            quantile_us(&idle_claims, 0.5),
            quantile_us(&idle_claims, 0.99)
        );

        // The claim that takes DUE due runs among the N waiting.
        let mut due_claims = Vec::with_capacity(DUE_ROUNDS);
        for _ in 0..DUE_ROUNDS {
            futures::future::try_join_all((0..DUE).map(|_| app.executor.start("dozer", &no_input, "bench")))
                .await
                .unwrap();
            // Nothing else is due, so this drives exactly these to their 1 s sleep.
            assert_eq!(app.executor.work_once(CLAIM_LIMIT as usize).await.unwrap(), DUE);
            let deadline = Instant::now() + Duration::from_secs(30);
            while app.store.queue_depth().await.unwrap() < DUE as i64 {
                assert!(Instant::now() < deadline, "the {DUE} sleeping runs did not come due within 30 s");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let t = Instant::now();
            let claimed = app.store.claim_jobs(claimer, lease_until(), CLAIM_LIMIT).await.unwrap();
            due_claims.push(t.elapsed());
            assert_eq!(claimed.len(), DUE, "the claim took what was due, and only that");
            for job in claimed {
                assert_eq!(job.run.playbook, "dozer");
                app.store
                    .finish_run(&job.run_id, RunStatus::Cancelled, None, Some("claimed by the bench"))
                    .await
                    .unwrap();
            }
        }
        let rounds: Vec<String> = due_claims.iter().map(|d| format!("{:.0}", d.as_secs_f64() * 1e6)).collect();
        due_claims.sort();
        println!(
            "waiting_runs: claim_jobs taking {DUE} due among {n} {what}: median {:.0} µs ({DUE_ROUNDS} rounds: {} µs)",
            quantile_us(&due_claims, 0.5),
            rounds.join(", ")
        );
    });
    parked_threads_baseline(n);
}

/// The baseline: what a thread per waiting run costs (each parked, doing nothing, with the
/// default 2 MiB stack reserved and only what it touched resident). At most
/// BASELINE_THREADS of them, scaled to N: a million threads is more than Linux allows by
/// default (kernel.pid_max is 32,768 on many machines, this one included). Measured once the
/// resident size has settled: the allocator gives back what the runs freed a while after,
/// and while the threads parked it did, so the difference once read below zero.
fn parked_threads_baseline(n: usize) {
    let spawned = n.min(BASELINE_THREADS);
    let before = settled().rss;
    let release = std::sync::Arc::new(std::sync::Barrier::new(spawned + 1));
    let threads: Vec<_> = (0..spawned)
        .map(|_| {
            let release = release.clone();
            std::thread::spawn(move || {
                release.wait();
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let parked = memory().rss;
    release.wait();
    for t in threads {
        t.join().unwrap();
    }
    let added = mib(parked as i64 - before as i64);
    if spawned == n {
        println!("waiting_runs: baseline, {n} parked threads: {added:+.1} MiB");
    } else {
        println!(
            "waiting_runs: baseline, {spawned} parked threads: {added:+.1} MiB, so {n} would take {:+.1} MiB",
            added * n as f64 / spawned as f64
        );
    }
}

/// The memory once two readings 200 ms apart differ by less than 1 MiB of VmRSS (at most 20 s).
fn settled() -> Memory {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = memory();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = memory();
        if now.rss.abs_diff(last.rss) < 1024 || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}
