//! The version of a plugin an upgrade replaced, kept in `<plugins_dir>/.previous/NAME` (a dot
//! folder, which the runtime never loads), and `osprey plugin rollback`, which swaps it back.
//! The store records the kept version with the grant that was in force.

use crate::app::App;
use crate::plugin::{Manifest, manifest::MANIFEST_FILE};
use crate::store::audit::Actor;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// Where the kept version of `name` lives.
fn kept_dir(plugins_dir: &Path, name: &str) -> PathBuf {
    plugins_dir.join(".previous").join(name)
}

/// Move `old`, the folder an install just replaced, to be the kept version of `name` (replacing
/// any earlier kept one); returns its version. A folder whose plugin.toml does not load is not
/// worth returning to: it is deleted instead, and `None` returned.
pub fn keep(plugins_dir: &Path, name: &str, old: &Path) -> anyhow::Result<Option<String>> {
    let Ok(manifest) = Manifest::load(old) else {
        std::fs::remove_dir_all(old).with_context(|| format!("removing {}", old.display()))?;
        return Ok(None);
    };
    discard(plugins_dir, name)?;
    let kept = kept_dir(plugins_dir, name);
    let parent = kept.parent().expect("the kept folder has a parent");
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    std::fs::rename(old, &kept)
        .with_context(|| format!("keeping {} as {}", old.display(), kept.display()))?;
    Ok(Some(manifest.version.to_string()))
}

/// Delete the kept version of `name`, if there is one.
pub fn discard(plugins_dir: &Path, name: &str) -> anyhow::Result<()> {
    let kept = kept_dir(plugins_dir, name);
    if kept.exists() {
        std::fs::remove_dir_all(&kept).with_context(|| format!("removing {}", kept.display()))?;
    }
    Ok(())
}

/// Exchange the installed and the kept folder of `name`.
fn swap(plugins_dir: &Path, name: &str) -> anyhow::Result<()> {
    let current = plugins_dir.join(name);
    let kept = kept_dir(plugins_dir, name);
    let aside = plugins_dir.join(format!(".rollback-{name}-{}", std::process::id()));
    std::fs::rename(&current, &aside).with_context(|| format!("moving {} aside", current.display()))?;
    if let Err(e) = std::fs::rename(&kept, &current) {
        std::fs::rename(&aside, &current).with_context(|| format!("restoring {}", current.display()))?;
        return Err(e).with_context(|| format!("moving {} into place", kept.display()));
    }
    std::fs::rename(&aside, &kept).with_context(|| format!("keeping {}", kept.display()))?;
    Ok(())
}

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
