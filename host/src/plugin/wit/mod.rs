//! The versions of the WIT contract the host serves, one small adapter per frozen
//! `wit/vX.Y.Z/` folder (as Zed's extension host keeps one per version): each version's
//! `bindgen!` is in its own file and converts its generated types to and from the
//! version-free ones here, which the rest of the runtime uses. The imports (secrets, kv,
//! log, config) are implemented once, in `host.rs`, on these types; each version's `Host`
//! traits delegate to that one implementation ([`adapter!`]).
//!
//! Which version a component speaks is read from its imports: a component built against
//! `osprey:plugin@X.Y.Z` imports `osprey:plugin/types@X.Y.Z` (its exports use those types),
//! and every `osprey:plugin` interface it imports must name the same version. A component
//! that names none is tried against each version's exports, newest first. Either way, that
//! version's `IntegrationPre` then checks the exports' types, and the component stays
//! pre-instantiated for its version: a call costs one `match` more than before.

mod v0_1_0;
mod v0_2_0;

use super::host::CallState;
use super::{CallContext, ErrorKind};
use std::collections::BTreeSet;
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker};

/// A version of the contract this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WitVersion {
    V0_1_0,
    V0_2_0,
}

impl WitVersion {
    /// Every version served, oldest first.
    pub const ALL: [WitVersion; 2] = [WitVersion::V0_1_0, WitVersion::V0_2_0];

    /// The version as WIT writes it: `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1_0 => "0.1.0",
            WitVersion::V0_2_0 => "0.2.0",
        }
    }

    fn parse(s: &str) -> Option<WitVersion> {
        WitVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The contract's `error` record, whatever the version (0.1.0 has no `retry-after`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorRecord {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
}

impl ErrorRecord {
    pub fn new(kind: ErrorKind, message: String, retryable: bool) -> Self {
        ErrorRecord {
            kind,
            message,
            retryable,
            retry_after: None,
        }
    }
}

/// The contract's `descriptor`, whatever the version.
#[derive(Debug, Clone)]
pub(crate) struct Descriptor {
    pub name: String,
    pub version: String,
    pub description: String,
    pub actions: Vec<ActionDecl>,
}

/// The contract's `action`: schemas as the plugin wrote them (JSON text).
#[derive(Debug, Clone)]
pub(crate) struct ActionDecl {
    pub name: String,
    pub description: String,
    pub input_schema: String,
    pub output_schema: String,
}

/// The contract's `webhook-request` (0.2.0 on): a vendor's request to `/hooks/PLUGIN/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub method: String,
    /// Below `/hooks/PLUGIN`, starting with `/`, as sent.
    pub path: String,
    /// Without its `?`, as sent; empty when none.
    pub query: String,
    /// Names in lower case, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The contract's `webhook-response`, as the plugin returned it (the server sanitizes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The contract's `answer`: someone answered a question outside Osprey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The question's id or token.
    pub question: String,
    /// JSON text.
    pub answer: String,
    pub email: Option<String>,
    /// `VENDOR:ID`, such as `slack:U123`.
    pub by: String,
}

/// The contract's `event`: what a plugin asks the host to do after a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// One alert, as JSON text.
    Alert(String),
    Answer(Answer),
}

/// The contract's `webhook-outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub response: WebhookResponse,
    pub events: Vec<WebhookEvent>,
}

/// The contract's log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Why a component cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContractError {
    #[error(
        "it was built against osprey:plugin@{found}, which this Osprey does not serve (it serves {}); upgrade Osprey or build the plugin against one of those",
        served()
    )]
    Unknown { found: String },
    #[error("it imports osprey:plugin interfaces of more than one version ({}); build it against one", .0.join(", "))]
    Mixed(Vec<String>),
    #[error("it needs an import Osprey does not provide: {0:#}")]
    Imports(wasmtime::Error),
    #[error("it does not export the osprey:plugin@{version} integration world: {source:#}")]
    Exports {
        version: WitVersion,
        source: wasmtime::Error,
    },
    #[error(
        "it does not export the osprey:plugin integration world of any version Osprey serves ({})",
        served()
    )]
    NoWorld,
}

