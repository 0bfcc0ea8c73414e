//! The audit log: an append-only, hash-chained record of every state change.
//!
//! Entry n stores `hash = SHA-256(prev_hash ‖ JSON [seq, at, actor, action, target, details])`
//! where `prev_hash` is entry n-1's hash (64 zeros for the first). Changing, removing or
//! reordering any entry breaks the chain from there on; [`Store::verify_audit`] recomputes it
//! and names the first entry that does not match. `audit_head` holds the last entry's number
//! and hash, so entries cut off the end are noticed too.
//!
//! A change and its entry are written in one transaction: the mutating methods of the store
//! take the [`Actor`] and call [`append`] inside their own transaction.

use super::page::{self, Arg, Keyset, Page, SortKey};
use super::{Result, Store, StoreError, now_ms};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

/// The hash the first entry chains from.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who made a change: `cli:USER`, `user:NAME`, `email:ADDRESS`, `token:NAME`, `run:ID` or
/// `system`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor(String);

impl Actor {
    /// The operator at the command line, named by the OS user.
    pub fn cli() -> Actor {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Actor(format!("cli:{user}"))
    }

    /// Osprey itself (expiry jobs, reloads).
    pub fn system() -> Actor {
        Actor("system".into())
    }

    /// A playbook run, by its id.
    pub fn run(run_id: &str) -> Actor {
        Actor(format!("run:{run_id}"))
    }

    /// A holder of an API token, by the token's name.
    pub fn token(name: &str) -> Actor {
        Actor(format!("token:{name}"))
    }

    /// A person, by their Osprey user name.
    pub fn user(name: &str) -> Actor {
        Actor(format!("user:{name}"))
    }

    /// Someone outside Osprey who followed a link mailed to this address.
    pub fn email(address: &str) -> Actor {
        Actor(format!("email:{address}"))
    }

