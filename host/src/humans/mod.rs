//! Humans in the loop: questions playbooks ask people (`ask`, `approve`, `form`), the mails
//! and signed links that reach them, reminders and timeouts, and the "talk to a human"
//! escalation link.
//!
//! - `questions.rs`: what a question is and the one reading of an answer (pure).
//! - `links.rs`: the signed tokens in answer and escalation links (pure, given the key).
//! - `slack.rs`: questions asked in Slack: where, and the messages posted (pure, given the key).
//! - `slack_sender.rs`: the server's sender of the Slack outbox, through the `slack` plugin.
//! - `chat_answers.rs`: a click on a button, from a plugin's webhook: checked, and answered
//!   once, or refused with a word to whoever clicked.
//! - this file: [`Humans`], which turns a playbook's request into a stored question with its
//!   links and mails, tells a waiting run whether its answer came, and, from the server's
//!   background ([`watch`]), sends reminders and times questions out.
//!
//! The store does the rest in its transactions (`store/questions.rs`): a question is
//! answered once, a link is spent once, and the waiting run is woken.

pub mod chat_answers;
pub mod links;
pub mod questions;
pub mod slack;
pub mod slack_sender;

use crate::mail::message::{Button, Mail};
use crate::store::questions::{LinkRecord, NewLink, NewQuestion, QuestionRecord, QuestionStatus};
use crate::store::{Store, StoreError, now_ms};
use crate::vault::LinkKey;
use links::{Claim, LinkError, Purpose};
use questions::{Addressee, Kind, QuestionError, Spec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Settings of questions and links (`[humans]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HumansConfig {
    /// The address people reach this server at, for the links in mails
    /// (`https://osprey.example.com`); default: `http://` and the `listen` address.
    pub public_url: Option<String>,
    /// How long a link stays valid when its question has no due time.
    #[serde(with = "crate::duration::text")]
    pub link_ttl: Duration,
    /// The role whose members take escalated incidents ("talk to a human").
    pub oncall_role: Option<String>,
    /// The severity an escalated incident is raised to (at least).
    pub escalation_severity: crate::intake::Severity,
}

impl Default for HumansConfig {
    fn default() -> Self {
        HumansConfig {
            public_url: None,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            oncall_role: None,
            escalation_severity: crate::intake::Severity::High,
        }
    }
}

/// Why `[humans]` was refused.
#[derive(Debug, thiserror::Error)]
pub enum HumansConfigError {
    #[error("humans.public_url '{url}': {source}")]
    PublicUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("humans.public_url '{0}' must start with http:// or https://")]
    PublicUrlScheme(String),
    #[error("humans.link_ttl must be longer than 0s")]
    ZeroLinkTtl,
    #[error("humans.oncall_role: {0}")]
    OncallRole(#[source] crate::names::NameError),
}

impl HumansConfig {
    pub fn validate(&self) -> Result<(), HumansConfigError> {
        if let Some(u) = &self.public_url {
            let parsed = url::Url::parse(u).map_err(|source| HumansConfigError::PublicUrl {
                url: u.clone(),
                source,
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(HumansConfigError::PublicUrlScheme(u.clone()));
            }
        }
        if self.link_ttl.is_zero() {
            return Err(HumansConfigError::ZeroLinkTtl);
        }
        if let Some(r) = &self.oncall_role {
            crate::names::check("role", r).map_err(HumansConfigError::OncallRole)?;
        }
        Ok(())
    }
}

/// Why a playbook's question (`ask`, `approve`, `form`) or mail (`send_email`) was refused;
/// the message names the action.
#[derive(Debug, thiserror::Error)]
pub enum HumansError {
    /// The spec did not read (the message names the action).
    #[error(transparent)]
    Request(#[from] crate::cases::CaseError),
    #[error("{action}: {source}")]
    Spec {
        action: &'static str,
        #[source]
        source: QuestionError,
    },
    #[error(
        "{action}: asking {address} needs mail, and [mail] is not configured (set mail.host); \
         or an enabled Osprey user with that address, who answers in the inbox"
    )]
    NeedsMail { action: &'static str, address: String },
    #[error("{action}: {source}")]
    Recipients {
        action: &'static str,
        #[source]
        source: RecipientError,
    },
    /// The store refused the question ([`StoreError::Invalid`]: its message says why).
    #[error("{action}: {source}")]
    Refused {
        action: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("{action}: the store failed: {source}")]
    Store {
        action: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("send_email: mail is not configured (set mail.host in [mail])")]
    MailOff,
    #[error("send_email: a message needs a `subject`")]
    NoSubject,
    #[error("send_email: nobody to send to (no email address for that user or role)")]
    Nobody,
    #[error("send_email: `talk_to_human` needs a run with an incident")]
    TalkToHumanWithoutIncident,
    #[error("send_email: {0}")]
    Attachments(#[from] crate::mail::attachment::AttachmentError),
}

/// Why the people a question or mail is for could not be found.
#[derive(Debug, thiserror::Error)]
pub enum RecipientError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no user '{0}' (see `osprey user list`)")]
    NoUser(String),
    #[error("role '{0}' has no enabled members")]
    EmptyRole(String),
}

/// Why a waiting run could not learn where its question stands.
#[derive(Debug, thiserror::Error)]
pub enum QuestionWaitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no question '{0}'")]
    NoQuestion(String),
}

/// How long a waiting run sleeps at most before it looks at its question again. Answers
/// wake it at once; this only bounds the cost of a missed wake.
const RECHECK: i64 = 3_600_000;

/// Where a run's question stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// Closed: what the script gets (see `QuestionRecord::outcome`).
    Done(Value),
    /// Still open: look again at this time (Unix ms).
    Until(i64),
}

