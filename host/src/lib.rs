//! Osprey: a self-hosted security automation host.
//!
//! The modules are the boxes of `ARCHITECTURE.md`; each owns its part of the system and
//! exposes a small API to the others:
//!
//! - [`config`]: the one TOML file, environment overrides and defaults.
//! - [`capability`]: what a plugin asks for (its manifest's requests) and what the operator
//!   granted; pure data and matching rules, no I/O.
//! - [`cases`]: incident types from the config: SLA, team, custom fields; pure.
//! - [`auth`]: API tokens: making them and checking them.
//! - [`rbac`]: the roles and what each route needs; pure.
//! - [`web_auth`]: signing in to the web console: password hashes, session and CSRF tokens.
//! - [`vault`]: the master key and the encryption of secrets at rest. Only this module sees
//!   key material.
//! - [`audit_checkpoint`]: signed checkpoints of the audit log, kept by an auditor outside
//!   Osprey, and checking the log against them.
//! - [`store`]: the database (SQLite or PostgreSQL). Only this module writes SQL.
//! - [`pack`]: plugin packs: one signed file per plugin (format, minisign signatures, the
//!   trust decision); pure.
//! - [`plugin`]: the WebAssembly runtime. Only this module touches wasmtime.
//! - [`install`]: installing and upgrading plugins (a plan with its diffs, then applying it),
//!   for the CLI and the console.
//! - [`names`]: the one rule for the names of plugins, playbooks, rules, lists and tokens.
//! - [`playbook`]: playbook scripts and their durable replay. Only this module touches Rhai.
//! - [`preprocess`]: pre-processing rules: drop, deduplicate, link, or open an incident
//!   and start playbooks, for each alert before any playbook runs.
//! - [`runs`]: the executor that claims queued runs and replays them with real effects.
//! - [`schedule`]: cron triggers.
//! - [`humans`]: questions to people (`ask`, `approve`, `form`), their signed links, mails,
//!   reminders and timeouts, and the "talk to a human" escalation.
//! - [`mail`]: outgoing mail: `[mail]`, composing messages, and the sender that delivers
//!   the outbox over SMTP with retries.
//! - [`sla_watch`]: records SLA breaches and starts the playbooks that trigger on them.
//! - [`intake`]: parsing incoming alerts (JSON, NDJSON, PassiveDNS, syslog) and extracting
//!   observables; pure functions.
//! - [`metrics`]: the Prometheus metrics every box counts into, served at `/metrics`.
//! - [`server`]: the HTTP server.
//! - [`app`]: wires the above together for the CLI and the server.
//! - [`cli`]: the command line.
//! - [`demo`]: `osprey demo`'s setup, scenarios and sample alerts, from the `demo/` folder.
//! - [`nesting`]: the one nesting limit of JSON values, checked wherever values come in.
//! - [`alloc_meter`]: counts each thread's allocations, for the playbook memory limit.
//! - [`duration`]: durations written as text ("30s", "4h"): the one parser and its serde adapters.

pub mod alloc_meter;
pub mod app;
pub mod audit_checkpoint;
pub mod auth;
pub mod capability;
pub mod cases;
pub mod cli;
pub mod config;
pub mod demo;
pub mod duration;
pub mod first_run;
pub mod humans;
pub mod install;
pub mod intake;
pub mod mail;
pub mod metrics;
pub mod names;
pub mod nesting;
pub mod oci;
pub mod pack;
pub mod playbook;
pub mod plugin;
pub mod poll;
pub mod preprocess;
pub mod rbac;
pub mod runs;
pub mod schedule;
pub mod server;
pub mod sla_watch;
pub mod store;
#[cfg(test)]
mod tidy;
pub mod vault;
pub mod web_auth;

/// The unit tests count allocations as the binary does, so the playbook memory limit is on.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: alloc_meter::Metered<std::alloc::System> = alloc_meter::Metered(std::alloc::System);
