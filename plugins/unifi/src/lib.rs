//! unifi: a UniFi Network controller, through the API its own web interface uses, on both kinds
//! of controller:
//! - classic (the UniFi Network application on its own, port 8443): `POST /api/login` with
//!   `{"username", "password"}` sets the `unifises` (and `csrf_token`) cookies; the site's API is
//!   under `/api/s/{site}/`.
//! - UniFi OS (UDM, Cloud Key Gen2+, UniFi OS Server, port 443): `POST /api/auth/login` sets the
//!   `TOKEN` cookie and answers an `X-CSRF-Token` header, which goes back on every POST, PUT and
//!   DELETE; the site's API is under `/proxy/network/api/s/{site}/`.
//!
//! With `controller = "auto"` the plugin asks `GET /` first, as the UniFi integrations of Home
//! Assistant do: UniFi OS answers 200, a classic controller redirects to `/manage`.
//!
//! Answers are `{"meta": {"rc": "ok"|"error", "msg": "api.err..."}, "data": [...]}`. A request
//! without a valid session gets 401 `api.err.LoginRequired`; the plugin then logs in once more
//! and repeats the request, once. Bad credentials are 400 `api.err.Invalid` (classic) or
//! 401/403 (UniFi OS): `denied`, not retryable.
//!
//! The session cookie is kept in the plugin's kv store for `session_ttl_seconds` (0: log in
//! and out on every call). It is never logged or returned. The username and password are read
//! only to log in.

use osprey_sdk::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const SET_CREDENTIALS_HINT: &str = "set them with `osprey secret set unifi username` and \
                                    `osprey secret set unifi password` (a local controller \
                                    account without two-factor authentication)";

/// Which API the controller speaks.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
enum Flavour {
    /// The UniFi Network application on its own.
    Classic,
    /// A UniFi OS console: the Network application behind `/proxy/network`.
    UnifiOs,
}

impl Flavour {
    fn name(self) -> &'static str {
        match self {
            Flavour::Classic => "classic",
            Flavour::UnifiOs => "unifi-os",
        }
    }
    fn login_path(self) -> &'static str {
        match self {
            Flavour::Classic => "/api/login",
            Flavour::UnifiOs => "/api/auth/login",
        }
    }
    fn logout_path(self) -> &'static str {
        match self {
            Flavour::Classic => "/api/logout",
            Flavour::UnifiOs => "/api/auth/logout",
        }
    }
    /// The cookie that carries the session.
    fn session_cookie(self) -> &'static str {
        match self {
            Flavour::Classic => "unifises",
            Flavour::UnifiOs => "TOKEN",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Inputs and outputs
// ---------------------------------------------------------------------------------------

/// Which connected clients to list; every filter given must match.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct ListClientsInput {
    /// Only the client with this MAC address (any usual notation: `aa:bb:cc:dd:ee:ff`,
    /// `AA-BB-CC-DD-EE-FF`, `aabb.ccdd.eeff`).
    #[serde(default)]
    mac: Option<String>,
    /// Only clients with this IPv4 or IPv6 address.
    #[serde(default)]
    ip: Option<String>,
    /// Only clients whose host name or alias (the name given in the controller) is this,
    /// ignoring case.
    #[serde(default)]
    hostname: Option<String>,
}

/// A client connected to the site right now, as the controller reports it (`stat/sta`).
#[derive(Serialize, JsonSchema)]
struct Client {
    /// MAC address, lower case with colons.
    mac: String,
    /// Current IP address.
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    /// Host name the client announced (DHCP).
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    /// Alias given to the client in the controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// Whether it is on a wire rather than Wi-Fi.
    is_wired: bool,
    /// Whether the client is blocked.
    blocked: bool,
    /// When the controller last heard from it (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<i64>,
    /// Wi-Fi network (SSID) of a wireless client.
    #[serde(skip_serializing_if = "Option::is_none")]
    essid: Option<String>,
    /// Name of the controller's network (VLAN) it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<String>,
    /// Manufacturer, from the MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    oui: Option<String>,
}

/// Connected clients.
#[derive(Serialize, JsonSchema)]
struct ListClientsOutput {
    /// The clients that match, in the controller's order.
    clients: Vec<Client>,
    /// How many there are.
    count: usize,
}

