//! autofocus: indicator reputation from Palo Alto Networks AutoFocus, through its Threat
//! Intelligence Card summary (`GET {base}/tic?indicatorType=..&indicatorValue=..&includeTags=true`,
//! the API key in an `apiKey` header).
//!
//! How AutoFocus answers, and what this plugin makes of it:
//! - 200 with an `indicator` object: found; the verdict comes from `latestPanVerdicts`.
//! - 200 without one, or 404 (sometimes an HTML page): AutoFocus has no record; `found: false`.
//! - 401/403: the key was refused (`denied`). 409 with "Invalid license": `denied`; any other
//!   409 is AutoFocus's "invalid message or missing parameters" (`invalid-input`).
//! - 503 with "... Bucket Exceeded" and `bucket_info`: the point allotment is spent
//!   (`rate-limited`, retryable); 429 is treated the same. Other 5xx: `unavailable`, retryable.
//!
//! Answers are cached in the plugin's kv store (`cache_ttl_seconds`, default one hour): TIC
//! lookups cost no AutoFocus points, but they do count against the per-minute call limits.

use osprey_sdk::prelude::*;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

const SECRET: &str = "api_key";
const SET_KEY_HINT: &str = "set it with `osprey secret set autofocus api_key` (the key is on the \
                            AutoFocus portal's Settings page)";

/// An IP address to look up.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IpInput {
    /// IPv4 or IPv6 address, for example `198.51.100.7` or `2001:db8::1`.
    ip: String,
}

/// The kinds of indicator AutoFocus keeps Threat Intelligence Cards for.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    /// An IPv4 or IPv6 address.
    Ip,
    /// A domain name, without scheme or path (`example.com`).
    Domain,
    /// A URL, as seen in traffic (`http://example.com/path`).
    Url,
    /// A file hash: MD5, SHA-1 or SHA-256, in hex.
    Hash,
}

/// An indicator to look up.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IndicatorInput {
    /// What kind of indicator `value` is.
    #[serde(rename = "type")]
    kind: Kind,
    /// The indicator itself: an IP address, a domain, a URL, or an MD5/SHA-1/SHA-256 hash.
    value: String,
}

/// The plugin's reading of AutoFocus's verdicts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    /// No source gave a verdict we know, or AutoFocus has no record.
    Unknown,
    /// A source said BENIGN and none said worse.
    Benign,
    /// The worst verdict is GRAYWARE.
    Suspicious,
    /// A source said MALWARE, PHISHING or C2.
    Malicious,
}

/// What AutoFocus knows about an indicator (its Threat Intelligence Card summary).
#[derive(Serialize, Deserialize, JsonSchema)]
struct ReputationOutput {
    /// The indicator looked up, normalised (IP addresses in canonical form, domains and
    /// hashes in lower case).
    indicator: String,
    /// The kind of indicator.
    #[serde(rename = "type")]
    kind: Kind,
    /// The plugin's verdict, derived from `pan_verdicts`: malicious if any source says
    /// MALWARE, PHISHING or C2; suspicious if the worst is GRAYWARE; benign if a source says
    /// BENIGN and none says worse; unknown otherwise.
    verdict: Verdict,
    /// AutoFocus's `latestPanVerdicts` as received: the latest verdict of each Palo Alto
    /// Networks source (`PAN_DB`, `WF_SAMPLE`, ...), such as MALWARE, GRAYWARE, PHISHING, C2
    /// or BENIGN; a source may have none (null).
    #[serde(default)]
    pan_verdicts: BTreeMap<String, Option<String>>,
    /// WildFire samples related to the indicator with a MALWARE verdict.
    #[serde(default)]
    malware_samples: u64,
    /// Related WildFire samples with a GRAYWARE verdict.
    #[serde(default)]
    grayware_samples: u64,
    /// Related WildFire samples with a BENIGN verdict.
    #[serde(default)]
    benign_samples: u64,
    /// AutoFocus tags on the indicator, by public name (for example `Unit42.FormBook`).
    #[serde(default)]
    tags: Vec<String>,
    /// When any source first saw the indicator (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_seen: Option<String>,
    /// When any source last saw the indicator (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<String>,
    /// The data sources that saw the indicator (`seenByDataSourceIds`).
    #[serde(default)]
    seen_by: Vec<String>,
    /// Whether AutoFocus has a record of the indicator. When false, the verdict is unknown
    /// and the counts are zero.
    found: bool,
    /// Whether this answer came from the plugin's cache.
    #[serde(default)]
    cached: bool,
}

