//! Reading the controller's answers: its `{"meta", "data"}` envelope, its own word for what
//! went wrong, and the cookies a login sets.

use crate::validation::snippet;
use osprey_sdk::prelude::*;

/// The controller's error envelope, `{"meta": {"rc", "msg"}, "data": [...]}`.
#[derive(Deserialize)]
pub(crate) struct Envelope {
    pub(crate) meta: Meta,
    #[serde(default)]
    pub(crate) data: Option<Value>,
}

#[derive(Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) rc: String,
    #[serde(default)]
    pub(crate) msg: Option<String>,
}

pub(crate) fn envelope(response: &http::Response) -> Option<Envelope> {
    serde_json::from_slice(&response.body).ok()
}

/// The controller's own word for what went wrong: `meta.msg`, or UniFi OS's `message`/`code`.
pub(crate) fn vendor_message(response: &http::Response) -> Option<String> {
    if let Some(msg) = envelope(response).and_then(|e| e.meta.msg) {
        return Some(msg);
    }
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    ["message", "code", "error"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

pub(crate) fn said(response: &http::Response) -> String {
    let detail = vendor_message(response)
        .unwrap_or_else(|| snippet(response.text().trim(), 200))
        .replace(['\r', '\n'], " ");
    if detail.is_empty() {
        format!("{} answered HTTP {}", response.url, response.status)
    } else {
        format!(
            "{} answered HTTP {}: {}",
            response.url,
            response.status,
            snippet(&detail, 200)
        )
    }
}

/// `name=value; name=value` of every cookie the response sets (expired ones are skipped).
pub(crate) fn cookies_of(response: &http::Response) -> Vec<(String, String)> {
    response
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| {
            let pair = v.split(';').next()?.trim();
            let (name, value) = pair.split_once('=')?;
            let (name, value) = (name.trim(), value.trim().trim_matches('"'));
            (!name.is_empty() && !value.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// A controller's answer to `https://unifi.lan/api/x`, for the tests.
#[cfg(test)]
pub(crate) fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> http::Response {
    http::Response {
        url: "https://unifi.lan/api/x".into(),
        status,
        headers: headers.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendor_message_is_meta_msg_or_unifi_os_message() {
        let classic = answer(
            400,
            &[],
            r#"{"meta":{"rc":"error","msg":"api.err.Invalid"},"data":[]}"#,
        );
        assert_eq!(vendor_message(&classic).as_deref(), Some("api.err.Invalid"));
        let unifi_os = answer(
            401,
            &[],
            r#"{"code":"AUTHENTICATION_FAILED_INVALID_CREDENTIALS"}"#,
        );
        assert_eq!(
            vendor_message(&unifi_os).as_deref(),
            Some("AUTHENTICATION_FAILED_INVALID_CREDENTIALS")
        );
        assert_eq!(
            vendor_message(&answer(502, &[], "<html>bad gateway</html>")),
            None
        );
    }

    #[test]
    fn said_names_the_url_status_and_detail_on_one_line() {
        assert_eq!(
            said(&answer(502, &[], "bad\r\ngateway")),
            "https://unifi.lan/api/x answered HTTP 502: bad  gateway"
        );
        assert_eq!(
            said(&answer(500, &[], "  ")),
            "https://unifi.lan/api/x answered HTTP 500"
        );
        let long = "x".repeat(1000);
        assert!(said(&answer(500, &[], &long)).len() < 300);
    }

    #[test]
    fn cookies_are_the_name_value_pairs_of_set_cookie_without_empty_ones() {
        let r = answer(
            200,
            &[
                ("set-cookie", "unifises=abc123; Path=/; Secure; HttpOnly"),
                ("set-cookie", "csrf_token=\"tok\"; Path=/"),
                ("set-cookie", "old=; Expires=Thu, 01 Jan 1970 00:00:00 GMT"),
                ("x-other", "a=b"),
            ],
            "",
        );
        assert_eq!(
            cookies_of(&r),
            vec![
                ("unifises".into(), "abc123".into()),
                ("csrf_token".into(), "tok".into())
            ]
        );
    }

    #[test]
    fn an_envelope_reads_rc_and_data_and_anything_else_is_none() {
        let e = envelope(&answer(200, &[], r#"{"meta":{"rc":"ok"},"data":[{"a":1}]}"#)).unwrap();
        assert_eq!(e.meta.rc, "ok");
        assert_eq!(e.data, Some(json!([{"a": 1}])));
        assert!(envelope(&answer(200, &[], "[]")).is_none());
    }
}
