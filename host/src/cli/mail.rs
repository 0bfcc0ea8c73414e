use crate::app::App;
use crate::config::Config;
use crate::mail::message::compose;
use crate::mail::sender::Outcome;
use crate::store::now_ms;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum MailCommand {
    /// Send a test message through the configured SMTP server, now, and say whether it was
    /// delivered (or what the server answered).
    #[command(after_help = "\
Examples:
  osprey mail test soc@example.org               send it now and show the SMTP answer
  osprey mail test soc@example.org --queue-only  leave it to the running server's sender
  osprey mail outbox                             see what was sent, is waiting, or failed

The message goes through the outbox like every mail: it is queued, then sent by this command
(or, with --queue-only, by the running server). If it cannot be delivered, it stays in the
outbox and a running server tries again with backoff, up to mail.max_attempts. Mail needs
[mail] host (and for AUTH, mail.username and mail.password_secret: the password is set with
`osprey secret set osprey NAME`). See README.md, \"Configuration\".")]
    Test {
        /// Where to send it.
        address: String,
        /// Only queue it; a running server sends it.
        #[arg(long)]
        queue_only: bool,
        /// The subject.
        #[arg(long, default_value = "Osprey test message")]
        subject: String,
    },
    /// List the outbox: pending and failed messages first, then recently sent ones.
    #[command(after_help = "\
Examples:
  osprey mail outbox
  osprey mail outbox --limit 200

STATE is pending (waiting to be sent or tried again), sent, or failed (given up on after
mail.max_attempts); LAST ERROR is what the SMTP server (or the connection) said the last time
it was tried.")]
    Outbox {
        /// The most messages shown.
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: u32,
    },
}

pub async fn run(cmd: MailCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        MailCommand::Test {
            address,
            queue_only,
            subject,
        } => test(&app, &address, queue_only, &subject).await,
        MailCommand::Outbox { limit } => {
            let mails = app.store.outbox(i64::from(limit)).await?;
            if mails.is_empty() {
                println!("the outbox is empty");
                return Ok(0);
            }
            println!(
                "{:<8} {:<32} {:<36} {:<8} {:>8}  LAST ERROR",
                "ID", "TO", "SUBJECT", "STATE", "ATTEMPTS"
            );
            for m in mails {
                println!(
                    "{:<8} {:<32} {:<36} {:<8} {:>8}  {}",
                    m.id,
                    cut(&m.to, 32),
                    cut(&m.subject, 36),
                    m.state(),
                    m.attempts,
                    m.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(0)
        }
    }
}

async fn test(app: &App, address: &str, queue_only: bool, subject: &str) -> anyhow::Result<i32> {
    let mail_config = &app.config.mail;
    // The address alone, without a display name.
    let email = crate::mail::check_address(address).map_err(anyhow::Error::msg)?;
    if !mail_config.enabled() && !queue_only {
        anyhow::bail!(
            "mail is off: set [mail] host (and the other mail.* options) in the config; or queue the message with --queue-only"
        );
    }
    let server = match &mail_config.host {
        Some(host) => format!(
            "{host}:{} (tls: {})",
            mail_config.port(),
            mail_config.tls.as_str()
        ),
        None => "(none: mail is off)".to_owned(),
    };
    let mail = compose(
        address,
        subject,
        &[
            format!(
                "This is a test message from Osprey to <{email}>, sent with `osprey mail test` at {}.",
                crate::mail::message::format_time(now_ms())
            ),
            format!(
                "It went through the SMTP server {server}. If you can read it, Osprey can send mail: questions to people, their reminders and escalations will reach them."
            ),
        ],
        &[],
        "Osprey, self-hosted security automation",
        Some("test".to_owned()),
    );
    let id = app.store.enqueue_mail(&mail).await?;
    if queue_only {
        println!(
            "queued test message {id} to {address}; a running server sends it (see `osprey mail outbox`)"
        );
        if !mail_config.enabled() {
            println!("note: mail is off ([mail] host is not set): it stays queued until mail is configured");
        }
        return Ok(0);
    }
    let attempts = crate::mail::sender::send_due(&app.mail_sender(), 100).await?;
    let others = attempts.iter().filter(|a| a.id != id).count();
    if others > 0 {
        let sent = attempts
            .iter()
            .filter(|a| a.id != id && a.outcome == Outcome::Sent)
            .count();
        println!("also tried {others} other queued message(s): {sent} sent");
    }
    let outcome = match attempts.into_iter().find(|a| a.id == id) {
        Some(a) => a.outcome,
        // A running server's sender took it first: wait for its attempt.
        None => match wait_for_attempt(app, id).await? {
            Some(outcome) => outcome,
            None => {
                println!(
                    "test message {id} to {address} is being sent by another Osprey process; see `osprey mail outbox`"
                );
                return Ok(0);
            }
        },
    };
    match outcome {
        Outcome::Sent => {
            println!("delivered test message {id} to {address} via {server}");
            Ok(0)
        }
        Outcome::Retry {
            error,
            next_attempt_at,
        } => {
            eprintln!("not delivered: {error}");
            eprintln!(
                "test message {id} stays in the outbox; a running server tries again from {} (up to mail.max_attempts = {})",
                super::render::time(next_attempt_at),
                mail_config.max_attempts
            );
            Ok(1)
        }
        Outcome::Failed { error } => {
            eprintln!("not delivered: {error}");
            eprintln!(
                "test message {id} is marked failed (mail.max_attempts = {})",
                mail_config.max_attempts
            );
            Ok(1)
        }
    }
}

/// The outcome of the first attempt at message `id` by another sender, or `None` if it does
/// not come in the time one attempt may take.
async fn wait_for_attempt(app: &App, id: i64) -> anyhow::Result<Option<Outcome>> {
    let deadline = tokio::time::Instant::now()
        + crate::mail::sender::attempt_deadline(&app.config.mail)
        + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        if let Some(m) = app.store.outbox_mail(id).await? {
            let error = m.last_error.clone().unwrap_or_default();
            if m.sent_at.is_some() {
                return Ok(Some(Outcome::Sent));
            } else if m.failed_at.is_some() {
                return Ok(Some(Outcome::Failed { error }));
            } else if m.attempts > 0 {
                return Ok(Some(Outcome::Retry {
                    error,
                    next_attempt_at: m.next_attempt_at,
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

/// `text` cut to `max` characters, with an ellipsis if cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
