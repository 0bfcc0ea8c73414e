//! The state of one call (one wasmtime `Store`) and the host side of the imports a plugin
//! may use: `secrets`, `kv`, `log`, `config`, plus WASI with nothing granted (`wasi:sockets`
//! linked and denied whole) and the guarded `wasi:http`.

use super::ErrorKind;
use super::outbound::OutboundGate;
use super::wit::{ErrorRecord, LogLevel};
use crate::capability::Capabilities;
use crate::store::{KvError, Store};
use crate::vault::Vault;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::ResourceLimiter;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Secret values shorter than this are not searched for in messages and output.
const MIN_SCRUB_LEN: usize = 6;
/// Keys longer than this are refused.
const MAX_KV_KEY: usize = 512;
/// Log records per call, and bytes per message.
const MAX_LOG_RECORDS: u32 = 256;
const MAX_LOG_MESSAGE: usize = 4096;

/// Everything one call's store holds.
pub(crate) struct CallState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub gate: OutboundGate,
    pub limiter: CallLimiter,
    pub env: HostEnv,
}

/// What the osprey imports need to answer.
pub(crate) struct HostEnv {
    pub plugin: Arc<str>,
    pub run_id: String,
    /// `None` while describing a plugin at load time: no import may be used then.
    pub store: Option<Store>,
    pub vault: Arc<Vault>,
    pub grant: Arc<Capabilities>,
    pub config: Arc<BTreeMap<String, String>>,
    /// The plugin's secrets, sealed, from its policy.
    pub secrets: Arc<BTreeMap<String, crate::vault::Sealed>>,
    pub kv_quota: u64,
    pub logs_written: u32,
    pub logs_dropped: u32,
    /// Secret values handed out during this call, to scrub from messages and logs.
    pub handed_out: Vec<SecretString>,
    /// Secrets refused during this call (not granted), for the metrics.
    pub secrets_denied: u32,
}

impl HostEnv {
    /// `text` with every secret handed out during this call replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in self.scrubbable() {
            out = out.replace(v, "[redacted]");
        }
        out
    }

    /// Whether `text` contains a secret handed out during this call.
    pub fn contains_secret(&self, text: &str) -> bool {
        self.scrubbable().any(|v| text.contains(v))
    }

    /// The handed-out values long enough to look for: a value of a few characters would
    /// match ordinary text everywhere.
    fn scrubbable(&self) -> impl Iterator<Item = &str> {
        self.handed_out
            .iter()
            .map(|s| s.expose_secret())
            .filter(|v| v.len() >= MIN_SCRUB_LEN)
    }

    fn store(&self) -> Result<&Store, ErrorRecord> {
        self.store.as_ref().ok_or_else(|| {
            wit_error(
                ErrorKind::Internal,
                "imports cannot be used from `describe`".into(),
                false,
            )
        })
    }
}

fn wit_error(kind: ErrorKind, message: String, retryable: bool) -> ErrorRecord {
    ErrorRecord::new(kind, message, retryable)
}

fn storage_error(e: impl std::fmt::Display) -> ErrorRecord {
    tracing::error!(error = %e, "plugin storage request failed");
    wit_error(
        ErrorKind::Unavailable,
        "Osprey's database is unavailable; try again".into(),
        true,
    )
}

/// Memory and table limits of one call. Going over the memory cap traps at once (with a
/// recognisable error) instead of handing the guest a failed allocation to abort on.
pub(crate) struct CallLimiter {
    pub memory_limit: usize,
    pub memory_exceeded: bool,
}

/// The trap raised when a call asks for more memory than its limit.
#[derive(Debug)]
pub(crate) struct MemoryLimitExceeded;

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryLimitExceeded {}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::new(MemoryLimitExceeded));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

/// Link what a plugin may import, and nothing else: a component importing anything more
/// fails to load with a clear error. `wasi:sockets` is linked, but every call of it fails.
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::{cli, filesystem, random};
    use wasmtime_wasi::{cli::WasiCli, filesystem::WasiFilesystem, random::WasiRandom};

    // wasi:io, wasi:clocks, wasi:random/random, wasi:cli/std{in,out,err}.
    wasmtime_wasi::p2::add_to_linker_proxy_interfaces_async(linker)?;
    // What Rust's std imports besides: an empty environment, exit, terminals, and a
    // filesystem with no preopened directories (every path fails).
    let l = &mut *linker;
    cli::environment::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    cli::exit::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    cli::terminal_input::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    cli::terminal_output::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    cli::terminal_stdin::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    cli::terminal_stdout::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    cli::terminal_stderr::add_to_linker::<CallState, WasiCli>(l, CallState::cli_view)?;
    filesystem::types::add_to_linker::<CallState, WasiFilesystem>(l, CallState::fs_view)?;
    filesystem::preopens::add_to_linker::<CallState, WasiFilesystem>(l, CallState::fs_view)?;
    random::insecure::add_to_linker::<CallState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<CallState, WasiRandom>(l, |s| s.wasi.random())?;
    // wasi:sockets, which wasi-libc (and so CPython) imports: linked, and denied whole.
    super::sockets::link(linker)?;
    // wasi:http, through the guarded send hook.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    super::outbound::link_refusals_before_send(linker)?;
    // Osprey's own imports, of every version of the contract.
    super::wit::link(linker)
}

