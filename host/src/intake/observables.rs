//! Observables: the IP addresses, domains, URLs, hashes and e-mail addresses in an alert.
//!
//! Candidates are found with regular expressions (compiled once) and then validated by a
//! real parser where there is one: IP addresses by `std::net`, URLs by `url`. The work is
//! bounded: at most [`MAX_SCAN_BYTES`] of each string are scanned, and each kind keeps at
//! most [`MAX_PER_KIND`] distinct values (the first ones found).

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::LazyLock;

/// The most values kept per kind of observable.
pub const MAX_PER_KIND: usize = 100;

/// How much of each string is scanned, in bytes (cut on a character boundary).
pub const MAX_SCAN_BYTES: usize = 64 * 1024;

/// Observables extracted into typed fields; each list sorted and deduplicated, at most
/// [`MAX_PER_KIND`] entries each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Observables {
    /// IPv4 and IPv6 addresses, in canonical text form.
    pub ips: Vec<String>,
    /// Domain names: lower-case, no trailing dot, with a dot and a top-level domain of letters.
    pub domains: Vec<String>,
    /// http, https and ftp URLs, as serialized by the URL parser (lower-case scheme and
    /// host; `/` for an empty path).
    pub urls: Vec<String>,
    /// MD5 hashes, lower-case hex.
    pub md5: Vec<String>,
    /// SHA-1 hashes, lower-case hex.
    pub sha1: Vec<String>,
    /// SHA-256 hashes, lower-case hex.
    pub sha256: Vec<String>,
    /// E-mail addresses, lower-case.
    pub emails: Vec<String>,
}

impl Observables {
    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        *self == Observables::default()
    }
}

/// Extract observables from every string in a JSON value (recursively; keys are not
/// scanned). For plain text, pass a `Value::String`.
pub fn extract_observables(value: &Value) -> Observables {
    let mut collector = Collector::default();
    collector.add_value(value);
    collector.finish()
}

/// Extensions that make `name.ext` a file name rather than a domain. None of them is a
/// top-level domain in use (".zip", ".mov", ".sh" and ".py" are, so they are not here).
const FILE_EXTENSIONS: &[&str] = &[
    "bak", "bat", "bin", "cab", "cfg", "cmd", "conf", "cpl", "csv", "dat", "db", "dll", "doc", "docm",
    "docx", "drv", "exe", "gif", "gz", "hta", "htm", "html", "img", "ini", "iso", "jar", "jpeg", "jpg", "js",
    "json", "jse", "lnk", "log", "msi", "ocx", "old", "pdf", "php", "png", "ppt", "pptx", "rar", "rtf",
    "scr", "sys", "tar", "tgz", "tmp", "txt", "vbe", "vbs", "wsf", "xls", "xlsm", "xlsx", "xml", "yaml",
    "yml",
];

static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:https?|ftp)://(?:\[[0-9a-f:.]+\])?[^\s<>"'`{}|\\^\[\]]*"#).expect("URL regex")
});

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)\b[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}\b")
        .expect("e-mail regex")
});

static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)\b(?:\d{1,3}\.){3}\d{1,3}\b").expect("IPv4 regex"));

static IPV6: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)(?:[0-9a-f]{0,4}:){2,8}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9a-f]{0,4})").expect("IPv6 regex")
});

static HEX: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i-u)[0-9a-f]{32,}").expect("hex regex"));

static DOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}\b").expect("domain regex")
});

/// The matches of `regex` in `text`, or none without searching when `worth_it` is false.
fn searched<'t>(regex: &Regex, text: &'t str, worth_it: bool) -> impl Iterator<Item = regex::Match<'t>> {
    worth_it.then(|| regex.find_iter(text)).into_iter().flatten()
}

/// Accumulates observables of every kind, deduplicated and capped.
#[derive(Debug, Default)]
pub(super) struct Collector {
    ips: Kind,
    domains: Kind,
    urls: Kind,
    md5: Kind,
    sha1: Kind,
    sha256: Kind,
    emails: Kind,
}

/// The distinct values of one kind, at most [`MAX_PER_KIND`].
#[derive(Debug, Default)]
struct Kind(BTreeSet<String>);

impl Kind {
    fn insert(&mut self, value: String) {
        if self.0.len() < MAX_PER_KIND {
            self.0.insert(value);
        }
    }

    fn is_full(&self) -> bool {
        self.0.len() >= MAX_PER_KIND
    }

    fn into_vec(self) -> Vec<String> {
        self.0.into_iter().collect()
    }
}