/// Questions, links and the mails that carry them.
pub struct Humans {
    config: HumansConfig,
    /// `humans.public_url`, else `http://` and the address the server listens on (set again
    /// once it is bound: `listen` may say port 0).
    base_url: std::sync::RwLock<String>,
    key: LinkKey,
    mail_on: bool,
    /// Notified after mail is committed to the outbox, so the sender sends it at once.
    mail_queued: Arc<tokio::sync::Notify>,
    /// Notified after a Slack message is committed to its outbox, for the Slack sender.
    slack_queued: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Humans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Humans").finish_non_exhaustive()
    }
}

impl Humans {
    /// `listen` gives the default public address; `mail_on` says whether `[mail]` is set.
    pub fn new(
        config: HumansConfig,
        listen: std::net::SocketAddr,
        key: LinkKey,
        mail_on: bool,
        mail_queued: Arc<tokio::sync::Notify>,
    ) -> Humans {
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        Humans {
            config,
            base_url: std::sync::RwLock::new(base_url),
            key,
            mail_on,
            mail_queued,
            slack_queued: Arc::default(),
        }
    }

    /// Notified when a Slack message is queued (the Slack sender waits on it).
    pub fn slack_queued(&self) -> Arc<tokio::sync::Notify> {
        self.slack_queued.clone()
    }

    /// The link key (for the chat tokens, `chat_answers.rs`).
    fn key(&self) -> &LinkKey {
        &self.key
    }

    pub fn config(&self) -> &HumansConfig {
        &self.config
    }

    /// The server is listening at `addr`: links use it unless `humans.public_url` is set.
    pub fn listening_at(&self, addr: std::net::SocketAddr) {
        if self.config.public_url.is_none() {
            *self.base_url.write().unwrap_or_else(|p| p.into_inner()) = format!("http://{addr}");
        }
    }

    /// The URL of a link.
    pub fn url(&self, link: &str, purpose: Purpose, expires_at: i64) -> String {
        let claim = Claim {
            link: link.to_owned(),
            purpose,
            expires_at,
            choice: None,
            plugin: None,
        };
        let base = self.base_url.read().unwrap_or_else(|p| p.into_inner()).clone();
        format!("{base}/a/{}", links::sign(&self.key, &claim))
    }

    /// Check a token from a URL.
    pub fn verify(&self, token: &str) -> Result<Claim, LinkError> {
        links::verify(&self.key, token, now_ms())
    }

