//! Secrets the operator stored for this plugin, by name.
//!
//! A plugin can read only the names its grant lists; asking for another is a `denied`
//! error, and a granted name with no value yet is `not-found`.

use crate::Result;
use crate::bindings::osprey::plugin::secrets as wit;
use std::fmt;

/// A secret value. It does not implement `Display`, and its `Debug` prints `[redacted]`,
/// so it cannot end up in a log line or an error message by accident.
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The secret `name`, as granted to this plugin.
pub fn get(name: &str) -> Result<Secret> {
    wit::get(name).map(Secret).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:#?}", Some(&s)).matches("hunter2").count(), 0);
        assert_eq!(s.expose(), "hunter2");
    }
}
