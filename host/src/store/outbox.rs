//! The mail outbox: messages written in the transaction that decided to send them, delivered
//! later by the sender in `mail.rs`, which claims due rows, sends them over SMTP and records
//! each attempt here (sent, retry at a later time, or failed for good).
//!
//! A row is pending until `sent_at` or `failed_at` is set. Claiming a row moves its
//! `next_attempt_at` past the time one attempt may take, so two senders (two servers, or the
//! server and `osprey mail test`) never send the same row at once, and a sender that dies
//! mid-attempt leaves the row to be tried again once that time has passed.

use super::{Dialect, Result, Store, now_ms};
use crate::mail::attachment::Attachment;
use crate::mail::message::Mail;
use serde::Serialize;

/// A message in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxRecord {
    pub id: i64,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// What it is about (`question:ID`, `incident:ID`), if anything.
    pub about: Option<String>,
    pub created_at: i64,
    /// Attempts made so far.
    pub attempts: i64,
    /// When it is (or was) next due.
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    /// When it was given up on, after too many attempts.
    pub failed_at: Option<i64>,
    /// What went wrong the last time it was tried.
    pub last_error: Option<String>,
    /// Files attached (`send_email`'s `attachments`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Why the stored attachments could not be read, if they could not (such a message is
    /// never sent without them: the sender gives up on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl OutboxRecord {
    /// `sent`, `failed` or `pending`.
    pub fn state(&self) -> &'static str {
        if self.sent_at.is_some() {
            "sent"
        } else if self.failed_at.is_some() {
            "failed"
        } else {
            "pending"
        }
    }
}

/// An `outbox` row, by column name.
#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    to_addr: String,
    subject: String,
    text_body: String,
    html_body: String,
    about: Option<String>,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    sent_at: Option<i64>,
    failed_at: Option<i64>,
    last_error: Option<String>,
    attachments: Option<String>,
}

const COLUMNS: &str = "id, to_addr, subject, text_body, html_body, about, created_at, attempts, \
     next_attempt_at, sent_at, failed_at, last_error, attachments";

/// Not sent and not given up on.
const PENDING: &str = "sent_at IS NULL AND failed_at IS NULL";

fn record(r: OutboxRow) -> OutboxRecord {
    let OutboxRow {
        id,
        to_addr: to,
        subject,
        text_body: text,
        html_body: html,
        about,
        created_at,
        attempts,
        next_attempt_at,
        sent_at,
        failed_at,
        last_error,
        attachments,
    } = r;
    let (attachments, unreadable) = match attachments.as_deref().map(serde_json::from_str) {
        None => (Vec::new(), None),
        Some(Ok(a)) => (a, None),
        Some(Err(e)) => (Vec::new(), Some(format!("its attachments are unreadable: {e}"))),
    };
    OutboxRecord {
        id,
        to,
        subject,
        text,
        html,
        about,
        created_at,
        attempts,
        next_attempt_at,
        sent_at,
        failed_at,
        last_error,
        attachments,
        unreadable,
    }
}

/// Queue `mail` on `conn`, due at once: call it inside the transaction that decided to send
/// it, so the mail is queued if and only if that transaction commits. Wake the sender
/// (`App::mail_queued`) after the commit. `step_key` is the key of the playbook step that sent
/// it, if any (unique: a second mail with the same key is refused, so check for it first).
pub async fn enqueue(
    conn: &mut sqlx::AnyConnection,
    mail: &Mail,
    now: i64,
    step_key: Option<&str>,
) -> Result<()> {
    insert(conn, mail, now, step_key).await.map(drop)
}

/// Insert one row; returns its id.
async fn insert(
    conn: &mut sqlx::AnyConnection,
    mail: &Mail,
    now: i64,
    step_key: Option<&str>,
) -> Result<i64> {
    // No attachments is NULL, as in rows written before attachments were kept.
    let attachments = (!mail.attachments.is_empty())
        .then(|| serde_json::to_string(&mail.attachments).expect("attachments serialise"));
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO outbox (to_addr, subject, text_body, html_body, about, step_key, created_at, attempts,
             next_attempt_at, attachments)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7, $8) RETURNING id",
    )
    .bind(&mail.to)
    .bind(&mail.subject)
    .bind(&mail.text)
    .bind(&mail.html)
    .bind(mail.about.as_deref())
    .bind(step_key)
    .bind(now)
    .bind(attachments)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// The claim of up to `$3` pending rows of `table` due at `$2`, not due again before `$1`,
