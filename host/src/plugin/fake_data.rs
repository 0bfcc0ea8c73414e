//! Plausible fake data from a JSON Schema, for plugins in mock mode (`--generate`).
//!
//! Objects with their properties (every required one, most optional ones), arrays within
//! their item counts, strings in their format (`ipv4`, `email`, `date-time`, `uri`, ...) or,
//! without one, guessed from the property's name (`country`, `city`, `org`, ...), enums and
//! consts, numbers within their bounds; local `$ref`s, `allOf`, `anyOf` and `oneOf`.
//! Addresses and names are from the ranges and domains kept for documentation
//! (192.0.2.0/24, 2001:db8::/32, example.com), so fake data never names a real party.
//!
//! Deterministic: the same schema and seed give the same value (the runtime seeds with the
//! call's plugin, action and input, so a replay gets what the first call got). Bounded: at
//! most [`MAX_DEPTH`] levels of optional content, [`MAX_NODES`] values in all, a few items per
//! array and short strings. What this cannot satisfy (a `pattern`, contradicting keywords) the
//! caller finds when it validates the value against the schema.

use serde_json::{Map, Value};

/// Past this depth only what the schema requires is generated.
pub const MAX_DEPTH: usize = 8;
/// Past this depth nothing more is generated at all (a required cycle ends in null).
const HARD_DEPTH: usize = 24;
/// Values generated in one answer; past it only what is required.
pub const MAX_NODES: usize = 2000;
/// Values generated in one answer at all: past it, null (a schema that requires more than
/// this fails its validation instead of running away).
const HARD_NODES: usize = 20_000;
/// Items of an array beyond its `minItems`.
const EXTRA_ITEMS: u64 = 3;
/// Longest generated string unless `minLength` asks for more; and the most it may ask for.
const MAX_STRING: usize = 64;
const MAX_MIN_LENGTH: usize = 4096;
/// `$ref`s followed in a row before giving up.
const MAX_REFS: usize = 32;

/// A value for `schema`, the same for the same `seed`.
pub fn generate(schema: &Value, seed: u64) -> Value {
    let mut g = Gen {
        root: schema,
        rng: seed,
        nodes: 0,
    };
    g.value(schema, "", 0)
}

struct Gen<'a> {
    root: &'a Value,
    rng: u64,
    nodes: usize,
}

