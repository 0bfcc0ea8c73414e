//! The plugin runtime. Only this module touches wasmtime.
//!
//! One [`Runtime`] per process holds the engine, the linker, and the installed plugins,
//! each compiled once (and cached on disk) and pre-instantiated. Every action call gets a
//! fresh instance from that `InstancePre`, its own limits, and its own outbound gate; when
//! it ends, everything it held is dropped. See `call.rs` for one call from start to end.

mod call;
mod engine;
mod fake_data;
mod host;
pub mod manifest;
pub mod mock;
mod outbound;
mod sockets;
mod stdio;
mod webhook;
mod wit;

pub use engine::CacheOutcome;
pub use manifest::{ConfigKey, Manifest, ManifestError};
pub use mock::{MockError, MockMode};
pub use outbound::HttpOutcome;
pub use webhook::{WebhookCall, WebhookError};
pub use wit::{Answer, WebhookEvent, WebhookRequest, WebhookResponse, WitVersion};

use crate::capability::{Capabilities, Limits};
use crate::store::{Store, StoreError};
use crate::vault::Vault;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use thiserror::Error;
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Settings of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where installed plugins live, one folder each.
    pub plugins_dir: PathBuf,
    /// Where compiled components are cached.
    pub cache_dir: PathBuf,
    /// Default limits of every call.
    pub limits: Limits,
    /// Concurrent calls (pool slots).
    pub max_instances: u32,
    /// Most memory any grant may give one call, in MiB.
    pub max_memory_mib: u32,
    /// Where calls and denials are counted (the process's metrics, shared with the server).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Why a plugin could not be loaded, installed or configured.
#[derive(Debug, Error)]
pub enum PluginError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("plugin '{name}': {message}")]
    Invalid { name: String, message: String },
    #[error("no plugin named '{name}' is installed{}", installed_hint(.installed))]
    NotInstalled { name: String, installed: Vec<String> },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the plugin runtime could not start: {0}")]
    Engine(String),
}

fn installed_hint(installed: &[String]) -> String {
    if installed.is_empty() {
        " (none are; install one with `osprey plugin install DIR`)".into()
    } else {
        format!(" (installed: {})", installed.join(", "))
    }
}

/// What a plugin says it offers (from its `describe` export).
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub description: String,
    pub actions: Vec<ActionInfo>,
}

/// One action, with its schemas parsed.
#[derive(Debug, Clone, Serialize)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
    pub output_schema: serde_json::Value,
}

/// The operator's side of a plugin as the runtime enforces it right now.
#[derive(Debug)]
pub struct Policy {
    /// What was granted (empty if nothing was).
    pub grant: Arc<Capabilities>,
    /// Whether a grant exists at all.
    pub granted: bool,
    /// Limits after the grant's overrides.
    pub limits: Limits,
    /// Effective settings: the operator's values over the manifest's defaults.
    pub config: Arc<BTreeMap<String, String>>,
    /// The mock answering its calls instead of the plugin, if it is in mock mode.
    pub mock: Option<Arc<MockMode>>,
    /// Its secrets, sealed, as stored when the policy was built: a call opens the one it
    /// asks for instead of reading the store. A secret set or deleted elsewhere bumps the
    /// policy version, so a server takes the change within `runtime.policy_refresh`; one
    /// not here yet is read from the store.
    secrets: Arc<BTreeMap<String, crate::vault::Sealed>>,
    client: reqwest::Client,
}

/// An installed, loaded plugin.
pub struct LoadedPlugin {
    pub manifest: Manifest,
    pub description: Description,
    pub dir: PathBuf,
    /// SHA-256 of the component.
    pub component_hash: String,
    /// Whether the compiled component came from the cache.
    pub cache: CacheOutcome,
    /// The interfaces the component imports.
    pub imports: Vec<String>,
    pre: wit::Pre,
    validators: BTreeMap<String, (jsonschema::Validator, jsonschema::Validator)>,
    policy: RwLock<Arc<Policy>>,
    files: FileStamp,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.manifest.name)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }

    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The version of the WIT contract the component was built against.
    pub fn contract(&self) -> WitVersion {
        self.pre.version()
    }

    /// Check a call's input as [`Runtime::call`] does before the plugin runs: an unknown
    /// action, or an input its schema rejects, is invalid input (with the same message).
    pub fn check_input(&self, action: &str, input: &serde_json::Value) -> Result<(), CallError> {
        call::check_input(self, action, input).map(|_| ())
    }
}

/// One outbound request made during a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpEvent {
    pub method: String,
    /// Without its query string.
    pub url: String,
    #[serde(flatten)]
    pub outcome: HttpOutcome,
    pub millis: u64,
}

