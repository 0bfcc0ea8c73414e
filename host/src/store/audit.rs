//! The audit log: an append-only, keyed hash chain of every state change.
//!
//! Each entry stores a MAC over the previous entry's MAC and its own fields
//! (`audit_chain.rs`: HMAC-SHA256 with the [`AuditChainKey`], derived from the master key
//! and never stored). Changing, removing or reordering any entry breaks the chain from there
//! on, and without the master key nobody can compute a chain that verifies;
//! [`Store::verify_audit`] recomputes it and names the first entry that does not match.
//! `audit_head` holds the last entry's number and MAC, so entries cut off the end are noticed
//! too, unless the head is rolled back with them: that takes a signed checkpoint kept outside
//! Osprey (`checkpoint.rs`).
//!
//! A change and its entry are written in one transaction: the mutating methods of the store
//! take the [`Actor`] and call [`append`] inside their own transaction.

use super::audit_chain::{self, Fields};
use super::page::{self, Arg, Keyset, Page, SortKey};
use super::{Result, Store, StoreError, now_ms};
use crate::vault::{AuditChainKey, Sealed};
use serde::Serialize;
use sqlx::AnyConnection;

pub use super::audit_chain::GENESIS;

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
    /// Every entry matches; `entries` were checked and `head` is the last MAC.
    Intact { entries: i64, head: String },
    /// The first entry that does not match, and why.
    Broken { seq: i64, reason: String },
}

/// What rechaining a legacy (unkeyed) log found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rechained {
    /// How many entries were rechained (before the `audit.rechain` entry).
    pub entries: i64,
    /// The unkeyed chain as it was found: intact, or where it was already broken (which the
    /// `audit.rechain` entry records, since the new chain cannot show it).
    pub legacy: Verification,
}

/// Append `change` on `conn`, inside the caller's transaction, chained with `key`. Returns
/// the entry's number.
pub(super) async fn append(
    conn: &mut AnyConnection,
    key: &AuditChainKey,
    change: &Change<'_>,
) -> Result<i64> {
    let last = append_all(conn, key, std::slice::from_ref(change)).await?;
    Ok(last.expect("one change was appended"))
}

/// Append `changes` in their order on `conn`, inside the caller's transaction, chained with
/// `key`: three statements for any number of them (a triage batch's new incidents). Returns
/// the last entry's number, or `None` when `changes` is empty (nothing is written).
pub(super) async fn append_all(
    conn: &mut AnyConnection,
    key: &AuditChainKey,
    changes: &[Change<'_>],
) -> Result<Option<i64>> {
    if changes.is_empty() {
        return Ok(None);
    }
    let count =
        i64::try_from(changes.len()).map_err(|_| StoreError::Invalid("too many audit entries".into()))?;
    // Taking the head first serialises appenders and gives the MAC to chain from.
    let (last, mut prev): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(count)
            .fetch_one(&mut *conn)
            .await?;
    let at = now_ms();
    let mut entries = Vec::with_capacity(changes.len());
    for (seq, change) in (last - count + 1..).zip(changes) {
        let details = change.details.to_string();
        let fields = Fields {
            seq,
            at,
            actor: change.actor.as_str(),
            action: change.action,
            target: &change.target,
            details: &details,
        };
        let hash = audit_chain::mac(key, &prev, &fields);
        tracing::info!(seq, actor = %change.actor, action = change.action, target = %change.target, "audit");
        entries.push((
            seq,
            change,
            details,
            std::mem::replace(&mut prev, hash.clone()),
            hash,
        ));
    }
    let sqlite = conn.backend_name() == "SQLite";
    for chunk in entries.chunks(super::writer::ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash) VALUES {}",
            super::writer::rows("(?, ?, ?, ?, ?, ?, ?, ?)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, change, details, prev, hash) in chunk {
            q = q
                .bind(*seq)
                .bind(at)
                .bind(change.actor.as_str())
                .bind(change.action)
                .bind(&change.target)
                .bind(details)
                .bind(prev)
                .bind(hash);
        }
        q.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(&mut *conn)
        .await?;
    Ok(Some(last))
}

/// One page of the stored chain's raw rows, in order, after entry `$1`.
const ROWS: &str = "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM audit_log
     WHERE seq > $1 ORDER BY seq LIMIT $2";
const PAGE: i64 = 1000;

/// An `audit_log` row, by column name.
#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    at: i64,
    actor: String,
    action: String,
    target: String,
    details: String,
    prev_hash: String,
    hash: String,
}

