//! A click on a button of a chat message, as a plugin's webhook reports it (WIT's `answer`
//! event): the button's token is checked (signature, purpose, the plugin it was given to,
//! expiry), the choice it binds must be the one reported, who clicked is mapped to an Osprey
//! user by e-mail where one has that address, and the question is answered once
//! (`Store::answer_question`, which also queues the update of the message). A click that
//! changes nothing (forged, replayed, late, on an answered question) is refused; when the
//! token is genuine and the plugin's own, whoever clicked is told why in a message only they
//! see (an ephemeral message in the post's channel, through the Slack outbox).

use super::Humans;
use super::links::{self, LinkError, Purpose};
use super::slack;
use crate::mail::message::format_time;
use crate::store::questions::{Answerer, QuestionError, QuestionRecord};
use crate::store::{Store, StoreError, now_ms};
use serde_json::Value;

/// An `answer` event as the plugin sent it.
#[derive(Debug, Clone, Copy)]
pub struct ChatAnswer<'a> {
    /// The button's token.
    pub token: &'a str,
    /// JSON: `{"choice": "..."}`, the choice the clicked button stands for.
    pub answer: &'a str,
    pub email: Option<&'a str>,
    /// `VENDOR:ID`, such as `slack:U0123ABCD`.
    pub by: &'a str,
}

/// Why a click changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ChatRefusal {
    #[error("the token is not one this server made, or it was changed")]
    Forged,
    #[error("the token is not a chat button's")]
    NotChat,
    #[error("the token was given to plugin '{given}', not to '{plugin}'")]
    OtherPlugin { plugin: String, given: String },
    #[error("`by` '{0}' does not say who answered as VENDOR:ID")]
    BadBy(String),
    #[error("the answer {0} is not the choice the button stands for")]
    NotTheChoice(String),
    #[error("the time to answer ended at {}", format_time(*.at))]
    Expired { at: i64 },
    #[error(transparent)]
    Question(#[from] QuestionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChatRefusal {
    /// What whoever clicked is told, in a message only they see.
    fn told(&self) -> String {
        let who = |by: &str| match slack::member_of(by) {
            Some(id) => format!("<@{id}>"),
            None => by.split_once(':').map_or(by, |(_, w)| w).to_owned(),
        };
        match self {
            ChatRefusal::Question(QuestionError::Answered { by, at }) => format!(
                "this question was already answered, by {} at {}.",
                who(by),
                format_time(*at)
            ),
            ChatRefusal::Question(QuestionError::LinkUsed { .. }) => {
                "this question was already answered.".into()
            }
            ChatRefusal::Question(QuestionError::TimedOut { at }) => {
                format!("this question timed out at {}.", format_time(*at))
            }
            ChatRefusal::Question(QuestionError::Cancelled) => {
                "this question was withdrawn: its playbook no longer waits for it.".into()
            }
            ChatRefusal::Expired { at } => {
                format!("the time to answer this question ended at {}.", format_time(*at))
            }
            ChatRefusal::Question(QuestionError::Store(_)) | ChatRefusal::Store(_) => {
                "Osprey could not record it just now; try again in a minute.".into()
            }
            _ => "Osprey could not read this button's answer.".into(),
        }
    }
}

/// The `choice` of an answer event's JSON.
fn reported_choice(answer: &str) -> Option<String> {
    let v: Value = serde_json::from_str(answer).ok()?;
    v.get("choice")?.as_str().map(str::to_owned)
}