impl CallState {
    fn cli_view(&mut self) -> wasmtime_wasi::cli::WasiCliCtxView<'_> {
        use wasmtime_wasi::cli::WasiCliView;
        self.cli()
    }

    fn fs_view(&mut self) -> wasmtime_wasi::filesystem::WasiFilesystemCtxView<'_> {
        use wasmtime_wasi::filesystem::WasiFilesystemView;
        self.filesystem()
    }
}

/// The osprey imports, implemented once: each version's adapter (`wit/`) delegates here.
impl CallState {
    /// `secrets.get`.
    pub(crate) async fn secret(&mut self, name: &str) -> Result<String, ErrorRecord> {
        if !self.env.grant.has_secret(name) {
            self.env.secrets_denied += 1;
            let env = &self.env;
            tracing::warn!(plugin = %env.plugin, secret = %name, "secret refused: not granted");
            return Err(wit_error(
                ErrorKind::Denied,
                format!(
                    "secret '{name}' is not granted to plugin '{}' (grant it with `osprey plugin grant {} --secret {name}`)",
                    env.plugin, env.plugin
                ),
                false,
            ));
        }
        let env = &self.env;
        // From the policy; a secret set since it was built is read from the store.
        let sealed = match env.secrets.get(name) {
            Some(sealed) => Some(std::borrow::Cow::Borrowed(sealed)),
            None => env
                .store()?
                .secret(&env.plugin, name)
                .await
                .map_err(storage_error)?
                .map(std::borrow::Cow::Owned),
        };
        let Some(sealed) = sealed else {
            return Err(wit_error(
                ErrorKind::NotFound,
                format!(
                    "secret '{name}' of plugin '{}' has no value yet (set it with `osprey secret set {} {name}`)",
                    env.plugin, env.plugin
                ),
                false,
            ));
        };
        let value = env.vault.open_sealed(&env.plugin, name, &sealed).map_err(|e| {
            tracing::error!(plugin = %env.plugin, secret = %name, error = %e, "secret cannot be opened");
            wit_error(ErrorKind::Internal, e.to_string(), false)
        })?;
        let plain = value.expose_secret().to_owned();
        self.env.handed_out.push(value);
        Ok(plain)
    }

    /// `kv.get`.
    pub(crate) async fn kv_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, ErrorRecord> {
        check_key(key)?;
        let env = &self.env;
        env.store()?.kv_get(&env.plugin, key).await.map_err(storage_error)
    }

    /// `kv.set`.
    pub(crate) async fn kv_set(
        &mut self,
        key: &str,
        value: &[u8],
        ttl_seconds: Option<u32>,
    ) -> Result<(), ErrorRecord> {
        check_key(key)?;
        let env = &self.env;
        let expires_at = ttl_seconds.map(|s| crate::store::now_ms() + i64::from(s) * 1000);
        match env
            .store()?
            .kv_set(&env.plugin, key, value, expires_at, env.kv_quota)
            .await
        {
            Ok(()) => Ok(()),
            Err(KvError::Quota { used, needed, quota }) => Err(wit_error(
                ErrorKind::LimitExceeded,
                format!(
                    "kv quota of {quota} bytes exceeded: {used} in use, this write needs {needed}; nothing was written"
                ),
                false,
            )),
            Err(KvError::Store(e)) => Err(storage_error(e)),
        }
    }

    /// `kv.delete`.
    pub(crate) async fn kv_delete(&mut self, key: &str) -> Result<bool, ErrorRecord> {
        check_key(key)?;
        let env = &self.env;
        env.store()?
            .kv_delete(&env.plugin, key)
            .await
            .map_err(storage_error)
    }
}

fn check_key(key: &str) -> Result<(), ErrorRecord> {
    if key.is_empty() || key.len() > MAX_KV_KEY {
        return Err(wit_error(
            ErrorKind::InvalidInput,
            format!("kv keys must be 1 to {MAX_KV_KEY} bytes long"),
            false,
        ));
    }
    Ok(())
}

impl CallState {
    /// `log.write`.
    pub(crate) fn log(&mut self, level: LogLevel, message: &str, fields: Vec<(String, String)>) {
        let env = &mut self.env;
        if env.logs_written >= MAX_LOG_RECORDS {
            env.logs_dropped += 1;
            return;
        }
        env.logs_written += 1;
        let mut message = env.scrub(message);
        truncate(&mut message, MAX_LOG_MESSAGE);
        let fields: Vec<String> = fields
            .into_iter()
            .take(32)
            .map(|(k, v)| {
                let mut kv = format!("{k}={}", env.scrub(&v));
                truncate(&mut kv, 512);
                kv
            })
            .collect();
        let fields = fields.join(" ");
        let (plugin, run) = (&*env.plugin, env.run_id.as_str());
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "osprey::plugin_log", plugin, run, %fields, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "osprey::plugin_log", plugin, run, %fields, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "osprey::plugin_log", plugin, run, %fields, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "osprey::plugin_log", plugin, run, %fields, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "osprey::plugin_log", plugin, run, %fields, "{message}")
            }
        }
    }

    /// `config.get`.
    pub(crate) fn setting(&self, key: &str) -> Option<String> {
        self.env.config.get(key).cloned()
    }
}

/// Cut `s` to at most `max` bytes, on a character boundary, marking the cut.
pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("…[cut]");
    }
}
