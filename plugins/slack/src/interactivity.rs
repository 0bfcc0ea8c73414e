//! Slack's interactivity requests: a click on a button of a message the app posted arrives at
//! the app's Request URL, `/hooks/slack/interactivity` on Osprey, as
//! `application/x-www-form-urlencoded` with one field, `payload`, a `block_actions` JSON.
//!
//! Slack signs each request with the app's signing secret: `X-Slack-Signature` is `v0=` and
//! the hex HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{the raw body}`. A request whose
//! signature does not match, or whose timestamp is more than five minutes from now (a
//! possible replay), is answered 401 with why, and nothing else happens. A genuine click on an
//! Osprey button becomes an `answer` event: the button's value (the token Osprey gave it),
//! the choice (its `action_id`), who clicked as `slack:U...`, and their e-mail address when
//! `users.info` tells it (scope `users:read.email`). Osprey decides the rest; Slack gets its
//! 200 at once (it shows the clicker an error after three seconds without one).

use crate::api;
use crate::blocks::BUTTONS_BLOCK;
use osprey_sdk::prelude::*;
use osprey_sdk::webhook;

/// How far a request's timestamp may be from now, in seconds.
pub(crate) const MAX_SKEW_SECS: u64 = 300;

const SECRET_HINT: &str = "set it with `osprey secret set slack signing-secret` (Basic Information → App Credentials → Signing Secret in the app's settings)";

/// Why a request is not taken as Slack's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    NoTimestamp,
    Stale { timestamp: u64, now: u64 },
    NoSignature,
    BadSignature,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoTimestamp => write!(
                f,
                "X-Slack-Request-Timestamp is missing or not a number of seconds"
            ),
            Refusal::Stale { timestamp, now } => write!(
                f,
                "X-Slack-Request-Timestamp {timestamp} is more than 5 minutes from now ({now}); refused as a possible replay"
            ),
            Refusal::NoSignature => write!(f, "X-Slack-Signature is missing or is not a v0= signature"),
            Refusal::BadSignature => write!(
                f,
                "X-Slack-Signature does not match the request (or the signing secret is not this app's)"
            ),
        }
    }
}

