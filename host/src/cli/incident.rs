use crate::app::App;
use crate::config::Config;
use crate::store::StoreError;
use crate::store::audit::Actor;
use crate::store::incidents::{IncidentRecord, IncidentStatus};

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
    /// Show an incident: its fields, SLA timers, tasks, alerts, children, related incidents
    /// and its timeline.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Open an incident by hand (a child of another with --parent).
    #[command(after_help = "\
Examples:
  osprey incident create --type phishing --title 'Reported mail from ceo@examp1e.com' --severity high
  osprey incident create --parent i0190... --type containment --title 'Re-image pc-17' --owner bob")]
    Create {
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        title: String,
        /// info, low, medium, high, critical.
        #[arg(long, default_value = "medium")]
        severity: String,
        #[arg(long)]
        owner: Option<String>,
        /// The team; default: the type's `role` in [incidents.types].
        #[arg(long)]
        role: Option<String>,
        /// A custom field, NAME=VALUE; repeat for more. Checked against the type's fields.
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
        /// Spawn it as a child of this incident (deputised, tracked from the parent).
        #[arg(long)]
        parent: Option<String>,
    },
    /// Change an incident's title, severity, owner, team or custom fields.
    #[command(after_help = "\
Examples:
  osprey incident set i0190... --severity critical --owner alice
  osprey incident set i0190... --field asset=pc-17 --field confirmed=true
  osprey incident set i0190... --field asset=      (an empty value clears the field)")]
    Set {
        id: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long = "field", value_name = "NAME=VALUE")]
        fields: Vec<String>,
    },
    /// Acknowledge an incident: it becomes active and its acknowledge timer stops.
    Ack { id: String },
    /// Put an incident in `pending` (waiting on someone outside: its SLA timers pause) or
    /// back to `active` (they resume).
    Status {
        id: String,
        /// new, active or pending (close with `osprey incident close`).
        status: String,
    },
    /// Close an incident, with the reason. Its SLA timers stop.
    Close {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Re-open a closed incident; its resolve timer starts again.
    Reopen { id: String },
    /// Mark two incidents as related (both ways).
    Link { id: String, other: String },
    /// Pause or resume an incident's SLA timers by hand.
    Sla {
        id: String,
        #[arg(value_parser = ["pause", "resume"])]
        action: String,
    },
}

/// `NAME=VALUE` pairs as custom fields of an incident of type `kind` (typed by the
/// declaration; an empty value clears the field).
fn parse_fields(
    app: &App,
    kind: &str,
    pairs: &[String],
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            anyhow::bail!("--field takes NAME=VALUE, not '{pair}'");
        };
        let value = if value.is_empty() {
            serde_json::Value::Null
        } else {
            app.store.incident_types().parse_cli_value(kind, name, value)
        };
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

async fn existing(app: &App, id: &str) -> anyhow::Result<IncidentRecord> {
    app.store
        .incident(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no incident '{id}' (see `osprey incident list`)"))
}

/// A store error for the person at the terminal: refusals as they are, the rest with context.
fn refused(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid(message) => anyhow::anyhow!(message),
        other => other.into(),
    }
}

