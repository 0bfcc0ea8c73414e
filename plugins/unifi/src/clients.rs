//! The client actions: list-clients, find-client, block-client, unblock-client.

use crate::io::{
    BlockOutput, Client, FindClientInput, FindClientOutput, ListClientsInput, ListClientsOutput, MacInput,
};
use crate::objects::{client_of, names_match};
use crate::session::{Controller, with_controller};
use crate::validation::{parse_mac, snippet};
use osprey_sdk::prelude::*;
use std::net::IpAddr;

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

/// The filters of list-clients, checked; every one given must match.
struct ClientFilter<'a> {
    mac: Option<String>,
    ip: Option<IpAddr>,
    hostname: Option<&'a str>,
}

impl<'a> ClientFilter<'a> {
    fn from_input(input: &'a ListClientsInput) -> Result<ClientFilter<'a>> {
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
        Ok(ClientFilter { mac, ip, hostname })
    }

    fn keeps(&self, c: &Client) -> bool {
        self.mac.as_ref().is_none_or(|m| &c.mac == m)
            && self.ip.is_none_or(|want| {
                c.ip.as_deref()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|have| have.to_canonical() == want)
            })
            && self.hostname.is_none_or(|h| names_match(c, h))
    }
}

pub(crate) fn list_clients(_ctx: &Context, input: ListClientsInput) -> Result<ListClientsOutput> {
    let filter = ClientFilter::from_input(&input)?;
    let clients = with_controller(connected_clients)?;
    let clients: Vec<Client> = clients.into_iter().filter(|c| filter.keeps(c)).collect();
    Ok(ListClientsOutput {
        count: clients.len(),
        clients,
    })
}

pub(crate) fn find_client(_ctx: &Context, input: FindClientInput) -> Result<FindClientOutput> {
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
    let blocked = reported_blocked(&data, &mac).unwrap_or(want);
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

/// Whether the controller's answer to a station command says the client `mac` is blocked.
fn reported_blocked(data: &[Value], mac: &str) -> Option<bool> {
    data.iter()
        .find(|v| {
            v.get("mac")
                .and_then(Value::as_str)
                .and_then(|m| parse_mac(m).ok())
                .as_deref()
                == Some(mac)
        })
        .and_then(|v| v.get("blocked"))
        .and_then(Value::as_bool)
}

pub(crate) fn block_client(_ctx: &Context, input: MacInput) -> Result<BlockOutput> {
    station_command("block-sta", input)
}

pub(crate) fn unblock_client(_ctx: &Context, input: MacInput) -> Result<BlockOutput> {
    station_command("unblock-sta", input)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clients() -> Vec<Client> {
        [
            json!({"mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.21", "hostname": "tablet"}),
            json!({"mac": "aa:bb:cc:dd:ee:02", "ip": "2001:db8::2", "name": "TV"}),
            json!({"mac": "aa:bb:cc:dd:ee:03"}),
        ]
        .iter()
        .filter_map(crate::objects::client_of)
        .collect()
    }

    fn kept(input: Value) -> Vec<String> {
        let input: ListClientsInput = serde_json::from_value(input).unwrap();
        let filter = ClientFilter::from_input(&input).unwrap();
        clients()
            .into_iter()
            .filter(|c| filter.keeps(c))
            .map(|c| c.mac)
            .collect()
    }

    #[test]
    fn every_filter_given_must_match() {
        assert_eq!(kept(json!({})).len(), 3);
        assert_eq!(kept(json!({"mac": "AABB.CCDD.EE01"})), ["aa:bb:cc:dd:ee:01"]);
        assert_eq!(kept(json!({"ip": "2001:db8:0::2"})), ["aa:bb:cc:dd:ee:02"]);
        assert_eq!(kept(json!({"hostname": " tv "})), ["aa:bb:cc:dd:ee:02"]);
        assert_eq!(
            kept(json!({"hostname": ""})).len(),
            3,
            "a blank host name filters nothing"
        );
        assert!(kept(json!({"mac": "aa:bb:cc:dd:ee:01", "hostname": "tv"})).is_empty());
    }

    #[test]
    fn a_bad_filter_is_invalid_input() {
        let input: ListClientsInput = serde_json::from_value(json!({"ip": "10.0.0"})).unwrap();
        let e = ClientFilter::from_input(&input).err().unwrap();
        assert!(e.message.contains("not an IPv4 or IPv6 address"), "{}", e.message);
    }

    #[test]
    fn the_blocked_state_is_read_from_the_record_of_the_same_client() {
        let data = [
            json!({"mac": "aa:bb:cc:dd:ee:02", "blocked": false}),
            json!({"mac": "AA-BB-CC-DD-EE-01", "blocked": true}),
        ];
        assert_eq!(reported_blocked(&data, "aa:bb:cc:dd:ee:01"), Some(true));
        assert_eq!(reported_blocked(&data, "aa:bb:cc:dd:ee:09"), None);
        assert_eq!(reported_blocked(&[], "aa:bb:cc:dd:ee:01"), None);
    }
}
