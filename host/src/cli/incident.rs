use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;

#[derive(Debug, clap::Subcommand)]
pub enum IncidentCommand {
    /// List the newest incidents.
    List {
        /// Only incidents in this status: new, active, pending, closed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: i64,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show an incident: its fields, its alerts and its timeline.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Close an incident, with the reason.
    Close {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Re-open a closed incident.
    Reopen { id: String },
}

pub async fn run(cmd: IncidentCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        IncidentCommand::List { status, limit, json } => {
            if let Some(s) = &status
                && !crate::store::incidents::STATUSES.contains(&s.as_str())
            {
                anyhow::bail!(
                    "'{s}' is not a status: {}",
                    crate::store::incidents::STATUSES.join(", ")
                );
            }
            let incidents = app.store.incidents(status.as_deref(), limit).await?;
            if json {
                for i in &incidents {
                    println!("{}", serde_json::to_string(i)?);
                }
            } else if incidents.is_empty() {
                println!("no incidents");
            }
            if !json {
                for i in &incidents {
                    println!(
                        "{}  {}  {:<8} {:<7} x{:<4} {}  {}",
                        i.id,
                        super::render::time(i.created_at),
                        i.severity,
                        i.status,
                        i.occurrences,
                        i.kind,
                        i.title
                    );
                }
            }
        }
        IncidentCommand::Show { id, json } => {
            let Some(i) = app.store.incident(&id).await? else {
                anyhow::bail!("no incident '{id}' (see `osprey incident list`)");
            };
            let alerts = app.store.incident_alert_ids(&id).await?;
            let events = app.store.incident_events(&id).await?;
            if json {
                let out = serde_json::json!({ "incident": i, "alerts": alerts, "timeline": events });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("{}  {}", i.id, i.title);
                println!(
                    "  type {}  severity {}  status {}  occurrences {}",
                    i.kind, i.severity, i.status, i.occurrences
                );
                if let Some(r) = &i.rule {
                    println!(
                        "  opened by rule {r}{}",
                        i.dedup_key
                            .as_ref()
                            .map(|k| format!(" (key {k})"))
                            .unwrap_or_default()
                    );
                }
                if let Some(reason) = &i.close_reason {
                    println!("  closed: {reason}");
                }
                println!("  alerts: {}", alerts.join(" "));
                println!("timeline:");
                for e in events {
                    println!(
                        "  {}  {:<10} {:<16} {}",
                        super::render::time(e.at),
                        e.kind,
                        e.actor,
                        e.details
                    );
                }
            }
        }
        IncidentCommand::Close { id, reason } => {
            if !app
                .store
                .set_incident_status(&id, "closed", Some(&reason), &Actor::cli())
                .await?
            {
                anyhow::bail!("no incident '{id}'");
            }
            println!("incident {id} closed");
        }
        IncidentCommand::Reopen { id } => {
            if !app
                .store
                .set_incident_status(&id, "active", None, &Actor::cli())
                .await?
            {
                anyhow::bail!("no incident '{id}'");
            }
            println!("incident {id} re-opened");
        }
    }
    Ok(0)
}
