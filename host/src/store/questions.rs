//! Questions that playbooks ask people, the signed links that answer them or escalate an
//! incident, and what answering does: in one transaction the question is closed with its
//! answer (compare-and-set, so it is answered once), the link is spent, the answer goes on
//! the incident's timeline and into the audit log, and the waiting run is woken.

use super::audit::{self, Actor, Change};
use super::incidents::{IncidentStatus, add_event};
use super::{Result, Store, StoreError, now_ms};
use crate::humans::links::Purpose;
use crate::humans::questions::{Kind, Question};
use crate::mail::message::Mail;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// A question's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionStatus {
    Open,
    Answered,
    /// Past due: it took its default answer, or none.
    TimedOut,
    /// Its run no longer waits for it.
    Cancelled,
}

impl QuestionStatus {
    /// The names of the states, as [`as_str`](Self::as_str) gives them (and the store keeps
    /// them).
    pub const NAMES: &[&str] = &["open", "answered", "timed_out", "cancelled"];

    pub fn as_str(&self) -> &'static str {
        match self {
            QuestionStatus::Open => "open",
            QuestionStatus::Answered => "answered",
            QuestionStatus::TimedOut => "timed_out",
            QuestionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<QuestionStatus> {
        Some(match s {
            "open" => QuestionStatus::Open,
            "answered" => QuestionStatus::Answered,
            "timed_out" => QuestionStatus::TimedOut,
            "cancelled" => QuestionStatus::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for QuestionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A question ready to be stored.
#[derive(Debug, Clone)]
pub struct NewQuestion {
    pub id: String,
    pub title: String,
    pub body: String,
    pub question: Question,
    pub to_user: Option<String>,
    pub to_role: Option<String>,
    pub to_email: Option<String>,
    /// Where in Slack it is asked too (`#soc`, `@U0123ABCD`).
    pub to_slack: Option<String>,
    pub incident_id: Option<String>,
    pub run_id: Option<String>,
    pub due_at: Option<i64>,
    pub remind_every_ms: Option<i64>,
}

impl NewQuestion {
    /// The question `checked` asks, with a fresh id, due `checked.due_ms` after `now`.
    pub fn from_checked(
        checked: crate::humans::questions::Checked,
        incident: Option<&str>,
        run: Option<&str>,
        now: i64,
    ) -> NewQuestion {
        use crate::humans::questions::Addressee;
        let (to_user, to_role, to_email) = match checked.to {
            Some(Addressee::User(u)) => (Some(u), None, None),
            Some(Addressee::Role(r)) => (None, Some(r), None),
            Some(Addressee::Email(e)) => (None, None, Some(e)),
            None => (None, None, None),
        };
        NewQuestion {
            id: super::new_id('q'),
            title: checked.title,
            body: checked.text,
            question: checked.question,
            to_user,
            to_role,
            to_email,
            to_slack: checked.slack.map(|t| t.as_str()),
            incident_id: incident.map(str::to_owned),
            run_id: run.map(str::to_owned),
            due_at: checked.due_ms.map(|ms| now.saturating_add(ms)),
            remind_every_ms: checked.remind_ms,
        }
    }
}

/// A link ready to be stored (its token is signed by the caller).
#[derive(Debug, Clone)]
pub struct NewLink {
    pub id: String,
    pub purpose: Purpose,
    pub question_id: Option<String>,
    pub incident_id: Option<String>,
    /// `user:NAME` or `email:ADDRESS`.
    pub recipient: String,
    pub expires_at: i64,
}

/// A question as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionRecord {
    pub id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub question: Question,
    pub to_user: Option<String>,
    pub to_role: Option<String>,
    pub to_email: Option<String>,
    /// Where in Slack it is asked too.
    pub to_slack: Option<String>,
    pub incident_id: Option<String>,
    pub run_id: Option<String>,
    pub status: QuestionStatus,
    pub created_at: i64,
    pub due_at: Option<i64>,
    pub reminders_sent: i64,
    pub remind_every_ms: Option<i64>,
    pub next_remind_at: Option<i64>,
    /// `{ "value": ..., "comment": "..." }`
    pub answer: Option<Value>,
    /// `user:NAME`, `email:ADDRESS`, `slack:MEMBER` or `timeout`.
    pub answered_by: Option<String>,
    pub answered_at: Option<i64>,
    /// web, link, timeout, or the plugin a click came through (`slack`)
    pub answered_via: Option<String>,
}

impl QuestionRecord {
    /// Who it is for, in words.
    pub fn addressee(&self) -> String {
        let who = match (&self.to_user, &self.to_role, &self.to_email) {
            (Some(u), _, _) => Some(format!("user {u}")),
            (_, Some(r), _) => Some(format!("role {r}")),
            (_, _, Some(e)) => Some(e.clone()),
            _ => None,
        };
        match (who, &self.to_slack) {
            (Some(who), Some(slack)) => format!("{who} and Slack {slack}"),
            (Some(who), None) => who,
            (None, Some(slack)) => format!("Slack {slack}"),
            (None, None) => "nobody".into(),
        }
    }

    /// What the waiting script gets: `#{ answer, comment, by, at, via, timed_out }`.
    pub fn outcome(&self) -> Value {
        let answer = self.answer.clone().unwrap_or(Value::Null);
        serde_json::json!({
            "question": self.id,
            "answer": answer["value"],
            "comment": answer["comment"].as_str().unwrap_or(""),
            "by": self.answered_by,
            "at": self.answered_at,
            "via": self.answered_via,
            "timed_out": self.status == QuestionStatus::TimedOut,
        })
    }
}

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkRecord {
    pub id: String,
    pub purpose: String,
    pub question_id: Option<String>,
    pub incident_id: Option<String>,
    pub recipient: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub used_from: Option<String>,
    pub used_agent: Option<String>,
}

/// Who is answering, and how.
#[derive(Debug, Clone)]
pub enum Answerer<'a> {
    /// Whoever holds this link (its recipient is recorded as the one who answered).
    Link {
        link: &'a str,
        from: Option<&'a str>,
        agent: Option<&'a str>,
    },
    /// A signed-in user, from the inbox: must be the addressee or in the addressed role.
    User {
        name: &'a str,
        from: Option<&'a str>,
        agent: Option<&'a str>,
    },
    /// Someone who clicked a button of the chat message that carries `link` (its token
    /// checked by `humans`), through `plugin`: recorded as `by` (`slack:U0123ABCD`), with
    /// the Osprey `user` their e-mail address maps to. The post is then updated to
    /// `notice` (queued in the same transaction).
    Chat {
        link: &'a str,
        plugin: &'a str,
        by: &'a str,
        email: Option<&'a str>,
        user: Option<&'a str>,
        notice: &'a Value,
    },
}

/// Why an answer or an escalation was not taken. Nothing changed in any case.
#[derive(Debug, Error)]
pub enum QuestionError {
    #[error("no question '{0}'")]
    NotFound(String),
    #[error("no such link")]
    NoLink,
    #[error("this link was already used")]
    LinkUsed { at: i64 },
    #[error("this question was already answered")]
    Answered { by: String, at: i64 },
    #[error("this question timed out and took its default answer")]
    TimedOut { at: i64 },
    #[error("this question was cancelled")]
    Cancelled,
    #[error("this question is for {addressee}; user '{user}' is neither that user nor a member of that role")]
    NotAllowed { user: String, addressee: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for QuestionError {
    fn from(e: sqlx::Error) -> Self {
        QuestionError::Store(StoreError::from(e))
    }
}

const QUESTION_COLUMNS: &str =
    "id, kind, title, body, spec, to_user, to_role, to_email, to_slack, incident_id, run_id, status,
     created_at, due_at, reminders_sent, remind_every_ms, next_remind_at, answer, answered_by, answered_at,
     answered_via";

#[derive(sqlx::FromRow)]
struct QuestionRow {
    id: String,
    kind: String,
    title: String,
    body: String,
    spec: String,
    to_user: Option<String>,
    to_role: Option<String>,
    to_email: Option<String>,
    to_slack: Option<String>,
    incident_id: Option<String>,
    run_id: Option<String>,
    status: String,
    created_at: i64,
    due_at: Option<i64>,
    reminders_sent: i64,
    remind_every_ms: Option<i64>,
    next_remind_at: Option<i64>,
    answer: Option<String>,
    answered_by: Option<String>,
    answered_at: Option<i64>,
    answered_via: Option<String>,
}

fn question_from_row(r: QuestionRow) -> Result<QuestionRecord> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("question {}: {what}: {e}", r.id))
    };
    let kind = Kind::parse(&r.kind).ok_or_else(|| corrupt("kind", &r.kind))?;
    let status = QuestionStatus::parse(&r.status).ok_or_else(|| corrupt("status", &r.status))?;
    let question: Question = serde_json::from_str(&r.spec).map_err(|e| corrupt("spec", &e))?;
    let answer = match &r.answer {
        Some(a) => Some(serde_json::from_str(a).map_err(|e| corrupt("answer", &e))?),
        None => None,
    };
    Ok(QuestionRecord {
        id: r.id,
        kind,
        title: r.title,
        body: r.body,
        question,
        to_user: r.to_user,
        to_role: r.to_role,
        to_email: r.to_email,
        to_slack: r.to_slack,
        incident_id: r.incident_id,
        run_id: r.run_id,
        status,
        created_at: r.created_at,
        due_at: r.due_at,
        reminders_sent: r.reminders_sent,
        remind_every_ms: r.remind_every_ms,
        next_remind_at: r.next_remind_at,
        answer,
        answered_by: r.answered_by,
        answered_at: r.answered_at,
        answered_via: r.answered_via,
    })
}

async fn question_in(conn: &mut sqlx::AnyConnection, id: &str) -> Result<Option<QuestionRecord>> {
    let sql = format!("SELECT {QUESTION_COLUMNS} FROM questions WHERE id = $1");
    let row: Option<QuestionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(question_from_row).transpose()
}

/// The incident an escalation link is for, as the escalation reads it.
#[derive(sqlx::FromRow)]
struct EscalatedRow {
    #[sqlx(rename = "type")]
    kind: String,
    severity: String,
    status: String,
}

const LINK_COLUMNS: &str = "id, purpose, question_id, incident_id, recipient, created_at, expires_at, used_at, used_from, used_agent";

/// A `links` row, by column name.
#[derive(sqlx::FromRow)]
struct LinkRow {
    id: String,
    purpose: String,
    question_id: Option<String>,
    incident_id: Option<String>,
    recipient: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    used_from: Option<String>,
    used_agent: Option<String>,
}

fn link_from_row(r: LinkRow) -> LinkRecord {
    LinkRecord {
        id: r.id,
        purpose: r.purpose,
        question_id: r.question_id,
        incident_id: r.incident_id,
        recipient: r.recipient,
        created_at: r.created_at,
        expires_at: r.expires_at,
        used_at: r.used_at,
        used_from: r.used_from,
        used_agent: r.used_agent,
    }
}

async fn link_in(conn: &mut sqlx::AnyConnection, id: &str) -> Result<Option<LinkRecord>> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE id = $1");
    let row: Option<LinkRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(link_from_row))
}

