//! Signed checkpoints of the audit log, for an auditor to keep outside Osprey.
//!
//! The keyed chain stops a database writer without the master key from forging entries, but
//! the log's end is only what the database says: anyone who can write it can cut entries off
//! and roll `audit_head` back to a real, earlier entry, and whoever holds the master key can
//! recompute the whole chain. A checkpoint is a statement of the head (its number and MAC,
//! the count of entries, the time) signed with the server's checkpoint key (ed25519 in
//! minisign's format, [`CheckpointKey`]). Kept outside, it proves later that the log still
//! extends it: its head entry is still there with the same MAC, and the chain verifies.
//!
//! A checkpoint is two texts, the statement (one line of JSON, the signed message) and its
//! minisign signature, so the standard `minisign -V` verifies it with `osprey audit pubkey`.

use crate::store::audit::Verification;
use crate::store::{Store, StoreError};
use crate::vault::{CheckpointKey, VaultError};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The `format` of a statement.
pub const FORMAT: &str = "osprey-audit-checkpoint-v1";

/// What a checkpoint vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always [`FORMAT`].
    pub format: String,
    /// The number of the last entry (0 for an empty log).
    pub head_seq: i64,
    /// Its MAC (the `hash` column; 64 zeros for an empty log).
    pub head_mac: String,
    /// How many entries the log had, all verified.
    pub count: i64,
    /// When it was made, Unix milliseconds.
    pub at: i64,
}

/// A signed statement: the exact signed text, and its minisign signature.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub statement: Statement,
    /// The statement as signed: one line of JSON and a newline.
    pub text: String,
    /// The `.minisig` text.
    pub signature: String,
}

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("the audit log is broken at entry {seq} ({reason}); a checkpoint vouches only for an intact log")]
    Broken { seq: i64, reason: String },
    #[error("this is not an Osprey audit checkpoint: {0}")]
    NotACheckpoint(String),
    #[error("the checkpoint's signature is not a minisign signature: {0}")]
    BadSignatureText(String),
    #[error(
        "the checkpoint's signature does not verify with {key} ({reason}): the checkpoint was changed, or signed by another key"
    )]
    BadSignature { key: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// What checking the log against a checkpoint found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The chain verifies and still holds the checkpoint's head: the log extends it.
    Extends { checkpoint_seq: i64, entries: i64 },
    /// The chain itself does not verify (an entry changed, removed, or chained without the
    /// audit key).
    ChainBroken { seq: i64, reason: String },
    /// The log ends before the checkpoint's head: entries were removed from the end and the
    /// head rolled back (or the log emptied).
    RolledBack { checkpoint_seq: i64, log_ends: i64 },
    /// The checkpoint's head entry has another MAC now: the log was rewritten since, by
    /// someone who holds the audit key.
    Rewritten { seq: i64, mac: String, expected: String },
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Extends { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Extends {
                checkpoint_seq,
                entries,
            } => write!(
                f,
                "audit log intact and extends the checkpoint: {entries} entries, the checkpoint's head entry {checkpoint_seq} unchanged"
            ),
            Outcome::ChainBroken { seq, reason } => {
                write!(f, "audit log BROKEN at entry {seq}: {reason}")
            }
            Outcome::RolledBack {
                checkpoint_seq,
                log_ends,
            } => write!(
                f,
                "audit log ROLLED BACK: the checkpoint vouches for entries up to {checkpoint_seq}, but the log now ends at entry {log_ends}: entries were removed from the end and the head rolled back"
            ),
            Outcome::Rewritten { seq, mac, expected } => write!(
                f,
                "audit log REWRITTEN: entry {seq} has MAC {mac}, but the checkpoint says {expected}: the chain was recomputed since the checkpoint"
            ),
        }
    }
}

/// Sign a statement of the log's head as it is now, after verifying the whole chain.
pub async fn make(store: &Store, key: &CheckpointKey) -> Result<Checkpoint, CheckpointError> {
    let (entries, head) = match store.verify_audit().await? {
        Verification::Intact { entries, head } => (entries, head),
        Verification::Broken { seq, reason } => return Err(CheckpointError::Broken { seq, reason }),
    };
    let statement = Statement {
        format: FORMAT.to_owned(),
        head_seq: entries,
        head_mac: head,
        count: entries,
        at: crate::store::now_ms(),
    };
    let text = format!(
        "{}\n",
        serde_json::to_string(&statement).expect("a statement serialises")
    );
    let comment = format!(
        "osprey audit checkpoint: {} entries, head entry {} at {} (Unix ms)",
        statement.count, statement.head_seq, statement.at
    );
    let signature = key.sign(text.as_bytes(), &comment)?;
    Ok(Checkpoint {
        statement,
        text,
        signature,
    })
}

/// The statement of `text` if `signature` (a `.minisig` text) signs it with `public`
/// (described as `key_desc` in errors).
pub fn verify_signature(
    text: &str,
    signature: &str,
    public: &minisign::PublicKey,
    key_desc: &str,
) -> Result<Statement, CheckpointError> {
    let signature = minisign::SignatureBox::from_string(signature)
        .map_err(|e| CheckpointError::BadSignatureText(e.to_string()))?;
    minisign::verify(
        public,
        &signature,
        std::io::Cursor::new(text.as_bytes()),
        true,
        false,
        false,
    )
    .map_err(|e| CheckpointError::BadSignature {
        key: key_desc.to_owned(),
        reason: e.to_string(),
    })?;
    let statement: Statement =
        serde_json::from_str(text).map_err(|e| CheckpointError::NotACheckpoint(e.to_string()))?;
    if statement.format != FORMAT {
        return Err(CheckpointError::NotACheckpoint(format!(
            "its format is '{}', not '{FORMAT}'",
            statement.format
        )));
    }
    if statement.count != statement.head_seq || statement.head_seq < 0 {
        return Err(CheckpointError::NotACheckpoint(format!(
            "its count {} does not match its head entry {}",
            statement.count, statement.head_seq
        )));
    }
    Ok(statement)
}

