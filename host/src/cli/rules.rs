use crate::app::App;
use crate::config::Config;
use crate::intake::Severity;
use crate::preprocess::{RuleAction, RuleFile, RuleSpec};
use crate::store::audit::Actor;
use anyhow::Context as _;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// List the pre-processing rules in the order they are tried.
    List,
    /// Add a rule, or replace the rule with the same name.
    #[command(after_help = "\
Each stored alert goes through the rules in order; the first enabled rule that matches
decides (a link rule that finds no open incident lets the next ones decide). An alert no
rule matches is kept and marked unmatched.

Examples:
  osprey rules set scanner-noise --match 'alert.source == \"ids\" && alert.title.contains(\"ET SCAN\")' \\
      --action drop
  osprey rules set streaming --match 'alert.source == \"passivedns\" && alert.data.query.ends_with(\"netflix.com\")' \\
      --action dedup --key 'alert.data.client' --window 4h --type streaming --playbook streaming-guard
  osprey rules set follow-host --match 'alert.source == \"edr\"' --action link --key 'alert.data.host'
  osprey rules set everything-else --match 'true' --action incident --severity low

Expressions are Rhai over `alert` (source, title, severity, data, observables, ...), with the
playbook data functions (regex_match, split, ...). `osprey rules test` shows what a rule set
would have done to the alerts already received.")]
    Set {
        name: String,
        /// When the rule applies: a Rhai expression over `alert` giving true or false.
        #[arg(long = "match", value_name = "EXPR")]
        matches: String,
        #[arg(long, value_enum)]
        action: ActionArg,
        /// dedup, link (and optionally incident): the key, a Rhai expression over `alert`.
        #[arg(long, value_name = "EXPR")]
        key: Option<String>,
        /// dedup: how long after an incident opens its duplicates fold into it (e.g. 4h).
        #[arg(long, value_parser = crate::duration::parse)]
        window: Option<std::time::Duration>,
        /// The type of the incidents it opens (default: the alert's source).
        #[arg(long = "type", value_name = "TYPE")]
        incident_type: Option<String>,
        /// The severity of the incidents it opens (default: the alert's).
        #[arg(long, value_parser = parse_severity)]
        severity: Option<Severity>,
        /// A playbook to start for each incident it opens; repeat for several.
        #[arg(long = "playbook", value_name = "NAME")]
        playbooks: Vec<String>,
        /// Where in the order (1 = first); default: last for a new rule, unchanged otherwise.
        #[arg(long)]
        position: Option<i64>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Remove a rule.
    Remove { name: String },
    /// Show what a rule set would have done to stored alerts, changing nothing.
    #[command(after_help = "\
Examples:
  osprey rules test                       the stored rules, over the newest 1000 alerts
  osprey rules test --file rules.toml     a candidate set, before you store it
  osprey rules test --limit 50000

A rules file holds [[rules]] tables with the fields of `osprey rules set`:
  [[rules]]
  name = \"streaming\"
  match = 'alert.source == \"passivedns\"'
  action = \"dedup\"
  key = 'alert.data.client'
  window = \"4h\"")]
    Test {
        /// A TOML file of rules to test instead of the stored ones.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// How many of the newest alerts to test against.
        #[arg(long, default_value_t = 1000)]
        limit: i64,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ActionArg {
    Drop,
    Dedup,
    Link,
    Incident,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("'{s}' is not a severity (info, low, medium, high, critical)"))
}

pub async fn run(cmd: RulesCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        RulesCommand::List => {
            let rules = app.store.rules().await?;
            if rules.is_empty() {
                println!("no rules: every alert is kept as unmatched. Add one with `osprey rules set`.");
            }
            for r in rules {
                let s = &r.spec;
                println!(
                    "{:>3}. {}{} — {:?} when {}{}{}",
                    r.position,
                    s.name,
                    if s.enabled { "" } else { " (disabled)" },
                    s.action,
                    s.matches,
                    s.key.as_ref().map(|k| format!(", key {k}")).unwrap_or_default(),
                    if s.playbooks.is_empty() {
                        String::new()
                    } else {
                        format!(", starts {}", s.playbooks.join(", "))
                    }
                );
            }
        }
        RulesCommand::Set {
            name,
            matches,
            action,
            key,
            window,
            incident_type,
            severity,
            playbooks,
            position,
            disabled,
        } => {
            let spec = RuleSpec {
                name,
                matches,
                action: match action {
                    ActionArg::Drop => RuleAction::Drop,
                    ActionArg::Dedup => RuleAction::Dedup,
                    ActionArg::Link => RuleAction::Link,
                    ActionArg::Incident => RuleAction::Incident,
                },
                key,
                window,
                incident_type,
                severity,
                playbooks,
                enabled: !disabled,
            };
            crate::preprocess::check_rule(&spec, &app.playbooks).map_err(anyhow::Error::msg)?;
            let at = app.store.set_rule(&spec, position, &Actor::cli()).await?;
            println!("rule '{}' stored at position {at}", spec.name);
        }
        RulesCommand::Remove { name } => {
            if !app.store.remove_rule(&name, &Actor::cli()).await? {
                anyhow::bail!("no rule named '{name}' (see `osprey rules list`)");
            }
            println!("rule '{name}' removed");
        }
        RulesCommand::Test { file, limit, json } => {
            let specs = match &file {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let parsed: RuleFile =
                        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    parsed.rules
                }
                None => app.store.rules().await?.into_iter().map(|r| r.spec).collect(),
            };
            let alerts = app.store.alerts(None, limit).await?;
            let report = crate::preprocess::test_rules(specs, &alerts).map_err(anyhow::Error::msg)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{} alerts tested", report.alerts);
                for r in &report.rules {
                    let ex = match report.examples.get(&r.name) {
                        Some(example) => format!("  e.g. \"{example}\""),
                        None => String::new(),
                    };
                    println!("  {:<24} {:?}: {}{ex}", r.name, r.action, r.alerts);
                }
                println!("  {:<24} {}", "unmatched", report.unmatched);
                for e in report.errors.iter().take(20) {
                    println!("error: {e}");
                }
            }
        }
    }
    Ok(0)
}
