//! Plugin runtime benchmarks (see BENCHMARKS.md for results and how to read them).
//!
//! - `action_round_trip/osprey_fresh_instance`: one trivial action (`test-echo/noop`) through
//!   `Runtime::call`: input validation, a fresh store and instance from the `InstancePre`,
//!   the call, output checks. Nothing is reused between iterations but the pre-instance.
//! - `action_round_trip/osprey_fresh_instance_python`: the same trivial action of the Python
//!   plugin `test-echo-py` (componentize-py, CPython inside: an 18 MB component).
//! - `action_round_trip/process_per_action`: the baseline, one process per action as
//!   StackStorm runs actions, here the cheapest possible one: spawn `cat`, write the JSON
//!   input, read it back.
//! - `component_load/compile_*` and `component_load/cached_*`: loading a plugin with an empty
//!   compile cache versus with the artifact on disk (both include `describe`), for the Rust
//!   `test-echo` and the Python `test-echo-py` (whose compile takes seconds: 10 samples).
//!
//! Needs the plugins built: `scripts/build-plugins.sh`. Run: `cargo bench -p osprey --bench plugin_call`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use osprey::app::App;
use osprey::config::Config;
use osprey::plugin::{CallContext, Runtime, RuntimeOptions};
use osprey::store::Store;
use osprey::vault::Vault;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

/// The server's allocator (mimalloc, metered), so the bench measures what `osprey serve` does.
#[global_allocator]
static ALLOCATOR: osprey::alloc_meter::ServerAllocator = osprey::alloc_meter::SERVER_ALLOCATOR;

fn dist(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(name);
    assert!(dir.exists(), "build the plugins first: scripts/build-plugins.sh");
    dir
}

fn install(app: &App, name: &str) {
    let dst = app.runtime.options().plugins_dir.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(dist(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

fn round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let app = rt.block_on(async {
        let app = App::open(config.clone()).await.unwrap();
        install(&app, "test-echo");
        install(&app, "test-echo-py");
        app.runtime.load_all().await;
        app
    });
    let input = serde_json::json!({});
    let ctx = CallContext {
        run_id: "bench".into(),
        idempotency_key: "bench:1".into(),
    };

    let mut group = c.benchmark_group("action_round_trip");
    group.bench_function("osprey_fresh_instance", |b| {
        b.to_async(&rt).iter(|| async {
            app.runtime
                .call("test-echo", "noop", &input, ctx.clone())
                .await
                .unwrap();
        })
    });
    group.bench_function("osprey_fresh_instance_python", |b| {
        b.to_async(&rt).iter(|| async {
            app.runtime
                .call("test-echo-py", "noop", &input, ctx.clone())
                .await
                .unwrap();
        })
    });
    group.bench_function("process_per_action", |b| {
        b.iter(|| {
            let mut child = Command::new("cat")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(b"{}").unwrap();
            let mut out = String::new();
            child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            child.wait().unwrap();
            assert_eq!(out, "{}");
        })
    });
    group.finish();
}

fn component_load(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let vault = Arc::new(Vault::from_key(&[9; 32]));
    let store = rt.block_on(Store::open(&url, vault.audit_chain_key())).unwrap();
    let runtime_with_cache = |cache: &Path| {
        Runtime::new(
            RuntimeOptions {
                plugins_dir: dir.path().join("plugins"),
                cache_dir: cache.to_owned(),
                limits: Default::default(),
                max_instances: 8,
                max_memory_mib: 64,
                metrics: Default::default(),
            },
            store.clone(),
            vault.clone(),
        )
        .unwrap()
    };
    let mut group = c.benchmark_group("component_load");
    for (label, name) in [("rust_echo", "test-echo"), ("python_echo", "test-echo-py")] {
        let plugin = dist(name);
        group.sample_size(10);
        group.bench_function(format!("compile_{label}"), |b| {
            b.iter_batched(
                || {
                    let cache = tempfile::tempdir().unwrap();
                    (runtime_with_cache(cache.path()), cache)
                },
                |(runtime, _cache)| rt.block_on(runtime.check_dir(&plugin)).unwrap(),
                BatchSize::PerIteration,
            )
        });
        let warm = tempfile::tempdir().unwrap();
        let runtime = runtime_with_cache(warm.path());
        rt.block_on(runtime.check_dir(&plugin)).unwrap();
        group.sample_size(30);
        group.bench_function(format!("cached_{label}"), |b| {
            b.iter(|| rt.block_on(runtime.check_dir(&plugin)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip, component_load);
criterion_main!(benches);