    /// Store the question a playbook asks (`kind` with `spec`), with a link and a mail for
    /// each recipient who has an address. Idempotent under `step_key`.
    pub async fn ask(
        &self,
        store: &Store,
        kind: Kind,
        spec: &Value,
        run_id: &str,
        incident: Option<&str>,
        step_key: &str,
    ) -> Result<QuestionRecord, HumansError> {
        let action = kind.as_str();
        let spec: Spec = crate::cases::parse(action, spec)?;
        let checked = spec
            .check(kind)
            .map_err(|source| HumansError::Spec { action, source })?;
        let now = now_ms();
        // Without mail, a question to an address can still be answered in the inbox of the
        // Osprey user who has it.
        if let Some(Addressee::Email(address)) = &checked.to
            && !self.mail_on
            && store
                .user_by_email(address)
                .await
                .map_err(|source| HumansError::Store { action, source })?
                .is_none()
        {
            return Err(HumansError::NeedsMail {
                action,
                address: address.clone(),
            });
        }
        let recipients = match &checked.to {
            Some(to) => recipients(store, to)
                .await
                .map_err(|source| HumansError::Recipients { action, source })?,
            None => Vec::new(),
        };
        let slack_to = checked.slack.clone();
        let new = NewQuestion::from_checked(checked, incident, Some(run_id), now);
        let id = new.id.clone();
        // Links last until the question's due time, else the configured lifetime.
        let expires_at = new
            .due_at
            .unwrap_or_else(|| now.saturating_add(self.config.link_ttl.as_millis() as i64));
        let mut new_links = Vec::new();
        let mut mails = Vec::new();
        for (recipient, address) in recipients {
            let link = NewLink {
                id: crate::store::new_id('k'),
                purpose: Purpose::Answer,
                question_id: Some(id.clone()),
                incident_id: incident.map(str::to_owned),
                recipient,
                expires_at,
            };
            if let Some(address) = address.filter(|_| self.mail_on) {
                mails.push(self.question_mail(
                    &new_record_view(&new, now),
                    &link.id,
                    link.expires_at,
                    &address,
                    0,
                ));
            }
            new_links.push(link);
        }
        // In Slack: one link for the message, whose buttons each carry a token of their choice.
        let slack_post = match &slack_to {
            Some(to) => {
                let link = NewLink {
                    id: crate::store::new_id('k'),
                    purpose: Purpose::Chat,
                    question_id: Some(id.clone()),
                    incident_id: incident.map(str::to_owned),
                    recipient: format!("slack:{}", to.as_str()),
                    expires_at,
                };
                let input = slack::post(
                    &self.key,
                    to,
                    &new.title,
                    &new.body,
                    new.due_at,
                    &new.question,
                    &link.id,
                    expires_at,
                )
                .ok_or(HumansError::Spec {
                    action,
                    source: QuestionError::SlackNeedsChoices,
                })?;
                let post = crate::store::slack_outbox::NewSlackPost {
                    plugin: slack::PLUGIN.to_owned(),
                    input,
                };
                let link_id = link.id.clone();
                new_links.push(link);
                Some((post, link_id))
            }
            None => None,
        };
        let question = store
            .create_question_with(
                &new,
                &new_links,
                &mails,
                slack_post.as_ref().map(|(p, l)| (p, l.as_str())),
                &crate::store::audit::Actor::run(run_id),
                Some(step_key),
            )
            .await
            .map_err(|source| match source {
                StoreError::Invalid(_) => HumansError::Refused { action, source },
                source => HumansError::Store { action, source },
            })?;
        self.queued(&mails);
        if slack_post.is_some() {
            self.slack_queued.notify_one();
        }
        Ok(question)
    }

    /// Wake the mail sender when `mails` were just committed to the outbox.
    fn queued(&self, mails: &[Mail]) {
        if !mails.is_empty() {
            self.mail_queued.notify_one();
        }
    }

    /// Where question `id` stands for the run waiting on it: closed (with what the script
    /// gets), or open until a time. A question past due is timed out here if the
    /// background has not done it yet.
    pub async fn wait(&self, store: &Store, id: &str) -> Result<Wait, QuestionWaitError> {
        let now = now_ms();
        let q = store
            .question(id)
            .await?
            .ok_or_else(|| QuestionWaitError::NoQuestion(id.to_owned()))?;
        let q = if q.status == QuestionStatus::Open && q.due_at.is_some_and(|d| d <= now) {
            store.time_out_question(id, now).await?.unwrap_or(q)
        } else {
            q
        };
        if q.status == QuestionStatus::Open {
            let recheck = now.saturating_add(RECHECK);
            return Ok(Wait::Until(q.due_at.map_or(recheck, |d| d.min(recheck))));
        }
        let mut outcome = q.outcome();
        outcome["status"] = q.status.as_str().into();
        Ok(Wait::Done(outcome))
    }

