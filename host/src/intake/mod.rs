//! Intake: incoming alerts, parsed into [`Alert`]s.
//!
//! A request body comes in one of the [`Format`]s. [`parse`] splits it into items (the
//! elements of a JSON array, the lines of NDJSON, PassiveDNS or syslog) and turns each item
//! into an alert or an [`ItemError`] that says where the item was, so one bad item never
//! hides the good ones. Observables (IP addresses, domains, URLs, hashes, e-mail addresses)
//! are extracted from the text into typed lists ([`extract_observables`]).
//!
//! Pure functions: no I/O, no database. The only outside input is the clock, read once per
//! syslog body for the year of RFC 3164 timestamps (which have none).

mod error;
mod json;
mod observables;
mod passivedns;
mod syslog;

pub use error::IntakeError;
pub use json::kind as json_kind;
pub(crate) use observables::observable_url;
pub use observables::{MAX_PER_KIND, MAX_SCAN_BYTES, Observables, extract_observables};

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// The longest title, in characters; longer ones are cut on a character boundary.
pub const MAX_TITLE_CHARS: usize = 200;

/// A normalized alert, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// Where it came from: the JSON's "source" field, else the format's name ("passivedns",
    /// "syslog"), else the caller's default.
    pub source: String,
    /// One line for humans.
    pub title: String,
    pub severity: Severity,
    /// When it happened (Unix milliseconds), if the input says.
    pub occurred_at: Option<i64>,
    /// The parsed fields (a JSON object): for JSON input, the object as received.
    pub data: serde_json::Value,
    pub observables: Observables,
    /// The raw line, for line formats.
    pub raw: Option<String>,
}

/// How bad an alert is, from `Info` to `Critical` (ordered).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, from the lowest.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The names, from the lowest: what [`as_str`](Self::as_str) gives.
    pub const NAMES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

    /// The name used in JSON and in the database: "info", "low", "medium", "high", "critical".
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// A severity by name, case-insensitively. Besides the five names this accepts the
    /// words other tools use: "informational", "warning"/"warn" (medium), "error"/"err"
    /// (high), "crit" (critical), and the levels "0" to "4".
    pub fn parse(name: &str) -> Option<Severity> {
        match name.trim().to_ascii_lowercase().as_str() {
            "info" | "informational" | "0" => Some(Severity::Info),
            "low" | "1" => Some(Severity::Low),
            "medium" | "warning" | "warn" | "2" => Some(Severity::Medium),
            "high" | "error" | "err" | "3" => Some(Severity::High),
            "critical" | "crit" | "4" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// A severity by level: 0 (info) to 4 (critical).
    pub fn from_level(level: u64) -> Option<Severity> {
        match level {
            0 => Some(Severity::Info),
            1 => Some(Severity::Low),
            2 => Some(Severity::Medium),
            3 => Some(Severity::High),
            4 => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The input formats: the registry of parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object, an array of objects, or NDJSON (one object per line).
    Json,
    /// The line format gamelinux/passivedns writes by default:
    /// `ts||client||server||class||query||type||answer||ttl||count`.
    PassiveDns,
    /// One syslog message per line, RFC 5424 or RFC 3164.
    Syslog,
}

impl Format {
    /// Every name accepted by [`Format::from_name`], for error messages.
    pub const NAMES: &'static [&'static str] = &["json", "ndjson", "passivedns", "syslog"];

    /// By name, as given in `?format=`: "json" (also "ndjson"), "passivedns", "syslog".
    /// Case-insensitive.
    pub fn from_name(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "json" | "ndjson" => Some(Format::Json),
            "passivedns" => Some(Format::PassiveDns),
            "syslog" => Some(Format::Syslog),
            _ => None,
        }
    }

    /// The canonical name: "json", "passivedns" or "syslog".
    pub fn name(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::PassiveDns => "passivedns",
            Format::Syslog => "syslog",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an item was in the body: NDJSON and line formats count lines from 1; a JSON array
/// counts items from 0. Serialized as `{"at": "line", "n": 3}`, `{"at": "item", "n": 2}` or
/// `{"at": "body"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase", tag = "at", content = "n")]
pub enum Position {
    /// A line of NDJSON, PassiveDNS or syslog, counted from 1 (empty lines count).
    Line(usize),
    /// An element of a JSON array, counted from 0.
    Item(usize),
    /// The whole body (a single JSON object, or a body that could not be split into items).
    Body,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Item(n) => write!(f, "item {n}"),
            Position::Body => f.write_str("body"),
        }
    }
}

/// Why one item of a body was not turned into an alert, and where it was. Serialized as
/// `{"position": ..., "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Error, Serialize)]
#[error("{position}: {error}")]
pub struct ItemError {
    pub position: Position,
    #[serde(rename = "message", serialize_with = "serialize_display")]
    #[source]
    pub error: IntakeError,
}

impl ItemError {
    pub fn new(position: Position, error: IntakeError) -> Self {
        ItemError { position, error }
    }
}

fn serialize_display<S: serde::Serializer>(error: &IntakeError, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(error)
}

/// One item of a body: where it was, and the alert or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub position: Position,
    pub alert: Result<Alert, ItemError>,
}

