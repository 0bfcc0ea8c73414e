//! A message's Block Kit blocks: the author's own, and buttons turned into an `actions` block.
//! Checked against Slack's limits before anything is sent, so a bad message is `invalid-input`
//! with the reason rather than Slack's `invalid_blocks`.
//!
//! A button's `value` is opaque to Slack and comes back with the click (up to 2,000
//! characters): it is where the id of a question and the chosen answer travel.

use osprey_sdk::prelude::*;

/// How a button looks.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ButtonStyle {
    /// Green: the affirmative choice.
    Primary,
    /// Red: a destructive choice.
    Danger,
}

/// A button in the message.
#[derive(Deserialize, JsonSchema, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct Button {
    /// The label (1 to 75 characters).
    pub(crate) text: String,
    /// What a click sends back (up to 2,000 characters), for example a question id and the
    /// answer it stands for.
    pub(crate) value: String,
    /// The id Slack reports the click with (up to 255 characters, unique in the message);
    /// `button-N` (N from 1) when left out.
    #[serde(default)]
    pub(crate) action_id: Option<String>,
    /// `primary` or `danger`; Slack's default grey when left out.
    #[serde(default)]
    pub(crate) style: Option<ButtonStyle>,
}

/// The `block_id` of the actions block the buttons go in.
pub(crate) const BUTTONS_BLOCK: &str = "osprey-buttons";

const MAX_BLOCKS: usize = 50;
const MAX_BUTTONS: usize = 25;

fn invalid(message: String) -> Error {
    Error::invalid_input(message)
}

/// The blocks to send, or `None` for a plain text message. With buttons and no blocks, the
/// text becomes a `section` above them (the text is also the notification's fallback).
pub(crate) fn message_blocks(
    text: &str,
    blocks: Option<&[Value]>,
    buttons: &[Button],
) -> Result<Option<Vec<Value>>> {
    if text.trim().is_empty() {
        return Err(invalid("text must not be empty (it is the message, or the notification's fallback when there are blocks)".into()));
    }
    if text.chars().count() > 40_000 {
        return Err(invalid("text is longer than Slack's 40,000 characters".into()));
    }
    let mut out: Vec<Value> = match blocks {
        Some(blocks) => {
            for (i, b) in blocks.iter().enumerate() {
                if b.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
                    return Err(invalid(format!(
                        "blocks[{i}] is not a Block Kit block: every block is an object with a \"type\""
                    )));
                }
            }
            blocks.to_vec()
        }
        None if buttons.is_empty() => return Ok(None),
        None => vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})],
    };
    if !buttons.is_empty() {
        out.push(actions_block(buttons)?);
    }
    if out.len() > MAX_BLOCKS {
        return Err(invalid(format!(
            "the message has {} blocks; Slack takes at most {MAX_BLOCKS}",
            out.len()
        )));
    }
    Ok(Some(out))
}

/// The `actions` block of `buttons`.
fn actions_block(buttons: &[Button]) -> Result<Value> {
    if buttons.len() > MAX_BUTTONS {
        return Err(invalid(format!(
            "{} buttons; Slack shows at most {MAX_BUTTONS} in one message block",
            buttons.len()
        )));
    }
    let mut ids: Vec<String> = Vec::with_capacity(buttons.len());
    let mut elements = Vec::with_capacity(buttons.len());
    for (i, b) in buttons.iter().enumerate() {
        let n = i + 1;
        let label = b.text.trim();
        if label.is_empty() || label.chars().count() > 75 {
            return Err(invalid(format!("button {n}'s text must be 1 to 75 characters")));
        }
        if b.value.chars().count() > 2000 {
            return Err(invalid(format!(
                "button {n}'s value is longer than 2,000 characters"
            )));
        }
        let id = b.action_id.clone().unwrap_or_else(|| format!("button-{n}"));
        if id.is_empty() || id.chars().count() > 255 {
            return Err(invalid(format!(
                "button {n}'s action_id must be 1 to 255 characters"
            )));
        }
        if ids.contains(&id) {
            return Err(invalid(format!(
                "button {n}'s action_id '{id}' is used twice; each must be unique in the message"
            )));
        }
        let mut element = json!({
            "type": "button",
            "text": {"type": "plain_text", "text": label, "emoji": true},
            "value": b.value,
            "action_id": id,
        });
        if let Some(style) = b.style {
            element["style"] = serde_json::to_value(style)?;
        }
        ids.push(id);
        elements.push(element);
    }
    Ok(json!({"type": "actions", "block_id": BUTTONS_BLOCK, "elements": elements}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn button(text: &str, value: &str) -> Button {
        Button {
            text: text.into(),
            value: value.into(),
            action_id: None,
            style: None,
        }
    }

    #[test]
    fn plain_text_has_no_blocks_and_buttons_go_under_the_text() {
        assert_eq!(message_blocks("hi", None, &[]).unwrap(), None);
        let mut yes = button("Contain", "q-17:contain");
        yes.style = Some(ButtonStyle::Danger);
        let mut no = button("Ignore", "q-17:ignore");
        no.action_id = Some("ignore".into());
        let blocks = message_blocks("Contain *host-7*?", None, &[yes, no])
            .unwrap()
            .unwrap();
        assert_eq!(
            Value::Array(blocks),
            json!([
                {"type": "section", "text": {"type": "mrkdwn", "text": "Contain *host-7*?"}},
                {"type": "actions", "block_id": "osprey-buttons", "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Contain", "emoji": true},
                     "value": "q-17:contain", "action_id": "button-1", "style": "danger"},
                    {"type": "button", "text": {"type": "plain_text", "text": "Ignore", "emoji": true},
                     "value": "q-17:ignore", "action_id": "ignore"}
                ]}
            ])
        );
    }

    #[test]
    fn the_authors_blocks_are_kept_and_buttons_appended() {
        let own = [json!({"type": "header", "text": {"type": "plain_text", "text": "Alert"}})];
        let blocks = message_blocks("Alert", Some(&own), &[button("OK", "1")])
            .unwrap()
            .unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0], own[0]);
        assert_eq!(blocks[1]["type"], "actions");
        assert_eq!(
            message_blocks("x", Some(&own), &[]).unwrap().unwrap(),
            own.to_vec()
        );
    }

    #[test]
    fn what_slack_would_refuse_is_refused_first_saying_why() {
        let cases: Vec<(Result<Option<Vec<Value>>>, &str)> = vec![
            (message_blocks(" ", None, &[]), "text must not be empty"),
            (
                message_blocks("x", Some(&[json!({"text": "no type"})]), &[]),
                "blocks[0]",
            ),
            (message_blocks("x", None, &[button("", "v")]), "button 1's text"),
            (
                message_blocks("x", None, &[button(&"a".repeat(76), "v")]),
                "1 to 75",
            ),
            (
                message_blocks("x", None, &[button("a", &"v".repeat(2001))]),
                "2,000",
            ),
            (
                message_blocks("x", None, &vec![button("a", "v"); 26]),
                "at most 25",
            ),
            (
                message_blocks(
                    "x",
                    Some(&vec![json!({"type": "divider"}); 50]),
                    &[button("a", "v")],
                ),
                "at most 50",
            ),
        ];
        for (r, needle) in cases {
            let e = r.unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains(needle), "'{needle}' not in {}", e.message);
        }
        let mut a = button("a", "1");
        a.action_id = Some("same".into());
        let e = message_blocks("x", None, &[a.clone(), a]).unwrap_err();
        assert!(e.message.contains("used twice"), "{}", e.message);
    }
}
