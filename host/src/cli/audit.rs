use crate::app::App;
use crate::audit_checkpoint;
use crate::config::Config;
use crate::store::audit::Verification;
use anyhow::Context as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Recompute the keyed chain of the audit log and name the first entry that does not
    /// match; with --checkpoint, also prove that the log still extends a signed checkpoint.
    ///
    /// Every entry's MAC (HMAC-SHA256 with a key derived from the master key) covers the
    /// previous entry's MAC and its own fields, so a changed, removed or reordered entry
    /// breaks the chain from there on, and nobody without the master key can recompute it.
    /// A checkpoint (`osprey audit checkpoint`) kept outside Osprey also catches entries cut
    /// off the end with the head rolled back, and a chain recomputed with the key. Exits with
    /// 0 if the log is intact (and extends the checkpoint), 1 if it is not.
    Verify {
        /// A checkpoint file written by `osprey audit checkpoint` (its signature is read from
        /// FILE.minisig).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The minisign public key (a .pub file, as `osprey audit pubkey` prints) to check
        /// the checkpoint's signature with, instead of this server's own checkpoint key.
        #[arg(long, value_name = "FILE", requires = "checkpoint")]
        pubkey: Option<PathBuf>,
    },
    /// Sign a checkpoint of the audit log's head, to keep outside Osprey.
    ///
    /// Verifies the chain, then writes FILE (one line of JSON: format, head_seq, head_mac,
    /// count, at) and FILE.minisig, its ed25519 signature in minisign's format with the
    /// server's checkpoint key (made the first time). `osprey audit verify --checkpoint FILE`
    /// later proves that the log still extends it; `minisign -Vm FILE -p osprey-audit.pub`
    /// checks the signature without Osprey.
    Checkpoint {
        /// Where to write the statement (the signature goes to FILE.minisig).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the public key that verifies checkpoints, as a minisign .pub file.
    #[command(after_help = "\
Example:
  osprey audit pubkey > osprey-audit.pub
  minisign -Vm checkpoint.json -p osprey-audit.pub")]
    Pubkey,
    /// Write audit entries as JSON lines (to stdout, or to --output).
    #[command(after_help = "\
Examples:
  osprey audit export > audit.jsonl               everything
  osprey audit export --after 1200 -o new.jsonl   entries after number 1200
  osprey audit export --action secret.            only secret.set and secret.delete

Each line is one entry: seq, at (Unix ms), actor, action, target, details, prev_hash, hash.
hash = HMAC-SHA256(K, prev_hash ‖ JSON [seq, at, actor, action, target, details-as-stored])
with K = HKDF-SHA256(master key, no salt, info \"osprey audit chain v1\"), so whoever holds
the master key can check the export outside Osprey.")]
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
        AuditCommand::Verify {
            checkpoint: Some(file),
            pubkey,
        } => verify_checkpoint(&app, &file, pubkey.as_deref()).await,
        AuditCommand::Verify { checkpoint: None, .. } => match app.store.verify_audit().await? {
            Verification::Intact { entries, head } => {
                println!("audit log intact: {entries} entries, last MAC {head}");
                Ok(0)
            }
            Verification::Broken { seq, reason } => {
                println!("audit log BROKEN at entry {seq}: {reason}");
                Ok(1)
            }
        },
        AuditCommand::Checkpoint { file } => {
            let key = app.checkpoint_key().await?;
            let checkpoint = audit_checkpoint::make(&app.store, &key).await?;
            let signature_file = signature_path(&file);
            std::fs::write(&file, &checkpoint.text).with_context(|| format!("writing {}", file.display()))?;
            std::fs::write(&signature_file, &checkpoint.signature)
                .with_context(|| format!("writing {}", signature_file.display()))?;
            print!("{}", checkpoint.text);
            eprintln!(
                "wrote the checkpoint of entry {} to {} and its signature to {}; keep both outside Osprey",
                checkpoint.statement.head_seq,
                file.display(),
                signature_file.display()
            );
            Ok(0)
        }
        AuditCommand::Pubkey => {
            let key = app.checkpoint_key().await?;
            print!("{}", key.public_key().to_box()?.into_string());
            Ok(0)
        }
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

/// Where the signature of checkpoint `file` is: `FILE.minisig`, as the `minisign` tool
/// expects.
fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

async fn verify_checkpoint(app: &App, file: &Path, pubkey: Option<&Path>) -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the checkpoint {}", file.display()))?;
    let signature_file = signature_path(file);
    let signature = std::fs::read_to_string(&signature_file)
        .with_context(|| format!("reading the checkpoint's signature {}", signature_file.display()))?;
    let (public, key_desc) = match pubkey {
        Some(path) => (
            minisign::PublicKey::from_file(path)
                .map_err(|e| anyhow::anyhow!("{} is not a minisign public key: {e}", path.display()))?,
            format!("the public key {}", path.display()),
        ),
        None => {
            let key = app.existing_checkpoint_key().await?.context(
                "this database has no checkpoint key (osprey/checkpoint-key), so it signed no checkpoint: it was deleted, or the checkpoint is from another server (give its public key with --pubkey)",
            )?;
            (
                key.public_key().clone(),
                "this server's checkpoint key".to_owned(),
            )
        }
    };
    let statement = audit_checkpoint::verify_signature(&text, &signature, &public, &key_desc)
        .with_context(|| format!("checking the checkpoint {}", file.display()))?;
    let outcome = audit_checkpoint::check(&app.store, &statement).await?;
    println!("{outcome}");
    Ok(if outcome.passed() { 0 } else { 1 })
}
