//! The stateless half of the playbook API: data handling a SOAR script does all day (JSON,
//! map lookups, strings, regular expressions, base64, hashes, time parsing and formatting).
//! None of these has an effect or a nondeterministic result, so none is a journaled step.
//! The effectful half (`invoke`, `sleep`, `now`, `random`, `log`) lives in `engine.rs`.
//! PLAYBOOKS.md documents both, with examples.

use base64::Engine as _;
use rhai::packages::{
    BasicArrayPackage, BasicBlobPackage, BasicMapPackage, BasicMathPackage, BitFieldPackage, CorePackage,
    LogicPackage, MoreStringPackage, Package,
};
use rhai::{Array, Dynamic, EvalAltResult, Map, Module, Shared};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Rhai's standard library without its clock (`timestamp()` would make replays diverge).
pub(super) fn packages() -> &'static [Shared<Module>] {
    static PACKAGES: OnceLock<Vec<Shared<Module>>> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        vec![
            CorePackage::new().as_shared_module(),
            BitFieldPackage::new().as_shared_module(),
            LogicPackage::new().as_shared_module(),
            BasicMathPackage::new().as_shared_module(),
            BasicArrayPackage::new().as_shared_module(),
            BasicBlobPackage::new().as_shared_module(),
            BasicMapPackage::new().as_shared_module(),
            MoreStringPackage::new().as_shared_module(),
        ]
    })
}

/// JSON to a Rhai value.
pub(super) fn from_json_value(v: &Value) -> Result<Dynamic> {
    rhai::serde::to_dynamic(v)
}

/// A Rhai value to JSON.
pub(super) fn to_json_value(v: &Dynamic) -> Result<Value> {
    rhai::serde::from_dynamic::<Value>(v)
}

fn err<T>(message: String) -> Result<T> {
    Err(message.into())
}

/// Compiled regular expressions, shared by all runs; bounded so scripts that build patterns
/// from data cannot grow it without end.
fn regex(pattern: &str) -> Result<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(pattern) {
        return Ok(r.clone());
    }
    let r = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))?;
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= 1000 {
        cache.clear();
    }
    cache.insert(pattern.to_owned(), r.clone());
    Ok(r)
}

fn parse_zone(tz: &str) -> Result<chrono_tz::Tz> {
    tz.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("'{tz}' is not an IANA time zone such as Europe/London").into())
}

fn datetime(ms: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| format!("{ms} is not a valid time in milliseconds").into())
}

