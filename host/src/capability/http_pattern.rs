//! Outbound HTTP patterns: `scheme://host[:port][/path-prefix]`, with `*.example.com`
//! wildcards, and the request targets they are matched against.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use thiserror::Error;

/// A pattern that grants (or requests) outbound HTTP, such as `https://ipinfo.io`,
/// `https://*.example.com:8443/api` or `http://127.0.0.1:9000`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpPattern {
    raw: String,
    scheme: String,
    host: HostPattern,
    port: u16,
    /// Normalised path prefix without a trailing slash; empty means any path.
    path_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostPattern {
    /// `example.com`: this name only.
    Name(String),
    /// `*.example.com`: any name below `example.com`, not `example.com` itself.
    Below(String),
    /// `127.0.0.1`, `[::1]`: this address, named explicitly.
    Ip(IpAddr),
}

/// Why a pattern could not be parsed; the message says what to write instead.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "invalid HTTP pattern '{pattern}': {reason} (expected scheme://host[:port][/path-prefix], for example https://api.example.com or https://*.example.com:8443/v1)"
)]
pub struct PatternError {
    pattern: String,
    /// Not the error's `source`: the message says it already, and the CLI prints the chain.
    reason: PatternProblem,
}

/// What is wrong with an HTTP pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternProblem {
    #[error("no scheme")]
    NoScheme,
    #[error("the scheme must be http or https")]
    Scheme,
    #[error("query strings and fragments are not part of a pattern")]
    QueryOrFragment,
    #[error("credentials do not belong in a pattern")]
    Credentials,
    #[error("no host")]
    NoHost,
    #[error("unclosed '['")]
    UnclosedBracket,
    #[error("junk after ']'")]
    JunkAfterBracket,
    #[error("invalid IPv6 address")]
    Ipv6,
    #[error("invalid port")]
    Port,
    #[error("'.' and '..' are not allowed in a path prefix")]
    DotSegment,
    #[error("'*' is only allowed as the first label, as in *.example.com")]
    WildcardNotFirst,
    #[error("'{0}' is not a valid host name")]
    HostName(String),
    #[error("a wildcard needs at least two labels after it, as in *.example.com")]
    WildcardTooShort,
    #[error("'{0}' looks like an IP address but is not a valid one")]
    NotAnIp(String),
}

/// Why a request's URL is not one a plugin may send to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("scheme '{0}' is not http or https")]
    Scheme(String),
    #[error("credentials in the URL are not allowed")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL has no port")]
    NoPort,
}

/// Where a request goes, parsed the way the HTTP client will parse it (WHATWG URL rules),
/// so the target that is checked is the target that is connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTarget {
    pub url: url::Url,
    pub scheme: String,
    pub host: TargetHost,
    pub port: u16,
    pub path: String,
}

/// How a pattern relates to a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The pattern grants the request.
    Yes,
    /// Another scheme, host, port or path.
    No,
    /// Inside the path prefix as written, but the path could leave it on a server that
    /// decodes it (the reason says how).
    PathEscape(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    Name(String),
    Ip(IpAddr),
}

impl RequestTarget {
    /// Parse an absolute http(s) URL.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let url = url::Url::parse(url)?;
        let scheme = url.scheme().to_owned();
        if scheme != "http" && scheme != "https" {
            return Err(TargetError::Scheme(scheme));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => TargetHost::Name(d.trim_end_matches('.').to_ascii_lowercase()),
            Some(url::Host::Ipv4(ip)) => TargetHost::Ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => TargetHost::Ip(IpAddr::V6(ip).to_canonical()),
            None => return Err(TargetError::NoHost),
        };
        let port = url.port_or_known_default().ok_or(TargetError::NoPort)?;
        let path = url.path().to_owned();
        Ok(RequestTarget {
            url,
            scheme,
            host,
            port,
            path,
        })
    }

    /// The URL without query or fragment: safe to log (query strings often carry tokens).
    pub fn display_without_query(&self) -> String {
        let mut u = self.url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    }
}

