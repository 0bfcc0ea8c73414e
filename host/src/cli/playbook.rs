use super::render;
use crate::app::App;
use crate::config::Config;
use crate::playbook::testing;
use crate::playbook::{Playbook, Playbooks};
use crate::store::runs::RunStatus;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum PlaybookCommand {
    /// List the playbooks in playbooks_dir, with their triggers.
    List,
    /// Check playbooks without running them: playbook.toml (every field, cron schedules,
    /// time zones, alert expressions, limits) and the script's syntax. Errors give file:line.
    /// Warns about plugins the script calls by name but does not declare in `plugins`, and
    /// limits above the server's maxima.
    #[command(after_help = "\
Examples:
  osprey playbook validate playbooks/ip-enrichment
  osprey playbook validate playbooks/*/playbook.rhai")]
    Validate {
        /// Playbook folders, or files in them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run a playbook's tests (tests/*.toml): canned plugin responses, a virtual clock, and
    /// expectations on the outcome and the steps taken. No vendor or server needed.
    #[command(after_help = "\
Examples:
  osprey playbook test                           every playbook in playbooks_dir
  osprey playbook test ip-enrichment             one playbook, by name
  osprey playbook test ./my-playbook             a folder

Exit status: 0 when every case passes, 1 otherwise. PLAYBOOKS.md describes the test format.")]
    Test {
        /// Playbook names or folders (default: all in playbooks_dir).
        targets: Vec<String>,
    },
    /// Start a run, print its id, and follow it step by step until it ends or waits.
    #[command(after_help = "\
Examples:
  osprey playbook run ip-enrichment --input '{\"ip\":\"8.8.8.8\"}'
  osprey playbook run ip-enrichment --input @input.json --detach

Without a running server, this command executes the run itself; a run that waits (sleep) is
resumed by `osprey serve` when it is due. Exit status: 0 if the run completed or waits, 1 if
it failed.")]
    Run {
        name: String,
        /// The input object: JSON text, @FILE, or - for stdin.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Print the run id and return at once.
        #[arg(long)]
        detach: bool,
    },
}

pub async fn run(cmd: PlaybookCommand, config: Config) -> anyhow::Result<i32> {
    match cmd {
        PlaybookCommand::Validate { paths } => validate(&paths, &config.run_limits()?),
        PlaybookCommand::Test { targets } => test(&config, &targets),
        PlaybookCommand::List => {
            let (playbooks, errors) = Playbooks::load_dir(&config.playbooks_dir);
            for e in errors {
                eprintln!("warning: {e}");
            }
            let list = playbooks.list();
            if list.is_empty() {
                println!("no playbooks in {}", config.playbooks_dir.display());
            }
            for pb in list {
                let triggers: Vec<String> = pb.meta.triggers.iter().map(|t| t.get_ref().summary()).collect();
                let triggers = if triggers.is_empty() {
                    "manual".to_string()
                } else {
                    triggers.join(", ")
                };
                println!("{:<28} {:<36} {}", pb.name(), triggers, pb.meta.description);
            }
            Ok(0)
        }
        PlaybookCommand::Run { name, input, detach } => {
            let app = App::open(config).await?;
            let input = super::read_json_object(&input)?;
            let id = app.executor.start(&name, &input, "manual").await?;
            println!("run {id} started");
            if detach {
                return Ok(0);
            }
            follow(&app, &id).await
        }
    }
}

/// The playbook folder a path names (the folder itself, or a file in it).
fn playbook_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.to_owned()
    } else {
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }
}

fn validate(paths: &[PathBuf], limits: &crate::playbook::RunLimits) -> anyhow::Result<i32> {
    let mut failed = 0;
    for p in paths {
        let dir = playbook_dir(p);
        match Playbook::load(&dir) {
            Ok(pb) => {
                println!(
                    "ok: {} ({} inputs, {} triggers, {} tests)",
                    pb.name(),
                    pb.meta.inputs.len(),
                    pb.meta.triggers.len(),
                    testing::case_files(&pb).len()
                );
                for w in pb.warnings(limits) {
                    eprintln!("warning: {}: {w}", pb.name());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn test(config: &Config, targets: &[String]) -> anyhow::Result<i32> {
    let mut playbooks = Vec::new();
    if targets.is_empty() {
        let (set, errors) = Playbooks::load_dir(&config.playbooks_dir);
        for e in &errors {
            eprintln!("error: {e}");
        }
        if !errors.is_empty() {
            return Ok(1);
        }
        playbooks.extend(set.list().iter().map(|p| (**p).clone()));
    } else {
        for t in targets {
            let path = Path::new(t);
            let dir = if path.exists() {
                playbook_dir(path)
            } else {
                config.playbooks_dir.join(t)
            };
            playbooks.push(Playbook::load(&dir).with_context(|| format!("loading playbook '{t}'"))?);
        }
    }
    let run_limits = config.run_limits()?;
    let (mut passed, mut failed, mut empty) = (0, 0, Vec::new());
    for pb in &playbooks {
        let reports = testing::run_all(pb, &run_limits);
        if reports.is_empty() {
            empty.push(pb.name().to_owned());
        }
        for r in reports {
            let file = r
                .file
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if r.passed() {
                passed += 1;
                println!("ok      {}/{file}  {}", pb.name(), r.description);
            } else {
                failed += 1;
                println!("FAILED  {}/{file}  {}", pb.name(), r.description);
                for p in &r.problems {
                    println!("        {p}");
                }
                println!("        steps taken: {:?}", r.steps);
                if !r.records.is_empty() {
                    let points: Vec<String> = r.records.iter().map(|p| p.to_string()).collect();
                    println!("        points recorded: {}", points.join(", "));
                }
            }
        }
    }
    for name in &empty {
        println!("warning: playbook '{name}' has no tests (add tests/*.toml)");
    }
    println!("\n{passed} passed, {failed} failed");
    Ok(if failed > 0 { 1 } else { 0 })
}

/// A run waiting for the playbooks it started: follow each unfinished one here; returns
/// whether all of them ended (their ends woke the run, so it goes on).
async fn follow_children(app: &App, id: &str) -> anyhow::Result<bool> {
    let children = app.store.child_runs(id).await?;
    let pending: Vec<_> = children.iter().filter(|c| !c.status.is_final()).collect();
    if pending.is_empty() {
        return Ok(false);
    }
    for child in pending {
        println!(
            "  run {id} waits for run {} of playbook {}",
            child.id, child.playbook
        );
        Box::pin(follow(app, &child.id)).await?;
    }
    let children = app.store.child_runs(id).await?;
    Ok(children.iter().all(|c| c.status.is_final()))
}

/// Follow a run: work on it here when nobody else does, print each new step, and return
/// when it ends or waits.
pub async fn follow(app: &App, id: &str) -> anyhow::Result<i32> {
    let mut printed = 0usize;
    loop {
        app.executor.work_on(id).await?;
        let steps = app.store.steps(id).await?;
        for s in steps.iter().skip(printed) {
            println!("  {}", render::step_line(s));
        }
        printed = steps.len();
        let Some(run) = app.store.run(id).await? else {
            bail!("run {id} disappeared")
        };
        match run.status {
            RunStatus::Completed => {
                let output = run
                    .output
                    .map(|o| serde_json::to_string_pretty(&o).unwrap_or_default())
                    .unwrap_or_default();
                println!("run {id} completed\n{output}");
                return Ok(0);
            }
            RunStatus::Waiting if follow_children(app, id).await? => continue,
            RunStatus::Waiting => {
                let at = run.wake_at.map(render::time).unwrap_or_default();
                println!(
                    "run {id} is waiting until {at}; `osprey serve` resumes it then (`osprey run show {id}` to look)"
                );
                return Ok(0);
            }
            s if s.is_final() => {
                println!("run {id} {s}: {}", run.error.unwrap_or_default());
                return Ok(1);
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
