use super::render;
use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;
use crate::store::runs::RunStatus;

#[derive(Debug, clap::Subcommand)]
pub enum RunCommand {
    /// List recent runs.
    List {
        /// Only runs of this playbook.
        #[arg(long)]
        playbook: Option<String>,
        /// Only runs in this state: queued, running, waiting, completed, failed, cancelled, dead.
        #[arg(long, value_parser = parse_status)]
        status: Option<RunStatus>,
        /// How many (newest first).
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Show a run and its timeline: every step, what it asked for, what it got, how long it
    /// took.
    Show {
        id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cut a run's journal back to before step N and run it again from there, with the
    /// playbook's current script: to take another branch after fixing the playbook.
    #[command(after_help = "\
Examples:
  osprey run show r0194...                       find the step where it went wrong
  $EDITOR playbooks/ip-enrichment/playbook.rhai  fix the playbook
  osprey run restart r0194... --from-step 3      steps 1-2 are kept, 3 onwards run again

Steps before N keep their recorded outcomes; effects of the steps that are cut (a firewall
rule created, say) are not undone: design playbooks so that a step can be taken again.")]
    Restart {
        id: String,
        /// The first step to take again (1 restarts from the beginning).
        #[arg(long, value_name = "N")]
        from_step: i64,
        /// Follow the run after restarting it.
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a run that has not ended. A run in the middle of a step stops before its next.
    Cancel { id: String },
}

fn parse_status(s: &str) -> Result<RunStatus, String> {
    RunStatus::parse(s).ok_or_else(|| {
        format!(
            "'{s}' is not a run state; use queued, running, waiting, completed, failed, cancelled or dead"
        )
    })
}

pub async fn run(cmd: RunCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        RunCommand::List {
            playbook,
            status,
            limit,
        } => {
            let runs = app.store.runs(playbook.as_deref(), status, limit).await?;
            if runs.is_empty() {
                println!("no runs");
            }
            for r in runs {
                println!(
                    "{}  {:<24} {:<10} {}  {}",
                    r.id,
                    r.playbook,
                    r.status,
                    render::time(r.created_at),
                    r.error.as_deref().unwrap_or("")
                );
            }
            Ok(0)
        }
        RunCommand::Show { id, json } => {
            let run = app
                .store
                .run(&id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no run with id '{id}'"))?;
            let steps = app.store.steps(&id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "run": run, "steps": steps }))?
                );
                return Ok(0);
            }
            println!("run {}  playbook {}  {}", run.id, run.playbook, run.status);
            println!("  started   {} ({})", render::time(run.created_at), run.origin);
            if let Some(f) = run.finished_at {
                println!("  ended     {}", render::time(f));
            }
            if let (RunStatus::Waiting, Some(w)) = (run.status, run.wake_at) {
                println!("  wakes     {}", render::time(w));
            }
            if run.attempts > 0 {
                println!("  attempts  {}", run.attempts);
            }
            println!("  input     {}", run.input);
            if let Some(o) = &run.output {
                println!("  output    {o}");
            }
            if let Some(e) = &run.error {
                println!("  error     {e}");
            }
            println!("\nTimeline ({} steps):", steps.len());
            for s in &steps {
                println!("  {}", render::step_line(s));
            }
            Ok(0)
        }
        RunCommand::Restart {
            id,
            from_step,
            follow,
        } => {
            let cut = app.executor.restart(&id, from_step, &Actor::cli()).await?;
            println!("run {id} restarts from step {from_step} ({cut} steps cut from its journal)");
            if follow {
                return super::playbook::follow(&app, &id).await;
            }
            Ok(0)
        }
        RunCommand::Cancel { id } => {
            app.executor.cancel(&id, &Actor::cli()).await?;
            println!("run {id} cancelled");
            Ok(0)
        }
    }
}
