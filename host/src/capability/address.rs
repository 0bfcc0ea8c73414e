//! Which IP addresses a plugin may connect to without the operator naming them.
//!
//! The source of truth is IANA's two special-purpose address registries, one row per entry
//! below: an address inside an entry whose "Globally Reachable" is False or N/A is refused
//! unless the grant names the address (in a pattern) or its range (in `private_ranges`). The
//! most specific entry decides, so the few globally reachable entries inside a refused block
//! (192.0.0.9/32 inside 192.0.0.0/24, 2001:20::/28 inside 2001::/23, ...) stay open. A few
//! blocks that are not in those registries (multicast, the reserved IPv4 and IPv6 space) are
//! refused as well. This is the guard against server-side request forgery and DNS rebinding.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The "Globally Reachable" column of a registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachable {
    /// True: open like any public address.
    Yes,
    /// False: refused unless granted.
    No,
    /// N/A (deprecated blocks, 6to4, Teredo): refused unless granted.
    NotApplicable,
}

/// One entry of a special-purpose address registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Special {
    pub prefix: IpNet,
    pub name: &'static str,
    pub rfc: &'static str,
    pub global: Reachable,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), len)
}

#[allow(clippy::too_many_arguments)]
const fn v6(a: u16, b: u16, c: u16, d: u16, e: u16, f: u16, g: u16, h: u16, len: u8) -> IpNet {
    IpNet::new_assert(IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)), len)
}

const fn row(prefix: IpNet, name: &'static str, rfc: &'static str, global: Reachable) -> Special {
    Special {
        prefix,
        name,
        rfc,
        global,
    }
}

use Reachable::{No, NotApplicable as NA, Yes};

/// The IANA IPv4 Special-Purpose Address Registry
/// (<https://www.iana.org/assignments/iana-ipv4-special-registry/>), every entry.
/// Transcribed on 2026-12-06 from IANA's registry pages, cross-checked against other
/// transcriptions (CPython's `ipaddress`, Go `netip` lists); names as IANA writes them, the
/// first RFC only, a clarification in parentheses here and there. Re-check when IANA updates
/// the registry.
#[rustfmt::skip]
pub const IPV4_REGISTRY: &[Special] = &[
    row(v4(0, 0, 0, 0, 8), "\"This network\"", "RFC 791", No),
    row(v4(0, 0, 0, 0, 32), "\"This host on this network\"", "RFC 1122", No),
    row(v4(10, 0, 0, 0, 8), "Private-Use", "RFC 1918", No),
    row(v4(100, 64, 0, 0, 10), "Shared Address Space", "RFC 6598", No),
    row(v4(127, 0, 0, 0, 8), "Loopback", "RFC 1122", No),
    row(v4(169, 254, 0, 0, 16), "Link Local (includes cloud metadata at 169.254.169.254)", "RFC 3927", No),
    row(v4(172, 16, 0, 0, 12), "Private-Use", "RFC 1918", No),
    row(v4(192, 0, 0, 0, 24), "IETF Protocol Assignments", "RFC 6890", No),
    row(v4(192, 0, 0, 0, 29), "IPv4 Service Continuity Prefix", "RFC 7335", No),
    row(v4(192, 0, 0, 8, 32), "IPv4 dummy address", "RFC 7600", No),
    row(v4(192, 0, 0, 9, 32), "Port Control Protocol Anycast", "RFC 7723", Yes),
    row(v4(192, 0, 0, 10, 32), "Traversal Using Relays around NAT Anycast", "RFC 8155", Yes),
    row(v4(192, 0, 0, 170, 32), "NAT64/DNS64 Discovery", "RFC 8880", No),
    row(v4(192, 0, 0, 171, 32), "NAT64/DNS64 Discovery", "RFC 8880", No),
    row(v4(192, 0, 2, 0, 24), "Documentation (TEST-NET-1)", "RFC 5737", No),
    row(v4(192, 31, 196, 0, 24), "AS112-v4", "RFC 7535", Yes),
    row(v4(192, 52, 193, 0, 24), "AMT", "RFC 7450", Yes),
    row(v4(192, 88, 99, 0, 24), "Deprecated (6to4 Relay Anycast)", "RFC 7526", NA),
    row(v4(192, 168, 0, 0, 16), "Private-Use", "RFC 1918", No),
    row(v4(192, 175, 48, 0, 24), "Direct Delegation AS112 Service", "RFC 7534", Yes),
    row(v4(198, 18, 0, 0, 15), "Benchmarking", "RFC 2544", No),
    row(v4(198, 51, 100, 0, 24), "Documentation (TEST-NET-2)", "RFC 5737", No),
    row(v4(203, 0, 113, 0, 24), "Documentation (TEST-NET-3)", "RFC 5737", No),
    row(v4(240, 0, 0, 0, 4), "Reserved", "RFC 1112", No),
    row(v4(255, 255, 255, 255, 32), "Limited Broadcast", "RFC 919", No),
];

