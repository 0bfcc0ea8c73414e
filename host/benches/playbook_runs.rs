//! Playbook run benchmarks (results in BENCHMARKS.md).
//!
//! - `runs/durable_one_call`: a playbook with one plugin call, end to end through the store:
//!   create the run, claim it, replay it (one `invoke` of `test-echo/noop`, journaled), file
//!   the outcome. Batches of 200 runs; throughput in runs per second.
//! - `runs/direct_call`: the same plugin call made directly, with no run around it: the
//!   baseline that shows what durability costs.
//! - `resume/journal_100_steps`: waking a run with 100 journaled steps, as a worker does once
//!   its claim has given it the run: load the journal from the store and replay it to where
//!   it waits again (on the runtime's blocking pool).
//! - `resume/journal_1_step`: the same with one journaled step (baseline).
//!
//! Needs the plugins built: `scripts/build-plugins.sh`. Run:
//! `cargo bench -p osprey --bench playbook_runs`. On SQLite by default; with
//! `OSPREY_BENCH_DATABASE_URL=postgres://...`, on a fresh database on that PostgreSQL server
//! (one node, in this process; `common/mod.rs`). The runtime's threads have the replay's
//! stack, as in `osprey serve`; `OSPREY_BENCH_SMALL_STACKS=1` gives them tokio's default
//! instead (each replay then maps its own stack: the server before that change).

mod common;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use osprey::app::App;
use osprey::config::Config;
use osprey::playbook::testing;
use osprey::plugin::CallContext;
use osprey::store::runs::RunStatus;
use std::path::Path;
use std::time::{Duration, Instant};

/// The server's allocator (mimalloc, metered), so the bench measures what `osprey serve` does.
#[global_allocator]
static ALLOCATOR: osprey::alloc_meter::ServerAllocator = osprey::alloc_meter::SERVER_ALLOCATOR;

fn setup(rt: &tokio::runtime::Runtime, dir: &Path) -> App {
    let plugins = dir.join("plugins/test-echo");
    std::fs::create_dir_all(&plugins).unwrap();
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist/test-echo");
    assert!(dist.exists(), "build the plugins first: scripts/build-plugins.sh");
    for e in std::fs::read_dir(dist).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), plugins.join(e.file_name())).unwrap();
    }
    for (name, script) in [
        ("one-call", r#"invoke("test-echo", "noop", #{})"#),
        (
            "long",
            r#"for i in 0..input.steps { invoke("test-echo", "noop", #{}); } sleep("1h"); 1"#,
        ),
    ] {
        let pb = dir.join("playbooks").join(name);
        std::fs::create_dir_all(&pb).unwrap();
        let inputs = if name == "long" {
            "[inputs.steps]\ntype = \"integer\"\n"
        } else {
            ""
        };
        std::fs::write(
            pb.join("playbook.toml"),
            format!("name = \"{name}\"\ndescription = \"bench\"\nplugins = [\"test-echo\"]\n{inputs}"),
        )
        .unwrap();
        std::fs::write(pb.join("playbook.rhai"), script).unwrap();
    }
    let mut config = Config {
        data_dir: dir.to_owned(),
        playbooks_dir: dir.join("playbooks"),
        ..Config::default()
    };
    eprintln!("playbook_runs: on {}", common::use_bench_database(&mut config));
    rt.block_on(App::open(config)).unwrap()
}

fn runs(c: &mut Criterion) {
    // As `osprey serve` builds its runtime: the replays run on their threads' own stacks.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if std::env::var_os("OSPREY_BENCH_SMALL_STACKS").is_none() {
        builder.thread_stack_size(osprey::playbook::engine::REPLAY_THREAD_STACK_BYTES);
    }
    let rt = builder.build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = setup(&rt, dir.path());
    let empty = serde_json::Map::new();
    const BATCH: u64 = 200;

    let mut group = c.benchmark_group("runs");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    // The workers run as in `osprey serve`; each iteration starts a batch and waits for it.
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let _workers = {
        let _in_runtime = rt.enter();
        app.executor.spawn_workers(stopped)
    };
    let pending = |app: &App| rt.block_on(app.store.pending_runs()).unwrap();
    let completed = |app: &App| {
        rt.block_on(app.store.run_counts())
            .unwrap()
            .iter()
            .find(|(s, _)| *s == RunStatus::Completed)
            .map_or(0, |(_, n)| *n)
    };
    let mut started_runs = 0;
    group.bench_function("durable_one_call", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                // Started concurrently, as triggers arrive (alerts, API calls, schedules).
                rt.block_on(futures::future::try_join_all(
                    (0..BATCH).map(|_| app.executor.start("one-call", &empty, "bench")),
                ))
                .unwrap();
                started_runs += BATCH as i64;
                while pending(&app) > 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            started.elapsed()
        })
    });
    assert_eq!(completed(&app), started_runs, "every run completed");
    let input = serde_json::json!({});
    group.bench_function("direct_call", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let started = Instant::now();
                for i in 0..iters * BATCH {
                    let ctx = CallContext {
                        run_id: format!("b{i}"),
                        idempotency_key: format!("b{i}:1"),
                    };
                    app.runtime.call("test-echo", "noop", &input, ctx).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    group.finish();

    // A run per size, driven until it waits: its journal holds `steps` invokes and a sleep.
    // The server's workers run in this process too and may take the run first: then it is
    // theirs to drive, and waiting for `work_on` alone would spin for ever (it did).
    let waiting_run = |steps: i64| {
        let input = serde_json::json!({ "steps": steps }).as_object().unwrap().clone();
        rt.block_on(async {
            let id = app.executor.start("long", &input, "bench").await.unwrap();
            loop {
                app.executor.work_on(&id).await.unwrap();
                if app.store.run(&id).await.unwrap().unwrap().status == RunStatus::Waiting {
                    break id;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let pb = std::sync::Arc::new((*app.playbooks.get("long").unwrap()).clone());
    let mut group = c.benchmark_group("resume");
    for steps in [100, 1] {
        let id = waiting_run(steps);
        // The claim gives a worker the run; what it reads to resume it is the journal.
        let (run, _) = rt
            .block_on(osprey::runs::load_recorded(&app.store, &id))
            .unwrap()
            .unwrap();
        let run = std::sync::Arc::new(run);
        group.bench_function(
            format!("journal_{steps}_step{}", if steps == 1 { "" } else { "s" }),
            |b| {
                b.iter_batched(
                    || (),
                    |()| {
                        rt.block_on(async {
                            let journal = osprey::runs::load_journal(&app.store, &id).await.unwrap();
                            assert_eq!(journal.len() as i64, steps + 1);
                            // On the runtime's blocking pool, as a worker replays.
                            let (pb, run) = (pb.clone(), run.clone());
                            let outcome = tokio::task::spawn_blocking(move || {
                                testing::replay_recorded(&pb, &run, journal, Default::default())
                            })
                            .await
                            .unwrap();
                            assert!(
                                matches!(outcome, osprey::playbook::Outcome::Waiting { .. }),
                                "{outcome:?}"
                            );
                        })
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, runs);
criterion_main!(benches);
