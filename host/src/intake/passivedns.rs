//! PassiveDNS lines, as gamelinux/passivedns writes them by default (fields "SMcsCQTAtn"):
//!
//! ```text
//! ts||client||server||class||query||type||answer||ttl||count
//! 1322849924.408856||10.1.1.1||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1
//! ```
//!
//! `ts` is Unix seconds with microseconds; `query` and `answer` end with the root dot. For a
//! failed lookup (when NXDOMAIN records are logged) the answer is the response code, such
//! as "NXDOMAIN".

use super::observables::Collector;
use super::{Alert, IntakeError, Severity, title_from};
use serde_json::json;
use std::net::IpAddr;

/// The field names, in the order of the line; also the keys of the alert's `data`.
pub(super) const FIELDS: [&str; 9] = [
    "ts", "client", "server", "class", "query", "type", "answer", "ttl", "count",
];

/// Parse one line into an alert (source "passivedns", severity info).
pub(super) fn parse_line(line: &str) -> Result<Alert, IntakeError> {
    let fields: Vec<&str> = line.trim().split("||").map(str::trim).collect();
    let &[ts, client, server, class, query, rtype, answer, ttl, count] = fields.as_slice() else {
        return Err(IntakeError::FieldCount { found: fields.len() });
    };
    let occurred_at = parse_timestamp(ts).ok_or_else(|| IntakeError::Timestamp(ts.to_owned()))?;
    let client_ip = parse_ip("client", client)?;
    let server_ip = parse_ip("server", server)?;
    let query = without_root_dot(query);
    let answer = without_root_dot(answer);
    let ttl: u64 = ttl.parse().map_err(|_| IntakeError::Ttl(ttl.to_owned()))?;
    let count: u64 = count.parse().map_err(|_| IntakeError::Count(count.to_owned()))?;

    let mut observables = Collector::default();
    observables.add_ip(client_ip);
    observables.add_ip(server_ip);
    observables.add_domain(query);
    match rtype.to_ascii_uppercase().as_str() {
        "A" | "AAAA" => {
            if let Ok(ip) = answer.parse::<IpAddr>() {
                observables.add_ip(ip);
            }
        }
        // The name is the last word: "10 mx.example.com" for MX, "0 5 5060 sip.example.com"
        // for SRV, the name alone for the others.
        "CNAME" | "DNAME" | "NS" | "PTR" | "MX" | "SRV" => {
            if let Some(name) = answer.split_whitespace().last() {
                observables.add_domain(without_root_dot(name));
            }
        }
        // TXT, SOA and the rest hold no single observable of the lookup.
        _ => {}
    }

    Ok(Alert {
        source: "passivedns".to_string(),
        title: title_from(&format!("DNS {rtype} {query} → {answer}")),
        severity: Severity::Info,
        occurred_at: Some(occurred_at),
        data: json!({
            "ts": ts,
            "client": client,
            "server": server,
            "class": class,
            "query": query,
            "type": rtype,
            "answer": answer,
            "ttl": ttl,
            "count": count,
        }),
        observables: observables.finish(),
        raw: Some(line.to_string()),
    })
}