/// The IANA IPv6 Special-Purpose Address Registry
/// (<https://www.iana.org/assignments/iana-ipv6-special-registry/>), every entry.
/// Transcribed on 2026-12-06 like the IPv4 table (the stored IANA page said "last updated
/// 2024-10-22"; 100:0:0:1::/64 of RFC 9780 came later and is included).
///
/// Two entries are decided here, not by their column: IPv4-mapped addresses
/// (::ffff:0:0/96) and the NAT64 well-known prefix (64:ff9b::/96) are judged by the IPv4
/// address they carry, since that is where the connection ends up. 6to4 (2002::/16) and
/// Teredo (2001::/32) are N/A in the registry and refused: both hand the packet to a relay
/// chosen by routing, not by the grant, toward an IPv4 address this table cannot vouch for;
/// refusing them is the safe choice, and no vendor API needs them.
#[rustfmt::skip]
pub const IPV6_REGISTRY: &[Special] = &[
    row(v6(0, 0, 0, 0, 0, 0, 0, 1, 128), "Loopback Address", "RFC 4291", No),
    row(v6(0, 0, 0, 0, 0, 0, 0, 0, 128), "Unspecified Address", "RFC 4291", No),
    row(v6(0, 0, 0, 0, 0, 0xffff, 0, 0, 96), "IPv4-mapped Address", "RFC 4291", No),
    row(v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96), "IPv4-IPv6 Translat.", "RFC 6052", Yes),
    row(v6(0x64, 0xff9b, 1, 0, 0, 0, 0, 0, 48), "IPv4-IPv6 Translat. (local-use NAT64)", "RFC 8215", No),
    row(v6(0x100, 0, 0, 0, 0, 0, 0, 0, 64), "Discard-Only Address Block", "RFC 6666", No),
    row(v6(0x100, 0, 0, 1, 0, 0, 0, 0, 64), "Dummy IPv6 Prefix", "RFC 9780", No),
    row(v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 23), "IETF Protocol Assignments", "RFC 2928", No),
    row(v6(0x2001, 0, 0, 0, 0, 0, 0, 0, 32), "TEREDO", "RFC 4380", NA),
    row(v6(0x2001, 1, 0, 0, 0, 0, 0, 1, 128), "Port Control Protocol Anycast", "RFC 7723", Yes),
    row(v6(0x2001, 1, 0, 0, 0, 0, 0, 2, 128), "Traversal Using Relays around NAT Anycast", "RFC 8155", Yes),
    row(v6(0x2001, 1, 0, 0, 0, 0, 0, 3, 128), "DNS-SD Service Registration Protocol Anycast", "RFC 9665", Yes),
    row(v6(0x2001, 2, 0, 0, 0, 0, 0, 0, 48), "Benchmarking", "RFC 5180", No),
    row(v6(0x2001, 3, 0, 0, 0, 0, 0, 0, 32), "AMT", "RFC 7450", Yes),
    row(v6(0x2001, 4, 0x112, 0, 0, 0, 0, 0, 48), "AS112-v6", "RFC 7535", Yes),
    row(v6(0x2001, 0x10, 0, 0, 0, 0, 0, 0, 28), "Deprecated (previously ORCHID)", "RFC 4843", NA),
    row(v6(0x2001, 0x20, 0, 0, 0, 0, 0, 0, 28), "ORCHIDv2", "RFC 7343", Yes),
    row(v6(0x2001, 0x30, 0, 0, 0, 0, 0, 0, 28), "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", Yes),
    row(v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0, 32), "Documentation", "RFC 3849", No),
    row(v6(0x2002, 0, 0, 0, 0, 0, 0, 0, 16), "6to4", "RFC 3056", NA),
    row(v6(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0, 48), "Direct Delegation AS112 Service", "RFC 7534", Yes),
    row(v6(0x3fff, 0, 0, 0, 0, 0, 0, 0, 20), "Documentation", "RFC 9637", No),
    row(v6(0x5f00, 0, 0, 0, 0, 0, 0, 0, 16), "Segment Routing (SRv6) SIDs", "RFC 9602", No),
    row(v6(0xfc00, 0, 0, 0, 0, 0, 0, 0, 7), "Unique-Local", "RFC 4193", No),
    row(v6(0xfe80, 0, 0, 0, 0, 0, 0, 0, 10), "Link-Local Unicast", "RFC 4291", No),
];

