//! The checks and canonical forms that list entries (`lists.rs`) and indicators
//! (`indicators.rs`) share: a value trimmed and without white space, an IP address or
//! network, a host name; and how a value is shown in an error message.

use std::net::IpAddr;
use thiserror::Error;

/// Why a value is not a valid list entry or indicator, in the words of the checks both share.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    #[error("it is empty")]
    Empty,
    #[error("it is longer than {0} characters")]
    TooLong(usize),
    #[error("it contains white space or control characters")]
    WhiteSpace,
    #[error("it has no host name")]
    NoHost,
    #[error("it is not ASCII; write internationalised names in their xn-- (punycode) form")]
    NotAscii,
    #[error("the host name is longer than 253 characters")]
    HostTooLong,
    #[error("it has an empty label (a leading dot or two dots in a row)")]
    EmptyLabel,
    #[error("the label '{0}' is longer than 63 characters")]
    LabelTooLong(String),
    #[error(
        "the label '{label}' may hold only letters, digits, '-' and '_' ({})",
        wildcard_rule(*.wildcards)
    )]
    LabelCharacters { label: String, wildcards: bool },
    #[error("the label '{0}' starts or ends with '-'")]
    LabelHyphen(String),
}

/// Where a wildcard may be in a host name: a whole label in URLs, a leading `*.` in domains.
fn wildcard_rule(wildcards: bool) -> &'static str {
    if wildcards {
        "a wildcard is a whole label, '*' or '^'"
    } else {
        "a wildcard is allowed only as a leading '*.'"
    }
}

/// `raw` trimmed, or why it cannot be a value: empty, longer than `max_len` characters
/// (`shown_max` in the message), or with white space or control characters inside. Shared
/// with indicators.
pub(crate) fn trimmed_value(raw: &str, max_len: usize, shown_max: usize) -> Result<&str, ValueError> {
    let v = raw.trim();
    if v.is_empty() {
        return Err(ValueError::Empty);
    }
    if v.chars().count() > max_len {
        return Err(ValueError::TooLong(shown_max));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ValueError::WhiteSpace);
    }
    Ok(v)
}

/// An IP address, or a network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpValue {
    Address(IpAddr),
    Network(ipnet::IpNet),
}

impl std::fmt::Display for IpValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpValue::Address(a) => a.fmt(f),
            IpValue::Network(n) => n.fmt(f),
        }
    }
}

/// `v` as an address or a CIDR cut to its network (`10.1.2.3/8` is `10.0.0.0/8`); a host
/// prefix (`/32`, `/128`) is the address itself. `None` if it is neither. Shared with
/// indicators.
pub(crate) fn ip_value(v: &str) -> Option<IpValue> {
    if let Ok(addr) = v.parse::<IpAddr>() {
        return Some(IpValue::Address(addr));
    }
    let net = v.parse::<ipnet::IpNet>().ok()?.trunc();
    Some(if net.prefix_len() == net.max_prefix_len() {
        IpValue::Address(net.addr())
    } else {
        IpValue::Network(net)
    })
}

/// A host name in canonical form: lower-case, without a trailing dot, checked label by label
/// (no wildcards). Shared with indicators.
pub(crate) fn host_name(v: &str) -> Result<String, ValueError> {
    let lower = v.to_ascii_lowercase();
    let host = lower.strip_suffix('.').unwrap_or(&lower);
    check_host_name(host, false)?;
    Ok(host.to_owned())
}

/// A DNS name: labels of letters, digits, '-' and '_', 1 to 63 long, 253 in all. With
/// `wildcards`, a label may also be `*` or `^` (PAN-OS URL lists' token wildcards).
pub(super) fn check_host_name(host: &str, wildcards: bool) -> Result<(), ValueError> {
    if host.is_empty() {
        return Err(ValueError::NoHost);
    }
    if !host.is_ascii() {
        return Err(ValueError::NotAscii);
    }
    if host.len() > 253 {
        return Err(ValueError::HostTooLong);
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(ValueError::EmptyLabel);
        }
        if wildcards && (label == "*" || label == "^") {
            continue;
        }
        if label.len() > 63 {
            return Err(ValueError::LabelTooLong(label.to_owned()));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ValueError::LabelCharacters {
                label: label.to_owned(),
                wildcards,
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(ValueError::LabelHyphen(label.to_owned()));
        }
    }
    Ok(())
}

/// A value for an error message: trimmed, and cut if it is very long.
pub(crate) fn shown(raw: &str) -> String {
    let raw = raw.trim();
    if raw.chars().count() > 80 {
        format!("{}…", raw.chars().take(80).collect::<String>())
    } else {
        raw.to_owned()
    }
}
