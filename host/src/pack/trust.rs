//! Who signed a pack, judged against the publisher keys an operator trusts. Pure: the keys
//! come from the caller (the store keeps them; `osprey trust`).

use super::format::Pack;
use super::signature::{self, KeyId, PublicKey, Signature, SignatureError};

/// A publisher key the operator accepts, by the name they gave it.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
}

/// Who signed a pack whose signature, if it has one, is valid.
#[derive(Debug, Clone)]
pub enum Signer {
    /// No signature.
    Unsigned,
    /// Signed by a trusted key, and the signature verifies with it.
    Trusted { name: String, key_id: KeyId },
    /// Signed by a key not trusted here. With the public key the pack carries, the signature
    /// was checked against it (so the pack is intact, whoever signed it); without one it
    /// could not be checked at all.
    Untrusted {
        key_id: KeyId,
        carried: Option<PublicKey>,
    },
}

impl Signer {
    /// As the audit log records it: `unsigned`, or the key id with the trusted name.
    pub fn to_audit(&self) -> serde_json::Value {
        match self {
            Signer::Unsigned => "unsigned".into(),
            Signer::Trusted { name, key_id } => {
                serde_json::json!({ "key_id": key_id.to_string(), "trusted_as": name })
            }
            Signer::Untrusted { key_id, .. } => {
                serde_json::json!({ "key_id": key_id.to_string(), "trusted_as": null })
            }
        }
    }
}

/// Check a pack's signature: with the trusted key of the same id if there is one, else with
/// the key the pack carries. An invalid signature is an error whichever key checks it.
pub fn check(pack: &Pack, trusted: &[TrustedKey]) -> Result<Signer, SignatureError> {
    let Some(text) = pack.signature() else {
        return Ok(Signer::Unsigned);
    };
    let signature = Signature::parse(text)?;
    let key_id = signature.key_id();
    let carried = pack.public_key().map(PublicKey::parse).transpose()?;
    if let Some(carried) = &carried
        && carried.key_id() != key_id
    {
        return Err(SignatureError::KeyMismatch {
            carried: carried.key_id(),
            signed: key_id,
        });
    }
    if let Some(t) = trusted.iter().find(|t| t.key.key_id() == key_id) {
        signature::verify(pack.manifest_bytes(), &signature, &t.key)?;
        return Ok(Signer::Trusted {
            name: t.name.clone(),
            key_id,
        });
    }
    if let Some(carried) = &carried {
        signature::verify(pack.manifest_bytes(), &signature, carried)?;
    }
    Ok(Signer::Untrusted { key_id, carried })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::format::Limits;
    use crate::pack::signature::{SecretKey, sign, tests::secret_key_text};

    fn pack() -> Pack {
        Pack::build(
            "echo",
            "0.1.0",
            vec![("plugin.toml".into(), b"name = \"echo\"".to_vec())],
            &Limits::default(),
        )
        .unwrap()
    }

    fn signed(key: &SecretKey, carry: bool) -> Pack {
        let mut p = pack();
        let sig = sign(p.manifest_bytes(), key, "t").unwrap();
        let public = carry.then(|| key.public_key().unwrap().to_file_text());
        p.set_signature(sig.text().to_owned(), public).unwrap();
        // As installed: read back from its bytes.
        Pack::read(p.to_bytes().as_slice(), &Limits::default()).unwrap()
    }

    #[test]
    fn trusted_untrusted_and_unsigned() {
        let key = SecretKey::open(&secret_key_text(), None).unwrap();
        let public = key.public_key().unwrap();
        let trusted = [TrustedKey {
            name: "acme".into(),
            key: public.clone(),
        }];
        assert!(matches!(check(&pack(), &trusted).unwrap(), Signer::Unsigned));
        assert_eq!(Signer::Unsigned.to_audit(), "unsigned");
        let signer = check(&signed(&key, false), &trusted).unwrap();
        assert!(
            matches!(&signer, Signer::Trusted { name, key_id } if name == "acme" && *key_id == public.key_id())
        );
        assert_eq!(signer.to_audit()["trusted_as"], "acme");
        match check(&signed(&key, true), &[]).unwrap() {
            Signer::Untrusted {
                key_id,
                carried: Some(k),
            } => {
                assert_eq!(key_id, public.key_id());
                assert_eq!(k.to_base64(), public.to_base64());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            check(&signed(&key, false), &[]).unwrap(),
            Signer::Untrusted { carried: None, .. }
        ));
    }

    #[test]
    fn a_wrong_key_or_a_forged_signature_is_refused() {
        let key = SecretKey::open(&secret_key_text(), None).unwrap();
        let other = SecretKey::open(&secret_key_text(), None).unwrap();
        // Signed by one key, carrying another's public key.
        let mut p = pack();
        let sig = sign(p.manifest_bytes(), &key, "t").unwrap();
        p.set_signature(
            sig.text().to_owned(),
            Some(other.public_key().unwrap().to_base64()),
        )
        .unwrap();
        assert!(matches!(check(&p, &[]), Err(SignatureError::KeyMismatch { .. })));

        // A signature of another manifest, under the trusted key's id.
        let mut p = pack();
        let sig = sign(b"another manifest", &key, "t").unwrap();
        p.set_signature(sig.text().to_owned(), None).unwrap();
        let trusted = [TrustedKey {
            name: "acme".into(),
            key: key.public_key().unwrap(),
        }];
        let e = check(&p, &trusted).unwrap_err();
        assert!(matches!(e, SignatureError::Invalid { .. }), "{e}");
        // The same, checked with the key the pack carries when nobody trusts it.
        p.set_signature(sig.text().to_owned(), Some(key.public_key().unwrap().to_base64()))
            .unwrap();
        assert!(matches!(check(&p, &[]), Err(SignatureError::Invalid { .. })));
        // Garbage in the signature's place.
        p.set_signature("not a signature".into(), None).unwrap();
        assert!(matches!(
            check(&p, &trusted),
            Err(SignatureError::BadSignature(_))
        ));
    }
}
