//! Reading Microsoft's answers: the identity platform's OAuth2 errors
//! (`{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}`) and Graph's
//! (`{"error": {"code": "Request_ResourceNotFound", "message": ...}}`), each to the error kind
//! a playbook acts on, with the vendor's `Retry-After` where it gave one.

use osprey_sdk::prelude::*;

const SECRET_HINT: &str = "check the client_id setting and the secret (`osprey secret set \
                           msgraph client-secret`, the secret's value, not its id)";

/// The identity platform's error answer.
#[derive(Deserialize, Default)]
struct OauthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Graph's error answer.
#[derive(Deserialize, Default)]
struct GraphErrorBody {
    #[serde(default)]
    error: GraphError,
}

#[derive(Deserialize, Default)]
pub(crate) struct GraphError {
    #[serde(default)]
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Graph's `{"error": {"code", "message"}}`, empty when the body is something else.
pub(crate) fn graph_error(response: &http::Response) -> GraphError {
    serde_json::from_slice::<GraphErrorBody>(&response.body)
        .map(|b| b.error)
        .unwrap_or_default()
}

/// "URL answered HTTP 404: Request_ResourceNotFound: Resource '...' does not exist".
fn said(response: &http::Response, code: &str, message: &str) -> String {
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => cut(response.text().trim(), 200),
        (false, true) => code.to_owned(),
        (true, false) => cut(message, 300),
        (false, false) => format!("{code}: {}", cut(message, 300)),
    }
    .replace(['\r', '\n'], " ");
    if detail.is_empty() {
        format!("{} answered HTTP {}", response.url, response.status)
    } else {
        format!("{} answered HTTP {}: {detail}", response.url, response.status)
    }
}

/// The wait a 429 or 5xx asked for, on an error of the kind where waiting helps.
fn waiting(error: Error, response: &http::Response) -> Error {
    error.retry_after(response.retry_after())
}

/// Why the identity platform gave no token.
pub(crate) fn token_failure(response: &http::Response) -> Error {
    let body: OauthError = serde_json::from_slice(&response.body).unwrap_or_default();
    // The description's first line; the rest is trace and correlation ids.
    let description = body
        .error_description
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let what = said(response, &body.error, &description);
    match (response.status, body.error.as_str()) {
        (429, _) => waiting(Error::rate_limited(what), response),
        (500..=599, _) | (_, "temporarily_unavailable") => waiting(Error::unavailable(what), response),
        (_, "invalid_client" | "unauthorized_client" | "access_denied") | (401 | 403, _) => {
            Error::denied(format!("{what}; {SECRET_HINT}"))
        }
        (_, "invalid_request" | "invalid_scope" | "invalid_grant") => Error::invalid_input(format!(
            "{what}; check the tenant, client_id, login_base and graph_base settings \
             (`osprey plugin inspect msgraph`)"
        )),
        _ => Error::upstream(what),
    }
}

/// A Graph answer that is not a success, as the error a playbook acts on. `what` names the
/// object asked for ("user 'x'"), for the not-found message.
pub(crate) fn graph_failure(response: &http::Response, what: &str) -> Error {
    let e = graph_error(response);
    let said = said(response, &e.code, &e.message);
    match response.status {
        400 => Error::invalid_input(said),
        401 => Error::denied(format!(
            "{said}; Graph refused a token it had just issued: check the app registration"
        )),
        403 => Error::denied(format!(
            "{said}; the app registration needs the User.Read.All and GroupMember.Read.All \
             application permissions, with an admin's consent"
        )),
        404 => Error::not_found(format!("Graph has no {what} ({said})")),
        429 => waiting(Error::rate_limited(said), response),
        500..=599 => waiting(Error::unavailable(said), response),
        _ => Error::upstream(said),
    }
}

/// Graph's word that the token is no longer good (expired, revoked, or for another tenant).
pub(crate) fn token_rejected(response: &http::Response) -> bool {
    response.status == 401
}

#[cfg(test)]
pub(crate) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response {
    http::Response {
        url: "https://graph.microsoft.com/v1.0/users/x".into(),
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
    fn a_bad_client_secret_is_denied_with_the_first_line_of_the_description() {
        let r = answer(
            401,
            &[],
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[7000215]}"#,
        );
        let e = token_failure(&r);
        assert_eq!(e.kind, ErrorKind::Denied);
        assert!(
            e.message
                .contains("invalid_client: AADSTS7000215: Invalid client secret provided."),
            "{}",
            e.message
        );
        assert!(!e.message.contains("Trace ID"), "{}", e.message);
        assert!(
            e.message.contains("osprey secret set msgraph client-secret"),
            "{}",
            e.message
        );
    }

    #[test]
    fn token_errors_map_to_kinds_with_the_wait() {
        let tenant = answer(
            400,
            &[],
            r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant 'x' not found."}"#,
        );
        assert_eq!(token_failure(&tenant).kind, ErrorKind::InvalidInput);
        let busy = token_failure(&answer(429, &[("retry-after", "7")], "{}"));
        assert_eq!(
            (busy.kind, busy.retry_after),
            (ErrorKind::RateLimited, Some(Duration::from_secs(7)))
        );
        let down = token_failure(&answer(503, &[], "<html>"));
        assert_eq!(down.kind, ErrorKind::Unavailable);
        assert!(down.retryable);
        assert_eq!(token_failure(&answer(418, &[], "{}")).kind, ErrorKind::Upstream);
    }

    #[test]
    fn graph_errors_map_to_kinds_with_the_wait_and_the_vendor_word() {
        let body = r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'nobody@contoso.example' does not exist or one of its queried reference-property objects are not present.","innerError":{"request-id":"r"}}}"#;
        let e = graph_failure(&answer(404, &[], body), "user 'nobody@contoso.example'");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(
            e.message
                .starts_with("Graph has no user 'nobody@contoso.example' ("),
            "{}",
            e.message
        );
        assert!(e.message.contains("Request_ResourceNotFound"), "{}", e.message);
        let e = graph_failure(
            &answer(
                429,
                &[("retry-after", "12")],
                r#"{"error":{"code":"TooManyRequests","message":"Too many requests"}}"#,
            ),
            "x",
        );
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::RateLimited, Some(Duration::from_secs(12)))
        );
        let e = graph_failure(&answer(503, &[("retry-after", "3")], ""), "x");
        assert_eq!(
            (e.kind, e.retry_after),
            (ErrorKind::Unavailable, Some(Duration::from_secs(3)))
        );
        let e = graph_failure(
            &answer(
                403,
                &[],
                r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
            ),
            "x",
        );
        assert_eq!(e.kind, ErrorKind::Denied);
        assert!(e.message.contains("User.Read.All"), "{}", e.message);
        assert_eq!(
            graph_failure(&answer(400, &[], "{}"), "x").kind,
            ErrorKind::InvalidInput
        );
        assert_eq!(
            graph_failure(&answer(409, &[], "{}"), "x").kind,
            ErrorKind::Upstream
        );
        assert_eq!(
            graph_failure(&answer(403, &[("retry-after", "3")], ""), "x").retry_after,
            None
        );
    }
}
