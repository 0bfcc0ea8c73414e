//! JSON input: one object, an array of objects, or NDJSON (one object per line).
//!
//! Recognized keys (every key is kept in `data` all the same): "source"; "title", else
//! "message", else "name"; "severity" (a name or a level 0-4); "time", "timestamp" or
//! "occurred_at" (RFC 3339, or Unix seconds or milliseconds).

use super::{Alert, IntakeError, Item, Position, Severity, TooManyItems, extract_observables, title_from};
use crate::nesting::MAX_DEPTH;
use chrono::DateTime;
use serde_json::{Map, Value};

/// The keys that may hold when the alert happened, in the order they are looked at.
const TIME_KEYS: [&str; 3] = ["time", "timestamp", "occurred_at"];

/// A number below this is Unix seconds; at or above it, Unix milliseconds (1e11 seconds is
/// in the year 5138; 1e11 milliseconds is in 1973).
const SECONDS_BELOW: f64 = 1e11;

/// The latest time accepted: 9999-12-31T23:59:59.999Z, in Unix milliseconds.
const MAX_MILLIS: f64 = 253_402_300_799_999.0;

/// Parse a JSON body. The first non-blank byte decides: `[` is an array of objects, `{` is
/// one object or NDJSON, anything else is an error for the whole body.
pub(super) fn parse(body: &[u8], default_source: &str, max_items: usize) -> Result<Vec<Item>, TooManyItems> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => Ok(Vec::new()),
        Some(b'[') => parse_array(body, default_source, max_items),
        Some(b'{') => parse_object_or_ndjson(body, default_source, max_items),
        Some(_) => Ok(vec![Item::failed(Position::Body, IntakeError::NotJson)]),
    }
}

/// The elements of a JSON array, refused as soon as there are more than `max`.
struct BoundedArray<'a> {
    max: usize,
    too_many: &'a std::cell::Cell<bool>,
}

impl<'de> serde::de::Visitor<'de> for BoundedArray<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Value>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            if items.len() == self.max {
                self.too_many.set(true);
                return Err(serde::de::Error::custom("too many items"));
            }
            items.push(item);
        }
        Ok(items)
    }
}

fn parse_array(body: &[u8], default_source: &str, max_items: usize) -> Result<Vec<Item>, TooManyItems> {
    if let Err(e) = std::str::from_utf8(body) {
        return Ok(vec![Item::failed(Position::Body, not_utf8(&e))]);
    }
    let too_many = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde::Deserializer::deserialize_seq(
        &mut de,
        BoundedArray {
            max: max_items,
            too_many: &too_many,
        },
    )
    .and_then(|items| de.end().map(|()| items));
    let items = match parsed {
        Ok(items) => items,
        Err(_) if too_many.get() => return Err(TooManyItems { max: max_items }),
        Err(e) => {
            return Ok(vec![Item::failed(
                Position::Body,
                IntakeError::InvalidArray(e.to_string()),
            )]);
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| Item::new(Position::Item(index), alert_from_value(item, default_source)))
        .collect())
}

fn not_utf8(e: &std::str::Utf8Error) -> IntakeError {
    IntakeError::BodyNotUtf8 {
        offset: e.valid_up_to(),
    }
}

/// The whole body as one object; failing that, NDJSON when the first line stands on its own
/// (it is a complete value, or is broken in itself rather than cut short). A first line that
/// is cut short is the start of a multi-line document, and the body's error is reported.
fn parse_object_or_ndjson(
    body: &[u8],
    default_source: &str,
    max_items: usize,
) -> Result<Vec<Item>, TooManyItems> {
    let whole_error = match std::str::from_utf8(body) {
        Ok(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => {
                return Ok(vec![Item::new(
                    Position::Body,
                    alert_from_value(value, default_source),
                )]);
            }
            Err(e) => IntakeError::InvalidJson(e.to_string()),
        },
        Err(e) => not_utf8(&e),
    };
    let lines = super::lines(body, max_items)?;
    let first_stands_alone = match lines.first() {
        Some((_, Ok(first))) => {
            serde_json::from_str::<serde::de::IgnoredAny>(first).map_or_else(|e| !e.is_eof(), |_| true)
        }
        // Not UTF-8: broken in itself.
        Some((_, Err(_))) => true,
        None => false,
    };
    if first_stands_alone && lines.len() > 1 {
        Ok(lines
            .into_iter()
            .map(|(n, line)| {
                let alert = line.and_then(|line| {
                    serde_json::from_str(line)
                        .map_err(|e| describe_line_error(&e))
                        .and_then(|value| alert_from_value(value, default_source))
                });
                Item::new(Position::Line(n), alert)
            })
            .collect())
    } else {
        Ok(vec![Item::failed(Position::Body, whole_error)])
    }
}

