//! Questions asked in Slack: where they go ([`SlackTarget`]), and what the `slack` plugin is
//! asked to post: the question with one button per choice (each button's `value` a signed
//! token of [`Purpose::Chat`] binding the question's link, the choice and the plugin), the
//! message it becomes once answered, and the word to someone whose click changed nothing.
//! Pure, given the link key.

use super::links::{self, Claim, Purpose};
use super::questions::Question;
use crate::mail::message::format_time;
use crate::vault::LinkKey;
use serde_json::{Value, json};

/// The plugin that posts questions to Slack and receives the clicks.
pub const PLUGIN: &str = "slack";

/// Where in Slack a question goes, as the playbook wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackTarget {
    /// `#soc`, or a channel id `#C0123ABCD`.
    Channel(String),
    /// `@U0123ABCD`: a member, by id (a direct message from the app).
    User(String),
    /// `@ana@example.com`: a member, by e-mail (found with `lookup-user-by-email` first).
    Email(String),
}

/// A `slack` value that names neither a channel nor a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is neither a channel (#name or #C0123ABCD) nor a person (@U0123ABCD, or @ and an e-mail address)"
)]
pub struct SlackTargetError(pub String);

impl SlackTarget {
    pub fn parse(text: &str) -> Result<SlackTarget, SlackTargetError> {
        let bad = || SlackTargetError(text.to_owned());
        let t = text.trim();
        if let Some(name) = t.strip_prefix('#') {
            let ok = (1..=80).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            return ok.then(|| SlackTarget::Channel(name.to_owned())).ok_or_else(bad);
        }
        let who = t.strip_prefix('@').ok_or_else(bad)?;
        if who.contains('@') {
            super::questions::check_email(who).map_err(|_| bad())?;
            return Ok(SlackTarget::Email(who.to_owned()));
        }
        let member_id = who.len() >= 3
            && who.len() <= 32
            && (who.starts_with('U') || who.starts_with('W'))
            && who.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        member_id.then(|| SlackTarget::User(who.to_owned())).ok_or_else(bad)
    }

    /// As written: `#soc`, `@U0123ABCD`, `@ana@example.com`.
    pub fn as_str(&self) -> String {
        match self {
            SlackTarget::Channel(c) => format!("#{c}"),
            SlackTarget::User(u) | SlackTarget::Email(u) => format!("@{u}"),
        }
    }
}

/// The Slack member id in an answerer `slack:U0123ABCD`, if it is one.
pub fn member_of(by: &str) -> Option<&str> {
    by.strip_prefix("slack:").filter(|id| !id.is_empty())
}

