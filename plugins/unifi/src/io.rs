//! What the actions take and give back: their input and output types, whose doc comments
//! become the JSON Schemas' descriptions.

use osprey_sdk::prelude::*;

/// Which connected clients to list; every filter given must match.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListClientsInput {
    /// Only the client with this MAC address (any usual notation: `aa:bb:cc:dd:ee:ff`,
    /// `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff`).
    #[serde(default)]
    pub(crate) mac: Option<String>,
    /// Only clients with this IPv4 or IPv6 address.
    #[serde(default)]
    pub(crate) ip: Option<String>,
    /// Only clients whose host name or alias (the name given in the controller) is this,
    /// ignoring case.
    #[serde(default)]
    pub(crate) hostname: Option<String>,
}

/// A client connected to the site right now, as the controller reports it (`stat/sta`).
#[derive(Serialize, JsonSchema)]
pub(crate) struct Client {
    /// MAC address, lower case with colons.
    pub(crate) mac: String,
    /// Current IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ip: Option<String>,
    /// Host name the client announced (DHCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hostname: Option<String>,
    /// Alias given to the client in the controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Whether it is on a wire rather than Wi-Fi.
    pub(crate) is_wired: bool,
    /// Whether the client is blocked.
    pub(crate) blocked: bool,
    /// When the controller last heard from it (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_seen: Option<i64>,
    /// Wi-Fi network (SSID) of a wireless client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) essid: Option<String>,
    /// Name of the controller's network (VLAN) it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) network: Option<String>,
    /// Manufacturer, from the MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) oui: Option<String>,
}

/// Connected clients.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ListClientsOutput {
    /// The clients that match, in the controller's order.
    pub(crate) clients: Vec<Client>,
    /// How many there are.
    pub(crate) count: usize,
}

/// A client to look for among those connected: give `mac` or `hostname`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FindClientInput {
    /// MAC address, in any usual notation.
    #[serde(default)]
    pub(crate) mac: Option<String>,
    /// Host name or alias, ignoring case.
    #[serde(default)]
    pub(crate) hostname: Option<String>,
}

/// Whether the client is connected now.
#[derive(Serialize, JsonSchema)]
pub(crate) struct FindClientOutput {
    /// Whether a connected client matches.
    pub(crate) found: bool,
    /// The first match, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client: Option<Client>,
    /// How many connected clients match (a host name may be shared).
    pub(crate) matches: usize,
}

/// The client to block or unblock.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MacInput {
    /// MAC address, in any usual notation (`aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`,
    /// `aabb.ccdd.eeff`). It need not be connected now.
    pub(crate) mac: String,
}

/// The client's state after the command.
#[derive(Serialize, JsonSchema)]
pub(crate) struct BlockOutput {
    /// MAC address, lower case with colons.
    pub(crate) mac: String,
    /// Whether the client is now blocked.
    pub(crate) blocked: bool,
}

/// What a rule does with matching traffic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RuleAction {
    /// Drop silently.
    #[default]
    Drop,
    /// Refuse (ICMP unreachable or TCP reset).
    Reject,
    /// Let it through.
    Accept,
}

/// The IPv4 rule sets of a UniFi gateway: where traffic enters (`_IN`), leaves (`_OUT`) or is
/// addressed to the gateway itself (`_LOCAL`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum Ruleset {
    /// Traffic from a LAN network, to anywhere (the usual place to cut a device off).
    #[default]
    #[serde(rename = "LAN_IN")]
    LanIn,
    /// Traffic to a LAN network.
    #[serde(rename = "LAN_OUT")]
    LanOut,
    /// Traffic from a LAN network to the gateway.
    #[serde(rename = "LAN_LOCAL")]
    LanLocal,
    /// Traffic from the internet.
    #[serde(rename = "WAN_IN")]
    WanIn,
    /// Traffic to the internet.
    #[serde(rename = "WAN_OUT")]
    WanOut,
    /// Traffic from the internet to the gateway.
    #[serde(rename = "WAN_LOCAL")]
    WanLocal,
    /// Traffic from a guest network.
    #[serde(rename = "GUEST_IN")]
    GuestIn,
    /// Traffic to a guest network.
    #[serde(rename = "GUEST_OUT")]
    GuestOut,
    /// Traffic from a guest network to the gateway.
    #[serde(rename = "GUEST_LOCAL")]
    GuestLocal,
}