/// serde_json's message for an error in a single line, with the column but without the
/// "line 1" that would contradict the position.
fn describe_line_error(error: &serde_json::Error) -> IntakeError {
    let message = error.to_string();
    let location = format!(" at line {} column {}", error.line(), error.column());
    let message = message.strip_suffix(&location).unwrap_or(&message);
    IntakeError::InvalidJson(format!("{message} at column {}", error.column()))
}

/// One item: it must be an object, at most [`MAX_DEPTH`] deep.
fn alert_from_value(value: Value, default_source: &str) -> Result<Alert, IntakeError> {
    crate::nesting::check(&value, MAX_DEPTH)?;
    match value {
        Value::Object(object) => alert_from_object(object, default_source),
        other => Err(IntakeError::NotAnObject(kind(&other))),
    }
}

fn alert_from_object(object: Map<String, Value>, default_source: &str) -> Result<Alert, IntakeError> {
    let source = text_field(&object, "source")
        .unwrap_or(default_source)
        .to_string();
    let title = ["title", "message", "name"]
        .into_iter()
        .find_map(|key| text_field(&object, key))
        .map(title_from)
        .unwrap_or_else(|| format!("alert from {source}"));
    let severity = severity(object.get("severity"))?;
    let occurred_at = occurred_at(&object)?;
    let data = Value::Object(object);
    let observables = extract_observables(&data);
    Ok(Alert {
        source,
        title,
        severity,
        occurred_at,
        data,
        observables,
        raw: None,
    })
}

/// A string field that is not blank, trimmed.
fn text_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

/// "severity": a name ([`Severity::parse`]) or a level 0-4; absent or null is low.
fn severity(value: Option<&Value>) -> Result<Severity, IntakeError> {
    match value {
        None | Some(Value::Null) => Ok(Severity::Low),
        Some(Value::String(name)) => {
            Severity::parse(name).ok_or_else(|| IntakeError::UnknownSeverity(name.clone()))
        }
        Some(Value::Number(level)) => level
            .as_u64()
            .and_then(Severity::from_level)
            .ok_or_else(|| IntakeError::SeverityOutOfRange(level.clone())),
        Some(other) => Err(IntakeError::SeverityNotNameOrLevel(kind(other))),
    }
}

/// The first of "time", "timestamp" and "occurred_at" that is present and not null.
fn occurred_at(object: &Map<String, Value>) -> Result<Option<i64>, IntakeError> {
    for key in TIME_KEYS {
        match object.get(key) {
            None | Some(Value::Null) => continue,
            Some(value) => return parse_time(key, value).map(Some),
        }
    }
    Ok(None)
}

/// An RFC 3339 date, or a number (or numeric string) of Unix seconds or milliseconds, to
/// Unix milliseconds.
fn parse_time(key: &'static str, value: &Value) -> Result<i64, IntakeError> {
    let number = match value {
        Value::String(text) => {
            let text = text.trim();
            if let Ok(time) = DateTime::parse_from_rfc3339(text) {
                return Ok(time.timestamp_millis());
            }
            text.parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| IntakeError::TimeText {
                    key,
                    text: text.to_owned(),
                })?
        }
        Value::Number(number) => number.as_f64().ok_or_else(|| IntakeError::TimeNumber {
            key,
            number: number.clone(),
        })?,
        other => {
            return Err(IntakeError::TimeKind {
                key,
                kind: kind(other),
            });
        }
    };
    let millis = if number.abs() < SECONDS_BELOW {
        number * 1000.0
    } else {
        number
    };
    if millis.abs() > MAX_MILLIS {
        return Err(IntakeError::TimeOutOfRange { key, number });
    }
    Ok(millis.round() as i64)
}

