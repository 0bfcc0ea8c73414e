//! The firewall rule actions: list-firewall-rules, create-firewall-rule, delete-firewall-rule.

use crate::io::{
    CreateRuleInput, CreateRuleOutput, DeleteRuleInput, DeleteRuleOutput, ListRulesInput, ListRulesOutput,
    Rule,
};
use crate::objects::rule_of;
use crate::session::{Controller, with_controller};
use crate::validation::{parse_ipv4_net, parse_mac, parse_rule_id};
use osprey_sdk::prelude::*;

fn all_rules(c: &mut Controller) -> Result<Vec<Rule>> {
    let data = c.request("GET", "/rest/firewallrule", None)?;
    let mut rules: Vec<Rule> = data.iter().filter_map(rule_of).collect();
    rules.sort_by(|a, b| (&a.ruleset, a.rule_index).cmp(&(&b.ruleset, b.rule_index)));
    Ok(rules)
}

pub(crate) fn list_firewall_rules(_ctx: &Context, input: ListRulesInput) -> Result<ListRulesOutput> {
    let rules = with_controller(all_rules)?;
    let rules: Vec<Rule> = rules
        .into_iter()
        .filter(|r| input.ruleset.is_none_or(|set| r.ruleset == set.name()))
        .collect();
    Ok(ListRulesOutput {
        count: rules.len(),
        rules,
    })
}

/// A checked create-firewall-rule request: the rule to create, all but its index when none
/// was given.
struct RuleSpec {
    name: String,
    src_mac: Option<String>,
    src_address: Option<String>,
    dst_address: Option<String>,
    action: String,
    ruleset: &'static str,
    protocol: &'static str,
    rule_index: Option<u32>,
    enabled: bool,
    logging: bool,
}

impl RuleSpec {
    fn from_input(input: CreateRuleInput) -> Result<RuleSpec> {
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Error::invalid_input(
                "the rule's name must have 1 to 128 characters",
            ));
        }
        let (src_mac, src_address) = match (input.src_mac.as_deref(), input.src_address.as_deref()) {
            (Some(m), None) => (Some(parse_mac(m)?), None),
            (None, Some(a)) => (None, Some(parse_ipv4_net("src_address", a)?)),
            _ => {
                return Err(Error::invalid_input(
                    "give the rule's source as either 'src_mac' or 'src_address' (one of them)",
                ));
            }
        };
        let dst_address = input
            .dst_address
            .as_deref()
            .map(|a| parse_ipv4_net("dst_address", a))
            .transpose()?;
        if let Some(i) = input.rule_index
            && !((2000..=2999).contains(&i) || (4000..=29999).contains(&i))
        {
            return Err(Error::invalid_input(format!(
                "rule_index {i} is outside 2000-2999 and 4000-29999, the ranges for rules of your own"
            )));
        }
        let action = serde_json::to_value(input.action)?
            .as_str()
            .unwrap_or("drop")
            .to_owned();
        Ok(RuleSpec {
            name,
            src_mac,
            src_address,
            dst_address,
            action,
            ruleset: input.ruleset.name(),
            protocol: input.protocol.name(),
            rule_index: input.rule_index,
            enabled: input.enabled,
            logging: input.logging,
        })
    }

    /// Whether `rule` is this one already (a retried step): same name, rule set, action,
    /// source and destination.
    fn is(&self, rule: &Rule) -> bool {
        rule.name == self.name
            && rule.ruleset == self.ruleset
            && rule.action == self.action
            && rule.src_mac == self.src_mac
            && rule.src_address == self.src_address
            && rule.dst_address == self.dst_address
    }

    /// The index given, else the first free one after the highest used in 2000-2999 of the
    /// rule set (2000 in an empty one).
    fn index_among(&self, existing: &[Rule]) -> Result<i64> {
        if let Some(i) = self.rule_index {
            return Ok(i64::from(i));
        }
        let highest = existing
            .iter()
            .filter(|r| r.ruleset == self.ruleset)
            .filter_map(|r| r.rule_index)
            .filter(|i| (2000..=2999).contains(i))
            .max();
        match highest {
            None => Ok(2000),
            Some(2999) => Err(Error::invalid_input(format!(
                "rule index 2999 is taken in {}; give a free rule_index \
                 (2000-2999, or 4000 and up)",
                self.ruleset
            ))),
            Some(i) => Ok(i + 1),
        }
    }

    /// The body of `POST rest/firewallrule`, as the controller's own interface sends it.
    fn body(&self, rule_index: i64) -> Value {
        json!({
            "name": self.name,
            "enabled": self.enabled,
            "action": self.action,
            "ruleset": self.ruleset,
            "rule_index": rule_index,
            "protocol": self.protocol,
            "protocol_match_excepted": false,
            "logging": self.logging,
            "state_established": false,
            "state_invalid": false,
            "state_new": false,
            "state_related": false,
            "ipsec": "",
            "src_firewallgroup_ids": [],
            "src_mac_address": self.src_mac.clone().unwrap_or_default(),
            "src_address": self.src_address.clone().unwrap_or_default(),
            "src_networkconf_id": "",
            "src_networkconf_type": "NETv4",
            "dst_firewallgroup_ids": [],
            "dst_address": self.dst_address.clone().unwrap_or_default(),
            "dst_networkconf_id": "",
            "dst_networkconf_type": "NETv4",
        })
    }
}

