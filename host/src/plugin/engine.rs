//! The one wasmtime `Engine` of the process, its epoch ticker, and the on-disk cache of
//! compiled components.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Bytes of each pool slot's linear memory kept resident between calls.
const KEEP_RESIDENT: usize = 1024 * 1024;

/// How often the epoch advances. Deadlines are checked at this granularity.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// An engine with the pooling allocator sized for `max_instances` concurrent calls of up to
/// `max_memory_mib` each, epoch interruption on, and an epoch ticker on its own OS thread
/// (not on the async executor, so a guest that never yields cannot stall the timer that
/// stops it). The ticker ends when the engine is dropped.
pub(crate) fn new_engine(max_instances: u32, max_memory_mib: u32) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(max_instances)
        .total_core_instances(max_instances.saturating_mul(16))
        .total_memories(max_instances.saturating_mul(2))
        .total_tables(max_instances.saturating_mul(16))
        .total_stacks(max_instances)
        .max_core_instances_per_component(32)
        .max_memories_per_component(4)
        .max_tables_per_component(32)
        .max_memory_size(max_memory_mib as usize * 1024 * 1024)
        // Keep what a call dirtied resident and reset it in place, instead of giving the
        // pages back to the kernel and faulting them in again on the next call. With
        // PAGEMAP_SCAN (Linux 6.7+) only the dirty pages are reset; elsewhere the first
        // bytes are. This is most of the cost of a fresh instance (see BENCHMARKS.md).
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 * 1024)
        .async_stack_keep_resident(64 * 1024);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(1024 * 1024)
        .async_stack_size(2 * 1024 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;

    let weak = engine.weak();
    std::thread::Builder::new()
        .name("osprey-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .expect("spawning the epoch ticker thread");
    Ok(engine)
}

/// Whether a component came from the cache or was compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

/// The SHA-256 of a component's bytes, in hex.
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Load a component: from `cache_dir` if a compiled artifact for these exact bytes and this
/// engine's settings is there, else compile it and store the artifact (atomically, so a
/// crash leaves no half-written file behind).
pub(crate) fn load_component(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: &Path,
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let path = artifact_path(engine, bytes, cache_dir);
    if path.exists() {
        // SAFETY: the artifact was written by `Component::serialize` of an engine with the
        // same compatibility hash (it is in the file name), into the operator's own data
        // directory. A file that fails to load is discarded and recompiled below.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok((c, CacheOutcome::Hit)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding an unusable compiled plugin");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    if let Err(e) = store_artifact(&component, &path) {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled plugin; it will be compiled again next start");
    }
    Ok((component, CacheOutcome::Compiled))
}

fn artifact_path(engine: &Engine, bytes: &[u8], cache_dir: &Path) -> PathBuf {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let compat = h.finish();
    cache_dir.join(format!("{}-{compat:016x}.cwasm", content_hash(bytes)))
}

fn store_artifact(component: &Component, path: &Path) -> std::io::Result<()> {
    let dir = path.parent().expect("artifact paths have a folder");
    std::fs::create_dir_all(dir)?;
    let data = component
        .serialize()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
