//! Where an install or upgrade takes a plugin from: a plugin folder, a pack file, or a pack in
//! an OCI registry. A pack is checked (every file against its manifest, the signature against
//! the trusted publishers) and unpacked into a temporary folder. Nothing here prints: what
//! happened is returned for the CLI or the console to show.

use crate::app::App;
use crate::oci::{self, Access, OciError, OciRef};
use crate::pack::{self, FormatError, KeyId, Limits, Pack, PublicKey, SignatureError, Signer, TrustedKey};
use crate::plugin::Manifest;
use crate::plugin::manifest::ManifestError;
use crate::store::StoreError;
use std::path::{Path, PathBuf};

/// Why a source cannot be read or is refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is {size} bytes, larger than a pack may be ({max} bytes)")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{origin} is refused: {error}")]
    Format { origin: String, error: FormatError },
    #[error("{origin} is refused: {error}")]
    Signature { origin: String, error: SignatureError },
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error("unpacking {path}: {error}")]
    Unpack { path: String, error: std::io::Error },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the pack says it holds {pack_name} {pack_version}, but its plugin.toml is {name} {version}")]
    Disagrees {
        pack_name: String,
        pack_version: String,
        name: String,
        version: String,
    },
    #[error(
        "{origin} is not signed; Osprey installs packs signed by a publisher you trust. Ask the publisher for a signed pack (`osprey pack sign`) and trust their key (`osprey trust add NAME KEY`), or install it unsigned with --allow-unsigned (audited)"
    )]
    Unsigned { origin: String },
    #[error(
        "{origin} is signed by key id {key_id}, which this Osprey does not trust; {}\nthen install again (or install it untrusted with --allow-unsigned, audited)",
        trust_command(*.key_id, .carried.as_ref(), .plugin)
    )]
    Untrusted {
        origin: String,
        key_id: KeyId,
        carried: Option<PublicKey>,
        plugin: String,
    },
    #[error("creating a temporary folder: {0}")]
    TempDir(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An install's SOURCE as written: `oci://...`, a file (a pack), or a plugin folder.
#[derive(Debug, Clone)]
pub enum Source {
    Oci(OciRef),
    File(PathBuf),
    Folder(PathBuf),
}

impl Source {
    /// The one reading of SOURCE: an `oci://` reference, else an existing file is a pack,
    /// anything else a plugin folder.
    pub fn parse(source: &Path) -> Result<Source, SourceError> {
        if let Some(text) = source.to_str().filter(|t| OciRef::is_oci(t)) {
            return Ok(Source::Oci(OciRef::parse(text)?));
        }
        if source.is_file() {
            return Ok(Source::File(source.to_owned()));
        }
        Ok(Source::Folder(source.to_owned()))
    }
}

/// A plugin ready to be checked: a folder as it is, or a checked pack unpacked.
#[derive(Debug)]
pub enum Origin {
    Folder(PathBuf),
    Pack(Unpacked),
}

impl Origin {
    /// The plugin folder (plugin.toml and its component).
    pub fn dir(&self) -> &Path {
        match self {
            Origin::Folder(dir) => dir,
            Origin::Pack(unpacked) => unpacked.dir.path(),
        }
    }

    /// Who signed it: `None` for a folder (unsigned, trusted as the operator's own files).
    pub fn signer(&self) -> Option<&Signer> {
        match self {
            Origin::Folder(_) => None,
            Origin::Pack(unpacked) => Some(&unpacked.signer),
        }
    }
}

/// A pack checked for an install, unpacked into a temporary folder (deleted when dropped).
#[derive(Debug)]
pub struct Unpacked {
    dir: tempfile::TempDir,
    /// How messages name it: the file or the `oci://` reference.
    pub origin: String,
    pub signer: Signer,
    /// The pack's digest (`sha256:...`).
    pub digest: String,
    /// Whether it was let in without a trusted signature (`--allow-unsigned`).
    pub allowed_unsigned: bool,
    /// What the audit entry of the install records of the pack.
    pub audit: serde_json::Value,
}

/// The trusted publisher keys, and the stored ones that no longer parse (ignored), each
/// with why.
pub async fn trusted_keys(app: &App) -> Result<(Vec<TrustedKey>, Vec<(String, String)>), SourceError> {
    let (mut keys, mut unreadable) = (Vec::new(), Vec::new());
    for record in app.store.trusted_keys().await? {
        match PublicKey::parse(&record.public_key) {
            Ok(key) => keys.push(TrustedKey {
                name: record.name,
                key,
            }),
            Err(e) => unreadable.push((record.name, e.to_string())),
        }
    }
    Ok((keys, unreadable))
}

/// Fetch `source`: a folder is taken as it is; a pack is read (or pulled), checked against
/// `trusted` and unpacked. A pack without a trusted signature is refused unless
/// `allow_unsigned` (then [`Unpacked::allowed_unsigned`] says so, for a loud warning).
pub async fn fetch(
    source: &Source,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
    access: &Access,
) -> Result<Origin, SourceError> {
    match source {
        Source::Folder(dir) => Ok(Origin::Folder(dir.clone())),
        Source::File(path) => {
            let pack = read_pack(path)?;
            let mut unpacked = check_pack(&pack, &path.display().to_string(), trusted, allow_unsigned)?;
            unpacked.audit["file"] = serde_json::json!(path);
            Ok(Origin::Pack(unpacked))
        }
        Source::Oci(oci) => {
            let (pack, manifest_digest) = oci::pull(oci, access, &Limits::default()).await?;
            let mut unpacked = check_pack(&pack, &oci.to_string(), trusted, allow_unsigned)?;
            unpacked.audit["oci"] = oci.to_string().into();
            unpacked.audit["oci_manifest_digest"] = manifest_digest.into();
            Ok(Origin::Pack(unpacked))
        }
    }
}

/// Read and check a pack file, refusing one larger than any pack can be before reading it.
pub fn read_pack(path: &Path) -> Result<Pack, SourceError> {
    let limits = Limits::default();
    let io = |error| SourceError::Io {
        path: path.to_owned(),
        error,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limits.max_archive_bytes() {
        return Err(SourceError::TooLarge {
            path: path.to_owned(),
            size,
            max: limits.max_archive_bytes(),
        });
    }
    Pack::read(std::io::BufReader::new(file), &limits).map_err(|error| SourceError::Format {
        origin: path.display().to_string(),
        error,
    })
}

/// The files of a pack in a temporary folder whose plugin.toml agrees with the pack's
/// manifest.
pub fn unpack(pack: &Pack) -> Result<(tempfile::TempDir, Manifest), SourceError> {
    let dir = tempfile::Builder::new()
        .prefix("osprey-pack-")
        .tempdir()
        .map_err(SourceError::TempDir)?;
    for (path, bytes) in pack.files() {
        std::fs::write(dir.path().join(path), bytes).map_err(|error| SourceError::Unpack {
            path: path.to_owned(),
            error,
        })?;
    }
    let m = Manifest::load(dir.path())?;
    let pm = pack.manifest();
    if m.name != pm.name || m.version != pm.version {
        return Err(SourceError::Disagrees {
            pack_name: pm.name.clone(),
            pack_version: pm.version.to_string(),
            name: m.name,
            version: m.version.to_string(),
        });
    }
    Ok((dir, m))
}

/// A pack checked for an install: intact, and signed by a trusted publisher unless
/// `allow_unsigned`, unpacked. `origin` names it in messages.
pub fn check_pack(
    pack: &Pack,
    origin: &str,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Unpacked, SourceError> {
    let signer = pack::trust::check(pack, trusted).map_err(|error| SourceError::Signature {
        origin: origin.to_owned(),
        error,
    })?;
    match &signer {
        Signer::Trusted { .. } => {}
        Signer::Unsigned if !allow_unsigned => {
            return Err(SourceError::Unsigned {
                origin: origin.to_owned(),
            });
        }
        Signer::Untrusted { key_id, carried } if !allow_unsigned => {
            return Err(SourceError::Untrusted {
                origin: origin.to_owned(),
                key_id: *key_id,
                carried: carried.clone(),
                plugin: pack.manifest().name.clone(),
            });
        }
        _ => {}
    }
    let (dir, _) = unpack(pack)?;
    let allowed_unsigned = !matches!(signer, Signer::Trusted { .. });
    let mut audit = serde_json::json!({
        "digest": pack.digest(),
        "signer": signer.to_audit(),
    });
    if allowed_unsigned {
        audit["allow_unsigned"] = true.into();
    }
    Ok(Unpacked {
        dir,
        origin: origin.to_owned(),
        signer,
        digest: pack.digest(),
        allowed_unsigned,
        audit,
    })
}

/// What to tell an operator about a pack's signer, in one line.
pub fn signer_text(signer: &Signer) -> String {
    match signer {
        Signer::Unsigned => "not signed".into(),
        Signer::Trusted { name, key_id } => format!("key id {key_id}, trusted as '{name}'"),
        Signer::Untrusted {
            key_id,
            carried: Some(_),
        } => format!("key id {key_id}, NOT trusted here"),
        Signer::Untrusted {
            key_id,
            carried: None,
        } => {
            format!("key id {key_id}, NOT trusted here (the pack carries no public key to check it with)")
        }
    }
}

/// The exact command that trusts an untrusted signer.
pub fn trust_command(key_id: KeyId, carried: Option<&PublicKey>, plugin: &str) -> String {
    match carried {
        Some(key) => format!(
            "if key id {key_id} is the publisher's (check with them), trust it with:\n  osprey trust add {plugin}-publisher {}",
            key.to_base64()
        ),
        None => format!(
            "the pack carries no public key: get the publisher's (key id {key_id}) and trust it with:\n  osprey trust add {plugin}-publisher PUBLISHER_KEY.pub"
        ),
    }
}