/// A validated indicator, with the name AutoFocus gives its type.
struct Indicator {
    kind: Kind,
    value: String,
    /// `indicatorType` as the API reference lists it.
    af_type: &'static str,
}

fn parse_ip(raw: &str) -> Result<Indicator> {
    let ip: IpAddr = raw
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input(format!("'{raw}' is not an IPv4 or IPv6 address")))?;
    let ip = ip.to_canonical();
    let af_type = match ip {
        IpAddr::V4(_) => "ipv4_address",
        IpAddr::V6(_) => "ipv6_address",
    };
    Ok(Indicator {
        kind: Kind::Ip,
        value: ip.to_string(),
        af_type,
    })
}

fn parse_domain(raw: &str) -> Result<Indicator> {
    let bad = |why: &str| Error::invalid_input(format!("'{raw}' is not a domain name: {why}"));
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() {
        return Err(bad("it is empty"));
    }
    if d.parse::<IpAddr>().is_ok() {
        return Err(bad("it is an IP address; use type \"ip\""));
    }
    if d.contains(['/', ':', '?', '#', '@']) {
        return Err(bad(
            "it looks like a URL; use type \"url\", or give the host name alone",
        ));
    }
    if !d.is_ascii() {
        return Err(bad("give an internationalised name in its ASCII (xn--) form"));
    }
    if d.len() > 253 {
        return Err(bad("it is longer than 253 characters"));
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must have 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, '-' and '_' are allowed in a label"));
        }
    }
    Ok(Indicator {
        kind: Kind::Domain,
        value: d,
        af_type: "domain",
    })
}

fn parse_url(raw: &str) -> Result<Indicator> {
    let u = raw.trim();
    if u.is_empty() {
        return Err(Error::invalid_input("the URL is empty"));
    }
    if u.len() > 4096 {
        return Err(Error::invalid_input("the URL is longer than 4096 bytes"));
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid_input(
            "the URL contains whitespace or control characters; percent-encode them",
        ));
    }
    Ok(Indicator {
        kind: Kind::Url,
        value: u.to_owned(),
        af_type: "url",
    })
}

fn parse_hash(raw: &str) -> Result<Indicator> {
    let h = raw.trim().to_ascii_lowercase();
    if !matches!(h.len(), 32 | 40 | 64) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_input(format!(
            "'{raw}' is not an MD5, SHA-1 or SHA-256 hash (32, 40 or 64 hex digits)"
        )));
    }
    Ok(Indicator {
        kind: Kind::Hash,
        value: h,
        af_type: "filehash",
    })
}

fn ip_reputation(_ctx: &Context, input: IpInput) -> Result<ReputationOutput> {
    reputation(parse_ip(&input.ip)?)
}

fn indicator_reputation(_ctx: &Context, input: IndicatorInput) -> Result<ReputationOutput> {
    let indicator = match input.kind {
        Kind::Ip => parse_ip(&input.value)?,
        Kind::Domain => parse_domain(&input.value)?,
        Kind::Url => parse_url(&input.value)?,
        Kind::Hash => parse_hash(&input.value)?,
    };
    reputation(indicator)
}

