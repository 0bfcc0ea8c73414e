//! The file layout of a plugin pack: one uncompressed ustar archive of flat file names.
//!
//! ```text
//! osprey-pack.json          the pack manifest: format, name, version, and the size and
//!                           sha256 of every other file (the signature covers these bytes)
//! osprey-pack.json.minisig  optional: a minisign signature of osprey-pack.json's exact bytes
//! osprey-pack.pub           optional: the signer's minisign public key (for the message
//!                           that says how to trust it; trust never comes from the pack)
//! plugin.toml               the plugin's manifest
//! <component>.wasm          the component plugin.toml names
//! README.md                 optional
//! ```
//!
//! Reading refuses a hostile archive before allocating for it: every header is checked (a
//! regular file, a flat and plain name, no duplicate, its size within the limits) before its
//! bytes are read, and every listed file must be there with its size and hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// The pack manifest's file name.
pub const MANIFEST: &str = "osprey-pack.json";
/// The signature's file name (minisign's own name for a detached signature of the manifest).
pub const SIGNATURE: &str = "osprey-pack.json.minisig";
/// The signer's public key's file name.
pub const PUBLIC_KEY: &str = "osprey-pack.pub";
/// The one file every pack holds besides its manifest.
pub const PLUGIN_TOML: &str = "plugin.toml";
/// The format this version writes and reads.
pub const FORMAT: &str = "osprey-pack/1";

const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
const MAX_SIGNATURE_BYTES: u64 = 4 * 1024;
const MAX_PUBLIC_KEY_BYTES: u64 = 1024;
const MAX_NAME_BYTES: usize = 100;

/// How large a pack may be. A pack over any of them is refused before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the archive, the pack's own files included.
    pub max_entries: usize,
    /// One file (the component is the large one).
    pub max_file_bytes: u64,
    /// All files together.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 16,
            max_file_bytes: 64 * 1024 * 1024,
            max_total_bytes: 128 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The most bytes a pack file within these limits can take on disk (headers and padding
    /// included), so a caller can refuse a larger file before reading it.
    pub fn max_archive_bytes(&self) -> u64 {
        let entries = self.max_entries as u64;
        // A header and up to one block of padding per entry, and the two end blocks.
        self.max_total_bytes
            + MAX_MANIFEST_BYTES
            + MAX_SIGNATURE_BYTES
            + MAX_PUBLIC_KEY_BYTES
            + (entries * 2 + 2) * 512
    }
}

impl Limits {
    /// The largest the file named `path` may be in a pack: the pack's own files have their
    /// own small limits, every other file the file limit.
    pub fn entry_limit(&self, path: &str) -> u64 {
        match path {
            MANIFEST => MAX_MANIFEST_BYTES,
            SIGNATURE => MAX_SIGNATURE_BYTES,
            PUBLIC_KEY => MAX_PUBLIC_KEY_BYTES,
            _ => self.max_file_bytes,
        }
    }
}

/// The pack manifest (`osprey-pack.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The plugin's name and version, as its plugin.toml says.
    pub name: String,
    pub version: String,
    /// Every file of the pack but the pack's own, sorted by path.
    pub files: Vec<FileEntry>,
}

/// One file a pack manifest pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
}

