//! Capabilities: what a plugin's manifest *requests* and what the operator *grants*.
//!
//! Both are a [`Capabilities`] value. The grant is what the host enforces; the request is
//! what the author said the plugin needs, shown next to the grant so an operator can grant
//! it in one step (`osprey plugin grant NAME --requested`) and an auditor can see where the
//! two differ. Nothing here does I/O.

pub mod address;
pub mod http_pattern;
pub mod path;

pub use http_pattern::{
    Coverage, HttpPattern, PatternError, PatternProblem, RequestTarget, TargetError, TargetHost,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

/// A set of capabilities, as requested in `plugin.toml` or granted by the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Outbound HTTP patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, example = json!(["https://ipinfo.io", "https://*.example.com/api"]))]
    pub http: Vec<HttpPattern>,
    /// Non-public address ranges that host names may resolve to (a controller on the LAN).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, example = json!(["192.168.1.0/24"]))]
    pub private_ranges: Vec<IpNet>,
    /// Secret names.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub secrets: BTreeSet<String>,
    /// Room in the private kv store, in bytes (keys plus values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_quota_bytes: Option<u64>,
    /// Whether the plugin receives its vendor's HTTP requests at `/hooks/NAME/...`
    /// (unauthenticated by Osprey: the plugin checks the vendor's signature).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub webhooks: bool,
    /// Per-call limits that differ from the server's defaults.
    #[serde(default, skip_serializing_if = "LimitOverrides::is_empty")]
    pub limits: LimitOverrides,
}

/// The item that stands for [`Capabilities::webhooks`] in lists and diffs.
pub const WEBHOOKS_ITEM: &str = "webhooks (receive /hooks/NAME requests)";

/// Limits that differ from the server's defaults; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// Wall-clock deadline of one call, such as "30s".
    #[serde(
        default,
        with = "crate::duration::opt_text",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub timeout: Option<Duration>,
    /// Linear memory cap, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Largest HTTP response body a call may receive, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Outbound HTTP requests per call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Largest output JSON, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
}

impl LimitOverrides {
    pub fn is_empty(&self) -> bool {
        *self == LimitOverrides::default()
    }
}

/// The limits that apply to one call, after the grant's overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Such as "30s".
    #[serde(with = "crate::duration::text")]
    #[schema(value_type = String)]
    pub timeout: Duration,
    pub memory_mib: u32,
    pub max_response_bytes: u64,
    pub max_requests: u32,
    pub max_output_bytes: u64,
    pub kv_quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(30),
            memory_mib: 64,
            max_response_bytes: 16 * 1024 * 1024,
            max_requests: 64,
            max_output_bytes: 4 * 1024 * 1024,
            kv_quota_bytes: 1024 * 1024,
        }
    }
}

impl Limits {
    /// These limits with a grant's overrides applied.
    pub fn with_grant(&self, grant: &Capabilities) -> Limits {
        let o = &grant.limits;
        Limits {
            timeout: o.timeout.unwrap_or(self.timeout),
            memory_mib: o.memory_mib.unwrap_or(self.memory_mib),
            max_response_bytes: o.max_response_bytes.unwrap_or(self.max_response_bytes),
            max_requests: o.max_requests.unwrap_or(self.max_requests),
            max_output_bytes: o.max_output_bytes.unwrap_or(self.max_output_bytes),
            kv_quota_bytes: grant.kv_quota_bytes.unwrap_or(self.kv_quota_bytes),
        }
    }
}

/// Why an outbound request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpDenial {
    /// No granted pattern covers the URL.
    NotGranted,
    /// A granted pattern's path prefix covers the path as written, but the path could leave
    /// the prefix on a server that decodes it.
    PathEscape { pattern: String, why: &'static str },
    /// The address (literal or resolved) is not public and the grant does not name it.
    Address { ip: IpAddr, why: address::Restriction },
}

impl std::fmt::Display for HttpDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpDenial::NotGranted => f.write_str("no granted HTTP pattern covers it"),
            HttpDenial::PathEscape { pattern, why } => write!(
                f,
                "the grant {pattern} restricts the path, and this path has {why}; send the path without it"
            ),
            HttpDenial::Address { ip, why } => write!(
                f,
                "{ip} is not a public address: it is {why}. A grant pattern that names an address \
                 (such as http://{ip_url}:8080) lets that one address through; a host name that \
                 resolves to a non-public address needs its range granted with --private-range \
                 (for example --private-range {ip}/{bits})",
                ip_url = match ip {
                    IpAddr::V4(v4) => v4.to_string(),
                    IpAddr::V6(v6) => format!("[{v6}]"),
                },
                bits = if ip.is_ipv4() { 32 } else { 128 },
            ),
        }
    }
}