    /// Send a message (`send_email` in a playbook): to a user, the members of a role, or an
    /// address; with `talk_to_human`, it carries an escalation link for the run's incident.
    /// Idempotent under `step_key`. Returns the addresses mailed.
    pub async fn send_email(
        &self,
        store: &Store,
        spec: &Value,
        incident: Option<&str>,
        step_key: &str,
    ) -> Result<Value, HumansError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct EmailSpec {
            #[serde(default)]
            user: Option<String>,
            #[serde(default)]
            role: Option<String>,
            #[serde(default)]
            email: Option<String>,
            subject: String,
            #[serde(default)]
            text: String,
            #[serde(default)]
            talk_to_human: bool,
            #[serde(default)]
            attachments: Vec<crate::mail::attachment::AttachmentSpec>,
        }
        let spec: EmailSpec = crate::cases::parse("send_email", spec)?;
        let attachments = crate::mail::attachment::check(spec.attachments)?;
        const ACTION: &str = "send_email";
        if !self.mail_on {
            return Err(HumansError::MailOff);
        }
        if spec.subject.trim().is_empty() {
            return Err(HumansError::NoSubject);
        }
        let to =
            Addressee::from_parts(spec.user, spec.role, spec.email).map_err(|source| HumansError::Spec {
                action: ACTION,
                source,
            })?;
        let recipients: Vec<(String, String)> = recipients(store, &to)
            .await
            .map_err(|source| HumansError::Recipients {
                action: ACTION,
                source,
            })?
            .into_iter()
            .filter_map(|(who, address)| Some((who, address?)))
            .collect();
        if recipients.is_empty() {
            return Err(HumansError::Nobody);
        }
        let escalate = match (spec.talk_to_human, incident) {
            (true, Some(i)) => Some(i),
            (true, None) => return Err(HumansError::TalkToHumanWithoutIncident),
            (false, _) => None,
        };
        let expires_at = now_ms().saturating_add(self.config.link_ttl.as_millis() as i64);
        let mut new_links = Vec::new();
        let mut mails = Vec::new();
        for (recipient, address) in &recipients {
            let mut buttons = Vec::new();
            if let Some(incident) = escalate {
                let link = NewLink {
                    id: crate::store::new_id('k'),
                    purpose: Purpose::Escalate,
                    question_id: None,
                    incident_id: Some(incident.to_owned()),
                    recipient: recipient.clone(),
                    expires_at,
                };
                buttons.push(Button {
                    label: "Talk to a human".into(),
                    url: self.url(&link.id, Purpose::Escalate, expires_at),
                });
                new_links.push(link);
            }
            let paragraphs: Vec<String> = spec.text.split("\n\n").map(str::to_owned).collect();
            let footer = if escalate.is_some() {
                "Not what you needed? \"Talk to a human\" puts a person from our team on it."
            } else {
                "Sent by Osprey."
            };
            let mut mail = crate::mail::message::compose(
                address,
                &spec.subject,
                &paragraphs,
                &buttons,
                footer,
                escalate.map(|i| format!("incident:{i}")),
            );
            mail.attachments = attachments.clone();
            mails.push(mail);
        }
        store
            .send_mail_once(&new_links, &mails, step_key)
            .await
            .map_err(|source| HumansError::Store {
                action: ACTION,
                source,
            })?;
        self.queued(&mails);
        Ok(Value::from(
            recipients.into_iter().map(|(_, a)| a).collect::<Vec<_>>(),
        ))
    }

    /// The mail that asks question `q` through link `link` (reminder `n` when n > 0).
    fn question_mail(&self, q: &QuestionRecord, link: &str, expires_at: i64, address: &str, n: i64) -> Mail {
        let url = self.url(link, Purpose::Answer, expires_at);
        let with = |param: &str, value: &str| {
            format!(
                "{url}?{param}={}",
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()
            )
        };
        let buttons: Vec<Button> = match q.kind {
            Kind::Ask => q
                .question
                .options
                .iter()
                .map(|o| Button {
                    label: o.clone(),
                    url: with("option", o),
                })
                .collect(),
            Kind::Approve => vec![
                Button {
                    label: "Approve".into(),
                    url: with("decision", "approve"),
                },
                Button {
                    label: "Deny".into(),
                    url: with("decision", "deny"),
                },
            ],
            Kind::Form => vec![Button {
                label: "Open the questionnaire".into(),
                url: url.clone(),
            }],
        };
        let mut paragraphs: Vec<String> = q
            .body
            .split("\n\n")
            .map(str::to_owned)
            .filter(|p| !p.is_empty())
            .collect();
        if let Some(due) = q.due_at {
            paragraphs.push(format!(
                "Please answer by {}.",
                crate::mail::message::format_time(due)
            ));
        }
        let subject = if n > 0 {
            format!("Reminder: {}", q.title)
        } else {
            q.title.clone()
        };
        let footer = "Each button opens a page where you confirm your answer; nothing is recorded until you do. \
                      The link is yours alone and works once.";
        crate::mail::message::compose(
            address,
            &subject,
            &paragraphs,
            &buttons,
            footer,
            Some(format!("question:{}", q.id)),
        )
    }

    /// Send the reminders that are due (mailed recipients whose links are unused), and time
    /// out questions past due. Returns how many questions were handled.
    pub async fn watch_once(&self, store: &Store) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut handled = 0;
        for id in store.due_question_timeouts(now, 100).await? {
            if store.time_out_question(&id, now).await?.is_some() {
                handled += 1;
            }
        }
        for q in store.due_reminders(now, 100).await? {
            let mut mails = Vec::new();
            if self.mail_on {
                for link in store.question_links(&q.id).await? {
                    if link.used_at.is_some() || link.expires_at <= now {
                        continue;
                    }
                    if let Some(address) = self.address_of(store, &link).await? {
                        mails.push(self.question_mail(
                            &q,
                            &link.id,
                            link.expires_at,
                            &address,
                            q.reminders_sent + 1,
                        ));
                    }
                }
            }
            if store.record_reminder(&q, &mails, now).await? {
                self.queued(&mails);
                handled += 1;
            }
        }
        Ok(handled)
    }

    async fn address_of(&self, store: &Store, link: &LinkRecord) -> Result<Option<String>, StoreError> {
        if let Some(address) = link.recipient.strip_prefix("email:") {
            return Ok(Some(address.to_owned()));
        }
        match link.recipient.strip_prefix("user:") {
            Some(name) => Ok(store.user(name).await?.and_then(|u| u.email)),
            None => Ok(None),
        }
    }
}

