//! Reading the instance's answers: `{"result": ...}`, or `{"error": {"message", "detail"},
//! "status": "failure"}` with a status that says what kind of failure it is.

use osprey_sdk::prelude::*;
use serde::de::DeserializeOwned;

#[derive(Deserialize)]
struct Envelope<T> {
    result: Option<T>,
}

#[derive(Deserialize)]
struct Failure {
    error: Option<FailureError>,
}

#[derive(Deserialize)]
struct FailureError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// The instance's own word for what went wrong (`error.message: error.detail`), or the
/// start of the body, on one line.
fn vendor_message(response: &http::Response) -> String {
    let said = serde_json::from_slice::<Failure>(&response.body)
        .ok()
        .and_then(|f| f.error)
        .map(|e| {
            let parts: Vec<String> = [e.message, e.detail]
                .into_iter()
                .flatten()
                .filter(|p| !p.is_empty())
                .collect();
            parts.join(": ")
        })
        .unwrap_or_else(|| response.text());
    said.trim().replace(['\r', '\n'], " ").chars().take(300).collect()
}

/// The `result` of a successful answer, or a typed error for any other.
pub(crate) fn result<T: DeserializeOwned>(response: http::Response) -> Result<T> {
    if !(200..300).contains(&response.status) {
        return Err(failure(&response));
    }
    let envelope: Envelope<T> = response.json()?;
    envelope.result.ok_or_else(|| {
        Error::upstream(format!(
            "{} answered HTTP {} without a result",
            response.url, response.status
        ))
    })
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
            "{said}; the credentials are wrong (check the `username` setting and set the \
             password with `osprey secret set servicenow password`, or set `oauth-token`)"
        )),
        403 => Error::denied(format!(
            "{said}; the integration user lacks a role or ACL this needs (itil for incidents)"
        )),
        404 => Error::not_found(said),
        400 => Error::invalid_input(said),
        429 => Error::rate_limited(said).retry_after(response.retry_after()),
        500..=599 => Error::unavailable(said).retry_after(response.retry_after()),
        _ => Error::upstream(said),
    }
}

/// An answer of `https://acme.service-now.com/api/now/table/incident`, for the tests.
#[cfg(test)]
pub(crate) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response {
    http::Response {
        url: "https://acme.service-now.com/api/now/table/incident".into(),
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
    fn every_failure_has_its_kind_and_the_instances_message() {
        let body = r#"{"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"}"#;
        for (status, kind) in [
            (400, ErrorKind::InvalidInput),
            (401, ErrorKind::Denied),
            (403, ErrorKind::Denied),
            (404, ErrorKind::NotFound),
            (429, ErrorKind::RateLimited),
            (503, ErrorKind::Unavailable),
            (409, ErrorKind::Upstream),
        ] {
            let e = result::<Value>(answer(status, &[], body)).unwrap_err();
            assert_eq!(e.kind, kind, "{status}");
            assert!(
                e.message.contains(&format!(
                    "HTTP {status}: No Record found: Record doesn't exist or ACL restricts"
                )),
                "{}",
                e.message
            );
        }
        let e = result::<Value>(answer(401, &[], "<html>login</html>")).unwrap_err();
        assert!(e.message.contains("<html>login</html>") && e.message.contains("oauth-token"));
    }

    #[test]
    fn a_429_carries_retry_after_and_a_result_is_read() {
        let e = result::<Value>(answer(429, &[("retry-after", "7")], "{}")).unwrap_err();
        assert_eq!((e.retry_after, e.retryable), (Some(Duration::from_secs(7)), true));
        let v: Value = result(answer(200, &[], r#"{"result":[{"number":"INC0010001"}]}"#)).unwrap();
        assert_eq!(v[0]["number"], "INC0010001");
        assert_eq!(
            result::<Value>(answer(200, &[], "{}")).unwrap_err().kind,
            ErrorKind::Upstream
        );
    }
}
