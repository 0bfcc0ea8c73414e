//! The master key and the encryption of secrets at rest. Only this module sees key material.
//!
//! Secrets are sealed with XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): a random
//! 24-byte nonce per value, and the plugin and secret names as associated data, so a sealed
//! value copied to another plugin's row does not open. The 32-byte master key comes from
//! `OSPREY_MASTER_KEY` (base64) or from a key file created with mode 0600 on first start.
//! A sealed known value (the key check) lets the server refuse to start with the wrong key
//! instead of failing later on each secret; its version also records what the database was
//! upgraded to (v2: the audit chain is keyed, see [`KeyCheck`]).
//!
//! Keys derived from or kept by the vault: the [`AuditChainKey`] (HKDF-SHA256 of the master
//! key, never stored), the [`LinkKey`] and the [`CheckpointKey`] (random, kept sealed as
//! server secrets). None of them prints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

/// The owner name under which the server's own secrets are kept (the SMTP password, the
/// link-signing key): `osprey secret set osprey NAME`. No plugin may be installed under it, so
/// no grant can reach them.
pub const SERVER_SECRET_OWNER: &str = "osprey";

/// The name of the environment variable that can carry the master key.
pub const MASTER_KEY_ENV: &str = "OSPREY_MASTER_KEY";

#[derive(Debug, Error)]
pub enum VaultError {
    #[error(
        "{MASTER_KEY_ENV} must be 32 bytes encoded in base64 (for example from `openssl rand -base64 32`)"
    )]
    BadEnvKey,
    #[error(
        "master key file {path} is not 32 bytes of base64; restore the right file or point master_key_file elsewhere"
    )]
    BadKeyFile { path: PathBuf },
    #[error("master key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("cannot read or create the master key file {path}: {source}")]
    KeyFileIo { path: PathBuf, source: std::io::Error },
    #[error(
        "secret '{name}' of plugin '{plugin}' cannot be decrypted: it was sealed with another master key, or the stored value was altered"
    )]
    Open { plugin: String, name: String },
    #[error("cannot make the {what}: {reason}")]
    Generate { what: &'static str, reason: String },
}

/// Where the master key came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    Created(PathBuf),
}

/// An encrypted value and its nonce, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Seals and opens secrets with the master key.
pub struct Vault {
    cipher: XChaCha20Poly1305,
    audit_key: AuditChainKey,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault([key redacted])")
    }
}

/// The key check before the audit chain was keyed.
const KEY_CHECK_V1: &str = "osprey master key check v1";
/// The key check once the audit chain is keyed with the [`AuditChainKey`].
const KEY_CHECK_V2: &str = "osprey master key check v2";
const KEY_CHECK_PREFIX: &str = "osprey master key check ";

/// What a stored key check says, once it opened with this master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// Written before the audit chain was keyed: the log is still chained with plain
    /// SHA-256 and has to be rechained with the [`AuditChainKey`] once.
    UnkeyedAuditChain,
    /// The audit chain is keyed (the current version).
    KeyedAuditChain,
    /// Written by a newer Osprey (the version it names), which this one cannot serve.
    Newer(String),
}