/// The body of a Threat Intelligence Card summary. Unknown fields (WHOIS data, `bucketInfo`)
/// are ignored.
#[derive(Deserialize)]
struct TicBody {
    #[serde(default)]
    indicator: Option<Value>,
    #[serde(default)]
    tags: Option<Vec<TicTag>>,
    #[serde(default, rename = "bucketInfo")]
    bucket_info: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TicIndicator {
    #[serde(default)]
    first_seen_ts_global: Option<Value>,
    #[serde(default)]
    last_seen_ts_global: Option<Value>,
    #[serde(default)]
    latest_pan_verdicts: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    seen_by_data_source_ids: Option<Vec<String>>,
    #[serde(default)]
    wildfire_related_sample_verdict_counts: Option<BTreeMap<String, Option<u64>>>,
}

#[derive(Deserialize)]
struct TicTag {
    #[serde(default)]
    public_tag_name: Option<String>,
    #[serde(default)]
    tag_name: Option<String>,
}

fn reputation(ind: Indicator) -> Result<ReputationOutput> {
    let ttl: u64 = config::get("cache_ttl_seconds")
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input("setting 'cache_ttl_seconds' must be a whole number"))?;
    let kind_name = serde_json::to_value(ind.kind)?;
    let cache_key = format!("tic:{}:{}", kind_name.as_str().unwrap_or_default(), ind.value);
    // kv keys are at most 512 bytes; a very long URL is simply not cached.
    let cacheable = ttl > 0 && cache_key.len() <= 512;
    if cacheable
        && let Some(mut hit) = kv::get_json::<ReputationOutput>(&cache_key)?
        && hit.indicator == ind.value
    {
        hit.cached = true;
        return Ok(hit);
    }

    let key = api_key()?;
    let base = config::require("base_url")?;
    let response = http::Request::get(format!("{}/tic", base.trim().trim_end_matches('/')))
        .query(&[
            ("indicatorType", ind.af_type),
            ("indicatorValue", ind.value.as_str()),
            ("includeTags", "true"),
        ])
        .header("accept", "application/json")
        .header("apiKey", key.expose().trim())
        .send()?;
    drop(key);

    let out = match response.status {
        200..=299 => {
            let body: TicBody = response.json()?;
            from_card(&ind, body, &response.url)?
        }
        404 => not_found(&ind),
        status => return Err(error_for(status, &response)),
    };
    log::info(
        "looked up",
        &[
            ("indicator", &out.indicator),
            ("verdict", &format!("{:?}", out.verdict).to_ascii_lowercase()),
            ("found", if out.found { "true" } else { "false" }),
        ],
    );

    // Only what AutoFocus knows is cached: an indicator it has never seen may get a verdict
    // any minute.
    if cacheable && out.found {
        // A full cache is not a reason to fail the lookup.
        if let Err(e) = kv::set_json(&cache_key, &out, Some(Duration::from_secs(ttl))) {
            log::warn(
                "could not cache the answer",
                &[("indicator", &out.indicator), ("error", &e.message)],
            );
        }
    }
    Ok(out)
}

fn api_key() -> Result<secrets::Secret> {
    match secrets::get(SECRET) {
        Ok(key) if !key.expose().trim().is_empty() => Ok(key),
        Ok(_) => Err(Error::denied(format!(
            "the AutoFocus API key is empty; {SET_KEY_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::NotFound => Err(Error::denied(format!(
            "no AutoFocus API key is set; {SET_KEY_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::Denied => Err(Error::denied(format!(
            "{}; grant the secret with `osprey plugin grant autofocus --requested`, then {SET_KEY_HINT}",
            e.message
        ))),
        Err(e) => Err(e),
    }
}

fn not_found(ind: &Indicator) -> ReputationOutput {
    ReputationOutput {
        indicator: ind.value.clone(),
        kind: ind.kind,
        verdict: Verdict::Unknown,
        pan_verdicts: BTreeMap::new(),
        malware_samples: 0,
        grayware_samples: 0,
        benign_samples: 0,
        tags: Vec::new(),
        first_seen: None,
        last_seen: None,
        seen_by: Vec::new(),
        found: false,
        cached: false,
    }
}