impl Capabilities {
    /// Check a request's URL (before any connection). An IP-literal target must also be
    /// public, named by the matching pattern, or inside a granted private range.
    pub fn check_http(&self, target: &RequestTarget) -> Result<(), HttpDenial> {
        let mut path_escape = None;
        let pattern = self.http.iter().find(|p| match p.covers(target) {
            Coverage::Yes => true,
            Coverage::No => false,
            Coverage::PathEscape(why) => {
                path_escape.get_or_insert_with(|| HttpDenial::PathEscape {
                    pattern: p.to_string(),
                    why,
                });
                false
            }
        });
        let Some(pattern) = pattern else {
            return Err(path_escape.unwrap_or(HttpDenial::NotGranted));
        };
        if let TargetHost::Ip(ip) = target.host
            && pattern.named_ip() != Some(ip)
        {
            self.check_resolved(ip)?;
        }
        Ok(())
    }

    /// Check an address a granted host name resolved to: public, or inside a granted range.
    pub fn check_resolved(&self, ip: IpAddr) -> Result<(), HttpDenial> {
        match address::restriction(ip) {
            None => Ok(()),
            Some(_) if self.private_ranges.iter().any(|r| r.contains(&ip)) => Ok(()),
            Some(why) => Err(HttpDenial::Address { ip, why }),
        }
    }

    /// Whether the secret `name` is in this set.
    pub fn has_secret(&self, name: &str) -> bool {
        self.secrets.contains(name)
    }

    /// Add everything in `other` (used to grant what was requested).
    pub fn union_with(&mut self, other: &Capabilities) {
        for p in &other.http {
            if !self.http.contains(p) {
                self.http.push(p.clone());
            }
        }
        for r in &other.private_ranges {
            if !self.private_ranges.contains(r) {
                self.private_ranges.push(*r);
            }
        }
        self.secrets.extend(other.secrets.iter().cloned());
        self.webhooks |= other.webhooks;
        if other.kv_quota_bytes.is_some() {
            self.kv_quota_bytes = other.kv_quota_bytes;
        }
        let (o, s) = (&other.limits, &mut self.limits);
        s.timeout = o.timeout.or(s.timeout);
        s.memory_mib = o.memory_mib.or(s.memory_mib);
        s.max_response_bytes = o.max_response_bytes.or(s.max_response_bytes);
        s.max_requests = o.max_requests.or(s.max_requests);
        s.max_output_bytes = o.max_output_bytes.or(s.max_output_bytes);
    }

    /// Everything in this set, one line each (`http PATTERN`, `private range CIDR`,
    /// `secret NAME`, `webhooks`, `kv quota N bytes`, `timeout 30s`, ...): what a diff
    /// compares.
    pub fn items(&self) -> Vec<String> {
        let mut out: Vec<String> = self.http.iter().map(|p| format!("http {p}")).collect();
        out.extend(self.private_ranges.iter().map(|r| format!("private range {r}")));
        out.extend(self.secrets.iter().map(|s| format!("secret {s}")));
        out.extend(self.webhooks.then(|| WEBHOOKS_ITEM.to_owned()));
        out.extend(self.kv_quota_bytes.map(|q| format!("kv quota {q} bytes")));
        let l = &self.limits;
        out.extend(
            l.timeout
                .map(|t| format!("timeout {}", humantime::format_duration(t))),
        );
        out.extend(l.memory_mib.map(|m| format!("memory {m} MiB")));
        out.extend(l.max_response_bytes.map(|b| format!("max response {b} bytes")));
        out.extend(l.max_requests.map(|n| format!("max requests {n}")));
        out.extend(l.max_output_bytes.map(|b| format!("max output {b} bytes")));
        out
    }