fn served() -> String {
    WitVersion::ALL.map(WitVersion::as_str).join(", ")
}

/// A component pre-instantiated for the version of the contract it was built against.
pub(crate) enum Pre {
    V0_1_0(v0_1_0::IntegrationPre<CallState>),
    V0_2_0(v0_2_0::IntegrationPre<CallState>),
}

impl Pre {
    /// Link `component` (whose import names are `imports`) and check its exports against
    /// its version of the contract.
    pub fn new(
        linker: &Linker<CallState>,
        component: &Component,
        imports: &[String],
    ) -> Result<Pre, ContractError> {
        let declared = declared_version(imports)?;
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(ContractError::Imports)?;
        match declared {
            Some(version) => Pre::for_version(version, instance_pre)
                .map_err(|source| ContractError::Exports { version, source }),
            None => WitVersion::ALL
                .into_iter()
                .rev()
                .find_map(|v| Pre::for_version(v, instance_pre.clone()).ok())
                .ok_or(ContractError::NoWorld),
        }
    }

    fn for_version(version: WitVersion, pre: InstancePre<CallState>) -> wasmtime::Result<Pre> {
        Ok(match version {
            WitVersion::V0_1_0 => Pre::V0_1_0(v0_1_0::IntegrationPre::new(pre)?),
            WitVersion::V0_2_0 => Pre::V0_2_0(v0_2_0::IntegrationPre::new(pre)?),
        })
    }

    /// Whether the contract has `handle-webhook` (0.2.0 on).
    pub fn has_webhooks(&self) -> bool {
        match self {
            Pre::V0_1_0(_) => false,
            Pre::V0_2_0(_) => true,
        }
    }

    pub fn version(&self) -> WitVersion {
        match self {
            Pre::V0_1_0(_) => WitVersion::V0_1_0,
            Pre::V0_2_0(_) => WitVersion::V0_2_0,
        }
    }

    /// Instantiate in `store` and call `describe`.
    pub async fn describe(&self, store: &mut wasmtime::Store<CallState>) -> wasmtime::Result<Descriptor> {
        match self {
            Pre::V0_1_0(pre) => v0_1_0::describe(pre, store).await,
            Pre::V0_2_0(pre) => v0_2_0::describe(pre, store).await,
        }
    }

    /// Instantiate in `store` and call `invoke`.
    pub async fn invoke(
        &self,
        store: &mut wasmtime::Store<CallState>,
        action: &str,
        input: &str,
        ctx: &CallContext,
    ) -> wasmtime::Result<Result<String, ErrorRecord>> {
        match self {
            Pre::V0_1_0(pre) => v0_1_0::invoke(pre, store, action, input, ctx).await,
            Pre::V0_2_0(pre) => v0_2_0::invoke(pre, store, action, input, ctx).await,
        }
    }
}

impl Pre {
    /// Instantiate in `store` and call `handle-webhook`. A version without it (0.1.0) is
    /// answered `not-found` without instantiating; the runtime checks
    /// [`has_webhooks`](Pre::has_webhooks) before.
    pub async fn handle_webhook(
        &self,
        store: &mut wasmtime::Store<CallState>,
        request: &WebhookRequest,
        ctx: &CallContext,
    ) -> wasmtime::Result<Result<WebhookOutcome, ErrorRecord>> {
        match self {
            Pre::V0_1_0(_) => Ok(Err(ErrorRecord::new(
                ErrorKind::NotFound,
                "osprey:plugin@0.1.0 has no handle-webhook".into(),
                false,
            ))),
            Pre::V0_2_0(pre) => v0_2_0::handle_webhook(pre, store, request, ctx).await,
        }
    }
}

