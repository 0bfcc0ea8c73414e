//! The checks and canonical forms that list entries (`lists.rs`) and indicators
//! (`indicators.rs`) share: a value trimmed and without white space, an IP address or
//! network, a host name; and how a value is shown in an error message.

use std::net::IpAddr;

/// `raw` trimmed, or why it cannot be a value: empty, longer than `max_len` characters
/// (`shown_max` in the message), or with white space or control characters inside. Shared
/// with indicators.
pub(crate) fn trimmed_value(raw: &str, max_len: usize, shown_max: usize) -> Result<&str, String> {
    let v = raw.trim();
    if v.is_empty() {
        return Err("it is empty".into());
    }
    if v.chars().count() > max_len {
        return Err(format!("it is longer than {shown_max} characters"));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains white space or control characters".into());
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
pub(crate) fn host_name(v: &str) -> Result<String, String> {
    let lower = v.to_ascii_lowercase();
    let host = lower.strip_suffix('.').unwrap_or(&lower);
    check_host_name(host, false)?;
    Ok(host.to_owned())
}

/// A DNS name: labels of letters, digits, '-' and '_', 1 to 63 long, 253 in all. With
/// `wildcards`, a label may also be `*` or `^` (PAN-OS URL lists' token wildcards).
pub(super) fn check_host_name(host: &str, wildcards: bool) -> Result<(), String> {
    if host.is_empty() {
        return Err("it has no host name".into());
    }
    if !host.is_ascii() {
        return Err("it is not ASCII; write internationalised names in their xn-- (punycode) form".into());
    }
    if host.len() > 253 {
        return Err("the host name is longer than 253 characters".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (a leading dot or two dots in a row)".into());
        }
        if wildcards && (label == "*" || label == "^") {
            continue;
        }
        if label.len() > 63 {
            return Err(format!("the label '{label}' is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            let wildcard = if wildcards {
                "a wildcard is a whole label, '*' or '^'"
            } else {
                "a wildcard is allowed only as a leading '*.'"
            };
            return Err(format!(
                "the label '{label}' may hold only letters, digits, '-' and '_' ({wildcard})"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label '{label}' starts or ends with '-'"));
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
