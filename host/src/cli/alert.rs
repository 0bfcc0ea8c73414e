use crate::app::App;
use crate::config::Config;

#[derive(Debug, clap::Subcommand)]
pub enum AlertCommand {
    /// List the newest alerts received (by `POST /api/v1/alerts` or syslog).
    #[command(after_help = "\
Examples:
  osprey alert list                        the newest 20
  osprey alert list --source passivedns -n 100
  osprey alert list --json | jq '.observables.ips'

To send alerts, create a token (`osprey token create NAME --scope intake`) and POST JSON,
a JSON array or NDJSON to /api/v1/alerts; `?format=passivedns` or `?format=syslog` for raw
lines. See README.md, \"Sending alerts\".")]
    List {
        /// Only alerts from this source.
        #[arg(long)]
        source: Option<String>,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: i64,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cmd: AlertCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        AlertCommand::List { source, limit, json } => {
            let alerts = app.store.alerts(source.as_deref(), limit).await?;
            if json {
                for a in &alerts {
                    println!("{}", serde_json::to_string(a)?);
                }
            } else if alerts.is_empty() {
                println!("no alerts");
            } else {
                for a in &alerts {
                    let o = &a.alert.observables;
                    let mut seen: Vec<String> = Vec::new();
                    seen.extend(o.ips.iter().take(3).cloned());
                    seen.extend(o.domains.iter().take(3).cloned());
                    let fate = match (&a.disposition, &a.rule) {
                        (Some(d), Some(r)) => format!("{d} by {r}"),
                        (Some(d), None) => d.clone(),
                        (None, _) => "waiting".into(),
                    };
                    println!(
                        "{}  {}  {:<8} {:<12} {:<22} {}  [{}]",
                        a.id,
                        super::render::time(a.received_at),
                        a.alert.severity,
                        a.alert.source,
                        fate,
                        a.alert.title,
                        seen.join(" ")
                    );
                }
            }
        }
    }
    Ok(0)
}
