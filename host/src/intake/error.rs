//! Why one item of a body is not an alert: the messages the sender sees, item by item.

use super::quote;
use crate::nesting::TooDeep;
use thiserror::Error;

/// Why an item (a JSON value, a line) was not turned into an alert.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum IntakeError {
    #[error("the line is not valid UTF-8 (bad byte at column {column}); send UTF-8 text")]
    LineNotUtf8 { column: usize },
    #[error("the body is not valid UTF-8 (bad byte at offset {offset}); send UTF-8 text")]
    BodyNotUtf8 { offset: usize },
    #[error("expected JSON: an object, an array of objects, or NDJSON (one object per line)")]
    NotJson,
    /// serde_json's message for a broken array.
    #[error("invalid JSON array: {0}")]
    InvalidArray(String),
    /// serde_json's message for a broken document or line (a line's without "line 1").
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    #[error("the alert is {0}")]
    TooDeep(#[from] TooDeep),
    /// What the value was instead ("a number", ...).
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("unknown severity {}: use info, low, medium, high or critical, or a level 0-4", quote(.0))]
    UnknownSeverity(String),
    #[error("severity {0} is out of range: use a level from 0 (info) to 4 (critical)")]
    SeverityOutOfRange(serde_json::Number),
    #[error("severity must be a name or a level 0-4, not {0}")]
    SeverityNotNameOrLevel(&'static str),
    #[error(
        "invalid {key} {}: use an RFC 3339 date such as 2024-05-01T12:00:00Z, or Unix seconds or milliseconds",
        quote(.text)
    )]
    TimeText { key: &'static str, text: String },
    #[error("invalid {key} {number}")]
    TimeNumber {
        key: &'static str,
        number: serde_json::Number,
    },
    #[error("invalid {key}: expected an RFC 3339 date or a number, not {kind}")]
    TimeKind { key: &'static str, kind: &'static str },
    #[error("{key} {number} is out of range: expected Unix seconds or milliseconds")]
    TimeOutOfRange { key: &'static str, number: f64 },
    #[error("expected 9 fields separated by '||' ({}), found {found}", super::passivedns::FIELDS.join("||"))]
    FieldCount { found: usize },
    #[error("invalid timestamp {}: expected Unix seconds such as 1322849924.408856", quote(.0))]
    Timestamp(String),
    #[error("invalid {field} address {}: expected an IP address", quote(.text))]
    Address { field: &'static str, text: String },
    #[error("invalid ttl {}: expected a whole number of seconds", quote(.0))]
    Ttl(String),
    #[error("invalid count {}: expected a whole number", quote(.0))]
    Count(String),
    #[error("not a syslog message: missing <PRI> at the start (such as <34>)")]
    MissingPriority,
    #[error("not a syslog message: priority {} is out of range 0-{max}", quote(.digits))]
    PriorityOutOfRange { digits: String, max: u8 },
}
