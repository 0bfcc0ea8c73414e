//! The one way a request to the instance is made: the `instance_url` setting, the Table
//! API's path, and the credentials: an OAuth token (secret `oauth-token`) when one is set,
//! else basic auth (setting `username`, secret `password`). The user name is a setting, not a
//! secret: ServiceNow writes it into the records the user changes (`sys_updated_by`), and
//! Osprey refuses any output that carries a secret's value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use osprey_sdk::prelude::*;
use osprey_sdk::secrets::Secret;

/// The instance's origin from `instance_url`, checked.
pub(crate) fn origin(instance_url: &str) -> Result<String> {
    let base = instance_url.trim().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let host = base.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(Error::invalid_input(format!(
            "setting 'instance_url' ('{base}') must be your instance's origin, such as \
             https://acme.service-now.com"
        )));
    }
    Ok(base.to_owned())
}

/// `{origin}/api/now/table/incident{rest}`.
pub(crate) fn incident_url(origin: &str, rest: &str) -> String {
    format!("{origin}/api/now/table/incident{rest}")
}

/// `Basic base64(user:password)`.
pub(crate) fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The OAuth token, when one is set (and granted); any other failure to read it is an error.
fn oauth_token() -> Result<Option<Secret>> {
    match secrets::get("oauth-token") {
        Ok(token) if !token.expose().trim().is_empty() => Ok(Some(token)),
        Ok(_) => Ok(None),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Denied) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A request to the incident table's `rest` (`""`, `/{sys_id}`), authenticated, in JSON,
/// with raw (not display) values and no reference links.
pub(crate) fn incident_request(method: &str, rest: &str) -> Result<http::Request> {
    let origin = origin(&config::require("instance_url")?)?;
    let auth = match oauth_token()? {
        Some(token) => format!("Bearer {}", token.expose().trim()),
        None => basic(
            config::require("username")?.trim(),
            secrets::get("password")?.expose(),
        ),
    };
    Ok(http::Request::new(method, incident_url(&origin, rest))
        .header("accept", "application/json")
        .header("authorization", auth)
        .query(&[
            ("sysparm_display_value", "false"),
            ("sysparm_exclude_reference_link", "true"),
        ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_the_user_and_password_in_base64() {
        // RFC 7617's example.
        assert_eq!(
            basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn the_instance_url_is_an_origin() {
        assert_eq!(
            origin(" https://acme.service-now.com/ ").unwrap(),
            "https://acme.service-now.com"
        );
        assert_eq!(origin("http://127.0.0.1:9").unwrap(), "http://127.0.0.1:9");
        for bad in [
            "acme.service-now.com",
            "https://",
            "https://a/b",
            "https://u@acme.service-now.com",
        ] {
            let e = origin(bad).unwrap_err();
            assert!(e.message.contains("'instance_url'"), "{bad}: {}", e.message);
        }
        assert_eq!(
            incident_url("https://a.service-now.com", "/abc"),
            "https://a.service-now.com/api/now/table/incident/abc"
        );
    }
}
