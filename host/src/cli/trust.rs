//! `osprey trust add|list|remove`: the publisher keys whose signed packs
//! `osprey plugin install` accepts.

use super::render;
use crate::app::App;
use crate::config::Config;
use crate::pack::{PublicKey, TrustedKey};
use crate::store::audit::Actor;
use crate::store::trust::TrustAdded;
use anyhow::{Context as _, bail};
use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum TrustCommand {
    /// Trust a publisher's minisign public key under a name. Check its key id with the
    /// publisher first: every pack it signs installs.
    #[command(after_help = "\
Examples:
  osprey trust add acme acme.pub                 a .pub file, as `minisign -G` writes it
  osprey trust add acme RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3")]
    Add {
        /// A name for the publisher (lower-case letters, digits and dashes).
        name: String,
        /// The public key: a minisign .pub file, or its RW... line.
        key: String,
    },
    /// List the trusted publisher keys.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a publisher key (installed plugins stay installed).
    Remove { name: String },
}

pub async fn run(cmd: TrustCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        TrustCommand::Add { name, key } => add(&app, &name, &key).await,
        TrustCommand::List { json } => list(&app, json).await,
        TrustCommand::Remove { name } => remove(&app, &name).await,
    }
}

/// A public key from an argument: a file if one is there, else the key's text.
pub(super) fn read_key(arg: &str) -> anyhow::Result<PublicKey> {
    let path = Path::new(arg);
    let text = if path.is_file() {
        super::pack::read_small_text(path)?
    } else {
        arg.to_owned()
    };
    PublicKey::parse(&text)
        .with_context(|| format!("'{arg}' is neither a minisign public key file nor a key"))
}

async fn add(app: &App, name: &str, key: &str) -> anyhow::Result<i32> {
    crate::names::check("publisher", name).map_err(anyhow::Error::msg)?;
    let key = read_key(key)?;
    let id = key.key_id().to_string();
    match app
        .store
        .add_trusted_key(name, &id, &key.to_base64(), &Actor::cli())
        .await?
    {
        TrustAdded::Added => {
            println!("trusting key id {id} as '{name}': packs it signs install with `osprey plugin install`");
            Ok(0)
        }
        TrustAdded::NameTaken => bail!(
            "a key is trusted as '{name}' already; pick another name, or `osprey trust remove {name}` first"
        ),
        TrustAdded::KeyTrustedAs(existing) => bail!("key id {id} is trusted already, as '{existing}'"),
    }
}

async fn list(app: &App, json: bool) -> anyhow::Result<i32> {
    let keys = app.store.trusted_keys().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(0);
    }
    if keys.is_empty() {
        println!("no publisher keys trusted; add one with `osprey trust add NAME KEY`");
        return Ok(0);
    }
    println!("{:<24} {:<18} {:<22} PUBLIC KEY", "NAME", "KEY ID", "ADDED");
    for k in keys {
        println!(
            "{:<24} {:<18} {:<22} {}",
            k.name,
            k.key_id,
            render::time(k.added_at),
            k.public_key
        );
    }
    Ok(0)
}

async fn remove(app: &App, name: &str) -> anyhow::Result<i32> {
    if !app.store.remove_trusted_key(name, &Actor::cli()).await? {
        bail!("no key is trusted as '{name}' (see `osprey trust list`)");
    }
    println!("no longer trusting '{name}'; plugins installed from its packs stay installed");
    Ok(0)
}

/// The trusted keys, as `pack::trust` takes them. A stored key that no longer parses is
/// left out with a warning (it can only be removed).
pub(super) async fn trusted_keys(app: &App) -> anyhow::Result<Vec<TrustedKey>> {
    let (keys, unreadable) = crate::install::source::trusted_keys(app).await?;
    for (name, e) in unreadable {
        eprintln!("warning: trusted key '{name}' is unreadable and ignored: {e}");
    }
    Ok(keys)
}
