//! JSON in the store: checked before it is written, read leniently.
//!
//! Every value written is at most [`STORED_DEPTH`] deep, so the readers (serde_json, which
//! refuses more than 128) can always read it back. A row that cannot be read anyway (written
//! by an older version, or edited by hand) is not a reason to fail a whole list: the value
//! reads as `null` and the row says why ([`Lenient::unreadable`]).

use super::{Result, StoreError};
use crate::nesting::{self, STORED_DEPTH};
use serde_json::Value;

/// Refuse a value the readers could not give back.
pub(super) fn check(value: &Value, what: &str) -> Result<()> {
    nesting::check(value, STORED_DEPTH).map_err(|e| StoreError::Invalid(format!("{what} is {e}")))
}

/// A value read from the store, and why it could not be read if it could not.
pub(super) struct Lenient {
    pub value: Value,
    pub unreadable: Option<String>,
}

/// Read stored JSON text; `null` (and why) if it does not parse.
pub(super) fn read(text: &str, what: &str) -> Lenient {
    match serde_json::from_str(text) {
        Ok(value) => Lenient {
            value,
            unreadable: None,
        },
        Err(e) => Lenient {
            value: Value::Null,
            unreadable: Some(format!("{what}: {e}")),
        },
    }
}

/// The reasons of several readings, joined; `None` if all read.
pub(super) fn unreadable<'a>(readings: impl IntoIterator<Item = &'a Option<String>>) -> Option<String> {
    let reasons: Vec<&str> = readings.into_iter().flatten().map(String::as_str).collect();
    (!reasons.is_empty()).then(|| format!("stored data is unreadable ({})", reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_values_are_refused_and_unreadable_ones_read_as_null() {
        let deep: Value = serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap();
        let e = check(&deep, "run output").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("run output is nested more than 72 levels"),
            "{e}"
        );
        let r = read(&format!("{}{}", "[".repeat(200), "]".repeat(200)), "run input");
        assert_eq!(r.value, Value::Null);
        let why = unreadable([&None, &r.unreadable]).unwrap();
        assert!(why.contains("run input: recursion limit exceeded"), "{why}");
        assert_eq!(unreadable([&None, &read("{}", "x").unreadable]), None);
    }
}
