//! Pollers (`osprey intake poll`, `[[intake.poll]]`): their definition and their state
//! (cursor, last run, last error, failures, next due), the claim that lets one server poll a
//! name at a time, and the end of a poll: its alerts and its new cursor in one transaction.

use super::alerts::StoredAlert;
use super::writer::Write;
use super::{Result, Store, StoreError, now_ms};
use serde::Serialize;
use serde_json::Value;

/// What a poller asks, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct PollerSpec {
    pub name: String,
    pub plugin: String,
    pub action: String,
    pub every_ms: i64,
    /// The action's input; the cursor is added to it.
    pub input: serde_json::Map<String, Value>,
}

/// A poller and where it stands.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Poller {
    pub name: String,
    pub plugin: String,
    pub action: String,
    pub every_ms: i64,
    /// The input, as JSON text.
    pub input: String,
    /// The cursor the plugin returned last, as JSON text.
    pub cursor: Option<String>,
    pub next_due: i64,
    pub last_run_at: Option<i64>,
    pub last_ok_at: Option<i64>,
    pub last_error: Option<String>,
    /// Failed polls in a row.
    pub failures: i64,
    pub polls: i64,
    pub items: i64,
    pub bad_items: i64,
    pub last_bad: Option<String>,
}

impl Poller {
    /// The input as stored, read leniently (an unreadable one is empty).
    pub fn input_map(&self) -> serde_json::Map<String, Value> {
        serde_json::from_str(&self.input).unwrap_or_default()
    }

    /// The cursor as stored; `None` before the first poll.
    pub fn cursor_value(&self) -> Option<Value> {
        self.cursor.as_deref().and_then(|c| serde_json::from_str(c).ok())
    }
}

/// What one successful poll did: the alerts to commit and the state that follows them.
#[derive(Debug, Clone)]
pub struct PollDone {
    pub name: String,
    pub node: String,
    pub cursor: Option<Value>,
    pub next_due: i64,
    pub alerts: Vec<StoredAlert>,
    pub bad_items: i64,
    pub last_bad: Option<String>,
}

const COLUMNS: &str = "name, plugin, action, every_ms, input, cursor, next_due, last_run_at, last_ok_at, \
     last_error, failures, polls, items, bad_items, last_bad";

