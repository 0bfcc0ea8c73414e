//! `osprey demo`: a data directory wired from the repository's `demo/` folder so a first look
//! at Osprey shows it working: the bundled connectors installed and mocked, a user for each
//! role, the lists, rules and token the scenarios need (`setup.rs`, from `spec.rs`'s
//! `demo/setup.toml`), the scenarios that would wait for a person or a schedule started once
//! (`kick.rs`), and a trickle of sample alerts through the real intake API (`trickle.rs`, from
//! `demo/alerts.toml`). Adding a scenario is adding data to `demo/`, not code.

pub mod kick;
pub mod setup;
pub mod spec;
pub mod trickle;

pub use setup::{DemoUser, Prepared, prepare};
pub use spec::{AlertSpec, DemoSpec, KickSpec, TrickleSpec};

use thiserror::Error;

/// What the console's banner says while the server runs as a demo.
pub const BANNER: &str = "Demo: connectors are mocked";

/// Why the demo could not be set up.
#[derive(Debug, Error)]
pub enum DemoError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a valid demo file: {message}")]
    Spec { path: String, message: String },
    #[error("demo plugin '{name}': {message}")]
    Plugin { name: String, message: String },
    #[error("demo {what}: {message}")]
    Setup { what: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