impl Item {
    fn new(position: Position, alert: Result<Alert, IntakeError>) -> Item {
        Item {
            position,
            alert: alert.map_err(|error| ItemError::new(position, error)),
        }
    }

    fn failed(position: Position, error: IntakeError) -> Item {
        Item::new(position, Err(error))
    }
}

/// Parse a request body in `format`: [`parse_items`] without the positions of good items.
pub fn parse(format: Format, body: &[u8], default_source: &str) -> Vec<Result<Alert, ItemError>> {
    parse_items(format, body, default_source)
        .into_iter()
        .map(|i| i.alert)
        .collect()
}

/// Parse a request body in `format`, with each item's position: [`parse_bounded`] without
/// a limit on the number of items.
pub fn parse_items(format: Format, body: &[u8], default_source: &str) -> Vec<Item> {
    parse_bounded(format, body, default_source, usize::MAX).unwrap_or_default()
}

/// A body with more items than allowed: found while parsing, before the rest is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("more than {max} alerts in one request")]
pub struct TooManyItems {
    pub max: usize,
}

/// Parse a request body in `format`, with each item's position, stopping as soon as it
/// holds more than `max_items` items (memory stays a small multiple of the body's size).
///
/// Each item (a JSON array element, an NDJSON line, a PassiveDNS or syslog line) yields an
/// alert or an error naming its position; empty and whitespace-only lines are skipped, so an
/// empty body yields nothing. A line that is not UTF-8 is that line's error; a JSON document
/// that is not UTF-8, or JSON that is neither an object, an array of objects, nor NDJSON,
/// gives one error at [`Position::Body`]. An item nested more than
/// [`crate::nesting::MAX_DEPTH`] levels deep is refused (it could not be read back once
/// stored inside a run or an incident).
pub fn parse_bounded(
    format: Format,
    body: &[u8],
    default_source: &str,
    max_items: usize,
) -> Result<Vec<Item>, TooManyItems> {
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    match format {
        Format::Json => json::parse(body, default_source, max_items),
        Format::PassiveDns => parse_lines(body, max_items, passivedns::parse_line),
        Format::Syslog => {
            let now = chrono::Utc::now();
            parse_lines(body, max_items, |line| syslog::parse_line(line, now))
        }
    }
}

/// A non-blank line: its number (from 1), and its text or why it is not UTF-8.
type Line<'a> = (usize, Result<&'a str, IntakeError>);

/// The non-blank lines of `body`; refused whole if there are more than `max_items`, before
/// any is parsed.
fn lines(body: &[u8], max_items: usize) -> Result<Vec<Line<'_>>, TooManyItems> {
    let blank = |line: &[u8]| line.iter().all(u8::is_ascii_whitespace);
    let count = body.split(|&b| b == b'\n').filter(|l| !blank(l)).count();
    if count > max_items {
        return Err(TooManyItems { max: max_items });
    }
    Ok(body
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !blank(line))
        .map(|(index, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = std::str::from_utf8(line).map_err(|e| IntakeError::LineNotUtf8 {
                column: e.valid_up_to() + 1,
            });
            (index + 1, text)
        })
        .collect())
}