/// What a JSON value is, for messages: "a number", "an array"...
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{Format, ItemError, parse as parse_body};
    use serde_json::json;

    fn parse(body: &str) -> Vec<Result<Alert, ItemError>> {
        parse_body(Format::Json, body.as_bytes(), "webhook")
    }

    fn one(body: &str) -> Alert {
        let mut results = parse(body);
        assert_eq!(results.len(), 1, "{results:?}");
        match results.remove(0) {
            Ok(alert) => alert,
            Err(e) => panic!("expected an alert, got {e}"),
        }
    }

    fn one_error(body: &str) -> ItemError {
        let mut results = parse(body);
        assert_eq!(results.len(), 1, "{results:?}");
        match results.remove(0) {
            Ok(alert) => panic!("expected an error, got {alert:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_single_object() {
        let body = r#"{
            "source": "edr",
            "title": "Malware detected on host-7",
            "severity": "high",
            "time": "2024-05-01T12:00:00Z",
            "host": {"ip": "10.1.2.3"},
            "file": {"name": "invoice.exe", "sha256": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"}
        }"#;
        let alert = one(body);
        assert_eq!(alert.source, "edr");
        assert_eq!(alert.title, "Malware detected on host-7");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, Some(1_714_564_800_000));
        assert_eq!(alert.data["host"]["ip"], "10.1.2.3");
        assert_eq!(alert.data["file"]["name"], "invoice.exe");
        assert_eq!(alert.observables.ips, vec!["10.1.2.3"]);
        assert_eq!(
            alert.observables.sha256,
            vec!["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]
        );
        assert!(alert.observables.domains.is_empty());
        assert_eq!(alert.raw, None);
    }

    #[test]
    fn defaults_when_keys_are_missing() {
        let alert = one(r#"{"user": "bob"}"#);
        assert_eq!(alert.source, "webhook");
        assert_eq!(alert.title, "alert from webhook");
        assert_eq!(alert.severity, Severity::Low);
        assert_eq!(alert.occurred_at, None);
        assert_eq!(alert.data, json!({"user": "bob"}));
    }

    #[test]
    fn title_falls_back_to_message_then_name() {
        assert_eq!(
            one(r#"{"message": "from message", "name": "n"}"#).title,
            "from message"
        );
        assert_eq!(one(r#"{"name": "from name"}"#).title, "from name");
        assert_eq!(
            one(r#"{"title": "  ", "name": "blank title skipped"}"#).title,
            "blank title skipped"
        );
        assert_eq!(one(r#"{"title": "first\nsecond"}"#).title, "first");
    }

    #[test]
    fn an_array_with_one_bad_element() {
        let results = parse(r#"[{"title": "a"}, 42, {"title": "c"}]"#);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().map(|a| a.title.as_str()), Ok("a"));
        assert_eq!(
            results[1].as_ref().err(),
            Some(&ItemError::new(
                Position::Item(1),
                IntakeError::NotAnObject("a number")
            ))
        );
        assert_eq!(results[2].as_ref().map(|a| a.title.as_str()), Ok("c"));
    }

    #[test]
    fn a_broken_array_is_a_body_error() {
        let error = one_error(r#"[{"title": "a"}, "#);
        assert_eq!(error.position, Position::Body);
        assert!(
            error.error.to_string().starts_with("invalid JSON array"),
            "{error}"
        );
    }

    #[test]
    fn ndjson_with_a_bad_line_3() {
        let body =
            "{\"title\": \"one\"}\n{\"title\": \"two\"}\n{\"title\": \"three\",}\n\n{\"title\": \"five\"}\n";
        let results = parse(body);
        assert_eq!(results.len(), 4);
        let titles: Vec<Option<&str>> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|a| a.title.as_str()))
            .collect();
        assert_eq!(titles, vec![Some("one"), Some("two"), None, Some("five")]);
        let error = results[2].as_ref().err().cloned();
        assert_eq!(error.as_ref().map(|e| e.position), Some(Position::Line(3)));
        let message = error.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("line 3: invalid JSON: "), "{message}");
        assert!(message.contains("column"), "{message}");
        assert!(!message.contains("line 1"), "{message}");
    }

    #[test]
    fn ndjson_with_a_bad_first_line_and_a_non_object_line() {
        let results = parse("{\"title\": \"one\",}\n{\"title\": \"two\"}\n[1]\n");
        assert_eq!(results.len(), 3);
        assert_eq!(
            results[0].as_ref().err().map(|e| e.position),
            Some(Position::Line(1))
        );
        assert!(results[1].is_ok());
        assert_eq!(
            results[2].as_ref().err(),
            Some(&ItemError::new(
                Position::Line(3),
                IntakeError::NotAnObject("an array")
            ))
        );
    }

    #[test]
    fn a_broken_multi_line_object_is_one_body_error() {
        let error = one_error("{\n  \"title\": \"a\",\n  \"severity\": \n}\n");
        assert_eq!(error.position, Position::Body);
        assert!(error.error.to_string().starts_with("invalid JSON: "), "{error}");
    }

    #[test]
    fn other_bodies_are_a_body_error() {
        for body in ["42", "\"text\"", "hello", "null"] {
            assert_eq!(one_error(body).position, Position::Body, "{body}");
        }
    }

    #[test]
    fn severity_names_and_numbers() {
        let cases = [
            (json!("info"), Severity::Info),
            (json!("Critical"), Severity::Critical),
            (json!("warning"), Severity::Medium),
            (json!("error"), Severity::High),
            (json!(0), Severity::Info),
            (json!(2), Severity::Medium),
            (json!(4), Severity::Critical),
            (json!(null), Severity::Low),
        ];
        for (value, expected) in cases {
            let body = json!({"severity": value}).to_string();
            assert_eq!(one(&body).severity, expected, "{value}");
        }
    }

    #[test]
    fn unknown_severities_are_item_errors() {
        let error = one_error(r#"{"severity": "apocalyptic"}"#);
        assert_eq!(error.position, Position::Body);
        assert!(
            error.error.to_string().contains("unknown severity 'apocalyptic'"),
            "{error}"
        );
        assert!(
            one_error(r#"{"severity": 5}"#)
                .error
                .to_string()
                .contains("out of range")
        );
        assert!(
            one_error(r#"{"severity": -1}"#)
                .error
                .to_string()
                .contains("out of range")
        );
        assert!(
            one_error(r#"{"severity": true}"#)
                .error
                .to_string()
                .contains("not a boolean")
        );
        let results = parse(r#"[{"severity": "low"}, {"severity": "bogus"}]"#);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().err().map(|e| e.position),
            Some(Position::Item(1))
        );
    }

    #[test]
    fn timestamps_in_rfc3339_seconds_and_milliseconds() {
        let cases = [
            (json!({"time": "2024-05-01T12:00:00Z"}), 1_714_564_800_000),
            (
                json!({"time": "2024-05-01T14:00:00.250+02:00"}),
                1_714_564_800_250,
            ),
            (json!({"timestamp": 1_714_564_800}), 1_714_564_800_000),
            (json!({"timestamp": 1_714_564_800.5}), 1_714_564_800_500),
            (json!({"occurred_at": 1_714_564_800_123_i64}), 1_714_564_800_123),
            (json!({"time": "1714564800"}), 1_714_564_800_000),
            (
                json!({"time": null, "timestamp": 1_714_564_800}),
                1_714_564_800_000,
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(one(&body.to_string()).occurred_at, Some(expected), "{body}");
        }
    }

    #[test]
    fn bad_timestamps_are_item_errors() {
        let error = one_error(r#"{"time": "yesterday"}"#);
        assert!(
            error.error.to_string().contains("invalid time 'yesterday'"),
            "{error}"
        );
        assert!(
            one_error(r#"{"timestamp": 1e300}"#)
                .error
                .to_string()
                .contains("out of range")
        );
        assert!(
            one_error(r#"{"time": [1]}"#)
                .error
                .to_string()
                .contains("not an array")
        );
    }
}
