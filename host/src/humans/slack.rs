//! Questions asked in Slack (where, `questions::SlackTarget`): what the `slack` plugin is
//! asked to post: the question with one button per choice (each button's `value` a signed
//! token of [`Purpose::Chat`] binding the question's link, the choice and the plugin), the
//! message it becomes once answered, and the word to someone whose click changed nothing.
//! Pure, given the link key.

use super::links::{self, Claim, Purpose};
use super::questions::{Question, SlackTarget};
use crate::mail::message::format_time;
use crate::vault::LinkKey;
use serde_json::{Value, json};

/// The plugin that posts questions to Slack and receives the clicks.
pub const PLUGIN: &str = "slack";

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
                "approve" if question.kind == super::questions::Kind::Approve => {
                    b["style"] = "primary".into()
                }
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
    fn each_button_carries_a_token_of_its_choice() {
        let key = LinkKey::from_bytes([3; 32]);
        let spec: Spec =
            serde_json::from_value(json!({ "slack": "#soc", "title": "Contain host-7?" })).unwrap();
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
        assert!(
            post["text"]
                .as_str()
                .unwrap()
                .starts_with("*Contain host-7?*\n\nIt beacons.")
        );
        let buttons = post["buttons"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        for (b, (choice, style)) in buttons.iter().zip([("approve", "primary"), ("deny", "danger")]) {
            assert_eq!(
                (b["action_id"].as_str(), b["style"].as_str()),
                (Some(choice), Some(style))
            );
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
