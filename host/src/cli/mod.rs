//! The command line. Each subcommand opens an [`App`](crate::app::App) and works on the same
//! data directory as the server, so an operator can grant, set secrets and install plugins
//! while the server runs (it picks the changes up within `runtime.policy_refresh`).

mod alert;
mod audit;
mod demo;
mod incident;
mod indicator;
mod intake;
mod list;
mod mail;
mod pack;
mod playbook;
mod plugin;
mod plugin_kept;
mod plugin_mock;
mod plugin_new;
mod question;
mod render;
mod rules;
mod run;
mod secret;
mod serve;
mod task;
mod token;
mod trust;
mod user;

use crate::config::Config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Osprey: a self-hosted security automation host.
///
/// Integrations run as sandboxed WebAssembly components with only the capabilities an
/// operator granted them: outbound HTTP to named hosts, named secrets, a private key-value
/// store, and CPU and memory limits.
#[derive(Debug, Parser)]
#[command(name = "osprey", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "\
Getting started:
  scripts/run.sh --demo                          try it: mocked connectors, sample alerts (./demo-data)
  osprey serve                                   run the server (SQLite in ./data)
  osprey plugin install plugins/dist/ipinfo      install a plugin and review what it asks for
  osprey plugin grant ipinfo --requested         grant what it asks for
  echo -n \"$TOKEN\" | osprey secret set ipinfo token
  osprey plugin call ipinfo lookup --input '{\"ip\":\"8.8.8.8\"}'
  osprey playbook run ip-enrichment --input '{\"ip\":\"8.8.8.8\"}'

Configuration comes from osprey.toml (or --config / OSPREY_CONFIG), then OSPREY_* environment
variables, then these flags. See README.md, \"Configuration\".")]
pub struct Cli {
    /// Config file (default: ./osprey.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Data directory: SQLite database, installed plugins, compiled-plugin cache, master key.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: HTTP API and plugin runtime.
    Serve(serve::ServeArgs),
    /// Try Osprey: a demo data directory (./demo-data) with mocked connectors, a user per
    /// role, sample alerts and scenarios, served as `serve` does.
    Demo(demo::DemoArgs),
    /// Install, inspect, grant, configure and call plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Plugin packs: build one file from a plugin folder, sign it, verify it, inspect it.
    #[command(subcommand)]
    Pack(pack::PackCommand),
    /// The publisher keys whose signed packs `osprey plugin install` accepts.
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Set, list and delete plugin secrets (values are never shown).
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Validate, test and run playbooks.
    #[command(subcommand)]
    Playbook(playbook::PlaybookCommand),
    /// Look at, restart and cancel playbook runs.
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Pre-processing rules: what to drop, deduplicate, link, or open incidents for.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Incidents: list, show, create (and spawn children), change, acknowledge, close,
    /// re-open, relate; their SLA timers.
    #[command(subcommand)]
    Incident(incident::IncidentCommand),
    /// Manual tasks for a user or a role, with a due time: add, complete, delegate, cancel.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Questions that playbooks asked people (ask, approve, form): list and show, with who
    /// answered from where.
    #[command(subcommand)]
    Question(question::QuestionCommand),
    /// Users and the roles (teams) they belong to.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Look at the alerts received.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// Pollers: plugin actions asked on a schedule for new items, each item an alert.
    #[command(subcommand)]
    Intake(intake::IntakeCommand),
    /// Verify, export, show and checkpoint the keyed, hash-chained audit log of every change.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Create, list and revoke API tokens (alert senders, EDL readers, REST API clients).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Allow and block lists of IPs, domains and URLs, served to firewalls at /edl/NAME.txt.
    #[command(subcommand)]
    List(list::ListCommand),
    /// Indicators (IPs, CIDRs, domains, URLs, hashes, e-mail addresses): verdicts and sightings.
    #[command(subcommand)]
    Indicator(indicator::IndicatorCommand),
    /// Outgoing mail: send a test message, look at the outbox.
    #[command(subcommand)]
    Mail(mail::MailCommand),
}

impl Cli {
    /// The configuration after file, environment and flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Command::Serve(args) = &self.command
            && let Some(listen) = args.listen
        {
            config.listen = listen;
        }
        if let Command::Demo(args) = &self.command {
            demo::configure(&mut config, self.data_dir.is_some(), args);
        }
        Ok(config)
    }

    /// Whether this command is the long-running server (it logs at the configured level;
    /// other commands log only warnings and plugin logs, to keep their output readable).
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Demo(_))
    }

    /// Run the command. Returns the process exit code.
    pub async fn run(self, config: Config) -> anyhow::Result<i32> {
        match self.command {
            Command::Serve(args) => serve::run(args, config).await,
            Command::Demo(args) => demo::run(args, config).await,
            Command::Plugin(cmd) => plugin::run(cmd, config).await,
            Command::Pack(cmd) => pack::run(cmd, config).await,
            Command::Trust(cmd) => trust::run(cmd, config).await,
            Command::Secret(cmd) => secret::run(cmd, config).await,
            Command::Playbook(cmd) => playbook::run(cmd, config).await,
            Command::Run(cmd) => run::run(cmd, config).await,
            Command::Alert(cmd) => alert::run(cmd, config).await,
            Command::Intake(cmd) => intake::run(cmd, config).await,
            Command::Rules(cmd) => rules::run(cmd, config).await,
            Command::Incident(cmd) => incident::run(cmd, config).await,
            Command::Task(cmd) => task::run(cmd, config).await,
            Command::Question(cmd) => question::run(cmd, config).await,
            Command::User(cmd) => user::run(cmd, config).await,
            Command::Audit(cmd) => audit::run(cmd, config).await,
            Command::Token(cmd) => token::run(cmd, config).await,
            Command::List(cmd) => list::run(cmd, config).await,
            Command::Indicator(cmd) => indicator::run(cmd, config).await,
            Command::Mail(cmd) => mail::run(cmd, config).await,
        }
    }
}

/// A JSON value from a command-line argument: JSON text, `@FILE`, or `-` for stdin.
fn read_json(arg: &str) -> anyhow::Result<serde_json::Value> {
    use anyhow::Context as _;
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
    } else {
        arg.to_owned()
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--input is not valid JSON: {e}"))
}

/// Like [`read_json`], for inputs that must be objects.
fn read_json_object(arg: &str) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match read_json(arg)? {
        serde_json::Value::Object(m) => Ok(m),
        other => anyhow::bail!("--input must be a JSON object, not {other}"),
    }
}
