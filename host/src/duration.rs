//! Durations written as text ("30s", "2m", "1h 30m") in the config file, `playbook.toml`,
//! `[incidents]` and scripts: the one parser and the serde adapters. Pure; imports nothing
//! of the crate.

use std::time::Duration;

/// A text that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a duration like \"30s\" or \"4h\": {reason}")]
pub struct DurationError {
    pub text: String,
    reason: String,
}

/// Parse "30s", "2m", "4h"; the error names the text.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(s).map_err(|e| DurationError {
        text: s.to_owned(),
        reason: e.to_string(),
    })
}

/// `serde(with = "crate::duration::text")` for a duration written as text.
pub mod text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Like [`text`], for an optional duration.
pub mod opt_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_names_the_bad_text() {
        assert_eq!(super::parse("1h 30m").unwrap().as_secs(), 5400);
        let e = super::parse("soon").unwrap_err();
        assert!(e.to_string().starts_with("'soon' is not a duration"), "{e}");
    }
}