/// Why a pack was refused. Each says what was wrong with which file.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot read the pack: {0}")]
    Io(#[from] std::io::Error),
    #[error("the pack has more than {max} entries")]
    TooManyEntries { max: usize },
    #[error("'{path}' in the pack is {size} bytes, over the limit of {max}")]
    EntryTooLarge { path: String, size: u64, max: u64 },
    #[error("the pack's files add up to more than {max} bytes")]
    TotalTooLarge { max: u64 },
    #[error("the pack has an entry named '{path}': {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error(
        "'{path}' in the pack is a {kind}, not a regular file (packs hold no links, folders or extended headers)"
    )]
    NotAFile { path: String, kind: String },
    #[error("'{path}' is in the pack twice")]
    Duplicate { path: String },
    #[error("'{path}' is cut short: {got} of {size} bytes")]
    Truncated { path: String, size: u64, got: u64 },
    #[error("the pack has no {MANIFEST}; is it a pack (made by `osprey pack build`)?")]
    NoManifest,
    #[error("{MANIFEST} is not a pack manifest: {0}")]
    BadManifest(String),
    #[error("'{path}' is in the pack but not listed in {MANIFEST}")]
    Unlisted { path: String },
    #[error("'{path}' is listed in {MANIFEST} but not in the pack")]
    Missing { path: String },
    #[error("'{path}' does not match {MANIFEST} ({what}): the pack was changed after it was built")]
    Tampered { path: String, what: &'static str },
    #[error("{path} is not UTF-8 text")]
    NotText { path: &'static str },
}

/// A pack, read and checked against its manifest, or built from files.
#[derive(Debug, Clone)]
pub struct Pack {
    manifest_bytes: Vec<u8>,
    manifest: PackManifest,
    signature: Option<String>,
    public_key: Option<String>,
    /// In the manifest's order.
    files: Vec<(String, Vec<u8>)>,
}

/// Whether `name` may name a file in a pack: one plain file name.
fn check_path(name: &[u8]) -> Result<&str, &'static str> {
    let text = std::str::from_utf8(name).map_err(|_| "not UTF-8")?;
    if text.is_empty() {
        return Err("an empty name");
    }
    if text.starts_with('/') {
        return Err("an absolute path");
    }
    if text.split(['/', '\\']).any(|part| part == "..") {
        return Err("a parent folder (..)");
    }
    if text.contains(['/', '\\']) {
        return Err("a path with folders (a pack holds plain file names only)");
    }
    if text.len() > MAX_NAME_BYTES {
        return Err("longer than 100 bytes");
    }
    if text.starts_with(['.', '-']) {
        return Err("a name starting with a dot or a dash");
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("characters other than ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(text)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_pack_file(path: &str) -> bool {
    matches!(path, MANIFEST | SIGNATURE | PUBLIC_KEY)
}

impl Pack {
    /// A pack of `files` (plugin.toml, the component, a README) for the plugin `name`
    /// `version`, unsigned. The same limits apply as when reading.
    pub fn build(
        name: &str,
        version: &str,
        files: Vec<(String, Vec<u8>)>,
        limits: &Limits,
    ) -> Result<Pack, FormatError> {
        let mut files = files;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if files.len() + 3 > limits.max_entries {
            return Err(FormatError::TooManyEntries {
                max: limits.max_entries,
            });
        }
        let mut total = 0u64;
        let mut entries = Vec::with_capacity(files.len());
        for (i, (path, bytes)) in files.iter().enumerate() {
            check_path(path.as_bytes()).map_err(|reason| FormatError::BadPath {
                path: path.clone(),
                reason,
            })?;
            if is_pack_file(path) {
                return Err(FormatError::BadPath {
                    path: path.clone(),
                    reason: "a name the pack keeps for itself",
                });
            }
            if i > 0 && files[i - 1].0 == *path {
                return Err(FormatError::Duplicate { path: path.clone() });
            }
            let size = bytes.len() as u64;
            if size > limits.max_file_bytes {
                return Err(FormatError::EntryTooLarge {
                    path: path.clone(),
                    size,
                    max: limits.max_file_bytes,
                });
            }
            total += size;
            if total > limits.max_total_bytes {
                return Err(FormatError::TotalTooLarge {
                    max: limits.max_total_bytes,
                });
            }
            entries.push(FileEntry {
                path: path.clone(),
                size,
                sha256: sha256_hex(bytes),
            });
        }
        let manifest = PackManifest {
            format: FORMAT.into(),
            name: name.into(),
            version: version.into(),
            files: entries,
        };
        check_manifest(&manifest)?;
        let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
        manifest_bytes.push(b'\n');
        Ok(Pack {
            manifest_bytes,
            manifest,
            signature: None,
            public_key: None,
            files,
        })
    }

    /// Read a pack, refusing it on the first entry that breaks a rule or a limit, and check
    /// every file against the manifest. The signature is only read here, not checked.
    pub fn read(reader: impl Read, limits: &Limits) -> Result<Pack, FormatError> {
        let mut archive = tar::Archive::new(reader);
        let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut count = 0usize;
        let mut total = 0u64;
        for entry in archive.entries()?.raw(true) {
            let mut entry = entry?;
            count += 1;
            if count > limits.max_entries {
                return Err(FormatError::TooManyEntries {
                    max: limits.max_entries,
                });
            }
            let header = entry.header();
            let raw_path = header.path_bytes();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            let kind = header.entry_type();
            if !kind.is_file() {
                return Err(FormatError::NotAFile {
                    path: shown,
                    kind: entry_kind(kind),
                });
            }
            let path = check_path(&raw_path)
                .map_err(|reason| FormatError::BadPath {
                    path: shown.clone(),
                    reason,
                })?
                .to_owned();
            if entries.contains_key(&path) {
                return Err(FormatError::Duplicate { path });
            }
            let size = header.size()?;
            let max = limits.entry_limit(&path);
            if size > max {
                return Err(FormatError::EntryTooLarge { path, size, max });
            }
            total += size;
            if total > limits.max_total_bytes {
                return Err(FormatError::TotalTooLarge {
                    max: limits.max_total_bytes,
                });
            }
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut entry).take(size).read_to_end(&mut bytes)?;
            if bytes.len() as u64 != size {
                return Err(FormatError::Truncated {
                    path,
                    size,
                    got: bytes.len() as u64,
                });
            }
            entries.insert(path, bytes);
        }
        Pack::from_entries(entries)
    }

    /// A pack from its files by name (its own files included), as read from an archive or
    /// pulled from a registry: the same checks of the manifest and of every file against it.
    /// The caller has held each file to [`Limits::entry_limit`] and the total to the limits.
    pub fn from_entries(mut entries: BTreeMap<String, Vec<u8>>) -> Result<Pack, FormatError> {
        for path in entries.keys() {
            check_path(path.as_bytes()).map_err(|reason| FormatError::BadPath {
                path: path.clone(),
                reason,
            })?;
        }
        let manifest_bytes = entries.remove(MANIFEST).ok_or(FormatError::NoManifest)?;
        let manifest: PackManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| FormatError::BadManifest(e.to_string()))?;
        check_manifest(&manifest)?;
        let text = |bytes: Vec<u8>, path: &'static str| {
            String::from_utf8(bytes).map_err(|_| FormatError::NotText { path })
        };
        let signature = entries
            .remove(SIGNATURE)
            .map(|b| text(b, SIGNATURE))
            .transpose()?;
        let public_key = entries
            .remove(PUBLIC_KEY)
            .map(|b| text(b, PUBLIC_KEY))
            .transpose()?;
        let mut files = Vec::with_capacity(manifest.files.len());
        for listed in &manifest.files {
            let bytes = entries.remove(&listed.path).ok_or_else(|| FormatError::Missing {
                path: listed.path.clone(),
            })?;
            let tampered = |what| FormatError::Tampered {
                path: listed.path.clone(),
                what,
            };
            if bytes.len() as u64 != listed.size {
                return Err(tampered("its size differs"));
            }
            if sha256_hex(&bytes) != listed.sha256 {
                return Err(tampered("its sha256 differs"));
            }
            files.push((listed.path.clone(), bytes));
        }
        if let Some(path) = entries.into_keys().next() {
            return Err(FormatError::Unlisted { path });
        }
        Ok(Pack {
            manifest_bytes,
            manifest,
            signature,
            public_key,
            files,
        })
    }

    /// The pack as one archive: the manifest first, then the signature and public key if
    /// any, then the files. The same pack always makes the same bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut append = |path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_ustar();
            header.set_path(path).expect("a checked name fits a ustar header");
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, bytes).expect("writing to memory");
        };
        append(MANIFEST, &self.manifest_bytes);
        if let Some(sig) = &self.signature {
            append(SIGNATURE, sig.as_bytes());
        }
        if let Some(key) = &self.public_key {
            append(PUBLIC_KEY, key.as_bytes());
        }
        for (path, bytes) in &self.files {
            append(path, bytes);
        }
        builder.into_inner().expect("writing to memory")
    }

    /// Write the pack to `w`.
    pub fn write(&self, mut w: impl Write) -> std::io::Result<()> {
        w.write_all(&self.to_bytes())
    }

    /// The exact bytes a signature covers.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    pub fn manifest(&self) -> &PackManifest {
        &self.manifest
    }

    /// `sha256:` and the hex of the manifest's bytes, which pin every file: the same for a
    /// pack before and after it is signed.
    pub fn digest(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.manifest_bytes))
    }

    /// The signature's text (a minisign signature file), if the pack is signed.
    pub fn signature(&self) -> Option<&str> {
        self.signature.as_deref()
    }

    /// The public key's text the signer put in the pack, if any.
    pub fn public_key(&self) -> Option<&str> {
        self.public_key.as_deref()
    }

    /// Put a signature (and the signer's public key) in the pack, replacing any.
    pub fn set_signature(
        &mut self,
        signature: String,
        public_key: Option<String>,
    ) -> Result<(), FormatError> {
        for (path, text) in [(SIGNATURE, Some(&signature)), (PUBLIC_KEY, public_key.as_ref())] {
            let size = text.map_or(0, |t| t.len() as u64);
            let max = Limits::default().entry_limit(path);
            if size > max {
                return Err(FormatError::EntryTooLarge {
                    path: path.into(),
                    size,
                    max,
                });
            }
        }
        self.signature = Some(signature);
        self.public_key = public_key;
        Ok(())
    }

    /// The files, in the manifest's order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }
}

