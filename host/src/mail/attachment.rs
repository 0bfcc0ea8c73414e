//! Files attached to a mail (`send_email`'s `attachments`): text documents a playbook made
//! (a CSV, an HTML report, plain text, JSON), each with a safe file name and one of a few
//! content types, bounded in number and in total size. Pure: `humans` reads them from a
//! script's map, `store/outbox.rs` keeps them with the message, the sender attaches them.

use serde::{Deserialize, Serialize};

/// Attachments on one message, at most.
pub const MAX_ATTACHMENTS: usize = 10;
/// The attachments' texts on one message together, at most (bytes).
pub const MAX_TOTAL_BYTES: usize = 5 * 1024 * 1024;
/// A file name's length, at most (bytes).
pub const MAX_NAME_BYTES: usize = 100;

/// What an attachment is: the closed set of types a playbook can attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentType {
    #[serde(rename = "text/csv")]
    Csv,
    #[serde(rename = "text/html")]
    Html,
    #[serde(rename = "text/plain")]
    Plain,
    #[serde(rename = "application/json")]
    Json,
}

impl ContentType {
    pub const ALL: [ContentType; 4] = [
        ContentType::Csv,
        ContentType::Html,
        ContentType::Plain,
        ContentType::Json,
    ];

    /// The MIME type, as the script writes it and the mail carries it (with `charset=utf-8`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Csv => "text/csv",
            ContentType::Html => "text/html",
            ContentType::Plain => "text/plain",
            ContentType::Json => "application/json",
        }
    }

    /// A MIME type by name (case-insensitively, parameters such as `; charset=utf-8` ignored).
    pub fn parse(text: &str) -> Option<ContentType> {
        let essence = text.split(';').next().unwrap_or_default().trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(essence))
    }

    /// The type a file name's extension says (`.csv`, `.html`/`.htm`, `.txt`, `.json`).
    pub fn from_name(name: &str) -> Option<ContentType> {
        let (_, ext) = name.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "csv" => ContentType::Csv,
            "html" | "htm" => ContentType::Html,
            "txt" => ContentType::Plain,
            "json" => ContentType::Json,
            _ => return None,
        })
    }

    fn names() -> String {
        Self::ALL.map(ContentType::as_str).join(", ")
    }
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The file name the reader sees (checked by [`check_name`]).
    pub name: String,
    pub content_type: ContentType,
    /// The file's content (UTF-8 text).
    pub text: String,
}

/// An attachment as a script gives it: `#{ name, content_type, text }` (`content_type` may be
/// left out when the name's extension says it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    pub name: String,
    #[serde(default)]
    pub content_type: Option<String>,
    pub text: String,
}

/// Why attachments were refused; the message says which one and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("{count} attachments; a message carries at most {MAX_ATTACHMENTS}")]
    TooMany { count: usize },
    #[error(
        "the attachments come to {bytes} bytes; a message carries at most {MAX_TOTAL_BYTES} bytes (5 MiB) of them"
    )]
    TooBig { bytes: usize },
    #[error(
        "attachment name '{name}' is not a safe file name: use 1 to {MAX_NAME_BYTES} letters, digits, '.', '-' and '_', not starting with '.' (such as report-2026-12-07.csv)"
    )]
    BadName { name: String },
    #[error("two attachments are named '{name}'")]
    SameName { name: String },
    #[error(
        "attachment '{name}': content type '{given}' is not one of {}",
        ContentType::names()
    )]
    BadType { name: String, given: String },
    #[error(
        "attachment '{name}': give a content_type ({}), or a name ending in .csv, .html, .txt or .json",
        ContentType::names()
    )]
    NoType { name: String },
}

/// Whether `name` is a safe file name: 1 to [`MAX_NAME_BYTES`] ASCII letters, digits, `.`,
/// `-` and `_`, not starting with a dot (no path, no hidden file, nothing a mail client or a
/// file system reads as more than a name).
pub fn check_name(name: &str) -> Result<(), AttachmentError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(AttachmentError::BadName {
            name: shortened(name),
        })
    }
}

/// At most 100 characters of a refused name, for the message.
fn shortened(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_BYTES) {
        Some((i, _)) => format!("{}...", &name[..i]),
        None => name.to_owned(),
    }
}

