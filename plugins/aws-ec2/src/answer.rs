//! Reading EC2's answers: `<{Action}Response>` in the API's namespace, or
//! `<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>
//! <RequestID>..</RequestID></Response>` with a 4xx or 5xx status. Each error code becomes the
//! kind a playbook acts on, with EC2's message and request id.

use osprey_sdk::prelude::*;
use roxmltree::{Document, Node};

/// The first child element called `name` (any namespace).
pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The text of the child element `name`, when there is some.
pub(crate) fn text(node: Node, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The `<item>`s of the child list `name` (`instancesSet`, `tagSet`, ...).
pub(crate) fn items<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Vec<Node<'a, 'i>> {
    child(node, name)
        .map(|list| {
            list.children()
                .filter(|c| c.is_element() && c.tag_name().name() == "item")
                .collect()
        })
        .unwrap_or_default()
}

/// The answer to `action`, read by `read` from its root element; or the typed error.
pub(crate) fn read<T>(
    response: &http::Response,
    action: &str,
    read: impl FnOnce(Node) -> Result<T>,
) -> Result<T> {
    let body = response.text();
    if !(200..300).contains(&response.status) {
        return Err(failure(response.status, &response.url, &body));
    }
    let doc = Document::parse(&body).map_err(|e| {
        Error::upstream(format!(
            "{} answered {action} with XML that does not parse: {e}",
            response.url
        ))
    })?;
    let root = doc.root_element();
    let expected = format!("{action}Response");
    if root.tag_name().name() != expected {
        return Err(Error::upstream(format!(
            "{} answered {action} with <{}>, not <{expected}>",
            response.url,
            root.tag_name().name()
        )));
    }
    read(root)
}

/// EC2's error: its code, message and request id.
struct Failure {
    code: String,
    message: String,
    request_id: Option<String>,
}

fn parse_failure(body: &str) -> Option<Failure> {
    let doc = Document::parse(body).ok()?;
    let root = doc.root_element();
    let error = child(child(root, "Errors")?, "Error")?;
    Some(Failure {
        code: text(error, "Code")?,
        message: text(error, "Message").unwrap_or_default(),
        request_id: text(root, "RequestID").or_else(|| text(root, "RequestId")),
    })
}

/// What a code means to a playbook. Codes not named here fall back on the HTTP status.
fn kind_of(code: &str, status: u16) -> ErrorKind {
    match code {
        "AuthFailure"
        | "SignatureDoesNotMatch"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "MissingAuthenticationToken"
        | "IncompleteSignature"
        | "RequestExpired"
        | "OptInRequired"
        | "Blocked"
        | "PendingVerification" => ErrorKind::Denied,
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => ErrorKind::RateLimited,
        "InsufficientInstanceCapacity"
        | "InsufficientCapacity"
        | "InternalError"
        | "ServiceUnavailable"
        | "Unavailable" => ErrorKind::Unavailable,
        c if c.ends_with(".NotFound") => ErrorKind::NotFound,
        c if c.ends_with(".Malformed")
            || c.starts_with("InvalidParameter")
            || c.starts_with("Missing")
            || c == "IdempotentParameterMismatch" =>
        {
            ErrorKind::InvalidInput
        }
        _ => match status {
            401 | 403 => ErrorKind::Denied,
            500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Upstream,
        },
    }
}

/// The error for a non-2xx answer, saying what to do where the operator can act.
pub(crate) fn failure(status: u16, url: &str, body: &str) -> Error {
    let Some(f) = parse_failure(body) else {
        let start: String = body.trim().replace(['\r', '\n'], " ").chars().take(300).collect();
        let said = format!("{url} answered HTTP {status}: {start}");
        return match status {
            401 | 403 => Error::denied(said),
            429 => Error::rate_limited(said),
            500..=599 => Error::unavailable(said),
            _ => Error::upstream(said),
        };
    };
    let message: String = f.message.replace(['\r', '\n'], " ").chars().take(500).collect();
    let request = f
        .request_id
        .map(|id| format!(" (request {id})"))
        .unwrap_or_default();
    let said = format!("{url} answered HTTP {status} {}: {message}{request}", f.code);
    let kind = kind_of(&f.code, status);
    let hint = match (kind, f.code.as_str()) {
        (_, "UnauthorizedOperation") => "; the IAM policy of these credentials does not allow this action",
        (_, "RequestExpired") => "; the request's time was off by more than 5 minutes: check the clock",
        (ErrorKind::Denied, _) => {
            "; check the keys (`osprey secret set aws-ec2 access-key-id`, `secret-access-key`, and \
             `session-token` for temporary credentials) and the `region` setting"
        }
        _ => "",
    };
    Error::new(kind, format!("{said}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(code: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
             <Message>said &amp; done</Message></Error></Errors>\
             <RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"
        )
    }

    #[test]
    fn every_documented_code_has_its_kind() {
        for (code, status, kind) in [
            ("AuthFailure", 401, ErrorKind::Denied),
            ("SignatureDoesNotMatch", 403, ErrorKind::Denied),
            ("UnauthorizedOperation", 403, ErrorKind::Denied),
            ("InvalidInstanceID.NotFound", 400, ErrorKind::NotFound),
            ("InvalidAMIID.NotFound", 400, ErrorKind::NotFound),
            ("InvalidInstanceID.Malformed", 400, ErrorKind::InvalidInput),
            ("InvalidParameterValue", 400, ErrorKind::InvalidInput),
            ("IdempotentParameterMismatch", 400, ErrorKind::InvalidInput),
            ("RequestLimitExceeded", 503, ErrorKind::RateLimited),
            ("Throttling", 400, ErrorKind::RateLimited),
            ("InsufficientInstanceCapacity", 500, ErrorKind::Unavailable),
            ("InternalError", 500, ErrorKind::Unavailable),
            ("SomethingNew", 503, ErrorKind::Unavailable),
            ("SomethingNew", 400, ErrorKind::Upstream),
        ] {
            let e = failure(status, "https://ec2.us-east-1.amazonaws.com/", &error_body(code));
            assert_eq!(e.kind, kind, "{code}");
            assert!(
                e.message
                    .contains(&format!("HTTP {status} {code}: said & done (request ea966190")),
                "{}",
                e.message
            );
        }
        let e = failure(503, "u", &error_body("RequestLimitExceeded"));
        assert!(e.retryable);
        let e = failure(403, "u", &error_body("SignatureDoesNotMatch"));
        assert!(
            e.message.contains("secret-access-key") && !e.retryable,
            "{}",
            e.message
        );
        let e = failure(403, "u", &error_body("UnauthorizedOperation"));
        assert!(e.message.contains("IAM policy"), "{}", e.message);
    }

    #[test]
    fn an_answer_that_is_not_ec2s_xml_says_what_came() {
        let e = failure(502, "u", "<html>Bad Gateway</html>");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(
            e.message.contains("HTTP 502: <html>Bad Gateway</html>"),
            "{}",
            e.message
        );
        let ok = |body: &str| http::Response {
            url: "u".into(),
            status: 200,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        let e = read(&ok("not xml"), "CreateTags", |_| Ok(())).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        let e = read(&ok("<RunInstancesResponse/>"), "CreateTags", |_| Ok(())).unwrap_err();
        assert!(e.message.contains("not <CreateTagsResponse>"), "{}", e.message);
        let v = read(
            &ok(r#"<CreateTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><return>true</return></CreateTagsResponse>"#),
            "CreateTags",
            |root| Ok(text(root, "return")),
        )
        .unwrap();
        assert_eq!(v.as_deref(), Some("true"));
    }
}