/// The version named by the `osprey:plugin/...@X.Y.Z` imports, if any.
fn declared_version(imports: &[String]) -> Result<Option<WitVersion>, ContractError> {
    let versions: BTreeSet<&str> = imports
        .iter()
        .filter_map(|name| name.strip_prefix("osprey:plugin/"))
        .filter_map(|rest| rest.split_once('@').map(|(_, v)| v))
        .collect();
    let mut versions = versions.into_iter();
    match (versions.next(), versions.next()) {
        (None, _) => Ok(None),
        (Some(one), None) => WitVersion::parse(one)
            .map(Some)
            .ok_or_else(|| ContractError::Unknown {
                found: one.to_owned(),
            }),
        (Some(a), Some(b)) => {
            let mut all = vec![a.to_owned(), b.to_owned()];
            all.extend(versions.map(str::to_owned));
            Err(ContractError::Mixed(all))
        }
    }
}

/// Link every version's osprey imports: the interface names carry their version, so one
/// linker serves all of them side by side.
pub(crate) fn link(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    v0_1_0::link(linker)?;
    v0_2_0::link(linker)
}

/// What every version's adapter has alike, given its `bindgen!` output in `self::osprey`
/// and its `From` conversions between its `types::Error` and [`ErrorRecord`]: the `Host`
/// traits of the osprey imports (delegating to `host.rs`), `link`, `describe`, `invoke`,
/// and the conversions of the enums and records whose shape did not change.
macro_rules! adapter {
    () => {
        use self::osprey::plugin::{config, kv, log, secrets, types};
        use wasmtime::component::HasSelf;
        use $crate::plugin::host::CallState;
        use $crate::plugin::wit::{self as host_wit, ErrorRecord, LogLevel};
        use $crate::plugin::{CallContext, ErrorKind};

        pub(super) fn link(linker: &mut wasmtime::component::Linker<CallState>) -> wasmtime::Result<()> {
            types::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)?;
            secrets::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)?;
            kv::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)?;
            log::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)?;
            config::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)?;
            Ok(())
        }

        pub(super) async fn describe(
            pre: &IntegrationPre<CallState>,
            store: &mut wasmtime::Store<CallState>,
        ) -> wasmtime::Result<host_wit::Descriptor> {
            let instance = pre.instantiate_async(&mut *store).await?;
            let d = instance.call_describe(&mut *store).await?;
            Ok(host_wit::Descriptor {
                name: d.name,
                version: d.version,
                description: d.description,
                actions: d
                    .actions
                    .into_iter()
                    .map(|a| host_wit::ActionDecl {
                        name: a.name,
                        description: a.description,
                        input_schema: a.input_schema,
                        output_schema: a.output_schema,
                    })
                    .collect(),
            })
        }

        pub(super) async fn invoke(
            pre: &IntegrationPre<CallState>,
            store: &mut wasmtime::Store<CallState>,
            action: &str,
            input: &str,
            ctx: &CallContext,
        ) -> wasmtime::Result<Result<String, ErrorRecord>> {
            let ctx = types::Context {
                run_id: ctx.run_id.clone(),
                idempotency_key: ctx.idempotency_key.clone(),
            };
            let instance = pre.instantiate_async(&mut *store).await?;
            let result = instance
                .call_invoke(&mut *store, action, input, &ctx)
                .await?;
            Ok(result.map_err(ErrorRecord::from))
        }

        impl From<types::ErrorKind> for ErrorKind {
            fn from(kind: types::ErrorKind) -> Self {
                match kind {
                    types::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                    types::ErrorKind::NotFound => ErrorKind::NotFound,
                    types::ErrorKind::Denied => ErrorKind::Denied,
                    types::ErrorKind::Unavailable => ErrorKind::Unavailable,
                    types::ErrorKind::RateLimited => ErrorKind::RateLimited,
                    types::ErrorKind::Upstream => ErrorKind::Upstream,
                    types::ErrorKind::Timeout => ErrorKind::Timeout,
                    types::ErrorKind::LimitExceeded => ErrorKind::LimitExceeded,
                    types::ErrorKind::Internal => ErrorKind::Internal,
                }
            }
        }

        impl From<ErrorKind> for types::ErrorKind {
            fn from(kind: ErrorKind) -> Self {
                match kind {
                    ErrorKind::InvalidInput => types::ErrorKind::InvalidInput,
                    ErrorKind::NotFound => types::ErrorKind::NotFound,
                    ErrorKind::Denied => types::ErrorKind::Denied,
                    ErrorKind::Unavailable => types::ErrorKind::Unavailable,
                    ErrorKind::RateLimited => types::ErrorKind::RateLimited,
                    ErrorKind::Upstream => types::ErrorKind::Upstream,
                    ErrorKind::Timeout => types::ErrorKind::Timeout,
                    ErrorKind::LimitExceeded => types::ErrorKind::LimitExceeded,
                    ErrorKind::Internal => types::ErrorKind::Internal,
                }
            }
        }

        impl types::Host for CallState {}

        impl secrets::Host for CallState {
            async fn get(&mut self, name: String) -> Result<String, types::Error> {
                self.secret(&name).await.map_err(Into::into)
            }
        }

        impl kv::Host for CallState {
            async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, types::Error> {
                self.kv_get(&key).await.map_err(Into::into)
            }

            async fn set(
                &mut self,
                key: String,
                value: Vec<u8>,
                ttl_seconds: Option<u32>,
            ) -> Result<(), types::Error> {
                self.kv_set(&key, &value, ttl_seconds)
                    .await
                    .map_err(Into::into)
            }

            async fn delete(&mut self, key: String) -> Result<bool, types::Error> {
                self.kv_delete(&key).await.map_err(Into::into)
            }
        }

        impl log::Host for CallState {
            async fn write(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
                let level = match level {
                    log::Level::Trace => LogLevel::Trace,
                    log::Level::Debug => LogLevel::Debug,
                    log::Level::Info => LogLevel::Info,
                    log::Level::Warn => LogLevel::Warn,
                    log::Level::Error => LogLevel::Error,
                };
                self.log(level, &message, fields);
            }
        }

        impl config::Host for CallState {
            async fn get(&mut self, key: String) -> Option<String> {
                self.setting(&key)
            }
        }
    };
}
pub(crate) use adapter;