/// The module of stateless functions, built once.
pub(super) fn module() -> Shared<Module> {
    static MODULE: OnceLock<Shared<Module>> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let mut m = Module::new();

            // JSON
            m.set_native_fn("parse_json", |text: &str| -> Result<Dynamic> {
                let v: Value = serde_json::from_str(text).map_err(|e| format!("parse_json: {e}"))?;
                from_json_value(&v)
            });
            m.set_native_fn("to_json", |v: Dynamic| -> Result<String> {
                Ok(serde_json::to_string(&to_json_value(&v)?).unwrap_or_default())
            });
            m.set_native_fn("to_json_pretty", |v: Dynamic| -> Result<String> {
                Ok(serde_json::to_string_pretty(&to_json_value(&v)?).unwrap_or_default())
            });

            // Maps: a dotted path with a default.
            m.set_native_fn(
                "get_path",
                |value: Dynamic, path: &str, default: Dynamic| -> Result<Dynamic> {
                    let mut current = value;
                    for part in path.split('.') {
                        let next = if let Some(map) = current.read_lock::<Map>() {
                            map.get(part).cloned()
                        } else if let Some(arr) = current.read_lock::<Array>() {
                            part.parse::<usize>().ok().and_then(|i| arr.get(i).cloned())
                        } else {
                            None
                        };
                        match next {
                            Some(v) if !v.is_unit() => current = v,
                            _ => return Ok(default),
                        }
                    }
                    Ok(current)
                },
            );

            // Strings and arrays
            m.set_native_fn("join", |items: Array, sep: &str| -> Result<String> {
                Ok(items
                    .iter()
                    .map(|d| {
                        if d.is_string() {
                            d.clone().into_string().unwrap_or_default()
                        } else {
                            d.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(sep))
            });
            m.set_native_fn("lines", |text: &str| -> Result<Array> {
                Ok(text.lines().map(|l| Dynamic::from(l.to_string())).collect())
            });

            // Regular expressions
            m.set_native_fn("regex_match", |text: &str, pattern: &str| -> Result<bool> {
                Ok(regex(pattern)?.is_match(text))
            });
            m.set_native_fn("regex_find", |text: &str, pattern: &str| -> Result<Dynamic> {
                Ok(regex(pattern)?
                    .find(text)
                    .map_or(Dynamic::UNIT, |m| m.as_str().to_string().into()))
            });
            m.set_native_fn("regex_find_all", |text: &str, pattern: &str| -> Result<Array> {
                Ok(regex(pattern)?
                    .find_iter(text)
                    .map(|m| Dynamic::from(m.as_str().to_string()))
                    .collect())
            });
            m.set_native_fn("regex_captures", |text: &str, pattern: &str| -> Result<Dynamic> {
                let re = regex(pattern)?;
                Ok(match re.captures(text) {
                    None => Dynamic::UNIT,
                    Some(c) => {
                        let groups: Array = c
                            .iter()
                            .map(|g| g.map_or(Dynamic::UNIT, |g| g.as_str().to_string().into()))
                            .collect();
                        groups.into()
                    }
                })
            });
            m.set_native_fn(
                "regex_replace",
                |text: &str, pattern: &str, with: &str| -> Result<String> {
                    Ok(regex(pattern)?.replace_all(text, with).into_owned())
                },
            );

            // Encodings and hashes
            m.set_native_fn("base64_encode", |text: &str| -> Result<String> {
                Ok(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
            });
            m.set_native_fn("base64_decode", |text: &str| -> Result<String> {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| format!("base64_decode: {e}"))?;
                String::from_utf8(bytes)
                    .map_err(|_| "base64_decode: the decoded bytes are not UTF-8 text".into())
            });
            m.set_native_fn("sha256", |text: &str| -> Result<String> {
                use sha2::Digest;
                Ok(hex::encode(sha2::Sha256::digest(text.as_bytes())))
            });
            m.set_native_fn("url_encode", |text: &str| -> Result<String> {
                Ok(url::form_urlencoded::byte_serialize(text.as_bytes()).collect())
            });

            // Time: Unix milliseconds in, text out and back.
            m.set_native_fn("format_time", |ms: i64, format: &str| -> Result<String> {
                use std::fmt::Write;
                let mut out = String::new();
                write!(out, "{}", datetime(ms)?.format(format))
                    .map_err(|_| format!("format_time: bad format '{format}'"))?;
                Ok(out)
            });
            m.set_native_fn(
                "format_time",
                |ms: i64, format: &str, tz: &str| -> Result<String> {
                    use std::fmt::Write;
                    let zone = parse_zone(tz)?;
                    let mut out = String::new();
                    write!(out, "{}", datetime(ms)?.with_timezone(&zone).format(format))
                        .map_err(|_| format!("format_time: bad format '{format}'"))?;
                    Ok(out)
                },
            );
            m.set_native_fn("to_iso", |ms: i64| -> Result<String> {
                Ok(datetime(ms)?.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            });
            m.set_native_fn("parse_iso", |text: &str| -> Result<i64> {
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map(|d| d.timestamp_millis())
                    .or_else(|_| {
                        err(format!(
                            "parse_iso: '{text}' is not an RFC 3339 time such as 2026-11-23T16:00:00Z"
                        ))
                    })
            });
            m.set_native_fn("parse_time", |text: &str, format: &str| -> Result<i64> {
                if let Ok(d) = chrono::DateTime::parse_from_str(text, format) {
                    return Ok(d.timestamp_millis());
                }
                if let Ok(d) = chrono::NaiveDateTime::parse_from_str(text, format) {
                    return Ok(d.and_utc().timestamp_millis());
                }
                if let Ok(d) = chrono::NaiveDate::parse_from_str(text, format) {
                    return Ok(d
                        .and_hms_opt(0, 0, 0)
                        .expect("midnight exists")
                        .and_utc()
                        .timestamp_millis());
                }
                err(format!(
                    "parse_time: '{text}' does not match the format '{format}'"
                ))
            });
            m.set_native_fn("parse_duration", |text: &str| -> Result<i64> {
                humantime::parse_duration(text)
                    .map(|d| d.as_millis() as i64)
                    .map_err(|e| format!("parse_duration: '{text}': {e}").into())
            });

            m.build_index();
            Shared::new(m)
        })
        .clone()
}
