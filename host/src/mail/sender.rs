//! The sender: claims due messages from the outbox, sends each over SMTP with lettre and
//! records the attempt (sent, or failed and tried again after a backoff, or given up on).

use super::{AddressError, MailConfig, MailConfigError, MailTls};
use crate::metrics::Metrics;
use crate::store::outbox::OutboxRecord;
use crate::store::{Store, StoreError, now_ms};
use crate::vault::{SERVER_SECRET_OWNER, Vault};
use lettre::message::{Attachment as MimeAttachment, MultiPart, header::ContentType};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use thiserror::Error;

/// What the sender works with: the `[mail]` settings, the outbox, the vault (for the SMTP
/// password) and the mail metrics. Nothing else of the server.
#[derive(Clone)]
pub struct Sender {
    pub config: MailConfig,
    pub store: Store,
    pub vault: Arc<Vault>,
    pub metrics: Arc<Metrics>,
}

/// Why the outbox could not be worked on at all (an attempt that fails is recorded on its
/// message instead).
#[derive(Debug, Error)]
pub enum MailError {
    #[error("mail is off: set [mail] host (and the other mail.* options) in the config to send mail")]
    Off,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one attempt at one message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// It failed and will be tried again at `next_attempt_at` (Unix ms).
    Retry {
        error: String,
        next_attempt_at: i64,
    },
    /// It failed for the last time: it is marked failed.
    Failed {
        error: String,
    },
}

/// One attempt made by [`send_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub id: i64,
    pub to: String,
    /// Attempts at this message so far, this one included.
    pub attempts: i64,
    pub outcome: Outcome,
}

/// The wait before attempt `attempts + 1`, after `attempts` failed ones: 5 s, doubling, at
/// most an hour.
pub fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(5);
    let max = Duration::from_secs(3600);
    let doublings = attempts.saturating_sub(1).min(20);
    (base * 2u32.pow(doublings)).min(max)
}

/// Messages sent by one pass of the sender before it looks again.
const BATCH: usize = 10;

/// How long a claim on a message lasts: past any attempt's own deadline, so a message is
/// retried after this only when its sender died mid-attempt.
fn claim_for(config: &MailConfig) -> Duration {
    attempt_deadline(config) + Duration::from_secs(60)
}

/// The longest one attempt may take (an SMTP exchange is several commands, each with
/// `mail.timeout`).
pub fn attempt_deadline(config: &MailConfig) -> Duration {
    config.timeout * 4
}

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Why there is no SMTP transport for a pass (each message it claims is tried again later).
#[derive(Debug, Error)]
enum TransportError {
    #[error("{}", MailError::Off)]
    Off,
    #[error("cannot set up TLS for {host}: {source}")]
    Tls {
        host: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot read the SMTP password secret '{name}': {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: StoreError,
    },
    #[error(
        "the SMTP password secret '{name}' (mail.password_secret) is not set; set it with `osprey secret set {SERVER_SECRET_OWNER} {name}`"
    )]
    NoSecret { name: String },
    #[error(transparent)]
    Open(#[from] crate::vault::VaultError),
}