impl Vault {
    /// Open the vault with the key from `env_key` if given, else from `key_file`, creating
    /// that file (mode 0600) with a fresh random key if it does not exist.
    pub fn open(env_key: Option<&str>, key_file: &Path) -> Result<(Vault, KeySource), VaultError> {
        if let Some(text) = env_key {
            let key = decode_key(text).ok_or(VaultError::BadEnvKey)?;
            return Ok((Vault::from_key(&key), KeySource::Environment));
        }
        let io = |source| VaultError::KeyFileIo {
            path: key_file.to_owned(),
            source,
        };
        match std::fs::read_to_string(key_file) {
            Ok(text) => {
                check_private(key_file)?;
                let text = Zeroizing::new(text);
                let key = decode_key(&text).ok_or_else(|| VaultError::BadKeyFile {
                    path: key_file.to_owned(),
                })?;
                Ok((Vault::from_key(&key), KeySource::File(key_file.to_owned())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let encoded = Zeroizing::new(B64.encode(key.as_slice()));
                if let Some(dir) = key_file.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_private(key_file, format!("{}\n", encoded.as_str()).as_bytes()).map_err(io)?;
                let key: Zeroizing<[u8; 32]> = Zeroizing::new(key.into());
                Ok((Vault::from_key(&key), KeySource::Created(key_file.to_owned())))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A vault with this exact key (tests and benchmarks).
    pub fn from_key(key: &[u8; 32]) -> Vault {
        Vault {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key)),
            audit_key: AuditChainKey::derive(key),
        }
    }

    /// The key of the audit log's chain, derived from the master key.
    pub fn audit_chain_key(&self) -> AuditChainKey {
        self.audit_key.clone()
    }

    /// Encrypt `value` for `plugin`/`name`.
    pub fn seal(&self, plugin: &str, name: &str, value: &SecretString) -> Sealed {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(plugin, name);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory data");
        Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypt a value sealed for `plugin`/`name`.
    pub fn open_sealed(&self, plugin: &str, name: &str, sealed: &Sealed) -> Result<SecretString, VaultError> {
        let err = || VaultError::Open {
            plugin: plugin.to_owned(),
            name: name.to_owned(),
        };
        if sealed.nonce.len() != 24 {
            return Err(err());
        }
        let aad = associated_data(plugin, name);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| err())?;
        let plain = Zeroizing::new(plain);
        let text = std::str::from_utf8(&plain).map_err(|_| err())?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// A sealed known value that proves, later, that the same key is in use (the current
    /// version, [`KeyCheck::KeyedAuditChain`]).
    pub fn key_check(&self) -> Sealed {
        self.seal("", "key-check", &SecretString::from(KEY_CHECK_V2.to_owned()))
    }

    /// What `check` says if it was sealed with this key; `None` if it was not (another
    /// master key, or an altered value).
    pub fn read_key_check(&self, check: &Sealed) -> Option<KeyCheck> {
        let text = self.open_sealed("", "key-check", check).ok()?;
        match text.expose_secret() {
            KEY_CHECK_V1 => Some(KeyCheck::UnkeyedAuditChain),
            KEY_CHECK_V2 => Some(KeyCheck::KeyedAuditChain),
            other => other
                .strip_prefix(KEY_CHECK_PREFIX)
                .map(|version| KeyCheck::Newer(version.to_owned())),
        }
    }

    /// The key check of before the audit chain was keyed (tests of the upgrade).
    #[doc(hidden)]
    pub fn legacy_key_check(&self) -> Sealed {
        self.seal("", "key-check", &SecretString::from(KEY_CHECK_V1.to_owned()))
    }
}

/// The HKDF info string of the audit chain key: changing it changes every MAC.
pub const AUDIT_CHAIN_KEY_INFO: &str = "osprey audit chain v1";

/// The key of the audit log's chain: HMAC-SHA256 with a key derived from the master key by
/// HKDF-SHA256 (no salt, info [`AUDIT_CHAIN_KEY_INFO`]). It is never stored, so whoever can
/// write the database but lacks the master key cannot compute a valid entry. Cheap to clone;
/// never prints.
#[derive(Clone)]
pub struct AuditChainKey {
    key: std::sync::Arc<Zeroizing<[u8; 32]>>,
}

impl std::fmt::Debug for AuditChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditChainKey([redacted])")
    }
}

impl AuditChainKey {
    fn derive(master: &[u8; 32]) -> AuditChainKey {
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, master)
            .expand(AUDIT_CHAIN_KEY_INFO.as_bytes(), key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        AuditChainKey {
            key: std::sync::Arc::new(key),
        }
    }

    fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        use hmac::KeyInit as _;
        hmac::Hmac::<sha2::Sha256>::new_from_slice(self.key.as_slice()).expect("HMAC takes any key length")
    }

    /// The HMAC-SHA256 tag of `message`, in hex.
    pub fn tag(&self, message: &[u8]) -> String {
        use hmac::Mac as _;
        let mut mac = self.mac();
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `tag_hex` is the tag of `message` (compared in constant time).
    pub fn verify(&self, message: &[u8], tag_hex: &str) -> bool {
        use hmac::Mac as _;
        let Ok(tag) = hex::decode(tag_hex) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(&tag).is_ok()
    }
}

/// The name of the audit checkpoint signing key among the server's own secrets.
pub const CHECKPOINT_KEY_SECRET: &str = "checkpoint-key";

/// The ed25519 key that signs audit checkpoints, in minisign's format (so the standard
/// `minisign` tool verifies them with the public key). Generated once, kept sealed in the
/// secret store as `osprey/checkpoint-key`; the secret half never leaves this type.
pub struct CheckpointKey {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey([redacted])")
    }
}

impl CheckpointKey {
    fn broken() -> VaultError {
        VaultError::Open {
            plugin: crate::vault::SERVER_SECRET_OWNER.to_owned(),
            name: CHECKPOINT_KEY_SECRET.to_owned(),
        }
    }