/// Check the log against a (signature-checked) statement: the chain verifies from the first
/// entry to the head, and the statement's head entry is still there with its MAC.
pub async fn check(store: &Store, statement: &Statement) -> Result<Outcome, CheckpointError> {
    let entries = match store.verify_audit().await? {
        Verification::Intact { entries, .. } => entries,
        Verification::Broken { seq, reason } => return Ok(Outcome::ChainBroken { seq, reason }),
    };
    if statement.head_seq > entries {
        return Ok(Outcome::RolledBack {
            checkpoint_seq: statement.head_seq,
            log_ends: entries,
        });
    }
    if statement.head_seq > 0 {
        let mac = store
            .audit_entry(statement.head_seq)
            .await?
            .map(|e| e.hash)
            .unwrap_or_default();
        if mac != statement.head_mac {
            return Ok(Outcome::Rewritten {
                seq: statement.head_seq,
                mac,
                expected: statement.head_mac.clone(),
            });
        }
    }
    Ok(Outcome::Extends {
        checkpoint_seq: statement.head_seq,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::{Actor, Change};
    use crate::store::testing::{AuditColumn, MASTER_KEY, both_dialects};
    use crate::vault::Vault;

    async fn record(store: &Store, n: usize) {
        for i in 0..n {
            store
                .audit(&Change {
                    actor: &Actor::system(),
                    action: "list.add",
                    target: format!("list:l{i}"),
                    details: serde_json::json!({}),
                })
                .await
                .unwrap();
        }
    }

    fn signed(cp: &Checkpoint, key: &CheckpointKey) -> Statement {
        verify_signature(&cp.text, &cp.signature, key.public_key(), "the key").unwrap()
    }

    both_dialects!(a_checkpoint_verifies_until_the_log_is_cut_back, |store| {
        let (key, _) = CheckpointKey::generate(&Vault::from_key(&MASTER_KEY)).unwrap();
        let empty = make(store, &key).await.unwrap();
        record(store, 4).await;
        let cp = make(store, &key).await.unwrap();
        assert_eq!(cp.statement.head_seq, 4);
        assert_eq!(cp.statement.count, 4);
        record(store, 2).await;
        let statement = signed(&cp, &key);
        assert_eq!(
            check(store, &statement).await.unwrap(),
            Outcome::Extends {
                checkpoint_seq: 4,
                entries: 6
            }
        );
        assert!(check(store, &signed(&empty, &key)).await.unwrap().passed());

        // Cut entries 4 to 6 off and roll the head back to entry 3: the chain verifies, the
        // checkpoint does not.
        store.tamper_cut_audit_log(3).await;
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Intact { entries: 3, .. }
        ));
        let outcome = check(store, &statement).await.unwrap();
        assert_eq!(
            outcome,
            Outcome::RolledBack {
                checkpoint_seq: 4,
                log_ends: 3
            }
        );
        assert!(outcome.to_string().contains("ROLLED BACK"), "{outcome}");
    });

    both_dialects!(
        a_chain_recomputed_with_the_key_is_caught_by_the_checkpoint,
        |store| {
            let (key, _) = CheckpointKey::generate(&Vault::from_key(&MASTER_KEY)).unwrap();
            record(store, 3).await;
            let cp = make(store, &key).await.unwrap();
            // Someone with the master key rewrites entry 2 and rechains everything after it.
            store
                .tamper_audit_entry(2, AuditColumn::Actor, "cli:someone-else")
                .await;
            store.tamper_rechain_audit_log().await;
            assert!(matches!(
                store.verify_audit().await.unwrap(),
                Verification::Intact { entries: 3, .. }
            ));
            let outcome = check(store, &signed(&cp, &key)).await.unwrap();
            assert!(
                matches!(outcome, Outcome::Rewritten { seq: 3, .. }),
                "{outcome:?}"
            );
        }
    );

    both_dialects!(a_broken_log_gets_no_checkpoint, |store| {
        let (key, _) = CheckpointKey::generate(&Vault::from_key(&MASTER_KEY)).unwrap();
        record(store, 2).await;
        store.tamper_audit_entry(1, AuditColumn::Target, "x").await;
        let err = make(store, &key).await.unwrap_err().to_string();
        assert!(err.contains("broken at entry 1"), "{err}");
    });

    #[test]
    fn a_changed_statement_or_another_key_is_refused() {
        let vault = Vault::from_key(&MASTER_KEY);
        let (key, _) = CheckpointKey::generate(&vault).unwrap();
        let (other, _) = CheckpointKey::generate(&vault).unwrap();
        let statement = Statement {
            format: FORMAT.into(),
            head_seq: 5,
            head_mac: "ab".repeat(32),
            count: 5,
            at: 1,
        };
        let text = format!("{}\n", serde_json::to_string(&statement).unwrap());
        let signature = key.sign(text.as_bytes(), "c").unwrap();
        assert_eq!(
            verify_signature(&text, &signature, key.public_key(), "k").unwrap(),
            statement
        );
        let changed = text.replace("\"head_seq\":5", "\"head_seq\":4");
        let err = verify_signature(&changed, &signature, key.public_key(), "k").unwrap_err();
        assert!(matches!(err, CheckpointError::BadSignature { .. }), "{err}");
        let err = verify_signature(&text, &signature, other.public_key(), "the other key")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not verify with the other key"), "{err}");
        assert!(matches!(
            verify_signature(&text, "not a signature", key.public_key(), "k"),
            Err(CheckpointError::BadSignatureText(_))
        ));
    }
}