fn from_card(ind: &Indicator, body: TicBody, url: &str) -> Result<ReputationOutput> {
    if let Some(remaining) = body
        .bucket_info
        .as_ref()
        .and_then(|b| b.get("dailyPointsRemaining"))
        .and_then(Value::as_u64)
    {
        log::debug(
            "AutoFocus point allotment",
            &[("daily_points_remaining", &remaining.to_string())],
        );
    }
    // No card, or an empty one: AutoFocus has no record of the indicator.
    let card = match body.indicator {
        Some(Value::Object(map)) if !map.is_empty() => Value::Object(map),
        Some(Value::Null) | None => return Ok(not_found(ind)),
        Some(Value::Object(_)) => return Ok(not_found(ind)),
        Some(other) => {
            return Err(Error::upstream(format!(
                "{url} answered with an 'indicator' that is not an object: {}",
                snippet(&other.to_string())
            )));
        }
    };
    let card: TicIndicator = serde_json::from_value(card)
        .map_err(|e| Error::upstream(format!("{url} answered with a card that does not fit: {e}")))?;

    let pan_verdicts = card.latest_pan_verdicts.unwrap_or_default();
    let counts = card.wildfire_related_sample_verdict_counts.unwrap_or_default();
    let count = |name: &str| {
        counts
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| *v)
            .sum::<u64>()
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in body.tags.unwrap_or_default() {
        if let Some(name) = tag.public_tag_name.or(tag.tag_name).filter(|n| !n.is_empty())
            && !tags.contains(&name)
        {
            tags.push(name);
        }
    }
    Ok(ReputationOutput {
        indicator: ind.value.clone(),
        kind: ind.kind,
        verdict: verdict_of(&pan_verdicts),
        malware_samples: count("MALWARE"),
        grayware_samples: count("GRAYWARE"),
        benign_samples: count("BENIGN"),
        pan_verdicts,
        tags,
        first_seen: card.first_seen_ts_global.as_ref().and_then(timestamp),
        last_seen: card.last_seen_ts_global.as_ref().and_then(timestamp),
        seen_by: card.seen_by_data_source_ids.unwrap_or_default(),
        found: true,
        cached: false,
    })
}

/// The worst verdict any source gives: MALWARE, PHISHING, C2 → malicious; GRAYWARE →
/// suspicious; BENIGN → benign; nothing known → unknown.
fn verdict_of(pan_verdicts: &BTreeMap<String, Option<String>>) -> Verdict {
    pan_verdicts
        .values()
        .flatten()
        .map(|v| match v.trim().to_ascii_uppercase().as_str() {
            "MALWARE" | "PHISHING" | "C2" => Verdict::Malicious,
            "GRAYWARE" => Verdict::Suspicious,
            "BENIGN" => Verdict::Benign,
            _ => Verdict::Unknown,
        })
        .max()
        .unwrap_or(Verdict::Unknown)
}

/// Map a non-2xx, non-404 answer to an error kind, with AutoFocus's own message.
fn error_for(status: u16, response: &http::Response) -> Error {
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let message = body
        .as_ref()
        .and_then(|b| b.get("message").or_else(|| b.get("mwMessage")))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| response.text());
    let said = format!("{} answered HTTP {status}: {}", response.url, snippet(&message));
    match status {
        401 | 403 => Error::denied(format!(
            "{said}; AutoFocus refused the API key: check it and set it again with \
             `osprey secret set autofocus api_key`"
        )),
        409 if message.to_ascii_lowercase().contains("license") => Error::denied(format!(
            "{said}; the AutoFocus license behind this API key is invalid or expired"
        )),
        409 => Error::invalid_input(format!("{said}; AutoFocus refused the indicator")),
        429 => Error::rate_limited(format!("{said}; retry later")).retry_after(response.retry_after()),
        503 if message.to_ascii_lowercase().contains("bucket") || has_bucket_info(&body) => {
            let wait_seconds = body
                .as_ref()
                .and_then(|b| b.get("bucket_info"))
                .and_then(|b| b.get("wait_in_seconds"))
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(f64::ceil);
            let wait = wait_seconds
                .map(|s| format!("; AutoFocus asks to wait {s} s"))
                .unwrap_or_default();
            Error::rate_limited(format!(
                "{said}: this license's AutoFocus API points are spent{wait}"
            ))
            .retry_after(wait_seconds.map(std::time::Duration::from_secs_f64))
        }
        500..=599 => Error::unavailable(said),
        300..=399 => Error::upstream(format!(
            "{said}; redirects are not followed: check the base_url setting"
        )),
        _ => Error::upstream(said),
    }
}

fn has_bucket_info(body: &Option<Value>) -> bool {
    body.as_ref().is_some_and(|b| b.get("bucket_info").is_some())
}

fn snippet(text: &str) -> String {
    text.chars().take(300).collect()
}

