//! Osprey's end-to-end tests: one test binary (ripgrep's layout) with shared helpers in
//! `support/`. Tests run the real `osprey` binary or the real runtime against real SQLite
//! files and fake vendor servers on 127.0.0.1; nothing of Osprey's own is mocked.
//!
//! The plugins must be built first (`scripts/build-plugins.sh`, which `scripts/test.sh`
//! runs).

mod support;

mod api;
mod api_lists;
mod audit;
mod autofocus;
mod aws_ec2;
mod bonusly;
mod browser;
mod cases;
mod cli;
mod cluster;
mod console;
mod console_install;
mod decision_lag;
mod demo;
mod hostile;
mod hostile_playbooks;
mod humans;
mod indicators;
mod intake;
mod ipinfo;
mod lists;
mod loading;
mod mail;
mod major_incident_report;
mod metrics;
mod msgraph;
mod openapi;
mod packs;
mod packs_oci;
mod page_escaping;
mod playbook_charts;
mod playbooks;
mod plugin_lifecycle;
mod plugin_mock;
mod plugin_new;
mod plugin_upgrade;
mod plugin_versions;
mod plugin_webhooks;
mod polling;
mod preprocess;
mod rbac;
mod schemathesis;
mod seed_bitcoin;
mod seed_bonusly;
mod seed_defence_validation;
mod seed_deputise;
mod seed_domain_request;
mod serve;
mod servicenow;
mod slack;
mod slack_questions;
mod streaming_guard;
mod sub_playbooks;
mod tls;
mod unifi;
mod virustotal;
mod web_login;
