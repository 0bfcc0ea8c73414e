//! Outgoing mail: the `[mail]` settings, composing a message (a plain-text part and an HTML
//! part readable on a phone), and the sender that delivers the outbox over SMTP.
//!
//! Mail is never sent from the code that decides to send it: that code queues it in the
//! outbox (`store/outbox.rs`) in its own transaction and wakes the sender
//! ([`App::mail_queued`]). The sender claims due messages, sends each with lettre, and records
//! the attempt: sent; or failed, to be tried again after a backoff (5 s, doubling, at most an
//! hour) until `mail.max_attempts`, then given up on. So an SMTP outage or a crash loses
//! nothing, and a message is not sent twice by two senders.
//!
//! The SMTP password is a server secret (`osprey secret set osprey NAME`, named by
//! `mail.password_secret`), opened only to build the transport of one batch; lettre's
//! `Credentials` never print it, and no error or log line here contains it.

use crate::app::App;
use crate::store::outbox::OutboxRecord;
use crate::store::{StoreError, now_ms};
use crate::vault::SERVER_SECRET_OWNER;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use thiserror::Error;

/// How the connection to the SMTP server is protected (`mail.tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MailTls {
    /// Plain SMTP, usually port 25: for a relay on the same host or network only.
    None,
    /// Plain SMTP upgraded with STARTTLS before anything else is sent, usually port 587; a
    /// server that does not offer it is refused.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS"), usually port 465.
    Tls,
}

impl MailTls {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            MailTls::None => "none",
            MailTls::Starttls => "starttls",
            MailTls::Tls => "tls",
        }
    }
}

/// Settings of outgoing mail (`[mail]`). Mail is off while `host` is unset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// The SMTP server's host name (also the name its TLS certificate must carry).
    pub host: Option<String>,
    /// The SMTP server's port; by `tls`: 25 (`none`), 587 (`starttls`), 465 (`tls`).
    pub port: Option<u16>,
    /// `none`, `starttls` or `tls`.
    pub tls: MailTls,
    /// User name to authenticate with (AUTH PLAIN or LOGIN); none if unset.
    pub username: Option<String>,
    /// Name of the server secret holding the password (`osprey secret set osprey NAME`).
    pub password_secret: Option<String>,
    /// The From address, `Name <address>` or `address`.
    pub from: String,
    /// Deadline of each SMTP command (connecting included).
    #[serde(with = "crate::duration::text")]
    pub timeout: Duration,
    /// Attempts at one message before it is given up on (marked failed).
    pub max_attempts: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            host: None,
            port: None,
            tls: MailTls::Starttls,
            username: None,
            password_secret: None,
            from: "Osprey <osprey@localhost>".into(),
            timeout: Duration::from_secs(30),
            max_attempts: 10,
        }
    }
}

impl MailConfig {
    /// Whether mail is on (a host is set).
    pub fn enabled(&self) -> bool {
        self.host.is_some()
    }

    /// The port in force.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            MailTls::None => 25,
            MailTls::Starttls => 587,
            MailTls::Tls => 465,
        })
    }

    /// The From mailbox.
    pub fn from_mailbox(&self) -> Result<Mailbox, String> {
        self.from.parse().map_err(|e| {
            format!(
                "mail.from: '{}' is not a mail address like \"Osprey <osprey@example.org>\" ({e})",
                self.from
            )
        })
    }

    /// Check the settings; the message names the option that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        self.from_mailbox()?;
        if let Some(host) = &self.host
            && (host.trim().is_empty() || host.contains(char::is_whitespace) || host.contains(':'))
        {
            return Err(format!(
                "mail.host: '{host}' is not a host name (put the port in mail.port)"
            ));
        }
        if self.port == Some(0) {
            return Err("mail.port: 0 is not a port".into());
        }
        match (&self.username, &self.password_secret) {
            (Some(_), None) => {
                return Err(
                    "mail.username is set but mail.password_secret is not: name the secret that holds the password (`osprey secret set osprey smtp-password`)".into(),
                );
            }
            (None, Some(_)) => {
                return Err("mail.password_secret is set but mail.username is not".into());
            }
            (Some(user), Some(_)) if user.is_empty() => {
                return Err("mail.username is empty".into());
            }
            _ => {}
        }
        if let Some(name) = &self.password_secret {
            crate::app::validate_secret_name(name).map_err(|e| format!("mail.password_secret: {e}"))?;
        }
        if self.max_attempts == 0 {
            return Err("mail.max_attempts must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return Err("mail.timeout must be longer than 0s".into());
        }
        Ok(())
    }
}

/// Whether `address` is one mail address (`alice@example.org` or `Alice <alice@example.org>`);
/// returns the address without its display name (`alice@example.org`).
pub fn check_address(address: &str) -> Result<String, String> {
    address
        .parse::<Mailbox>()
        .map(|m| m.email.to_string())
        .map_err(|e| format!("'{address}' is not a mail address ({e})"))
}