/// Refused blocks that the special-purpose registries do not list: multicast, and the IPv6
/// space outside global unicast (IANA's IPv6 Address Space registry: 2000::/3 is the only
/// block allocated for global unicast; the rest is reserved, or has its own row above).
#[rustfmt::skip]
pub const BEYOND_REGISTRIES: &[Special] = &[
    row(v4(224, 0, 0, 0, 4), "Multicast", "RFC 5771", No),
    row(v6(0, 0, 0, 0, 0, 0, 0, 0, 3), "Not global unicast (outside 2000::/3)", "RFC 4291", No),
    row(v6(0x4000, 0, 0, 0, 0, 0, 0, 0, 2), "Not global unicast (outside 2000::/3)", "RFC 4291", No),
    row(v6(0x8000, 0, 0, 0, 0, 0, 0, 0, 1), "Not global unicast (outside 2000::/3)", "RFC 4291", No),
    row(v6(0, 0, 0, 0, 0, 0, 0, 0, 8), "Reserved by IETF (includes IPv4-compatible addresses)", "RFC 4291", No),
    row(v6(0xfec0, 0, 0, 0, 0, 0, 0, 0, 10), "Site-Local (deprecated)", "RFC 3879", No),
    row(v6(0xff00, 0, 0, 0, 0, 0, 0, 0, 8), "Multicast", "RFC 4291", No),
];

/// The well-known NAT64 prefix: the gateway connects to the IPv4 address in the last 32 bits.
const NAT64: IpNet = v6(0x64, 0xff9b, 0, 0, 0, 0, 0, 0, 96);

/// Why an address is not public: the entry that refuses it, and the IPv4 address it wraps
/// when the IPv4 address is the one refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restriction {
    pub entry: &'static Special,
    pub wrapped: Option<(&'static str, Ipv4Addr)>,
}

impl std::fmt::Display for Restriction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.entry;
        if let Some((how, v4)) = self.wrapped {
            write!(f, "{how} wrapping {v4}, which is ")?;
        }
        write!(f, "in {} ({}, {})", e.prefix, e.name, e.rfc)
    }
}

/// The most specific entry that contains `ip`, if any.
pub fn entry_for(ip: IpAddr) -> Option<&'static Special> {
    IPV4_REGISTRY
        .iter()
        .chain(IPV6_REGISTRY)
        .chain(BEYOND_REGISTRIES)
        .filter(|s| s.prefix.contains(&ip))
        .max_by_key(|s| s.prefix.prefix_len())
}