    /// A fresh key pair, and its secret key sealed for the secret store.
    pub fn generate(vault: &Vault) -> Result<(CheckpointKey, Sealed), VaultError> {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().map_err(|e| VaultError::Generate {
            what: "audit checkpoint key",
            reason: e.to_string(),
        })?;
        let boxed =
            pair.sk
                .to_box(Some("osprey audit checkpoint key"))
                .map_err(|e| VaultError::Generate {
                    what: "audit checkpoint key",
                    reason: e.to_string(),
                })?;
        let text = Zeroizing::new(boxed.into_string());
        let sealed = vault.seal(
            crate::vault::SERVER_SECRET_OWNER,
            CHECKPOINT_KEY_SECRET,
            &SecretString::from(text.to_string()),
        );
        Ok((
            CheckpointKey {
                secret: pair.sk,
                public: pair.pk,
            },
            sealed,
        ))
    }

    /// The key sealed in the secret store.
    pub fn open(vault: &Vault, sealed: &Sealed) -> Result<CheckpointKey, VaultError> {
        let text = vault.open_sealed(crate::vault::SERVER_SECRET_OWNER, CHECKPOINT_KEY_SECRET, sealed)?;
        let boxed = minisign::SecretKeyBox::from_string(text.expose_secret()).map_err(|_| Self::broken())?;
        let secret = minisign::SecretKey::from_unencrypted_box(boxed).map_err(|_| Self::broken())?;
        let public = minisign::PublicKey::from_secret_key(&secret).map_err(|_| Self::broken())?;
        Ok(CheckpointKey { secret, public })
    }

    /// The public key, which verifies this key's signatures.
    pub fn public_key(&self) -> &minisign::PublicKey {
        &self.public
    }

    /// A minisign signature of `message` (the text of a `.minisig` file), with
    /// `trusted_comment` signed along.
    pub fn sign(&self, message: &[u8], trusted_comment: &str) -> Result<String, VaultError> {
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            std::io::Cursor::new(message),
            Some(trusted_comment),
            Some("signature of an Osprey audit checkpoint"),
        )
        .map_err(|e| VaultError::Generate {
            what: "audit checkpoint signature",
            reason: e.to_string(),
        })?;
        Ok(signature.into_string())
    }
}

/// The name of the link-signing key among the server's own secrets.
pub const LINK_KEY_SECRET: &str = "link-key";

/// The key that signs answer and escalation links (HMAC-SHA256). It is generated once, kept
/// sealed in the secret store as `osprey/link-key`, and never leaves this type.
pub struct LinkKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey([redacted])")
    }
}

impl LinkKey {
    /// A fresh random key, and the same key sealed for the secret store.
    pub fn generate(vault: &Vault) -> (LinkKey, Sealed) {
        let mut key = Zeroizing::new([0u8; 32]);
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, key.as_mut());
        let encoded = Zeroizing::new(B64.encode(key.as_ref()));
        let sealed = vault.seal(
            crate::vault::SERVER_SECRET_OWNER,
            LINK_KEY_SECRET,
            &SecretString::from(encoded.to_string()),
        );
        (LinkKey { key }, sealed)
    }

    /// The key sealed in the secret store.
    pub fn open(vault: &Vault, sealed: &Sealed) -> Result<LinkKey, VaultError> {
        let text = vault.open_sealed(crate::vault::SERVER_SECRET_OWNER, LINK_KEY_SECRET, sealed)?;
        let key = decode_key(text.expose_secret()).ok_or_else(|| VaultError::Open {
            plugin: crate::vault::SERVER_SECRET_OWNER.to_owned(),
            name: LINK_KEY_SECRET.to_owned(),
        })?;
        Ok(LinkKey { key })
    }

    /// A key with these bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> LinkKey {
        LinkKey {
            key: Zeroizing::new(key),
        }
    }

    fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        use hmac::KeyInit as _;
        hmac::Hmac::<sha2::Sha256>::new_from_slice(self.key.as_ref()).expect("HMAC takes any key length")
    }

    /// The HMAC-SHA256 tag of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac = self.mac();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    }

    /// Whether `tag` is the tag of `message` (compared in constant time).
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        use hmac::Mac as _;
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }
}

fn associated_data(plugin: &str, name: &str) -> Vec<u8> {
    format!("osprey-secret-v1\0{plugin}\0{name}").into_bytes()
}