pub async fn run(cmd: IncidentCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    let cli = Actor::cli();
    match cmd {
        IncidentCommand::List { status, limit, json } => {
            let status = status
                .as_deref()
                .map(|s| {
                    IncidentStatus::parse(s).ok_or_else(|| {
                        anyhow::anyhow!("'{s}' is not a status: {}", IncidentStatus::NAMES.join(", "))
                    })
                })
                .transpose()?;
            let incidents = app.store.incidents(status, limit).await?;
            if json {
                for i in &incidents {
                    println!("{}", serde_json::to_string(i)?);
                }
                return Ok(0);
            }
            if incidents.is_empty() {
                println!("no incidents");
            }
            for i in &incidents {
                println!(
                    "{}  {}  {:<8} {:<7} x{:<4} {}  {}{}",
                    i.id,
                    super::render::time(i.created_at),
                    i.severity,
                    i.status,
                    i.occurrences,
                    i.kind,
                    i.title,
                    i.owner
                        .as_ref()
                        .map(|o| format!("  (owner {o})"))
                        .unwrap_or_default()
                );
            }
        }
        IncidentCommand::Show { id, json } => {
            let i = existing(&app, &id).await?;
            let alerts = app.store.incident_alert_ids(&id).await?;
            let events = app.store.incident_timeline(&id).await?;
            let timers = app.store.sla_timers(&id).await?;
            let tasks = app.store.tasks(None, Some(&id), None, 500).await?;
            let children = app.store.child_incidents(&id).await?;
            let related = app.store.related_incidents(&id).await?;
            if json {
                let out = serde_json::json!({
                    "incident": i,
                    "alerts": alerts,
                    "sla": timers,
                    "tasks": tasks,
                    "children": children,
                    "related": related,
                    "timeline": events,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(0);
            }
            println!("{}  {}", i.id, i.title);
            println!(
                "  type {}  severity {}  status {}  occurrences {}",
                i.kind, i.severity, i.status, i.occurrences
            );
            println!(
                "  owner {}  team {}",
                i.owner.as_deref().unwrap_or("-"),
                i.role.as_deref().unwrap_or("-")
            );
            if let Some(parent) = &i.parent_id {
                println!("  child of {parent}");
            }
            if let Some(r) = &i.rule {
                let key = i
                    .dedup_key
                    .as_ref()
                    .map(|k| format!(" (key {k})"))
                    .unwrap_or_default();
                println!("  opened by rule {r}{key}");
            }
            if let Some(at) = i.acknowledged_at {
                println!("  acknowledged {}", super::render::time(at));
            }
            if let Some(reason) = &i.close_reason {
                println!("  closed: {reason}");
            }
            for (name, value) in &i.fields {
                println!("  {name} = {value}");
            }
            if !timers.is_empty() {
                println!("SLA:");
                for t in &timers {
                    println!(
                        "  {:<24} {:<12} {:<8} due {}",
                        t.subject,
                        t.timer,
                        t.state(),
                        super::render::time(t.due_at)
                    );
                }
            }
            if !tasks.is_empty() {
                println!("tasks:");
                for t in &tasks {
                    println!(
                        "  {}  {:<9} {}  ({})",
                        t.id,
                        t.status,
                        t.title,
                        super::task::assigned_to(t)
                    );
                }
            }
            for c in &children {
                println!("child: {}  {:<7} {}", c.id, c.status, c.title);
            }
            for r in &related {
                println!("related: {r}");
            }
            if !alerts.is_empty() {
                println!("alerts: {}", alerts.join(" "));
            }
            println!("timeline:");
            for e in events {
                println!(
                    "  {}  {:<14} {:<16} {}",
                    super::render::time(e.at),
                    e.kind,
                    e.actor,
                    e.details
                );
            }
        }
        IncidentCommand::Create {
            kind,
            title,
            severity,
            owner,
            role,
            fields,
            parent,
        } => {
            let fields = parse_fields(&app, &kind, &fields)?;
            let spec = crate::cases::IncidentSpec {
                title,
                kind,
                severity: Some(severity),
                owner,
                role,
                fields,
                dedup_key: None,
            };
            let new = spec.into_new(parent.as_deref()).map_err(|e| anyhow::anyhow!(e))?;
            let id = app
                .store
                .create_incident(&new, &[], &cli, None)
                .await
                .map_err(refused)?;
            println!("{id}");
        }
        IncidentCommand::Set {
            id,
            title,
            severity,
            owner,
            role,
            fields,
        } => {
            let current = existing(&app, &id).await?;
            let changes = crate::cases::IncidentChanges {
                title,
                severity,
                owner,
                role,
                status: None,
                fields: parse_fields(&app, &current.kind, &fields)?,
            };
            let update = changes.update().map_err(|e| anyhow::anyhow!(e))?;
            app.store
                .update_incident(&id, &update, &cli)
                .await
                .map_err(refused)?;
            println!("incident {id} updated");
        }
        IncidentCommand::Ack { id } => {
            let i = existing(&app, &id).await?;
            if i.status == IncidentStatus::Closed {
                anyhow::bail!("incident {id} is closed (re-open it first)");
            }
            app.store
                .set_incident_status(&id, IncidentStatus::Active, None, &cli)
                .await
                .map_err(refused)?;
            println!("incident {id} acknowledged");
        }
        IncidentCommand::Status { id, status } => {
            let Some(to) = IncidentStatus::parse(&status).filter(|s| *s != IncidentStatus::Closed) else {
                anyhow::bail!(
                    "'{status}' is not new, active or pending (close with `osprey incident close {id} --reason ...`)"
                );
            };
            existing(&app, &id).await?;
            app.store
                .set_incident_status(&id, to, None, &cli)
                .await
                .map_err(refused)?;
            println!("incident {id} is {status}");
        }
        IncidentCommand::Close { id, reason } => {
            existing(&app, &id).await?;
            app.store
                .set_incident_status(&id, IncidentStatus::Closed, Some(&reason), &cli)
                .await
                .map_err(refused)?;
            println!("incident {id} closed");
        }
        IncidentCommand::Reopen { id } => {
            let i = existing(&app, &id).await?;
            if i.status != IncidentStatus::Closed {
                anyhow::bail!("incident {id} is {}, not closed", i.status);
            }
            app.store
                .set_incident_status(&id, IncidentStatus::Active, None, &cli)
                .await
                .map_err(refused)?;
            println!("incident {id} re-opened");
        }
        IncidentCommand::Link { id, other } => {
            let added = app
                .store
                .relate_incidents(&id, &other, &cli)
                .await
                .map_err(refused)?;
            if added {
                println!("incidents {id} and {other} are related");
            } else {
                println!("incidents {id} and {other} were already related");
            }
        }
        IncidentCommand::Sla { id, action } => {
            let paused = action == "pause";
            let Some(n) = app.store.set_sla_paused(&id, paused, &cli).await? else {
                anyhow::bail!("no incident '{id}' (see `osprey incident list`)");
            };
            println!("{n} timer(s) {}", if paused { "paused" } else { "resumed" });
        }
    }
    Ok(0)
}