/// Why an address is not public; `None` means it is.
pub fn restriction(ip: IpAddr) -> Option<Restriction> {
    let wrapped = match ip {
        IpAddr::V4(_) => None,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(("IPv4-mapped", v4)),
            None if NAT64.contains(&ip) => {
                let [.., a, b, c, d] = v6.octets();
                Some(("NAT64 (64:ff9b::/96)", Ipv4Addr::new(a, b, c, d)))
            }
            None => None,
        },
    };
    if let Some((how, v4)) = wrapped {
        return restriction(IpAddr::V4(v4)).map(|r| Restriction {
            entry: r.entry,
            wrapped: Some((how, v4)),
        });
    }
    let entry = entry_for(ip)?;
    match entry.global {
        Reachable::Yes => None,
        Reachable::No | Reachable::NotApplicable => Some(Restriction { entry, wrapped: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Option<Restriction> {
        restriction(s.parse().unwrap())
    }

    /// The first and last address of a prefix.
    fn ends(net: IpNet) -> [IpAddr; 2] {
        [net.network(), net.broadcast()]
    }

    #[test]
    fn every_registry_entry_gets_its_verdict_at_both_ends() {
        let all: Vec<&Special> = IPV4_REGISTRY
            .iter()
            .chain(IPV6_REGISTRY)
            .chain(BEYOND_REGISTRIES)
            .collect();
        for row in &all {
            assert_eq!(
                row.prefix,
                row.prefix.trunc(),
                "{} is not a network prefix",
                row.prefix
            );
            for ip in ends(row.prefix) {
                let got = restriction(ip);
                // An address that carries an IPv4 address is judged by it.
                if let Some((_, v4)) = got.and_then(|g| g.wrapped) {
                    assert_eq!(got.map(|g| g.entry), restriction(IpAddr::V4(v4)).map(|g| g.entry));
                    continue;
                }
                if row.prefix == NAT64 || row.name == "IPv4-mapped Address" {
                    panic!("{ip} in {} must be judged by its IPv4 address", row.prefix);
                }
                // A more specific entry inside this one decides for the address, if any.
                let decider = all
                    .iter()
                    .filter(|s| s.prefix.contains(&ip))
                    .max_by_key(|s| s.prefix.prefix_len())
                    .expect("the row itself contains the address");
                match decider.global {
                    Reachable::Yes => assert_eq!(got, None, "{ip} ({}) must be open", decider.name),
                    Reachable::No | Reachable::NotApplicable => {
                        let got = got.unwrap_or_else(|| panic!("{ip} ({}) must be refused", decider.name));
                        assert_eq!(got.entry.prefix, decider.prefix, "{ip}");
                        assert!(got.to_string().contains(decider.rfc), "{ip}: {got}");
                    }
                }
                if decider.prefix == row.prefix {
                    let open = matches!(row.global, Reachable::Yes);
                    assert_eq!(got.is_none(), open, "{ip}: {} {:?}", row.name, row.global);
                }
            }
        }
    }

    #[test]
    fn public_addresses_are_open() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "34.117.59.81",
            "192.0.0.9",
            "192.0.0.10",
            "2606:4700:4700::1111",
            "2a00:1450::1",
            "2001:1::1",
            "2001:3::5",
            "2001:4:112::1",
            "2001:20::1",
            "2001:2f:ffff::1",
            "64:ff9b::808:808",
        ] {
            assert_eq!(r(ip), None, "{ip}");
        }
    }

    #[test]
    fn non_public_addresses_are_refused_with_a_reason() {
        for (ip, why) in [
            ("127.0.0.1", "Loopback"),
            ("127.8.9.10", "Loopback"),
            ("::1", "Loopback"),
            ("10.0.0.1", "Private-Use"),
            ("172.16.5.4", "Private-Use"),
            ("192.168.1.1", "Private-Use"),
            ("169.254.169.254", "metadata"),
            ("100.64.0.1", "Shared"),
            ("0.0.0.0", "This host"),
            ("0.1.2.3", "This network"),
            ("::", "Unspecified"),
            ("224.0.0.1", "Multicast"),
            ("ff02::1", "Multicast"),
            ("255.255.255.255", "Broadcast"),
            ("250.1.2.3", "Reserved"),
            ("fe80::1", "Link-Local"),
            ("fec0::1", "Site-Local"),
            ("fd00::1", "Unique-Local"),
            ("::ffff:127.0.0.1", "IPv4-mapped wrapping 127.0.0.1"),
            ("::ffff:169.254.169.254", "metadata"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("2002:7f00:1::", "6to4"),
            ("2002:808:808::", "6to4"),
            ("2001::1", "TEREDO"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "TEREDO"),
            ("2001:2::1", "Benchmarking"),
            ("2001:10::1", "ORCHID"),
            ("2001:100::1", "IETF Protocol Assignments"),
            ("64:ff9b::a00:1", "NAT64 (64:ff9b::/96) wrapping 10.0.0.1"),
            ("64:ff9b:1::a00:1", "local-use NAT64"),
            ("64:ff9b:1::808:808", "RFC 8215"),
            ("100::1", "Discard-Only"),
            ("192.0.2.1", "Documentation"),
            ("192.0.0.8", "dummy"),
            ("192.0.0.170", "NAT64/DNS64"),
            ("192.88.99.1", "6to4 Relay Anycast"),
            ("3fff::1", "Documentation"),
            ("5f00::1", "SRv6"),
            ("4000::1", "outside 2000::/3"),
        ] {
            let got = r(ip).unwrap_or_else(|| panic!("{ip} should be restricted"));
            assert!(got.to_string().contains(why), "{ip}: {got}");
        }
    }
}