fn decode_key(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let bytes = Zeroizing::new(B64.decode(text.trim()).ok()?);
    let mut key = Zeroizing::new([0u8; 32]);
    if bytes.len() != 32 {
        return None;
    }
    key.copy_from_slice(&bytes);
    Some(key)
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), VaultError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| VaultError::KeyFileIo {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(VaultError::KeyFileTooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), VaultError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[test]
    fn seal_and_open_round_trip_and_bind_to_the_names() {
        let v = Vault::from_key(&[7; 32]);
        let sealed = v.seal("ipinfo", "token", &s("abc123"));
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"abc123"));
        assert_eq!(
            v.open_sealed("ipinfo", "token", &sealed).unwrap().expose_secret(),
            "abc123"
        );
        // Moved to another plugin or name: refused.
        assert!(v.open_sealed("other", "token", &sealed).is_err());
        assert!(v.open_sealed("ipinfo", "other", &sealed).is_err());
        // Another key: refused.
        assert!(
            Vault::from_key(&[8; 32])
                .open_sealed("ipinfo", "token", &sealed)
                .is_err()
        );
        // Same value twice: different nonces and ciphertexts.
        assert_ne!(v.seal("ipinfo", "token", &s("abc123")), sealed);
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let (v1, src) = Vault::open(None, &path).unwrap();
        assert_eq!(src, KeySource::Created(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (v2, src) = Vault::open(None, &path).unwrap();
        assert_eq!(src, KeySource::File(path.clone()));
        assert_eq!(
            v2.read_key_check(&v1.key_check()),
            Some(KeyCheck::KeyedAuditChain)
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        Vault::open(None, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Vault::open(None, &path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn env_key_must_be_32_bytes_of_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unused.key");
        assert!(matches!(
            Vault::open(Some("short"), &path),
            Err(VaultError::BadEnvKey)
        ));
        let good = B64.encode([1u8; 32]);
        let (v, src) = Vault::open(Some(&good), &path).unwrap();
        assert_eq!(src, KeySource::Environment);
        assert!(!path.exists());
        assert!(v.read_key_check(&Vault::from_key(&[1; 32]).key_check()).is_some());
        assert_eq!(v.read_key_check(&Vault::from_key(&[2; 32]).key_check()), None);
    }

    #[test]
    fn debug_output_never_shows_values() {
        let v = Vault::from_key(&[7; 32]);
        assert_eq!(format!("{v:?}"), "Vault([key redacted])");
        let secret = s("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn the_key_check_says_whether_the_audit_chain_is_keyed() {
        let v = Vault::from_key(&[7; 32]);
        assert_eq!(v.read_key_check(&v.key_check()), Some(KeyCheck::KeyedAuditChain));
        assert_eq!(
            v.read_key_check(&v.legacy_key_check()),
            Some(KeyCheck::UnkeyedAuditChain)
        );
        let newer = v.seal("", "key-check", &s("osprey master key check v9"));
        assert_eq!(v.read_key_check(&newer), Some(KeyCheck::Newer("v9".into())));
        let junk = v.seal("", "key-check", &s("something else"));
        assert_eq!(v.read_key_check(&junk), None);
    }

    #[test]
    fn the_audit_chain_key_is_derived_from_the_master_key_and_never_printed() {
        let a = Vault::from_key(&[7; 32]).audit_chain_key();
        let again = Vault::from_key(&[7; 32]).audit_chain_key();
        let other = Vault::from_key(&[8; 32]).audit_chain_key();
        let tag = a.tag(b"entry");
        assert_eq!(again.tag(b"entry"), tag);
        assert!(a.verify(b"entry", &tag));
        assert!(!other.verify(b"entry", &tag));
        assert!(!a.verify(b"other entry", &tag));
        assert!(!a.verify(b"entry", "not hex"));
        // HKDF-SHA256(master, info), then HMAC-SHA256: the documented formula.
        let mut k = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &[7; 32])
            .expand(AUDIT_CHAIN_KEY_INFO.as_bytes(), &mut k)
            .unwrap();
        assert_eq!(LinkKey::from_bytes(k).sign(b"entry"), hex::decode(&tag).unwrap());
        assert_eq!(format!("{a:?}"), "AuditChainKey([redacted])");
    }

    #[test]
    fn the_checkpoint_key_is_sealed_and_its_signatures_verify_as_minisign() {
        let v = Vault::from_key(&[7; 32]);
        let (key, sealed) = CheckpointKey::generate(&v).unwrap();
        assert_eq!(format!("{key:?}"), "CheckpointKey([redacted])");
        let reopened = CheckpointKey::open(&v, &sealed).unwrap();
        assert_eq!(reopened.public_key().to_base64(), key.public_key().to_base64());
        assert!(CheckpointKey::open(&Vault::from_key(&[8; 32]), &sealed).is_err());
        let sig = reopened.sign(b"statement", "comment").unwrap();
        let sig = minisign::SignatureBox::from_string(&sig).unwrap();
        assert_eq!(sig.trusted_comment().unwrap(), "comment");
        minisign::verify(
            key.public_key(),
            &sig,
            std::io::Cursor::new(b"statement"),
            true,
            false,
            false,
        )
        .unwrap();
        assert!(
            minisign::verify(
                key.public_key(),
                &sig,
                std::io::Cursor::new(b"statemenT"),
                true,
                false,
                false
            )
            .is_err()
        );
    }
}
