//! A real SMTP server on loopback that keeps what it receives: `smtp_sink.py` (Python's
//! aiosmtpd, installed by scripts/lib/smtp.sh), run as a child process and killed on drop.
//! Messages are parsed with mail-parser, so tests look at them as a mail client would.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

/// A message the sink received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope recipients (RCPT TO).
    pub to: Vec<String>,
    /// The envelope sender (MAIL FROM).
    pub envelope_from: String,
    /// The From header as sent (`Osprey <osprey@localhost>`).
    pub from: String,
    pub subject: String,
    /// The top-level content type (`multipart/alternative`).
    pub content_type: String,
    /// The text/plain part, decoded; empty if there is none.
    pub text: String,
    /// The text/html part, decoded; empty if there is none.
    pub html: String,
    /// The message as received.
    pub raw: String,
    /// The attached files, in order.
    pub attachments: Vec<ReceivedAttachment>,
}

/// A file attached to a received message, decoded.
#[derive(Debug, Clone)]
pub struct ReceivedAttachment {
    /// The file name (Content-Disposition's `filename`).
    pub name: String,
    /// `text/csv`, without parameters.
    pub content_type: String,
    pub text: String,
}

pub struct SmtpSink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// Closing it (with the test process) stops the sink too.
    _stdin: ChildStdin,
}

impl SmtpSink {
    /// A sink on a free port, without authentication.
    pub fn start() -> SmtpSink {
        Self::spawn(0, None)
    }

    /// A sink that requires AUTH (PLAIN or LOGIN, without TLS) with these credentials, and
    /// answers others with 535.
    pub fn start_with_auth(user: &str, password: &str) -> SmtpSink {
        Self::spawn(0, Some((user, password)))
    }

    /// A sink on `port` (one a test picked with [`free_port`] before the sink was up).
    pub fn start_on(port: u16) -> SmtpSink {
        Self::spawn(port, None)
    }

    fn spawn(port: u16, auth: Option<(&str, &str)>) -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("python3");
        command
            .arg(script())
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir.path().join("mail"));
        if let Some((user, password)) = auth {
            command.args(["--user", user, "--password", password]);
        }
        let stderr = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("python3 runs (the SMTP sink needs it; scripts/test.sh installs it)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the SMTP sink did not start (is aiosmtpd installed? scripts/test.sh installs it through scripts/lib/smtp.sh):\n{}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            );
        };
        SmtpSink {
            child,
            port,
            dir,
            _stdin: stdin,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message received so far, in the order received.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<PathBuf> = match std::fs::read_dir(self.mail_dir()) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names.iter().map(|p| parse(p)).collect()
    }

    /// Wait until at least `n` messages have come, or panic after `secs` seconds.
    pub async fn wait_for_count(&self, n: usize, secs: u64) -> Vec<ReceivedMail> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the SMTP sink got {} messages, not {n}, within {secs}s",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/support/smtp_sink.py")
}

/// Read `NNNNNN.eml` and its envelope `NNNNNN.json`.
fn parse(eml: &Path) -> ReceivedMail {
    use mail_parser::{MessageParser, MimeHeaders, PartType};
    let raw = std::fs::read(eml).unwrap();
    let envelope: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eml.with_extension("json")).unwrap()).unwrap();
    let message = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("{} is not a mail message", eml.display()));
    let from = message
        .from()
        .and_then(|a| a.first())
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(address)) => format!("{name} <{address}>"),
            (None, Some(address)) => address.to_owned(),
            _ => String::new(),
        })
        .unwrap_or_default();
    let type_of = |c: Option<&mail_parser::ContentType>| {
        c.map(|c| match c.subtype() {
            Some(sub) => format!("{}/{sub}", c.ctype()),
            None => c.ctype().to_owned(),
        })
        .unwrap_or_default()
    };
    let content_type = type_of(message.content_type());
    let attachments = message
        .attachments()
        .map(|a| ReceivedAttachment {
            name: a.attachment_name().unwrap_or_default().to_owned(),
            content_type: type_of(a.content_type()),
            text: String::from_utf8_lossy(a.contents()).into_owned(),
        })
        .collect();
    let mut text = String::new();
    let mut html = String::new();
    for part in &message.parts {
        match &part.body {
            PartType::Text(t) if text.is_empty() => text = t.to_string(),
            PartType::Html(h) if html.is_empty() => html = h.to_string(),
            _ => {}
        }
    }
    ReceivedMail {
        to: envelope["rcpt_tos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect(),
        envelope_from: envelope["mail_from"].as_str().unwrap_or_default().to_owned(),
        from,
        subject: message.subject().unwrap_or_default().to_owned(),
        content_type,
        text,
        html,
        raw: String::from_utf8_lossy(&raw).into_owned(),
        attachments,
    }
}
