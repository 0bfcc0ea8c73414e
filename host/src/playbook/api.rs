//! The stateless half of the playbook API: data handling a SOAR script does all day (JSON,
//! map lookups, strings, regular expressions, base64, hashes, time parsing and formatting).
//! None of these has an effect or a nondeterministic result, so none is a journaled step.
//! The effectful half (`invoke`, `sleep`, `now`, `random`, `log`) lives in `engine.rs`.
//! PLAYBOOKS.md documents both, with examples.

use super::json;
use base64::Engine as _;
use rhai::packages::{
    BasicArrayPackage, BasicBlobPackage, BasicMapPackage, BasicMathPackage, BitFieldPackage, CorePackage,
    LogicPackage, MoreStringPackage, Package,
};
use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map, Module, NativeCallContext, Shared};
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

pub(super) use json::from_json_value;

/// The string limit of the running script (`max_string_bytes`).
fn max_string(ctx: &NativeCallContext) -> usize {
    match ctx.engine().max_string_size() {
        0 => usize::MAX,
        n => n,
    }
}

/// The array limit of the running script (`max_array_len`).
fn max_array(ctx: &NativeCallContext) -> usize {
    match ctx.engine().max_array_size() {
        0 => usize::MAX,
        n => n,
    }
}

/// Refuse to build a string of `len` bytes over the limit, before building it.
pub(super) fn check_size(ctx: &NativeCallContext, function: &str, len: usize) -> Result<()> {
    let max = max_string(ctx);
    if len > max {
        return Err(Box::new(EvalAltResult::ErrorDataTooLarge(
            format!("{function}: a string of {len} bytes (limit max_string_bytes is {max})"),
            ctx.call_position(),
        )));
    }
    Ok(())
}

/// Refuse to build an array of `len` items over the limit, before building it.
fn check_len(ctx: &NativeCallContext, function: &str, len: usize) -> Result<()> {
    let max = max_array(ctx);
    if len > max {
        return Err(Box::new(EvalAltResult::ErrorDataTooLarge(
            format!("{function}: an array of more than {max} items (limit max_array_len)"),
            ctx.call_position(),
        )));
    }
    Ok(())
}

/// A value as text, as Rhai shows it, after checking that its JSON fits the string limit
/// (an array of many references to one big string is small until shown).
pub(super) fn display(ctx: &NativeCallContext, function: &str, v: &Dynamic) -> Result<String> {
    if v.is_string() {
        return Ok(v.clone().into_string().unwrap_or_default());
    }
    if v.is_array() || v.is_map() || v.is_blob() {
        json::to_json_value(v, max_string(ctx)).map_err(|e| format!("{function}: {e}"))?;
    }
    Ok(v.to_string())
}

/// `shown` as text for `format_time`, stopping at the string limit.
fn format_bounded(ctx: &NativeCallContext, format: &str, shown: impl std::fmt::Display) -> Result<String> {
    struct Bounded(String, usize);
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            if self.0.len() + s.len() > self.1 {
                return Err(std::fmt::Error);
            }
            self.0.push_str(s);
            Ok(())
        }
    }
    let mut out = Bounded(String::new(), max_string(ctx));
    std::fmt::write(&mut out, format_args!("{shown}")).map_err(|_| {
        format!(
            "format_time: bad format '{}', or a result over max_string_bytes",
            quoted(format)
        )
    })?;
    Ok(out.0)
}

/// `text` for an error message: at most 200 characters of it.
pub(crate) fn quoted(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}... ({} bytes)", &text[..i], text.len()),
        None => text.to_owned(),
    }
}

/// `v` as `to_string` or `to_debug` shows it, or a note if it is too big to show.
fn shown(ctx: &NativeCallContext, function: &str, v: Dynamic) -> String {
    match json::to_json_value(&v, max_string(ctx)) {
        Err(e) => format!("<{} too big to show: {e}>", v.type_name()),
        Ok(_) if function == "to_debug" => format!("{v:?}"),
        Ok(_) => v.to_string(),
    }
}

/// Where a string replacement would grow `text` to: its length after replacing `count`
/// occurrences of `from` bytes by `to` bytes.
fn replaced_len(text: &str, count: usize, from: usize, to: usize) -> usize {
    (text.len() - count * from).saturating_add(count.saturating_mul(to))
}