const COUNTRIES: &[&str] = &["NL", "US", "DE", "FR", "GB", "JP", "BR", "CA", "SE", "AU"];
const CITIES: &[&str] = &[
    "Amsterdam",
    "Berlin",
    "Lyon",
    "Osaka",
    "Toronto",
    "Melbourne",
    "Porto Alegre",
    "Uppsala",
];
const FIRST: &[&str] = &["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
const LAST: &[&str] = &["jansen", "smith", "müller", "martin", "sato", "silva", "tremblay"];
const WORDS: &[&str] = &[
    "alpha", "bravo", "delta", "echo", "falcon", "harbor", "lumen", "nimbus", "orbit", "quartz", "raven",
    "sierra", "tango", "vector",
];
const REGIONS: &[&str] = &[
    "North Holland",
    "Bavaria",
    "Ontario",
    "Kansai",
    "Victoria",
    "Brittany",
];
const ZONES: &[&str] = &["Europe/Amsterdam", "America/New_York", "Asia/Tokyo", "UTC"];

impl<'a> Gen<'a> {
    /// splitmix64: small, fast, and the same everywhere.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next() % (hi - lo + 1)
    }

    fn pick<'s>(&mut self, from: &'s [&'s str]) -> &'s str {
        from[self.next() as usize % from.len()]
    }

    /// Follow local `$ref`s (`#/...` JSON pointers into the root schema).
    fn resolve<'s>(&self, mut schema: &'s Value) -> &'s Value
    where
        'a: 's,
    {
        for _ in 0..MAX_REFS {
            let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
                return schema;
            };
            match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                Some(target) => schema = target,
                None => return schema,
            }
        }
        schema
    }

    fn value(&mut self, schema: &Value, name: &str, depth: usize) -> Value {
        self.nodes += 1;
        if depth > HARD_DEPTH || self.nodes > HARD_NODES {
            return Value::Null;
        }
        let schema = self.resolve(schema);
        let Some(obj) = schema.as_object() else {
            // `true` (or anything not an object): any value; a string reads best.
            return Value::String(self.hinted_string(name));
        };
        if let Some(c) = obj.get("const") {
            return c.clone();
        }
        if let Some(Value::Array(options)) = obj.get("enum")
            && !options.is_empty()
        {
            return options[self.next() as usize % options.len()].clone();
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            let merged = self.merge(obj, all);
            return self.value(&Value::Object(merged), name, depth);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(options)) = obj.get(key)
                && !options.is_empty()
            {
                let chosen = self.choose_option(options, depth);
                let mut merged = obj.clone();
                merged.remove(key);
                let option = self.resolve(chosen).clone();
                if let Value::Object(o) = option {
                    merged.extend(o);
                }
                return self.value(&Value::Object(merged), name, depth);
            }
        }
        match self.type_of(obj, depth) {
            "null" => Value::Null,
            "boolean" => Value::Bool(self.next().is_multiple_of(2)),
            "integer" => self.integer(obj, name),
            "number" => self.number(obj),
            "array" => self.array(obj, name, depth),
            "object" => self.object(obj, depth),
            _ => Value::String(self.string(obj, name)),
        }
    }

    /// `allOf`'s schemas and the rest of `obj` as one: properties and required lists joined,
    /// other keywords from the first that has them.
    fn merge(&self, obj: &Map<String, Value>, all: &[Value]) -> Map<String, Value> {
        let mut merged = obj.clone();
        merged.remove("allOf");
        for part in all {
            let Some(part) = self.resolve(part).as_object() else {
                continue;
            };
            for (k, v) in part {
                match (k.as_str(), merged.get_mut(k)) {
                    ("properties", Some(Value::Object(props))) => {
                        if let Value::Object(more) = v {
                            props.extend(more.clone());
                        }
                    }
                    ("required", Some(Value::Array(req))) => {
                        if let Value::Array(more) = v {
                            req.extend(more.iter().cloned());
                        }
                    }
                    (_, Some(_)) => {}
                    (_, None) => {
                        merged.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        merged
    }

    /// One of `anyOf`/`oneOf`'s options: a null one only deep down, otherwise any other.
    fn choose_option<'s>(&mut self, options: &'s [Value], depth: usize) -> &'s Value {
        let is_null = |o: &Value| self.resolve(o).get("type").and_then(Value::as_str) == Some("null");
        let (nulls, others): (Vec<&Value>, Vec<&Value>) = options.iter().partition(|o| is_null(o));
        let deep = depth >= MAX_DEPTH || self.nodes >= MAX_NODES;
        match (nulls.first(), others.is_empty()) {
            (Some(null), _) if deep => null,
            (_, false) => others[self.next() as usize % others.len()],
            _ => &options[0],
        }
    }

    /// The type to generate: the one named, or one of those listed (null only deep down), or
    /// the one its keywords imply.
    fn type_of(&mut self, obj: &Map<String, Value>, depth: usize) -> &'static str {
        const TYPES: [&str; 7] = [
            "null", "boolean", "integer", "number", "string", "array", "object",
        ];
        let known = |t: &str| TYPES.into_iter().find(|k| *k == t);
        match obj.get("type") {
            Some(Value::String(t)) => known(t).unwrap_or("string"),
            Some(Value::Array(ts)) => {
                let listed: Vec<&'static str> =
                    ts.iter().filter_map(|t| t.as_str().and_then(known)).collect();
                let deep = depth >= MAX_DEPTH || self.nodes >= MAX_NODES;
                if deep && listed.contains(&"null") {
                    return "null";
                }
                let others: Vec<&'static str> = listed.iter().copied().filter(|t| *t != "null").collect();
                match (others.is_empty(), listed.first()) {
                    (false, _) => others[self.next() as usize % others.len()],
                    (true, Some(t)) => t,
                    (true, None) => "string",
                }
            }
            _ if obj.contains_key("properties") || obj.contains_key("required") => "object",
            _ if obj.contains_key("items") || obj.contains_key("prefixItems") => "array",
            _ if obj.contains_key("minimum") || obj.contains_key("maximum") => "number",
            _ => "string",
        }
    }

    fn object(&mut self, obj: &Map<String, Value>, depth: usize) -> Value {
        let required: Vec<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let empty = Map::new();
        let props = obj.get("properties").and_then(Value::as_object).unwrap_or(&empty);
        let extra = obj.get("additionalProperties").filter(|a| a.is_object());
        let mut out = Map::new();
        for (key, schema) in props {
            let wanted = required.contains(&key.as_str())
                || (depth < MAX_DEPTH && self.nodes < MAX_NODES && !self.next().is_multiple_of(4));
            if wanted {
                let v = self.value(schema, key, depth + 1);
                out.insert(key.clone(), v);
            }
        }
        for key in required {
            if !out.contains_key(key) {
                let v = match extra {
                    Some(s) => self.value(s, key, depth + 1),
                    None => Value::String(self.hinted_string(key)),
                };
                out.insert(key.to_owned(), v);
            }
        }
        Value::Object(out)
    }

    fn array(&mut self, obj: &Map<String, Value>, name: &str, depth: usize) -> Value {
        let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0).min(64);
        let max = obj.get("maxItems").and_then(Value::as_u64).unwrap_or(u64::MAX);
        let deep = depth >= MAX_DEPTH || self.nodes >= MAX_NODES;
        let count = if deep {
            min
        } else {
            self.between(min.max(1).min(max), min.saturating_add(EXTRA_ITEMS).min(max))
        };
        let prefix: &[Value] = obj
            .get("prefixItems")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let unique = obj.get("uniqueItems") == Some(&Value::Bool(true));
        let item_name = name.strip_suffix('s').unwrap_or(name).to_owned();
        let mut items: Vec<Value> = Vec::new();
        let mut tries = 0;
        while (items.len() as u64) < count && tries < count * 4 + 4 {
            tries += 1;
            let schema = prefix
                .get(items.len())
                .or_else(|| obj.get("items"))
                .cloned()
                .unwrap_or(Value::Bool(true));
            let v = self.value(&schema, &item_name, depth + 1);
            if !(unique && items.contains(&v)) {
                items.push(v);
            }
        }
        Value::Array(items)
    }

    fn integer(&mut self, obj: &Map<String, Value>, name: &str) -> Value {
        let (lo, hi) = self.bounds(obj, name);
        let (lo, hi) = (lo.ceil() as i64, hi.floor() as i64);
        let mut v = if hi > lo {
            lo + self.between(0, hi.abs_diff(lo)) as i64
        } else {
            lo
        };
        if let Some(m) = obj.get("multipleOf").and_then(Value::as_i64).filter(|m| *m > 0) {
            v = v.div_euclid(m) * m;
            if v < lo {
                v += m;
            }
        }
        Value::from(v)
    }

    fn number(&mut self, obj: &Map<String, Value>) -> Value {
        let (lo, hi) = self.bounds(obj, "");
        let frac = (self.next() % 10_000) as f64 / 10_000.0;
        let v = ((lo + (hi - lo) * frac) * 100.0).round() / 100.0;
        let v = if v >= lo && v <= hi { v } else { (lo + hi) / 2.0 };
        serde_json::Number::from_f64(v).map_or(Value::from(0), Value::Number)
    }

    /// Inclusive bounds of a number (exclusive ones narrowed a little); 0..=1000 when the
    /// schema gives none (1..=65535 for a port).
    fn bounds(&self, obj: &Map<String, Value>, name: &str) -> (f64, f64) {
        let f = |k: &str| obj.get(k).and_then(Value::as_f64);
        const STEP: f64 = 0.01;
        // Draft 4 wrote exclusive bounds as booleans beside minimum and maximum.
        let excl = |k: &str| obj.get(k) == Some(&Value::Bool(true));
        let lo = match (f("minimum"), f("exclusiveMinimum")) {
            (_, Some(x)) => Some(
                x + if obj.get("type").and_then(Value::as_str) == Some("integer") {
                    1.0
                } else {
                    STEP
                },
            ),
            (Some(m), None) if excl("exclusiveMinimum") => Some(m + STEP),
            (m, None) => m,
        };
        let hi = match (f("maximum"), f("exclusiveMaximum")) {
            (_, Some(x)) => Some(
                x - if obj.get("type").and_then(Value::as_str) == Some("integer") {
                    1.0
                } else {
                    STEP
                },
            ),
            (Some(m), None) if excl("exclusiveMaximum") => Some(m - STEP),
            (m, None) => m,
        };
        let (dlo, dhi) = if name.to_ascii_lowercase().contains("port") {
            (1.0, 65535.0)
        } else {
            (0.0, 1000.0)
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) => (lo, hi.max(lo)),
            (Some(lo), None) => (lo, lo.max(0.0) + dhi),
            (None, Some(hi)) => (hi.min(dlo), hi),
            (None, None) => (dlo, dhi),
        }
    }

    fn string(&mut self, obj: &Map<String, Value>, name: &str) -> String {
        let mut s = match obj.get("format").and_then(Value::as_str) {
            Some(format) => self.formatted(format).unwrap_or_else(|| self.hinted_string(name)),
            None => self.hinted_string(name),
        };
        let min = obj
            .get("minLength")
            .and_then(Value::as_u64)
            .map_or(0, |m| (m as usize).min(MAX_MIN_LENGTH));
        let max = obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .map_or(MAX_STRING.max(min), |m| m as usize);
        if s.chars().count() > max {
            s = s.chars().take(max).collect();
        }
        while s.chars().count() < min {
            s.push('x');
        }
        s
    }

    /// A value in a format JSON Schema names, or `None` for a format it does not know.
    fn formatted(&mut self, format: &str) -> Option<String> {
        Some(match format {
            "ipv4" => self.ipv4(),
            "ipv6" => format!("2001:db8::{:x}", self.between(1, 0xffff)),
            "email" | "idn-email" => self.email(),
            "date-time" => self.date_time(),
            "date" => self.date_time()[..10].to_owned(),
            "time" => self.date_time()[11..].to_owned(),
            "uri" | "iri" | "url" | "uri-reference" | "iri-reference" => self.url(),
            "hostname" | "idn-hostname" => self.hostname(),
            "uuid" => {
                let (a, b) = (self.next(), self.next());
                let h = format!("{a:016x}{b:016x}");
                format!(
                    "{}-{}-4{}-a{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[13..16],
                    &h[17..20],
                    &h[20..32]
                )
            }
            "duration" => format!("PT{}M", self.between(1, 120)),
            _ => return None,
        })
    }

    fn ipv4(&mut self) -> String {
        let net = self.pick(&["192.0.2", "198.51.100", "203.0.113"]);
        format!("{net}.{}", self.between(1, 254))
    }

    fn email(&mut self) -> String {
        format!("{}.{}@example.com", self.pick(FIRST), self.pick(LAST))
    }

    fn hostname(&mut self) -> String {
        format!("{}{}.example.com", self.pick(WORDS), self.between(1, 99))
    }

    fn url(&mut self) -> String {
        format!(
            "https://{}/{}/{}",
            self.hostname(),
            self.pick(WORDS),
            self.between(1, 9999)
        )
    }

    fn date_time(&mut self) -> String {
        format!(
            "2026-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.between(1, 12),
            self.between(1, 28),
            self.between(0, 23),
            self.between(0, 59),
            self.between(0, 59)
        )
    }

    /// A string that reads right for a property of this name.
    fn hinted_string(&mut self, name: &str) -> String {
        let n = name.to_ascii_lowercase();
        let has = |w: &str| n.contains(w);
        if (has("private") || has("internal")) && (n.ends_with("ip") || has("address")) {
            format!(
                "10.{}.{}.{}",
                self.between(0, 255),
                self.between(0, 255),
                self.between(1, 254)
            )
        } else if n == "ip" || n.ends_with("_ip") || has("ip_address") || has("ipaddress") || n == "address" {
            self.ipv4()
        } else if has("email") || has("mail") {
            self.email()
        } else if has("url") || has("uri") || has("link") || has("href") {
            self.url()
        } else if has("host") || has("domain") || has("fqdn") {
            self.hostname()
        } else if has("country") {
            self.pick(COUNTRIES).to_owned()
        } else if has("city") {
            self.pick(CITIES).to_owned()
        } else if has("region") || has("province") {
            self.pick(REGIONS).to_owned()
        } else if n == "loc" || has("coordinates") || has("latlon") {
            format!(
                "{:.4},{:.4}",
                35.0 + self.between(0, 2000) as f64 / 100.0,
                self.between(0, 3000) as f64 / 100.0 - 10.0
            )
        } else if has("postal") || has("zip") {
            format!("{:05}", self.between(10000, 99999))
        } else if n == "state" || n == "status" {
            self.pick(&["active", "pending", "running", "stopped"]).to_owned()
        } else if has("timezone") || n == "tz" {
            self.pick(ZONES).to_owned()
        } else if n == "asn" {
            format!("AS{}", self.between(64500, 64511))
        } else if n == "org" || has("organi") || has("company") {
            format!(
                "AS{} Example {} B.V.",
                self.between(64500, 64511),
                capitalised(self.pick(WORDS))
            )
        } else if n.ends_with("_at") || has("date") || has("time") || n == "since" || n == "until" {
            self.date_time()
        } else if n == "id" || n.ends_with("_id") || n.ends_with("id") && n.len() <= 4 {
            format!("mock-{:08x}", self.next() as u32)
        } else if has("name") || has("user") || has("owner") || has("login") {
            format!(
                "{} {}",
                capitalised(self.pick(FIRST)),
                capitalised(self.pick(LAST))
            )
        } else {
            format!("{} {}", self.pick(WORDS), self.pick(WORDS))
        }
    }
}