/// Why an outbox row is not a message that can be sent: given up on at once.
#[derive(Debug, Error)]
enum MessageError {
    #[error(transparent)]
    From(#[from] MailConfigError),
    #[error(transparent)]
    To(#[from] AddressError),
    #[error("cannot build the message: {0}")]
    Build(#[source] lettre::error::Error),
    /// Its attachments were stored but cannot be read: never sent without them.
    #[error("{0}")]
    Unreadable(String),
}

/// How one attempt failed; its text is what the outbox records.
#[derive(Debug, Error)]
enum SendError {
    /// No transport this pass: worth trying again.
    #[error(transparent)]
    NoTransport(Arc<TransportError>),
    /// The SMTP server refused or failed: worth trying again.
    #[error("SMTP server {server}: {source}")]
    Smtp {
        server: String,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("SMTP server {server}: no answer within {}", humantime::format_duration(*.deadline))]
    Timeout { server: String, deadline: Duration },
    /// Never going to work (the message itself is wrong): given up on at once.
    #[error(transparent)]
    Permanent(#[from] MessageError),
}

/// The SMTP transport of the config, without credentials.
fn smtp_builder(config: &MailConfig) -> Result<AsyncSmtpTransportBuilder, TransportError> {
    let host = config.host.as_deref().ok_or(TransportError::Off)?;
    let tls = |source| TransportError::Tls {
        host: host.to_owned(),
        source,
    };
    let builder = match config.tls {
        MailTls::None => Transport::builder_dangerous(host),
        MailTls::Starttls => Transport::starttls_relay(host).map_err(tls)?,
        MailTls::Tls => Transport::relay(host).map_err(tls)?,
    };
    Ok(builder.port(config.port()).timeout(Some(config.timeout)))
}

/// The SMTP transport of the config, with the password from the secret store.
async fn transport(app: &Sender) -> Result<Transport, TransportError> {
    let config = &app.config;
    let mut builder = smtp_builder(config)?;
    if let (Some(user), Some(name)) = (&config.username, &config.password_secret) {
        let sealed = app
            .store
            .secret(SERVER_SECRET_OWNER, name)
            .await
            .map_err(|source| TransportError::ReadSecret {
                name: name.clone(),
                source,
            })?
            .ok_or_else(|| TransportError::NoSecret { name: name.clone() })?;
        let password = app.vault.open_sealed(SERVER_SECRET_OWNER, name, &sealed)?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// The lettre message of an outbox row: multipart/alternative text and HTML (inside a
/// multipart/mixed with one part per attachment, when it has any), with the Date it was
/// queued and a Message-ID made from its id, the same at every attempt.
fn message(config: &MailConfig, mail: &OutboxRecord) -> Result<Message, MessageError> {
    if let Some(why) = &mail.unreadable {
        return Err(MessageError::Unreadable(why.clone()));
    }
    let from = config.from_mailbox()?;
    let to = super::mailbox(&mail.to)?;
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone())
        .date(UNIX_EPOCH + Duration::from_millis(mail.created_at.max(0) as u64))
        .message_id(Some(format!(
            "<osprey.outbox.{}.{}@{domain}>",
            mail.id, mail.created_at
        )))
        .multipart(body(mail))
        .map_err(MessageError::Build)
}

/// The text and HTML parts, and the attachments after them (text, UTF-8, as files).
fn body(mail: &OutboxRecord) -> MultiPart {
    let alternative = MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone());
    if mail.attachments.is_empty() {
        return alternative;
    }
    mail.attachments
        .iter()
        .fold(MultiPart::mixed().multipart(alternative), |mixed, a| {
            let content_type = ContentType::parse(&format!("{}; charset=utf-8", a.content_type.as_str()))
                .expect("the attachment types are valid MIME types");
            mixed.singlepart(MimeAttachment::new(a.name.clone()).body(a.text.clone(), content_type))
        })
}

/// One attempt at `mail` over `transport`.
async fn send_one(
    config: &MailConfig,
    transport: &Result<Transport, Arc<TransportError>>,
    mail: &OutboxRecord,
) -> Result<(), SendError> {
    let transport = transport
        .as_ref()
        .map_err(|e| SendError::NoTransport(e.clone()))?;
    let message = message(config, mail)?;
    let server = format!("{}:{}", config.host.as_deref().unwrap_or_default(), config.port());
    let deadline = attempt_deadline(config);
    match tokio::time::timeout(deadline, transport.send(message)).await {
        Ok(Ok(_response)) => Ok(()),
        Ok(Err(source)) => Err(SendError::Smtp { server, source }),
        Err(_) => Err(SendError::Timeout { server, deadline }),
    }
}

/// Send the mail due now, up to `limit` messages, recording each attempt in the outbox.
/// Returns the attempts made (none when nothing is due; messages being sent by another sender
/// are left to it).
pub async fn send_due(app: &Sender, limit: usize) -> Result<Vec<Attempt>, MailError> {
    let config = &app.config;
    if !config.enabled() {
        return Err(MailError::Off);
    }
    // A read first: claiming is a write, and most passes find nothing due.
    if app.store.due_mail(now_ms(), 1).await?.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempts = Vec::new();
    let mut transport: Option<Result<Transport, Arc<TransportError>>> = None;
    while attempts.len() < limit {
        // One at a time, so a claim needs to last only as long as one attempt.
        let now = now_ms();
        let until = now + claim_for(config).as_millis() as i64;
        let Some(mail) = app.store.claim_mail(now, until, 1).await?.pop() else {
            break;
        };
        // Built once per pass, and only when something is due.
        if transport.is_none() {
            transport = Some(self::transport(app).await.map_err(Arc::new));
        }
        let transport = transport.as_ref().expect("built just above");
        let result = send_one(config, transport, &mail).await;
        attempts.push(record(app, &mail, result).await?);
    }
    Ok(attempts)
}

/// Record how an attempt went, and log it.
async fn record(
    app: &Sender,
    mail: &OutboxRecord,
    result: Result<(), SendError>,
) -> Result<Attempt, MailError> {
    let config = &app.config;
    let now = now_ms();
    let attempts = mail.attempts + 1;
    let outcome = match result {
        Ok(()) => {
            app.store.mark_mail_sent(mail.id, now).await?;
            app.metrics.mail_sent();
            tracing::info!(
                outbox_id = mail.id,
                to = %mail.to,
                about = mail.about.as_deref().unwrap_or(""),
                attempts,
                "mail sent"
            );
            Outcome::Sent
        }
        Err(e) if !matches!(e, SendError::Permanent(_)) && attempts < i64::from(config.max_attempts) => {
            let error = e.to_string();
            let wait = backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
            let next_attempt_at = now + wait.as_millis() as i64;
            app.store
                .mark_mail_retry(mail.id, &error, next_attempt_at)
                .await?;
            app.metrics.mail_retried();
            tracing::warn!(
                outbox_id = mail.id,
                to = %mail.to,
                attempts,
                max_attempts = config.max_attempts,
                retry_in = %humantime::format_duration(wait),
                error = %error,
                "sending mail failed; it will be tried again"
            );
            Outcome::Retry {
                error,
                next_attempt_at,
            }
        }
        Err(e) => {
            let error = e.to_string();
            app.store.mark_mail_failed(mail.id, &error, now).await?;
            app.metrics.mail_failed();
            tracing::error!(
                outbox_id = mail.id,
                to = %mail.to,
                about = mail.about.as_deref().unwrap_or(""),
                attempts,
                max_attempts = config.max_attempts,
                error = %error,
                "mail not sent: given up on"
            );
            Outcome::Failed { error }
        }
    };
    Ok(Attempt {
        id: mail.id,
        to: mail.to.clone(),
        attempts,
        outcome,
    })
}

/// The sender: sends due mail when woken by `queued` (notified after mail is committed to the
/// outbox), and every second for retries and for mail queued by other processes. With mail
/// off it sends nothing, and says so once when it sees mail waiting.
pub fn spawn_sender(app: Sender, queued: Arc<tokio::sync::Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut warned_off = false;
        loop {
            if app.config.enabled() {
                match send_due(&app, BATCH).await {
                    // A full batch: there may be more due at once.
                    Ok(done) if done.len() >= BATCH => continue,
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "sending mail failed; retrying"),
                }
            } else if !warned_off {
                match app.store.due_mail(now_ms(), 1).await {
                    Ok(due) if !due.is_empty() => {
                        warned_off = true;
                        tracing::warn!(
                            "mail is queued but mail is off ([mail] host is not set); it stays in the outbox (`osprey mail outbox`) until mail is configured"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "reading the mail outbox failed"),
                }
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
    use crate::mail::message::compose;

    #[test]
    fn backoff_doubles_from_5s_to_an_hour() {
        let secs: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(
            secs,
            vec![5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(backoff(0).as_secs(), 5);
        assert_eq!(backoff(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn transports_build_for_every_tls_mode_with_ring() {
        for tls in [MailTls::None, MailTls::Starttls, MailTls::Tls] {
            let config = MailConfig {
                host: Some("smtp.example.org".into()),
                tls,
                ..MailConfig::default()
            };
            let transport: Transport = smtp_builder(&config).unwrap().build();
            let shown = format!("{transport:?}");
            assert!(shown.contains("smtp.example.org"), "{shown}");
        }
        assert!(
            smtp_builder(&MailConfig::default())
                .unwrap_err()
                .to_string()
                .contains("mail is off")
        );
    }

    #[test]
    fn messages_are_multipart_with_date_and_a_stable_message_id() {
        let config = MailConfig::default();
        let mail = compose(
            "bob@example.org",
            "Test & more",
            &["Hi <b>".to_owned()],
            &[],
            "",
            None,
        );
        let record = OutboxRecord {
            id: 42,
            to: mail.to,
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
            about: None,
            created_at: 1_700_000_000_000,
            attempts: 0,
            next_attempt_at: 1_700_000_000_000,
            sent_at: None,
            failed_at: None,
            last_error: None,
            attachments: Vec::new(),
            unreadable: None,
        };
        let raw = String::from_utf8(message(&config, &record).unwrap().formatted()).unwrap();
        assert!(raw.contains("From: Osprey <osprey@localhost>"), "{raw}");
        assert!(raw.contains("To: bob@example.org"), "{raw}");
        assert!(raw.contains("Subject: Test & more"), "{raw}");
        assert!(raw.contains("Date: Tue, 14 Nov 2023 22:13:20 +0000"), "{raw}");
        assert!(
            raw.contains("Message-ID: <osprey.outbox.42.1700000000000@localhost>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
        assert!(
            !raw.contains("multipart/mixed"),
            "no attachments, no mixed part: {raw}"
        );
        let with = OutboxRecord {
            attachments: vec![
                crate::mail::attachment::Attachment {
                    name: "incidents.csv".into(),
                    content_type: crate::mail::attachment::ContentType::Csv,
                    text: "id,title\ni1,Ransomware\n".into(),
                },
                crate::mail::attachment::Attachment {
                    name: "report.html".into(),
                    content_type: crate::mail::attachment::ContentType::Html,
                    text: "<p>&lt;b&gt;</p>".into(),
                },
            ],
            ..record.clone()
        };
        let raw = String::from_utf8(message(&config, &with).unwrap().formatted()).unwrap();
        assert!(raw.contains("Content-Type: multipart/mixed"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.contains("Content-Disposition: attachment; filename=\"incidents.csv\""),
            "{raw}"
        );
        assert!(raw.contains("Content-Type: text/csv; charset=utf-8"), "{raw}");
        assert!(raw.contains("filename=\"report.html\""), "{raw}");
        let unreadable = OutboxRecord {
            unreadable: Some("its attachments are unreadable: x".into()),
            ..record.clone()
        };
        assert!(matches!(
            message(&config, &unreadable),
            Err(MessageError::Unreadable(_))
        ));
        let bad = OutboxRecord {
            to: "nobody".into(),
            ..record
        };
        assert!(
            message(&config, &bad)
                .unwrap_err()
                .to_string()
                .contains("'nobody'")
        );
    }
}
