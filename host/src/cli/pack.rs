//! `osprey pack build|sign|verify|inspect|payload|push`: plugin packs, one signed file per
//! plugin (the layout is in `pack/format.rs`, in a registry `oci.rs`; where an install takes
//! a plugin from, with the checks it makes of a pack, is `install/source.rs`).

use super::render;
use crate::app::App;
use crate::config::Config;
use crate::install::{
    self,
    source::{signer_text, trust_command},
};
use crate::oci::{self, Access, OciRef};
use crate::pack::{self, Limits, Pack, PublicKey, SecretKey, Signature, Signer, TrustedKey};
use crate::plugin::Manifest;
use crate::plugin::manifest::MANIFEST_FILE;
use anyhow::{Context as _, bail};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The README a plugin folder may have, carried in its pack.
const README: &str = "README.md";

#[derive(Debug, clap::Subcommand)]
pub enum PackCommand {
    /// Make a pack from a plugin folder: plugin.toml, its component, and README.md if there
    /// is one. The pack is unsigned until `osprey pack sign`.
    #[command(after_help = "\
Examples:
  osprey pack build plugins/dist/ipinfo                        writes ipinfo-0.1.0.ospack
  osprey pack build plugins/dist/ipinfo -o ipinfo.ospack")]
    Build {
        /// The plugin folder (with plugin.toml).
        dir: PathBuf,
        /// Where to write the pack (default: NAME-VERSION.ospack here).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Sign a pack with a minisign secret key, or put in a signature made by the minisign
    /// tool over `osprey pack payload`'s bytes.
    #[command(after_help = "\
Examples:
  osprey pack sign ipinfo-0.1.0.ospack --key ~/.minisign/minisign.key
  osprey pack sign ipinfo-0.1.0.ospack --key publisher.key --password-file pw.txt

  With the minisign tool instead:
  osprey pack payload ipinfo-0.1.0.ospack -o manifest.json
  minisign -S -s publisher.key -m manifest.json                writes manifest.json.minisig
  osprey pack sign ipinfo-0.1.0.ospack --signature manifest.json.minisig --public-key publisher.pub")]
    Sign {
        file: PathBuf,
        /// A minisign secret key file (`minisign -G` makes one; `-W` without a password).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "signature",
            conflicts_with = "signature"
        )]
        key: Option<PathBuf>,
        /// A file whose first line is the secret key's password (else you are asked).
        #[arg(long, value_name = "FILE", requires = "key")]
        password_file: Option<PathBuf>,
        /// A detached minisign signature of the pack's manifest (`osprey pack payload`).
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// The signer's minisign public key, put in the pack so that installers are told
        /// which key to trust (with --key it comes from the secret key).
        #[arg(long, value_name = "FILE", requires = "signature")]
        public_key: Option<PathBuf>,
        /// Where to write the signed pack (default: over FILE).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a pack: every file against its manifest, and the signature against a key (the
    /// one given, else the one the pack carries). Whether this Osprey trusts the signer is
    /// `osprey pack inspect`'s to say.
    Verify {
        file: PathBuf,
        /// The publisher's minisign public key: a .pub file, or its RW... line.
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
    },
    /// Show what a pack's plugin requests (hosts, private ranges, secrets, kv quota, limits),
    /// its actions, who signed it and whether this Osprey trusts them, and its digest.
    Inspect {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the exact bytes a pack's signature covers (its manifest), to sign with the
    /// minisign tool or to check with `minisign -V`; a signed pack's signature goes to
    /// OUTPUT.minisig beside them.
    Payload {
        file: PathBuf,
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Push a pack to an OCI registry as a wasm OCI artifact (the component as its
    /// application/wasm layer, so other wasm tooling can pull it), with the pack's manifest,
    /// signature and files as extra layers. Installers get the very same pack back and check
    /// it as they check the file.
    #[command(after_help = "\
Examples:
  osprey pack push ipinfo-0.1.0.ospack oci://registry.example.com/acme/ipinfo:0.1.0
  osprey pack push ipinfo-0.1.0.ospack oci://127.0.0.1:5000/ipinfo:0.1.0     a registry on loopback
  osprey pack push ipinfo-0.1.0.ospack oci://ghcr.io/acme/ipinfo:0.1.0 --username acme
                                        (its password from OSPREY_REGISTRY_PASSWORD)

A registry is spoken to over HTTPS, except one on loopback (127.0.0.0/8, localhost) or
with --insecure, over plain HTTP.")]
    Push {
        file: PathBuf,
        /// Where to push: oci://HOST[:PORT]/REPO:TAG.
        #[arg(value_name = "oci://HOST[:PORT]/REPO:TAG")]
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

/// How to reach an OCI registry, for `osprey pack push` and `osprey plugin install oci://`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// Sign in to the registry as NAME; the password is read from the environment variable
    /// OSPREY_REGISTRY_PASSWORD (never from the command line, where others could read it).
    #[arg(long, value_name = "NAME")]
    username: Option<String>,
    /// Speak plain HTTP (no TLS) to a registry that is not on loopback. Without it, only a
    /// registry on loopback (127.0.0.0/8, localhost) is spoken to over plain HTTP.
    #[arg(long)]
    insecure: bool,
}

impl RegistryArgs {
    pub(super) fn access(&self) -> Access {
        Access {
            insecure: self.insecure,
            username: self.username.clone(),
            password: std::env::var("OSPREY_REGISTRY_PASSWORD").ok(),
        }
    }
}

pub async fn run(cmd: PackCommand, config: Config) -> anyhow::Result<i32> {
    match cmd {
        PackCommand::Build { dir, output } => build(&dir, output),
        PackCommand::Sign {
            file,
            key,
            password_file,
            signature,
            public_key,
            output,
        } => {
            let output = output.unwrap_or_else(|| file.clone());
            match (key, signature) {
                (Some(key), _) => sign_with_key(&file, &key, password_file.as_deref(), &output),
                (None, Some(sig)) => sign_with_signature(&file, &sig, public_key.as_deref(), &output),
                (None, None) => bail!("say how to sign: --key SECRET_KEY_FILE or --signature FILE.minisig"),
            }
        }
        PackCommand::Verify { file, key } => verify(&file, key.as_deref()),
        PackCommand::Inspect { file, json } => inspect(&App::open(config).await?, &file, json).await,
        PackCommand::Payload { file, output } => payload(&file, &output),
        PackCommand::Push {
            file,
            reference,
            registry,
        } => push(&file, &reference, &registry).await,
    }
}

/// Read and check a pack file (see [`install::source::read_pack`]).
pub(super) fn read_pack(path: &Path) -> anyhow::Result<Pack> {
    Ok(install::source::read_pack(path)?)
}

/// Write `bytes` to `path` whole: into a file beside it, renamed over it once complete.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name().map_or("pack".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn build(dir: &Path, output: Option<PathBuf>) -> anyhow::Result<i32> {
    let m = Manifest::load(dir)?;
    let read = |name: &Path| {
        std::fs::read(dir.join(name)).with_context(|| format!("reading {}", dir.join(name).display()))
    };
    let component = m
        .component
        .to_str()
        .with_context(|| format!("component '{}' is not a UTF-8 name", m.component.display()))?
        .to_owned();
    let mut files = vec![
        (MANIFEST_FILE.to_owned(), read(Path::new(MANIFEST_FILE))?),
        (component.clone(), read(&m.component)?),
    ];
    if dir.join(README).is_file() {
        files.push((README.to_owned(), read(Path::new(README))?));
    }
    let pack = Pack::build(&m.name, &m.version, files, &Limits::default())
        .with_context(|| format!("{} cannot be packed", dir.display()))?;
    let output = output.unwrap_or_else(|| PathBuf::from(format!("{}-{}.ospack", m.name, m.version)));
    write_file(&output, &pack.to_bytes())?;
    println!(
        "built {}: {} {} ({}), digest {}",
        output.display(),
        m.name,
        m.version,
        pack.files().map(|(p, _)| p).collect::<Vec<_>>().join(", "),
        pack.digest()
    );
    println!(
        "unsigned: sign it with `osprey pack sign {} --key SECRET_KEY_FILE`",
        output.display()
    );
    Ok(0)
}

/// The password of an encrypted secret key: the first line of `password_file`, or asked for
/// on the terminal.
fn password(key: &Path, password_file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(file) = password_file {
        let text = read_small_text(file)?;
        return Ok(text.lines().next().unwrap_or("").to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "{} is encrypted: give --password-file FILE, or run in a terminal to be asked",
            key.display()
        );
    }
    Ok(rpassword::prompt_password(format!(
        "password of {}: ",
        key.display()
    ))?)
}

fn sign_with_key(
    file: &Path,
    key: &Path,
    password_file: Option<&Path>,
    output: &Path,
) -> anyhow::Result<i32> {
    let mut pack = read_pack(file)?;
    let text = read_small_text(key)?;
    let password = if SecretKey::is_encrypted(&text).with_context(|| format!("{}", key.display()))? {
        Some(password(key, password_file)?)
    } else {
        None
    };
    let secret = SecretKey::open(&text, password).with_context(|| format!("{}", key.display()))?;
    let public = secret.public_key()?;
    let m = pack.manifest();
    let comment = format!("osprey-pack {} {} {}", m.name, m.version, pack.digest());
    let signature = pack::signature::sign(pack.manifest_bytes(), &secret, &comment)?;
    pack.set_signature(signature.text().to_owned(), Some(public.to_file_text()))?;
    write_file(output, &pack.to_bytes())?;
    println!(
        "signed {} with key id {}; installers trust it with `osprey trust add NAME {}`",
        output.display(),
        public.key_id(),
        public.to_base64()
    );
    Ok(0)
}

fn sign_with_signature(
    file: &Path,
    sig: &Path,
    public_key: Option<&Path>,
    output: &Path,
) -> anyhow::Result<i32> {
    let mut pack = read_pack(file)?;
    let text = read_small_text(sig)?;
    let signature = Signature::parse(&text).with_context(|| format!("{}", sig.display()))?;
    let public = match public_key {
        Some(path) => {
            let key_text = read_small_text(path)?;
            let key = PublicKey::parse(&key_text).with_context(|| format!("{}", path.display()))?;
            pack::signature::verify(pack.manifest_bytes(), &signature, &key)
                .with_context(|| format!("{} is not a signature of this pack's manifest", sig.display()))?;
            Some(key)
        }
        None => None,
    };
    pack.set_signature(text, public.as_ref().map(PublicKey::to_file_text))?;
    write_file(output, &pack.to_bytes())?;
    match public {
        Some(key) => println!(
            "signed {} with the signature of key id {} (verified)",
            output.display(),
            key.key_id()
        ),
        None => println!(
            "signed {} with the signature of key id {} (not verified: without --public-key the pack carries no key, and installers need the publisher's key with that id)",
            output.display(),
            signature.key_id()
        ),
    }
    Ok(0)
}

fn verify(file: &Path, key: Option<&str>) -> anyhow::Result<i32> {
    let pack = read_pack(file)?;
    let given = key
        .map(|k| {
            super::trust::read_key(k).map(|key| TrustedKey {
                name: "the key given".into(),
                key,
            })
        })
        .transpose()?;
    let signer = pack::trust::check(&pack, given.as_slice())
        .with_context(|| format!("{} is refused", file.display()))?;
    let intact = format!(
        "{}: every file matches its manifest (digest {})",
        file.display(),
        pack.digest()
    );
    match (signer, &given) {
        (Signer::Trusted { key_id, .. }, _) => {
            println!("{intact}\nsignature good: key id {key_id}, the key given");
            Ok(0)
        }
        (Signer::Unsigned, _) => {
            println!("{intact}\nnot signed");
            Ok(1)
        }
        (Signer::Untrusted { key_id, .. }, Some(g)) => {
            println!(
                "{intact}\nsigned by key id {key_id}, not by the key given (key id {})",
                g.key.key_id()
            );
            Ok(1)
        }
        (
            Signer::Untrusted {
                key_id,
                carried: Some(_),
            },
            None,
        ) => {
            println!(
                "{intact}\nsignature good: key id {key_id}, with the public key the pack carries (this says the pack is intact since it was signed, not who signed it: `osprey pack inspect` says whether this Osprey trusts the key)"
            );
            Ok(0)
        }
        (
            Signer::Untrusted {
                key_id,
                carried: None,
            },
            None,
        ) => {
            println!(
                "{intact}\nsigned by key id {key_id}, but the pack carries no public key to check it with: give --key KEY"
            );
            Ok(1)
        }
    }
}

fn payload(file: &Path, output: &Path) -> anyhow::Result<i32> {
    let pack = read_pack(file)?;
    write_file(output, pack.manifest_bytes())?;
    println!("wrote {} (the bytes a signature covers)", output.display());
    if let Some(sig) = pack.signature() {
        let mut sig_path = output.as_os_str().to_owned();
        sig_path.push(".minisig");
        let sig_path = PathBuf::from(sig_path);
        write_file(&sig_path, sig.as_bytes())?;
        println!("wrote {} (its signature)", sig_path.display());
    }
    Ok(0)
}

async fn push(file: &Path, reference: &str, registry: &RegistryArgs) -> anyhow::Result<i32> {
    let pack = read_pack(file)?;
    let oci = OciRef::parse(reference)?;
    let (_dir, m) = install::source::unpack(&pack)?;
    let component = m
        .component
        .to_str()
        .with_context(|| format!("component '{}' is not a UTF-8 name", m.component.display()))?;
    if pack.signature().is_none() {
        eprintln!(
            "warning: {} is not signed: installers refuse it unless they pass --allow-unsigned (sign it first with `osprey pack sign`)",
            file.display()
        );
    }
    let digest = oci::push(&pack, component, &oci, &registry.access()).await?;
    println!(
        "pushed {} to {oci}: {} {}, manifest digest {digest}\ninstall exactly this push with:\n  osprey plugin install {}",
        file.display(),
        m.name,
        m.version,
        oci.at_digest(&digest)
    );
    Ok(0)
}

async fn inspect(app: &App, file: &Path, json: bool) -> anyhow::Result<i32> {
    let pack = read_pack(file)?;
    let trusted = super::trust::trusted_keys(app).await?;
    let signer =
        pack::trust::check(&pack, &trusted).with_context(|| format!("{} is refused", file.display()))?;
    let (dir, m) = install::source::unpack(&pack)?;
    let checked = app
        .runtime
        .check_dir(dir.path())
        .await
        .with_context(|| format!("the plugin in {} cannot be loaded", file.display()))?;
    let pm = pack.manifest();
    if json {
        let v = serde_json::json!({
            "name": m.name,
            "version": m.version,
            "description": checked.description.description,
            "digest": pack.digest(),
            "files": pm.files,
            "signer": signer.to_audit(),
            "actions": checked.description.actions,
            "requests": m.requests,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    println!("{} {} — {}", m.name, m.version, checked.description.description);
    println!("  digest:  {}", pack.digest());
    println!("  signed:  {}", signer_text(&signer));
    if let Signer::Untrusted { key_id, carried } = &signer {
        println!(
            "           {}",
            trust_command(*key_id, carried.as_ref(), &m.name).replace('\n', "\n         ")
        );
    }
    println!("  files:");
    for f in &pm.files {
        println!("    {:<28} {:>9} bytes  sha256 {}", f.path, f.size, f.sha256);
    }
    println!("\nActions:");
    for a in &checked.description.actions {
        println!("  {} — {}", a.name, a.description);
    }
    let grant = app.grant(&m.name).await?;
    let granted_before = app.store.grant(&m.name).await?.is_some();
    println!("\nIt requests (and what this Osprey grants it today):");
    print!(
        "{}",
        render::capabilities(
            &m.requests,
            &grant,
            granted_before,
            &app.config.limits.with_grant(&grant)
        )
    );
    Ok(0)
}

/// The most a key, signature or password file may hold: they are a few hundred bytes.
const MAX_SMALL_FILE: u64 = 64 * 1024;

/// A key, signature or password file, refused unread when it is larger than any such file.
pub(super) fn read_small_text(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_SMALL_FILE + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= MAX_SMALL_FILE,
        "{} is over {} KiB: not a minisign key, signature or password file",
        path.display(),
        MAX_SMALL_FILE / 1024
    );
    Ok(text)
}