/// A time in mail text: `2026-05-01 14:30 UTC`.
pub fn format_time(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => format!("{ms} ms after 1970"),
    }
}

/// A message to send: queue it with `Store::enqueue_mail`, or with `store::outbox::enqueue`
/// inside another transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// What it is about (`question:ID`, `incident:ID`), if anything.
    pub about: Option<String>,
}

/// A link shown as a large button in the HTML part and as `LABEL: URL` in the text part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    pub url: String,
}

/// `text` with the characters that mean something in HTML replaced by entities, safe in
/// element content and in quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A message with a plain-text part (the paragraphs, then each button as `LABEL: URL` on its
/// own line, then the footer) and an HTML part for a phone's screen (one column at most
/// 600px wide, inline styles only, buttons as large links). Every text is escaped.
pub fn compose(
    to: &str,
    subject: &str,
    paragraphs: &[String],
    buttons: &[Button],
    footer: &str,
    about: Option<String>,
) -> Mail {
    let mut text = String::new();
    for p in paragraphs {
        text.push_str(p.trim_end());
        text.push_str("\n\n");
    }
    for b in buttons {
        text.push_str(&format!("{}: {}\n", b.label, b.url));
    }
    if !buttons.is_empty() {
        text.push('\n');
    }
    if !footer.is_empty() {
        text.push_str("-- \n");
        text.push_str(footer.trim_end());
        text.push('\n');
    }

    const FONT: &str =
        "font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif";
    let mut html = String::new();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str(&format!("<title>{}</title>\n</head>\n", escape_html(subject)));
    html.push_str("<body style=\"margin:0;padding:0;background-color:#f3f4f6;\">\n");
    html.push_str(&format!(
        "<div style=\"max-width:600px;margin:0 auto;padding:16px;{FONT};font-size:16px;line-height:1.5;color:#111827;\">\n"
    ));
    html.push_str(
        "<div style=\"background-color:#ffffff;border-radius:8px;padding:24px 20px;border:1px solid #e5e7eb;\">\n",
    );
    html.push_str(&format!(
        "<h1 style=\"font-size:20px;line-height:1.3;margin:0 0 16px 0;\">{}</h1>\n",
        escape_html(subject)
    ));
    for p in paragraphs {
        let lines: Vec<String> = p.trim_end().lines().map(escape_html).collect();
        html.push_str(&format!(
            "<p style=\"margin:0 0 16px 0;overflow-wrap:anywhere;\">{}</p>\n",
            lines.join("<br>\n")
        ));
    }
    for (i, b) in buttons.iter().enumerate() {
        // The first button is the main action; the others are outlined.
        let colors = if i == 0 {
            "background-color:#1d4ed8;color:#ffffff;border:2px solid #1d4ed8;"
        } else {
            "background-color:#ffffff;color:#1d4ed8;border:2px solid #1d4ed8;"
        };
        html.push_str(&format!(
            "<a href=\"{}\" style=\"display:block;{colors}border-radius:8px;padding:14px 20px;margin:12px 0 0 0;\
             font-size:18px;font-weight:600;text-align:center;text-decoration:none;\">{}</a>\n",
            escape_html(&b.url),
            escape_html(&b.label)
        ));
    }
    html.push_str("</div>\n");
    if !footer.is_empty() {
        let lines: Vec<String> = footer.trim_end().lines().map(escape_html).collect();
        html.push_str(&format!(
            "<p style=\"margin:16px 4px 0 4px;font-size:13px;color:#6b7280;\">{}</p>\n",
            lines.join("<br>\n")
        ));
    }
    html.push_str("</div>\n</body>\n</html>\n");
    Mail {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text,
        html,
        about,
    }
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

/// The SMTP transport of the config, without credentials.
fn smtp_builder(config: &MailConfig) -> Result<AsyncSmtpTransportBuilder, String> {
    let host = config.host.as_deref().ok_or_else(|| MailError::Off.to_string())?;
    let builder = match config.tls {
        MailTls::None => Transport::builder_dangerous(host),
        MailTls::Starttls => {
            Transport::starttls_relay(host).map_err(|e| format!("cannot set up TLS for {host}: {e}"))?
        }
        MailTls::Tls => Transport::relay(host).map_err(|e| format!("cannot set up TLS for {host}: {e}"))?,
    };
    Ok(builder.port(config.port()).timeout(Some(config.timeout)))
}

/// The SMTP transport of the config, with the password from the secret store.
async fn transport(app: &App) -> Result<Transport, String> {
    let config = &app.config.mail;
    let mut builder = smtp_builder(config)?;
    if let (Some(user), Some(name)) = (&config.username, &config.password_secret) {
        let sealed = app
            .store
            .secret(SERVER_SECRET_OWNER, name)
            .await
            .map_err(|e| format!("cannot read the SMTP password secret '{name}': {e}"))?
            .ok_or_else(|| {
                format!(
                    "the SMTP password secret '{name}' (mail.password_secret) is not set; set it with `osprey secret set {SERVER_SECRET_OWNER} {name}`"
                )
            })?;
        let password = app
            .vault
            .open_sealed(SERVER_SECRET_OWNER, name, &sealed)
            .map_err(|e| e.to_string())?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// The lettre message of an outbox row: multipart/alternative text and HTML, with the Date
/// it was queued and a Message-ID made from its id, the same at every attempt.
fn message(config: &MailConfig, mail: &OutboxRecord) -> Result<Message, String> {
    let from = config.from_mailbox()?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| format!("'{}' is not a mail address ({e})", mail.to))?;
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
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// One attempt at `mail` over `transport`.
async fn send_one(
    config: &MailConfig,
    transport: &Result<Transport, String>,
    mail: &OutboxRecord,
) -> Result<(), SendError> {
    let transport = transport.as_ref().map_err(|e| SendError::Retry(e.clone()))?;
    let message = message(config, mail).map_err(SendError::Permanent)?;
    let server = format!("{}:{}", config.host.as_deref().unwrap_or_default(), config.port());
    match tokio::time::timeout(attempt_deadline(config), transport.send(message)).await {
        Ok(Ok(_response)) => Ok(()),
        Ok(Err(e)) => Err(SendError::Retry(format!("SMTP server {server}: {e}"))),
        Err(_) => Err(SendError::Retry(format!(
            "SMTP server {server}: no answer within {}",
            humantime::format_duration(attempt_deadline(config))
        ))),
    }
}

enum SendError {
    /// Worth trying again.
    Retry(String),
    /// Never going to work (the message itself is wrong): given up on at once.
    Permanent(String),
}

/// Send the mail due now, up to `limit` messages, recording each attempt in the outbox.
/// Returns the attempts made (none when nothing is due; messages being sent by another sender
/// are left to it).
pub async fn send_due(app: &App, limit: usize) -> Result<Vec<Attempt>, MailError> {
    let config = &app.config.mail;
    if !config.enabled() {
        return Err(MailError::Off);
    }
    // A read first: claiming is a write, and most passes find nothing due.
    if app.store.due_mail(now_ms(), 1).await?.is_empty() {
        return Ok(Vec::new());
    }
    let mut attempts = Vec::new();
    let mut transport: Option<Result<Transport, String>> = None;
    while attempts.len() < limit {
        // One at a time, so a claim needs to last only as long as one attempt.
        let now = now_ms();
        let until = now + claim_for(config).as_millis() as i64;
        let Some(mail) = app.store.claim_mail(now, until, 1).await?.pop() else {
            break;
        };
        // Built once per pass, and only when something is due.
        if transport.is_none() {
            transport = Some(self::transport(app).await);
        }
        let transport = transport.as_ref().expect("built just above");
        let result = send_one(config, transport, &mail).await;
        attempts.push(record(app, &mail, result).await?);
    }
    Ok(attempts)
}

/// Record how an attempt went, and log it.
async fn record(app: &App, mail: &OutboxRecord, result: Result<(), SendError>) -> Result<Attempt, MailError> {
    let config = &app.config.mail;
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
        Err(SendError::Retry(error)) if attempts < i64::from(config.max_attempts) => {
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
        Err(SendError::Retry(error) | SendError::Permanent(error)) => {
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

/// The sender: sends due mail when woken by [`App::mail_queued`], and every second for
/// retries and for mail queued by other processes. With mail off it sends nothing, and says
/// so once when it sees mail waiting.
pub fn spawn_sender(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut warned_off = false;
        loop {
            if app.config.mail.enabled() {
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
                _ = app.mail_queued.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("plain text, ünïcode"), "plain text, ünïcode");
    }

    #[test]
    fn composed_mail_has_text_and_a_phone_sized_escaped_html_part() {
        let mail = compose(
            "soc@example.org",
            "Block <203.0.113.9>?",
            &[
                "The playbook asks: block 203.0.113.9 & its /24?".to_owned(),
                "Line one\nline <two>".to_owned(),
            ],
            &[
                Button {
                    label: "Approve".into(),
                    url: "https://osprey.example/a?t=1&x=\"2\"".into(),
                },
                Button {
                    label: "Reject <now>".into(),
                    url: "https://osprey.example/r".into(),
                },
            ],
            "Sent by Osprey <osprey.example>",
            Some("question:q1".into()),
        );
        assert_eq!(mail.to, "soc@example.org");
        assert_eq!(mail.subject, "Block <203.0.113.9>?");
        assert_eq!(mail.about.as_deref(), Some("question:q1"));
        assert_eq!(
            mail.text,
            "The playbook asks: block 203.0.113.9 & its /24?\n\nLine one\nline <two>\n\n\
             Approve: https://osprey.example/a?t=1&x=\"2\"\nReject <now>: https://osprey.example/r\n\n\
             -- \nSent by Osprey <osprey.example>\n"
        );
        let html = &mail.html;
        assert!(html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"));
        assert!(html.contains("max-width:600px"));
        assert!(!html.contains("<style"), "inline styles only");
        assert!(html.contains(
            "<h1 style=\"font-size:20px;line-height:1.3;margin:0 0 16px 0;\">Block &lt;203.0.113.9&gt;?</h1>"
        ));
        assert!(html.contains("block 203.0.113.9 &amp; its /24?"));
        assert!(html.contains("Line one<br>\nline &lt;two&gt;"));
        assert!(html.contains("href=\"https://osprey.example/a?t=1&amp;x=&quot;2&quot;\""));
        assert!(html.contains(">Reject &lt;now&gt;</a>"));
        assert!(html.contains("Sent by Osprey &lt;osprey.example&gt;"));
        assert!(html.contains("display:block") && html.contains("padding:14px 20px"));
        assert!(!html.contains("<two>") && !html.contains("<now>") && !html.contains("<osprey.example>"));
    }

    #[test]
    fn no_buttons_no_footer() {
        let mail = compose("a@example.org", "Hi", &["Hello.".to_owned()], &[], "", None);
        assert_eq!(mail.text, "Hello.\n\n");
        assert!(!mail.html.contains("<a "));
    }

    #[test]
    fn times_in_mail_are_utc_to_the_minute() {
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14 22:13 UTC");
    }

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
    fn config_defaults_and_ports() {
        let c = MailConfig::default();
        assert!(!c.enabled());
        assert_eq!((c.tls, c.port(), c.max_attempts), (MailTls::Starttls, 587, 10));
        assert_eq!(c.timeout, Duration::from_secs(30));
        c.validate().unwrap();
        let port = |tls| {
            MailConfig {
                tls,
                ..MailConfig::default()
            }
            .port()
        };
        assert_eq!((port(MailTls::None), port(MailTls::Tls)), (25, 465));
        let c = MailConfig {
            port: Some(2525),
            host: Some("smtp.example.org".into()),
            ..MailConfig::default()
        };
        assert!(c.enabled());
        assert_eq!(c.port(), 2525);
    }

    #[test]
    fn config_mistakes_are_named() {
        let bad = |c: MailConfig| c.validate().unwrap_err();
        let e = bad(MailConfig {
            from: "not an address".into(),
            ..MailConfig::default()
        });
        assert!(e.starts_with("mail.from:") && e.contains("not an address"), "{e}");
        let e = bad(MailConfig {
            username: Some("osprey".into()),
            ..MailConfig::default()
        });
        assert!(e.contains("mail.password_secret"), "{e}");
        let e = bad(MailConfig {
            password_secret: Some("smtp password".into()),
            username: Some("osprey".into()),
            ..MailConfig::default()
        });
        assert!(e.starts_with("mail.password_secret:"), "{e}");
        let e = bad(MailConfig {
            host: Some("smtp.example.org:587".into()),
            ..MailConfig::default()
        });
        assert!(e.contains("mail.port"), "{e}");
        let e = bad(MailConfig {
            max_attempts: 0,
            ..MailConfig::default()
        });
        assert!(e.contains("mail.max_attempts"), "{e}");
        assert_eq!(
            check_address("Alice <alice@example.org>").unwrap(),
            "alice@example.org"
        );
        assert!(check_address("alice").unwrap_err().contains("'alice'"));
    }

    #[test]
    fn config_from_toml() {
        let c: MailConfig = toml::from_str(
            "host = \"smtp.example.org\"\ntls = \"tls\"\nusername = \"osprey\"\npassword_secret = \"smtp-password\"\n\
             from = \"SOC <soc@example.org>\"\ntimeout = \"10s\"\nmax_attempts = 3\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!((c.tls, c.port(), c.max_attempts), (MailTls::Tls, 465, 3));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.from_mailbox().unwrap().email.to_string(), "soc@example.org");
        let e = toml::from_str::<MailConfig>("tls = \"ssl\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ssl"), "{e}");
        let e = toml::from_str::<MailConfig>("hots = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hots"), "{e}");
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
        let bad = OutboxRecord {
            to: "nobody".into(),
            ..record
        };
        assert!(message(&config, &bad).unwrap_err().contains("'nobody'"));
    }
}