impl HttpPattern {
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The address this pattern names explicitly, if its host is an IP literal.
    pub fn named_ip(&self) -> Option<IpAddr> {
        match self.host {
            HostPattern::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// Whether a request to `target` is covered by this pattern.
    pub fn matches(&self, target: &RequestTarget) -> bool {
        self.covers(target) == Coverage::Yes
    }

    /// Whether this pattern covers `target`, and if it would but for a path that could leave
    /// its path prefix on the server's side (see [`super::path`]), why not.
    pub fn covers(&self, target: &RequestTarget) -> Coverage {
        if !self.matches_as_written(target) {
            return Coverage::No;
        }
        if self.path_prefix.is_empty() {
            return Coverage::Yes;
        }
        match super::path::escape_risk(&target.path) {
            Some(why) => Coverage::PathEscape(why),
            None => Coverage::Yes,
        }
    }

    /// Scheme, host, port and path prefix, compared as the client will send them.
    fn matches_as_written(&self, target: &RequestTarget) -> bool {
        if self.scheme != target.scheme || self.port != target.port {
            return false;
        }
        let host_ok = match (&self.host, &target.host) {
            (HostPattern::Name(n), TargetHost::Name(t)) => n == t,
            (HostPattern::Below(suffix), TargetHost::Name(t)) => t
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Ip(ip), TargetHost::Ip(t)) => ip == t,
            _ => false,
        };
        host_ok && path_has_prefix(&target.path, &self.path_prefix)
    }
}

/// `/v1/users` has the prefix `/v1`, `/v1x` does not: prefixes end at a segment boundary.
fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

impl FromStr for HttpPattern {
    type Err = PatternError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let err = |reason: PatternProblem| PatternError {
            pattern: raw.to_owned(),
            reason,
        };
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| err(PatternProblem::NoScheme))?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(err(PatternProblem::Scheme)),
        };
        if rest.contains(['?', '#']) {
            return Err(err(PatternProblem::QueryOrFragment));
        }
        if rest.contains('@') {
            return Err(err(PatternProblem::Credentials));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(err(PatternProblem::NoHost));
        }
        // Split the port off, minding IPv6 brackets.
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (ip, after) = inner
                .split_once(']')
                .ok_or_else(|| err(PatternProblem::UnclosedBracket))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err(PatternProblem::JunkAfterBracket))?,
                ),
            };
            let ip: std::net::Ipv6Addr = ip.parse().map_err(|_| err(PatternProblem::Ipv6))?;
            (HostPattern::Ip(IpAddr::V6(ip).to_canonical()), port)
        } else {
            let (h, p) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            (parse_host(h).map_err(err)?, p)
        };
        let port = match port {
            None => default_port,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| err(PatternProblem::Port))?,
        };
        if path.split('/').any(|seg| seg == "." || seg == "..") {
            return Err(err(PatternProblem::DotSegment));
        }
        let path_prefix = path.trim_end_matches('/').to_owned();
        let host_text = match &host {
            HostPattern::Name(n) => n.clone(),
            HostPattern::Below(s) => format!("*.{s}"),
            HostPattern::Ip(IpAddr::V4(ip)) => ip.to_string(),
            HostPattern::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        };
        let port_text = if port == default_port {
            String::new()
        } else {
            format!(":{port}")
        };
        Ok(HttpPattern {
            raw: format!("{scheme}://{host_text}{port_text}{path_prefix}"),
            scheme,
            host,
            port,
            path_prefix,
        })
    }
}

fn parse_host(h: &str) -> Result<HostPattern, PatternProblem> {
    let h = h.trim_end_matches('.').to_ascii_lowercase();
    if let Ok(ip) = h.parse::<std::net::Ipv4Addr>() {
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest.to_owned()),
        None => (false, h.clone()),
    };
    if name.contains('*') {
        return Err(PatternProblem::WildcardNotFirst);
    }
    let labels: Vec<&str> = name.split('.').collect();
    let valid = !name.is_empty()
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !valid {
        return Err(PatternProblem::HostName(h));
    }
    if wild && labels.len() < 2 {
        return Err(PatternProblem::WildcardTooShort);
    }
    // Names made only of digits and dots would be read as IPv4 addresses by the client.
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(PatternProblem::NotAnIp(h));
    }
    Ok(if wild {
        HostPattern::Below(name)
    } else {
        HostPattern::Name(name)
    })
}

