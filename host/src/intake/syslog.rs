//! Syslog lines, RFC 5424 or RFC 3164, parsed with `syslog_loose`.
//!
//! `syslog_loose` turns almost any text into a message, so a line counts as syslog only if
//! it starts with a priority `<N>` (0 to 191). A priority followed by neither format is
//! still a message: the rest of the line is its text, and `data.protocol` is null.
//!
//! Timestamps without a zone are taken as UTC. RFC 3164 timestamps have no year, and get
//! the current one (the previous one for a date more than a month ahead, such as a December
//! message read in January).

use super::observables::Collector;
use super::{Alert, IntakeError, Severity, title_from};
use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value, json};
use syslog_loose::{IncompleteDate, Message, ProcId, Protocol, SyslogSeverity, Variant};

/// The highest priority: facility 23 (local7), severity 7 (debug).
const MAX_PRIORITY: u8 = 191;

/// Parse one line into an alert (source "syslog"). `now` gives the year of RFC 3164
/// timestamps.
pub(super) fn parse_line(line: &str, now: DateTime<Utc>) -> Result<Alert, IntakeError> {
    let line = line.trim();
    let (priority, rest) = split_priority(line)?;
    let parsed =
        syslog_loose::parse_message_with_year_exact_tz(line, year_for(now), Some(Utc), Variant::Either).ok();
    let protocol = parsed.as_ref().map(|message| match message.protocol {
        Protocol::RFC3164 => "rfc3164",
        Protocol::RFC5424(_) => "rfc5424",
    });
    // A priority followed by neither format (as some small devices send): the rest is the
    // message.
    let message = parsed.unwrap_or_else(|| {
        let (facility, severity) = syslog_loose::decompose_pri(priority);
        Message {
            protocol: Protocol::RFC3164,
            facility,
            severity,
            timestamp: None,
            hostname: None,
            appname: None,
            procid: None,
            msgid: None,
            structured_data: Vec::new(),
            msg: rest,
        }
    });

    let text = message.msg.trim_start_matches('\u{feff}').trim();
    let severity = message.severity.map_or(Severity::Info, severity);

    let mut structured_data = Map::new();
    for element in &message.structured_data {
        let params = structured_data
            .entry(element.id.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(params) = params {
            for (name, value) in element.params() {
                params.insert(name.to_string(), Value::String(value));
            }
        }
    }

    let mut observables = Collector::default();
    observables.add_text(text);
    structured_data
        .values()
        .for_each(|params| observables.add_value(params));

    let title = match title_from(text) {
        title if !title.is_empty() => title,
        _ => match (message.appname, message.hostname) {
            (Some(app), Some(host)) => format!("syslog from {app} on {host}"),
            (None, Some(name)) | (Some(name), None) => format!("syslog from {name}"),
            (None, None) => "syslog message".to_string(),
        },
    };
    let procid = message.procid.as_ref().map(|procid| match procid {
        ProcId::PID(pid) => json!(pid),
        ProcId::Name(name) => json!(name),
    });

    Ok(Alert {
        source: "syslog".to_string(),
        title,
        severity,
        occurred_at: message.timestamp.map(|time| time.timestamp_millis()),
        data: json!({
            "protocol": protocol,
            "facility": message.facility.map(|facility| facility.as_str()),
            "severity": message.severity.map(|severity| severity.as_str()),
            "hostname": message.hostname,
            "appname": message.appname,
            "procid": procid,
            "msgid": message.msgid,
            "structured_data": structured_data,
            "message": text,
        }),
        observables: observables.finish(),
        raw: Some(line.to_string()),
    })
}

/// The priority `<N>` (0 to 191) the line must start with, and the rest of the line.
fn split_priority(line: &str) -> Result<(u8, &str), IntakeError> {
    let (digits, rest) = line
        .strip_prefix('<')
        .and_then(|after| after.split_once('>'))
        .ok_or(IntakeError::MissingPriority)?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntakeError::MissingPriority);
    }
    match digits.parse::<u8>() {
        Ok(priority) if priority <= MAX_PRIORITY => Ok((priority, rest.trim())),
        _ => Err(IntakeError::PriorityOutOfRange {
            digits: digits.to_owned(),
            max: MAX_PRIORITY,
        }),
    }
}

