//! Signed links: the token in `/a/TOKEN` is a link's id, purpose and expiry, signed with the
//! link key (HMAC-SHA256, `vault::LinkKey`). The signature proves the server made the link;
//! the expiry is inside what is signed; single use is the `links` row's business (the store).
//!
//! A button in a chat message (a question asked in Slack) carries a token of purpose
//! [`Purpose::Chat`] that also binds the choice the button stands for and the plugin that
//! was given it, so a click answers only that question, with only that choice, through only
//! that plugin.

use crate::vault::LinkKey;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    /// Answer a question.
    Answer,
    /// Talk to a human about an incident.
    Escalate,
    /// A button in a chat message the plugin posted: answer a question with one choice.
    Chat,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Answer => "answer",
            Purpose::Escalate => "escalate",
            Purpose::Chat => "chat",
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The link's id (its row in `links`).
    #[serde(rename = "l")]
    pub link: String,
    #[serde(rename = "p")]
    pub purpose: Purpose,
    /// Unix ms.
    #[serde(rename = "x")]
    pub expires_at: i64,
    /// [`Purpose::Chat`]: the choice the button stands for (an option, `approve`/`deny`).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<String>,
    /// [`Purpose::Chat`]: the plugin the token was given to, the only one it answers through.
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

/// Why a token is refused. The pages say which, in words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    #[error("this link is not valid: it was changed, cut short, or not made by this server")]
    Tampered,
    #[error("this link expired")]
    Expired { at: i64 },
}

/// The token for `claim`.
pub fn sign(key: &LinkKey, claim: &Claim) -> String {
    let payload = serde_json::to_vec(claim).expect("a claim serialises");
    let tag = key.sign(&payload);
    format!("{}.{}", B64.encode(&payload), B64.encode(tag))
}

/// Check `token`'s signature, then its expiry against `now` (Unix ms).
pub fn verify(key: &LinkKey, token: &str, now: i64) -> Result<Claim, LinkError> {
    let claim = open(key, token)?;
    if claim.expires_at <= now {
        return Err(LinkError::Expired { at: claim.expires_at });
    }
    Ok(claim)
}

/// Check `token`'s signature only: what it says, expired or not (to tell whoever holds an
/// expired one what it was for). [`verify`] is the check that lets a token act.
pub fn open(key: &LinkKey, token: &str) -> Result<Claim, LinkError> {
    let (payload, tag) = token.split_once('.').ok_or(LinkError::Tampered)?;
    let payload = B64.decode(payload).map_err(|_| LinkError::Tampered)?;
    let tag = B64.decode(tag).map_err(|_| LinkError::Tampered)?;
    if !key.verify(&payload, &tag) {
        return Err(LinkError::Tampered);
    }
    serde_json::from_slice(&payload).map_err(|_| LinkError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claim {
        Claim {
            link: "k0123".into(),
            purpose: Purpose::Answer,
            expires_at: 2_000,
            choice: None,
            plugin: None,
        }
    }

    #[test]
    fn a_chat_token_binds_its_choice_and_plugin() {
        let key = LinkKey::from_bytes([7; 32]);
        let chat = Claim {
            link: "k1".into(),
            purpose: Purpose::Chat,
            expires_at: 2_000,
            choice: Some("contain".into()),
            plugin: Some("slack".into()),
        };
        let token = sign(&key, &chat);
        assert_eq!(verify(&key, &token, 1_000), Ok(chat.clone()));
        // Another choice or plugin under the same signature: refused.
        let (_, tag) = token.split_once('.').unwrap();
        for forged in [
            Claim {
                choice: Some("ignore".into()),
                ..chat.clone()
            },
            Claim {
                plugin: Some("teams".into()),
                ..chat.clone()
            },
        ] {
            let t = format!("{}.{tag}", B64.encode(serde_json::to_vec(&forged).unwrap()));
            assert_eq!(verify(&key, &t, 1_000), Err(LinkError::Tampered));
        }
        // Expired: `verify` refuses, `open` still says what it was for.
        assert_eq!(verify(&key, &token, 2_000), Err(LinkError::Expired { at: 2_000 }));
        assert_eq!(open(&key, &token), Ok(chat));
        // An answer link's token has neither field, as before.
        let plain = sign(&key, &claim());
        let (payload, _) = plain.split_once('.').unwrap();
        let text = String::from_utf8(B64.decode(payload).unwrap()).unwrap();
        assert!(!text.contains("\"c\"") && !text.contains("\"g\""), "{text}");
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let key = LinkKey::from_bytes([7; 32]);
        let token = sign(&key, &claim());
        assert_eq!(verify(&key, &token, 1_999), Ok(claim()));
        assert_eq!(verify(&key, &token, 2_000), Err(LinkError::Expired { at: 2_000 }));
    }

    #[test]
    fn tampered_tokens_and_other_keys_are_refused() {
        let key = LinkKey::from_bytes([7; 32]);
        let token = sign(&key, &claim());
        // Another key.
        assert_eq!(
            verify(&LinkKey::from_bytes([8; 32]), &token, 0),
            Err(LinkError::Tampered)
        );
        // A longer expiry, re-encoded with the old signature.
        let (_, tag) = token.split_once('.').unwrap();
        let mut later = claim();
        later.expires_at = 9_000_000;
        let forged = format!("{}.{tag}", B64.encode(serde_json::to_vec(&later).unwrap()));
        assert_eq!(verify(&key, &forged, 0), Err(LinkError::Tampered));
        // Cut short, one character changed, garbage.
        assert_eq!(
            verify(&key, &token[..token.len() - 3], 0),
            Err(LinkError::Tampered)
        );
        let mut flipped = token.clone().into_bytes();
        flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            verify(&key, &String::from_utf8(flipped).unwrap(), 0),
            Err(LinkError::Tampered)
        );
        assert_eq!(verify(&key, "nonsense", 0), Err(LinkError::Tampered));
    }
}
