//! The Slack outbox: what the `slack` plugin is to post for questions (the question with
//! its buttons, the message it becomes once answered, a word to one person whose click changed
//! nothing), written in the transaction that decided it and delivered by the server's sender
//! (`humans/slack_sender.rs`), which claims due rows as the mail sender does (`outbox.rs`'s
//! claim) and records each attempt: sent (a post with the channel and `ts` Slack gave it,
//! which its update and ephemeral messages use), tried again later, or given up on (audited
//! as `question.slack_failed`, and on the question's incident's timeline).

use super::audit::{self, Actor, Change};
use super::incidents::add_event;
use super::outbox::claim_sql;
use super::{Result, Store, StoreError, now_ms};
use serde::Serialize;
use serde_json::Value;

/// What a row asks the plugin to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlackKind {
    /// The question, with one button per choice (`post-message`).
    Post,
    /// The post, once answered: who answered, no buttons (`update-message`).
    Update,
    /// A message only one person sees, in the post's channel (`post-ephemeral`).
    Ephemeral,
}

impl SlackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SlackKind::Post => "post",
            SlackKind::Update => "update",
            SlackKind::Ephemeral => "ephemeral",
        }
    }

    fn parse(s: &str) -> Option<SlackKind> {
        Some(match s {
            "post" => SlackKind::Post,
            "update" => SlackKind::Update,
            "ephemeral" => SlackKind::Ephemeral,
            _ => return None,
        })
    }
}

/// A question's post, stored with the question (`Store::create_question_with`).
#[derive(Debug, Clone)]
pub struct NewSlackPost {
    pub plugin: String,
    /// What `humans::slack::post` made: where it goes, its text, its buttons.
    pub input: Value,
}

/// A row of the Slack outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlackRecord {
    pub id: i64,
    pub kind: SlackKind,
    pub plugin: String,
    pub question_id: String,
    pub link_id: Option<String>,
    pub post_id: Option<i64>,
    pub input: Value,
    pub created_at: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
    pub channel: Option<String>,
    pub ts: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SlackRow {
    id: i64,
    kind: String,
    plugin: String,
    question_id: String,
    link_id: Option<String>,
    post_id: Option<i64>,
    input: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    sent_at: Option<i64>,
    failed_at: Option<i64>,
    last_error: Option<String>,
    channel: Option<String>,
    ts: Option<String>,
}

const COLUMNS: &str = "id, kind, plugin, question_id, link_id, post_id, input, created_at, attempts, \
     next_attempt_at, sent_at, failed_at, last_error, channel, ts";

/// Not sent and not given up on.
const PENDING: &str = "sent_at IS NULL AND failed_at IS NULL";

fn record(r: SlackRow) -> Result<SlackRecord> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("slack_outbox {}: {what}", r.id));
    Ok(SlackRecord {
        id: r.id,
        kind: SlackKind::parse(&r.kind).ok_or_else(|| corrupt("kind"))?,
        input: serde_json::from_str(&r.input).map_err(|_| corrupt("input"))?,
        plugin: r.plugin,
        question_id: r.question_id,
        link_id: r.link_id,
        post_id: r.post_id,
        created_at: r.created_at,
        attempts: r.attempts,
        next_attempt_at: r.next_attempt_at,
        sent_at: r.sent_at,
        failed_at: r.failed_at,
        last_error: r.last_error,
        channel: r.channel,
        ts: r.ts,
    })
}

/// Queue a post of question `question` carrying link `link`, due at once (inside the
/// transaction that stores the question).
pub(super) async fn enqueue_post(
    conn: &mut sqlx::AnyConnection,
    post: &NewSlackPost,
    question: &str,
    link: &str,
    now: i64,
) -> Result<i64> {
    insert(
        conn,
        SlackKind::Post,
        &post.plugin,
        question,
        Some(link),
        None,
        &post.input,
        now,
    )
    .await
}