impl Store {
    /// Add a poller, or change the definition of one with that name (its state is kept).
    pub async fn put_poller(&self, spec: &PollerSpec) -> Result<()> {
        let input = Value::Object(spec.input.clone()).to_string();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO pollers (name, plugin, action, every_ms, input, next_due, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)
             ON CONFLICT (name) DO UPDATE SET plugin = excluded.plugin, action = excluded.action,
                 every_ms = excluded.every_ms, input = excluded.input",
        )
        .bind(&spec.name)
        .bind(&spec.plugin)
        .bind(&spec.action)
        .bind(spec.every_ms)
        .bind(input)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every poller, by name.
    pub async fn pollers(&self) -> Result<Vec<Poller>> {
        let sql = format!("SELECT {COLUMNS} FROM pollers ORDER BY name");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    /// One poller.
    pub async fn poller(&self, name: &str) -> Result<Option<Poller>> {
        let sql = format!("SELECT {COLUMNS} FROM pollers WHERE name = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Remove a poller; false if there was none by that name.
    pub async fn remove_poller(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM pollers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claim the pollers due at `now` for `node` until `now + lease_ms`: a conditional
    /// UPDATE each (on both dialects), so of two servers only one gets a given poller, and a
    /// claim left by a crashed server lapses with its lease.
    pub async fn claim_due_pollers(&self, node: &str, now: i64, lease_ms: i64) -> Result<Vec<Poller>> {
        let names: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM pollers WHERE next_due <= $1 AND (locked_until IS NULL OR locked_until < $1)
             ORDER BY next_due",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for (name,) in names {
            let done = sqlx::query(
                "UPDATE pollers SET locked_by = $1, locked_until = $2
                 WHERE name = $3 AND next_due <= $4 AND (locked_until IS NULL OR locked_until < $4)",
            )
            .bind(node)
            .bind(now + lease_ms)
            .bind(&name)
            .bind(now)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1
                && let Some(p) = self.poller(&name).await?
            {
                claimed.push(p);
            }
        }
        Ok(claimed)
    }

    /// Extend `node`'s claim on poller `name` to `until` (the heartbeat of a poll in flight);
    /// false if `node` no longer holds it.
    pub async fn renew_poller_claim(&self, name: &str, node: &str, until: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE pollers SET locked_until = $1 WHERE name = $2 AND locked_by = $3")
            .bind(until)
            .bind(name)
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Give back the claims `node` holds (a server stopping).
    pub async fn release_pollers(&self, node: &str) -> Result<()> {
        sqlx::query("UPDATE pollers SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A poll that failed: the error, one more failure in a row, the next try at `next_due`.
    pub async fn poll_failed(&self, name: &str, node: &str, error: &str, next_due: i64) -> Result<()> {
        sqlx::query(
            "UPDATE pollers SET last_error = $1, failures = failures + 1, next_due = $2, last_run_at = $3,
                 polls = polls + 1, locked_by = NULL, locked_until = NULL
             WHERE name = $4 AND locked_by = $5",
        )
        .bind(error)
        .bind(next_due)
        .bind(now_ms())
        .bind(name)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A poll that succeeded: its alerts and its new cursor, committed together (with the
    /// group commit on SQLite, in a transaction of its own on PostgreSQL).
    pub async fn poll_done(&self, done: PollDone) -> Result<()> {
        for a in &done.alerts {
            super::json::check(&a.alert.data, "an alert")?;
        }
        let write = Write::PollDone(Box::new(done));
        match &self.batcher {
            Some(b) => b.write(write).await.map(drop),
            None => {
                use sqlx::Connection as _;
                let mut conn = self.writer.acquire().await?;
                let mut tx = conn.begin().await?;
                write.execute(&mut tx).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }
}

/// The state update of a successful poll, on the transaction that commits its alerts. The
/// cursor is written only while the claim is still this node's: a poll that outlived its
/// lease leaves the cursor to the server that took over (its alerts are committed all the
/// same, and pre-processing's deduplication folds the ones polled again).
pub(super) async fn record_done(conn: &mut sqlx::AnyConnection, done: &PollDone) -> Result<u64> {
    let cursor = done.cursor.as_ref().map(Value::to_string);
    let now = now_ms();
    let result = sqlx::query(
        "UPDATE pollers SET cursor = COALESCE($1, cursor), next_due = $2, last_run_at = $3, last_ok_at = $3,
             last_error = NULL, failures = 0, polls = polls + 1, items = items + $4,
             bad_items = bad_items + $5, last_bad = COALESCE($6, last_bad),
             locked_by = NULL, locked_until = NULL
         WHERE name = $7 AND locked_by = $8",
    )
    .bind(cursor)
    .bind(done.next_due)
    .bind(now)
    .bind(done.alerts.len() as i64)
    .bind(done.bad_items)
    .bind(done.last_bad.as_deref())
    .bind(&done.name)
    .bind(&done.node)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    Ok(result.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{Alert, Observables, Severity};
    use crate::store::testing::both_dialects;

    fn spec(name: &str) -> PollerSpec {
        PollerSpec {
            name: name.into(),
            plugin: "servicenow".into(),
            action: "list-incidents".into(),
            every_ms: 10_000,
            input: serde_json::Map::new(),
        }
    }

    fn alert(id: &str) -> StoredAlert {
        let alert = Alert {
            source: "poll:p".into(),
            title: id.into(),
            severity: Severity::Low,
            occurred_at: None,
            data: serde_json::json!({}),
            observables: Observables::default(),
            raw: None,
        };
        StoredAlert::new(id.into(), 1, "poll:p", alert)
    }

    both_dialects!(
        one_node_claims_a_poller_and_its_cursor_comes_with_its_alerts,
        |store| {
            store.put_poller(&spec("p")).await.unwrap();
            let now = now_ms();
            let a = store.claim_due_pollers("a", now, 60_000).await.unwrap();
            let b = store.claim_due_pollers("b", now, 60_000).await.unwrap();
            assert_eq!((a.len(), b.len()), (1, 0), "one node has it");
            store
                .poll_done(PollDone {
                    name: "p".into(),
                    node: "a".into(),
                    cursor: Some(serde_json::json!("c1")),
                    next_due: now + 10_000,
                    alerts: vec![alert("a1"), alert("a2")],
                    bad_items: 1,
                    last_bad: Some("item 2: bad".into()),
                })
                .await
                .unwrap();
            let p = store.poller("p").await.unwrap().unwrap();
            assert_eq!(p.cursor_value(), Some(serde_json::json!("c1")));
            assert_eq!((p.items, p.bad_items, p.polls, p.failures), (2, 1, 1, 0));
            assert_eq!(store.alerts(Some("poll:p"), 10).await.unwrap().len(), 2);
            assert!(
                store
                    .claim_due_pollers("b", now, 60_000)
                    .await
                    .unwrap()
                    .is_empty(),
                "not due"
            );
            let later = now + 10_000;
            assert_eq!(
                store.claim_due_pollers("b", later, 60_000).await.unwrap().len(),
                1
            );
            store.poll_failed("p", "b", "boom", later + 20_000).await.unwrap();
            let p = store.poller("p").await.unwrap().unwrap();
            assert_eq!((p.failures, p.last_error.as_deref()), (1, Some("boom")));
            assert_eq!(
                p.cursor_value(),
                Some(serde_json::json!("c1")),
                "a failure keeps the cursor"
            );
            // Changing the definition keeps the state; removing forgets it.
            store
                .put_poller(&PollerSpec {
                    every_ms: 60_000,
                    ..spec("p")
                })
                .await
                .unwrap();
            let p = store.poller("p").await.unwrap().unwrap();
            assert_eq!((p.every_ms, p.failures), (60_000, 1));
            assert!(store.remove_poller("p").await.unwrap());
            assert!(!store.remove_poller("p").await.unwrap());
        }
    );

    both_dialects!(
        a_renewed_claim_holds_past_its_first_lease_and_only_its_holder_renews_it,
        |store| {
            store.put_poller(&spec("p")).await.unwrap();
            let now = now_ms();
            assert_eq!(store.claim_due_pollers("a", now, 1_000).await.unwrap().len(), 1);
            assert!(
                !store.renew_poller_claim("p", "b", now + 5_000).await.unwrap(),
                "b does not hold it"
            );
            assert!(store.renew_poller_claim("p", "a", now + 5_000).await.unwrap());
            let later = now + 2_000;
            assert!(
                store
                    .claim_due_pollers("b", later, 1_000)
                    .await
                    .unwrap()
                    .is_empty(),
                "the renewed claim still holds after the first lease"
            );
            assert_eq!(
                store
                    .claim_due_pollers("b", now + 6_000, 1_000)
                    .await
                    .unwrap()
                    .len(),
                1,
                "a claim nobody renews lapses (a crashed server)"
            );
            assert!(!store.renew_poller_claim("p", "a", now + 9_000).await.unwrap());
        }
    );
}
