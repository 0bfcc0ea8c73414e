//! A message to send, composed from paragraphs and buttons: a plain-text part and an HTML
//! part readable on a phone, every text escaped. Pure: what `store/` and `humans/` build mail with.

use serde::Serialize;

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
    /// Files attached (checked by `attachment::check`); none for the mails `compose` makes.
    pub attachments: Vec<crate::mail::attachment::Attachment>,
}

/// A link shown as a large button in the HTML part and as `LABEL: URL` in the text part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    pub url: String,
}

/// `text` with the characters that mean something in HTML (`& < > " '`) replaced by
/// entities, safe in element content and in quoted attribute values: the same escaping as the
/// console's templates (`server/ui/render.rs`), by `html-escape`.
pub fn escape_html(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
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
        attachments: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#x27;Jerry&#x27;&lt;/a&gt;"
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
}
