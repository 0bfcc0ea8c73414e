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

mod answer;
mod clients;
mod firewall;
mod io;
mod objects;
mod session;
mod settings;
mod validation;

use clients::{block_client, find_client, list_clients, unblock_client};
use firewall::{create_firewall_rule, delete_firewall_rule, list_firewall_rules};
use osprey_sdk::prelude::*;

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
