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

pub mod attachment;
pub mod message;
pub mod sender;

use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use std::time::Duration;

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

/// Why `[mail]` was refused; the message names the option that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("mail.from: '{from}' is not a mail address like \"Osprey <osprey@example.org>\" ({source})")]
    From {
        from: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("mail.host: '{0}' is not a host name (put the port in mail.port)")]
    Host(String),
    #[error("mail.port: 0 is not a port")]
    PortZero,
    #[error(
        "mail.username is set but mail.password_secret is not: name the secret that holds the password (`osprey secret set osprey smtp-password`)"
    )]
    NoPasswordSecret,
    #[error("mail.password_secret is set but mail.username is not")]
    NoUsername,
    #[error("mail.username is empty")]
    EmptyUsername,
    #[error("mail.password_secret: {0}")]
    PasswordSecret(#[source] crate::app::AppError),
    #[error("mail.max_attempts must be at least 1")]
    NoAttempts,
    #[error("mail.timeout must be longer than 0s")]
    NoTimeout,
}

/// A text that is not one mail address.
#[derive(Debug, thiserror::Error)]
#[error("'{address}' is not a mail address ({source})")]
pub struct AddressError {
    pub address: String,
    #[source]
    source: lettre::address::AddressError,
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
    pub fn from_mailbox(&self) -> Result<Mailbox, MailConfigError> {
        self.from.parse().map_err(|source| MailConfigError::From {
            from: self.from.clone(),
            source,
        })
    }

    /// Check the settings; the message names the option that is wrong.
    pub fn validate(&self) -> Result<(), MailConfigError> {
        self.from_mailbox()?;
        if let Some(host) = &self.host
            && (host.trim().is_empty() || host.contains(char::is_whitespace) || host.contains(':'))
        {
            return Err(MailConfigError::Host(host.clone()));
        }
        if self.port == Some(0) {
            return Err(MailConfigError::PortZero);
        }
        match (&self.username, &self.password_secret) {
            (Some(_), None) => return Err(MailConfigError::NoPasswordSecret),
            (None, Some(_)) => return Err(MailConfigError::NoUsername),
            (Some(user), Some(_)) if user.is_empty() => return Err(MailConfigError::EmptyUsername),
            _ => {}
        }
        if let Some(name) = &self.password_secret {
            crate::app::validate_secret_name(name).map_err(MailConfigError::PasswordSecret)?;
        }
        if self.max_attempts == 0 {
            return Err(MailConfigError::NoAttempts);
        }
        if self.timeout.is_zero() {
            return Err(MailConfigError::NoTimeout);
        }
        Ok(())
    }
}

/// Whether `address` is one mail address (`alice@example.org` or `Alice <alice@example.org>`);
/// returns the address without its display name (`alice@example.org`).
pub fn check_address(address: &str) -> Result<String, AddressError> {
    mailbox(address).map(|m| m.email.to_string())
}

/// `address` as a mailbox (`alice@example.org` or `Alice <alice@example.org>`).
pub fn mailbox(address: &str) -> Result<Mailbox, AddressError> {
    address.parse().map_err(|source| AddressError {
        address: address.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let bad = |c: MailConfig| c.validate().unwrap_err().to_string();
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
        assert!(
            check_address("alice")
                .unwrap_err()
                .to_string()
                .contains("'alice'")
        );
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
}
