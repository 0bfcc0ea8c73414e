//! Reading Bonusly's answers: `{"success": true, "result": ...}`, or `{"success": false,
//! "message": "..."}` with a status that says what kind of failure it is.

use osprey_sdk::prelude::*;
use serde::de::DeserializeOwned;

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(default)]
    success: Option<bool>,
    result: Option<T>,
    #[serde(default)]
    message: Option<String>,
}

/// Bonusly's own word for what went wrong (`message`), or the start of the body.
fn vendor_message(response: &http::Response) -> String {
    let said = serde_json::from_slice::<Envelope<Value>>(&response.body)
        .ok()
        .and_then(|e| e.message)
        .unwrap_or_else(|| response.text());
    let one_line = said.trim().replace(['\r', '\n'], " ");
    one_line.chars().take(300).collect()
}

/// The `result` of a successful answer, or a typed error for any other.
pub(crate) fn result<T: DeserializeOwned>(response: http::Response) -> Result<T> {
    let status = response.status;
    if !(200..300).contains(&status) {
        return Err(failure(&response));
    }
    let envelope: Envelope<T> = response.json()?;
    match (envelope.success, envelope.result) {
        (Some(false), _) => Err(Error::invalid_input(format!(
            "Bonusly refused the request: {}",
            envelope.message.unwrap_or_default()
        ))),
        (_, Some(result)) => Ok(result),
        (_, None) => Err(Error::upstream(format!(
            "{} answered HTTP {status} without a result",
            response.url
        ))),
    }
}

/// The error for a non-2xx answer.
fn failure(response: &http::Response) -> Error {
    let said = format!(
        "{} answered HTTP {}: {}",
        response.url,
        response.status,
        vendor_message(response)
    );
    match response.status {
        401 => Error::denied(format!(
            "{said}; the access token is wrong or revoked (set a valid one with \
             `osprey secret set bonusly access-token`)"
        )),
        403 => Error::denied(format!(
            "{said}; the access token lacks the scope this action needs"
        )),
        404 => Error::not_found(said),
        400 | 422 => Error::invalid_input(said),
        429 => Error::rate_limited(said).retry_after(response.retry_after()),
        500..=599 => Error::unavailable(said).retry_after(response.retry_after()),
        _ => Error::upstream(said),
    }
}

/// A Bonusly answer at `https://bonus.ly/api/v1/x`, for the tests.
#[cfg(test)]
pub(crate) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response {
    http::Response {
        url: "https://bonus.ly/api/v1/x".into(),
        status,
        headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_success_gives_its_result() {
        let v: Value = result(answer(200, &[], r#"{"success":true,"result":{"id":"u1"}}"#)).unwrap();
        assert_eq!(v, json!({"id": "u1"}));
    }

    #[test]
    fn every_failure_has_its_kind_and_bonuslys_message() {
        for (status, kind) in [
            (400, ErrorKind::InvalidInput),
            (422, ErrorKind::InvalidInput),
            (401, ErrorKind::Denied),
            (403, ErrorKind::Denied),
            (404, ErrorKind::NotFound),
            (429, ErrorKind::RateLimited),
            (502, ErrorKind::Unavailable),
            (418, ErrorKind::Upstream),
        ] {
            let body = r#"{"success":false,"message":"You don't have enough\nto give"}"#;
            let e = result::<Value>(answer(status, &[], body)).unwrap_err();
            assert_eq!(e.kind, kind, "{status}");
            assert!(
                e.message
                    .contains(&format!("HTTP {status}: You don't have enough to give")),
                "{}",
                e.message
            );
        }
        let e = result::<Value>(answer(401, &[], "")).unwrap_err();
        assert!(e.message.contains("osprey secret set bonusly access-token"));
        assert!(!e.retryable);
    }

    #[test]
    fn a_429_carries_retry_after() {
        let e = result::<Value>(answer(429, &[("retry-after", "30")], "{}")).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(30)));
        assert!(e.retryable);
    }

    #[test]
    fn a_2xx_that_says_it_failed_or_has_no_result_is_an_error() {
        let e = result::<Value>(answer(200, &[], r#"{"success":false,"message":"nope"}"#)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("nope"));
        let e = result::<Value>(answer(200, &[], r#"{"success":true}"#)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        let e = result::<Value>(answer(200, &[], "<html>")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
    }
}