impl Humans {
    /// Take a click reported by `plugin`'s webhook. The answered question, or why nothing
    /// changed (after telling whoever clicked, when the token was genuine and `plugin`'s).
    pub async fn take_chat_answer(
        &self,
        store: &Store,
        plugin: &str,
        a: ChatAnswer<'_>,
    ) -> Result<QuestionRecord, ChatRefusal> {
        let claim = match links::open(self.key(), a.token) {
            Ok(c) => c,
            Err(LinkError::Tampered | LinkError::Expired { .. }) => return Err(ChatRefusal::Forged),
        };
        if claim.purpose != Purpose::Chat {
            return Err(ChatRefusal::NotChat);
        }
        let given = claim.plugin.clone().unwrap_or_default();
        if given != plugin {
            return Err(ChatRefusal::OtherPlugin {
                plugin: plugin.to_owned(),
                given,
            });
        }
        let result = self.answer_checked(store, plugin, &claim, a).await;
        if let Err(refusal) = &result
            && let Some(member) = slack::member_of(a.by)
            && plugin == slack::PLUGIN
        {
            let notice = slack::refused(member, &refusal.told());
            match store.queue_slack_notice(&claim.link, &notice).await {
                Ok(true) => self.slack_queued.notify_one(),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "queueing the word to a refused click failed"),
            }
        }
        result
    }

    /// The rest of [`Humans::take_chat_answer`], once the token is known to be `plugin`'s.
    async fn answer_checked(
        &self,
        store: &Store,
        plugin: &str,
        claim: &links::Claim,
        a: ChatAnswer<'_>,
    ) -> Result<QuestionRecord, ChatRefusal> {
        if a.by
            .split_once(':')
            .is_none_or(|(v, id)| v.is_empty() || id.is_empty())
        {
            return Err(ChatRefusal::BadBy(a.by.to_owned()));
        }
        let choice = claim.choice.clone().unwrap_or_default();
        if reported_choice(a.answer).as_deref() != Some(choice.as_str()) {
            return Err(ChatRefusal::NotTheChoice(a.answer.chars().take(200).collect()));
        }
        let link = store
            .link(&claim.link)
            .await?
            .ok_or(ChatRefusal::Question(QuestionError::NoLink))?;
        let qid = link
            .question_id
            .ok_or(ChatRefusal::Question(QuestionError::NoLink))?;
        let q = store
            .question(&qid)
            .await?
            .ok_or_else(|| ChatRefusal::Question(QuestionError::NotFound(qid.clone())))?;
        if claim.expires_at <= now_ms() && q.status == crate::store::questions::QuestionStatus::Open {
            return Err(ChatRefusal::Expired { at: claim.expires_at });
        }
        let Some(label) = q
            .question
            .choices()
            .and_then(|cs| cs.into_iter().find(|c| c.choice == choice))
            .map(|c| c.label)
        else {
            return Err(ChatRefusal::NotTheChoice(choice));
        };
        let answer = q
            .question
            .answer_choice(&choice)
            .map_err(|_| ChatRefusal::NotTheChoice(choice.clone()))?;
        let email = a.email.map(str::trim).filter(|e| !e.is_empty());
        let user = match email {
            Some(e) => store.user_by_email(e).await?,
            None => None,
        };
        let notice = slack::answered(&q.title, &label, a.by, user.as_deref());
        let done = store
            .answer_question(
                &qid,
                &answer,
                &Answerer::Chat {
                    link: &claim.link,
                    plugin,
                    by: a.by,
                    email,
                    user: user.as_deref(),
                    notice: &notice,
                },
            )
            .await?;
        self.slack_queued.notify_one();
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::humans::HumansConfig;
    use crate::humans::questions::Kind;
    use crate::store::audit::Actor;
    use crate::store::slack_outbox::SlackKind;
    use crate::store::testing::both_dialects;
    use crate::vault::LinkKey;
    use std::sync::Arc;

    fn click<'a>(token: &'a str, answer: &'a str, by: &'a str) -> ChatAnswer<'a> {
        ChatAnswer {
            token,
            answer,
            email: Some("EGON@ghostbusters.example"),
            by,
        }
    }

    both_dialects!(
        a_click_answers_once_and_only_through_its_plugin_with_its_choice,
        |store| {
            let humans = Humans::new(
                HumansConfig::default(),
                "127.0.0.1:0".parse().unwrap(),
                LinkKey::from_bytes([9; 32]),
                false,
                Arc::default(),
            );
            store
                .create_user("egon", Some("egon@ghostbusters.example"), &[], &Actor::system())
                .await
                .unwrap();
            let spec =
                serde_json::json!({ "slack": "#soc", "title": "Contain?", "options": ["contain", "ignore"] });
            let q = humans
                .ask(store, Kind::Ask, &spec, "r1", None, "r1:1")
                .await
                .unwrap();
            let post = store.slack_outbox_of(&q.id).await.unwrap().remove(0);
            assert_eq!(post.kind, SlackKind::Post);
            let contain = post.input["buttons"][0]["value"].as_str().unwrap().to_owned();
            let ignore = post.input["buttons"][1]["value"].as_str().unwrap().to_owned();
            let (yes, no) = (r#"{"choice":"contain"}"#, r#"{"choice":"ignore"}"#);
            // Through another plugin, a forged token, another button's choice, no member: refused.
            let e = humans
                .take_chat_answer(store, "teams", click(&contain, yes, "teams:1"))
                .await
                .unwrap_err();
            assert!(matches!(e, ChatRefusal::OtherPlugin { .. }), "{e}");
            let mut forged = contain.clone().into_bytes();
            forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(forged).unwrap();
            let e = humans
                .take_chat_answer(store, "slack", click(&forged, yes, "slack:U1"))
                .await
                .unwrap_err();
            assert!(matches!(e, ChatRefusal::Forged), "{e}");
            let e = humans
                .take_chat_answer(store, "slack", click(&ignore, yes, "slack:U1"))
                .await
                .unwrap_err();
            assert!(matches!(e, ChatRefusal::NotTheChoice(_)), "{e}");
            let e = humans
                .take_chat_answer(store, "slack", click(&contain, yes, "U1"))
                .await
                .unwrap_err();
            assert!(matches!(e, ChatRefusal::BadBy(_)), "{e}");
            assert_eq!(
                store.question(&q.id).await.unwrap().unwrap().status.as_str(),
                "open"
            );
            // The genuine click: answered, by the member, mapped to egon by address (any case).
            let done = humans
                .take_chat_answer(store, "slack", click(&contain, yes, "slack:U1"))
                .await
                .unwrap();
            assert_eq!(done.outcome()["answer"], "contain");
            assert_eq!(done.answered_by.as_deref(), Some("slack:U1"));
            let audit = store
                .audit_entries(0, 100, Some("question.answer"))
                .await
                .unwrap();
            assert_eq!(audit[0].actor, "slack:U1");
            assert_eq!(audit[0].details["user"], "egon");
            // Again, and the other button: already answered; the post is updated once.
            let e = humans
                .take_chat_answer(store, "slack", click(&ignore, no, "slack:U2"))
                .await
                .unwrap_err();
            assert!(
                matches!(e, ChatRefusal::Question(QuestionError::Answered { .. })),
                "{e}"
            );
            assert!(e.told().contains("already answered, by <@U1>"), "{}", e.told());
            let kinds: Vec<SlackKind> = store
                .slack_outbox_of(&q.id)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.kind)
                .collect();
            // The word to U1 about the wrong choice, the update, the word to U2.
            assert_eq!(
                kinds,
                [
                    SlackKind::Post,
                    SlackKind::Ephemeral,
                    SlackKind::Update,
                    SlackKind::Ephemeral
                ]
            );
        }
    );
}