/// Queue an update or ephemeral message to the post that carries link `link` (inside the
/// caller's transaction). Returns false when no post carries it.
pub(super) async fn enqueue_to_post_of(
    conn: &mut sqlx::AnyConnection,
    link: &str,
    kind: SlackKind,
    input: &Value,
    now: i64,
) -> Result<bool> {
    #[derive(sqlx::FromRow)]
    struct Post {
        id: i64,
        plugin: String,
        question_id: String,
    }
    let post: Option<Post> = sqlx::query_as(
        "SELECT id, plugin, question_id FROM slack_outbox WHERE link_id = $1 AND kind = 'post' ORDER BY id LIMIT 1",
    )
    .bind(link)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(post) = post else {
        return Ok(false);
    };
    insert(
        conn,
        kind,
        &post.plugin,
        &post.question_id,
        None,
        Some(post.id),
        input,
        now,
    )
    .await?;
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut sqlx::AnyConnection,
    kind: SlackKind,
    plugin: &str,
    question: &str,
    link: Option<&str>,
    post: Option<i64>,
    input: &Value,
    now: i64,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO slack_outbox (kind, plugin, question_id, link_id, post_id, input, created_at, attempts,
             next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7) RETURNING id",
    )
    .bind(kind.as_str())
    .bind(plugin)
    .bind(question)
    .bind(link)
    .bind(post)
    .bind(input.to_string())
    .bind(now)
    .fetch_one(&mut *conn)
    .await?)
}