/// Syslog severities to alert severities.
fn severity(severity: SyslogSeverity) -> Severity {
    match severity {
        SyslogSeverity::SEV_EMERG | SyslogSeverity::SEV_ALERT | SyslogSeverity::SEV_CRIT => {
            Severity::Critical
        }
        SyslogSeverity::SEV_ERR => Severity::High,
        SyslogSeverity::SEV_WARNING => Severity::Medium,
        SyslogSeverity::SEV_NOTICE => Severity::Low,
        SyslogSeverity::SEV_INFO | SyslogSeverity::SEV_DEBUG => Severity::Info,
    }
}

/// The year for an RFC 3164 date (month, day, hour, minute, second): `now`'s, or the year
/// before when the month is more than one month ahead of `now`'s.
fn year_for(now: DateTime<Utc>) -> impl Fn(IncompleteDate) -> i32 + Copy {
    let (year, month) = (now.year(), now.month());
    move |(message_month, ..): IncompleteDate| {
        if message_month > month + 1 { year - 1 } else { year }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 20, 8, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn alert(line: &str) -> Alert {
        match parse_line(line, now()) {
            Ok(alert) => alert,
            Err(e) => panic!("expected an alert from {line}, got {e}"),
        }
    }

    fn millis(year: i32, month: u32, day: u32, h: u32, m: u32, s: u32) -> Option<i64> {
        Utc.with_ymd_and_hms(year, month, day, h, m, s)
            .single()
            .map(|t| t.timestamp_millis())
    }

    #[test]
    fn rfc5424_with_structured_data() {
        let line = r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][origin ip="192.0.2.1"] An application event log entry from 198.51.100.7..."#;
        let alert = alert(line);
        assert_eq!(alert.source, "syslog");
        assert_eq!(alert.title, "An application event log entry from 198.51.100.7...");
        assert_eq!(alert.severity, Severity::Low, "notice");
        assert_eq!(
            alert.occurred_at,
            millis(2003, 10, 11, 22, 14, 15).map(|ms| ms + 3)
        );
        assert_eq!(
            alert.data,
            json!({
                "protocol": "rfc5424",
                "facility": "local4",
                "severity": "notice",
                "hostname": "mymachine.example.com",
                "appname": "evntslog",
                "procid": null,
                "msgid": "ID47",
                "structured_data": {
                    "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                    "origin": {"ip": "192.0.2.1"},
                },
                "message": "An application event log entry from 198.51.100.7...",
            })
        );
        assert_eq!(alert.observables.ips, vec!["192.0.2.1", "198.51.100.7"]);
        assert!(
            alert.observables.domains.is_empty(),
            "the reporting host is not an observable"
        );
        assert_eq!(alert.raw.as_deref(), Some(line));
    }

    #[test]
    fn rfc5424_with_a_pid_and_no_structured_data() {
        let alert = alert(
            "<11>1 2024-05-01T12:00:00+02:00 web01 nginx 4242 - - upstream http://evil.example.net/x failed",
        );
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, millis(2024, 5, 1, 10, 0, 0));
        assert_eq!(alert.data["procid"], 4242);
        assert_eq!(alert.data["msgid"], Value::Null);
        assert_eq!(alert.data["structured_data"], json!({}));
        assert_eq!(alert.observables.urls, vec!["http://evil.example.net/x"]);
    }

    #[test]
    fn rfc3164() {
        let line = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8";
        let alert = alert(line);
        assert_eq!(alert.title, "'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.occurred_at, millis(2024, 10, 11, 22, 14, 15));
        assert_eq!(alert.data["protocol"], "rfc3164");
        assert_eq!(alert.data["facility"], "auth");
        assert_eq!(alert.data["severity"], "crit");
        assert_eq!(alert.data["hostname"], "mymachine");
        assert_eq!(alert.data["appname"], "su");
        assert_eq!(
            alert.data["message"],
            "'su root' failed for lonvick on /dev/pts/8"
        );
        assert!(alert.observables.is_empty());
    }

    #[test]
    fn rfc3164_with_a_pid_and_an_address() {
        let alert = alert(
            "<86>Nov 19 07:30:01 gw sshd[1234]: Failed password for root from 203.0.113.5 port 22 ssh2",
        );
        assert_eq!(alert.severity, Severity::Info);
        assert_eq!(alert.data["appname"], "sshd");
        assert_eq!(alert.data["procid"], 1234);
        assert_eq!(alert.observables.ips, vec!["203.0.113.5"]);
    }

    #[test]
    fn rfc3164_dates_ahead_of_now_are_last_year() {
        // now() is in November 2024.
        assert_eq!(
            alert("<13>Jan 05 10:00:00 host app: earlier").occurred_at,
            millis(2024, 1, 5, 10, 0, 0)
        );
        assert_eq!(
            alert("<13>Dec 31 23:59:59 host app: next month").occurred_at,
            millis(2024, 12, 31, 23, 59, 59)
        );
        let at_new_year = Utc
            .with_ymd_and_hms(2025, 1, 1, 0, 0, 5)
            .single()
            .unwrap_or_default();
        let late = parse_line("<13>Dec 31 23:59:59 host app: late", at_new_year).ok();
        assert_eq!(late.and_then(|a| a.occurred_at), millis(2024, 12, 31, 23, 59, 59));
        let skewed = parse_line("<13>Jan 02 00:00:00 host app: clock ahead", at_new_year).ok();
        assert_eq!(skewed.and_then(|a| a.occurred_at), millis(2025, 1, 2, 0, 0, 0));
    }

    #[test]
    fn severities() {
        let cases = [
            (0, Severity::Critical),
            (1, Severity::Critical),
            (2, Severity::Critical),
            (3, Severity::High),
            (4, Severity::Medium),
            (5, Severity::Low),
            (6, Severity::Info),
            (7, Severity::Info),
        ];
        for (level, expected) in cases {
            let line = format!("<{}>Oct 11 22:14:15 host app: message", 8 + level);
            assert_eq!(alert(&line).severity, expected, "{line}");
        }
    }

    #[test]
    fn long_messages_make_a_short_title() {
        let long = "x".repeat(500);
        let alert = alert(&format!("<14>Oct 11 22:14:15 host app: {long}"));
        assert_eq!(alert.title.chars().count(), crate::intake::MAX_TITLE_CHARS);
        assert_eq!(alert.data["message"], long.as_str());
    }

    #[test]
    fn lines_that_are_not_syslog() {
        for line in [
            "just some text",
            "Oct 11 22:14:15 host app: no priority",
            "<abc>hello",
            "<34 hello",
        ] {
            let message = parse_line(line, now())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                message.starts_with("not a syslog message: missing <PRI>"),
                "{line}: {message}"
            );
        }
        let message = parse_line("<999>Oct 11 22:14:15 host app: x", now())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("out of range"), "{message}");
        let message = parse_line("<192>Oct 11 22:14:15 host app: x", now())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(message.contains("out of range"), "{message}");
    }

    #[test]
    fn a_priority_and_free_text_is_a_message() {
        let free = alert("<12>link down on port 7, peer 10.9.8.7");
        assert_eq!(free.title, "link down on port 7, peer 10.9.8.7");
        assert_eq!(free.severity, Severity::Medium);
        assert_eq!(free.occurred_at, None);
        assert_eq!(free.data["protocol"], Value::Null);
        assert_eq!(free.data["facility"], "user");
        assert_eq!(free.data["hostname"], Value::Null);
        assert_eq!(free.observables.ips, vec!["10.9.8.7"]);
        assert_eq!(alert("<13>").title, "syslog message");
    }
}