    /// What `requested` asks for that this grant does not give, one line each.
    pub fn missing_from(&self, requested: &Capabilities) -> Vec<String> {
        let mut out = Vec::new();
        for p in &requested.http {
            if !self.http.contains(p) {
                out.push(format!("http {p}"));
            }
        }
        for r in &requested.private_ranges {
            if !self.private_ranges.contains(r) {
                out.push(format!("private range {r}"));
            }
        }
        for s in &requested.secrets {
            if !self.secrets.contains(s) {
                out.push(format!("secret {s}"));
            }
        }
        if requested.webhooks && !self.webhooks {
            out.push(WEBHOOKS_ITEM.to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(json: serde_json::Value) -> Capabilities {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn literal_loopback_needs_the_pattern_to_name_it() {
        let named = caps(serde_json::json!({"http": ["http://127.0.0.1:9000"]}));
        let t = RequestTarget::parse("http://127.0.0.1:9000/x").unwrap();
        assert_eq!(named.check_http(&t), Ok(()));
        let by_name = caps(serde_json::json!({"http": ["http://localhost:9000"]}));
        let t = RequestTarget::parse("http://localhost:9000/x").unwrap();
        // The URL is granted; the resolver later refuses what it resolves to.
        assert_eq!(by_name.check_http(&t), Ok(()));
        assert!(matches!(
            by_name.check_resolved("127.0.0.1".parse().unwrap()),
            Err(HttpDenial::Address { .. })
        ));
    }

    #[test]
    fn private_ranges_open_resolved_addresses_inside_them_only() {
        let g = caps(serde_json::json!({
            "http": ["https://unifi.home.lan:8443"],
            "private_ranges": ["192.168.1.0/24"]
        }));
        assert_eq!(g.check_resolved("192.168.1.10".parse().unwrap()), Ok(()));
        assert!(g.check_resolved("192.168.2.10".parse().unwrap()).is_err());
        assert!(g.check_resolved("169.254.169.254".parse().unwrap()).is_err());
        assert_eq!(g.check_resolved("8.8.8.8".parse().unwrap()), Ok(()));
    }

    #[test]
    fn a_path_trick_under_a_path_prefix_is_refused_with_the_reason() {
        let g = caps(serde_json::json!({"http": ["https://api.example.com/v2"]}));
        let t = RequestTarget::parse("https://api.example.com/v2/..%2fadmin").unwrap();
        let denial = g.check_http(&t).unwrap_err();
        assert!(matches!(denial, HttpDenial::PathEscape { .. }), "{denial:?}");
        let text = denial.to_string();
        assert!(
            text.contains("https://api.example.com/v2") && text.contains("%2F"),
            "{text}"
        );
        // A second pattern that does not restrict the path grants it.
        let g = caps(serde_json::json!({"http": ["https://api.example.com/v2", "https://api.example.com"]}));
        assert_eq!(g.check_http(&t), Ok(()));
    }

    #[test]
    fn an_address_denial_says_how_to_grant_it() {
        let g = Capabilities::default();
        let text = g
            .check_resolved("10.1.2.3".parse().unwrap())
            .unwrap_err()
            .to_string();
        for part in [
            "10.1.2.3",
            "10.0.0.0/8",
            "Private-Use",
            "http://10.1.2.3:8080",
            "--private-range 10.1.2.3/32",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        // The local-use NAT64 prefix of RFC 8215 is refused like a private range.
        let text = g
            .check_resolved("64:ff9b:1::808:808".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("RFC 8215") && text.contains("http://[64:ff9b:1::808:808]:8080"),
            "{text}"
        );
    }

    #[test]
    fn ungranted_urls_are_refused() {
        let g = caps(serde_json::json!({"http": ["https://ipinfo.io"]}));
        let t = RequestTarget::parse("https://example.com/").unwrap();
        assert_eq!(g.check_http(&t), Err(HttpDenial::NotGranted));
        let t = RequestTarget::parse("http://10.0.0.1/").unwrap();
        assert_eq!(g.check_http(&t), Err(HttpDenial::NotGranted));
    }

    #[test]
    fn grant_overrides_apply_over_defaults() {
        let g = caps(serde_json::json!({"kv_quota_bytes": 10, "limits": {"timeout": "2s", "memory_mib": 8}}));
        let l = Limits::default().with_grant(&g);
        assert_eq!(l.timeout, Duration::from_secs(2));
        assert_eq!(l.memory_mib, 8);
        assert_eq!(l.kv_quota_bytes, 10);
        assert_eq!(l.max_requests, Limits::default().max_requests);
    }

    #[test]
    fn union_and_missing() {
        let requested = caps(serde_json::json!({"http": ["https://ipinfo.io"], "secrets": ["token"]}));
        let mut g = Capabilities::default();
        assert_eq!(
            g.missing_from(&requested),
            vec!["http https://ipinfo.io", "secret token"]
        );
        g.union_with(&requested);
        assert!(g.missing_from(&requested).is_empty());
        assert!(g.has_secret("token"));
    }

    #[test]
    fn webhooks_are_an_item_granted_only_when_asked_for() {
        let requested = caps(serde_json::json!({"webhooks": true}));
        let mut g = Capabilities::default();
        assert!(!g.webhooks);
        assert_eq!(g.missing_from(&requested), vec![WEBHOOKS_ITEM]);
        assert_eq!(requested.items(), vec![WEBHOOKS_ITEM]);
        g.union_with(&requested);
        assert!(g.webhooks && g.missing_from(&requested).is_empty());
        // Not granted is not written, so grants stored before webhooks read the same.
        assert_eq!(
            serde_json::to_value(Capabilities::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_errors() {
        let e = serde_json::from_value::<Capabilities>(serde_json::json!({"htp": []})).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = serde_json::from_value::<Capabilities>(serde_json::json!({"limits": {"timeout": "soon"}}))
            .unwrap_err();
        assert!(e.to_string().contains("not a duration"), "{e}");
    }
}
