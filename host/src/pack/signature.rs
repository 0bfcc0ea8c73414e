//! Signatures of packs: ed25519 in minisign's format, through the `minisign` crate, so a
//! publisher signs with the `minisign` tool they already have (`minisign -Sm osprey-pack.json`)
//! and anyone checks an Osprey signature with `minisign -V`.

use std::fmt;
use std::io::Cursor;

/// A minisign key id: 8 bytes, shown as minisign shows them (16 upper-case hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn from_slice(bytes: &[u8]) -> KeyId {
        let mut id = [0; 8];
        id.copy_from_slice(&bytes[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// Why a key or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("not a minisign public key (the RW... line of a .pub file, or the file): {0}")]
    BadPublicKey(String),
    #[error("not a minisign secret key: {0}")]
    BadSecretKey(String),
    #[error("the secret key is encrypted: give its password")]
    NeedsPassword,
    #[error("the secret key could not be opened: {0}")]
    Decrypt(String),
    #[error("not a minisign signature: {0}")]
    BadSignature(String),
    #[error(
        "the signature is not valid for key id {key_id}: {reason}; the pack was changed after it was signed, or signed with another key"
    )]
    Invalid { key_id: KeyId, reason: String },
    #[error("the pack carries the public key {carried} but was signed by key id {signed}")]
    KeyMismatch { carried: KeyId, signed: KeyId },
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A publisher's public key.
#[derive(Debug, Clone)]
pub struct PublicKey(minisign::PublicKey);

impl PublicKey {
    /// A public key as a minisign `.pub` file holds it (comment line and key), or just its
    /// base64 line.
    pub fn parse(text: &str) -> Result<PublicKey, SignatureError> {
        let bad = |e: minisign::PError| SignatureError::BadPublicKey(e.to_string());
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| SignatureError::BadPublicKey("the text is empty".into()))?;
        minisign::PublicKey::from_base64(line).map(PublicKey).map_err(bad)
    }

    pub fn key_id(&self) -> KeyId {
        KeyId::from_slice(self.0.keynum())
    }

    /// The base64 line (`RW...`), as `osprey trust add` takes it.
    pub fn to_base64(&self) -> String {
        self.0.to_base64()
    }

    /// The text of a `.pub` file, as `minisign -G` writes it.
    pub fn to_file_text(&self) -> String {
        format!(
            "untrusted comment: minisign public key {}\n{}\n",
            self.key_id(),
            self.to_base64()
        )
    }
}

/// A publisher's secret key, opened.
pub struct SecretKey(minisign::SecretKey);