async fn insert_links(conn: &mut sqlx::AnyConnection, links: &[NewLink], now: i64) -> Result<()> {
    for l in links {
        sqlx::query(
            "INSERT INTO links (id, purpose, question_id, incident_id, recipient, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&l.id)
        .bind(l.purpose.as_str())
        .bind(&l.question_id)
        .bind(&l.incident_id)
        .bind(&l.recipient)
        .bind(now)
        .bind(l.expires_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Spend link `id` (compare-and-set): false if it was used already.
async fn spend_link(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    now: i64,
    from: Option<&str>,
    agent: Option<&str>,
) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE links SET used_at = $1, used_from = $2, used_agent = $3 WHERE id = $4 AND used_at IS NULL",
    )
    .bind(now)
    .bind(from)
    .bind(agent.map(|a| a.chars().take(300).collect::<String>()))
    .bind(id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

/// Close question `id` with `answer` if it is still open (compare-and-set); put it on the
/// incident's timeline, audit it, wake the run. Returns false if it was not open.
#[allow(clippy::too_many_arguments)]
async fn close_question(
    conn: &mut sqlx::AnyConnection,
    key: &crate::vault::AuditChainKey,
    q: &QuestionRecord,
    status: QuestionStatus,
    answer: &Value,
    by: &str,
    via: &str,
    actor: &Actor,
    audit_details: Value,
    now: i64,
) -> Result<bool> {
    let closed = sqlx::query(
        "UPDATE questions SET status = $1, answer = $2, answered_by = $3, answered_at = $4, answered_via = $5,
             next_remind_at = NULL
         WHERE id = $6 AND status = 'open'",
    )
    .bind(status.as_str())
    .bind(answer.to_string())
    .bind(by)
    .bind(now)
    .bind(via)
    .bind(&q.id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !closed {
        return Ok(false);
    }
    let action = if status == QuestionStatus::TimedOut {
        "question.timeout"
    } else {
        "question.answer"
    };
    if let Some(incident) = &q.incident_id {
        let details = serde_json::json!({
            "question": q.id, "title": q.title, "answer": answer["value"], "comment": answer["comment"],
            "by": by, "via": via,
        });
        add_event(conn, incident, actor, status.as_str(), details).await?;
    }
    let change = Change {
        actor,
        action,
        target: format!("question:{}", q.id),
        details: audit_details,
    };
    audit::append(conn, key, &change).await?;
    if let Some(run) = &q.run_id {
        super::runs::wake_run(conn, run, now).await?;
    }
    Ok(true)
}

/// The run's questions no longer wait (inside the caller's transaction): those asked from
/// step `from_step` on (all, if `None`) are cancelled if open, and forget their step, so a
/// restarted run that takes those steps again asks again. Returns how many were cancelled.
pub(super) async fn release_questions(
    conn: &mut sqlx::AnyConnection,
    run_id: &str,
    from_step: Option<i64>,
    now: i64,
) -> Result<u64> {
    // Step keys are `RUN:SEQ`.
    let from = "($2 IS NULL OR CAST(substr(step_key, length(run_id) + 2) AS INTEGER) >= $2)";
    let cancelled = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE questions SET status = 'cancelled', answered_at = $3, answered_via = 'cancelled', next_remind_at = NULL
         WHERE run_id = $1 AND status = 'open' AND {from}"
    )))
    .bind(run_id)
    .bind(from_step)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if from_step.is_some() {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE questions SET step_key = NULL WHERE run_id = $1 AND step_key IS NOT NULL AND {from}"
        )))
        .bind(run_id)
        .bind(from_step)
        .execute(&mut *conn)
        .await?;
    }
    Ok(cancelled)
}