impl Store {
    /// Queue an ephemeral message to the post that carries link `link`, on its own. Returns
    /// false when no post carries it.
    pub async fn queue_slack_notice(&self, link: &str, input: &Value) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let queued = enqueue_to_post_of(&mut tx, link, SlackKind::Ephemeral, input, now_ms()).await?;
        tx.commit().await?;
        Ok(queued)
    }

    /// Whether anything is due at `now` (a read, before a claim, which is a write).
    pub async fn slack_due(&self, now: i64) -> Result<bool> {
        let sql = format!("SELECT id FROM slack_outbox WHERE {PENDING} AND next_attempt_at <= $1 LIMIT 1");
        let due: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(due.is_some())
    }

    /// Claim up to `limit` rows due at `now` for one attempt each (not due again before
    /// `until`), the longest due first.
    pub async fn claim_slack(&self, now: i64, until: i64, limit: i64) -> Result<Vec<SlackRecord>> {
        let sql = claim_sql(self.dialect, "slack_outbox", COLUMNS);
        let rows: Vec<SlackRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.writer)
            .await?;
        let mut claimed = rows.into_iter().map(record).collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    /// Row `id`.
    pub async fn slack_outbox_row(&self, id: i64) -> Result<Option<SlackRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM slack_outbox WHERE id = $1");
        let row: Option<SlackRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(record).transpose()
    }

    /// The rows of question `id`, oldest first.
    pub async fn slack_outbox_of(&self, question: &str) -> Result<Vec<SlackRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM slack_outbox WHERE question_id = $1 ORDER BY id");
        let rows: Vec<SlackRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(question)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(record).collect()
    }

    /// Record a delivery at `at`; a post keeps the channel and `ts` Slack gave it.
    pub async fn mark_slack_sent(
        &self,
        id: i64,
        at: i64,
        channel: Option<&str>,
        ts: Option<&str>,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE slack_outbox SET sent_at = $2, attempts = attempts + 1, next_attempt_at = $2,
                 channel = COALESCE($3, channel), ts = COALESCE($4, ts)
             WHERE id = $1 AND {PENDING}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(at)
            .bind(channel)
            .bind(ts)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Try row `id` again at `next_attempt_at`: after a failed attempt (`error`, counted),
    /// or, without an error, because it waits for its post (not counted).
    pub async fn mark_slack_retry(&self, id: i64, error: Option<&str>, next_attempt_at: i64) -> Result<()> {
        let sql = format!(
            "UPDATE slack_outbox SET attempts = attempts + CASE WHEN $2 IS NULL THEN 0 ELSE 1 END,
                 last_error = COALESCE($2, last_error), next_attempt_at = $3
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

    /// Give row `id` up at `at` with `error`: audited as `question.slack_failed` (by the
    /// system) and put on the question's incident's timeline, so it is seen.
    pub async fn mark_slack_failed(&self, row: &SlackRecord, error: &str, at: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let sql = format!(
            "UPDATE slack_outbox SET attempts = attempts + 1, last_error = $2, failed_at = $3, next_attempt_at = $3
             WHERE id = $1 AND {PENDING}"
        );
        let changed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(row.id)
            .bind(error)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !changed {
            return Ok(());
        }
        let incident: Option<Option<String>> =
            sqlx::query_scalar("SELECT incident_id FROM questions WHERE id = $1")
                .bind(&row.question_id)
                .fetch_optional(&mut *tx)
                .await?;
        let details = serde_json::json!({
            "question": row.question_id, "plugin": row.plugin, "message": row.kind, "error": error,
            "attempts": row.attempts + 1,
        });
        let actor = Actor::system();
        if let Some(Some(incident)) = incident {
            add_event(&mut tx, &incident, &actor, "slack_failed", details.clone()).await?;
        }
        let change = Change {
            actor: &actor,
            action: "question.slack_failed",
            target: format!("question:{}", row.question_id),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    both_dialects!(a_post_is_claimed_once_and_its_update_finds_it, |store| {
        let mut tx = store.writer.begin().await.unwrap();
        let post = NewSlackPost {
            plugin: "slack".into(),
            input: serde_json::json!({ "to": "#soc", "text": "OK?", "buttons": [] }),
        };
        let now = now_ms();
        let id = enqueue_post(&mut tx, &post, "q1", "k1", now).await.unwrap();
        let update = serde_json::json!({ "text": "done" });
        assert!(
            enqueue_to_post_of(&mut tx, "k1", SlackKind::Update, &update, now)
                .await
                .unwrap()
        );
        assert!(
            !enqueue_to_post_of(&mut tx, "k-none", SlackKind::Update, &update, now)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        assert!(store.slack_due(now).await.unwrap());
        let claimed = store.claim_slack(now, now + 60_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 2);
        assert_eq!((claimed[0].id, claimed[0].kind), (id, SlackKind::Post));
        assert_eq!(
            (claimed[1].kind, claimed[1].post_id),
            (SlackKind::Update, Some(id))
        );
        assert!(store.claim_slack(now, now + 60_000, 10).await.unwrap().is_empty());
        store
            .mark_slack_sent(id, now, Some("C1"), Some("1.000001"))
            .await
            .unwrap();
        let sent = store.slack_outbox_row(id).await.unwrap().unwrap();
        assert_eq!(
            (sent.channel.as_deref(), sent.ts.as_deref()),
            (Some("C1"), Some("1.000001"))
        );
        // Waiting for the post is not an attempt; a failure is.
        store.mark_slack_retry(claimed[1].id, None, now).await.unwrap();
        store
            .mark_slack_retry(claimed[1].id, Some("unavailable"), now)
            .await
            .unwrap();
        let u = store.slack_outbox_row(claimed[1].id).await.unwrap().unwrap();
        assert_eq!((u.attempts, u.last_error.as_deref()), (1, Some("unavailable")));
        store.mark_slack_failed(&u, "denied", now).await.unwrap();
        let u = store.slack_outbox_row(claimed[1].id).await.unwrap().unwrap();
        assert_eq!((u.attempts, u.failed_at), (2, Some(now)));
        let audit = store.audit_entries(0, 10, Some("question.")).await.unwrap();
        assert_eq!(audit[0].action, "question.slack_failed");
        assert_eq!(audit[0].details["error"], "denied");
        assert_eq!(store.slack_outbox_of("q1").await.unwrap().len(), 2);
    });
}