/// Parse each non-blank line with `parse_line`, each item at its line number (from 1).
fn parse_lines(
    body: &[u8],
    max_items: usize,
    parse_line: impl Fn(&str) -> Result<Alert, IntakeError>,
) -> Result<Vec<Item>, TooManyItems> {
    Ok(lines(body, max_items)?
        .into_iter()
        .map(|(n, line)| Item::new(Position::Line(n), line.and_then(&parse_line)))
        .collect())
}

/// A title from free text: its first non-blank line, trimmed, cut to [`MAX_TITLE_CHARS`].
fn title_from(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    truncate_chars(line, MAX_TITLE_CHARS).to_string()
}

/// The first `max` characters of `text`.
fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// A short quotation of input for an error message: at most 60 characters, in quotes.
fn quote(text: &str) -> String {
    let short = truncate_chars(text, 60);
    if short.len() < text.len() {
        format!("'{short}…'")
    } else {
        format!("'{short}'")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn severity_names_are_their_names() {
        let names: Vec<&str> = super::Severity::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, super::Severity::NAMES);
    }

    use super::*;

    #[test]
    fn severity_names_round_trip_and_aliases_parse() {
        for severity in Severity::ALL {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
            assert_eq!(severity.to_string(), severity.as_str());
        }
        assert_eq!(Severity::parse("Informational"), Some(Severity::Info));
        assert_eq!(Severity::parse("WARNING"), Some(Severity::Medium));
        assert_eq!(Severity::parse("error"), Some(Severity::High));
        assert_eq!(Severity::parse(" crit "), Some(Severity::Critical));
        assert_eq!(Severity::parse("3"), Some(Severity::High));
        assert_eq!(Severity::parse("severe"), None);
        assert!(Severity::Info < Severity::Critical);
        assert_eq!(
            serde_json::to_value(Severity::High).ok(),
            Some(serde_json::json!("high"))
        );
    }

    #[test]
    fn formats_by_name() {
        assert_eq!(Format::from_name("json"), Some(Format::Json));
        assert_eq!(Format::from_name("NDJSON"), Some(Format::Json));
        assert_eq!(Format::from_name("passivedns"), Some(Format::PassiveDns));
        assert_eq!(Format::from_name("syslog"), Some(Format::Syslog));
        assert_eq!(Format::from_name("csv"), None);
        for name in Format::NAMES {
            let format = Format::from_name(name);
            assert!(format.is_some(), "{name}");
        }
        assert_eq!(Format::PassiveDns.name(), "passivedns");
    }

    #[test]
    fn positions_display_and_serialize() {
        let bad = IntakeError::NotAnObject("a number");
        let error = ItemError::new(Position::Line(3), bad.clone());
        assert_eq!(error.to_string(), "line 3: expected a JSON object, got a number");
        assert_eq!(
            ItemError::new(Position::Item(2), bad.clone()).to_string(),
            "item 2: expected a JSON object, got a number"
        );
        assert_eq!(
            ItemError::new(Position::Body, bad).to_string(),
            "body: expected a JSON object, got a number"
        );
        assert_eq!(
            serde_json::to_value(&error).ok(),
            Some(
                serde_json::json!({"position": {"at": "line", "n": 3}, "message": "expected a JSON object, got a number"})
            )
        );
        assert_eq!(
            serde_json::to_value(Position::Body).ok(),
            Some(serde_json::json!({"at": "body"}))
        );
    }

    #[test]
    fn non_utf8_is_the_error_of_its_line_or_of_a_json_document() {
        for (format, at) in [
            (Format::Json, Position::Body),
            (Format::PassiveDns, Position::Line(1)),
            (Format::Syslog, Position::Line(1)),
        ] {
            let results = parse(format, b"{\"title\": \"caf\xe9\"}", "test");
            assert_eq!(results.len(), 1);
            let error = results[0]
                .as_ref()
                .err()
                .map(|e| (e.position, e.error.to_string().contains("UTF-8")));
            assert_eq!(error, Some((at, true)), "{format}");
        }
        // In NDJSON only the bad line is refused.
        let results = parse(
            Format::Json,
            b"{\"a\": 1}\n{\"title\": \"caf\xe9\"}\n{\"b\": 2}\n",
            "test",
        );
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        let e = results[1].as_ref().unwrap_err();
        assert_eq!(e.position, Position::Line(2));
        assert!(
            e.error
                .to_string()
                .contains("not valid UTF-8 (bad byte at column 15)"),
            "{e}"
        );
    }

    #[test]
    fn items_are_counted_while_parsing() {
        let array = format!("[{}]", vec!["{}"; 1000].join(","));
        assert_eq!(
            parse_bounded(Format::Json, array.as_bytes(), "t", 999),
            Err(TooManyItems { max: 999 })
        );
        assert_eq!(
            parse_bounded(Format::Json, array.as_bytes(), "t", 1000)
                .unwrap()
                .len(),
            1000
        );
        let ndjson = "{}\n".repeat(1000);
        assert!(parse_bounded(Format::Json, ndjson.as_bytes(), "t", 999).is_err());
        let lines = "a\n".repeat(50);
        assert!(parse_bounded(Format::Syslog, lines.as_bytes(), "t", 49).is_err());
        assert_eq!(
            parse_bounded(Format::Syslog, lines.as_bytes(), "t", 50)
                .unwrap()
                .len(),
            50
        );
    }

    #[test]
    fn an_alert_nested_too_deep_is_refused_alone() {
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(70), "]".repeat(70));
        let body = format!("{{\"title\": \"ok\"}}\n{deep}\n");
        let results = parse(Format::Json, body.as_bytes(), "t");
        assert!(results[0].is_ok());
        let e = results[1].as_ref().unwrap_err();
        assert!(e.to_string().contains("nested more than 64 levels"), "{e}");
    }

    #[test]
    fn empty_and_blank_bodies_have_no_items() {
        for format in [Format::Json, Format::PassiveDns, Format::Syslog] {
            assert!(parse(format, b"", "test").is_empty(), "{format}");
            assert!(parse(format, b"  \n\r\n\t\n", "test").is_empty(), "{format}");
        }
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let body = "\n<34>Oct 11 22:14:15 mymachine su: one\n\n   \nnot syslog\n";
        let results = parse(Format::Syslog, body.as_bytes(), "test");
        assert_eq!(results.len(), 2);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().err().map(|e| e.position),
            Some(Position::Line(5))
        );
    }

    #[test]
    fn titles_are_one_line_and_cut_on_a_char_boundary() {
        assert_eq!(title_from("\n  first line  \nsecond"), "first line");
        let long = "é".repeat(300);
        let title = title_from(&long);
        assert_eq!(title.chars().count(), MAX_TITLE_CHARS);
        assert_eq!(quote("short"), "'short'");
        assert!(quote(&"x".repeat(100)).ends_with("…'"));
    }

    #[test]
    fn every_item_has_its_position_good_or_bad() {
        let body = "{\"title\": \"one\"}\n\n{\"title\": \"two\"}\nnot json\n";
        let items = parse_items(Format::Json, body.as_bytes(), "test");
        let positions: Vec<(Position, bool)> = items.iter().map(|i| (i.position, i.alert.is_ok())).collect();
        assert_eq!(
            positions,
            [
                (Position::Line(1), true),
                (Position::Line(3), true),
                (Position::Line(4), false)
            ]
        );
        let items = parse_items(Format::Json, b"[{}, 1]", "test");
        assert_eq!(items[1].position, Position::Item(1));
        assert!(items[1].alert.is_err());
    }
}
