//! Operator settings for this plugin (a base URL, a site name), declared with defaults in
//! the `[config]` table of `plugin.toml` and set with `osprey plugin config`.

use crate::bindings::osprey::plugin::config as wit;
use crate::{Error, Result};

/// The operator's value for `key`, else the default from `plugin.toml`, else `None`.
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// Like [`get`], but a missing value is an `invalid-input` error that tells the operator
/// which setting to set.
pub fn require(key: &str) -> Result<String> {
    get(key).ok_or_else(|| {
        Error::invalid_input(format!(
            "setting '{key}' is not configured; set it with `osprey plugin config <plugin> {key}=...`"
        ))
    })
}
