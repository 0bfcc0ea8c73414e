//! slack: the Slack Web API with a bot token: post a message (with Block Kit buttons) to a
//! channel or a person, update it, show a person a message only they see, and find a member
//! by e-mail.
//!
//! Clicks on the buttons come back to the app's interactivity Request URL; pointed at
//! `/hooks/slack/interactivity`, they reach this plugin (`interactivity.rs`), which checks
//! Slack's signature and reports a click on an Osprey question's button to Osprey. Each
//! button's `value` carries what the click means (`blocks.rs`).

mod answer;
mod api;
mod blocks;
mod interactivity;
mod objects;

use blocks::message_blocks;
use objects::{
    Destination, EphemeralInput, EphemeralRef, LookupInput, MessageRef, PostInput, SlackUser, UpdateInput,
};
use osprey_sdk::prelude::*;

/// The channel id and `ts` of an answer to chat.postMessage or chat.update.
fn message_ref(method: &str, answer: &Value) -> Result<MessageRef> {
    let text = |k: &str| {
        answer
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::upstream(format!("Slack's {method} answered ok without '{k}'")))
    };
    Ok(MessageRef {
        channel: text("channel")?,
        ts: text("ts")?,
    })
}

/// `chat.postMessage`, to a person's direct message through `conversations.open`.
fn post_message(_ctx: &Context, input: PostInput) -> Result<MessageRef> {
    let blocks = message_blocks(&input.text, input.blocks.as_deref(), &input.buttons)?;
    let channel = match input.destination()? {
        Destination::Channel(c) => c,
        Destination::User(u) => {
            let opened = api::post("conversations.open", &json!({"users": u}))?;
            opened["channel"]["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    Error::upstream("Slack's conversations.open answered ok without a channel id")
                })?
        }
    };
    let mut body = json!({"channel": channel, "text": input.text});
    if let Some(blocks) = blocks {
        body["blocks"] = Value::Array(blocks);
    }
    message_ref("chat.postMessage", &api::post("chat.postMessage", &body)?)
}

/// `chat.update` of a message the app posted.
fn update_message(_ctx: &Context, input: UpdateInput) -> Result<MessageRef> {
    if input.channel.trim().is_empty() || input.ts.trim().is_empty() {
        return Err(Error::invalid_input(
            "give the channel and ts that post-message returned",
        ));
    }
    let blocks = message_blocks(&input.text, input.blocks.as_deref(), &input.buttons)?;
    let body = json!({
        "channel": input.channel.trim(),
        "ts": input.ts.trim(),
        "text": input.text,
        // An empty list removes the old blocks (and buttons).
        "blocks": blocks.unwrap_or_default(),
    });
    message_ref("chat.update", &api::post("chat.update", &body)?)
}

/// `chat.postEphemeral`: a message only `user` sees, in `channel`.
fn post_ephemeral(_ctx: &Context, input: EphemeralInput) -> Result<EphemeralRef> {
    if input.channel.trim().is_empty() || input.user.trim().is_empty() {
        return Err(Error::invalid_input(
            "give the channel and the user who is to see the message",
        ));
    }
    if input.text.trim().is_empty() {
        return Err(Error::invalid_input("text must not be empty"));
    }
    let body = json!({"channel": input.channel.trim(), "user": input.user.trim(), "text": input.text});
    let answer = api::post("chat.postEphemeral", &body)?;
    let message_ts = answer["message_ts"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::upstream("Slack's chat.postEphemeral answered ok without 'message_ts'"))?;
    Ok(EphemeralRef { message_ts })
}

/// `users.lookupByEmail`.
fn lookup_user_by_email(_ctx: &Context, input: LookupInput) -> Result<SlackUser> {
    let email = input.email.trim();
    if !email.contains('@') || email.len() > 254 {
        return Err(Error::invalid_input(format!(
            "'{email}' is not an e-mail address"
        )));
    }
    let answer = api::get("users.lookupByEmail", &[("email", email)])?;
    SlackUser::read(&answer["user"])
}

fn plugin() -> Plugin {
    Plugin::new(
        "slack",
        env!("CARGO_PKG_VERSION"),
        "Slack Web API: post a message (with Block Kit buttons) to a channel or a person, update it, find a user by e-mail",
    )
    .action(
        "post-message",
        "Post a message, with optional Block Kit blocks and buttons, to a channel or a person",
        post_message,
    )
    .action(
        "update-message",
        "Change a message the app posted (its text, blocks and buttons)",
        update_message,
    )
    .action(
        "lookup-user-by-email",
        "The workspace member with this e-mail address",
        lookup_user_by_email,
    )
    .action(
        "post-ephemeral",
        "Show a message to one member of a channel, only to them (it is not kept in the channel)",
        post_ephemeral,
    )
    .webhook(interactivity::handle)
}

osprey_sdk::export_plugin!(plugin);
