//! `osprey intake poll add|list|remove`: pollers, plugin actions asked on a schedule for
//! new items (see `poll/`). The server picks a change up at its next tick.

use crate::app::App;
use crate::config::Config;
use crate::poll::spec::PollConfig;
use anyhow::{Context, bail};

#[derive(Debug, clap::Subcommand)]
pub enum IntakeCommand {
    /// Pollers: ask a plugin action for new items on a schedule, each item an alert.
    #[command(subcommand)]
    Poll(PollCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum PollCommand {
    /// Add a poller, or change the one with that name (its cursor is kept).
    #[command(after_help = "\
Examples:
  osprey intake poll add tickets --plugin servicenow --action list-incidents --every 1m
  osprey intake poll add p1 --plugin servicenow --action list-incidents --every 30s \\
      --input '{\"query\": \"active=true^priority=1\", \"limit\": 200}'

The action gets the input with `cursor` added (the one it returned last time, none at
first) and returns {items: [...], cursor}; each item becomes an alert through the normal
intake (rules, deduplication, incidents), attributed `poll:NAME`.")]
    Add {
        name: String,
        /// The plugin (installed and granted).
        #[arg(long)]
        plugin: String,
        /// The action that lists new items.
        #[arg(long)]
        action: String,
        /// How often: "1m", "30s" (at least `intake.poll_min_every`, at most 24h).
        #[arg(long)]
        every: String,
        /// The action's input, a JSON object (without `cursor`).
        #[arg(long)]
        input: Option<String>,
    },
    /// The pollers and where each stands: last run, last error, failures, items.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a poller and forget its cursor.
    Remove { name: String },
}

pub async fn run(cmd: IntakeCommand, config: Config) -> anyhow::Result<i32> {
    let IntakeCommand::Poll(cmd) = cmd;
    let floor = config.intake.poll_min_every;
    let app = App::open(config).await?;
    match cmd {
        PollCommand::Add {
            name,
            plugin,
            action,
            every,
            input,
        } => {
            let every = crate::duration::parse(&every)?;
            let input = match input {
                None => serde_json::Map::new(),
                Some(text) => match serde_json::from_str(&text).context("--input is not JSON")? {
                    serde_json::Value::Object(map) => map,
                    _ => bail!("--input must be a JSON object"),
                },
            };
            let poll = PollConfig {
                name,
                plugin,
                action,
                every,
                input,
            };
            poll.check(floor)?;
            let loaded = app.runtime.get(&poll.plugin)?;
            if !loaded.description.actions.iter().any(|a| a.name == poll.action) {
                let actions: Vec<&str> = loaded
                    .description
                    .actions
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect();
                bail!(
                    "plugin '{}' has no action '{}'; its actions are: {}",
                    poll.plugin,
                    poll.action,
                    actions.join(", ")
                );
            }
            app.store.put_poller(&crate::poll::to_spec(&poll)).await?;
            println!(
                "poller {} polls {}.{} every {}",
                poll.name,
                poll.plugin,
                poll.action,
                humantime::format_duration(poll.every)
            );
        }
        PollCommand::List { json } => {
            let pollers = app.store.pollers().await?;
            if json {
                for p in &pollers {
                    println!("{}", serde_json::to_string(p)?);
                }
            } else if pollers.is_empty() {
                println!("no pollers");
            } else {
                for p in &pollers {
                    let every =
                        humantime::format_duration(std::time::Duration::from_millis(p.every_ms as u64));
                    let last = p.last_run_at.map_or("never".to_owned(), super::render::time);
                    let state = match &p.last_error {
                        Some(e) => format!(
                            "failing ({} in a row, next try {}): {e}",
                            p.failures,
                            super::render::time(p.next_due)
                        ),
                        None => "ok".to_owned(),
                    };
                    println!(
                        "{}  {}.{} every {}  last run {}  polls {}  items {}  bad {}  {}",
                        p.name, p.plugin, p.action, every, last, p.polls, p.items, p.bad_items, state
                    );
                    if let Some(bad) = &p.last_bad {
                        println!("  last bad item: {bad}");
                    }
                }
            }
        }
        PollCommand::Remove { name } => {
            if !app.store.remove_poller(&name).await? {
                bail!("no poller named '{name}'; see `osprey intake poll list`");
            }
            println!("poller {name} removed");
        }
    }
    Ok(0)
}
