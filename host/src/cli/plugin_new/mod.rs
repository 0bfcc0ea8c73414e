//! `osprey plugin new NAME [--lang rust|python]`: a standalone plugin project for an author
//! who will never read this repository, one that builds, packs and installs as it is. Each
//! language is a folder of templates (`host/templates/plugin-LANG/`, embedded in the binary)
//! and a module that adds what the project needs besides (`rust.rs`: the vendored SDK, the
//! WIT contract and a pinned Cargo.lock). Nothing here opens the data directory.

mod cargo_lock;
mod python;
mod rust;

use anyhow::{Context as _, bail};
use include_dir::Dir;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  osprey plugin new acme-lookup                      a Rust project in ./acme-lookup
  osprey plugin new acme-lookup --dir ~/src/acme     somewhere else
  cd acme-lookup && cargo build --release            then README.md: test, pack, sign, install
  osprey plugin new acme-py --lang python            a Python project (componentize-py)
  cd acme-py && ./build.sh                           then README.md: test, pack, sign, install

The project carries its own copy of the plugin SDK and of the WIT contract it binds to (and,
in Rust, a Cargo.lock with the versions Osprey's bundled plugins build with; in Python, the
componentize-py version they build with), so it needs nothing from Osprey's repository.")]
pub struct NewArgs {
    /// The plugin's name: 1-64 lower-case letters, digits and dashes, starting with a letter.
    name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Where to write the project (default: ./NAME). It must not exist, or be empty.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The languages a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Cargo project with the SDK and the WIT contract vendored in.
    Rust,
    /// A folder with the Python SDK and the WIT contract vendored in, built by its build.sh
    /// with componentize-py (from PyPI).
    Python,
}

/// A project to write: its files (paths relative to its folder) and what to do next.
struct Project {
    files: Vec<(PathBuf, Vec<u8>)>,
    next_steps: String,
}

pub fn run(args: &NewArgs) -> anyhow::Result<i32> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    let project = project(args.lang, &args.name)?;
    write(&dir, &project.files)?;
    println!("wrote {} ({} files)", dir.display(), project.files.len());
    println!();
    println!("next steps (README.md in the project says more):");
    println!("  cd {}", dir.display());
    print!("{}", project.next_steps);
    Ok(0)
}

/// The project for a plugin `name` in `lang`, or why there is none.
fn project(lang: Lang, name: &str) -> anyhow::Result<Project> {
    crate::plugin::manifest::check_name(name)?;
    match lang {
        Lang::Rust => rust::project(name),
        Lang::Python => python::project(name),
    }
}

/// The files of `template` with `{{key}}` replaced by each value of `vars`, and the
/// `.tmpl` ending taken off their names (it keeps a template `Cargo.toml` from looking like a
/// package to cargo).
fn render(template: &Dir<'_>, vars: &[(&str, &str)]) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![template];
    while let Some(dir) = dirs.pop() {
        for file in dir.files() {
            let mut text = String::from_utf8_lossy(file.contents()).into_owned();
            for (key, value) in vars {
                text = text.replace(&format!("{{{{{key}}}}}"), value);
            }
            let path = file.path();
            let path = match path.to_str().and_then(|p| p.strip_suffix(".tmpl")) {
                Some(stripped) => PathBuf::from(stripped),
                None => path.to_owned(),
            };
            out.push((path, text.into_bytes()));
        }
        dirs.extend(dir.dirs());
    }
    out
}

/// Every file under `dir`, with its path below `under` (include_dir's paths are relative to
/// the folder that was embedded).
fn copy(dir: &Dir<'_>, under: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir];
    while let Some(dir) = dirs.pop() {
        out.extend(dir.files().map(|f| (under.join(f.path()), f.contents().to_vec())));
        dirs.extend(dir.dirs());
    }
    out
}

/// Write `files` into `dir`, which must not exist or be empty; never over an existing file.
fn write(dir: &Path, files: &[(PathBuf, Vec<u8>)]) -> anyhow::Result<()> {
    refuse_occupied(dir)?;
    for (relative, contents) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, contents))
            .with_context(|| format!("cannot write {}", path.display()))?;
        if python::is_executable(relative) {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    Ok(())
}

/// Refuse a `dir` that is a file or holds anything.
fn refuse_occupied(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} already exists and is not empty: choose another name or --dir, or \
                     remove it",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => bail!("{} already exists and is not a folder", dir.display()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The text of the file at `path` in `project`.
    pub(in crate::cli::plugin_new) fn file(project: &Project, path: &str) -> String {
        let (_, contents) = project
            .files
            .iter()
            .find(|(p, _)| p == Path::new(path))
            .unwrap_or_else(|| panic!("no {path}"));
        String::from_utf8(contents.clone()).unwrap()
    }

    #[test]
    fn bad_and_reserved_names_are_refused_before_anything_is_written() {
        for bad in ["Acme", "2fast", "acme_lookup", "acme.lookup", "", "osprey"] {
            let e = project(Lang::Rust, bad).err().unwrap().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
        let e = project(Lang::Rust, "Acme").err().unwrap().to_string();
        assert!(e.contains("lower-case letters, digits and dashes"), "{e}");
    }

    #[test]
    fn the_python_build_script_is_written_executable() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("acme-py");
        write(&dir, &project(Lang::Python, "acme-py").unwrap().files).unwrap();
        let mode = std::fs::metadata(dir.join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{mode:o}");
        let mode = std::fs::metadata(dir.join("src/app.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0, "{mode:o}");
    }

    #[test]
    fn a_non_empty_folder_or_a_file_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let files = project(Lang::Rust, "acme-lookup").unwrap().files;

        let full = tmp.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("notes.txt"), "mine").unwrap();
        let e = write(&full, &files).unwrap_err().to_string();
        assert!(e.contains("already exists and is not empty"), "{e}");
        assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);

        let file = tmp.path().join("a-file");
        std::fs::write(&file, "mine").unwrap();
        let e = write(&file, &files).unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");

        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        write(&empty, &files).unwrap();
        assert!(empty.join("plugin.toml").is_file());
        assert!(empty.join("src/lib.rs").is_file());
    }

    #[test]
    fn every_placeholder_is_filled() {
        let placeholder = regex::Regex::new(r"\{\{[a-z_]+\}\}").unwrap();
        for lang in [Lang::Rust, Lang::Python] {
            for (path, contents) in project(lang, "acme-lookup").unwrap().files {
                let text = String::from_utf8_lossy(&contents);
                assert!(
                    !placeholder.is_match(&text),
                    "{} keeps a placeholder",
                    path.display()
                );
                assert!(!path.to_string_lossy().ends_with(".tmpl"), "{}", path.display());
            }
        }
    }
}