impl HttpEvent {
    pub(crate) fn new(method: &str, url: &str, outcome: HttpOutcome) -> Self {
        HttpEvent {
            method: method.to_owned(),
            url: url.to_owned(),
            outcome,
            millis: 0,
        }
    }
}

/// The error kinds of the WIT contract, as the host reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    Denied,
    Unavailable,
    RateLimited,
    Upstream,
    Timeout,
    LimitExceeded,
    Internal,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).expect("error kinds serialise");
        f.write_str(s.as_str().expect("error kinds serialise to strings"))
    }
}

/// Where a call comes from.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub run_id: String,
    pub idempotency_key: String,
}

/// A successful call.
#[derive(Debug, Clone, Serialize)]
pub struct CallOutcome {
    pub output: serde_json::Value,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    pub http: Vec<HttpEvent>,
    /// Answered by the plugin's mock (mock mode): no instance ran and nothing was sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mocked: bool,
}

/// A failed call: a typed error, never a crash of the host.
#[derive(Debug, Clone, Serialize, Error)]
#[error("{kind}: {message}")]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
    /// How long the plugin said to wait before calling again (WIT 0.2.0's `retry-after`);
    /// only on a retryable error.
    #[serde(
        rename = "retry_after_ms",
        serialize_with = "opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<Duration>,
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
    pub http: Vec<HttpEvent>,
    /// Answered by the plugin's mock (mock mode): no instance ran and nothing was sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mocked: bool,
}

fn opt_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl CallError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Timeout
        );
        CallError {
            kind,
            message: message.into(),
            retryable,
            retry_after: None,
            duration: Duration::ZERO,
            http: Vec::new(),
            mocked: false,
        }
    }
}

/// Names, sizes and modification times of the files in a plugin folder, to notice a
/// reinstall (and not to retry a broken folder until it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Vec<(std::ffi::OsString, u64, Option<SystemTime>)>);