impl Ruleset {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ruleset::LanIn => "LAN_IN",
            Ruleset::LanOut => "LAN_OUT",
            Ruleset::LanLocal => "LAN_LOCAL",
            Ruleset::WanIn => "WAN_IN",
            Ruleset::WanOut => "WAN_OUT",
            Ruleset::WanLocal => "WAN_LOCAL",
            Ruleset::GuestIn => "GUEST_IN",
            Ruleset::GuestOut => "GUEST_OUT",
            Ruleset::GuestLocal => "GUEST_LOCAL",
        }
    }
}

/// The protocols a rule can match.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Protocol {
    /// Any protocol.
    #[default]
    All,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// TCP and UDP.
    TcpUdp,
    /// ICMP.
    Icmp,
}

impl Protocol {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Protocol::All => "all",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::TcpUdp => "tcp_udp",
            Protocol::Icmp => "icmp",
        }
    }
}

/// A firewall rule to create on the site's gateway. Give the source as `src_mac` or
/// `src_address` (one of them).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRuleInput {
    /// The rule's name, shown in the controller (1 to 128 characters). Creating a rule with
    /// the name and definition of an existing one returns that rule (`created: false`), so a
    /// retried step does not add a second copy.
    pub(crate) name: String,
    /// Match traffic from this MAC address (any usual notation).
    #[serde(default)]
    pub(crate) src_mac: Option<String>,
    /// Match traffic from this IPv4 address or network (`192.168.1.23`, `192.168.1.0/24`).
    #[serde(default)]
    pub(crate) src_address: Option<String>,
    /// Match only traffic to this IPv4 address or network; anywhere when left out.
    #[serde(default)]
    pub(crate) dst_address: Option<String>,
    /// What to do with matching traffic; `drop` when left out.
    #[serde(default)]
    pub(crate) action: RuleAction,
    /// Which rule set the rule goes in; `LAN_IN` when left out.
    #[serde(default)]
    pub(crate) ruleset: Ruleset,
    /// Which protocol to match; `all` when left out.
    #[serde(default)]
    pub(crate) protocol: Protocol,
    /// Position in the rule set: 2000-2999 (before the predefined rules) or 4000 and up
    /// (after them). When left out, the first free index after the highest used in 2000-2999.
    #[serde(default)]
    pub(crate) rule_index: Option<u32>,
    /// Whether the rule is on; true when left out.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// Whether matches are logged by the gateway; false when left out.
    #[serde(default)]
    pub(crate) logging: bool,
}

pub(crate) fn yes() -> bool {
    true
}

/// A firewall rule of the site's gateway.
#[derive(Serialize, JsonSchema, Clone)]
pub(crate) struct Rule {
    /// The rule's id (`_id`), for `delete-firewall-rule`.
    pub(crate) id: String,
    /// The rule's name.
    pub(crate) name: String,
    /// Its rule set (`LAN_IN`, `WAN_OUT`, ...).
    pub(crate) ruleset: String,
    /// Its position in the rule set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rule_index: Option<i64>,
    /// `drop`, `reject` or `accept`.
    pub(crate) action: String,
    /// Whether it is on.
    pub(crate) enabled: bool,
    /// The protocol it matches (`all`, `tcp`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<String>,
    /// Source MAC address it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) src_mac: Option<String>,
    /// Source IPv4 address or network it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) src_address: Option<String>,
    /// Destination IPv4 address or network it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dst_address: Option<String>,
}

/// The rule, and whether this call created it.
#[derive(Serialize, JsonSchema)]
pub(crate) struct CreateRuleOutput {
    #[serde(flatten)]
    pub(crate) rule: Rule,
    /// True when this call created the rule; false when an identical rule of the same name
    /// was already there (and is what is returned).
    pub(crate) created: bool,
}

/// The rule to delete.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteRuleInput {
    /// The rule's id, as `create-firewall-rule` and `list-firewall-rules` return it (24 hex
    /// digits).
    pub(crate) id: String,
}

/// What happened to the rule.
#[derive(Serialize, JsonSchema)]
pub(crate) struct DeleteRuleOutput {
    /// The rule's id.
    pub(crate) id: String,
    /// True when the rule was deleted; false when the controller has no rule with this id
    /// (already deleted), which leaves the same outcome.
    pub(crate) deleted: bool,
}

/// Which rules to list.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListRulesInput {
    /// Only the rules of this rule set.
    #[serde(default)]
    pub(crate) ruleset: Option<Ruleset>,
}

/// The site's firewall rules.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ListRulesOutput {
    /// The rules, by rule set and index.
    pub(crate) rules: Vec<Rule>,
    /// How many there are.
    pub(crate) count: usize,
}
