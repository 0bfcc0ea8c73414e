//! The one computation of the audit chain, used by appending, verifying and rechaining.
//!
//! Entry n stores `hash = HMAC-SHA256(K, prev_hash ‖ JSON [seq, at, actor, action, target,
//! details])`, in hex, where `prev_hash` is entry n-1's `hash` (64 zeros for the first) and
//! `K` is the [`AuditChainKey`] (HKDF-SHA256 of the master key, never stored). The column
//! keeps its name `hash`; its value is a MAC. Before the chain was keyed, the same message
//! was hashed with plain SHA-256 ([`legacy_hash`]), which anyone who can write the database
//! can recompute; such a log is rechained once on upgrade (`Store::rechain_audit_log`).

use crate::vault::AuditChainKey;
use sha2::{Digest, Sha256};

/// The MAC the first entry chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of an entry that its MAC covers, with the details exactly as stored.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub details: &'a str,
}

/// The bytes an entry's MAC covers: the previous MAC, then a JSON array of the fields
/// (unambiguous, and easy to recompute outside Osprey).
fn message(prev: &str, f: &Fields<'_>) -> Vec<u8> {
    let fields = serde_json::to_string(&(f.seq, f.at, f.actor, f.action, f.target, f.details))
        .expect("strings and numbers serialise");
    let mut message = Vec::with_capacity(prev.len() + fields.len());
    message.extend_from_slice(prev.as_bytes());
    message.extend_from_slice(fields.as_bytes());
    message
}

/// The MAC of an entry with `fields` that follows the entry whose MAC is `prev`.
pub fn mac(key: &AuditChainKey, prev: &str, fields: &Fields<'_>) -> String {
    key.tag(&message(prev, fields))
}

/// Whether `stored` is the MAC of `fields` after `prev` (compared in constant time).
pub fn mac_matches(key: &AuditChainKey, prev: &str, fields: &Fields<'_>, stored: &str) -> bool {
    key.verify(&message(prev, fields), stored)
}

/// The unkeyed hash of the chain before it was keyed: SHA-256 of the same message. Only
/// for checking a legacy log while it is rechained.
pub fn legacy_hash(prev: &str, fields: &Fields<'_>) -> String {
    hex::encode(Sha256::digest(message(prev, fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::Vault;

    const F: Fields<'static> = Fields {
        seq: 1,
        at: 1_700_000_000_000,
        actor: "system",
        action: "secret.set",
        target: "secret:osprey/link-key",
        details: "{\"secret\":\"link-key\"}",
    };

    #[test]
    fn the_mac_depends_on_the_key_the_previous_mac_and_every_field() {
        let key = Vault::from_key(&[1; 32]).audit_chain_key();
        let m = mac(&key, GENESIS, &F);
        assert_eq!(m.len(), 64);
        assert!(mac_matches(&key, GENESIS, &F, &m));
        let other_key = Vault::from_key(&[2; 32]).audit_chain_key();
        assert!(!mac_matches(&other_key, GENESIS, &F, &m));
        assert_ne!(mac(&key, &m, &F), m);
        for changed in [
            Fields { seq: 2, ..F },
            Fields { at: 1, ..F },
            Fields { actor: "cli:x", ..F },
            Fields {
                action: "secret.delete",
                ..F
            },
            Fields {
                target: "secret:x",
                ..F
            },
            Fields { details: "{}", ..F },
        ] {
            assert!(!mac_matches(&key, GENESIS, &changed, &m), "{changed:?}");
        }
    }

    #[test]
    fn the_legacy_hash_is_the_unkeyed_sha256_and_is_no_mac() {
        let key = Vault::from_key(&[1; 32]).audit_chain_key();
        let legacy = legacy_hash(GENESIS, &F);
        let fields = serde_json::to_string(&(F.seq, F.at, F.actor, F.action, F.target, F.details)).unwrap();
        assert_eq!(legacy, hex::encode(Sha256::digest(format!("{GENESIS}{fields}"))));
        // What a database writer can compute does not pass for a keyed entry.
        assert!(!mac_matches(&key, GENESIS, &F, &legacy));
    }
}