/// An AutoFocus timestamp (milliseconds since the epoch; a string is passed on as is) as
/// RFC 3339 in UTC.
fn timestamp(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => {
            let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))?;
            let secs = ms.div_euclid(1000);
            let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
            let (y, m, d) = civil_from_days(days);
            Some(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            ))
        }
        _ => None,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn plugin() -> Plugin {
    Plugin::new(
        "autofocus",
        env!("CARGO_PKG_VERSION"),
        "Threat intelligence from Palo Alto Networks AutoFocus: PAN verdicts, tags and WildFire \
         sample counts for IPs, domains, URLs and file hashes",
    )
    .action(
        "ip-reputation",
        "AutoFocus verdict, tags and related WildFire sample counts for one IPv4 or IPv6 address. \
         The verdict is malicious if any PAN source says MALWARE, PHISHING or C2, suspicious if the \
         worst is GRAYWARE, benign if one says BENIGN and none worse, else unknown; an address \
         AutoFocus has no record of gives found: false and verdict unknown.",
        ip_reputation,
    )
    .action(
        "indicator-reputation",
        "Like ip-reputation, for an IP address, domain, URL or MD5/SHA-1/SHA-256 file hash: \
         AutoFocus verdict (malicious: MALWARE, PHISHING or C2 from any PAN source; suspicious: \
         GRAYWARE; benign: BENIGN and nothing worse; else unknown), tags and sample counts.",
        indicator_reputation,
    )
}

