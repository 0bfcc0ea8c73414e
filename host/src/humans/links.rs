//! Signed links: the token in `/a/TOKEN` is a link's id, purpose and expiry, signed with the
//! link key (HMAC-SHA256, `vault::LinkKey`). The signature proves the server made the link;
//! the expiry is inside what is signed; single use is the `links` row's business (the store).

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
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Answer => "answer",
            Purpose::Escalate => "escalate",
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
    let (payload, tag) = token.split_once('.').ok_or(LinkError::Tampered)?;
    let payload = B64.decode(payload).map_err(|_| LinkError::Tampered)?;
    let tag = B64.decode(tag).map_err(|_| LinkError::Tampered)?;
    if !key.verify(&payload, &tag) {
        return Err(LinkError::Tampered);
    }
    let claim: Claim = serde_json::from_slice(&payload).map_err(|_| LinkError::Tampered)?;
    if claim.expires_at <= now {
        return Err(LinkError::Expired { at: claim.expires_at });
    }
    Ok(claim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> Claim {
        Claim {
            link: "k0123".into(),
            purpose: Purpose::Answer,
            expires_at: 2_000,
        }
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