    /// The person a link was sent to: `user:NAME` or `email:ADDRESS`, as stored in `links`.
    pub fn recipient(recipient: &str) -> Actor {
        Actor(recipient.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A change to record.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    pub actor: &'a Actor,
    /// `noun.verb`: "plugin.grant", "secret.set", ...
    pub action: &'a str,
    /// `kind:name` of what changed.
    pub target: String,
    /// What changed, as a JSON object. Never a secret value.
    pub details: serde_json::Value,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The outcome of [`Store::verify_audit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Every entry matches; `entries` were checked and `head` is the last hash.
    Intact { entries: i64, head: String },
    /// The first entry that does not match, and why.
    Broken { seq: i64, reason: String },
}

fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: i64,
    actor: &str,
    action: &str,
    target: &str,
    details: &str,
) -> String {
    // A JSON array of the fields: unambiguous, and easy to recompute outside Osprey.
    let fields = serde_json::to_string(&(seq, at, actor, action, target, details))
        .expect("strings and numbers serialise");
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(fields.as_bytes());
    hex::encode(h.finalize())
}

/// Append `change` on `conn`, inside the caller's transaction. Returns the entry's number.
pub(super) async fn append(conn: &mut AnyConnection, change: &Change<'_>) -> Result<i64> {
    // Taking the head first serialises appenders and gives the hash to chain from.
    let (seq, prev): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut *conn)
            .await?;
    let at = now_ms();
    let details = change.details.to_string();
    let hash = entry_hash(
        &prev,
        seq,
        at,
        change.actor.as_str(),
        change.action,
        &change.target,
        &details,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(change.actor.as_str())
    .bind(change.action)
    .bind(&change.target)
    .bind(&details)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    tracing::info!(seq, actor = %change.actor, action = change.action, target = %change.target, "audit");
    Ok(seq)
}

type EntryRow = (i64, i64, String, String, String, String, String, String);

fn entries_from_rows(rows: Vec<EntryRow>) -> Result<Vec<AuditEntry>> {
    rows.into_iter()
        .map(|(seq, at, actor, action, target, details, prev_hash, hash)| {
            Ok(AuditEntry {
                details: serde_json::from_str(&details)
                    .map_err(|e| StoreError::Corrupt(format!("audit entry {seq}: {e}")))?,
                seq,
                at,
                actor,
                action,
                target,
                prev_hash,
                hash,
            })
        })
        .collect()
}

/// The columns audit entries may be sorted by: `seq` only, the log's order
/// (`GET /api/v1/audit?sort=-seq` for newest first).
pub const AUDIT_SORTS: &[&str] = &["seq"];

/// Which audit entries a page holds; `None` is any.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditFilter<'a> {
    /// Actions starting with this ("secret." or "secret.set").
    pub action: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub target: Option<&'a str>,
}

impl Store {
    /// One page of the entries matching `filter`, oldest first, after entry `after`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter<'_>,
        after: i64,
        limit: i64,
    ) -> Result<Page<AuditEntry>> {
        let mut keyset = Keyset::first("seq", false, limit);
        keyset.after = Some((SortKey::Int(after), after.to_string()));
        self.audit_page_sorted(filter, &keyset).await
    }

    /// One page of the entries matching `filter`, in the order of `keyset` (by `seq`, the
    /// log's order, [`AUDIT_SORTS`]; descending for newest first).
    pub async fn audit_page_sorted(
        &self,
        filter: &AuditFilter<'_>,
        keyset: &Keyset,
    ) -> Result<Page<AuditEntry>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        if let Some(action) = filter.action {
            args.push(action.into());
            let n = args.len();
            conditions.push(format!("substr(action, 1, length(${n})) = ${n}"));
        }
        if let Some(actor) = filter.actor {
            args.push(actor.into());
            conditions.push(format!("actor = ${}", args.len()));
        }
        if let Some(target) = filter.target {
            args.push(target.into());
            conditions.push(format!("target = ${}", args.len()));
        }
        let page: Page<EntryRow> = page::fetch(
            &self.pool,
            "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log",
            &conditions.join(" AND "),
            args,
            keyset,
            AUDIT_SORTS,
            "seq",
        )
        .await?;
        Ok(Page {
            items: entries_from_rows(page.items)?,
            more: page.more,
        })
    }

    /// Record a change that has no other write of its own (or whose write is elsewhere).
    pub async fn audit(&self, change: &Change<'_>) -> Result<i64> {
        let mut tx = self.writer.begin().await?;
        let seq = append(&mut tx, change).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Up to `limit` entries after entry `after`, oldest first, optionally only one action
    /// (or actions starting with `action_prefix`, such as "secret.").
    pub async fn audit_entries(
        &self,
        after: i64,
        limit: i64,
        action_prefix: Option<&str>,
    ) -> Result<Vec<AuditEntry>> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log
             WHERE seq > $1 AND ($2 IS NULL OR substr(action, 1, length($2)) = $2) ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(action_prefix)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        entries_from_rows(rows)
    }

    /// The last `limit` entries (optionally of actions starting with `action_prefix`),
    /// oldest first.
    pub async fn audit_latest(&self, limit: i64, action_prefix: Option<&str>) -> Result<Vec<AuditEntry>> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log
             WHERE ($1 IS NULL OR substr(action, 1, length($1)) = $1) ORDER BY seq DESC LIMIT $2",
        )
        .bind(action_prefix)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = entries_from_rows(rows)?;
        entries.reverse();
        Ok(entries)
    }

    /// Recompute the chain from the first entry and compare with what is stored.
    pub async fn verify_audit(&self) -> Result<Verification> {
        const PAGE: i64 = 1000;
        let mut prev = GENESIS.to_owned();
        let mut expected = 1;
        loop {
            // The raw rows: the hash is over the details exactly as stored.
            let rows: Vec<EntryRow> = sqlx::query_as(
                "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log
                 WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(expected)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let n = rows.len() as i64;
            for (seq, at, actor, action, target, details, prev_hash, hash) in rows {
                let broken = |reason: String| Ok(Verification::Broken { seq, reason });
                if seq != expected {
                    return Ok(Verification::Broken {
                        seq: expected,
                        reason: format!("entry {expected} is missing (the next is {seq})"),
                    });
                }
                if prev_hash != prev {
                    return broken(format!(
                        "its previous hash is {prev_hash}, but entry {} has {prev}",
                        seq - 1
                    ));
                }
                let recomputed = entry_hash(&prev, seq, at, &actor, &action, &target, &details);
                if recomputed != hash {
                    return broken(format!(
                        "its contents do not match its hash (stored {hash}, recomputed {recomputed})"
                    ));
                }
                prev = hash;
                expected += 1;
            }
            if n < PAGE {
                break;
            }
        }
        let last = expected - 1;
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        if head_seq != last || head_hash != prev {
            return Ok(Verification::Broken {
                seq: last + 1,
                reason: format!(
                    "the log ends at entry {last}, but its head says entry {head_seq} with hash {head_hash}: entries were removed from the end"
                ),
            });
        }
        Ok(Verification::Intact {
            entries: last,
            head: prev,
        })
    }
}

impl Store {
    /// Compare the playbooks loaded now (name, version) with those last recorded, record
    /// the difference, and audit each as `playbook.add`, `playbook.change` or
    /// `playbook.remove`. Returns the actions taken, by playbook.
    pub async fn record_playbook_versions(
        &self,
        loaded: &[(String, String)],
        actor: &Actor,
    ) -> Result<Vec<(String, &'static str)>> {
        let mut tx = self.writer.begin().await?;
        let recorded: Vec<(String, String)> = sqlx::query_as("SELECT name, version FROM playbook_versions")
            .fetch_all(&mut *tx)
            .await?;
        let recorded: std::collections::BTreeMap<String, String> = recorded.into_iter().collect();
        let now = now_ms();
        let mut done = Vec::new();
        for (name, version) in loaded {
            let action = match recorded.get(name) {
                Some(v) if v == version => continue,
                Some(_) => "playbook.change",
                None => "playbook.add",
            };
            sqlx::query(
                "INSERT INTO playbook_versions (name, version, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            )
            .bind(name)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let change = Change {
                actor,
                action,
                target: format!("playbook:{name}"),
                details: serde_json::json!({ "version": version, "previous": recorded.get(name) }),
            };
            append(&mut tx, &change).await?;
            done.push((name.clone(), action));
        }
        for (name, version) in &recorded {
            if loaded.iter().any(|(n, _)| n == name) {
                continue;
            }
            sqlx::query("DELETE FROM playbook_versions WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            let change = Change {
                actor,
                action: "playbook.remove",
                target: format!("playbook:{name}"),
                details: serde_json::json!({ "previous": version }),
            };
            append(&mut tx, &change).await?;
            done.push((name.clone(), "playbook.remove"));
        }
        tx.commit().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    async fn record(store: &Store, n: usize) {
        let actor = Actor::token("tester");
        for i in 0..n {
            store
                .audit(&Change {
                    actor: &actor,
                    action: "list.add",
                    target: format!("list:blocked-{i}"),
                    details: serde_json::json!({ "entry": format!("10.0.0.{i}") }),
                })
                .await
                .unwrap();
        }
    }

    both_dialects!(a_chain_of_entries_verifies, |store| {
        assert_eq!(
            store.verify_audit().await.unwrap(),
            Verification::Intact {
                entries: 0,
                head: GENESIS.into()
            }
        );
        record(store, 5).await;
        let entries = store.audit_entries(0, 100, None).await.unwrap();
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[0].prev_hash, GENESIS);
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        assert_eq!(entries[4].details["entry"], "10.0.0.4");
        assert_eq!(
            store.verify_audit().await.unwrap(),
            Verification::Intact {
                entries: 5,
                head: entries[4].hash.clone()
            }
        );
        assert_eq!(store.audit_entries(3, 100, Some("list.")).await.unwrap().len(), 2);
        assert!(
            store
                .audit_entries(0, 100, Some("secret."))
                .await
                .unwrap()
                .is_empty()
        );
    });

    both_dialects!(a_changed_entry_is_named, |store| {
        record(store, 4).await;
        sqlx::query("UPDATE audit_log SET details = '{\"entry\":\"10.9.9.9\"}' WHERE seq = 3")
            .execute(&store.writer)
            .await
            .unwrap();
        match store.verify_audit().await.unwrap() {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 3);
                assert!(reason.contains("do not match its hash"), "{reason}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    });

    both_dialects!(a_removed_entry_is_named, |store| {
        record(store, 4).await;
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(&store.writer)
            .await
            .unwrap();
        assert_eq!(
            store.verify_audit().await.unwrap(),
            Verification::Broken {
                seq: 2,
                reason: "entry 2 is missing (the next is 3)".into()
            }
        );
    });

    both_dialects!(a_rehashed_entry_breaks_the_next_link, |store| {
        // A forger who recomputes entry 2's hash after changing it still breaks entry 3.
        record(store, 3).await;
        let e = &store.audit_entries(1, 1, None).await.unwrap()[0];
        let forged = entry_hash(&e.prev_hash, 2, e.at, &e.actor, &e.action, &e.target, "{}");
        sqlx::query("UPDATE audit_log SET details = '{}', hash = $1 WHERE seq = 2")
            .bind(&forged)
            .execute(&store.writer)
            .await
            .unwrap();
        match store.verify_audit().await.unwrap() {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 3);
                assert!(reason.contains("previous hash"), "{reason}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    });

    both_dialects!(entries_cut_off_the_end_are_noticed, |store| {
        record(store, 3).await;
        sqlx::query("DELETE FROM audit_log WHERE seq = 3")
            .execute(&store.writer)
            .await
            .unwrap();
        match store.verify_audit().await.unwrap() {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 3);
                assert!(reason.contains("removed from the end"), "{reason}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    });

    both_dialects!(each_new_playbook_version_is_audited_once, |store| {
        let system = Actor::system();
        let v = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let done = store
            .record_playbook_versions(&v(&[("a", "1"), ("b", "1")]), &system)
            .await
            .unwrap();
        assert_eq!(
            done,
            [
                ("a".to_string(), "playbook.add"),
                ("b".to_string(), "playbook.add")
            ]
        );
        // The same versions again (a restart): nothing new.
        assert!(
            store
                .record_playbook_versions(&v(&[("a", "1"), ("b", "1")]), &system)
                .await
                .unwrap()
                .is_empty()
        );
        let done = store
            .record_playbook_versions(&v(&[("a", "2")]), &system)
            .await
            .unwrap();
        assert_eq!(
            done,
            [
                ("a".to_string(), "playbook.change"),
                ("b".to_string(), "playbook.remove")
            ]
        );
        let entries = store.audit_entries(0, 100, Some("playbook.")).await.unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries[2].details,
            serde_json::json!({ "version": "2", "previous": "1" })
        );
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Intact { entries: 4, .. }
        ));
    });

    both_dialects!(concurrent_appends_keep_one_chain, |store| {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { record(&store, 5).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Intact { entries: 40, .. }
        ));
    });
}