fn capitalised(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid(schema: &Value, seeds: std::ops::Range<u64>) {
        let validator = jsonschema::validator_for(schema).unwrap();
        for seed in seeds {
            let v = generate(schema, seed);
            let errors: Vec<String> = validator.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "seed {seed}: {v} is not valid: {errors:?}");
        }
    }

    #[test]
    fn values_are_valid_against_formats_enums_bounds_and_nesting() {
        let schema = json!({
            "type": "object",
            "required": ["ip", "contact", "seen", "home", "score", "ratio", "level", "tags", "nested"],
            "properties": {
                "ip": {"type": "string", "format": "ipv4"},
                "ip6": {"type": "string", "format": "ipv6"},
                "contact": {"type": "string", "format": "email"},
                "seen": {"type": "string", "format": "date-time"},
                "day": {"type": "string", "format": "date"},
                "home": {"type": "string", "format": "uri"},
                "host": {"type": "string", "format": "hostname"},
                "id": {"type": "string", "format": "uuid"},
                "score": {"type": "integer", "minimum": 10, "maximum": 20},
                "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "even": {"type": "integer", "multipleOf": 2, "minimum": 3},
                "level": {"enum": ["low", "medium", "high"]},
                "kind": {"const": "lookup"},
                "code": {"type": "string", "minLength": 5, "maxLength": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4, "uniqueItems": true},
                "maybe": {"type": ["string", "null"]},
                "nested": {"$ref": "#/$defs/node"}
            },
            "$defs": {
                "node": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                        "parent": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}
                    }
                }
            }
        });
        valid(&schema, 0..200);
    }

    #[test]
    fn all_of_one_of_and_draft_4_bounds_are_honoured() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "allOf": [
                {"type": "object", "required": ["a"], "properties": {"a": {"type": "boolean"}}},
                {"required": ["b"], "properties": {"b": {"oneOf": [{"type": "integer", "minimum": 5, "maximum": 5}, {"type": "string", "format": "email"}]}}}
            ],
            "properties": {"c": {"type": "number", "minimum": 1, "exclusiveMinimum": true, "maximum": 2}}
        });
        valid(&schema, 0..100);
    }

    #[test]
    fn the_same_seed_gives_the_same_value_and_others_differ() {
        let schema = json!({"type": "object", "properties": {
            "ip": {"type": "string"}, "country": {"type": "string"}, "n": {"type": "integer"}}});
        assert_eq!(generate(&schema, 42), generate(&schema, 42));
        let distinct: std::collections::BTreeSet<String> =
            (0..20).map(|s| generate(&schema, s).to_string()).collect();
        assert!(distinct.len() > 10, "{distinct:?}");
    }

    #[test]
    fn names_without_formats_read_plausibly() {
        let schema = json!({"type": "object", "required": ["ip", "country", "email", "created_at"], "properties": {
            "ip": {"type": "string"}, "country": {"type": "string"},
            "email": {"type": "string"}, "created_at": {"type": "string"}}});
        let v = generate(&schema, 7);
        assert!(
            v["ip"].as_str().unwrap().parse::<std::net::Ipv4Addr>().is_ok(),
            "{v}"
        );
        assert_eq!(v["country"].as_str().unwrap().len(), 2, "{v}");
        assert!(v["email"].as_str().unwrap().ends_with("@example.com"), "{v}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap()).is_ok(),
            "{v}"
        );
    }

    #[test]
    fn a_recursive_or_huge_schema_stays_bounded() {
        // Every level requires the next and holds wide arrays: without the bounds this
        // would never end.
        let schema = json!({
            "$defs": {"n": {"type": "object", "required": ["next", "many"], "properties": {
                "next": {"$ref": "#/$defs/n"},
                "many": {"type": "array", "minItems": 1000, "items": {"$ref": "#/$defs/n"}}}}},
            "$ref": "#/$defs/n"
        });
        let v = generate(&schema, 1);
        assert!(crate::nesting::check(&v, crate::nesting::MAX_DEPTH).is_ok());
        assert!(v.to_string().len() < 2_000_000, "{}", v.to_string().len());
    }
}