impl fmt::Display for HttpPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl serde::Serialize for HttpPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> serde::Deserialize<'de> for HttpPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HttpPattern {
        s.parse().unwrap()
    }
    fn t(s: &str) -> RequestTarget {
        RequestTarget::parse(s).unwrap()
    }

    #[test]
    fn exact_host_matches_only_that_host_scheme_and_port() {
        let pat = p("https://ipinfo.io");
        assert!(pat.matches(&t("https://ipinfo.io/8.8.8.8/json")));
        assert!(pat.matches(&t("https://IPINFO.io./x")));
        assert!(!pat.matches(&t("http://ipinfo.io/x")));
        assert!(!pat.matches(&t("https://ipinfo.io:8443/x")));
        assert!(!pat.matches(&t("https://evil-ipinfo.io/x")));
        assert!(!pat.matches(&t("https://ipinfo.io.evil.com/x")));
    }

    #[test]
    fn wildcard_matches_subdomains_but_not_the_apex() {
        let pat = p("https://*.example.com");
        assert!(pat.matches(&t("https://a.example.com/")));
        assert!(pat.matches(&t("https://a.b.example.com/")));
        assert!(!pat.matches(&t("https://example.com/")));
        assert!(!pat.matches(&t("https://badexample.com/")));
    }

    #[test]
    fn path_prefix_ends_at_a_segment_boundary() {
        let pat = p("https://api.example.com/v1/");
        assert_eq!(pat.as_str(), "https://api.example.com/v1");
        assert!(pat.matches(&t("https://api.example.com/v1")));
        assert!(pat.matches(&t("https://api.example.com/v1/users?x=1")));
        assert!(!pat.matches(&t("https://api.example.com/v10")));
        assert!(!pat.matches(&t("https://api.example.com/admin")));
        // Dot segments are resolved before matching, as the client will send them.
        assert!(!pat.matches(&t("https://api.example.com/v1/../admin")));
        assert!(!pat.matches(&t("https://api.example.com/v1/%2e%2e/admin")));
    }

    #[test]
    fn a_path_prefix_refuses_paths_a_server_could_decode_out_of_it() {
        let pat = p("https://api.example.com/v2");
        for path in ["/v2/..%2fadmin", "/v2/%2e%2e%5cadmin", "/v2/..;/admin"] {
            let target = t(&format!("https://api.example.com{path}"));
            assert_eq!(target.path, path, "the client sends it as written");
            assert!(
                matches!(pat.covers(&target), Coverage::PathEscape(_)),
                "{path}: {:?}",
                pat.covers(&target)
            );
        }
        // Without a path prefix the path is the vendor's business.
        let whole = p("https://api.example.com");
        assert_eq!(
            whole.covers(&t("https://api.example.com/v2/..%2fadmin")),
            Coverage::Yes
        );
        // Another host is not covered at all.
        assert_eq!(
            pat.covers(&t("https://other.example.com/v2/..%2fx")),
            Coverage::No
        );
    }

    #[test]
    fn ip_literals_match_only_ip_literals() {
        let pat = p("http://127.0.0.1:9000");
        assert_eq!(pat.named_ip(), Some("127.0.0.1".parse().unwrap()));
        assert!(pat.matches(&t("http://127.0.0.1:9000/a")));
        assert!(!pat.matches(&t("http://localhost:9000/a")));
        // Odd spellings of the same address are normalised by the URL parser.
        assert!(pat.matches(&t("http://0x7f.0.0.1:9000/a")));
        assert!(pat.matches(&t("http://2130706433:9000/a")));
        let v6 = p("http://[::1]:9000");
        assert!(v6.matches(&t("http://[0:0:0:0:0:0:0:1]:9000/")));
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (bad, why) in [
            ("ipinfo.io", "no scheme"),
            ("ftp://x.com", "http or https"),
            ("https://", "no host"),
            ("https://x.com:99999", "invalid port"),
            ("https://*.com", "two labels"),
            ("https://a.*.com", "first label"),
            ("https://x.com/a?b=1", "query"),
            ("https://user@x.com", "credentials"),
            ("https://x.com/a/../b", "'..'"),
            ("https://1.2.3", "IP address"),
        ] {
            let e = bad.parse::<HttpPattern>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn targets_reject_credentials_and_other_schemes() {
        assert!(RequestTarget::parse("https://u:p@x.com/").is_err());
        assert!(RequestTarget::parse("file:///etc/passwd").is_err());
        let target = t("https://x.com/a?token=secret#frag");
        assert_eq!(target.display_without_query(), "https://x.com/a");
    }
}