pub(crate) fn create_firewall_rule(_ctx: &Context, input: CreateRuleInput) -> Result<CreateRuleOutput> {
    let spec = RuleSpec::from_input(input)?;
    let (rule, created) = with_controller(|c| {
        let existing = all_rules(c)?;
        if let Some(rule) = existing.iter().find(|r| spec.is(r)) {
            return Ok((rule.clone(), false));
        }
        let body = spec.body(spec.index_among(&existing)?);
        let data = c.request("POST", "/rest/firewallrule", Some(&body))?;
        let rule = data.iter().find_map(rule_of).ok_or_else(|| {
            Error::upstream("the controller accepted the firewall rule but did not return it with an _id")
        })?;
        Ok((rule, true))
    })?;
    if created {
        log::info(
            "created a firewall rule",
            &[("id", &rule.id), ("name", &rule.name), ("ruleset", &rule.ruleset)],
        );
    }
    Ok(CreateRuleOutput { rule, created })
}

pub(crate) fn delete_firewall_rule(_ctx: &Context, input: DeleteRuleInput) -> Result<DeleteRuleOutput> {
    let id = parse_rule_id(&input.id)?;
    let deleted =
        with_controller(
            |c| match c.request("DELETE", &format!("/rest/firewallrule/{id}"), None) {
                Ok(_) => Ok(true),
                Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
        )?;
    log::info(
        if deleted {
            "deleted a firewall rule"
        } else {
            "no firewall rule to delete"
        },
        &[("id", &id)],
    );
    Ok(DeleteRuleOutput { id, deleted })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(input: Value) -> Result<RuleSpec> {
        RuleSpec::from_input(serde_json::from_value(input).unwrap())
    }

    fn rule(ruleset: &str, index: i64) -> Rule {
        rule_of(&json!({"_id": format!("id{index}"), "name": "r", "ruleset": ruleset, "rule_index": index}))
            .unwrap()
    }

    #[test]
    fn the_body_is_what_the_controller_interface_sends_with_the_defaults() {
        let s = spec(json!({"name": " cut off ", "src_mac": "AA-BB-CC-DD-EE-01"})).unwrap();
        let body = s.body(2000);
        assert_eq!(body["name"], "cut off");
        assert_eq!(body["action"], "drop");
        assert_eq!(body["ruleset"], "LAN_IN");
        assert_eq!(body["protocol"], "all");
        assert_eq!(body["rule_index"], 2000);
        assert_eq!(body["enabled"], true);
        assert_eq!(body["logging"], false);
        assert_eq!(body["src_mac_address"], "aa:bb:cc:dd:ee:01");
        assert_eq!(body["src_address"], "");
        assert_eq!(body["dst_networkconf_type"], "NETv4");

        let s = spec(
            json!({"name": "n", "src_address": "10.0.0.0/8", "dst_address": "1.2.3.4",
                             "action": "reject", "ruleset": "WAN_OUT", "protocol": "tcp_udp",
                             "enabled": false, "logging": true}),
        )
        .unwrap();
        let body = s.body(4000);
        assert_eq!(
            (
                body["action"].as_str(),
                body["ruleset"].as_str(),
                body["protocol"].as_str()
            ),
            (Some("reject"), Some("WAN_OUT"), Some("tcp_udp"))
        );
        assert_eq!(
            (body["src_address"].as_str(), body["dst_address"].as_str()),
            (Some("10.0.0.0/8"), Some("1.2.3.4"))
        );
        assert_eq!(
            (body["enabled"].as_bool(), body["logging"].as_bool()),
            (Some(false), Some(true))
        );
    }

    #[test]
    fn bad_requests_are_refused_before_the_controller_is_asked() {
        for (input, says) in [
            (
                json!({"name": " ", "src_mac": "aabbccddee01"}),
                "1 to 128 characters",
            ),
            (json!({"name": "n"}), "either 'src_mac' or 'src_address'"),
            (
                json!({"name": "n", "src_mac": "aabbccddee01", "src_address": "10.0.0.1"}),
                "one of them",
            ),
            (
                json!({"name": "n", "src_address": "10.0.0.1", "dst_address": "::1"}),
                "dst_address",
            ),
            (
                json!({"name": "n", "src_address": "10.0.0.1", "rule_index": 3000}),
                "outside 2000-2999",
            ),
        ] {
            let e = spec(input).err().unwrap();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
    }

    #[test]
    fn the_index_is_the_one_given_or_the_next_free_in_2000_to_2999_of_the_rule_set() {
        let s = spec(json!({"name": "n", "src_address": "10.0.0.1"})).unwrap();
        assert_eq!(s.index_among(&[]).unwrap(), 2000);
        let existing = [rule("LAN_IN", 2003), rule("LAN_IN", 4000), rule("WAN_IN", 2500)];
        assert_eq!(s.index_among(&existing).unwrap(), 2004);
        let e = s.index_among(&[rule("LAN_IN", 2999)]).unwrap_err();
        assert!(e.message.contains("2999 is taken in LAN_IN"), "{}", e.message);
        let given = spec(json!({"name": "n", "src_address": "10.0.0.1", "rule_index": 4100})).unwrap();
        assert_eq!(given.index_among(&[rule("LAN_IN", 2999)]).unwrap(), 4100);
    }

    #[test]
    fn a_rule_with_the_same_name_and_definition_is_this_one() {
        let s = spec(json!({"name": "n", "src_mac": "aabbccddee01"})).unwrap();
        let same = rule_of(
            &json!({"_id": "a", "name": "n", "ruleset": "LAN_IN", "action": "drop",
                                   "src_mac_address": "AA:BB:CC:DD:EE:01"}),
        )
        .unwrap();
        assert!(s.is(&same));
        let other = rule_of(
            &json!({"_id": "b", "name": "n", "ruleset": "LAN_IN", "action": "accept",
                                    "src_mac_address": "aa:bb:cc:dd:ee:01"}),
        )
        .unwrap();
        assert!(!s.is(&other));
    }
}