#[cfg(test)]
mod tests {
    use super::{ContractError, WitVersion, declared_version};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_version_is_read_from_the_osprey_imports() {
        let v1 = names(&[
            "wasi:io/streams@0.2.12",
            "osprey:plugin/types@0.1.0",
            "osprey:plugin/kv@0.1.0",
        ]);
        assert_eq!(declared_version(&v1).unwrap(), Some(WitVersion::V0_1_0));
        let v2 = names(&["osprey:plugin/types@0.2.0"]);
        assert_eq!(declared_version(&v2).unwrap(), Some(WitVersion::V0_2_0));
        assert_eq!(
            declared_version(&names(&["wasi:cli/stdout@0.2.12"])).unwrap(),
            None
        );
    }

    #[test]
    fn unknown_and_mixed_versions_are_refused_with_what_is_served() {
        let e = declared_version(&names(&["osprey:plugin/types@0.9.0"])).unwrap_err();
        assert!(matches!(&e, ContractError::Unknown { found } if found == "0.9.0"));
        assert!(e.to_string().contains("it serves 0.1.0, 0.2.0"), "{e}");
        let e =
            declared_version(&names(&["osprey:plugin/types@0.1.0", "osprey:plugin/kv@0.2.0"])).unwrap_err();
        assert!(e.to_string().contains("0.1.0, 0.2.0"), "{e}");
    }
}
