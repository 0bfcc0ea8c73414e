//! ipinfo: IP enrichment from ipinfo.io (`GET /{ip}/json` with a bearer token).
//!
//! Lookups are cached in the plugin's kv store (`cache_ttl_seconds`, default one hour), so a
//! playbook that sees the same IP many times asks the vendor once.

use osprey_sdk::prelude::*;
use std::net::IpAddr;
use std::time::Duration;

/// An IP address to look up.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LookupInput {
    /// IPv4 or IPv6 address, for example `8.8.8.8`.
    ip: String,
}

/// What ipinfo knows about an address. Private and reserved addresses come back with
/// `bogon: true` and nothing else.
#[derive(Serialize, Deserialize, JsonSchema, Default)]
struct LookupOutput {
    /// The address looked up.
    ip: String,
    /// Reverse DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    /// ISO 3166 country code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    /// "latitude,longitude".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loc: Option<String>,
    /// "AS<number> <owner>", as ipinfo writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    /// The AS number alone, parsed from `org` (for example `AS15169`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    postal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    /// True for private, loopback and reserved addresses.
    #[serde(default)]
    bogon: bool,
    /// True for anycast addresses.
    #[serde(default)]
    anycast: bool,
    /// Whether this answer came from the plugin's cache.
    #[serde(default)]
    cached: bool,
}

fn lookup(_ctx: &Context, input: LookupInput) -> Result<LookupOutput> {
    let ip: IpAddr = input
        .ip
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input(format!("'{}' is not an IPv4 or IPv6 address", input.ip)))?;

    let ttl: u64 = config::get("cache_ttl_seconds")
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::invalid_input("setting 'cache_ttl_seconds' must be a whole number"))?;
    let cache_key = format!("lookup:{ip}");
    if ttl > 0
        && let Some(mut hit) = kv::get_json::<LookupOutput>(&cache_key)?
    {
        hit.cached = true;
        return Ok(hit);
    }

    let token = secrets::get("token")?;
    let base = config::require("base_url")?;
    let response = http::Request::get(lookup_url(&base, ip))
        .header("accept", "application/json")
        .bearer_auth(token.expose())
        .send()?;
    let out = read_answer(ip, response)?;

    if ttl > 0 {
        // A full cache is not a reason to fail the lookup.
        if let Err(e) = kv::set_json(&cache_key, &out, Some(Duration::from_secs(ttl))) {
            log::warn(
                "could not cache the lookup",
                &[("ip", &out.ip), ("error", &e.message)],
            );
        }
    }
    Ok(out)
}

/// `GET {base}/{ip}/json`.
fn lookup_url(base: &str, ip: IpAddr) -> String {
    format!("{}/{ip}/json", base.trim_end_matches('/'))
}

/// ipinfo's answer about `ip`, with the AS number taken from `org`.
fn read_answer(ip: IpAddr, response: http::Response) -> Result<LookupOutput> {
    if response.status == 404 {
        return Err(Error::not_found(format!("ipinfo has no record of {ip}")));
    }
    let mut out: LookupOutput = response.error_for_status()?.json()?;
    out.asn = out
        .org
        .as_deref()
        .and_then(|org| org.split_whitespace().next())
        .filter(|first| first.starts_with("AS"))
        .map(str::to_owned);
    out.cached = false;
    Ok(out)
}

fn plugin() -> Plugin {
    Plugin::new(
        "ipinfo",
        env!("CARGO_PKG_VERSION"),
        "IP enrichment from ipinfo.io: geolocation, ASN, owner and hostname of an IP address",
    )
    .action(
        "lookup",
        "Geolocation, ASN, owner and hostname of one IP address",
        lookup,
    )
}

osprey_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> http::Response {
        http::Response {
            url: "https://ipinfo.io/8.8.8.8/json".into(),
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    const GOOGLE: &str = r#"{"ip":"8.8.8.8","hostname":"dns.google","city":"Mountain View",
        "region":"California","country":"US","loc":"37.4056,-122.0775",
        "org":"AS15169 Google LLC","postal":"94043","timezone":"America/Los_Angeles",
        "anycast":true,"readme":"https://ipinfo.io/missingauth"}"#;

    #[test]
    fn the_lookup_url_has_one_slash_whatever_the_base() {
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            lookup_url("https://ipinfo.io/", ip),
            "https://ipinfo.io/2001:db8::1/json"
        );
        assert_eq!(
            lookup_url("http://127.0.0.1:9", ip),
            "http://127.0.0.1:9/2001:db8::1/json"
        );
    }

    #[test]
    fn an_answer_is_read_with_its_asn_and_unknown_fields_ignored() {
        let out = read_answer("8.8.8.8".parse().unwrap(), answer(200, GOOGLE)).unwrap();
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["asn"], "AS15169");
        assert_eq!(v["org"], "AS15169 Google LLC");
        assert_eq!(v["hostname"], "dns.google");
        assert_eq!(
            (
                v["anycast"].as_bool(),
                v["bogon"].as_bool(),
                v["cached"].as_bool()
            ),
            (Some(true), Some(false), Some(false))
        );
        assert!(v.get("readme").is_none());
    }

    #[test]
    fn a_bogon_has_no_asn_and_an_org_without_as_gives_none() {
        let bogon = read_answer(
            "10.0.0.1".parse().unwrap(),
            answer(200, r#"{"ip":"10.0.0.1","bogon":true}"#),
        )
        .unwrap();
        let v = serde_json::to_value(&bogon).unwrap();
        assert_eq!(
            v,
            json!({"ip": "10.0.0.1", "bogon": true, "anycast": false, "cached": false})
        );
        let odd = read_answer(
            "1.2.3.4".parse().unwrap(),
            answer(200, r#"{"ip":"1.2.3.4","org":"Some ISP"}"#),
        )
        .unwrap();
        assert_eq!(odd.asn, None);
    }

    #[test]
    fn failures_are_typed() {
        let ip: IpAddr = "8.8.8.8".parse().unwrap();
        let e = read_answer(ip, answer(404, "")).err().unwrap();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::NotFound, "ipinfo has no record of 8.8.8.8")
        );
        assert_eq!(
            read_answer(ip, answer(403, "bad token")).err().unwrap().kind,
            ErrorKind::Denied
        );
        assert_eq!(
            read_answer(ip, answer(429, "")).err().unwrap().kind,
            ErrorKind::RateLimited
        );
        assert_eq!(
            read_answer(ip, answer(200, "<html>")).err().unwrap().kind,
            ErrorKind::Upstream
        );
    }
}