impl Collector {
    /// Scan every string in `value`, recursively; keys are not scanned.
    pub(super) fn add_value(&mut self, value: &Value) {
        match value {
            Value::String(text) => self.add_text(text),
            Value::Array(items) => items.iter().for_each(|item| self.add_value(item)),
            Value::Object(fields) => fields.values().for_each(|field| self.add_value(field)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Scan free text (its first [`MAX_SCAN_BYTES`]).
    pub(super) fn add_text(&mut self, text: &str) {
        if self.is_full() {
            return;
        }
        let text = head(text, MAX_SCAN_BYTES);
        // Every kind needs one of these bytes (a dot, a colon, an at sign) or 32 characters for
        // a hash: most strings in an alert ("fw", "conn", "8333") have none, and skipping
        // their six regex searches is most of what extraction costs at high intake rates.
        let (has_dot, has_colon, has_at) = (text.contains('.'), text.contains(':'), text.contains('@'));
        if !has_dot && !has_colon && !has_at && text.len() < 32 {
            return;
        }

        // Where URLs and e-mail addresses are: the domain scan skips them, so that a URL's
        // path (`/js/jquery.min`) or an address's local part (`first.last@`) is no domain.
        let mut taken: Vec<(usize, usize)> = Vec::new();

        for found in searched(&URL, text, has_colon) {
            taken.push((found.start(), found.end()));
            if let Some(url) = parse_url(found.as_str()) {
                match url.host() {
                    Some(url::Host::Domain(domain)) => self.add_domain(domain),
                    Some(url::Host::Ipv4(ip)) => self.add_ip(IpAddr::V4(ip)),
                    Some(url::Host::Ipv6(ip)) => self.add_ip(IpAddr::V6(ip)),
                    None => {}
                }
                self.urls.insert(url.into());
            }
        }

        for found in searched(&EMAIL, text, has_at) {
            taken.push((found.start(), found.end()));
            let email = found.as_str().to_ascii_lowercase();
            let Some((local, domain)) = email.rsplit_once('@') else {
                continue;
            };
            if local.len() > 64 {
                continue;
            }
            if let Some(domain) = normalize_domain(domain) {
                self.domains.insert(domain);
                self.emails.insert(email);
            }
        }

        for found in searched(&IPV4, text, has_dot) {
            if in_longer_dotted_number(text.as_bytes(), found.start(), found.end()) {
                continue;
            }
            if let Ok(ip) = found.as_str().parse::<IpAddr>() {
                self.add_ip(ip);
            }
        }

        for found in searched(&IPV6, text, has_colon) {
            if !stands_alone_ipv6(text.as_bytes(), found.start(), found.end()) || found.as_str() == "::" {
                continue;
            }
            if let Ok(ip) = found.as_str().parse::<std::net::Ipv6Addr>() {
                self.add_ip(IpAddr::V6(ip));
            }
        }

        for found in searched(&HEX, text, text.len() >= 32) {
            let hex = found.as_str();
            // A hash has both digits and letters; a run of one or the other is something else.
            if !hex.bytes().any(|b| b.is_ascii_digit()) || !hex.bytes().any(|b| b.is_ascii_alphabetic()) {
                continue;
            }
            let kind = match hex.len() {
                32 => &mut self.md5,
                40 => &mut self.sha1,
                64 => &mut self.sha256,
                _ => continue,
            };
            kind.insert(hex.to_ascii_lowercase());
        }

        // Domain matches come in order: walk the sorted spans once, keeping how far the spans
        // that start at or before the match reach.
        taken.sort_unstable();
        let (mut next, mut reach) = (0, 0);
        for found in searched(&DOMAIN, text, has_dot || has_at) {
            while next < taken.len() && taken[next].0 <= found.start() {
                reach = reach.max(taken[next].1);
                next += 1;
            }
            if found.start() >= reach {
                self.add_domain(found.as_str());
            }
        }
    }

    /// Add an IP address.
    pub(super) fn add_ip(&mut self, ip: IpAddr) {
        self.ips.insert(ip.to_string());
    }

    /// Add a domain name, if it is one (see [`normalize_domain`]).
    pub(super) fn add_domain(&mut self, name: &str) {
        if let Some(domain) = normalize_domain(name) {
            self.domains.insert(domain);
        }
    }

    fn is_full(&self) -> bool {
        [
            &self.ips,
            &self.domains,
            &self.urls,
            &self.md5,
            &self.sha1,
            &self.sha256,
            &self.emails,
        ]
        .iter()
        .all(|kind| kind.is_full())
    }

    pub(super) fn finish(self) -> Observables {
        Observables {
            ips: self.ips.into_vec(),
            domains: self.domains.into_vec(),
            urls: self.urls.into_vec(),
            md5: self.md5.into_vec(),
            sha1: self.sha1.into_vec(),
            sha256: self.sha256.into_vec(),
            emails: self.emails.into_vec(),
        }
    }
}

/// A domain name in canonical form (lower-case, no trailing dot), or `None` if `name` is not
/// one: it needs at least two labels, labels of letters, digits, `-` and `_` (not at either
/// end) of at most 63 characters, at most 253 characters in all, and a top-level domain of 2
/// to 24 letters that is not a common file extension (so `invoice.exe` is not a domain).
pub(super) fn normalize_domain(name: &str) -> Option<String> {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.len() > 253 {
        return None;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let (tld, _) = labels.split_last()?;
    if labels.len() < 2 || !(2..=24).contains(&tld.len()) || !tld.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    if FILE_EXTENSIONS.contains(tld) {
        return None;
    }
    let valid_label = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if !labels.iter().all(valid_label) {
        return None;
    }
    Some(name)
}

/// An http, https or ftp URL with a host, from a regex match (trailing punctuation, and a
/// closing parenthesis that was never opened, are not part of it).
fn parse_url(candidate: &str) -> Option<url::Url> {
    let mut candidate = candidate;
    loop {
        let trimmed = candidate.trim_end_matches(['.', ',', ';', ':', '!', '?']);
        let trimmed = match trimmed.strip_suffix(')') {
            Some(inner) if trimmed.matches('(').count() < trimmed.matches(')').count() => inner,
            _ => trimmed,
        };
        if trimmed.len() == candidate.len() {
            break;
        }
        candidate = trimmed;
    }
    observable_url(candidate)
}

/// `text` as a URL that counts as an observable: http, https or ftp, with a host. Its
/// canonical form is `url`'s serialisation (lower-case scheme and host, `/` for an empty
/// path). Shared with indicators.
pub(crate) fn observable_url(text: &str) -> Option<url::Url> {
    let url = url::Url::parse(text).ok()?;
    let scheme_ok = matches!(url.scheme(), "http" | "https" | "ftp");
    (scheme_ok && url.host().is_some()).then_some(url)
}

/// Whether the dotted quad at `start..end` is part of a longer dotted number (a version such
/// as 1.2.3.4.5), which is not an address.
fn in_longer_dotted_number(text: &[u8], start: usize, end: usize) -> bool {
    let before = start >= 2 && text[start - 1] == b'.' && text[start - 2].is_ascii_digit();
    let after = end + 1 < text.len() && text[end] == b'.' && text[end + 1].is_ascii_digit();
    before || after
}

/// Whether the IPv6 candidate at `start..end` is not glued to a word or other colons (as in
/// `std::net` or a longer hex string).
fn stands_alone_ipv6(text: &[u8], start: usize, end: usize) -> bool {
    let glued = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let before_ok = start == 0 || !(glued(text[start - 1]) || text[start - 1] == b'.');
    let after_ok = end == text.len() || !glued(text[end]);
    before_ok && after_ok
}

/// The first `max` bytes of `text`, cut back to a character boundary.
fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> Observables {
        extract_observables(&Value::String(s.to_string()))
    }

    const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
    const SHA1: &str = "da39a3ee5e6b4b0d3255bfef95601890afd80709";
    const SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn ipv4_addresses_are_validated() {
        let found = text("from 10.1.2.3 to 999.1.1.1 via 192.168.0.1, not 1.2.3.4.5 or 01.2.3.4");
        assert_eq!(found.ips, vec!["10.1.2.3", "192.168.0.1"]);
        assert!(found.domains.is_empty());
    }

    #[test]
    fn ipv6_addresses_are_canonical() {
        let found = text("src=2001:DB8:0:0:0:0:0:1 dst=[fe80::1]:443 loopback ::1.");
        assert_eq!(found.ips, vec!["2001:db8::1", "::1", "fe80::1"]);
    }

    #[test]
    fn things_that_only_look_like_ipv6_are_not() {
        let found = text("at 22:14:15 on 00:11:22:33:44:55, see std::net::IpAddr :: here");
        assert!(found.ips.is_empty(), "{:?}", found.ips);
    }

    #[test]
    fn urls_keep_path_and_query_and_count_their_host() {
        let found = text(
            "fetched (https://Evil.Example.com/dl/payload.bin?id=7&x=a%20b), then http://203.0.113.9:8080/x.",
        );
        assert_eq!(
            found.urls,
            vec![
                "http://203.0.113.9:8080/x",
                "https://evil.example.com/dl/payload.bin?id=7&x=a%20b"
            ]
        );
        assert_eq!(found.domains, vec!["evil.example.com"]);
        assert_eq!(found.ips, vec!["203.0.113.9"]);
    }

    #[test]
    fn url_paths_and_email_local_parts_are_not_domains() {
        let found = text("loaded https://cdn.example.com/js/jquery.min?v=3 for first.last@corp.example");
        assert_eq!(found.domains, vec!["cdn.example.com", "corp.example"]);
    }

    #[test]
    fn urls_with_ipv6_hosts_and_other_schemes() {
        let found = text("ftp://[2001:db8::2]/pub/file and mailto:x@example.org and javascript://nope");
        assert_eq!(found.urls, vec!["ftp://[2001:db8::2]/pub/file"]);
        assert_eq!(found.ips, vec!["2001:db8::2"]);
        assert_eq!(found.emails, vec!["x@example.org"]);
    }

    #[test]
    fn emails_are_lower_cased_and_their_domain_counted() {
        let found = text("reply to Alice.Smith+sec@Mail.Example.ORG now");
        assert_eq!(found.emails, vec!["alice.smith+sec@mail.example.org"]);
        assert_eq!(found.domains, vec!["mail.example.org"]);
    }

    #[test]
    fn hashes_by_length_of_a_hex_run() {
        let upper = SHA256.to_uppercase();
        let found = text(&format!(
            "md5={MD5} sha1:{SHA1} sha256 {upper} 33:{MD5}a {}",
            "1".repeat(32)
        ));
        assert_eq!(found.md5, vec![MD5]);
        assert_eq!(found.sha1, vec![SHA1]);
        assert_eq!(found.sha256, vec![SHA256]);
    }

    #[test]
    fn file_names_are_not_domains() {
        let found = text(
            "ran invoice.exe, wrote report.txt and config.json, loaded evil.dll from update.example.net",
        );
        assert_eq!(found.domains, vec!["update.example.net"]);
    }

    #[test]
    fn domains_are_lower_cased_without_trailing_dot() {
        let found = text("queried WWW.Example.COM. and a.b, e.g. this, and version v1.2.3");
        assert_eq!(found.domains, vec!["www.example.com"]);
    }

    #[test]
    fn duplicates_are_removed_and_lists_sorted() {
        let found = extract_observables(&json!({
            "a": "10.0.0.2 and 10.0.0.1",
            "b": ["10.0.0.1", {"c": "10.0.0.2", "10.9.9.9": 1}],
            "d": 42,
        }));
        assert_eq!(found.ips, vec!["10.0.0.1", "10.0.0.2"], "keys are not scanned");
    }

    #[test]
    fn each_kind_is_capped() {
        let many: Vec<String> = (0..300)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect();
        let found = text(&many.join(" "));
        assert_eq!(found.ips.len(), MAX_PER_KIND);
        let more = extract_observables(&json!(many));
        assert_eq!(more.ips.len(), MAX_PER_KIND);
    }

    #[test]
    fn only_the_head_of_a_long_string_is_scanned() {
        let padding = "é".repeat(MAX_SCAN_BYTES / 2);
        let found = text(&format!("10.0.0.1 {padding} 10.0.0.2"));
        assert_eq!(found.ips, vec!["10.0.0.1"]);
    }

    #[test]
    fn nothing_found_is_empty() {
        assert!(text("nothing to see here").is_empty());
        assert!(extract_observables(&json!(null)).is_empty());
    }

    #[test]
    fn normalize_domain_rules() {
        assert_eq!(
            normalize_domain("WWW.Netflix.com.").as_deref(),
            Some("www.netflix.com")
        );
        assert_eq!(
            normalize_domain("_dmarc.example.com").as_deref(),
            Some("_dmarc.example.com")
        );
        assert_eq!(normalize_domain("localhost"), None);
        assert_eq!(normalize_domain("1.2.3.4"), None);
        assert_eq!(normalize_domain("-bad.example.com"), None);
        assert_eq!(normalize_domain("a..example.com"), None);
        assert_eq!(normalize_domain("invoice.exe"), None);
    }
}
