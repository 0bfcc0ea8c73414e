//! Webhooks: HTTP requests your vendor sends to Osprey at `/hooks/PLUGIN/...`.
//!
//! Register a handler with [`Plugin::webhook`](crate::Plugin::webhook); a plugin without
//! one answers every webhook `404`. The operator must grant the plugin `webhooks` (ask for
//! it in `plugin.toml`: `[requests] webhooks = true`), or Osprey answers 404 without calling
//! it.
//!
//! **Osprey does not authenticate webhooks.** Anyone can send one. Check the vendor's
//! signature first, with the secret you share with the vendor ([`secrets`](crate::secrets))
//! and [`verify_hmac_sha256`] (constant time), refuse stale timestamps where the vendor
//! signs one, and only then trust the body. Answer a failed check with
//! [`Response::new(401)`](Response::new).
//!
//! ```ignore
//! fn webhook(_: &Context, request: webhook::Request) -> Result<webhook::Response> {
//!     let secret = secrets::get("signing_secret")?;
//!     let signature = request.header("x-vendor-signature").unwrap_or("");
//!     if !webhook::verify_hmac_sha256(secret.expose().as_bytes(), &request.body, signature) {
//!         return Ok(webhook::Response::new(401));
//!     }
//!     let event: Value = request.json()?;
//!     Ok(webhook::Response::new(200).alert(&json!({"title": event["summary"], "source": "vendor"}))?)
//! }
//! ```

use crate::bindings::osprey::plugin::types as wit;
use crate::{Error, Result};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A request the vendor sent to `/hooks/PLUGIN/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Upper-case: `POST`, `GET`.
    pub method: String,
    /// Below `/hooks/PLUGIN`, starting with `/`, as sent (not percent-decoded).
    pub path: String,
    /// Without its `?`, as sent; empty when none.
    pub query: String,
    /// In the order sent, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body exactly as sent: verify signatures over these bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of the header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; `invalid-input` (answered 400) when it is not.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::invalid_input(format!("the webhook's body is not the JSON expected: {e}")))
    }
}

/// Someone answered an Osprey question outside Osprey: a click on a button Osprey asked this
/// plugin to post. Osprey takes it once, and only with the token it gave this plugin with that
/// button, for that button's choice; anything else it refuses (logged and counted; the
/// response is still sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The token the plugin was given with the button (its value).
    pub question: String,
    /// The answer as JSON text: `{"choice": "ID"}`, the clicked button's choice (its id).
    pub answer: String,
    /// The e-mail address of who answered, when the vendor says.
    pub email: Option<String>,
    /// Who answered as the audit log shows them: `VENDOR:ID`, such as `slack:U123`.
    pub by: String,
}

/// The response to the vendor, and events for Osprey.
#[derive(Debug, Clone)]
pub struct Response {
    /// A final HTTP status, 200 to 599.
    pub status: u16,
    /// Headers; hop-by-hop, framing and cookie headers are dropped by Osprey.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    events: Vec<wit::Event>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Set a JSON body and its content type.
    pub fn json<T: Serialize>(self, value: &T) -> Result<Self> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::internal(format!("could not encode the response: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Ask Osprey to take in one alert, exactly as `POST /api/v1/alerts` takes one (an
    /// object; its `source` defaults to the plugin's name).
    pub fn alert<T: Serialize>(mut self, alert: &T) -> Result<Self> {
        let text = serde_json::to_string(alert)
            .map_err(|e| Error::internal(format!("could not encode the alert: {e}")))?;
        self.events.push(wit::Event::Alert(text));
        Ok(self)
    }

    /// Tell Osprey someone answered a question (see [`Answer`]).
    pub fn answer(mut self, answer: Answer) -> Self {
        self.events.push(wit::Event::Answer(wit::Answer {
            question: answer.question,
            answer: answer.answer,
            email: answer.email,
            by: answer.by,
        }));
        self
    }

    /// The alerts asked for so far, as JSON text (for tests).
    pub fn alerts(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                wit::Event::Alert(text) => Some(text.as_str()),
                wit::Event::Answer(_) => None,
            })
            .collect()
    }

    pub(crate) fn into_wit(self) -> wit::WebhookOutcome {
        wit::WebhookOutcome {
            response: wit::WebhookResponse {
                status: self.status,
                headers: self.headers,
                body: self.body,
            },
            events: self.events,
        }
    }
}

impl From<wit::WebhookRequest> for Request {
    fn from(r: wit::WebhookRequest) -> Self {
        Request {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// Whether `signature_hex` (hexadecimal, either case, without a prefix such as `sha256=` or
/// `v0=`: strip it first) is the HMAC-SHA256 of `message` under `secret`. Compared in
/// constant time, so a forger learns nothing from how long a refusal takes.
pub fn verify_hmac_sha256(secret: &[u8], message: &[u8], signature_hex: &str) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    let expected = hex_lower(&mac.finalize().into_bytes());
    let given = signature_hex.trim().to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The HMAC-SHA256 of `message` under `secret`, as lower-case hexadecimal (to sign in tests,
/// or to answer a vendor's challenge).
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message);
    hex_lower(&mac.finalize().into_bytes())
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_and_checks_in_either_case() {
        // RFC 4231, test case 2.
        let mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"), mac);
        assert!(verify_hmac_sha256(b"Jefe", b"what do ya want for nothing?", mac));
        assert!(verify_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?",
            &mac.to_ascii_uppercase()
        ));
        assert!(!verify_hmac_sha256(b"Jefe", b"what do ya want for nothing!", mac));
        assert!(!verify_hmac_sha256(b"jefe", b"what do ya want for nothing?", mac));
        assert!(!verify_hmac_sha256(
            b"Jefe",
            b"what do ya want for nothing?",
            &mac[..10]
        ));
        assert!(!verify_hmac_sha256(b"Jefe", b"what do ya want for nothing?", ""));
    }

    #[test]
    fn headers_are_found_in_any_case() {
        let r = Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![("x-sig".into(), "a".into()), ("x-sig".into(), "b".into())],
            body: b"{\"n\":1}".to_vec(),
        };
        assert_eq!(r.header("X-Sig"), Some("a"));
        assert_eq!(r.header("x-other"), None);
        let v: serde_json::Value = r.json().unwrap();
        assert_eq!(v["n"], 1);
    }
}