impl FileStamp {
    fn of(dir: &Path) -> Self {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| {
                        let meta = e.metadata().ok()?;
                        Some((e.file_name(), meta.len(), meta.modified().ok()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        FileStamp(files)
    }
}

/// The plugin runtime: one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<host::CallState>,
    store: Store,
    vault: Arc<Vault>,
    options: RuntimeOptions,
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
    policy_version: std::sync::atomic::AtomicI64,
    /// Plugin folders that failed to load, as they were then.
    failed: std::sync::Mutex<BTreeMap<String, FileStamp>>,
}

/// What [`Runtime::refresh`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RefreshReport {
    pub loaded: Vec<String>,
    pub unloaded: Vec<String>,
    pub policies_reloaded: bool,
    pub failed: Vec<(String, String)>,
}

impl Runtime {
    /// A runtime with no plugins loaded yet.
    pub fn new(options: RuntimeOptions, store: Store, vault: Arc<Vault>) -> Result<Runtime, PluginError> {
        // reqwest is built without a default TLS provider; ring is shared with wasmtime.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if options.limits.memory_mib > options.max_memory_mib {
            return Err(PluginError::Engine(format!(
                "the default memory limit ({} MiB) is above runtime.max_memory_mib ({} MiB)",
                options.limits.memory_mib, options.max_memory_mib
            )));
        }
        let engine = engine::new_engine(options.max_instances, options.max_memory_mib)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        host::link(&mut linker).map_err(|e| PluginError::Engine(e.to_string()))?;
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                store,
                vault,
                options,
                plugins: RwLock::new(BTreeMap::new()),
                policy_version: std::sync::atomic::AtomicI64::new(i64::MIN),
                failed: Default::default(),
            }),
        })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.inner.options
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The loaded plugin `name`.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugins = self.inner.plugins.read().expect("plugins lock");
        plugins
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotInstalled {
                name: name.to_owned(),
                installed: plugins.keys().cloned().collect(),
            })
    }

    /// All loaded plugins, by name.
    pub fn list(&self) -> Vec<Arc<LoadedPlugin>> {
        self.inner
            .plugins
            .read()
            .expect("plugins lock")
            .values()
            .cloned()
            .collect()
    }

    /// Load (or reload) every plugin in the plugins folder. A plugin that fails to load is
    /// reported and skipped; the others load.
    pub async fn load_all(&self) -> RefreshReport {
        self.refresh_inner(true).await
    }

    /// Pick up what changed since the last look: plugins installed, reinstalled or removed,
    /// and grants or settings changed by the CLI or another node.
    pub async fn refresh(&self) -> RefreshReport {
        self.refresh_inner(false).await
    }

    /// Take grants, settings, mocks and secrets changed in the store at once, instead of at
    /// the next refresh (after this process changed one).
    pub async fn reload_policies(&self) -> Result<bool, PluginError> {
        self.reload_policies_if_changed(false).await
    }

    async fn refresh_inner(&self, force: bool) -> RefreshReport {
        let mut report = RefreshReport::default();
        let dir = &self.inner.options.plugins_dir;
        let mut on_disk = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.join(manifest::MANIFEST_FILE).is_file()
                    && !entry.file_name().to_string_lossy().starts_with('.')
                {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    on_disk.insert(name, path);
                }
            }
        }
        let current: Vec<String> = self
            .inner
            .plugins
            .read()
            .expect("plugins lock")
            .keys()
            .cloned()
            .collect();
        for name in current {
            if !on_disk.contains_key(&name) {
                self.inner.plugins.write().expect("plugins lock").remove(&name);
                report.unloaded.push(name);
            }
        }
        for (name, path) in on_disk {
            let stamp = FileStamp::of(&path);
            let loaded_unchanged = self
                .inner
                .plugins
                .read()
                .expect("plugins lock")
                .get(&name)
                .is_some_and(|p| p.files == stamp);
            let failed_unchanged = self.inner.failed.lock().expect("failed lock").get(&name) == Some(&stamp);
            if (loaded_unchanged || failed_unchanged) && !force {
                continue;
            }
            let result = match Manifest::load(&path) {
                Ok(m) if m.name != name => Err(PluginError::Invalid {
                    name: m.name.clone(),
                    message: format!(
                        "it is in the folder {}, whose name must be the plugin's name; install it with `osprey plugin install`",
                        path.display()
                    ),
                }),
                Ok(_) => self.load_dir(&path).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(p) => {
                    tracing::info!(plugin = %p.name(), version = %p.manifest.version, cache = ?p.cache, "plugin loaded");
                    self.inner.failed.lock().expect("failed lock").remove(&name);
                    report.loaded.push(name);
                }
                Err(e) => {
                    // Reported once; retried when the folder changes.
                    tracing::error!(plugin = %name, error = %e, "plugin failed to load");
                    self.inner
                        .failed
                        .lock()
                        .expect("failed lock")
                        .insert(name.clone(), stamp);
                    report.failed.push((name, e.to_string()));
                }
            }
        }
        match self.reload_policies_if_changed(force).await {
            Ok(changed) => report.policies_reloaded = changed,
            Err(e) => tracing::error!(error = %e, "could not reload plugin grants"),
        }
        report
    }

    /// Reload grants and settings if they changed in the store.
    async fn reload_policies_if_changed(&self, force: bool) -> Result<bool, PluginError> {
        use std::sync::atomic::Ordering;
        let version = self.inner.store.policy_version().await?;
        if !force && version == self.inner.policy_version.load(Ordering::SeqCst) {
            return Ok(false);
        }
        for plugin in self.list() {
            let policy = self.build_policy(&plugin.manifest, &plugin.validators).await?;
            *plugin.policy.write().expect("policy lock") = Arc::new(policy);
        }
        self.inner.policy_version.store(version, Ordering::SeqCst);
        Ok(true)
    }

    async fn build_policy(
        &self,
        manifest: &Manifest,
        validators: &BTreeMap<String, (jsonschema::Validator, jsonschema::Validator)>,
    ) -> Result<Policy, PluginError> {
        let stored = self.inner.store.grant(&manifest.name).await?;
        let granted = stored.is_some();
        let grant = Arc::new(stored.unwrap_or_default());
        let mut config: BTreeMap<String, String> = manifest
            .config
            .iter()
            .filter_map(|(k, v)| v.default.clone().map(|d| (k.clone(), d)))
            .collect();
        config.extend(self.inner.store.plugin_config(&manifest.name).await?);
        let mut limits = self.inner.options.limits.with_grant(&grant);
        limits.memory_mib = limits.memory_mib.min(self.inner.options.max_memory_mib);
        let mock = self
            .inner
            .store
            .plugin_mock(&manifest.name)
            .await?
            .map(|set| Arc::new(MockMode::from_stored(&manifest.name, validators, set)));
        Ok(Policy {
            mock,
            secrets: Arc::new(self.inner.store.sealed_secrets(&manifest.name).await?),
            client: outbound::client_for(grant.clone()),
            grant,
            granted,
            limits,
            config: Arc::new(config),
        })
    }

    /// Load the plugin in `dir` (compile or take from cache, describe, check) and make it
    /// the one in force under its name.
    pub async fn load_dir(&self, dir: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let manifest = Manifest::load(dir)?;
        let loaded = self.prepare(dir, manifest).await?;
        let loaded = Arc::new(loaded);
        self.inner
            .plugins
            .write()
            .expect("plugins lock")
            .insert(loaded.manifest.name.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Check a plugin folder without installing it: the manifest parses, the component
    /// compiles against this host, describes itself consistently, and imports nothing
    /// Osprey does not provide.
    pub async fn check_dir(&self, dir: &Path) -> Result<LoadedPlugin, PluginError> {
        let manifest = Manifest::load(dir)?;
        self.prepare(dir, manifest).await
    }

    async fn prepare(&self, dir: &Path, manifest: Manifest) -> Result<LoadedPlugin, PluginError> {
        let invalid = |message: String| PluginError::Invalid {
            name: manifest.name.clone(),
            message,
        };
        let path = manifest.component_path(dir);
        let bytes = std::fs::read(&path).map_err(|source| PluginError::Io {
            path: path.clone(),
            source,
        })?;
        let engine = self.inner.engine.clone();
        let cache_dir = self.inner.options.cache_dir.clone();
        let (component, cache) = {
            let bytes = bytes.clone();
            tokio::task::spawn_blocking(move || engine::load_component(&engine, &bytes, &cache_dir))
                .await
                .map_err(|e| invalid(format!("compiling panicked: {e}")))?
                .map_err(|e| {
                    invalid(format!(
                        "{} is not a usable WebAssembly component: {e}",
                        path.display()
                    ))
                })?
        };
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.inner.engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let pre =
            wit::Pre::new(&self.inner.linker, &component, &imports).map_err(|e| invalid(e.to_string()))?;

        let wit = call::describe(self, &pre, &manifest.name)
            .await
            .map_err(|e| invalid(format!("describe failed: {e}")))?;
        if wit.name != manifest.name || wit.version != manifest.version {
            return Err(invalid(format!(
                "the component says it is {} {} but plugin.toml says {} {}",
                wit.name, wit.version, manifest.name, manifest.version
            )));
        }
        let mut actions = Vec::new();
        let mut validators = BTreeMap::new();
        for a in wit.actions {
            if a.name.is_empty()
                || !a
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(invalid(format!("action name '{}' must be kebab-case", a.name)));
            }
            if validators.contains_key(&a.name) {
                return Err(invalid(format!("action '{}' is described twice", a.name)));
            }
            let parse = |which: &str,
                         text: &str|
             -> Result<(serde_json::Value, jsonschema::Validator), PluginError> {
                let schema: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                    invalid(format!("{which} schema of action '{}' is not JSON: {e}", a.name))
                })?;
                let validator = jsonschema::validator_for(&schema).map_err(|e| {
                    invalid(format!(
                        "{which} schema of action '{}' is not a valid JSON Schema: {e}",
                        a.name
                    ))
                })?;
                Ok((schema, validator))
            };
            let (input_schema, input_v) = parse("input", &a.input_schema)?;
            let (output_schema, output_v) = parse("output", &a.output_schema)?;
            validators.insert(a.name.clone(), (input_v, output_v));
            actions.push(ActionInfo {
                name: a.name,
                description: a.description,
                input_schema,
                output_schema,
            });
        }
        let policy = self.build_policy(&manifest, &validators).await?;
        let files = FileStamp::of(dir);
        Ok(LoadedPlugin {
            description: Description {
                name: wit.name,
                version: wit.version,
                description: wit.description,
                actions,
            },
            component_hash: engine::content_hash(&bytes),
            cache,
            imports,
            dir: dir.to_owned(),
            pre,
            validators,
            policy: RwLock::new(Arc::new(policy)),
            files,
            manifest,
        })
    }

    /// Run `action` of `plugin` with `input`, in a fresh instance, under the plugin's grant
    /// and limits; or, for a plugin in mock mode, answer from its mock (`mock.rs`). Every
    /// failure is a typed [`CallError`]; none can take the host down.
    pub async fn call(
        &self,
        plugin: &str,
        action: &str,
        input: &serde_json::Value,
        ctx: CallContext,
    ) -> Result<CallOutcome, CallError> {
        let result = match self.get(plugin) {
            Ok(loaded) => match self.call_mocked(&loaded, action, input) {
                Some(answered) => answered,
                None => call::invoke(self, &loaded, action, input, ctx).await,
            },
            Err(e) => Err(CallError::new(ErrorKind::NotFound, e.to_string())),
        };
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.kind.to_string(),
        };
        self.inner.options.metrics.plugin_call(plugin, action, &outcome);
        result
    }
}
