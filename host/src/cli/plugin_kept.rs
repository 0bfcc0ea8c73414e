//! `osprey plugin rollback`, which swaps back the version an upgrade replaced (kept by
//! `install::kept`). The store records the kept version with the grant that was in force.

use crate::app::App;
use crate::install::kept::{kept_dir, swap};
use crate::plugin::{Manifest, manifest::MANIFEST_FILE};
use crate::store::audit::Actor;
use anyhow::{Context as _, bail};

/// `osprey plugin rollback NAME`.
pub async fn rollback(app: &App, name: &str) -> anyhow::Result<i32> {
    let plugins_dir = &app.runtime.options().plugins_dir;
    let current_dir = plugins_dir.join(name);
    let from = Manifest::load(&current_dir)
        .with_context(|| format!("plugin '{name}' is not installed, so there is nothing to roll back"))?
        .version
        .to_string();
    let kept_files = kept_dir(plugins_dir, name);
    let kept = app.store.kept_version(name).await?;
    let Some(kept) = kept.filter(|_| kept_files.join(MANIFEST_FILE).is_file()) else {
        bail!(
            "plugin '{name}' has no previous version to roll back to: a version is kept only when `osprey plugin install` replaces an installed one ({from} is installed)"
        );
    };
    app.runtime
        .check_dir(&kept_files)
        .await
        .with_context(|| format!("the kept version {} of '{name}' no longer loads", kept.version))?;
    swap(plugins_dir, name)?;
    let back = match app.store.record_rollback(name, &from, &Actor::cli()).await {
        Ok(Some(back)) => back,
        Ok(None) => {
            swap(plugins_dir, name)?;
            bail!(
                "plugin '{name}' has no previous version on record any more (another rollback or removal ran)"
            );
        }
        Err(e) => {
            swap(plugins_dir, name)?;
            return Err(e.into());
        }
    };
    app.runtime.load_dir(&current_dir).await?;
    println!("rolled back '{name}' from {from} to {}", back.version);
    if let Some(digest) = back.pack.as_ref().and_then(|p| p["digest"].as_str()) {
        println!("  pack {digest}");
    }
    match &back.grant {
        Some(_) => println!("  its grant is back as it was when {} was replaced", back.version),
        None => println!(
            "  nothing was granted to {} when it was replaced, so nothing is granted now",
            back.version
        ),
    }
    println!("  {from} is kept: `osprey plugin rollback {name}` returns to it");
    Ok(0)
}
