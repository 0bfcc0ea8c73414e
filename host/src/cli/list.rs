use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;
use crate::store::lists::{EntryType, ListError, ListKind, NewEntry};
use crate::store::now_ms;
use anyhow::Context as _;
use clap::builder::PossibleValuesParser;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ListCommand {
    /// Create an allow or block list of IPs, domains or URLs.
    #[command(after_help = "\
Examples:
  osprey list create blocked-ips --kind block --type ip --description \"C2 and scanners\"
  osprey list create blocked-domains --kind block --type domain
  osprey list create allowed-urls --kind allow --type url

Types, as PAN-OS external dynamic lists have them:
  ip      IPv4 and IPv6 addresses and CIDRs: 192.0.2.1, 10.0.0.0/8, 2001:db8::/32
  domain  host names, optionally with a leading wildcard: evil.example, *.evil.example
  url     URLs without their scheme: evil.example/login (http:// and https:// are removed)

Each list is served at GET /edl/NAME.txt (see `osprey list show --help`).")]
    Create {
        /// 1 to 64 lower-case letters, digits and '-'.
        name: String,
        /// What the list is for (the firewall rule that uses it decides what it does).
        #[arg(long, value_parser = PossibleValuesParser::new(ListKind::NAMES))]
        kind: String,
        /// What its entries are.
        #[arg(long = "type", value_name = "TYPE", value_parser = PossibleValuesParser::new(EntryType::NAMES))]
        entry_type: String,
        /// What the list holds and who uses it.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a list and all its entries.
    Delete { name: String },
    /// List the lists: kind, type, live entries, last change.
    #[command(visible_alias = "ls")]
    List,
    /// Show a list's entries: value, expiry, who added it, why.
    #[command(after_help = "\
Examples:
  osprey list show blocked-ips
  osprey list show blocked-ips --json | jq -r .value

A firewall fetches the live entries, one per line, from GET /edl/NAME.txt with an API token
of scope edl (`osprey token create NAME --scope edl`): as `Authorization: Bearer TOKEN`, or as
basic auth with the token's name as user name and the token as password.")]
    Show {
        name: String,
        /// Also entries that have expired but are not removed yet (they are not served).
        #[arg(long)]
        expired: bool,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add values to a list, or give values already on it a new reason and expiry.
    #[command(after_help = "\
Examples:
  osprey list add blocked-ips 203.0.113.9 198.51.100.0/24 --reason \"scanning us\" --expires 7d
  osprey list add blocked-domains '*.evil.example' --reason \"phishing kit, case 42\"
  osprey list add blocked-ips --file feed.txt --reason \"vendor feed\" --expires 1d
  curl -s https://feeds.example/ips.txt | osprey list add blocked-ips --file - --reason feed

Values are checked against the list's type and stored in canonical form (10.1.2.3/8 becomes
10.0.0.0/8, Evil.Example. becomes evil.example, https://x.example/a becomes x.example/a).
All values are added or none: an invalid value, or more live entries than lists.max_entries,
adds nothing. Expired entries stop being served at once and are removed by the server
(every lists.expiry_interval), which the audit log records as list.expire.")]
    Add {
        name: String,
        /// The values to add.
        #[arg(value_name = "VALUE")]
        values: Vec<String>,
        /// Why they are on the list (kept with each entry and in the audit log).
        #[arg(long)]
        reason: String,
        /// Stop serving them after this long (e.g. 12h, 7d); default: never.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Also read values from this file, one per line ('-' for stdin; '#' starts a comment).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Remove values from a list.
    #[command(after_help = "\
Examples:
  osprey list remove blocked-ips 203.0.113.9
  osprey list remove blocked-ips --file false-positives.txt")]
    Remove {
        name: String,
        /// The values to remove.
        #[arg(value_name = "VALUE")]
        values: Vec<String>,
        /// Also read values from this file, one per line ('-' for stdin; '#' starts a comment).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

pub async fn run(cmd: ListCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        ListCommand::Create {
            name,
            kind,
            entry_type,
            description,
        } => {
            let kind = ListKind::from_name(&kind).expect("clap checked the kind");
            let entry_type = EntryType::from_name(&entry_type).expect("clap checked the type");
            app.store
                .create_list(&name, kind, entry_type, &description, &Actor::cli())
                .await?;
            println!(
                "{} list '{name}' of {entry_type} entries created; it is served at /edl/{name}.txt",
                kind.as_str()
            );
        }
        ListCommand::Delete { name } => {
            let n = app.store.delete_list(&name, &Actor::cli()).await.map_err(hint)?;
            println!("list '{name}' deleted, with its {n} entries");
        }
        ListCommand::List => {
            let lists = app.store.lists().await?;
            if lists.is_empty() {
                println!("no lists; create one with `osprey list create NAME --kind block --type ip`");
            }
            for l in lists {
                println!(
                    "{:<24} {:<5} {:<6} {:>7} entries  changed {}  {}",
                    l.name,
                    l.kind.as_str(),
                    l.entry_type.as_str(),
                    l.entries,
                    super::render::time(l.updated_at),
                    l.description
                );
            }
        }
        ListCommand::Show { name, expired, json } => {
            let entries = app.store.list_entries(&name, expired).await.map_err(hint)?;
            if json {
                for e in &entries {
                    println!("{}", serde_json::to_string(e)?);
                }
                return Ok(0);
            }
            let info = app
                .store
                .list(&name)
                .await?
                .ok_or_else(|| hint(ListError::NoSuchList(name.clone())))?;
            println!(
                "{} list '{}' of {} entries, {} live, served at /edl/{}.txt{}",
                info.kind.as_str(),
                info.name,
                info.entry_type,
                info.entries,
                info.name,
                if info.description.is_empty() {
                    String::new()
                } else {
                    format!("\n{}", info.description)
                }
            );
            if entries.is_empty() {
                println!("no entries; add some with `osprey list add {name} VALUE --reason TEXT`");
            } else {
                println!("\n{:<40} {:<28} {:<24} REASON", "VALUE", "EXPIRES", "ADDED BY");
            }
            let now = now_ms();
            for e in entries {
                let expiry = match e.expires_at {
                    None => "never".to_owned(),
                    Some(at) if at <= now => format!("EXPIRED {}", super::render::time(at)),
                    Some(at) => super::render::time(at),
                };
                let by = match &e.run_id {
                    Some(run) => format!("{} (run {run})", e.added_by),
                    None => e.added_by.clone(),
                };
                println!("{:<40} {expiry:<28} {by:<24} {}", e.value, e.reason);
            }
        }
        ListCommand::Add {
            name,
            values,
            reason,
            expires,
            file,
        } => {
            let values = with_file(values, file.as_ref())?;
            let entry = NewEntry {
                reason: &reason,
                expires_at: expires.map(|d| now_ms() + d.as_millis() as i64),
                run_id: None,
            };
            let done = app
                .store
                .add_list_entries(
                    &name,
                    &values,
                    &entry,
                    app.config.lists.max_entries,
                    &Actor::cli(),
                )
                .await
                .map_err(hint)?;
            println!(
                "list '{name}': {} added, {} updated",
                done.added.len(),
                done.updated.len()
            );
            if done.added.len() + done.updated.len() <= 50 {
                for v in &done.added {
                    println!("  added    {v}");
                }
                for v in &done.updated {
                    println!("  updated  {v}");
                }
            }
        }
        ListCommand::Remove { name, values, file } => {
            let values = with_file(values, file.as_ref())?;
            let done = app
                .store
                .remove_list_entries(&name, &values, &Actor::cli())
                .await
                .map_err(hint)?;
            println!("list '{name}': {} removed", done.removed.len());
            for v in &done.missing {
                println!("  not on the list: {v}");
            }
        }
    }
    Ok(0)
}

/// The values on the command line and those in `file` (one per line, '#' comments).
fn with_file(mut values: Vec<String>, file: Option<&PathBuf>) -> anyhow::Result<Vec<String>> {
    if let Some(path) = file {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading values from stdin")?
        } else {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        };
        values.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or_default().trim())
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    if values.is_empty() {
        anyhow::bail!("no values: give them as arguments or with --file");
    }
    Ok(values)
}

/// A list error, with the command to use when the list is unknown.
fn hint(e: ListError) -> anyhow::Error {
    match e {
        ListError::NoSuchList(name) => {
            anyhow::anyhow!("no list named '{name}' (see `osprey list list`)")
        }
        other => other.into(),
    }
}