fn entries_from_rows(rows: Vec<EntryRow>) -> Result<Vec<AuditEntry>> {
    rows.into_iter()
        .map(|r| {
            let EntryRow {
                seq,
                at,
                actor,
                action,
                target,
                details,
                prev_hash,
                hash,
            } = r;
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
        let seq = append(&mut tx, &self.audit_key, change).await?;
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

    /// The entry numbered `seq`, if there is one.
    pub async fn audit_entry(&self, seq: i64) -> Result<Option<AuditEntry>> {
        Ok(self
            .audit_entries(seq - 1, 1, None)
            .await?
            .into_iter()
            .find(|e| e.seq == seq))
    }

    /// Recompute the chain with the audit key from the first entry and compare with what is
    /// stored, then with the head.
    pub async fn verify_audit(&self) -> Result<Verification> {
        let mut conn = self.pool.acquire().await?;
        let key = &self.audit_key;
        check_chain(&mut conn, |prev, f, stored| {
            audit_chain::mac_matches(key, prev, f, stored)
        })
        .await
    }

    /// Rechain a log written before the chain was keyed, once: recompute every entry's MAC
    /// with the audit key, move the head, record an `audit.rechain` entry with what the
    /// unkeyed chain looked like, and replace the vault's key check `from` with `to` (the
    /// record that the log is keyed), all in one transaction. Returns `None` if the key
    /// check is no longer `from` (another server did it first).
    ///
    /// A legacy log that was already broken is rechained as it is found (entries are never
    /// renumbered, so a missing one stays missing); the `audit.rechain` entry says where the
    /// unkeyed chain was broken, since the new MACs cannot.
    pub async fn rechain_audit_log(&self, from: &Sealed, to: &Sealed) -> Result<Option<Rechained>> {
        let mut tx = self.writer.begin().await?;
        // Compare-and-set first: a second server waits here, then finds nothing to do.
        let swapped = sqlx::query(
            "UPDATE vault_key_check SET nonce = $1, ciphertext = $2
             WHERE id = 1 AND nonce = $3 AND ciphertext = $4",
        )
        .bind(to.nonce.clone())
        .bind(to.ciphertext.clone())
        .bind(from.nonce.clone())
        .bind(from.ciphertext.clone())
        .execute(&mut *tx)
        .await?;
        if swapped.rows_affected() == 0 {
            return Ok(None);
        }
        let legacy = check_chain(&mut tx, |prev, f, stored| {
            audit_chain::legacy_hash(prev, f) == stored
        })
        .await?;
        let mut prev = GENESIS.to_owned();
        let mut after = 0;
        let mut entries = 0;
        loop {
            let rows: Vec<EntryRow> = sqlx::query_as(ROWS)
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let n = rows.len() as i64;
            for EntryRow {
                seq,
                at,
                actor,
                action,
                target,
                details,
                ..
            } in rows
            {
                let fields = Fields {
                    seq,
                    at,
                    actor: &actor,
                    action: &action,
                    target: &target,
                    details: &details,
                };
                let hash = audit_chain::mac(&self.audit_key, &prev, &fields);
                sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
                    .bind(&prev)
                    .bind(&hash)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
                prev = hash;
                after = seq;
                entries += 1;
            }
            if n < PAGE {
                break;
            }
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(after)
            .bind(&prev)
            .execute(&mut *tx)
            .await?;
        let details = match &legacy {
            Verification::Intact { entries, head } => serde_json::json!({
                "entries": entries, "legacy": "intact", "legacy_head": head,
            }),
            Verification::Broken { seq, reason } => serde_json::json!({
                "entries": entries, "legacy": "broken", "broken_at": seq, "reason": reason,
            }),
        };
        let change = Change {
            actor: &Actor::system(),
            action: "audit.rechain",
            target: "audit:log".into(),
            details,
        };
        append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(Some(Rechained { entries, legacy }))
    }
}

/// Walk the stored chain on `conn` from the first entry, asking `matches(prev, fields,
/// stored)` of each entry, then compare the end with the head. The one walk behind
/// verifying (keyed) and rechaining (the legacy hash).
async fn check_chain(
    conn: &mut AnyConnection,
    matches: impl Fn(&str, &Fields<'_>, &str) -> bool,
) -> Result<Verification> {
    let mut prev = GENESIS.to_owned();
    let mut expected = 1;
    loop {
        // The raw rows: the MAC is over the details exactly as stored.
        let rows: Vec<EntryRow> = sqlx::query_as(ROWS)
            .bind(expected - 1)
            .bind(PAGE)
            .fetch_all(&mut *conn)
            .await?;
        let n = rows.len() as i64;
        for EntryRow {
            seq,
            at,
            actor,
            action,
            target,
            details,
            prev_hash,
            hash,
        } in rows
        {
            let broken = |reason: String| Ok(Verification::Broken { seq, reason });
            if seq != expected {
                return Ok(Verification::Broken {
                    seq: expected,
                    reason: format!("entry {expected} is missing (the next is {seq})"),
                });
            }
            if prev_hash != prev {
                return broken(format!(
                    "its previous MAC is {prev_hash}, but entry {} has {prev}",
                    seq - 1
                ));
            }
            let fields = Fields {
                seq,
                at,
                actor: &actor,
                action: &action,
                target: &target,
                details: &details,
            };
            // The recomputed MAC is never shown: it would tell a forger the MAC of the
            // entry they changed.
            if !matches(&prev, &fields, &hash) {
                return broken(
                    "its contents do not match its MAC: the entry was changed, or the chain was computed without this server's audit key".into(),
                );
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
            .fetch_one(&mut *conn)
            .await?;
    if head_seq != last || head_hash != prev {
        return Ok(Verification::Broken {
            seq: last + 1,
            reason: format!(
                "the log ends at entry {last}, but its head says entry {head_seq} with MAC {head_hash}: entries were removed from the end"
            ),
        });
    }
    Ok(Verification::Intact {
        entries: last,
        head: prev,
    })
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
            append(&mut tx, &self.audit_key, &change).await?;
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
            append(&mut tx, &self.audit_key, &change).await?;
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
                assert!(reason.contains("do not match its MAC"), "{reason}");
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
        // Even with the key, recomputing only entry 2 after changing it breaks entry 3.
        record(store, 3).await;
        let e = &store.audit_entries(1, 1, None).await.unwrap()[0];
        let forged = audit_chain::mac(
            &store.audit_key,
            &e.prev_hash,
            &Fields {
                seq: 2,
                at: e.at,
                actor: &e.actor,
                action: &e.action,
                target: &e.target,
                details: "{}",
            },
        );
        sqlx::query("UPDATE audit_log SET details = '{}', hash = $1 WHERE seq = 2")
            .bind(&forged)
            .execute(&store.writer)
            .await
            .unwrap();
        match store.verify_audit().await.unwrap() {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 3);
                assert!(reason.contains("previous MAC"), "{reason}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    });

    async fn broken_at_the_first_entry(store: &Store) {
        match store.verify_audit().await.unwrap() {
            Verification::Broken { seq, reason } => {
                assert_eq!(seq, 1);
                assert!(reason.contains("without this server's audit key"), "{reason}");
            }
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    both_dialects!(a_chain_recomputed_without_the_key_does_not_verify, |store| {
        record(store, 3).await;
        sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 2")
            .execute(&store.writer)
            .await
            .unwrap();
        // The unkeyed formula of before, then a guessed key: neither passes.
        store.tamper_recompute_audit_chain(audit_chain::legacy_hash).await;
        broken_at_the_first_entry(store).await;
        let wrong = crate::vault::Vault::from_key(&[9; 32]).audit_chain_key();
        store
            .tamper_recompute_audit_chain(|prev, f| audit_chain::mac(&wrong, prev, f))
            .await;
        broken_at_the_first_entry(store).await;
        // With the right key it would pass: the check is the key, nothing else.
        let key = store.audit_key.clone();
        store
            .tamper_recompute_audit_chain(|prev, f| audit_chain::mac(&key, prev, f))
            .await;
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Intact { entries: 3, .. }
        ));
    });

    both_dialects!(another_master_key_does_not_verify_the_chain, |store| {
        record(store, 2).await;
        let mut other = store.clone();
        other.audit_key = crate::vault::Vault::from_key(&[9; 32]).audit_chain_key();
        assert!(matches!(
            other.verify_audit().await.unwrap(),
            Verification::Broken { seq: 1, .. }
        ));
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Intact { entries: 2, .. }
        ));
    });

    /// Write `n` entries the way Osprey did before the chain was keyed.
    async fn record_legacy(store: &Store, n: i64) {
        let mut prev = GENESIS.to_owned();
        for seq in 1..=n {
            let target = format!("list:l{seq}");
            let fields = Fields {
                seq,
                at: 1_700_000_000_000 + seq,
                actor: "cli:old",
                action: "list.add",
                target: &target,
                details: "{}",
            };
            let hash = audit_chain::legacy_hash(&prev, &fields);
            sqlx::query(
                "INSERT INTO audit_log (seq, at, actor, action, target, details, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(seq)
            .bind(fields.at)
            .bind(fields.actor)
            .bind(fields.action)
            .bind(&target)
            .bind(fields.details)
            .bind(&prev)
            .bind(&hash)
            .execute(&store.writer)
            .await
            .unwrap();
            prev = hash;
        }
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(n)
            .bind(&prev)
            .execute(&store.writer)
            .await
            .unwrap();
    }

    both_dialects!(a_legacy_log_is_rechained_once_with_the_key, |store| {
        let vault = crate::vault::Vault::from_key(&crate::store::testing::MASTER_KEY);
        let legacy_check = store
            .init_vault_key_check(&vault.legacy_key_check())
            .await
            .unwrap();
        record_legacy(store, 3).await;
        let legacy_head = store.audit_entries(2, 1, None).await.unwrap()[0].hash.clone();
        // Before the rechain the keyed check refuses the unkeyed chain.
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Broken { seq: 1, .. }
        ));
        let done = store
            .rechain_audit_log(&legacy_check, &vault.key_check())
            .await
            .unwrap()
            .expect("rechained");
        assert_eq!(
            done,
            Rechained {
                entries: 3,
                legacy: Verification::Intact {
                    entries: 3,
                    head: legacy_head.clone()
                }
            }
        );
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            Verification::Intact { entries: 4, .. }
        ));
        let entries = store.audit_entries(0, 10, None).await.unwrap();
        assert_eq!(entries[0].target, "list:l1");
        assert_eq!(entries[0].actor, "cli:old");
        assert_eq!(entries[3].action, "audit.rechain");
        assert_eq!(
            entries[3].details,
            serde_json::json!({ "entries": 3, "legacy": "intact", "legacy_head": legacy_head })
        );
        // The key check records the upgrade: the vault reads it as keyed now, and a second
        // rechain (another server, a restart) finds nothing to do.
        let check = store.vault_key_check().await.unwrap().unwrap();
        assert_eq!(
            vault.read_key_check(&check),
            Some(crate::vault::KeyCheck::KeyedAuditChain)
        );
        assert_eq!(
            store
                .rechain_audit_log(&legacy_check, &vault.key_check())
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.audit_entries(0, 10, None).await.unwrap().len(), 4);
    });

    both_dialects!(a_broken_legacy_log_is_rechained_and_the_break_recorded, |store| {
        let vault = crate::vault::Vault::from_key(&crate::store::testing::MASTER_KEY);
        let legacy_check = store
            .init_vault_key_check(&vault.legacy_key_check())
            .await
            .unwrap();
        record_legacy(store, 3).await;
        sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 2")
            .execute(&store.writer)
            .await
            .unwrap();
        let done = store
            .rechain_audit_log(&legacy_check, &vault.key_check())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(&done.legacy, Verification::Broken { seq: 2, .. }),
            "{done:?}"
        );
        let last = store.audit_latest(1, None).await.unwrap().remove(0);
        assert_eq!(last.action, "audit.rechain");
        assert_eq!(last.details["legacy"], "broken");
        assert_eq!(last.details["broken_at"], 2);
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
