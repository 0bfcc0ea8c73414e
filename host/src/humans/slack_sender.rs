//! The Slack sender, in the server's background: claims due rows of the Slack outbox
//! (`store/slack_outbox.rs`) and delivers each through the `slack` plugin's actions, as the
//! host (`Runtime::call`, the plugin's own grant and limits): a post (`post-message`, after
//! `lookup-user-by-email` for a person given by address) keeps the channel and `ts` Slack gave
//! it; an update (`update-message`) and a word to one person (`post-ephemeral`) go to that
//! post, and wait for it. A failure the plugin calls retryable is tried again after a backoff
//! (at least the vendor's `Retry-After`); any other, or the last of [`MAX_ATTEMPTS`], gives
//! the row up, logged, audited and on the question's incident's timeline.

use super::questions::SlackTarget;
use crate::mail::sender::backoff;
use crate::plugin::{CallContext, CallError, Runtime};
use crate::store::slack_outbox::{SlackKind, SlackRecord};
use crate::store::{Store, StoreError, now_ms};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Attempts at one row before it is given up on.
pub const MAX_ATTEMPTS: i64 = 8;
/// Rows delivered by one pass before the sender looks again.
const BATCH: usize = 10;
/// How long a claim lasts: past two calls at the plugin's longest timeout.
const CLAIM_FOR: Duration = Duration::from_secs(180);
/// How soon an update or ephemeral message looks again for its post.
const POST_WAIT: Duration = Duration::from_secs(2);

/// What the sender works with.
#[derive(Clone)]
pub struct SlackSender {
    pub store: Store,
    pub runtime: Runtime,
}

/// How one attempt failed.
#[derive(Debug)]
enum Failure {
    /// Worth trying again, not before `after` if the vendor said.
    Retry { error: String, after: Option<Duration> },
    /// Never going to work.
    Permanent(String),
    /// The post it goes to is not sent yet.
    WaitForPost,
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Failure {
        if e.retryable {
            Failure::Retry {
                error: e.to_string(),
                after: e.retry_after,
            }
        } else {
            Failure::Permanent(e.to_string())
        }
    }
}

fn text(v: &Value, key: &str) -> Result<String, Failure> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Failure::Permanent(format!("the stored message has no '{key}'")))
}

/// The wait before the next attempt after `attempts` failed ones: the mail sender's backoff,
/// or longer when the vendor asked to wait longer.
fn retry_wait(attempts: i64, vendor_asked: Option<Duration>) -> Duration {
    backoff(u32::try_from(attempts).unwrap_or(u32::MAX)).max(vendor_asked.unwrap_or_default())
}

impl SlackSender {
    async fn call(&self, row: &SlackRecord, action: &str, input: &Value) -> Result<Value, Failure> {
        let ctx = CallContext {
            run_id: format!("question:{}", row.question_id),
            idempotency_key: format!("slack-outbox:{}:{action}", row.id),
        };
        Ok(self.runtime.call(&row.plugin, action, input, ctx).await?.output)
    }

    /// One attempt at `row`: the channel and `ts` of a post.
    async fn attempt(&self, row: &SlackRecord) -> Result<(Option<String>, Option<String>), Failure> {
        let input = &row.input;
        match row.kind {
            SlackKind::Post => {
                let to =
                    SlackTarget::parse(&text(input, "to")?).map_err(|e| Failure::Permanent(e.to_string()))?;
                let mut message = json!({ "text": input["text"], "buttons": input["buttons"] });
                match to {
                    SlackTarget::Channel(c) => message["channel"] = c.into(),
                    SlackTarget::User(u) => message["user"] = u.into(),
                    SlackTarget::Email(e) => {
                        let found = self
                            .call(row, "lookup-user-by-email", &json!({ "email": e }))
                            .await?;
                        message["user"] = text(&found, "id")?.into();
                    }
                }
                let posted = self.call(row, "post-message", &message).await?;
                Ok((Some(text(&posted, "channel")?), Some(text(&posted, "ts")?)))
            }
            SlackKind::Update | SlackKind::Ephemeral => {
                let post_id = row
                    .post_id
                    .ok_or_else(|| Failure::Permanent("no post to go to".into()))?;
                let post = self
                    .store
                    .slack_outbox_row(post_id)
                    .await
                    .map_err(|e| Failure::Retry {
                        error: e.to_string(),
                        after: None,
                    })?
                    .ok_or_else(|| Failure::Permanent("its post is gone".into()))?;
                if post.failed_at.is_some() {
                    return Err(Failure::Permanent(format!(
                        "the question's message was never posted: {}",
                        post.last_error.as_deref().unwrap_or("given up on")
                    )));
                }
                let (Some(channel), Some(ts)) = (post.channel, post.ts) else {
                    return Err(Failure::WaitForPost);
                };
                if row.kind == SlackKind::Update {
                    let m = json!({ "channel": channel, "ts": ts, "text": input["text"] });
                    self.call(row, "update-message", &m).await?;
                } else {
                    let m = json!({ "channel": channel, "user": input["user"], "text": input["text"] });
                    self.call(row, "post-ephemeral", &m).await?;
                }
                Ok((None, None))
            }
        }
    }