/// Why question `q` cannot be answered, given it is not open.
fn not_open(q: &QuestionRecord) -> QuestionError {
    match q.status {
        QuestionStatus::TimedOut => QuestionError::TimedOut {
            at: q.answered_at.unwrap_or_default(),
        },
        QuestionStatus::Cancelled => QuestionError::Cancelled,
        QuestionStatus::Open | QuestionStatus::Answered => QuestionError::Answered {
            by: q.answered_by.clone().unwrap_or_default(),
            at: q.answered_at.unwrap_or_default(),
        },
    }
}

impl Store {
    /// Store a question with its links and the mails that carry them (audited as
    /// `question.ask`, on its incident's timeline). A playbook passes its step's key: the
    /// same step taken again returns the question it asked the first time, and mails nothing.
    pub async fn create_question(
        &self,
        q: &NewQuestion,
        links: &[NewLink],
        mails: &[Mail],
        actor: &Actor,
        step_key: Option<&str>,
    ) -> Result<QuestionRecord> {
        self.create_question_with(q, links, mails, None, actor, step_key)
            .await
    }

    /// [`Store::create_question`], with a chat message to post: `slack` is the post and the
    /// id of the link (among `links`) its buttons carry, queued in the Slack outbox in the
    /// same transaction.
    pub async fn create_question_with(
        &self,
        q: &NewQuestion,
        links: &[NewLink],
        mails: &[Mail],
        slack: Option<(&super::slack_outbox::NewSlackPost, &str)>,
        actor: &Actor,
        step_key: Option<&str>,
    ) -> Result<QuestionRecord> {
        let mut tx = self.writer.begin().await?;
        if let Some(key) = step_key {
            let made: Option<String> = sqlx::query_scalar("SELECT id FROM questions WHERE step_key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = made {
                return question_in(&mut tx, &id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("question {id} vanished")));
            }
        }
        if let Some(incident) = &q.incident_id
            && !super::incidents::incident_exists(&mut tx, incident).await?
        {
            return Err(StoreError::Invalid(format!("no incident '{incident}'")));
        }
        let now = now_ms();
        let spec = serde_json::to_string(&q.question).expect("a question serialises");
        sqlx::query(
            "INSERT INTO questions (id, kind, title, body, spec, to_user, to_role, to_email, incident_id, run_id,
                 step_key, status, created_at, due_at, remind_every_ms, next_remind_at, to_slack)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'open', $12, $13, $14, $15, $16)",
        )
        .bind(&q.id)
        .bind(q.question.kind.as_str())
        .bind(&q.title)
        .bind(&q.body)
        .bind(spec)
        .bind(&q.to_user)
        .bind(&q.to_role)
        .bind(&q.to_email)
        .bind(&q.incident_id)
        .bind(&q.run_id)
        .bind(step_key)
        .bind(now)
        .bind(q.due_at)
        .bind(q.remind_every_ms)
        .bind(q.remind_every_ms.map(|r| now.saturating_add(r)))
        .bind(&q.to_slack)
        .execute(&mut *tx)
        .await?;
        insert_links(&mut tx, links, now).await?;
        for mail in mails {
            super::outbox::enqueue(&mut tx, mail, now, None).await?;
        }
        if let Some((post, link)) = slack {
            super::slack_outbox::enqueue_post(&mut tx, post, &q.id, link, now).await?;
        }
        let record = question_in(&mut tx, &q.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("question {} vanished", q.id)))?;
        let details = serde_json::json!({
            "question": q.id, "kind": q.question.kind, "title": q.title, "to": record.addressee(),
            "due_at": q.due_at, "mailed": mails.iter().map(|m| &m.to).collect::<Vec<_>>(),
            "slack": q.to_slack,
        });
        if let Some(incident) = &q.incident_id {
            add_event(&mut tx, incident, actor, "question", details.clone()).await?;
        }
        let change = Change {
            actor,
            action: "question.ask",
            target: format!("question:{}", q.id),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Question `id`.
    pub async fn question(&self, id: &str) -> Result<Option<QuestionRecord>> {
        let mut conn = self.pool.acquire().await?;
        question_in(&mut conn, id).await
    }

    /// Questions, newest first: all, or only those with `status`, or only those a user
    /// may answer (addressed to them, to an enabled membership of theirs, or to their e-mail
    /// address, in any case).
    pub async fn questions(
        &self,
        status: Option<QuestionStatus>,
        for_user: Option<&str>,
        limit: i64,
    ) -> Result<Vec<QuestionRecord>> {
        let sql = format!(
            "SELECT {QUESTION_COLUMNS} FROM questions
             WHERE ($1 IS NULL OR status = $1)
               AND ($2 IS NULL OR to_user = $2
                    OR to_role IN (SELECT r.role FROM user_roles r JOIN users u ON u.name = r.user_name
                                   WHERE r.user_name = $2 AND u.disabled_at IS NULL)
                    OR lower(to_email) = (SELECT lower(u.email) FROM users u
                                          WHERE u.name = $2 AND u.disabled_at IS NULL))
             ORDER BY created_at DESC, id DESC LIMIT $3"
        );
        let rows: Vec<QuestionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(status.as_ref().map(QuestionStatus::as_str))
            .bind(for_user)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(question_from_row).collect()
    }

    /// How many questions are open (for the metrics).
    pub async fn count_open_questions(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM questions WHERE status = 'open'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Link `id`.
    pub async fn link(&self, id: &str) -> Result<Option<LinkRecord>> {
        let mut conn = self.pool.acquire().await?;
        link_in(&mut conn, id).await
    }

    /// The links of question `id` (to mail reminders with the same links).
    pub async fn question_links(&self, id: &str) -> Result<Vec<LinkRecord>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE question_id = $1 ORDER BY recipient");
        let rows: Vec<LinkRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(link_from_row).collect())
    }

    /// Answer question `id` (checked by the caller against the question: see
    /// `Question::read_answer`). Through a link, the link must be unused and is spent; a
    /// signed-in user must be the addressee or a member of the addressed role. Audited as
    /// `question.answer` with the address and user agent; wakes the waiting run.
    pub async fn answer_question(
        &self,
        id: &str,
        answer: &Value,
        who: &Answerer<'_>,
    ) -> Result<QuestionRecord, QuestionError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let q = question_in(&mut tx, id)
            .await?
            .ok_or_else(|| QuestionError::NotFound(id.to_owned()))?;
        let mut extra = Value::Null;
        let (by, via, from, agent) = match who {
            Answerer::Chat {
                link,
                plugin,
                by,
                email,
                user,
                ..
            } => {
                let l = link_in(&mut tx, link).await?.ok_or(QuestionError::NoLink)?;
                if l.question_id.as_deref() != Some(id) || l.purpose != Purpose::Chat.as_str() {
                    return Err(QuestionError::NoLink);
                }
                // Closed first: whoever clicks late learns who answered.
                if q.status != QuestionStatus::Open {
                    return Err(not_open(&q));
                }
                if !spend_link(&mut tx, link, now, Some(by), Some(plugin)).await? {
                    return Err(QuestionError::LinkUsed { at: now });
                }
                extra = serde_json::json!({ "user": user, "email": email, "plugin": plugin });
                ((*by).to_owned(), *plugin, None, None)
            }
            Answerer::Link { link, from, agent } => {
                let l = link_in(&mut tx, link).await?.ok_or(QuestionError::NoLink)?;
                if l.question_id.as_deref() != Some(id) {
                    return Err(QuestionError::NoLink);
                }
                if let Some(at) = l.used_at {
                    return Err(QuestionError::LinkUsed { at });
                }
                if q.status != QuestionStatus::Open {
                    return Err(not_open(&q));
                }
                if !spend_link(&mut tx, link, now, *from, *agent).await? {
                    return Err(QuestionError::LinkUsed { at: now });
                }
                (l.recipient, "link", *from, *agent)
            }
            Answerer::User { name, from, agent } => {
                if q.status != QuestionStatus::Open {
                    return Err(not_open(&q));
                }
                let roles: Vec<String> = sqlx::query_scalar(
                    "SELECT r.role FROM user_roles r JOIN users u ON u.name = r.user_name
                     WHERE r.user_name = $1 AND u.disabled_at IS NULL",
                )
                .bind(*name)
                .fetch_all(&mut *tx)
                .await?;
                let email: Option<Option<String>> =
                    sqlx::query_scalar("SELECT email FROM users WHERE name = $1 AND disabled_at IS NULL")
                        .bind(*name)
                        .fetch_optional(&mut *tx)
                        .await?;
                let own_address = |to: &String| {
                    email
                        .as_ref()
                        .and_then(Option::as_deref)
                        .is_some_and(|e| e.eq_ignore_ascii_case(to))
                };
                let allowed = q.to_user.as_deref() == Some(*name)
                    || q.to_role.as_ref().is_some_and(|r| roles.contains(r))
                    || q.to_email.as_ref().is_some_and(own_address);
                if !allowed {
                    return Err(QuestionError::NotAllowed {
                        user: (*name).to_owned(),
                        addressee: q.addressee(),
                    });
                }
                (format!("user:{name}"), "web", *from, *agent)
            }
        };
        let actor = Actor::recipient(&by);
        let mut details = serde_json::json!({
            "question": id, "title": q.title, "answer": answer["value"], "comment": answer["comment"],
            "via": via, "from": from, "user_agent": agent,
        });
        if let (Some(d), Some(e)) = (details.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        if !close_question(
            &mut tx,
            &self.audit_key,
            &q,
            QuestionStatus::Answered,
            answer,
            &by,
            via,
            &actor,
            details,
            now,
        )
        .await?
        {
            let q = question_in(&mut tx, id)
                .await?
                .ok_or_else(|| QuestionError::NotFound(id.to_owned()))?;
            return Err(not_open(&q));
        }
        if let Answerer::Chat { link, notice, .. } = who {
            super::slack_outbox::enqueue_to_post_of(
                &mut tx,
                link,
                super::slack_outbox::SlackKind::Update,
                notice,
                now,
            )
            .await?;
        }
        let record = question_in(&mut tx, id)
            .await?
            .ok_or_else(|| QuestionError::NotFound(id.to_owned()))?;
        tx.commit().await?;
        Ok(record)
    }

    /// Time out question `id` if it is open and past due: it takes its default answer (or
    /// none; the script then gets a `timeout` error), audited as `question.timeout`, and its
    /// run is woken. Returns the question as it now is (answered by someone else meanwhile,
    /// perhaps), or `None` if it is not due yet.
    pub async fn time_out_question(&self, id: &str, now: i64) -> Result<Option<QuestionRecord>> {
        let mut tx = self.writer.begin().await?;
        let Some(q) = question_in(&mut tx, id).await? else {
            return Ok(None);
        };
        if q.status != QuestionStatus::Open {
            return Ok(Some(q));
        }
        if q.due_at.is_none_or(|d| d > now) {
            return Ok(None);
        }
        let answer = q.question.default.clone().unwrap_or(Value::Null);
        let details = serde_json::json!({ "question": id, "title": q.title, "default": answer["value"] });
        close_question(
            &mut tx,
            &self.audit_key,
            &q,
            QuestionStatus::TimedOut,
            &answer,
            "timeout",
            "timeout",
            &Actor::system(),
            details,
            now,
        )
        .await?;
        let record = question_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Open questions past their due time.
    pub async fn due_question_timeouts(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM questions WHERE status = 'open' AND due_at <= $1 ORDER BY due_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Open questions whose next reminder is due.
    pub async fn due_reminders(&self, now: i64, limit: i64) -> Result<Vec<QuestionRecord>> {
        let sql = format!(
            "SELECT {QUESTION_COLUMNS} FROM questions WHERE status = 'open' AND next_remind_at <= $1
             ORDER BY next_remind_at LIMIT $2"
        );
        let rows: Vec<QuestionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(question_from_row).collect()
    }

    /// Record reminder number `q.reminders_sent + 1` of an open question and queue its mails
    /// (compare-and-set on the count, so two servers do not both remind). The next one is
    /// due the question's reminder interval later. Returns whether this call recorded it.
    pub async fn record_reminder(&self, q: &QuestionRecord, mails: &[Mail], now: i64) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let every_ms = q.remind_every_ms.unwrap_or(3_600_000);
        let next = now.saturating_add(every_ms.max(1000));
        let won = sqlx::query(
            "UPDATE questions SET reminders_sent = reminders_sent + 1, next_remind_at = $1
             WHERE id = $2 AND status = 'open' AND reminders_sent = $3",
        )
        .bind(next)
        .bind(&q.id)
        .bind(q.reminders_sent)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !won {
            return Ok(false);
        }
        for mail in mails {
            super::outbox::enqueue(&mut tx, mail, now, None).await?;
        }
        if let Some(incident) = &q.incident_id {
            let details =
                serde_json::json!({ "question": q.id, "title": q.title, "reminder": q.reminders_sent + 1 });
            add_event(&mut tx, incident, &Actor::system(), "reminder", details).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Queue `mails` with the `links` they carry, once per playbook step (`step_key`):
    /// returns false if that step already sent them.
    pub async fn send_mail_once(&self, links: &[NewLink], mails: &[Mail], step_key: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let sent: Option<i64> = sqlx::query_scalar("SELECT id FROM outbox WHERE step_key = $1")
            .bind(step_key)
            .fetch_optional(&mut *tx)
            .await?;
        if sent.is_some() {
            return Ok(false);
        }
        let now = now_ms();
        insert_links(&mut tx, links, now).await?;
        for (i, mail) in mails.iter().enumerate() {
            let key = if i == 0 { Some(step_key) } else { None };
            super::outbox::enqueue(&mut tx, mail, now, key).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Follow an escalation link: the incident's severity is raised to at least `severity`,
    /// it is assigned to the member of `oncall_role` with the fewest open incidents, and its
    /// acknowledge (response) timer starts again from now. Audited as `incident.escalate`
    /// with the address and user agent; on the timeline as `escalated`. The link is spent.
    /// Returns the incident's id and who it was assigned to.
    pub async fn escalate_incident(
        &self,
        link: &str,
        severity: crate::intake::Severity,
        oncall_role: Option<&str>,
        from: Option<&str>,
        agent: Option<&str>,
    ) -> Result<(String, Option<String>), QuestionError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let l = link_in(&mut tx, link).await?.ok_or(QuestionError::NoLink)?;
        let incident = l.incident_id.clone().ok_or(QuestionError::NoLink)?;
        if let Some(at) = l.used_at {
            return Err(QuestionError::LinkUsed { at });
        }
        let current: Option<EscalatedRow> =
            sqlx::query_as("SELECT type, severity, status FROM incidents WHERE id = $1")
                .bind(&incident)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(EscalatedRow {
            kind,
            severity: current_severity,
            status,
        }) = current
        else {
            return Err(QuestionError::Invalid(format!(
                "incident {incident} no longer exists"
            )));
        };
        if !spend_link(&mut tx, link, now, from, agent).await? {
            return Err(QuestionError::LinkUsed { at: now });
        }
        let raised = crate::intake::Severity::parse(&current_severity)
            .map(|s| s.max(severity))
            .unwrap_or(severity);
        let owner: Option<String> = match oncall_role {
            Some(role) => sqlx::query_scalar(
                "SELECT u.name FROM users u JOIN user_roles r ON r.user_name = u.name
                 WHERE r.role = $1 AND u.disabled_at IS NULL
                 ORDER BY (SELECT COUNT(*) FROM incidents i WHERE i.owner = u.name AND i.status <> 'closed'), u.name
                 LIMIT 1",
            )
            .bind(role)
            .fetch_optional(&mut *tx)
            .await?,
            None => None,
        };
        // Back to `new`, for the person it now goes to to acknowledge; a closed incident is
        // opened again (someone asked for a human), a pending one's timers run again.
        let was = IncidentStatus::parse(&status);
        let reopen = was == Some(IncidentStatus::Closed);
        sqlx::query(
            "UPDATE incidents SET severity = $1, owner = COALESCE($2, owner), role = COALESCE($3, role),
                 status = 'new', closed_at = NULL, acknowledged_at = NULL, updated_at = $4
             WHERE id = $5",
        )
        .bind(raised.as_str())
        .bind(&owner)
        .bind(oncall_role)
        .bind(now)
        .bind(&incident)
        .execute(&mut *tx)
        .await?;
        let subject = format!("incident:{incident}");
        if !super::sla::restart(&mut tx, &subject, "acknowledge", now).await? {
            let ack = self.cases.sla(&kind).acknowledge_ms.unwrap_or(15 * 60 * 1000);
            super::sla::start(&mut tx, &subject, "acknowledge", Some(&incident), ack, now).await?;
        }
        if reopen {
            super::sla::restart(&mut tx, &subject, "resolve", now).await?;
        } else if was == Some(IncidentStatus::Pending) {
            super::sla::resume(&mut tx, &subject, now).await?;
        }
        let actor = Actor::recipient(&l.recipient);
        let details = serde_json::json!({
            "severity": raised.as_str(), "owner": owner, "role": oncall_role, "reopened": reopen, "was": status,
            "from": from, "user_agent": agent,
        });
        add_event(&mut tx, &incident, &actor, "escalated", details.clone()).await?;
        let change = Change {
            actor: &actor,
            action: "incident.escalate",
            target: format!("incident:{incident}"),
            details,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok((incident, owner))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn question_status_names_parse_to_themselves() {
        use super::QuestionStatus;
        for name in QuestionStatus::NAMES {
            assert_eq!(QuestionStatus::parse(name).map(|s| s.as_str()), Some(*name));
            let json = serde_json::to_value(QuestionStatus::parse(name).unwrap()).unwrap();
            assert_eq!(json, *name, "serialised as stored");
        }
        assert_eq!(QuestionStatus::NAMES.len(), 4);
        assert_eq!(QuestionStatus::parse("nonsense"), None);
    }

    use super::super::testing::both_dialects;
    use crate::humans::questions::{Kind, Spec};
    use crate::store::questions::{NewQuestion, QuestionStatus};

    /// The question a playbook's `spec` asks, stored as `Humans::ask` stores it.
    fn asked(kind: Kind, spec: serde_json::Value, run: Option<&str>, now: i64) -> NewQuestion {
        let spec: Spec = serde_json::from_value(spec).unwrap();
        NewQuestion::from_checked(spec.check(kind).unwrap(), None, run, now)
    }

    both_dialects!(a_question_is_answered_once_and_links_are_single_use, |store| {
        use crate::humans::links::Purpose;
        use crate::store::audit::Actor;
        use crate::store::questions::{Answerer, NewLink, QuestionError};
        let q = asked(
            Kind::Ask,
            serde_json::json!({
                "role": "owners", "title": "Block?", "options": ["block", "allow"], "due": "1h", "default": "block",
            }),
            None,
            crate::store::now_ms(),
        );
        let links: Vec<NewLink> = ["user:alice", "user:bob"]
            .iter()
            .map(|r| NewLink {
                id: crate::store::new_id('k'),
                purpose: Purpose::Answer,
                question_id: Some(q.id.clone()),
                incident_id: None,
                recipient: r.to_string(),
                expires_at: q.due_at.unwrap(),
            })
            .collect();
        let made = store
            .create_question(&q, &links, &[], &Actor::system(), Some("r1:3"))
            .await
            .unwrap();
        assert_eq!(made.status, QuestionStatus::Open);
        // The same step again: the same question.
        let again = store
            .create_question(&q, &links, &[], &Actor::system(), Some("r1:3"))
            .await
            .unwrap();
        assert_eq!(again.id, made.id);
        store
            .create_user("carol", None, &["others".into()], &Actor::system())
            .await
            .unwrap();
        let answer = serde_json::json!({ "value": "allow", "comment": "" });
        let refused = store
            .answer_question(
                &q.id,
                &answer,
                &Answerer::User {
                    name: "carol",
                    from: None,
                    agent: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, QuestionError::NotAllowed { .. }), "{refused}");
        let done = store
            .answer_question(
                &q.id,
                &answer,
                &Answerer::Link {
                    link: &links[0].id,
                    from: Some("127.0.0.1"),
                    agent: Some("phone"),
                },
            )
            .await
            .unwrap();
        assert_eq!(done.status, QuestionStatus::Answered);
        assert_eq!(done.answered_by.as_deref(), Some("user:alice"));
        assert_eq!(done.outcome()["answer"], "allow");
        // The same link again: used. The other link: already answered.
        let reused = store
            .answer_question(
                &q.id,
                &answer,
                &Answerer::Link {
                    link: &links[0].id,
                    from: None,
                    agent: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(reused, QuestionError::LinkUsed { .. }), "{reused}");
        let other = store
            .answer_question(
                &q.id,
                &answer,
                &Answerer::Link {
                    link: &links[1].id,
                    from: None,
                    agent: None,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(other, QuestionError::Answered { .. }), "{other}");
        assert_eq!(store.link(&links[1].id).await.unwrap().unwrap().used_at, None);
        // A timeout after the answer changes nothing.
        let late = store.time_out_question(&q.id, i64::MAX).await.unwrap().unwrap();
        assert_eq!(late.status, QuestionStatus::Answered);
        let audit = store.audit_entries(0, 100, Some("question.")).await.unwrap();
        let answered = audit.iter().find(|e| e.action == "question.answer").unwrap();
        assert_eq!(answered.actor, "user:alice");
        assert_eq!(answered.details["from"], "127.0.0.1");
        assert_eq!(answered.details["user_agent"], "phone");
    });

    both_dialects!(a_question_past_due_takes_its_default, |store| {
        use crate::store::audit::Actor;
        let now = crate::store::now_ms();
        let q = asked(
            Kind::Approve,
            serde_json::json!({
                "email": "someone@example.com", "title": "OK?", "due": "1m", "default": false,
            }),
            None,
            now,
        );
        store
            .create_question(&q, &[], &[], &Actor::system(), None)
            .await
            .unwrap();
        assert!(
            store.time_out_question(&q.id, now).await.unwrap().is_none(),
            "not due yet"
        );
        assert!(store.due_question_timeouts(now, 10).await.unwrap().is_empty());
        assert_eq!(
            store.due_question_timeouts(now + 60_000, 10).await.unwrap(),
            vec![q.id.clone()]
        );
        let t = store
            .time_out_question(&q.id, now + 60_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.status, QuestionStatus::TimedOut);
        let outcome = t.outcome();
        assert_eq!(outcome["answer"], false);
        assert_eq!(outcome["timed_out"], true);
        assert_eq!(outcome["by"], "timeout");
    });

    both_dialects!(an_answer_wakes_its_run_even_mid_replay, |store| {
        use crate::store::audit::Actor;
        use crate::store::questions::Answerer;
        use crate::store::runs::{NewRun, RunStatus};
        let ask = |run: &str| {
            let spec = serde_json::json!({ "user": "alice", "title": "OK?" });
            asked(Kind::Approve, spec, Some(run), crate::store::now_ms())
        };
        store
            .create_user("alice", None, &[], &Actor::system())
            .await
            .unwrap();
        let later = crate::store::now_ms() + 3_600_000;
        let yes = serde_json::json!({ "value": true, "comment": "" });
        let alice = Answerer::User {
            name: "alice",
            from: None,
            agent: None,
        };
        for mid_replay in [false, true] {
            let id = crate::store::new_id('r');
            let run = NewRun {
                id: id.clone(),
                playbook: "pb".into(),
                script_hash: "h".into(),
                input: serde_json::json!({}),
                origin: "test".into(),
                context: serde_json::Value::Null,
                lease: None,
            };
            store.create_run(&run).await.unwrap();
            let claimed = store.claim_run(&id, "w1", later).await.unwrap();
            assert!(claimed.is_some());
            let q = ask(&id);
            store
                .create_question(&q, &[], &[], &Actor::run(&id), None)
                .await
                .unwrap();
            if !mid_replay {
                // The replay ended (waiting for an hour) before the answer came.
                store
                    .reschedule_run(&id, RunStatus::Waiting, later, None)
                    .await
                    .unwrap();
            }
            store.answer_question(&q.id, &yes, &alice).await.unwrap();
            if mid_replay {
                // The answer came while a worker was replaying: its reschedule to later
                // must not bury the answer.
                store
                    .reschedule_run(&id, RunStatus::Waiting, later, None)
                    .await
                    .unwrap();
            }
            let r = store.run(&id).await.unwrap().unwrap();
            assert_eq!(r.status, RunStatus::Waiting);
            assert!(
                r.wake_at.unwrap() <= crate::store::now_ms(),
                "mid_replay={mid_replay}: due now"
            );
            // The next claim clears the mark: waiting again then waits for real.
            assert!(store.claim_run(&id, "w1", later).await.unwrap().is_some());
            store
                .reschedule_run(&id, RunStatus::Waiting, later, None)
                .await
                .unwrap();
            assert_eq!(store.run(&id).await.unwrap().unwrap().wake_at, Some(later));
        }
    });

    both_dialects!(a_cancelled_or_restarted_run_releases_its_questions, |store| {
        use crate::store::audit::Actor;
        use crate::store::runs::NewRun;
        let run = NewRun {
            id: "r-q".into(),
            playbook: "pb".into(),
            script_hash: "h".into(),
            input: serde_json::json!({}),
            origin: "test".into(),
            context: serde_json::Value::Null,
            lease: None,
        };
        store.create_run(&run).await.unwrap();
        let mut ids = Vec::new();
        for seq in [2, 5] {
            let spec = serde_json::json!({ "user": "a", "title": "OK?" });
            let q = asked(Kind::Approve, spec, Some("r-q"), crate::store::now_ms());
            let key = format!("r-q:{seq}");
            store
                .create_question(&q, &[], &[], &Actor::system(), Some(&key))
                .await
                .unwrap();
            ids.push((q, key));
        }
        // Restarting from step 3 cancels the question of step 5 and lets step 5 ask anew.
        store.restart_run("r-q", 3, "h", &Actor::cli()).await.unwrap();
        let status = |id: String| async move { store.question(&id).await.unwrap().unwrap().status };
        assert_eq!(status(ids[0].0.id.clone()).await, QuestionStatus::Open);
        assert_eq!(status(ids[1].0.id.clone()).await, QuestionStatus::Cancelled);
        let mut again = ids[1].0.clone();
        again.id = crate::store::new_id('q');
        let made = store
            .create_question(&again, &[], &[], &Actor::system(), Some(&ids[1].1))
            .await
            .unwrap();
        assert_eq!(made.id, again.id, "a new question, not the cancelled one");
        // Cancelling the run cancels what is still open.
        assert!(store.cancel_run("r-q", &Actor::cli()).await.unwrap());
        assert_eq!(status(ids[0].0.id.clone()).await, QuestionStatus::Cancelled);
        assert_eq!(status(again.id.clone()).await, QuestionStatus::Cancelled);
    });
}