osprey_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> http::Response {
        http::Response {
            url: "https://autofocus.paloaltonetworks.com/api/v1.0/tic".into(),
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn indicators_are_checked_and_normalised_with_autofocus_type_names() {
        let ip = parse_ip(" ::ffff:198.51.100.7 ").unwrap();
        assert_eq!((ip.value.as_str(), ip.af_type), ("198.51.100.7", "ipv4_address"));
        assert_eq!(parse_ip("2001:DB8::1").unwrap().af_type, "ipv6_address");
        let d = parse_domain("Example.COM.").unwrap();
        assert_eq!((d.value.as_str(), d.af_type), ("example.com", "domain"));
        assert_eq!(
            parse_url(" http://x.test/a?b ").unwrap().value,
            "http://x.test/a?b"
        );
        let h = parse_hash("D41D8CD98F00B204E9800998ECF8427E").unwrap();
        assert_eq!(
            (h.value.as_str(), h.af_type),
            ("d41d8cd98f00b204e9800998ecf8427e", "filehash")
        );
    }

    #[test]
    fn bad_indicators_are_invalid_input_saying_why() {
        let says = |r: Result<Indicator>, why: &str| {
            let e = r.err().unwrap();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains(why), "{why}: {}", e.message);
        };
        says(parse_ip("example.com"), "not an IPv4 or IPv6 address");
        says(parse_domain("10.0.0.1"), "use type \"ip\"");
        says(parse_domain("http://example.com/x"), "looks like a URL");
        says(parse_domain("bücher.de"), "xn--");
        says(parse_domain("a..b"), "1 to 63 characters");
        says(
            parse_domain(&format!("{}.com", "a".repeat(64))),
            "1 to 63 characters",
        );
        says(parse_url("http://x.test/a b"), "whitespace");
        says(parse_url(""), "empty");
        says(parse_hash("abc"), "32, 40 or 64 hex digits");
    }

    #[test]
    fn the_verdict_is_the_worst_any_source_gives() {
        let v = |pairs: &[(&str, Option<&str>)]| {
            verdict_of(
                &pairs
                    .iter()
                    .map(|(k, v)| ((*k).into(), v.map(str::to_owned)))
                    .collect(),
            )
        };
        assert_eq!(v(&[]), Verdict::Unknown);
        assert_eq!(v(&[("PAN_DB", None)]), Verdict::Unknown);
        assert_eq!(v(&[("PAN_DB", Some("benign"))]), Verdict::Benign);
        assert_eq!(
            v(&[("PAN_DB", Some("BENIGN")), ("WF_SAMPLE", Some("GRAYWARE"))]),
            Verdict::Suspicious
        );
        assert_eq!(
            v(&[("PAN_DB", Some("C2")), ("WF_SAMPLE", Some("BENIGN"))]),
            Verdict::Malicious
        );
        assert_eq!(v(&[("PAN_DB", Some("SOMETHING_NEW"))]), Verdict::Unknown);
    }

    #[test]
    fn a_card_is_read_into_verdict_counts_tags_and_times() {
        let ind = parse_ip("198.51.100.7").unwrap();
        let body: TicBody = serde_json::from_value(json!({
            "indicator": {
                "indicatorValue": "198.51.100.7",
                "latestPanVerdicts": {"PAN_DB": "MALWARE", "WF_SAMPLE": null},
                "wildfireRelatedSampleVerdictCounts": {"MALWARE": 7, "malware": 1, "GRAYWARE": 2, "BENIGN": null},
                "firstSeenTsGlobal": 1700000000123u64,
                "lastSeenTsGlobal": "2024-02-29T12:00:00Z",
                "seenByDataSourceIds": ["WF_SAMPLE"]
            },
            "tags": [
                {"public_tag_name": "Unit42.FormBook", "tag_name": "FormBook"},
                {"tag_name": "Private.Tag"},
                {"public_tag_name": "Unit42.FormBook"},
                {"public_tag_name": ""}
            ],
            "whois": {"ignored": true}
        }))
        .unwrap();
        let out = from_card(&ind, body, "https://af/tic").unwrap();
        assert_eq!(out.verdict, Verdict::Malicious);
        assert_eq!(
            (out.malware_samples, out.grayware_samples, out.benign_samples),
            (8, 2, 0)
        );
        assert_eq!(out.tags, ["Unit42.FormBook", "Private.Tag"]);
        assert_eq!(out.first_seen.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(out.last_seen.as_deref(), Some("2024-02-29T12:00:00Z"));
        assert_eq!(out.seen_by, ["WF_SAMPLE"]);
        assert!(out.found && !out.cached);
    }

    #[test]
    fn no_card_is_not_found_and_a_card_that_is_not_an_object_is_upstream() {
        let ind = parse_hash(&"a".repeat(64)).unwrap();
        for body in [json!({}), json!({"indicator": null}), json!({"indicator": {}})] {
            let out = from_card(&ind, serde_json::from_value(body).unwrap(), "u").unwrap();
            assert!(!out.found && out.verdict == Verdict::Unknown);
        }
        let e = from_card(
            &ind,
            serde_json::from_value(json!({"indicator": [1]})).unwrap(),
            "u",
        )
        .err()
        .unwrap();
        assert!(
            e.kind == ErrorKind::Upstream && e.message.contains("not an object"),
            "{}",
            e.message
        );
    }

    #[test]
    fn answers_map_to_error_kinds_with_autofocus_own_message() {
        let e = error_for(401, &answer(401, r#"{"message":"Invalid API key"}"#));
        assert!(
            e.kind == ErrorKind::Denied && e.message.contains("Invalid API key"),
            "{}",
            e.message
        );
        assert_eq!(
            error_for(409, &answer(409, r#"{"message":"Invalid license"}"#)).kind,
            ErrorKind::Denied
        );
        assert_eq!(
            error_for(409, &answer(409, r#"{"message":"Missing indicatorValue"}"#)).kind,
            ErrorKind::InvalidInput
        );
        let spent = error_for(
            503,
            &answer(
                503,
                r#"{"message":"Daily Bucket Exceeded","bucket_info":{"wait_in_seconds":12.3}}"#,
            ),
        );
        assert!(spent.kind == ErrorKind::RateLimited && spent.retryable);
        assert!(spent.message.contains("wait 13 s"), "{}", spent.message);
        assert_eq!(spent.retry_after, Some(std::time::Duration::from_secs(13)));
        assert_eq!(
            error_for(503, &answer(503, "maintenance")).kind,
            ErrorKind::Unavailable
        );
        assert!(
            error_for(302, &answer(302, ""))
                .message
                .contains("redirects are not followed")
        );
        assert_eq!(error_for(418, &answer(418, "<html>")).kind, ErrorKind::Upstream);
    }

    #[test]
    fn timestamps_in_milliseconds_become_rfc_3339_in_utc() {
        assert_eq!(timestamp(&json!(0)).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            timestamp(&json!(951_782_400_000i64)).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(timestamp(&json!(-1000)).as_deref(), Some("1969-12-31T23:59:59Z"));
        assert_eq!(timestamp(&json!("")), None);
        assert_eq!(timestamp(&json!(true)), None);
    }
}
