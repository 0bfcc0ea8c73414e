//! The actions' inputs and outputs.

use crate::blocks::Button;
use osprey_sdk::prelude::*;

/// A message to post: to a channel or to a person (as a direct message from the app).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PostInput {
    /// A channel id (`C0123ABCD`) or name (`#soc`). Give this or `user`.
    #[serde(default)]
    pub(crate) channel: Option<String>,
    /// A user id (`U0123ABCD`, as `lookup-user-by-email` returns it): the message goes to the
    /// direct message between the app and that person. Give this or `channel`.
    #[serde(default)]
    pub(crate) user: Option<String>,
    /// The message (Slack's mrkdwn); with blocks, the text of its notification.
    pub(crate) text: String,
    /// Block Kit blocks, as JSON objects (see Slack's Block Kit Builder).
    #[serde(default)]
    pub(crate) blocks: Option<Vec<Value>>,
    /// Buttons, shown in an `actions` block under the text or the blocks.
    #[serde(default)]
    pub(crate) buttons: Vec<Button>,
}

/// The message to change: its channel and `ts`, as `post-message` returned them.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateInput {
    /// The channel id the message is in (for a direct message, the `D...` id `post-message`
    /// returned).
    pub(crate) channel: String,
    /// The message's timestamp id (`1503435956.000247`).
    pub(crate) ts: String,
    /// The new text (the notification's text when there are blocks).
    pub(crate) text: String,
    /// The new blocks; without blocks and buttons the message becomes plain text.
    #[serde(default)]
    pub(crate) blocks: Option<Vec<Value>>,
    /// The new buttons (leave out to remove the old ones).
    #[serde(default)]
    pub(crate) buttons: Vec<Button>,
}

/// Where the message is: what `update-message` needs.
#[derive(Serialize, JsonSchema)]
pub(crate) struct MessageRef {
    /// The channel id (`D...` for a direct message).
    pub(crate) channel: String,
    /// The message's timestamp id.
    pub(crate) ts: String,
}

/// A message only one member sees.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EphemeralInput {
    /// The channel id (the member must be in it).
    pub(crate) channel: String,
    /// The member's user id (`U0123ABCD`).
    pub(crate) user: String,
    /// The message (Slack's mrkdwn).
    pub(crate) text: String,
}

/// The ephemeral message Slack showed.
#[derive(Serialize, JsonSchema)]
pub(crate) struct EphemeralRef {
    /// Its timestamp id (it cannot be updated: ephemeral messages are not kept).
    pub(crate) message_ts: String,
}

/// An e-mail address to find.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LookupInput {
    /// The address of a member of the workspace.
    pub(crate) email: String,
}

/// A member of the workspace.
#[derive(Serialize, JsonSchema, Debug)]
pub(crate) struct SlackUser {
    /// The user id (`U...`), for `post-message`'s `user`.
    pub(crate) id: String,
    /// The handle.
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) real_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) team_id: Option<String>,
    /// The time zone, `Europe/Amsterdam`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tz: Option<String>,
    /// Whether the account is deactivated.
    pub(crate) deleted: bool,
    pub(crate) is_bot: bool,
}

impl SlackUser {
    /// The `user` object of `users.lookupByEmail`.
    pub(crate) fn read(user: &Value) -> Result<SlackUser> {
        let text = |v: &Value, k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let profile = user.get("profile").cloned().unwrap_or(Value::Null);
        Ok(SlackUser {
            id: text(user, "id")
                .ok_or_else(|| Error::upstream("Slack answered with a user without an id"))?,
            name: text(user, "name").unwrap_or_default(),
            real_name: text(user, "real_name").or_else(|| text(&profile, "real_name")),
            display_name: text(&profile, "display_name"),
            email: text(&profile, "email"),
            team_id: text(user, "team_id"),
            tz: text(user, "tz"),
            deleted: user.get("deleted").and_then(Value::as_bool).unwrap_or(false),
            is_bot: user.get("is_bot").and_then(Value::as_bool).unwrap_or(false),
        })
    }
}

/// Where a message goes: a channel as given, or a person's direct message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Destination {
    Channel(String),
    User(String),
}

impl PostInput {
    pub(crate) fn destination(&self) -> Result<Destination> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        match (given(&self.channel), given(&self.user)) {
            (Some(c), None) => Ok(Destination::Channel(c)),
            (None, Some(u)) if is_user_id(&u) => Ok(Destination::User(u)),
            (None, Some(u)) => Err(Error::invalid_input(format!(
                "user '{u}' is not a Slack user id (U... or W...); find it with lookup-user-by-email"
            ))),
            _ => Err(Error::invalid_input(
                "give either channel or user, not both or neither",
            )),
        }
    }
}

fn is_user_id(s: &str) -> bool {
    s.len() >= 3
        && (s.starts_with('U') || s.starts_with('W'))
        && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(channel: Option<&str>, user: Option<&str>) -> PostInput {
        PostInput {
            channel: channel.map(Into::into),
            user: user.map(Into::into),
            text: "x".into(),
            blocks: None,
            buttons: Vec::new(),
        }
    }

    #[test]
    fn a_message_goes_to_a_channel_or_a_user_id() {
        assert_eq!(
            post(Some(" #soc "), None).destination().unwrap(),
            Destination::Channel("#soc".into())
        );
        assert_eq!(
            post(None, Some("U024BE7LH")).destination().unwrap(),
            Destination::User("U024BE7LH".into())
        );
        assert_eq!(
            post(Some(""), Some("W0123")).destination().unwrap(),
            Destination::User("W0123".into())
        );
        for bad in [
            post(None, None),
            post(Some("C1"), Some("U1X")),
            post(None, Some("alice@x.example")),
        ] {
            assert_eq!(bad.destination().unwrap_err().kind, ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn a_user_reads_slacks_profile() {
        let u = SlackUser::read(&json!({
            "id": "W012A3CDE", "team_id": "T012AB3C4", "name": "spengler", "deleted": false,
            "real_name": "Egon Spengler", "tz": "America/Los_Angeles", "is_bot": false,
            "profile": {"display_name": "spengler", "email": "spengler@ghostbusters.example", "real_name": "Egon Spengler"}
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"id": "W012A3CDE", "name": "spengler", "real_name": "Egon Spengler",
                   "display_name": "spengler", "email": "spengler@ghostbusters.example",
                   "team_id": "T012AB3C4", "tz": "America/Los_Angeles", "deleted": false, "is_bot": false})
        );
        assert_eq!(
            SlackUser::read(&json!({"name": "x"})).unwrap_err().kind,
            ErrorKind::Upstream
        );
    }
}
