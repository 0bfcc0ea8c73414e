//! Rhai values to JSON and back, bounded: at most [`MAX_DEPTH`] levels and a byte budget
//! counted while converting, so a hostile value (an array nested thousands deep, an array of
//! a hundred thousand references to one big string) is refused before it is built.

use crate::nesting::MAX_DEPTH;
use rhai::{Array, Blob, Dynamic, EvalAltResult, Map};
use serde_json::Value;
use std::io::Write;

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Why a value cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the value is nested more than {MAX_DEPTH} levels deep (arrays and maps inside each other)")]
    TooDeep,
    #[error("the value is larger than {0} bytes as JSON")]
    TooLarge(usize),
}

impl From<JsonError> for Box<EvalAltResult> {
    fn from(e: JsonError) -> Self {
        e.to_string().into()
    }
}

/// JSON to a Rhai value (JSON from Osprey is at most [`crate::nesting::STORED_DEPTH`] deep).
pub fn from_json_value(v: &Value) -> Result<Dynamic> {
    crate::nesting::check(v, crate::nesting::STORED_DEPTH).map_err(|e| e.to_string())?;
    rhai::serde::to_dynamic(v)
}

/// A Rhai value to JSON, at most [`MAX_DEPTH`] deep and about `max_bytes` long as text.
pub fn to_json_value(v: &Dynamic, max_bytes: usize) -> std::result::Result<Value, JsonError> {
    let mut budget = max_bytes;
    convert(v, 0, &mut budget, max_bytes)
}

/// Take `n` bytes from the budget.
fn spend(budget: &mut usize, n: usize, max: usize) -> std::result::Result<(), JsonError> {
    *budget = budget.checked_sub(n).ok_or(JsonError::TooLarge(max))?;
    Ok(())
}

fn convert(
    v: &Dynamic,
    depth: usize,
    budget: &mut usize,
    max: usize,
) -> std::result::Result<Value, JsonError> {
    if let Some(items) = v.read_lock::<Array>() {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        spend(budget, 2 + items.len(), max)?;
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            out.push(convert(item, depth + 1, budget, max)?);
        }
        return Ok(Value::Array(out));
    }
    if let Some(map) = v.read_lock::<Map>() {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        spend(budget, 2 + map.len(), max)?;
        let mut out = serde_json::Map::with_capacity(map.len());
        for (k, item) in map.iter() {
            spend(budget, k.len() + 3, max)?;
            out.insert(k.to_string(), convert(item, depth + 1, budget, max)?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(blob) = v.read_lock::<Blob>() {
        if depth >= MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        spend(budget, 2 + blob.len() * 2, max)?;
        return Ok(Value::Array(blob.iter().map(|b| Value::from(*b)).collect()));
    }
    if v.is_string() {
        let s = v
            .read_lock::<rhai::ImmutableString>()
            .map(|s| s.clone())
            .unwrap_or_default();
        spend(budget, s.len() + 2, max)?;
        return Ok(Value::String(s.to_string()));
    }
    spend(budget, 8, max)?;
    // A scalar: unit, bool, integer, float, char, function pointer.
    Ok(rhai::serde::from_dynamic::<Value>(v).unwrap_or(Value::Null))
}

/// Which data limit `v` is over, counted as Rhai counts (items of all arrays, entries of
/// all maps, bytes of all strings inside it), if any.
pub fn over_limits(v: &Dynamic, limits: &super::ScriptLimits) -> Option<String> {
    /// By recursion: a replay runs on a stack as deep as its values can be.
    fn add(v: &Dynamic, sizes: &mut (usize, usize, usize)) {
        if let Some(items) = v.read_lock::<Array>() {
            sizes.0 += items.len();
            items.iter().for_each(|i| add(i, sizes));
        } else if let Some(map) = v.read_lock::<Map>() {
            sizes.1 += map.len();
            map.values().for_each(|i| add(i, sizes));
        } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            sizes.2 += s.len();
        }
    }
    let mut sizes = (0, 0, 0);
    add(v, &mut sizes);
    let (arrays, maps, strings) = sizes;
    if strings > limits.max_string_bytes {
        Some(format!(
            "{strings} bytes of strings; limit max_string_bytes is {}",
            limits.max_string_bytes
        ))
    } else if arrays > limits.max_array_len {
        Some(format!(
            "{arrays} array items; limit max_array_len is {}",
            limits.max_array_len
        ))
    } else if maps > limits.max_map_len {
        Some(format!(
            "{maps} map entries; limit max_map_len is {}",
            limits.max_map_len
        ))
    } else {
        None
    }
}

/// JSON text of `v`, at most `max_bytes` long.
pub fn to_json_text(v: &Dynamic, max_bytes: usize, pretty: bool) -> std::result::Result<String, JsonError> {
    let value = to_json_value(v, max_bytes)?;
    let mut out = Bounded {
        buf: Vec::new(),
        max: max_bytes,
    };
    let written = if pretty {
        serde_json::to_writer_pretty(&mut out, &value)
    } else {
        serde_json::to_writer(&mut out, &value)
    };
    written.map_err(|_| JsonError::TooLarge(max_bytes))?;
    Ok(String::from_utf8(out.buf).expect("serde_json writes UTF-8"))
}

/// Length of `v` as JSON text, without building the text.
pub fn json_len(v: &Value) -> usize {
    struct Count(usize);
    impl Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// The first `max` bytes (about) of `v` as JSON text, without building the rest.
pub fn preview(v: &Value, max: usize) -> String {
    let mut out = Bounded { buf: Vec::new(), max };
    if serde_json::to_writer(&mut out, v).is_err() {
        // Cut where the writer stopped, on a character boundary.
        let mut text = String::from_utf8_lossy(&out.buf).into_owned();
        while text.ends_with('\u{fffd}') {
            text.pop();
        }
        return text + "…";
    }
    String::from_utf8(out.buf).expect("serde_json writes UTF-8")
}

/// A writer that refuses to grow past `max` bytes.
struct Bounded {
    buf: Vec<u8>,
    max: usize,
}

impl Write for Bounded {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let room = self.max - self.buf.len();
        if b.len() > room {
            // Keep what fits (for a preview), and refuse the rest.
            self.buf.extend_from_slice(&b[..room]);
            return Err(std::io::Error::other("too large"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_size_are_bounded_while_converting() {
        let mut v = Dynamic::from(1_i64);
        for _ in 0..MAX_DEPTH {
            v = Dynamic::from_array(vec![v]);
        }
        assert!(to_json_value(&v, 1 << 20).is_ok());
        let deeper = Dynamic::from_array(vec![v]);
        assert_eq!(to_json_value(&deeper, 1 << 20), Err(JsonError::TooDeep));

        // 100,000 references to one 1 MB string: 100 GB as JSON, refused at about 2 MB.
        let big = Dynamic::from("x".repeat(1 << 20));
        let many = Dynamic::from_array(vec![big; 100_000]);
        assert_eq!(to_json_value(&many, 2 << 20), Err(JsonError::TooLarge(2 << 20)));

        let small = Dynamic::from_array(vec![Dynamic::from("ab"), Dynamic::from(1_i64)]);
        assert_eq!(to_json_text(&small, 100, false).unwrap(), r#"["ab",1]"#);
        assert_eq!(to_json_text(&small, 5, false), Err(JsonError::TooLarge(5)));
        assert_eq!(json_len(&serde_json::json!(["ab", 1])), 8);
    }
}