/// Check a request as Slack signs it: the timestamp within [`MAX_SKEW_SECS`] of `now` (Unix
/// seconds), and the signature over `v0:{timestamp}:{body}` (compared in constant time).
pub(crate) fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> std::result::Result<(), Refusal> {
    let ts_text = timestamp.map(str::trim).ok_or(Refusal::NoTimestamp)?;
    let ts: u64 = ts_text.parse().map_err(|_| Refusal::NoTimestamp)?;
    if ts.abs_diff(now) > MAX_SKEW_SECS {
        return Err(Refusal::Stale { timestamp: ts, now });
    }
    let hex = signature
        .map(str::trim)
        .and_then(|s| s.strip_prefix("v0="))
        .ok_or(Refusal::NoSignature)?;
    let mut base = format!("v0:{ts_text}:").into_bytes();
    base.extend_from_slice(body);
    if webhook::verify_hmac_sha256(secret, &base, hex) {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// A click on one of Osprey's buttons, read from a `block_actions` payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Click {
    pub(crate) user: String,
    pub(crate) value: String,
    pub(crate) action_id: String,
}

/// The click in `payload`, if it is a button in Osprey's actions block; `None` for anything
/// else Slack sends to the Request URL (other interactions, other blocks).
pub(crate) fn click(payload: &Value) -> Option<Click> {
    if payload["type"] != "block_actions" {
        return None;
    }
    let action = payload["actions"].as_array()?.first()?;
    if action["type"] != "button" || action["block_id"] != BUTTONS_BLOCK {
        return None;
    }
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    Some(Click {
        user: text(&payload["user"]["id"])?,
        value: text(&action["value"])?,
        action_id: text(&action["action_id"])?,
    })
}

/// The `payload` field of a form-encoded body, as JSON.
fn payload_of(body: &[u8]) -> Result<Value> {
    let text = form_urlencoded::parse(body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Error::invalid_input("the request has no `payload` field"))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid_input(format!("the payload is not JSON: {e}")))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn answer(status: u16, error: &str) -> Result<webhook::Response> {
    webhook::Response::new(status).json(&json!({ "error": error }))
}

/// The handler of `/hooks/slack/...`.
pub(crate) fn handle(_ctx: &Context, request: webhook::Request) -> Result<webhook::Response> {
    if request.path.trim_end_matches('/') != "/interactivity" {
        return answer(
            404,
            "the slack plugin receives Slack's interactivity requests at /hooks/slack/interactivity",
        );
    }
    if request.method != "POST" {
        return answer(405, "Slack sends interactivity requests with POST");
    }
    let secret = match secrets::get("signing-secret") {
        Ok(s) if !s.expose().trim().is_empty() => s,
        Ok(_) => {
            return Err(Error::denied(format!(
                "the signing secret is empty; {SECRET_HINT}"
            )));
        }
        Err(e) => return Err(Error::denied(format!("{}; {SECRET_HINT}", e.message))),
    };
    let checked = verify(
        secret.expose().trim().as_bytes(),
        request.header("x-slack-request-timestamp"),
        request.header("x-slack-signature"),
        &request.body,
        now_secs(),
    );
    drop(secret);
    if let Err(why) = checked {
        log::warn("interactivity request refused", &[("reason", &why.to_string())]);
        return answer(401, &why.to_string());
    }
    let Some(click) = click(&payload_of(&request.body)?) else {
        return Ok(webhook::Response::new(200));
    };
    // Without the scope, or for a guest whose address is hidden: no address, still an answer.
    let email = api::get("users.info", &[("user", click.user.as_str())])
        .ok()
        .and_then(|u| u["user"]["profile"]["email"].as_str().map(str::to_owned))
        .filter(|e| !e.is_empty());
    Ok(webhook::Response::new(200).answer(webhook::Answer {
        question: click.value,
        answer: json!({ "choice": click.action_id }).to_string(),
        email,
        by: format!("slack:{}", click.user),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    fn sign(ts: &str, body: &[u8]) -> String {
        let mut base = format!("v0:{ts}:").into_bytes();
        base.extend_from_slice(body);
        format!("v0={}", webhook::hmac_sha256_hex(SECRET, &base))
    }

    #[test]
    fn slacks_signature_is_checked_over_timestamp_and_body() {
        let body = b"payload=%7B%22type%22%3A%22block_actions%22%7D";
        let now = 1_765_087_200;
        let ts = now.to_string();
        let good = sign(&ts, body);
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), body, now), Ok(()));
        // Within five minutes either way.
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), body, now + 300), Ok(()));
        assert_eq!(verify(SECRET, Some(&ts), Some(&good), body, now - 300), Ok(()));
        // Stale, though correctly signed.
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&good), body, now + 301),
            Err(Refusal::Stale {
                timestamp: now,
                now: now + 301
            })
        );
        // Another body, another timestamp, another secret, no prefix, nothing.
        assert_eq!(
            verify(SECRET, Some(&ts), Some(&good), b"payload=x", now),
            Err(Refusal::BadSignature)
        );
        let later = (now + 1).to_string();
        assert_eq!(
            verify(SECRET, Some(&later), Some(&good), body, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(b"other", Some(&ts), Some(&good), body, now),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(SECRET, Some(&ts), Some(good.trim_start_matches("v0=")), body, now),
            Err(Refusal::NoSignature)
        );
        assert_eq!(
            verify(SECRET, None, Some(&good), body, now),
            Err(Refusal::NoTimestamp)
        );
        assert_eq!(
            verify(SECRET, Some("soon"), Some(&good), body, now),
            Err(Refusal::NoTimestamp)
        );
        assert!(
            Refusal::Stale {
                timestamp: 1,
                now: 999
            }
            .to_string()
            .contains("more than 5 minutes")
        );
    }

    #[test]
    fn a_click_on_an_osprey_button_is_read_and_nothing_else() {
        let payload = json!({
            "type": "block_actions", "user": {"id": "W012A3CDE", "username": "spengler", "team_id": "T012AB3C4"},
            "api_app_id": "A0OSPREY01", "trigger_id": "123.456.abc",
            "container": {"type": "message", "message_ts": "1765087200.000001", "channel_id": "C0SOC00001", "is_ephemeral": false},
            "channel": {"id": "C0SOC00001", "name": "soc"},
            "actions": [{"type": "button", "block_id": "osprey-buttons", "action_id": "approve",
                         "value": "tok.sig", "text": {"type": "plain_text", "text": "Approve", "emoji": true},
                         "action_ts": "1765087260.000100"}]
        });
        assert_eq!(
            click(&payload),
            Some(Click {
                user: "W012A3CDE".into(),
                value: "tok.sig".into(),
                action_id: "approve".into()
            })
        );
        let mut other = payload.clone();
        other["actions"][0]["block_id"] = "someone-elses".into();
        assert_eq!(click(&other), None);
        let mut view = payload.clone();
        view["type"] = "view_submission".into();
        assert_eq!(click(&view), None);
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        assert_eq!(payload_of(encoded.as_bytes()).unwrap(), payload);
        assert_eq!(payload_of(b"token=x").unwrap_err().kind, ErrorKind::InvalidInput);
    }
}