    /// Record how an attempt went, and log it.
    async fn record(
        &self,
        row: &SlackRecord,
        result: Result<(Option<String>, Option<String>), Failure>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let attempts = row.attempts + 1;
        let (kind, question) = (row.kind.as_str(), row.question_id.as_str());
        match result {
            Ok((channel, ts)) => {
                self.store
                    .mark_slack_sent(row.id, now, channel.as_deref(), ts.as_deref())
                    .await?;
                tracing::info!(outbox_id = row.id, kind, question, plugin = %row.plugin, attempts, "slack message sent");
            }
            Err(Failure::WaitForPost) => {
                let at = now + POST_WAIT.as_millis() as i64;
                self.store.mark_slack_retry(row.id, None, at).await?;
            }
            Err(Failure::Retry { error, after }) if attempts < MAX_ATTEMPTS => {
                let wait = retry_wait(attempts, after);
                self.store
                    .mark_slack_retry(row.id, Some(&error), now + wait.as_millis() as i64)
                    .await?;
                tracing::warn!(outbox_id = row.id, kind, question, plugin = %row.plugin, attempts, retry_in = %humantime::format_duration(wait), error = %error, "sending a slack message failed; it will be tried again");
            }
            Err(Failure::Retry { error, .. } | Failure::Permanent(error)) => {
                self.store.mark_slack_failed(row, &error, now).await?;
                tracing::error!(outbox_id = row.id, kind, question, plugin = %row.plugin, attempts, error = %error, "slack message not sent: given up on (the question still waits in the inbox and mail)");
            }
        }
        Ok(())
    }

    /// Deliver what is due, up to `limit` rows; how many were tried.
    pub async fn send_due(&self, limit: usize) -> Result<usize, StoreError> {
        if !self.store.slack_due(now_ms()).await? {
            return Ok(0);
        }
        let mut tried = 0;
        while tried < limit {
            let now = now_ms();
            let until = now + CLAIM_FOR.as_millis() as i64;
            let Some(row) = self.store.claim_slack(now, until, 1).await?.pop() else {
                break;
            };
            let result = self.attempt(&row).await;
            self.record(&row, result).await?;
            tried += 1;
        }
        Ok(tried)
    }
}

/// The sender: delivers when woken by `queued`, and every second for retries and for rows
/// queued by other processes.
pub fn spawn(sender: SlackSender, queued: Arc<tokio::sync::Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match sender.send_due(BATCH).await {
                Ok(n) if n >= BATCH => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "sending slack messages failed; retrying"),
            }
            tokio::select! {
                _ = queued.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_honour_the_vendors_wait() {
        assert_eq!(retry_wait(1, None), Duration::from_secs(5));
        assert_eq!(retry_wait(3, None), Duration::from_secs(20));
        assert_eq!(
            retry_wait(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            retry_wait(3, Some(Duration::from_secs(1))),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn retryable_call_errors_are_retried_and_others_are_not() {
        let mut e = CallError::new(crate::plugin::ErrorKind::RateLimited, "slow down");
        e.retry_after = Some(Duration::from_secs(7));
        assert!(matches!(
            Failure::from(e),
            Failure::Retry { after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        let e = CallError::new(crate::plugin::ErrorKind::NotFound, "no plugin 'slack'");
        assert!(matches!(Failure::from(e), Failure::Permanent(m) if m.contains("no plugin")));
    }
}
