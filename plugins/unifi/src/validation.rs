//! Checking and normalising what a playbook gives: MAC addresses, IPv4 networks, rule ids.

use osprey_sdk::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

/// A MAC address in lower case with colons, from `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`,
/// `aabb.ccdd.eeff` or `aabbccddeeff`.
pub(crate) fn parse_mac(raw: &str) -> Result<String> {
    let t = raw.trim();
    let bad = || {
        Error::invalid_input(format!(
            "'{}' is not a MAC address: give six bytes in hex, such as aa:bb:cc:dd:ee:ff",
            snippet(raw, 64)
        ))
    };
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits: String = if t.contains(':') || t.contains('-') {
        let sep = if t.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = t.split(sep).collect();
        if parts.len() != 6 || !parts.iter().all(|p| hex(p, 2)) {
            return Err(bad());
        }
        parts.concat()
    } else if t.contains('.') {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 3 || !parts.iter().all(|p| hex(p, 4)) {
            return Err(bad());
        }
        parts.concat()
    } else if hex(t, 12) {
        t.to_owned()
    } else {
        return Err(bad());
    };
    let digits = digits.to_ascii_lowercase();
    let bytes: Vec<&str> = (0..6).map(|i| &digits[i * 2..i * 2 + 2]).collect();
    Ok(bytes.join(":"))
}

/// An IPv4 address or network, in canonical form.
pub(crate) fn parse_ipv4_net(field: &str, raw: &str) -> Result<String> {
    let t = raw.trim();
    let bad = |why: &str| {
        Error::invalid_input(format!(
            "{field} '{}' is not an IPv4 address or network{why}",
            snippet(raw, 64)
        ))
    };
    let (addr, prefix) = match t.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| bad(" (such as 192.168.1.23 or 192.168.1.0/24)"))?;
    let ip: Ipv4Addr = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => return Err(bad(": IPv6 rules are not supported by this action")),
    };
    match prefix {
        None => Ok(ip.to_string()),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= 32 && !p.starts_with('+') => Ok(format!("{ip}/{n}")),
            _ => Err(bad(": the prefix length must be 0 to 32")),
        },
    }
}

pub(crate) fn parse_rule_id(raw: &str) -> Result<String> {
    let t = raw.trim();
    if t.len() == 24 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(Error::invalid_input(format!(
            "'{}' is not a firewall rule id (24 hex digits, as list-firewall-rules shows)",
            snippet(raw, 64)
        )))
    }
}

pub(crate) fn snippet(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_every_usual_notation_become_lower_case_with_colons() {
        for raw in [
            "aa:bb:cc:dd:ee:0f",
            " AA-BB-CC-DD-EE-0F ",
            "aabb.ccdd.ee0f",
            "AABBCCDDEE0F",
        ] {
            assert_eq!(parse_mac(raw).unwrap(), "aa:bb:cc:dd:ee:0f", "{raw}");
        }
    }

    #[test]
    fn a_mac_that_is_not_six_hex_bytes_is_invalid_input() {
        for raw in [
            "",
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:gg",
            "aa:bb-cc:dd:ee:ff",
            "aabb.ccdd",
            "aabbccddeeff00",
        ] {
            let e = parse_mac(raw).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{raw}");
            assert!(e.message.contains("is not a MAC address"), "{}", e.message);
        }
    }

    #[test]
    fn ipv4_addresses_and_networks_are_canonical_and_ipv6_is_refused() {
        assert_eq!(
            parse_ipv4_net("src_address", " 192.168.1.23 ").unwrap(),
            "192.168.1.23"
        );
        assert_eq!(
            parse_ipv4_net("src_address", "192.168.1.0/24").unwrap(),
            "192.168.1.0/24"
        );
        let e = parse_ipv4_net("dst_address", "2001:db8::1").unwrap_err();
        assert!(
            e.message.contains("dst_address") && e.message.contains("IPv6"),
            "{}",
            e.message
        );
        for bad in ["192.168.1.0/33", "192.168.1.0/+8", "192.168.1", "host.lan"] {
            assert_eq!(
                parse_ipv4_net("src_address", bad).unwrap_err().kind,
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn rule_ids_are_24_hex_digits() {
        assert_eq!(
            parse_rule_id(" 5F0C0E3A2B1C4D5E6F708192 ").unwrap(),
            "5f0c0e3a2b1c4d5e6f708192"
        );
        let e = parse_rule_id("5f0c/../x").unwrap_err();
        assert!(e.message.contains("not a firewall rule id"), "{}", e.message);
    }

    #[test]
    fn snippets_cut_on_characters_not_bytes() {
        assert_eq!(snippet("ééé", 2), "éé");
    }
}
