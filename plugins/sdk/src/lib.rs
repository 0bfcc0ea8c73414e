//! # Writing an Osprey integration in Rust
//!
//! An Osprey integration (a *plugin*) is a WebAssembly component that offers named
//! *actions*: `lookup` an IP, `block-client` on a controller, `give-bonus`. Playbooks call
//! actions with a JSON object and get a JSON object back. This crate and the WIT file
//! (`wit/v0.2.0/plugin.wit`) are all you need to read.
//!
//! ```ignore
//! use osprey_sdk::prelude::*;
//!
//! /// Input of `lookup`. Doc comments become the JSON Schema's descriptions.
//! #[derive(Deserialize, JsonSchema)]
//! struct LookupInput {
//!     /// IPv4 or IPv6 address.
//!     ip: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct LookupOutput {
//!     country: Option<String>,
//! }
//!
//! fn lookup(ctx: &Context, input: LookupInput) -> Result<LookupOutput> {
//!     let token = secrets::get("token")?;
//!     let base = config::get("base_url").unwrap_or_else(|| "https://ipinfo.io".into());
//!     let body: serde_json::Value = http::Request::get(format!("{base}/{}/json", input.ip))
//!         .bearer_auth(token.expose())
//!         .send()?
//!         .error_for_status()?
//!         .json()?;
//!     log::info("looked up", &[("ip", input.ip.as_str()), ("run", ctx.run_id())]);
//!     Ok(LookupOutput { country: body["country"].as_str().map(str::to_owned) })
//! }
//!
//! fn plugin() -> Plugin {
//!     Plugin::new("ipinfo", env!("CARGO_PKG_VERSION"), "IP enrichment from ipinfo.io")
//!         .action("lookup", "Geolocation, ASN and owner of an IP address", lookup)
//! }
//!
//! osprey_sdk::export_plugin!(plugin);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type `cdylib`) and
//! ship the `.wasm` with a `plugin.toml` that names the capabilities it needs.
//!
//! ## What the host guarantees, and what it enforces
//! - Every call runs in a fresh instance. Globals, caches and statics start empty each time;
//!   keep what must last in [`kv`].
//! - The input was validated against the action's input schema before your function runs.
//!   A deserialisation error still becomes a clean `invalid-input` error.
//! - Outbound HTTP goes through [`http`], and only to what the operator granted. A refused
//!   request is an [`ErrorKind::Denied`] error; pass it on with `?`.
//! - Limits (wall time, memory, response and output size, number of requests) are set by the
//!   operator. Hitting one ends the call with `timeout` or `limit-exceeded`.
//! - `println!`/`eprintln!` end up in Osprey's log attributed to your plugin, but prefer
//!   [`log`], which carries fields. A panic ends the call with an `internal` error that
//!   carries the panic message.
//! - Webhooks (the vendor's requests to `/hooks/NAME/...`) reach a handler given to
//!   [`Plugin::webhook`], only when the operator granted `webhooks`; Osprey does not
//!   authenticate them, the handler checks the vendor's signature ([`webhook`]).
//! - There is no filesystem, no environment, no sockets: use [`config`], [`secrets`], [`kv`]
//!   and [`http`].

#![warn(missing_docs)]

#[doc(hidden)]
pub mod bindings;
pub mod config;
mod error;
pub mod http;
pub mod kv;
pub mod log;
mod plugin;
pub mod secrets;
pub mod webhook;

pub use error::{Error, ErrorKind, Result};
pub use plugin::{Context, Plugin, WebhookHandler};
pub use schemars::JsonSchema;
pub use serde::{Deserialize, Serialize};
pub use serde_json::{self, Value, json};

/// Everything a plugin usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Context, Deserialize, Error, ErrorKind, JsonSchema, Plugin, Result, Serialize, Value, config, http,
        json, kv, log, secrets, webhook,
    };
}

/// Export a plugin built by the function `$build` (`fn() -> Plugin`) as the component's
/// `describe`, `invoke` and `handle-webhook`. Use it once, at the root of your crate.
#[macro_export]
macro_rules! export_plugin {
    ($build:path) => {
        struct __OspreyPluginExport;

        impl $crate::bindings::Guest for __OspreyPluginExport {
            fn describe() -> $crate::bindings::osprey::plugin::types::Descriptor {
                $crate::__private::describe(&$build())
            }

            fn invoke(
                action: ::std::string::String,
                input: ::std::string::String,
                context: $crate::bindings::osprey::plugin::types::Context,
            ) -> ::std::result::Result<
                ::std::string::String,
                $crate::bindings::osprey::plugin::types::Error,
            > {
                $crate::__private::invoke(&$build(), &action, &input, context)
            }

            fn handle_webhook(
                request: $crate::bindings::osprey::plugin::types::WebhookRequest,
                context: $crate::bindings::osprey::plugin::types::Context,
            ) -> ::std::result::Result<
                $crate::bindings::osprey::plugin::types::WebhookOutcome,
                $crate::bindings::osprey::plugin::types::Error,
            > {
                $crate::__private::handle_webhook(&$build(), request, context)
            }
        }

        $crate::bindings::export!(__OspreyPluginExport with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::plugin::{describe, handle_webhook, invoke};
}
