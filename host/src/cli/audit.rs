use crate::app::App;
use crate::config::Config;
use crate::store::audit::Verification;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of the audit log and name the first entry that does not match.
    ///
    /// Every entry's hash covers the previous entry's hash and its own fields, so a changed,
    /// removed or reordered entry breaks the chain from there on. Exits with 0 if the log is
    /// intact, 1 if it is not.
    Verify,
    /// Write audit entries as JSON lines (to stdout, or to --output).
    #[command(after_help = "\
Examples:
  osprey audit export > audit.jsonl               everything
  osprey audit export --after 1200 -o new.jsonl   entries after number 1200
  osprey audit export --action secret.            only secret.set and secret.delete

Each line is one entry: seq, at (Unix ms), actor, action, target, details, prev_hash, hash.
hash = SHA-256(prev_hash ‖ JSON [seq, at, actor, action, target, details-as-stored]), so the
export can be checked outside Osprey.")]
    Export {
        /// Only entries after this number.
        #[arg(long, default_value_t = 0, value_name = "SEQ")]
        after: i64,
        /// Only actions starting with this (e.g. `secret.` or `plugin.grant`).
        #[arg(long, value_name = "PREFIX")]
        action: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Show the latest entries, newest last.
    Show {
        /// How many.
        #[arg(long, short = 'n', default_value_t = 20)]
        last: i64,
        /// Only actions starting with this.
        #[arg(long, value_name = "PREFIX")]
        action: Option<String>,
    },
}

pub async fn run(cmd: AuditCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        AuditCommand::Verify => match app.store.verify_audit().await? {
            Verification::Intact { entries, head } => {
                println!("audit log intact: {entries} entries, last hash {head}");
                Ok(0)
            }
            Verification::Broken { seq, reason } => {
                println!("audit log BROKEN at entry {seq}: {reason}");
                Ok(1)
            }
        },
        AuditCommand::Export {
            after,
            action,
            output,
        } => {
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut next = after;
            let mut n = 0u64;
            loop {
                let page = app.store.audit_entries(next, 1000, action.as_deref()).await?;
                let Some(last) = page.last() else { break };
                next = last.seq;
                for e in &page {
                    serde_json::to_writer(&mut out, e)?;
                    out.write_all(b"\n")?;
                    n += 1;
                }
            }
            out.flush()?;
            if let Some(path) = output {
                eprintln!("wrote {n} entries to {}", path.display());
            }
            Ok(0)
        }
        AuditCommand::Show { last, action } => {
            let entries = app.store.audit_latest(last, action.as_deref()).await?;
            for e in &entries {
                println!(
                    "{:>6}  {}  {:<16} {:<18} {:<28} {}",
                    e.seq,
                    super::render::time(e.at),
                    e.actor,
                    e.action,
                    e.target,
                    e.details
                );
            }
            if entries.is_empty() {
                println!("no audit entries");
            }
            Ok(0)
        }
    }
}
