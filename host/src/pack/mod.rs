//! Plugin packs: one file that carries a plugin (its component, `plugin.toml`, an optional
//! README) with a minisign signature over a manifest that pins every byte. `format.rs` reads
//! and writes the file and refuses hostile ones; `signature.rs` signs and verifies (ed25519
//! in minisign's format); `trust.rs` judges a signer against the keys an operator trusts.
//! Pure: no store, no runtime, no file system (`cli/pack.rs` and `cli/plugin.rs` do those).

pub mod format;
pub mod signature;
pub mod trust;

pub use format::{FormatError, Limits, Pack, PackManifest};
pub use signature::{KeyId, PublicKey, SecretKey, Signature, SignatureError};
pub use trust::{Signer, TrustedKey};