fn entry_kind(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "symbolic link".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Directory => "folder".into(),
        tar::EntryType::GNULongName | tar::EntryType::GNULongLink => "GNU long name header".into(),
        tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => "PAX extended header".into(),
        other => format!("entry of type {:?}", other.as_byte() as char),
    }
}

/// The rules of a manifest beyond its shape: the format, plain unique file names sorted,
/// hashes in hex, and a plugin.toml.
fn check_manifest(m: &PackManifest) -> Result<(), FormatError> {
    let bad = |message: String| Err(FormatError::BadManifest(message));
    if m.format != FORMAT {
        return bad(format!(
            "format '{}' is not {FORMAT}; this Osprey reads {FORMAT} packs",
            m.format
        ));
    }
    if m.name.is_empty() || m.version.is_empty() {
        return bad("it names no plugin or version".into());
    }
    for (i, f) in m.files.iter().enumerate() {
        check_path(f.path.as_bytes()).map_err(|reason| FormatError::BadPath {
            path: f.path.clone(),
            reason,
        })?;
        if is_pack_file(&f.path) {
            return bad(format!("it lists '{}', a name the pack keeps for itself", f.path));
        }
        if i > 0 && m.files[i - 1].path >= f.path {
            return bad("its files are not sorted by path, or one is listed twice".into());
        }
        if f.sha256.len() != 64
            || !f
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return bad(format!(
                "the sha256 of '{}' is not 64 lower-case hex digits",
                f.path
            ));
        }
    }
    if !m.files.iter().any(|f| f.path == PLUGIN_TOML) {
        return bad(format!("it lists no {PLUGIN_TOML}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("plugin.toml".into(), b"name = \"echo\"\n".to_vec()),
            ("echo.wasm".into(), vec![0, 97, 115, 109, 1, 2, 3]),
            ("README.md".into(), b"# echo\n".to_vec()),
        ]
    }

    fn pack() -> Pack {
        Pack::build("echo", "0.1.0", files(), &Limits::default()).unwrap()
    }

    /// An archive written entry by entry, with headers as given (hostile ones included).
    fn archive(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            // Write the name bytes straight in, as a hostile tool would (set_path refuses `..`).
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(*kind);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(bytes);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn read(bytes: &[u8]) -> Result<Pack, FormatError> {
        Pack::read(bytes, &Limits::default())
    }

    #[test]
    fn a_pack_reads_back_as_built_and_its_bytes_are_reproducible() {
        let built = pack();
        let bytes = built.to_bytes();
        assert_eq!(bytes, pack().to_bytes(), "the same files make the same pack");
        let read = read(&bytes).unwrap();
        assert_eq!(read.manifest(), built.manifest());
        assert_eq!(read.manifest_bytes(), built.manifest_bytes());
        assert_eq!(read.digest(), built.digest());
        assert!(read.digest().starts_with("sha256:"));
        let names: Vec<&str> = read.files().map(|(p, _)| p).collect();
        assert_eq!(names, ["README.md", "echo.wasm", "plugin.toml"]);
        assert_eq!(read.signature(), None);
    }

    #[test]
    fn a_signature_travels_with_the_pack_and_leaves_the_digest_alone() {
        let mut p = pack();
        let digest = p.digest();
        p.set_signature("sig text".into(), Some("key text".into()))
            .unwrap();
        let read = read(&p.to_bytes()).unwrap();
        assert_eq!(read.signature(), Some("sig text"));
        assert_eq!(read.public_key(), Some("key text"));
        assert_eq!(read.digest(), digest);
    }

    /// The offset of `needle` in `haystack`.
    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).position(|w| w == needle).unwrap()
    }

    #[test]
    fn a_changed_byte_of_a_file_is_refused_as_tampered() {
        let mut bytes = pack().to_bytes();
        let at = find(&bytes, &[0, 97, 115, 109, 1, 2, 3]) + 5;
        bytes[at] ^= 1;
        let e = read(&bytes).unwrap_err();
        assert!(
            matches!(&e, FormatError::Tampered { path, .. } if path == "echo.wasm"),
            "{e}"
        );
        assert!(e.to_string().contains("changed after it was built"), "{e}");
    }

    #[test]
    fn a_changed_manifest_is_refused() {
        // A manifest that lists other bytes than the pack holds.
        let mut bytes = pack().to_bytes();
        let at = find(&bytes, b"\"sha256\": \"") + 11;
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        // The tar header's checksum does not cover the data, so the archive still reads.
        let e = read(&bytes).unwrap_err();
        assert!(matches!(e, FormatError::Tampered { .. }), "{e}");
        // A manifest that is no longer JSON.
        let mut bytes = pack().to_bytes();
        let at = find(&bytes, b"\"format\"");
        bytes[at] = b'x';
        assert!(matches!(read(&bytes).unwrap_err(), FormatError::BadManifest(_)));
    }

    #[test]
    fn hostile_paths_are_refused_by_name() {
        let r = tar::EntryType::Regular;
        for (path, reason) in [
            ("../evil", "a parent folder"),
            ("/etc/passwd", "an absolute path"),
            ("sub/file", "with folders"),
            (".hidden", "starting with a dot"),
            ("a b", "characters other"),
        ] {
            let e = read(&archive(&[(path, r, b"x")])).unwrap_err();
            assert!(matches!(&e, FormatError::BadPath { .. }), "{path}: {e}");
            assert!(e.to_string().contains(reason), "{path}: {e}");
        }
        for (kind, said) in [
            (tar::EntryType::Symlink, "symbolic link"),
            (tar::EntryType::Link, "hard link"),
            (tar::EntryType::Directory, "folder"),
            (tar::EntryType::GNULongName, "GNU long name"),
            (tar::EntryType::XHeader, "PAX"),
        ] {
            let e = read(&archive(&[("plugin.toml", kind, b"")])).unwrap_err();
            assert!(e.to_string().contains(said), "{e}");
        }
        let e = read(&archive(&[("plugin.toml", r, b"a"), ("plugin.toml", r, b"b")])).unwrap_err();
        assert!(matches!(e, FormatError::Duplicate { .. }), "{e}");
    }

    #[test]
    fn oversize_entries_and_packs_are_refused_before_their_bytes_are_read() {
        let limits = Limits {
            max_entries: 4,
            max_file_bytes: 10,
            max_total_bytes: 15,
        };
        let r = tar::EntryType::Regular;
        // A header that claims far more than the archive holds: refused on the header alone.
        let mut claims = archive(&[("big.wasm", r, b"")]);
        let mut header = tar::Header::from_byte_slice(&claims[..512]).clone();
        header.set_size(1 << 40);
        header.set_cksum();
        claims[..512].copy_from_slice(header.as_bytes());
        let e = Pack::read(claims.as_slice(), &limits).unwrap_err();
        assert!(
            matches!(
                e,
                FormatError::EntryTooLarge {
                    size: 1099511627776,
                    ..
                }
            ),
            "{e}"
        );

        let e = Pack::read(archive(&[("a", r, &[1; 11])]).as_slice(), &limits).unwrap_err();
        assert!(e.to_string().contains("over the limit of 10"), "{e}");
        let e = Pack::read(
            archive(&[("a", r, &[1; 8]), ("b", r, &[1; 8])]).as_slice(),
            &limits,
        )
        .unwrap_err();
        assert!(matches!(e, FormatError::TotalTooLarge { max: 15 }), "{e}");
        let many: Vec<(String, tar::EntryType, &[u8])> =
            (0..5).map(|i| (format!("f{i}"), r, &b""[..])).collect();
        let many: Vec<(&str, tar::EntryType, &[u8])> =
            many.iter().map(|(p, k, b)| (p.as_str(), *k, *b)).collect();
        let e = Pack::read(archive(&many).as_slice(), &limits).unwrap_err();
        assert!(matches!(e, FormatError::TooManyEntries { max: 4 }), "{e}");
        // A manifest larger than a manifest can be, whatever the file limit.
        let e = read(&archive(&[(MANIFEST, r, &vec![b' '; 70_000])])).unwrap_err();
        assert!(matches!(e, FormatError::EntryTooLarge { max: 65536, .. }), "{e}");
        // And building refuses what reading would.
        let e = Pack::build(
            "echo",
            "0.1.0",
            vec![("plugin.toml".into(), vec![0; 11])],
            &limits,
        )
        .unwrap_err();
        assert!(matches!(e, FormatError::EntryTooLarge { .. }), "{e}");
    }

    #[test]
    fn extra_missing_and_cut_short_files_are_refused() {
        let good = pack();
        let r = tar::EntryType::Regular;
        let files: Vec<(String, Vec<u8>)> = good.files().map(|(p, b)| (p.to_owned(), b.to_vec())).collect();
        let mut with_extra: Vec<(&str, tar::EntryType, &[u8])> = vec![(MANIFEST, r, good.manifest_bytes())];
        with_extra.extend(files.iter().map(|(p, b)| (p.as_str(), r, b.as_slice())));
        with_extra.push(("extra.sh", r, b"echo hi"));
        let e = read(&archive(&with_extra)).unwrap_err();
        assert!(
            matches!(&e, FormatError::Unlisted { path } if path == "extra.sh"),
            "{e}"
        );

        let without: Vec<_> = with_extra
            .iter()
            .filter(|(p, ..)| *p != "README.md" && *p != "extra.sh")
            .cloned()
            .collect();
        let e = read(&archive(&without)).unwrap_err();
        assert!(
            matches!(&e, FormatError::Missing { path } if path == "README.md"),
            "{e}"
        );

        let bytes = good.to_bytes();
        let e = read(&bytes[..bytes.len() - 1536]).unwrap_err();
        assert!(
            matches!(e, FormatError::Truncated { .. } | FormatError::Io(_)),
            "{e}"
        );
        assert!(matches!(read(b"").unwrap_err(), FormatError::NoManifest));
    }

    #[test]
    fn a_manifest_must_list_plugin_toml_and_plain_sorted_names() {
        let e = Pack::build(
            "echo",
            "0.1.0",
            vec![("echo.wasm".into(), vec![1])],
            &Limits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no plugin.toml"), "{e}");
        let e = Pack::build(
            "echo",
            "0.1.0",
            vec![("plugin.toml".into(), vec![]), (SIGNATURE.into(), vec![])],
            &Limits::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("keeps for itself"), "{e}");
    }
}