/// The attachments a script gave, checked: their number and total size first (before
/// anything is copied), then each name and type.
pub fn check(specs: Vec<AttachmentSpec>) -> Result<Vec<Attachment>, AttachmentError> {
    if specs.len() > MAX_ATTACHMENTS {
        return Err(AttachmentError::TooMany { count: specs.len() });
    }
    let bytes = specs.iter().map(|s| s.text.len()).sum::<usize>();
    if bytes > MAX_TOTAL_BYTES {
        return Err(AttachmentError::TooBig { bytes });
    }
    let mut names = std::collections::BTreeSet::new();
    specs
        .into_iter()
        .map(|s| {
            check_name(&s.name)?;
            if !names.insert(s.name.to_ascii_lowercase()) {
                return Err(AttachmentError::SameName { name: s.name });
            }
            let content_type = match &s.content_type {
                Some(given) => ContentType::parse(given).ok_or_else(|| AttachmentError::BadType {
                    name: s.name.clone(),
                    given: shortened(given),
                })?,
                None => ContentType::from_name(&s.name)
                    .ok_or_else(|| AttachmentError::NoType { name: s.name.clone() })?,
            };
            Ok(Attachment {
                name: s.name,
                content_type,
                text: s.text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, content_type: Option<&str>, text: &str) -> AttachmentSpec {
        AttachmentSpec {
            name: name.into(),
            content_type: content_type.map(str::to_owned),
            text: text.into(),
        }
    }

    #[test]
    fn good_attachments_are_kept_with_their_types() {
        let got = check(vec![
            spec("incidents.csv", None, "id\ni1\n"),
            spec("report.HTML", None, "<p>x</p>"),
            spec("notes", Some("Text/Plain; charset=utf-8"), "hi"),
            spec("data_1.json", Some("application/json"), "{}"),
        ])
        .unwrap();
        let types: Vec<_> = got.iter().map(|a| a.content_type).collect();
        assert_eq!(types, ContentType::ALL);
        assert_eq!(got[0].name, "incidents.csv");
        assert_eq!(got[0].text, "id\ni1\n");
        assert!(check(Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn too_many_attachments_are_refused() {
        let specs: Vec<_> = (0..=MAX_ATTACHMENTS)
            .map(|i| spec(&format!("f{i}.txt"), None, "x"))
            .collect();
        let e = check(specs).unwrap_err();
        assert_eq!(e, AttachmentError::TooMany { count: 11 });
        assert_eq!(e.to_string(), "11 attachments; a message carries at most 10");
        let ten: Vec<_> = (0..MAX_ATTACHMENTS)
            .map(|i| spec(&format!("f{i}.txt"), None, "x"))
            .collect();
        assert_eq!(check(ten).unwrap().len(), 10);
    }

    #[test]
    fn attachments_over_5_mib_together_are_refused() {
        let half = "x".repeat(MAX_TOTAL_BYTES / 2);
        let exactly = vec![spec("a.txt", None, &half), spec("b.txt", None, &half)];
        assert_eq!(check(exactly).unwrap().len(), 2, "5 MiB is allowed");
        let over = vec![
            spec("a.txt", None, &half),
            spec("b.txt", None, &(half.clone() + "x")),
        ];
        let e = check(over).unwrap_err();
        assert_eq!(
            e,
            AttachmentError::TooBig {
                bytes: MAX_TOTAL_BYTES + 1
            }
        );
        assert!(e.to_string().contains("at most 5242880 bytes (5 MiB)"), "{e}");
    }

    #[test]
    fn names_must_be_plain_safe_file_names() {
        for bad in [
            "",
            ".hidden.csv",
            "../etc/passwd",
            "dir/report.csv",
            "C:\\report.csv",
            "report .csv",
            "report\r\nX-Header: 1.csv",
            "rapport-été.csv",
            "a\"b.csv",
            &"x".repeat(MAX_NAME_BYTES + 1),
        ] {
            let e = check(vec![spec(bad, Some("text/csv"), "x")]).unwrap_err();
            assert!(matches!(e, AttachmentError::BadName { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("is not a safe file name"), "{e}");
        }
        let long = "x".repeat(MAX_NAME_BYTES);
        assert!(check_name(&long).is_ok());
        assert!(check_name("Report_2026-12-07.v2.csv").is_ok());
    }

    #[test]
    fn types_are_a_closed_set_and_names_are_unique() {
        let e = check(vec![spec("x.pdf", Some("application/pdf"), "x")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "attachment 'x.pdf': content type 'application/pdf' is not one of text/csv, text/html, text/plain, application/json"
        );
        let e = check(vec![spec("x.exe", None, "x")]).unwrap_err();
        assert!(e.to_string().contains("give a content_type"), "{e}");
        let e = check(vec![spec("a.csv", None, "1"), spec("A.CSV", None, "2")]).unwrap_err();
        assert_eq!(e.to_string(), "two attachments are named 'A.CSV'");
    }
}
