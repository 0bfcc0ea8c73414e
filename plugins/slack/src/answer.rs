//! Reading Slack's answers. The Web API answers HTTP 200 with `{"ok": false, "error": CODE}`
//! for nearly every failure, and HTTP 429 with `Retry-After` (seconds) when a method's rate
//! tier is spent; each becomes the error kind a playbook acts on.

use osprey_sdk::prelude::*;

const TOKEN_HINT: &str = "check the bot token (`osprey secret set slack bot-token`, an xoxb- \
                          token of an app installed in the workspace)";

/// The envelope every method answers with.
#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    /// `response_metadata.messages`: Slack's detail for `invalid_blocks` and friends.
    #[serde(default)]
    response_metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    messages: Vec<String>,
}

/// The error kind of one of Slack's error codes.
pub(crate) fn kind_of(code: &str) -> ErrorKind {
    match code {
        "channel_not_found" | "users_not_found" | "user_not_found" | "message_not_found"
        | "thread_not_found" => ErrorKind::NotFound,
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "missing_scope"
        | "no_permission"
        | "not_allowed_token_type"
        | "access_denied"
        | "ekm_access_denied"
        | "not_in_channel"
        | "is_archived"
        | "cant_update_message"
        | "restricted_action"
        | "team_access_not_granted"
        | "messages_tab_disabled"
        | "cannot_dm_bot"
        | "user_disabled"
        | "org_login_required" => ErrorKind::Denied,
        "ratelimited" | "rate_limited" | "message_limit_exceeded" => ErrorKind::RateLimited,
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org" => ErrorKind::Unavailable,
        "invalid_blocks"
        | "invalid_blocks_format"
        | "msg_too_long"
        | "no_text"
        | "too_many_attachments"
        | "invalid_arguments"
        | "invalid_arg_name"
        | "invalid_array_arg"
        | "invalid_charset"
        | "invalid_form_data"
        | "invalid_post_type"
        | "missing_post_type"
        | "invalid_email"
        | "invalid_ts"
        | "edit_window_closed"
        | "too_many_users"
        | "invalid_metadata_format"
        | "duplicate_channel_not_found"
        | "channel_type_not_supported" => ErrorKind::InvalidInput,
        _ => ErrorKind::Upstream,
    }
}

/// What a denial asks the operator to do.
fn hint(code: &str) -> &'static str {
    match code {
        "missing_scope" => {
            "; add the scope to the app (chat:write, im:write, users:read.email) and reinstall it"
        }
        "not_in_channel" => "; invite the app to the channel (`/invite @app`)",
        "cant_update_message" => "; a bot can update only the messages it posted",
        "is_archived" => "; the channel is archived",
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => "; TOKEN",
        _ => "",
    }
}

/// The answer of `method`, when it is `ok`; otherwise the typed error.
pub(crate) fn read(method: &str, response: &http::Response) -> Result<Value> {
    let status = response.status;
    let envelope = serde_json::from_slice::<Envelope>(&response.body).ok();
    let code = envelope.as_ref().and_then(|e| e.error.clone());
    if status == 429 || (500..=599).contains(&status) {
        let what = format!(
            "Slack's {method} answered HTTP {status}{}",
            code.map(|c| format!(": {c}")).unwrap_or_default()
        );
        let e = if status == 429 {
            Error::rate_limited(format!("{what}; Slack asks to wait before the next call"))
        } else {
            Error::unavailable(what)
        };
        return Err(e.retry_after(response.retry_after()));
    }
    if status != 200 {
        return Err(Error::upstream(format!(
            "Slack's {method} answered HTTP {status}: {}",
            response.text().chars().take(200).collect::<String>()
        )));
    }
    let Some(envelope) = envelope else {
        return Err(Error::upstream(format!(
            "Slack's {method} answered with something that is not its JSON: {}",
            response.text().chars().take(200).collect::<String>()
        )));
    };
    if envelope.ok {
        return Ok(serde_json::from_slice(&response.body)?);
    }
    let code = envelope.error.unwrap_or_else(|| "unknown_error".to_owned());
    let detail = envelope
        .response_metadata
        .map(|m| m.messages.join("; "))
        .filter(|d| !d.is_empty())
        .map(|d| format!(" ({})", d.chars().take(300).collect::<String>()))
        .unwrap_or_default();
    let kind = kind_of(&code);
    let mut message = format!(
        "Slack's {method} refused: {code}{detail}{}",
        hint(&code).replace("TOKEN", TOKEN_HINT)
    );
    if kind == ErrorKind::RateLimited {
        message.push_str("; Slack asks to wait before the next call");
    }
    Err(
        Error::new(kind, message).retry_after(if kind == ErrorKind::RateLimited {
            response.retry_after()
        } else {
            None
        }),
    )
}

#[cfg(test)]
pub(crate) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response {
    http::Response {
        url: "https://slack.com/api/chat.postMessage".into(),
        status,
        headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn refused(body: &str) -> Error {
        read("chat.postMessage", &answer(200, &[], body)).unwrap_err()
    }

    #[test]
    fn ok_answers_are_the_json() {
        let v = read(
            "chat.postMessage",
            &answer(200, &[], r#"{"ok":true,"channel":"C1","ts":"1503435956.000247"}"#),
        )
        .unwrap();
        assert_eq!(v["ts"], "1503435956.000247");
    }

    #[test]
    fn slack_error_codes_map_to_kinds_and_say_what_to_do() {
        let e = refused(r#"{"ok":false,"error":"channel_not_found"}"#);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ErrorKind::NotFound,
                "Slack's chat.postMessage refused: channel_not_found"
            )
        );
        let e = refused(r#"{"ok":false,"error":"invalid_auth"}"#);
        assert_eq!(e.kind, ErrorKind::Denied);
        assert!(
            e.message.contains("osprey secret set slack bot-token"),
            "{}",
            e.message
        );
        assert!(!e.retryable);
        let e = refused(r#"{"ok":false,"error":"missing_scope","needed":"chat:write"}"#);
        assert!(
            e.kind == ErrorKind::Denied && e.message.contains("reinstall"),
            "{}",
            e.message
        );
        let e = refused(
            r#"{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] missing required field: type [json-pointer:/blocks/0]"]}}"#,
        );
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("json-pointer:/blocks/0"), "{}", e.message);
        assert_eq!(
            refused(r#"{"ok":false,"error":"internal_error"}"#).kind,
            ErrorKind::Unavailable
        );
        assert_eq!(
            refused(r#"{"ok":false,"error":"something_new"}"#).kind,
            ErrorKind::Upstream
        );
        assert_eq!(refused(r#"{"ok":false}"#).kind, ErrorKind::Upstream);
    }

    #[test]
    fn a_429_carries_slacks_wait_and_other_statuses_are_typed() {
        let r = answer(
            429,
            &[("retry-after", "30")],
            r#"{"ok":false,"error":"ratelimited"}"#,
        );
        let e = read("chat.postMessage", &r).unwrap_err();
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::RateLimited, Some(Duration::from_secs(30)))
        );
        assert!(e.retryable);
        assert!(e.message.contains("HTTP 429: ratelimited"), "{}", e.message);
        let e = read("chat.update", &answer(503, &[("retry-after", "2")], "")).unwrap_err();
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::Unavailable, Some(Duration::from_secs(2)))
        );
        let e = read("chat.update", &answer(200, &[], "<html>")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        let e = read("chat.update", &answer(302, &[], "")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        let e = refused(r#"{"ok":false,"error":"ratelimited"}"#);
        assert_eq!((e.kind, e.retry_after), (ErrorKind::RateLimited, None));
    }
}