/// A client to look for among those connected: give `mac` or `hostname`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FindClientInput {
    /// MAC address, in any usual notation.
    #[serde(default)]
    mac: Option<String>,
    /// Host name or alias, ignoring case.
    #[serde(default)]
    hostname: Option<String>,
}

/// Whether the client is connected now.
#[derive(Serialize, JsonSchema)]
struct FindClientOutput {
    /// Whether a connected client matches.
    found: bool,
    /// The first match, when found.
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<Client>,
    /// How many connected clients match (a host name may be shared).
    matches: usize,
}

/// The client to block or unblock.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct MacInput {
    /// MAC address, in any usual notation (`aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`,
    /// `aabb.ccdd.eeff`). It need not be connected now.
    mac: String,
}

/// The client's state after the command.
#[derive(Serialize, JsonSchema)]
struct BlockOutput {
    /// MAC address, lower case with colons.
    mac: String,
    /// Whether the client is now blocked.
    blocked: bool,
}

/// What a rule does with matching traffic.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
enum RuleAction {
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
enum Ruleset {
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
    fn name(self) -> &'static str {
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
enum Protocol {
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
    fn name(self) -> &'static str {
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
struct CreateRuleInput {
    /// The rule's name, shown in the controller (1 to 128 characters). Creating a rule with
    /// the name and definition of an existing one returns that rule (`created: false`), so a
    /// retried step does not add a second copy.
    name: String,
    /// Match traffic from this MAC address (any usual notation).
    #[serde(default)]
    src_mac: Option<String>,
    /// Match traffic from this IPv4 address or network (`192.168.1.23`, `192.168.1.0/24`).
    #[serde(default)]
    src_address: Option<String>,
    /// Match only traffic to this IPv4 address or network; anywhere when left out.
    #[serde(default)]
    dst_address: Option<String>,
    /// What to do with matching traffic; `drop` when left out.
    #[serde(default)]
    action: RuleAction,
    /// Which rule set the rule goes in; `LAN_IN` when left out.
    #[serde(default)]
    ruleset: Ruleset,
    /// Which protocol to match; `all` when left out.
    #[serde(default)]
    protocol: Protocol,
    /// Position in the rule set: 2000-2999 (before the predefined rules) or 4000 and up
    /// (after them). When left out, the first free index after the highest used in 2000-2999.
    #[serde(default)]
    rule_index: Option<u32>,
    /// Whether the rule is on; true when left out.
    #[serde(default = "yes")]
    enabled: bool,
    /// Whether matches are logged by the gateway; false when left out.
    #[serde(default)]
    logging: bool,
}

fn yes() -> bool {
    true
}

/// A firewall rule of the site's gateway.
#[derive(Serialize, JsonSchema, Clone)]
struct Rule {
    /// The rule's id (`_id`), for `delete-firewall-rule`.
    id: String,
    /// The rule's name.
    name: String,
    /// Its rule set (`LAN_IN`, `WAN_OUT`, ...).
    ruleset: String,
    /// Its position in the rule set.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_index: Option<i64>,
    /// `drop`, `reject` or `accept`.
    action: String,
    /// Whether it is on.
    enabled: bool,
    /// The protocol it matches (`all`, `tcp`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<String>,
    /// Source MAC address it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    src_mac: Option<String>,
    /// Source IPv4 address or network it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    src_address: Option<String>,
    /// Destination IPv4 address or network it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    dst_address: Option<String>,
}

/// The rule, and whether this call created it.
#[derive(Serialize, JsonSchema)]
struct CreateRuleOutput {
    #[serde(flatten)]
    rule: Rule,
    /// True when this call created the rule; false when an identical rule of the same name
    /// was already there (and is what is returned).
    created: bool,
}

/// The rule to delete.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteRuleInput {
    /// The rule's id, as `create-firewall-rule` and `list-firewall-rules` return it (24 hex
    /// digits).
    id: String,
}

/// What happened to the rule.
#[derive(Serialize, JsonSchema)]
struct DeleteRuleOutput {
    /// The rule's id.
    id: String,
    /// True when the rule was deleted; false when the controller has no rule with this id
    /// (already deleted), which leaves the same outcome.
    deleted: bool,
}

/// Which rules to list.
#[derive(Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
struct ListRulesInput {
    /// Only the rules of this rule set.
    #[serde(default)]
    ruleset: Option<Ruleset>,
}

/// The site's firewall rules.
#[derive(Serialize, JsonSchema)]
struct ListRulesOutput {
    /// The rules, by rule set and index.
    rules: Vec<Rule>,
    /// How many there are.
    count: usize,
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// A MAC address in lower case with colons, from `aa:bb:cc:dd:ee:ff`, `AA-BB-CC-DD-EE-FF`,
/// `aabb.ccdd.eeff` or `aabbccddeeff`.
fn parse_mac(raw: &str) -> Result<String> {
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
fn parse_ipv4_net(field: &str, raw: &str) -> Result<String> {
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

fn parse_rule_id(raw: &str) -> Result<String> {
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

fn snippet(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

// ---------------------------------------------------------------------------------------
// Settings and session
// ---------------------------------------------------------------------------------------

struct Settings {
    /// The controller's origin, without a trailing slash.
    base: String,
    site: String,
    /// `None`: detect.
    flavour: Option<Flavour>,
    session_ttl: u64,
}

fn settings() -> Result<Settings> {
    let base = config::require("base_url")?
        .trim()
        .trim_end_matches('/')
        .to_owned();
    let lower = base.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) || base.contains(['?', '#']) {
        return Err(Error::invalid_input(format!(
            "setting 'base_url' ('{}') must be the controller's origin, such as \
             https://192.168.1.1 or https://unifi.example.lan:8443",
            snippet(&base, 200)
        )));
    }
    let site = config::get("site")
        .unwrap_or_else(|| "default".into())
        .trim()
        .to_owned();
    if site.is_empty()
        || site.len() > 64
        || !site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid_input(format!(
            "setting 'site' ('{}') must be the site's short name, as in /manage/site/<name>/ in \
             the controller's URL ('default' for the first site)",
            snippet(&site, 80)
        )));
    }
    let flavour = match config::get("controller")
        .unwrap_or_else(|| "auto".into())
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "auto" => None,
        "classic" => Some(Flavour::Classic),
        "unifi-os" | "unifios" | "unifi_os" => Some(Flavour::UnifiOs),
        other => {
            return Err(Error::invalid_input(format!(
                "setting 'controller' is '{}'; use auto, classic or unifi-os",
                snippet(other, 40)
            )));
        }
    };
    let session_ttl = config::get("session_ttl_seconds")
        .unwrap_or_else(|| "1800".into())
        .trim()
        .parse()
        .map_err(|_| Error::invalid_input("setting 'session_ttl_seconds' must be a whole number"))?;
    Ok(Settings {
        base,
        site,
        flavour,
        session_ttl,
    })
}

/// A logged-in session: the cookies to send, and the CSRF token for writes.
#[derive(Serialize, Deserialize)]
struct Session {
    flavour: Flavour,
    cookie: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// A connection to the controller for one call.
struct Controller {
    s: Settings,
    session: Option<Session>,
    /// Whether the session was opened during this call (a 401 then is not a stale session).
    fresh: bool,
}

/// The controller's error envelope, `{"meta": {"rc", "msg"}, "data": [...]}`.
#[derive(Deserialize)]
struct Envelope {
    meta: Meta,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    rc: String,
    #[serde(default)]
    msg: Option<String>,
}

fn envelope(response: &http::Response) -> Option<Envelope> {
    serde_json::from_slice(&response.body).ok()
}

/// The controller's own word for what went wrong: `meta.msg`, or UniFi OS's `message`/`code`.
fn vendor_message(response: &http::Response) -> Option<String> {
    if let Some(msg) = envelope(response).and_then(|e| e.meta.msg) {
        return Some(msg);
    }
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    ["message", "code", "error"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

fn said(response: &http::Response) -> String {
    let detail = vendor_message(response)
        .unwrap_or_else(|| snippet(response.text().trim(), 200))
        .replace(['\r', '\n'], " ");
    if detail.is_empty() {
        format!("{} answered HTTP {}", response.url, response.status)
    } else {
        format!(
            "{} answered HTTP {}: {}",
            response.url,
            response.status,
            snippet(&detail, 200)
        )
    }
}

fn credential(name: &str) -> Result<secrets::Secret> {
    match secrets::get(name) {
        Ok(v) if !v.expose().is_empty() => Ok(v),
        Ok(_) => Err(Error::denied(format!(
            "the UniFi {name} is empty; {SET_CREDENTIALS_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::NotFound => Err(Error::denied(format!(
            "no UniFi {name} is set; {SET_CREDENTIALS_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::Denied => Err(Error::denied(format!(
            "{}; grant the secrets with `osprey plugin grant unifi --requested`, then {SET_CREDENTIALS_HINT}",
            e.message
        ))),
        Err(e) => Err(e),
    }
}

/// `name=value; name=value` of every cookie the response sets (expired ones are skipped).
fn cookies_of(response: &http::Response) -> Vec<(String, String)> {
    response
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| {
            let pair = v.split(';').next()?.trim();
            let (name, value) = pair.split_once('=')?;
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            (!name.is_empty() && !value.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

impl Controller {
    fn open() -> Result<Controller> {
        Ok(Controller {
            s: settings()?,
            session: None,
            fresh: false,
        })
    }

    fn cache_key(&self) -> Option<String> {
        let key = format!("session:{}", self.s.base);
        (self.s.session_ttl > 0 && key.len() <= 512).then_some(key)
    }

    fn api_base(&self, flavour: Flavour) -> String {
        match flavour {
            Flavour::Classic => format!("{}/api/s/{}", self.s.base, self.s.site),
            Flavour::UnifiOs => format!("{}/proxy/network/api/s/{}", self.s.base, self.s.site),
        }
    }

    /// A session from the cache or a new login.
    fn ensure_session(&mut self) -> Result<()> {
        if self.session.is_some() {
            return Ok(());
        }
        if let Some(key) = self.cache_key() {
            // The cache saves logins; a cache that cannot be read costs a login, not the call.
            let cached = kv::get(&key).unwrap_or_else(|e| {
                log::warn("could not read the kept session", &[("error", &e.message)]);
                None
            });
            if let Some(bytes) = cached {
                match serde_json::from_slice::<Session>(&bytes) {
                    Ok(s) if self.s.flavour.is_none_or(|f| f == s.flavour) => {
                        self.session = Some(s);
                        self.fresh = false;
                        return Ok(());
                    }
                    _ => self.forget_session(),
                }
            }
        }
        self.login()
    }

    fn forget_session(&mut self) {
        self.session = None;
        if let Some(key) = self.cache_key()
            && let Err(e) = kv::delete(&key)
        {
            log::warn("could not drop the kept session", &[("error", &e.message)]);
        }
    }

    fn save_session(&self) {
        let (Some(key), Some(session)) = (self.cache_key(), self.session.as_ref()) else {
            return;
        };
        // A full kv store costs a login per call, not the call.
        if let Err(e) = kv::set_json(&key, session, Some(Duration::from_secs(self.s.session_ttl))) {
            log::warn("could not keep the controller session", &[("error", &e.message)]);
        }
    }

    /// `GET /` without following redirects: UniFi OS serves its console (200), a classic
    /// controller redirects to `/manage`.
    fn detect(&self) -> Result<Flavour> {
        let response = http::Request::get(format!("{}/", self.s.base))
            .header("accept", "text/html")
            .send()?;
        match response.status {
            200 => Ok(Flavour::UnifiOs),
            301 | 302 | 303 | 307 | 308 => Ok(Flavour::Classic),
            500..=599 => Err(Error::unavailable(said(&response))),
            status => Err(Error::upstream(format!(
                "could not tell whether {} is a classic UniFi controller or UniFi OS: GET / \
                 answered HTTP {status}; check the base_url setting, or set the kind with \
                 `osprey plugin config unifi controller=classic` (or controller=unifi-os)",
                self.s.base
            ))),
        }
    }

    fn login(&mut self) -> Result<()> {
        // Missing credentials are the operator's to fix before anything is sent.
        let username = credential("username")?;
        let password = credential("password")?;
        let flavour = match self.s.flavour {
            Some(f) => f,
            None => self.detect()?,
        };
        let url = format!("{}{}", self.s.base, flavour.login_path());
        let response = http::Request::post(url)
            .header("accept", "application/json")
            .json(&json!({
                "username": username.expose(),
                "password": password.expose(),
                "remember": true,
            }))
            .send()?;
        drop((username, password));

        let refused_in_body = envelope(&response).is_some_and(|e| e.meta.rc == "error");
        match response.status {
            200..=299 if !refused_in_body => {}
            200..=299 | 400 | 401 | 403 => return Err(self.login_refused(&response)),
            404 | 405 => {
                return Err(Error::upstream(format!(
                    "{}; there is no {} login there: check the base_url setting, and set \
                     `osprey plugin config unifi controller=auto` (or the other kind)",
                    said(&response),
                    if flavour == Flavour::Classic {
                        "classic controller"
                    } else {
                        "UniFi OS"
                    }
                )));
            }
            429 => {
                return Err(Error::rate_limited(format!(
                    "{}; the controller refuses logins for a while after too many",
                    said(&response)
                )));
            }
            300..=399 => {
                return Err(Error::upstream(format!(
                    "{}; redirects are not followed: check the base_url setting (https, and \
                     the port: 8443 for a classic controller, 443 for UniFi OS)",
                    said(&response)
                )));
            }
            500..=599 => return Err(Error::unavailable(said(&response))),
            _ => return Err(Error::upstream(said(&response))),
        }

        let cookies = cookies_of(&response);
        let wanted = flavour.session_cookie();
        if !cookies.iter().any(|(name, _)| name == wanted) {
            return Err(Error::upstream(format!(
                "{} accepted the login but set no '{wanted}' session cookie; is base_url a \
                 {} controller?",
                response.url,
                flavour.name()
            )));
        }
        let csrf = match flavour {
            Flavour::UnifiOs => response.header("x-csrf-token").map(str::to_owned),
            Flavour::Classic => cookies
                .iter()
                .find(|(name, _)| name == "csrf_token")
                .map(|(_, v)| v.clone()),
        };
        let cookie = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        self.session = Some(Session {
            flavour,
            cookie,
            csrf,
        });
        self.fresh = true;
        self.save_session();
        log::info(
            "logged in to the controller",
            &[("controller", &self.s.base), ("kind", flavour.name())],
        );
        Ok(())
    }

    fn login_refused(&self, response: &http::Response) -> Error {
        let message = vendor_message(response).unwrap_or_default();
        let lower = message.to_ascii_lowercase();
        if lower.contains("2fa") || lower.contains("mfa") || response.status == 499 {
            return Error::denied(format!(
                "{}: the account needs two-factor authentication, which Osprey cannot answer; \
                 create a local account without it for Osprey, then {SET_CREDENTIALS_HINT}",
                said(response)
            ));
        }
        Error::denied(format!(
            "the UniFi controller at {} refused the username or password ({}); check them, \
             then {SET_CREDENTIALS_HINT}",
            self.s.base,
            said(response)
        ))
    }

    /// Send one API request to `{api base}{path}` and return `data`. A 401 on a session from
    /// the cache means it expired: log in again and repeat the request, once.
    fn request(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Vec<Value>> {
        for _ in 0..2 {
            self.ensure_session()?;
            let Some(session) = self.session.as_ref() else {
                return Err(Error::internal("no session after logging in"));
            };
            let flavour = session.flavour;
            let url = format!("{}{path}", self.api_base(flavour));
            let mut request = http::Request::new(method, url)
                .header("accept", "application/json")
                .header("cookie", session.cookie.clone());
            if method != "GET"
                && let Some(token) = &session.csrf
            {
                request = request.header("x-csrf-token", token.clone());
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send()?;

            // UniFi OS may hand out a new CSRF token with any answer.
            if let Some(token) = response.header("x-updated-csrf-token").filter(|t| !t.is_empty())
                && let Some(session) = self.session.as_mut()
                && session.csrf.as_deref() != Some(token)
            {
                session.csrf = Some(token.to_owned());
                self.save_session();
            }

            let msg = envelope(&response).and_then(|e| e.meta.msg).unwrap_or_default();
            // UniFi OS answers 403 to a stale CSRF token; a new login brings a new one.
            let stale_csrf = response.status == 403
                && flavour == Flavour::UnifiOs
                && !msg.contains("NoPermission")
                && !self.fresh;
            if response.status == 401 || msg == "api.err.LoginRequired" || stale_csrf {
                if !self.fresh {
                    log::info(
                        "the controller session expired; logging in again",
                        &[("controller", &self.s.base)],
                    );
                    self.forget_session();
                    continue;
                }
                return Err(Error::denied(format!(
                    "{}; the controller refused the session it had just opened: check that the \
                     account may use the Network application on site '{}'",
                    said(&response),
                    self.s.site
                )));
            }
            return self.data_of(&response);
        }
        Err(Error::denied(format!(
            "the controller at {} refused two sessions in a row",
            self.s.base
        )))
    }

    fn data_of(&self, response: &http::Response) -> Result<Vec<Value>> {
        if (200..300).contains(&response.status) {
            let body: Envelope = response.json()?;
            if body.meta.rc == "ok" {
                return match body.data {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(items)) => Ok(items),
                    Some(other) => Ok(vec![other]),
                };
            }
        }
        Err(self.api_error(response))
    }

    /// Map an answer that is not `rc: ok` to an error kind, with the controller's message.
    fn api_error(&self, response: &http::Response) -> Error {
        let env = envelope(response);
        let msg = env.as_ref().and_then(|e| e.meta.msg.clone()).unwrap_or_default();
        let said = said(response);
        let status = response.status;
        if msg.contains("NoSiteContext") || msg.contains("InvalidSite") || msg.contains("SiteNotFound") {
            return Error::invalid_input(format!(
                "{said}; the controller has no site '{}': set the site's short name with \
                 `osprey plugin config unifi site=<name>` (as in /manage/site/<name>/)",
                self.s.site
            ));
        }
        if msg.contains("NoPermission") || status == 403 {
            return Error::denied(format!(
                "{said}; the controller account may not do this on site '{}': give it full \
                 management (administrator) rights",
                self.s.site
            ));
        }
        // The controller's own "no such object" (an envelope, not a bare 404 page).
        if msg.contains("IdInvalid") || msg.contains("NotFound") || (status == 404 && env.is_some()) {
            return Error::not_found(said);
        }
        match status {
            404 => Error::upstream(format!(
                "{said}; no such API path: check the base_url and controller settings"
            )),
            429 => Error::rate_limited(format!("{said}; retry later")),
            500..=599 => Error::unavailable(said),
            300..=399 => Error::upstream(format!(
                "{said}; redirects are not followed: check the base_url setting"
            )),
            400 | 422 => Error::invalid_input(format!("{said}; the controller refused the request")),
            _ => Error::upstream(said),
        }
    }

    /// End the call: without a session cache, log out (best effort).
    fn close(self) {
        if self.cache_key().is_some() {
            return;
        }
        let Some(session) = self.session else { return };
        let mut request = http::Request::post(format!("{}{}", self.s.base, session.flavour.logout_path()))
            .header("accept", "application/json")
            .header("cookie", session.cookie);
        if let Some(token) = session.csrf {
            request = request.header("x-csrf-token", token);
        }
        if let Err(e) = request.send() {
            log::debug("logout failed", &[("error", &e.message)]);
        }
    }
}

/// Run `f` with a controller connection, logging out afterwards when sessions are not kept.
fn with_controller<T>(f: impl FnOnce(&mut Controller) -> Result<T>) -> Result<T> {
    let mut c = Controller::open()?;
    let out = f(&mut c);
    c.close();
    out
}

// ---------------------------------------------------------------------------------------
// Reading the controller's objects
// ---------------------------------------------------------------------------------------

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

fn client_of(v: &Value) -> Option<Client> {
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

fn rule_of(v: &Value) -> Option<Rule> {
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

fn connected_clients(c: &mut Controller) -> Result<Vec<Client>> {
    let data = c.request("GET", "/stat/sta", None)?;
    let total = data.len();
    let clients: Vec<Client> = data.iter().filter_map(client_of).collect();
    if clients.len() < total {
        log::warn(
            "the controller listed clients without a usable MAC address; they are left out",
            &[("left_out", &(total - clients.len()).to_string())],
        );
    }
    Ok(clients)
}

fn names_match(client: &Client, hostname: &str) -> bool {
    [&client.hostname, &client.name]
        .into_iter()
        .flatten()
        .any(|n| n.eq_ignore_ascii_case(hostname))
}

fn list_clients(_ctx: &Context, input: ListClientsInput) -> Result<ListClientsOutput> {
    let mac = input.mac.as_deref().map(parse_mac).transpose()?;
    let ip = input
        .ip
        .as_deref()
        .map(|raw| {
            raw.trim()
                .parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| {
                    Error::invalid_input(format!("'{}' is not an IPv4 or IPv6 address", snippet(raw, 64)))
                })
        })
        .transpose()?;
    let hostname = input.hostname.as_deref().map(str::trim).filter(|h| !h.is_empty());

    let clients = with_controller(connected_clients)?;
    let clients: Vec<Client> = clients
        .into_iter()
        .filter(|c| mac.as_ref().is_none_or(|m| &c.mac == m))
        .filter(|c| {
            ip.is_none_or(|want| {
                c.ip.as_deref()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|have| have.to_canonical() == want)
            })
        })
        .filter(|c| hostname.is_none_or(|h| names_match(c, h)))
        .collect();
    Ok(ListClientsOutput {
        count: clients.len(),
        clients,
    })
}

fn find_client(_ctx: &Context, input: FindClientInput) -> Result<FindClientOutput> {
    let hostname = input.hostname.as_deref().map(str::trim).filter(|h| !h.is_empty());
    let mac = match (input.mac.as_deref(), hostname) {
        (Some(m), None) => Some(parse_mac(m)?),
        (None, Some(_)) => None,
        _ => {
            return Err(Error::invalid_input(
                "give either 'mac' or 'hostname' (one of them) to find a client",
            ));
        }
    };
    let clients = with_controller(connected_clients)?;
    let mut matches: Vec<Client> = clients
        .into_iter()
        .filter(|c| match (&mac, hostname) {
            (Some(m), _) => &c.mac == m,
            (None, Some(h)) => names_match(c, h),
            (None, None) => false,
        })
        .collect();
    let count = matches.len();
    let client = (count > 0).then(|| matches.swap_remove(0));
    Ok(FindClientOutput {
        found: client.is_some(),
        client,
        matches: count,
    })
}

fn station_command(cmd: &str, input: MacInput) -> Result<BlockOutput> {
    let mac = parse_mac(&input.mac)?;
    let want = cmd == "block-sta";
    let data = with_controller(|c| c.request("POST", "/cmd/stamgr", Some(&json!({"cmd": cmd, "mac": mac}))))?;
    // The controller answers with the client's record; some versions answer with nothing.
    let blocked = data
        .iter()
        .find(|v| {
            v.get("mac")
                .and_then(Value::as_str)
                .and_then(|m| parse_mac(m).ok())
                .as_ref()
                == Some(&mac)
        })
        .and_then(|v| v.get("blocked"))
        .and_then(Value::as_bool)
        .unwrap_or(want);
    if blocked != want {
        return Err(Error::upstream(format!(
            "the controller accepted {cmd} for {mac} but reports it as {}",
            if blocked { "still blocked" } else { "not blocked" }
        )));
    }
    log::info(
        if want {
            "blocked a client"
        } else {
            "unblocked a client"
        },
        &[("mac", &mac)],
    );
    Ok(BlockOutput { mac, blocked })
}

fn block_client(_ctx: &Context, input: MacInput) -> Result<BlockOutput> {
    station_command("block-sta", input)
}

fn unblock_client(_ctx: &Context, input: MacInput) -> Result<BlockOutput> {
    station_command("unblock-sta", input)
}

fn all_rules(c: &mut Controller) -> Result<Vec<Rule>> {
    let data = c.request("GET", "/rest/firewallrule", None)?;
    let mut rules: Vec<Rule> = data.iter().filter_map(rule_of).collect();
    rules.sort_by(|a, b| (&a.ruleset, a.rule_index).cmp(&(&b.ruleset, b.rule_index)));
    Ok(rules)
}

fn list_firewall_rules(_ctx: &Context, input: ListRulesInput) -> Result<ListRulesOutput> {
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

fn create_firewall_rule(_ctx: &Context, input: CreateRuleInput) -> Result<CreateRuleOutput> {
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
    let ruleset = input.ruleset.name();
    let action = serde_json::to_value(input.action)?
        .as_str()
        .unwrap_or("drop")
        .to_owned();

    let (rule, created) = with_controller(|c| {
        let existing = all_rules(c)?;
        let same = existing.iter().find(|r| {
            r.name == name
                && r.ruleset == ruleset
                && r.action == action
                && r.src_mac == src_mac
                && r.src_address == src_address
                && r.dst_address == dst_address
        });
        if let Some(rule) = same {
            return Ok((rule.clone(), false));
        }
        let rule_index = match input.rule_index {
            Some(i) => i64::from(i),
            None => {
                let highest = existing
                    .iter()
                    .filter(|r| r.ruleset == ruleset)
                    .filter_map(|r| r.rule_index)
                    .filter(|i| (2000..=2999).contains(i))
                    .max();
                match highest {
                    None => 2000,
                    Some(2999) => {
                        return Err(Error::invalid_input(format!(
                            "rule index 2999 is taken in {ruleset}; give a free rule_index \
                             (2000-2999, or 4000 and up)"
                        )));
                    }
                    Some(i) => i + 1,
                }
            }
        };
        let body = json!({
            "name": name,
            "enabled": input.enabled,
            "action": action,
            "ruleset": ruleset,
            "rule_index": rule_index,
            "protocol": input.protocol.name(),
            "protocol_match_excepted": false,
            "logging": input.logging,
            "state_established": false,
            "state_invalid": false,
            "state_new": false,
            "state_related": false,
            "ipsec": "",
            "src_firewallgroup_ids": [],
            "src_mac_address": src_mac.clone().unwrap_or_default(),
            "src_address": src_address.clone().unwrap_or_default(),
            "src_networkconf_id": "",
            "src_networkconf_type": "NETv4",
            "dst_firewallgroup_ids": [],
            "dst_address": dst_address.clone().unwrap_or_default(),
            "dst_networkconf_id": "",
            "dst_networkconf_type": "NETv4",
        });
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

fn delete_firewall_rule(_ctx: &Context, input: DeleteRuleInput) -> Result<DeleteRuleOutput> {
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

fn plugin() -> Plugin {
    Plugin::new(
        "unifi",
        env!("CARGO_PKG_VERSION"),
        "UniFi Network controller (classic or UniFi OS): connected clients, blocking and \
         unblocking a client, firewall rules",
    )
    .action(
        "list-clients",
        "The clients connected to the site now (MAC, IP, host name, alias, wired or not, \
         blocked or not, last seen), optionally only those with a MAC, IP or host name.",
        list_clients,
    )
    .action(
        "find-client",
        "Whether a client with this MAC address or host name (or alias) is connected now: \
         found, and the client when it is.",
        find_client,
    )
    .action(
        "block-client",
        "Block a client by MAC address: the controller disconnects it and refuses it on every \
         access point and switch port until it is unblocked.",
        block_client,
    )
    .action(
        "unblock-client",
        "Unblock a client blocked by MAC address.",
        unblock_client,
    )
    .action(
        "create-firewall-rule",
        "Create a firewall rule on the site's gateway matching a source MAC or IPv4 \
         address/network (and optionally a destination), dropping it by default, in LAN_IN by \
         default; returns the rule with its id. An identical rule of the same name is returned \
         instead of being created twice.",
        create_firewall_rule,
    )
    .action(
        "delete-firewall-rule",
        "Delete a firewall rule by id; deleted is false when there was no such rule.",
        delete_firewall_rule,
    )
    .action(
        "list-firewall-rules",
        "The firewall rules of the site's gateway, optionally of one rule set.",
        list_firewall_rules,
    )
}

osprey_sdk::export_plugin!(plugin);