impl SecretKey {
    /// The key in a secret key file's text, as stored (still encrypted if it is).
    fn decode(text: &str) -> Result<minisign::SecretKey, SignatureError> {
        use base64::Engine as _;
        let line = text
            .lines()
            .nth(1)
            .ok_or_else(|| SignatureError::BadSecretKey("it has no key line".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line.trim())
            .map_err(|e| SignatureError::BadSecretKey(e.to_string()))?;
        minisign::SecretKey::from_bytes(&bytes).map_err(|e| SignatureError::BadSecretKey(e.to_string()))
    }

    /// Whether the secret key file `text` is encrypted (so [`SecretKey::open`] needs its
    /// password), as `minisign -G` makes them; `minisign -G -W` makes unencrypted ones.
    pub fn is_encrypted(text: &str) -> Result<bool, SignatureError> {
        Ok(Self::decode(text)?.is_encrypted())
    }

    /// Open a secret key file's text, with its password if it is encrypted.
    pub fn open(text: &str, password: Option<String>) -> Result<SecretKey, SignatureError> {
        let key = Self::decode(text)?;
        if !key.is_encrypted() {
            // Read as bytes rather than with `from_unencrypted_box`: minisign 0.11 (Debian
            // 12's) writes `-W` keys with an all-zero checksum, which the crate calls corrupt.
            // A signature made and checked with the key's own public half proves it whole.
            let key = SecretKey(key);
            let public = key.public_key()?;
            minisign::sign(Some(&public.0), &key.0, Cursor::new(b"probe"), None, None)
                .map_err(|e| SignatureError::BadSecretKey(format!("the key is damaged: {e}")))?;
            return Ok(key);
        }
        let boxed = minisign::SecretKeyBox::from_string(text)
            .map_err(|e| SignatureError::BadSecretKey(e.to_string()))?;
        let password = password.ok_or(SignatureError::NeedsPassword)?;
        minisign::SecretKey::from_box(boxed, Some(password))
            .map(SecretKey)
            .map_err(|e| SignatureError::Decrypt(e.to_string()))
    }

    pub fn public_key(&self) -> Result<PublicKey, SignatureError> {
        minisign::PublicKey::from_secret_key(&self.0)
            .map(PublicKey)
            .map_err(|e| SignatureError::BadSecretKey(e.to_string()))
    }
}

/// A signature, as a minisign `.minisig` file holds it.
#[derive(Clone)]
pub struct Signature {
    text: String,
    parsed: minisign::SignatureBox,
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl Signature {
    pub fn parse(text: &str) -> Result<Signature, SignatureError> {
        let parsed = minisign::SignatureBox::from_string(text)
            .map_err(|e| SignatureError::BadSignature(e.to_string()))?;
        Ok(Signature {
            text: text.to_owned(),
            parsed,
        })
    }

    /// The id of the key that made it.
    pub fn key_id(&self) -> KeyId {
        KeyId::from_slice(self.parsed.keynum())
    }

    /// The text of the `.minisig` file.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The comment the signer signed with the message (minisign shows it on `-V`).
    pub fn trusted_comment(&self) -> Option<String> {
        self.parsed.trusted_comment().ok()
    }
}

/// Sign `message` with `key`; `trusted_comment` is signed with it.
pub fn sign(message: &[u8], key: &SecretKey, trusted_comment: &str) -> Result<Signature, SignatureError> {
    let public = key.public_key()?;
    let signed = minisign::sign(
        Some(&public.0),
        &key.0,
        Cursor::new(message),
        Some(trusted_comment),
        Some("signature of an Osprey plugin pack's osprey-pack.json"),
    )
    .map_err(|e| SignatureError::Sign(e.to_string()))?;
    Signature::parse(&signed.into_string())
}

/// Check that `signature` is `key`'s signature of `message` (and of its trusted comment).
/// Only prehashed signatures (minisign's default since 0.8) are accepted.
pub fn verify(message: &[u8], signature: &Signature, key: &PublicKey) -> Result<(), SignatureError> {
    minisign::verify(
        &key.0,
        &signature.parsed,
        Cursor::new(message),
        true,
        false,
        false,
    )
    .map_err(|e| SignatureError::Invalid {
        key_id: signature.key_id(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh unencrypted secret key file's text, as `minisign -G -W` writes it.
    pub(crate) fn secret_key_text() -> String {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        pair.sk.to_box(None).unwrap().into_string()
    }

    #[test]
    fn a_signature_verifies_with_its_key_and_no_other() {
        let key = SecretKey::open(&secret_key_text(), None).unwrap();
        let public = key.public_key().unwrap();
        let sig = sign(b"manifest", &key, "osprey-pack echo 0.1.0").unwrap();
        assert_eq!(sig.key_id(), public.key_id());
        assert_eq!(sig.trusted_comment().as_deref(), Some("osprey-pack echo 0.1.0"));
        verify(b"manifest", &sig, &public).unwrap();
        // Read back from its text, as it travels in a pack.
        verify(b"manifest", &Signature::parse(sig.text()).unwrap(), &public).unwrap();

        let e = verify(b"manifesT", &sig, &public).unwrap_err();
        assert!(matches!(e, SignatureError::Invalid { .. }), "{e}");
        let other = SecretKey::open(&secret_key_text(), None)
            .unwrap()
            .public_key()
            .unwrap();
        let e = verify(b"manifest", &sig, &other).unwrap_err();
        assert!(e.to_string().contains(&sig.key_id().to_string()), "{e}");
    }

    #[test]
    fn public_keys_parse_from_a_pub_file_or_its_line() {
        let public = SecretKey::open(&secret_key_text(), None)
            .unwrap()
            .public_key()
            .unwrap();
        let file = public.to_file_text();
        assert_eq!(PublicKey::parse(&file).unwrap().key_id(), public.key_id());
        assert_eq!(
            PublicKey::parse(&public.to_base64()).unwrap().key_id(),
            public.key_id()
        );
        assert!(file.starts_with(&format!(
            "untrusted comment: minisign public key {}",
            public.key_id()
        )));
        assert_eq!(public.key_id().to_string().len(), 16);
        assert!(PublicKey::parse("RWnotakey").is_err());
        assert!(PublicKey::parse("").is_err());
    }

    #[test]
    fn an_unencrypted_key_with_a_zero_checksum_opens_and_a_damaged_one_does_not() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = secret_key_text();
        let mut bytes = b64.decode(text.lines().nth(1).unwrap()).unwrap();
        let len = bytes.len();
        // As minisign 0.11 writes `-W` keys: the checksum (the last 32 bytes) all zero.
        bytes[len - 32..].fill(0);
        let zeroed = format!("untrusted comment: k\n{}\n", b64.encode(&bytes));
        let key = SecretKey::open(&zeroed, None).unwrap();
        let sig = sign(b"m", &key, "t").unwrap();
        verify(b"m", &sig, &key.public_key().unwrap()).unwrap();
        // A changed byte of the secret half: the probe signature fails.
        bytes[54 + 8 + 3] ^= 1;
        let damaged = format!("untrusted comment: k\n{}\n", b64.encode(&bytes));
        assert!(matches!(
            SecretKey::open(&damaged, None),
            Err(SignatureError::BadSecretKey(_))
        ));
    }

    #[test]
    fn an_encrypted_secret_key_needs_its_password() {
        let pair = minisign::KeyPair::generate_encrypted_keypair(Some("hunter2".into())).unwrap();
        let text = pair.sk.to_box(None).unwrap().into_string();
        assert!(SecretKey::is_encrypted(&text).unwrap());
        assert!(!SecretKey::is_encrypted(&secret_key_text()).unwrap());
        assert!(matches!(
            SecretKey::open(&text, None),
            Err(SignatureError::NeedsPassword)
        ));
        assert!(matches!(
            SecretKey::open(&text, Some("wrong".into())),
            Err(SignatureError::Decrypt(_))
        ));
        let key = SecretKey::open(&text, Some("hunter2".into())).unwrap();
        assert_eq!(
            key.public_key().unwrap().key_id(),
            KeyId::from_slice(pair.pk.keynum())
        );
    }
}