/// returning `columns`: for every outbox that works this way (mail, Slack). A table's
/// pending rows are those with neither `sent_at` nor `failed_at`.
pub(super) fn claim_sql(dialect: Dialect, table: &str, columns: &str) -> String {
    let lock = match dialect {
        Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    // Materialized: PostgreSQL would otherwise run the locking subquery again for each
    // row it updates, and each run skips the rows claimed so far: more than `limit` rows.
    format!(
        "WITH due AS MATERIALIZED (
             SELECT id FROM {table} WHERE {PENDING} AND next_attempt_at <= $2
             ORDER BY next_attempt_at, id LIMIT $3 {lock})
         UPDATE {table} SET next_attempt_at = $1
         WHERE id IN (SELECT id FROM due) AND {PENDING} AND next_attempt_at <= $2
         RETURNING {columns}"
    )
}

impl Store {
    /// Queue `mail` on its own, due at once; returns its outbox id.
    pub async fn enqueue_mail(&self, mail: &Mail) -> Result<i64> {
        let mut conn = self.writer.acquire().await?;
        insert(&mut conn, mail, now_ms(), None).await
    }

    /// Up to `limit` pending messages due at `now`, the longest due first. Reading them
    /// claims nothing: the sender uses [`Store::claim_mail`].
    pub async fn due_mail(&self, now: i64, limit: i64) -> Result<Vec<OutboxRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE {PENDING} AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2"
        );
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    /// Claim up to `limit` pending messages due at `now` for one attempt each: they are not
    /// due again before `until` (by then the attempt is recorded, or its sender died). Returns
    /// them as they were due, the longest due first.
    pub async fn claim_mail(&self, now: i64, until: i64, limit: i64) -> Result<Vec<OutboxRecord>> {
        let sql = claim_sql(self.dialect, "outbox", COLUMNS);
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.writer)
            .await?;
        let mut claimed: Vec<OutboxRecord> = rows.into_iter().map(record).collect();
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    /// Record a delivery at `at`.
    pub async fn mark_mail_sent(&self, id: i64, at: i64) -> Result<()> {
        let sql = format!(
            "UPDATE outbox SET sent_at = $2, attempts = attempts + 1, next_attempt_at = $2 WHERE id = $1 AND {PENDING}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Record a failed attempt, to be tried again at `next_attempt_at`.
    pub async fn mark_mail_retry(&self, id: i64, error: &str, next_attempt_at: i64) -> Result<()> {
        let sql = format!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
             WHERE id = $1 AND {PENDING}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(error)
            .bind(next_attempt_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Record a last failed attempt at `at`: the message is given up on.
    pub async fn mark_mail_failed(&self, id: i64, error: &str, at: i64) -> Result<()> {
        let sql = format!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, failed_at = $3, next_attempt_at = $3
             WHERE id = $1 AND {PENDING}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(error)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// One message of the outbox.
    pub async fn outbox_mail(&self, id: i64) -> Result<Option<OutboxRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE id = $1");
        let row: Option<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(record))
    }

    /// Up to `limit` messages: the pending and failed ones first, then the sent ones, the
    /// newest first within each.
    pub async fn outbox(&self, limit: i64) -> Result<Vec<OutboxRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox
             ORDER BY CASE WHEN sent_at IS NULL THEN 0 ELSE 1 END, id DESC LIMIT $1"
        );
        let rows: Vec<OutboxRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(record).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    fn mail(to: &str) -> Mail {
        Mail {
            to: to.into(),
            subject: "Approve the block?".into(),
            text: "Approve: https://osprey.example/a/1".into(),
            html: "<p>Approve</p>".into(),
            about: Some("question:q1".into()),
            attachments: Vec::new(),
        }
    }

    both_dialects!(queued_mail_is_due_at_once_and_claimed_once, |store| {
        let a = store.enqueue_mail(&mail("a@example.org")).await.unwrap();
        let b = store.enqueue_mail(&mail("b@example.org")).await.unwrap();
        assert!(b > a);
        let now = now_ms() + 1;
        let due = store.due_mail(now, 10).await.unwrap();
        assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
        let r = &due[0];
        assert_eq!(r.to, "a@example.org");
        assert_eq!(r.subject, "Approve the block?");
        assert_eq!(r.text, "Approve: https://osprey.example/a/1");
        assert_eq!(r.html, "<p>Approve</p>");
        assert_eq!(r.about.as_deref(), Some("question:q1"));
        assert_eq!((r.attempts, r.state()), (0, "pending"));
        assert_eq!(store.due_mail(now, 1).await.unwrap().len(), 1, "the limit holds");

        // Claimed rows are not due again until the claim runs out, so no one sends them twice.
        let claimed = store.claim_mail(now, now + 60_000, 10).await.unwrap();
        assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, b]);
        assert!(store.claim_mail(now, now + 60_000, 10).await.unwrap().is_empty());
        assert!(store.due_mail(now, 10).await.unwrap().is_empty());
        // A sender that died mid-attempt: the rows come back when the claim runs out.
        assert_eq!(store.due_mail(now + 60_000, 10).await.unwrap().len(), 2);
        assert_eq!(
            store
                .claim_mail(now + 60_000, now + 120_000, 1)
                .await
                .unwrap()
                .len(),
            1
        );
    });

    both_dialects!(attempts_are_recorded_until_sent_or_failed, |store| {
        let sent = store.enqueue_mail(&mail("a@example.org")).await.unwrap();
        let failing = store.enqueue_mail(&mail("b@example.org")).await.unwrap();
        let later = store.enqueue_mail(&mail("c@example.org")).await.unwrap();
        let now = now_ms() + 1;

        store
            .mark_mail_retry(sent, "connection refused", now + 5_000)
            .await
            .unwrap();
        store.mark_mail_sent(sent, now + 5_100).await.unwrap();
        let r = store.outbox_mail(sent).await.unwrap().unwrap();
        assert_eq!((r.state(), r.attempts, r.sent_at), ("sent", 2, Some(now + 5_100)));
        assert_eq!(r.last_error.as_deref(), Some("connection refused"));

        store
            .mark_mail_retry(failing, "permanent error (535): bad credentials", now + 5_000)
            .await
            .unwrap();
        let r = store.outbox_mail(failing).await.unwrap().unwrap();
        assert_eq!(
            (r.state(), r.attempts, r.next_attempt_at),
            ("pending", 1, now + 5_000)
        );
        assert_eq!(
            r.last_error.as_deref(),
            Some("permanent error (535): bad credentials")
        );
        let due: Vec<i64> = store
            .due_mail(now, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(due, vec![later], "a retry waits for its time");
        assert!(
            store
                .due_mail(now + 5_000, 10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.id == failing)
        );
        store
            .mark_mail_failed(failing, "timed out", now + 6_000)
            .await
            .unwrap();
        let r = store.outbox_mail(failing).await.unwrap().unwrap();
        assert_eq!(
            (r.state(), r.attempts, r.failed_at),
            ("failed", 2, Some(now + 6_000))
        );
        assert_eq!(r.last_error.as_deref(), Some("timed out"));
        // Neither sent nor failed mail is due again, and they are not changed any more.
        let due: Vec<i64> = store
            .due_mail(now + 100_000, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(due, vec![later]);
        store.mark_mail_retry(sent, "late", now + 7_000).await.unwrap();
        store.mark_mail_sent(failing, now + 7_000).await.unwrap();
        assert_eq!(store.outbox_mail(sent).await.unwrap().unwrap().attempts, 2);
        assert_eq!(
            store.outbox_mail(failing).await.unwrap().unwrap().state(),
            "failed"
        );
        assert!(store.outbox_mail(9_999_999).await.unwrap().is_none());

        // Pending and failed first (newest first), then sent.
        let listed: Vec<i64> = store.outbox(10).await.unwrap().iter().map(|r| r.id).collect();
        assert_eq!(listed, vec![later, failing, sent]);
        assert_eq!(store.outbox(2).await.unwrap().len(), 2);
    });

    both_dialects!(attachments_are_kept_with_their_message, |store| {
        use crate::mail::attachment::ContentType;
        let csv = Attachment {
            name: "incidents.csv".into(),
            content_type: ContentType::Csv,
            text: "id,title\ni1,\"a, b\"\n".into(),
        };
        let with = store
            .enqueue_mail(&Mail {
                attachments: vec![csv.clone()],
                ..mail("a@example.org")
            })
            .await
            .unwrap();
        let without = store.enqueue_mail(&mail("b@example.org")).await.unwrap();
        let r = store.outbox_mail(with).await.unwrap().unwrap();
        assert_eq!((r.attachments, r.unreadable), (vec![csv], None));
        let r = store.outbox_mail(without).await.unwrap().unwrap();
        assert!(r.attachments.is_empty() && r.unreadable.is_none());
        // Edited by hand: the row still lists, and says why its attachments are not there.
        sqlx::query("UPDATE outbox SET attachments = 'not json' WHERE id = $1")
            .bind(without)
            .execute(&store.writer)
            .await
            .unwrap();
        let r = store.outbox_mail(without).await.unwrap().unwrap();
        assert!(r.unreadable.unwrap().contains("its attachments are unreadable"));
    });

    both_dialects!(enqueue_joins_the_callers_transaction, |store| {
        let now = now_ms();
        let mut tx = store.writer.begin().await.unwrap();
        enqueue(&mut tx, &mail("a@example.org"), now, None).await.unwrap();
        tx.rollback().await.unwrap();
        assert!(
            store.outbox(10).await.unwrap().is_empty(),
            "rolled back with its transaction"
        );
        let mut tx = store.writer.begin().await.unwrap();
        enqueue(&mut tx, &mail("a@example.org"), now, None).await.unwrap();
        tx.commit().await.unwrap();
        let all = store.outbox(10).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].created_at, all[0].next_attempt_at), (now, now));
    });
}
