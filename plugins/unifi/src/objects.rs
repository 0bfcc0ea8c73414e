//! The controller's objects (`stat/sta` clients, `rest/firewallrule` rules) read into this
//! plugin's outputs, tolerating missing and oddly typed fields.

use crate::io::{Client, Rule};
use crate::validation::parse_mac;
use osprey_sdk::prelude::*;

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn int(v: &Value, key: &str) -> Option<i64> {
    let x = v.get(key)?;
    x.as_i64()
        .or_else(|| x.as_f64().map(|f| f as i64))
        .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
}

pub(crate) fn client_of(v: &Value) -> Option<Client> {
    let mac = parse_mac(v.get("mac")?.as_str()?).ok()?;
    Some(Client {
        mac,
        ip: text(v, "ip"),
        hostname: text(v, "hostname"),
        name: text(v, "name"),
        is_wired: flag(v, "is_wired"),
        blocked: flag(v, "blocked"),
        last_seen: int(v, "last_seen"),
        essid: text(v, "essid"),
        network: text(v, "network"),
        oui: text(v, "oui"),
    })
}

pub(crate) fn rule_of(v: &Value) -> Option<Rule> {
    Some(Rule {
        id: text(v, "_id")?,
        name: text(v, "name").unwrap_or_default(),
        ruleset: text(v, "ruleset").unwrap_or_default(),
        rule_index: int(v, "rule_index"),
        action: text(v, "action").unwrap_or_default(),
        enabled: flag(v, "enabled"),
        protocol: text(v, "protocol"),
        src_mac: text(v, "src_mac_address").map(|m| parse_mac(&m).unwrap_or(m)),
        src_address: text(v, "src_address"),
        dst_address: text(v, "dst_address"),
    })
}

pub(crate) fn names_match(client: &Client, hostname: &str) -> bool {
    [&client.hostname, &client.name]
        .into_iter()
        .flatten()
        .any(|n| n.eq_ignore_ascii_case(hostname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_record_is_read_with_its_mac_normalised_and_blanks_left_out() {
        let c = client_of(&json!({
            "mac": "AA:BB:CC:DD:EE:01", "ip": "10.0.0.21", "hostname": "  ", "name": "Tablet",
            "is_wired": false, "blocked": true, "last_seen": "1700000000", "essid": "home",
            "oui": "Apple", "unknown_field": [1, 2]
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.21", "name": "Tablet",
                   "is_wired": false, "blocked": true, "last_seen": 1700000000,
                   "essid": "home", "oui": "Apple"})
        );
    }

    #[test]
    fn a_client_without_a_usable_mac_is_left_out() {
        assert!(client_of(&json!({"ip": "10.0.0.2"})).is_none());
        assert!(client_of(&json!({"mac": "not-a-mac"})).is_none());
        assert!(client_of(&json!({"mac": 42})).is_none());
    }

    #[test]
    fn a_rule_needs_an_id_and_reads_numbers_as_numbers_or_text() {
        let r = rule_of(&json!({
            "_id": "5f0c0e3a2b1c4d5e6f708192", "name": "osprey block", "ruleset": "LAN_IN",
            "rule_index": 2001.0, "action": "drop", "enabled": true, "protocol": "all",
            "src_mac_address": "AA-BB-CC-DD-EE-01", "src_address": "", "dst_address": "1.2.3.4"
        }))
        .unwrap();
        assert_eq!(r.rule_index, Some(2001));
        assert_eq!(r.src_mac.as_deref(), Some("aa:bb:cc:dd:ee:01"));
        assert_eq!(r.src_address, None);
        assert_eq!(r.dst_address.as_deref(), Some("1.2.3.4"));
        assert!(rule_of(&json!({"name": "no id"})).is_none());
        let odd = rule_of(&json!({"_id": "x", "rule_index": "2005", "src_mac_address": "weird"})).unwrap();
        assert_eq!(
            (odd.rule_index, odd.src_mac.as_deref(), odd.enabled),
            (Some(2005), Some("weird"), false)
        );
    }

    #[test]
    fn host_names_and_aliases_match_ignoring_case() {
        let c = client_of(&json!({"mac": "aabbccddee01", "hostname": "Laptop", "name": "Kid's PC"})).unwrap();
        assert!(names_match(&c, "laptop") && names_match(&c, "KID'S PC"));
        assert!(!names_match(&c, "lap"));
    }
}