/// `seconds[.fraction]` to Unix milliseconds (the fraction is cut, not rounded).
fn parse_timestamp(ts: &str) -> Option<i64> {
    let (seconds, fraction) = ts.split_once('.').unwrap_or((ts, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if seconds.is_empty() || seconds.len() > 12 || !all_digits(seconds) || !all_digits(fraction) {
        return None;
    }
    let seconds: i64 = seconds.parse().ok()?;
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |n, b| n * 10 + i64::from(b - b'0'));
    seconds.checked_mul(1000)?.checked_add(millis)
}

fn parse_ip(field: &'static str, text: &str) -> Result<IpAddr, IntakeError> {
    text.parse().map_err(|_| IntakeError::Address {
        field,
        text: text.to_owned(),
    })
}

/// A name without its trailing root dot (the root itself stays ".").
fn without_root_dot(name: &str) -> &str {
    match name.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{Format, ItemError, Position, parse};

    fn alert(line: &str) -> Alert {
        match parse_line(line) {
            Ok(alert) => alert,
            Err(e) => panic!("expected an alert from {line}, got {e}"),
        }
    }

    fn error(line: &str) -> String {
        match parse_line(line) {
            Ok(alert) => panic!("expected an error from {line}, got {alert:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_a_record() {
        let line = "1322849924.408856||10.1.1.1||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1";
        let alert = alert(line);
        assert_eq!(alert.source, "passivedns");
        assert_eq!(alert.title, "DNS A www.netflix.com → 52.2.3.4");
        assert_eq!(alert.severity, Severity::Info);
        assert_eq!(alert.occurred_at, Some(1_322_849_924_408));
        assert_eq!(
            alert.data,
            json!({
                "ts": "1322849924.408856", "client": "10.1.1.1", "server": "8.8.8.8", "class": "IN",
                "query": "www.netflix.com", "type": "A", "answer": "52.2.3.4", "ttl": 300, "count": 1,
            })
        );
        assert_eq!(alert.observables.ips, vec!["10.1.1.1", "52.2.3.4", "8.8.8.8"]);
        assert_eq!(alert.observables.domains, vec!["www.netflix.com"]);
        assert_eq!(alert.raw.as_deref(), Some(line));
    }

    #[test]
    fn an_aaaa_record() {
        let alert = alert(
            "1322849924||2001:db8::53||2001:4860:4860::8888||IN||ipv6.google.com.||AAAA||2a00:1450:4001:0809:0000:0000:0000:200e||299||12",
        );
        assert_eq!(alert.occurred_at, Some(1_322_849_924_000));
        assert_eq!(
            alert.observables.ips,
            vec!["2001:4860:4860::8888", "2001:db8::53", "2a00:1450:4001:809::200e"]
        );
        assert_eq!(alert.observables.domains, vec!["ipv6.google.com"]);
        assert_eq!(alert.data["count"], 12);
    }

    #[test]
    fn a_cname_record() {
        let alert = alert(
            "1322849924.1||10.1.1.1||8.8.8.8||IN||www.netflix.com.||CNAME||Netflix.Geo.Example.NET.||60||3",
        );
        assert_eq!(alert.occurred_at, Some(1_322_849_924_100));
        assert_eq!(alert.title, "DNS CNAME www.netflix.com → Netflix.Geo.Example.NET");
        assert_eq!(alert.observables.ips, vec!["10.1.1.1", "8.8.8.8"]);
        assert_eq!(
            alert.observables.domains,
            vec!["netflix.geo.example.net", "www.netflix.com"]
        );
    }

    #[test]
    fn mx_and_nxdomain_answers() {
        let mx = alert("1322849924.5||10.1.1.1||8.8.8.8||IN||example.com.||MX||10 mail.example.com.||300||1");
        assert_eq!(mx.observables.domains, vec!["example.com", "mail.example.com"]);
        let nx = alert("1322849924.5||10.1.1.1||8.8.8.8||IN||nope.example.com.||A||NXDOMAIN||0||1");
        assert_eq!(nx.observables.ips, vec!["10.1.1.1", "8.8.8.8"]);
        assert_eq!(nx.data["answer"], "NXDOMAIN");
    }

    #[test]
    fn a_line_with_8_fields() {
        let message = error("1322849924.408856||10.1.1.1||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300");
        assert!(message.contains("expected 9 fields"), "{message}");
        assert!(message.ends_with("found 8"), "{message}");
    }

    #[test]
    fn bad_fields() {
        let message = error("yesterday||10.1.1.1||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1");
        assert!(message.starts_with("invalid timestamp 'yesterday'"), "{message}");
        assert!(
            error("-5||10.1.1.1||8.8.8.8||IN||a.com.||A||1.2.3.4||300||1").starts_with("invalid timestamp")
        );
        assert!(
            error("1.2.3||10.1.1.1||8.8.8.8||IN||a.com.||A||1.2.3.4||300||1")
                .starts_with("invalid timestamp")
        );
        assert!(
            error("1||host||8.8.8.8||IN||a.com.||A||1.2.3.4||300||1").starts_with("invalid client address")
        );
        assert!(error("1||10.1.1.1||8.8.8.8||IN||a.com.||A||1.2.3.4||soon||1").starts_with("invalid ttl"));
        assert!(error("1||10.1.1.1||8.8.8.8||IN||a.com.||A||1.2.3.4||300||-1").starts_with("invalid count"));
    }

    #[test]
    fn a_body_of_lines() {
        let body = "1322849924.408856||10.1.1.1||8.8.8.8||IN||www.netflix.com.||A||52.2.3.4||300||1\r\n\
                    \r\n\
                    garbage\r\n\
                    1322849925.000001||10.1.1.2||8.8.4.4||IN||example.org.||A||93.184.216.34||60||2\r\n";
        let results = parse(Format::PassiveDns, body.as_bytes(), "ignored");
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().err().map(|e: &ItemError| e.position),
            Some(Position::Line(3))
        );
        assert_eq!(
            results[2].as_ref().map(|a| a.occurred_at),
            Ok(Some(1_322_849_925_000))
        );
        assert_eq!(results[2].as_ref().map(|a| a.source.as_str()), Ok("passivedns"));
    }
}