/// `text.replace(find, with)`, checked against the string limit first.
fn replace_checked(
    ctx: &NativeCallContext,
    text: &mut ImmutableString,
    find: &str,
    with: &str,
) -> Result<()> {
    let count = if find.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(find).count()
    };
    check_size(ctx, "replace", replaced_len(text, count, find.len(), with.len()))?;
    *text = text.replace(find, with).into();
    Ok(())
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
                crate::nesting::check_text(text.as_bytes(), crate::nesting::MAX_DEPTH)
                    .map_err(|e| format!("parse_json: the JSON is {e}"))?;
                let v: Value = serde_json::from_str(text).map_err(|e| format!("parse_json: {e}"))?;
                from_json_value(&v)
            });
            m.set_native_fn(
                "to_json",
                |ctx: NativeCallContext, v: Dynamic| -> Result<String> {
                    json::to_json_text(&v, max_string(&ctx), false)
                        .map_err(|e| format!("to_json: {e}").into())
                },
            );
            m.set_native_fn(
                "to_json_pretty",
                |ctx: NativeCallContext, v: Dynamic| -> Result<String> {
                    json::to_json_text(&v, max_string(&ctx), true)
                        .map_err(|e| format!("to_json_pretty: {e}").into())
                },
            );
            // Showing an array or a map (`print`, `${x}`, `"" + x`): checked before the text
            // is built. These must answer with text (Rhai shows the value whole if they
            // fail), so a value too big to show is shown as a note saying why.
            for name in ["to_string", "to_debug"] {
                m.set_native_fn(
                    name,
                    move |ctx: NativeCallContext, v: &mut Array| -> Result<String> {
                        Ok(shown(&ctx, name, Dynamic::from_array(v.clone())))
                    },
                );
                m.set_native_fn(
                    name,
                    move |ctx: NativeCallContext, v: &mut Map| -> Result<String> {
                        Ok(shown(&ctx, name, Dynamic::from_map(v.clone())))
                    },
                );
            }

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
            m.set_native_fn(
                "join",
                |ctx: NativeCallContext, items: Array, sep: &str| -> Result<String> {
                    let mut out = String::new();
                    for (i, d) in items.iter().enumerate() {
                        let text = display(&ctx, "join", d)?;
                        let sep = if i == 0 { "" } else { sep };
                        check_size(&ctx, "join", out.len() + sep.len() + text.len())?;
                        out.push_str(sep);
                        out.push_str(&text);
                    }
                    Ok(out)
                },
            );
            m.set_native_fn("lines", |ctx: NativeCallContext, text: &str| -> Result<Array> {
                check_len(&ctx, "lines", text.lines().count())?;
                Ok(text.lines().map(|l| Dynamic::from(l.to_string())).collect())
            });
            // Rhai's own `replace`, checked before the string grows (`s.replace("", s)`).
            m.set_native_fn(
                "replace",
                |ctx: NativeCallContext, text: &mut ImmutableString, find: &str, with: &str| -> Result<()> {
                    replace_checked(&ctx, text, find, with)
                },
            );
            m.set_native_fn(
                "replace",
                |ctx: NativeCallContext, text: &mut ImmutableString, find: &str, with: char| -> Result<()> {
                    replace_checked(&ctx, text, find, with.encode_utf8(&mut [0; 4]))
                },
            );
            m.set_native_fn(
                "replace",
                |ctx: NativeCallContext, text: &mut ImmutableString, find: char, with: &str| -> Result<()> {
                    replace_checked(&ctx, text, find.encode_utf8(&mut [0; 4]), with)
                },
            );

            // Regular expressions
            m.set_native_fn("regex_match", |text: &str, pattern: &str| -> Result<bool> {
                Ok(regex(pattern)?.is_match(text))
            });
            m.set_native_fn("regex_find", |text: &str, pattern: &str| -> Result<Dynamic> {
                Ok(regex(pattern)?
                    .find(text)
                    .map_or(Dynamic::UNIT, |m| m.as_str().to_string().into()))
            });
            m.set_native_fn(
                "regex_find_all",
                |ctx: NativeCallContext, text: &str, pattern: &str| -> Result<Array> {
                    let re = regex(pattern)?;
                    check_len(&ctx, "regex_find_all", re.find_iter(text).count())?;
                    Ok(re
                        .find_iter(text)
                        .map(|m| Dynamic::from(m.as_str().to_string()))
                        .collect())
                },
            );
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
                |ctx: NativeCallContext, text: &str, pattern: &str, with: &str| -> Result<String> {
                    // Built match by match, so `regex_replace(s, "", s)` stops at the limit.
                    let re = regex(pattern)?;
                    let (mut out, mut last) = (String::new(), 0);
                    for caps in re.captures_iter(text) {
                        let whole = caps.get(0).expect("group 0 is the match");
                        out.push_str(&text[last..whole.start()]);
                        caps.expand(with, &mut out);
                        last = whole.end();
                        check_size(&ctx, "regex_replace", out.len() + text.len() - last)?;
                    }
                    out.push_str(&text[last..]);
                    Ok(out)
                },
            );

            // Encodings and hashes
            m.set_native_fn(
                "base64_encode",
                |ctx: NativeCallContext, text: &str| -> Result<String> {
                    check_size(&ctx, "base64_encode", text.len().div_ceil(3) * 4)?;
                    Ok(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
                },
            );
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
            m.set_native_fn(
                "url_encode",
                |ctx: NativeCallContext, text: &str| -> Result<String> {
                    check_size(&ctx, "url_encode", text.len().saturating_mul(3))?;
                    Ok(url::form_urlencoded::byte_serialize(text.as_bytes()).collect())
                },
            );

            // Time: Unix milliseconds in, text out and back.
            m.set_native_fn(
                "format_time",
                |ctx: NativeCallContext, ms: i64, format: &str| -> Result<String> {
                    format_bounded(&ctx, format, datetime(ms)?.format(format))
                },
            );
            m.set_native_fn(
                "format_time",
                |ctx: NativeCallContext, ms: i64, format: &str, tz: &str| -> Result<String> {
                    let zone = parse_zone(tz)?;
                    format_bounded(&ctx, format, datetime(ms)?.with_timezone(&zone).format(format))
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
                            "parse_iso: '{}' is not an RFC 3339 time such as 2026-11-23T16:00:00Z",
                            quoted(text)
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
                    "parse_time: '{}' does not match the format '{}'",
                    quoted(text),
                    quoted(format)
                ))
            });
            m.set_native_fn("parse_duration", |text: &str| -> Result<i64> {
                humantime::parse_duration(text)
                    .map(|d| d.as_millis() as i64)
                    .map_err(|e| format!("parse_duration: '{}': {e}", quoted(text)).into())
            });

            super::report::register(&mut m);
            m.build_index();
            Shared::new(m)
        })
        .clone()
}