/// A button's label: Slack takes 75 characters at most.
fn label(text: &str) -> String {
    if text.chars().count() <= 75 {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(74).collect();
    cut.push('…');
    cut
}

/// What the Slack outbox keeps of a question's post: where it goes, its text, and its buttons,
/// each with the token of its choice (`link` is the question's chat link, valid until
/// `expires_at`). `None` when a click cannot answer the question.
#[allow(clippy::too_many_arguments)]
pub fn post(
    key: &LinkKey,
    to: &SlackTarget,
    title: &str,
    body: &str,
    due_at: Option<i64>,
    question: &Question,
    link: &str,
    expires_at: i64,
) -> Option<Value> {
    let buttons: Vec<Value> = question
        .choices()?
        .into_iter()
        .map(|c| {
            let claim = Claim {
                link: link.to_owned(),
                purpose: Purpose::Chat,
                expires_at,
                choice: Some(c.choice.clone()),
                plugin: Some(PLUGIN.to_owned()),
            };
            let mut b = json!({
                "text": label(&c.label),
                "value": links::sign(key, &claim),
                // What the plugin reports as the choice clicked.
                "action_id": c.choice,
            });
            match c.choice.as_str() {
                "approve" if question.kind == super::questions::Kind::Approve => b["style"] = "primary".into(),
                "deny" if question.kind == super::questions::Kind::Approve => b["style"] = "danger".into(),
                _ => {}
            }
            b
        })
        .collect();
    let mut text = format!("*{}*", title.trim());
    if !body.trim().is_empty() {
        text.push_str("\n\n");
        text.push_str(body.trim());
    }
    if let Some(due) = due_at {
        text.push_str(&format!("\n\n_Please answer by {}._", format_time(due)));
    }
    Some(json!({ "to": to.as_str(), "text": text, "buttons": buttons }))
}

/// The message a post becomes once answered: the question, who answered with what, and no
/// buttons.
pub fn answered(title: &str, choice_label: &str, by: &str, user: Option<&str>) -> Value {
    let who = match member_of(by) {
        Some(id) => format!("<@{id}>"),
        None => by.to_owned(),
    };
    let osprey = user.map(|u| format!(" (Osprey user {u})")).unwrap_or_default();
    json!({ "text": format!("*{}*\n\n:white_check_mark: *{choice_label}*, answered by {who}{osprey}.", title.trim()) })
}

/// What someone whose click changed nothing is told (an ephemeral message, only to them).
pub fn refused(user: &str, why: &str) -> Value {
    json!({ "user": user, "text": format!("Your click changed nothing: {why}") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::humans::questions::{Kind, Spec};

    #[test]
    fn targets_are_channels_or_people() {
        let ok = [
            ("#soc", SlackTarget::Channel("soc".into())),
            (" #C0SOC00001 ", SlackTarget::Channel("C0SOC00001".into())),
            ("@U024BE7LH", SlackTarget::User("U024BE7LH".into())),
            ("@ana@example.com", SlackTarget::Email("ana@example.com".into())),
        ];
        for (text, want) in ok {
            assert_eq!(SlackTarget::parse(text), Ok(want.clone()), "{text}");
            assert_eq!(want.as_str(), text.trim());
        }
        for bad in ["soc", "#", "#a b", "@", "@alice", "@u123", "@a@", "U024BE7LH"] {
            assert!(SlackTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_button_carries_a_token_of_its_choice() {
        let key = LinkKey::from_bytes([3; 32]);
        let spec: Spec = serde_json::from_value(json!({ "slack": "#soc", "title": "Contain host-7?" })).unwrap();
        let q = spec.check(Kind::Approve).unwrap();
        let post = post(
            &key,
            q.slack.as_ref().unwrap(),
            &q.title,
            "It beacons.",
            Some(0),
            &q.question,
            "k1",
            9_000,
        )
        .unwrap();
        assert_eq!(post["to"], "#soc");
        assert!(post["text"].as_str().unwrap().starts_with("*Contain host-7?*\n\nIt beacons."));
        let buttons = post["buttons"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        for (b, (choice, style)) in buttons.iter().zip([("approve", "primary"), ("deny", "danger")]) {
            assert_eq!((b["action_id"].as_str(), b["style"].as_str()), (Some(choice), Some(style)));
            let claim = links::verify(&key, b["value"].as_str().unwrap(), 1).unwrap();
            assert_eq!(claim.purpose, Purpose::Chat);
            assert_eq!((claim.link.as_str(), claim.expires_at), ("k1", 9_000));
            assert_eq!(claim.choice.as_deref(), Some(choice));
            assert_eq!(claim.plugin.as_deref(), Some(PLUGIN));
        }
        assert_eq!(label(&"x".repeat(80)).chars().count(), 75);
    }

    #[test]
    fn the_answered_message_names_who() {
        let m = answered("Contain?", "Approve", "slack:U1", Some("alice"));
        assert_eq!(
            m["text"],
            "*Contain?*\n\n:white_check_mark: *Approve*, answered by <@U1> (Osprey user alice)."
        );
        assert_eq!(member_of("slack:U1"), Some("U1"));
        assert_eq!(member_of("echo:U1"), None);
    }
}
