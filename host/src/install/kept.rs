//! The version of a plugin an upgrade replaced, kept in `<plugins_dir>/.previous/NAME` (a dot
//! folder, which the runtime never loads), and the swap a rollback makes. The store records
//! the kept version with the grant that was in force.

use crate::plugin::Manifest;
use std::path::{Path, PathBuf};

/// A file operation on the plugin folders that failed.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {error}")]
pub struct KeptError {
    pub what: String,
    pub error: std::io::Error,
}

fn io<T>(what: impl FnOnce() -> String, r: std::io::Result<T>) -> Result<T, KeptError> {
    r.map_err(|error| KeptError { what: what(), error })
}

/// Where the kept version of `name` lives.
pub fn kept_dir(plugins_dir: &Path, name: &str) -> PathBuf {
    plugins_dir.join(".previous").join(name)
}

/// Move `old`, the folder an install just replaced, to be the kept version of `name` (replacing
/// any earlier kept one); returns its version. A folder whose plugin.toml does not load is not
/// worth returning to: it is deleted instead, and `None` returned.
pub fn keep(plugins_dir: &Path, name: &str, old: &Path) -> Result<Option<String>, KeptError> {
    let Ok(manifest) = Manifest::load(old) else {
        io(
            || format!("removing {}", old.display()),
            std::fs::remove_dir_all(old),
        )?;
        return Ok(None);
    };
    discard(plugins_dir, name)?;
    let kept = kept_dir(plugins_dir, name);
    let parent = kept.parent().expect("the kept folder has a parent");
    io(
        || format!("creating {}", parent.display()),
        std::fs::create_dir_all(parent),
    )?;
    io(
        || format!("keeping {} as {}", old.display(), kept.display()),
        std::fs::rename(old, &kept),
    )?;
    Ok(Some(manifest.version.to_string()))
}

/// Delete the kept version of `name`, if there is one.
pub fn discard(plugins_dir: &Path, name: &str) -> Result<(), KeptError> {
    let kept = kept_dir(plugins_dir, name);
    if kept.exists() {
        io(
            || format!("removing {}", kept.display()),
            std::fs::remove_dir_all(&kept),
        )?;
    }
    Ok(())
}

/// Exchange the installed and the kept folder of `name`.
pub fn swap(plugins_dir: &Path, name: &str) -> Result<(), KeptError> {
    let current = plugins_dir.join(name);
    let kept = kept_dir(plugins_dir, name);
    let aside = plugins_dir.join(format!(".rollback-{name}-{}", std::process::id()));
    io(
        || format!("moving {} aside", current.display()),
        std::fs::rename(&current, &aside),
    )?;
    if let Err(e) = std::fs::rename(&kept, &current) {
        io(
            || format!("restoring {}", current.display()),
            std::fs::rename(&aside, &current),
        )?;
        return io(|| format!("moving {} into place", kept.display()), Err(e));
    }
    io(
        || format!("keeping {}", kept.display()),
        std::fs::rename(&aside, &kept),
    )?;
    Ok(())
}
