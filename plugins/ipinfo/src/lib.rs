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
    let response = http::Request::get(format!("{}/{ip}/json", base.trim_end_matches('/')))
        .header("accept", "application/json")
        .bearer_auth(token.expose())
        .send()?;
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
