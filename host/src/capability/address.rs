//! Which IP addresses a plugin may connect to without the operator naming them.
//!
//! Only globally routable unicast addresses are open by default. Loopback, private,
//! link-local (which includes cloud metadata at 169.254.169.254), shared (CGNAT),
//! multicast, unspecified, documentation and reserved ranges are refused unless the grant
//! names the address (in a pattern) or its range (in `private_ranges`). This is the guard
//! against server-side request forgery and DNS rebinding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public; `None` from [`restriction`] means it is.
pub fn restriction(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => restriction_v4(v4),
        IpAddr::V6(v6) => restriction_v6(v6),
    }
}

fn restriction_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (127, _, _) => "loopback",
        (10, _, _) => "private (10.0.0.0/8)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (169, 254, _) => "link-local (169.254.0.0/16, includes cloud metadata)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

fn restriction_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return restriction_v4(v4);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    Some(match s[0] {
        0xff00..=0xffff => "multicast",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        0x2001 if s[1] < 0x0200 => "IETF special purpose (2001::/23, includes Teredo)",
        // 6to4 embeds an IPv4 address; judge it by that address.
        0x2002 => {
            let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
            return restriction_v4(v4).map(|_| "6to4 wrapping a non-public IPv4 address");
        }
        // NAT64 (64:ff9b::/96) embeds an IPv4 address too.
        0x0064 if s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] => {
            let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            return restriction_v4(v4).map(|_| "NAT64 wrapping a non-public IPv4 address");
        }
        0x0000 => "reserved (::/8, includes IPv4-compatible addresses)",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Option<&'static str> {
        restriction(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_are_open() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "34.117.59.81",
            "2606:4700:4700::1111",
            "2a00:1450::1",
        ] {
            assert_eq!(r(ip), None, "{ip}");
        }
    }

    #[test]
    fn non_public_addresses_are_refused_with_a_reason() {
        for (ip, why) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("::1", "loopback"),
            ("10.0.0.1", "private"),
            ("172.16.5.4", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "metadata"),
            ("100.64.0.1", "shared"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "metadata"),
            ("2002:7f00:1::", "6to4"),
            ("64:ff9b::a00:1", "NAT64"),
            ("192.0.2.1", "documentation"),
        ] {
            let got = r(ip).unwrap_or_else(|| panic!("{ip} should be restricted"));
            assert!(got.contains(why), "{ip}: {got}");
        }
    }
}