/// Who `to` reaches: each person as recorded in links (`user:NAME`, `email:ADDRESS`), with
/// their address if they have one. A role's disabled members are left out; a role with no
/// enabled member, or an unknown user, is an error.
async fn recipients(store: &Store, to: &Addressee) -> Result<Vec<(String, Option<String>)>, RecipientError> {
    let user = |name: &str| {
        let name = name.to_owned();
        async move { store.user(&name).await }
    };
    match to {
        Addressee::User(name) => {
            let u = user(name)
                .await?
                .ok_or_else(|| RecipientError::NoUser(name.clone()))?;
            Ok(vec![(format!("user:{name}"), u.email)])
        }
        Addressee::Role(role) => {
            let mut out = Vec::new();
            for name in store.role_members(role).await? {
                if let Some(u) = user(&name).await?
                    && u.disabled_at.is_none()
                {
                    out.push((format!("user:{name}"), u.email));
                }
            }
            if out.is_empty() {
                return Err(RecipientError::EmptyRole(role.clone()));
            }
            Ok(out)
        }
        Addressee::Email(address) => Ok(vec![(format!("email:{address}"), Some(address.clone()))]),
    }
}

/// The record a question will have once stored (to compose its first mail).
fn new_record_view(q: &NewQuestion, now: i64) -> QuestionRecord {
    QuestionRecord {
        id: q.id.clone(),
        kind: q.question.kind,
        title: q.title.clone(),
        body: q.body.clone(),
        question: q.question.clone(),
        to_user: q.to_user.clone(),
        to_role: q.to_role.clone(),
        to_email: q.to_email.clone(),
        to_slack: q.to_slack.clone(),
        incident_id: q.incident_id.clone(),
        run_id: q.run_id.clone(),
        status: QuestionStatus::Open,
        created_at: now,
        due_at: q.due_at,
        reminders_sent: 0,
        remind_every_ms: q.remind_every_ms,
        next_remind_at: None,
        answer: None,
        answered_by: None,
        answered_at: None,
        answered_via: None,
    }
}

/// Every second: reminders and timeouts.
pub async fn watch(humans: Arc<Humans>, store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = humans.watch_once(&store).await {
            tracing::error!(error = %e, "question reminders and timeouts failed; retrying");
        }
    }
}
