//! The one way a request reaches EC2: the `region` and `endpoint` settings, the access keys
//! from the secrets, the Query API body signed with SigV4 (`sign.rs`), and the answer read
//! into XML or a typed error (`answer.rs`).

use crate::answer;
use crate::query::Query;
use crate::sign::{Keys, signed_headers};
use osprey_sdk::prelude::*;
use std::time::SystemTime;

/// The region from the `region` setting, checked (`eu-west-1`, `us-gov-west-1`, ...).
pub(crate) fn region(setting: Option<String>) -> Result<String> {
    let region = setting.unwrap_or_default().trim().to_owned();
    let valid = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        return Err(Error::invalid_input(format!(
            "setting 'region' ('{region}') must be an AWS region such as eu-west-1: set it with \
             `osprey plugin config aws-ec2 region=eu-west-1`"
        )));
    }
    Ok(region)
}

/// The endpoint's URL (with a trailing `/`, the path the Query API is posted to): the
/// `endpoint` setting's origin, or `https://ec2.{region}.amazonaws.com/`.
pub(crate) fn endpoint(setting: Option<String>, region: &str) -> Result<String> {
    let Some(raw) = setting.filter(|s| !s.trim().is_empty()) else {
        return Ok(format!("https://ec2.{region}.amazonaws.com/"));
    };
    let base = raw.trim().trim_end_matches('/');
    let lower = base.to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let host = base.split_once("://").map_or("", |(_, rest)| rest);
    if !scheme_ok || host.is_empty() || host.contains(['/', '?', '#', '@']) {
        return Err(Error::invalid_input(format!(
            "setting 'endpoint' ('{base}') must be an origin such as \
             https://ec2.eu-west-1.amazonaws.com (or unset, for the region's endpoint)"
        )));
    }
    Ok(format!("{base}/"))
}

/// A secret that may be absent: `None` when it is not set or not granted.
fn optional_secret(name: &str) -> Result<Option<String>> {
    match secrets::get(name) {
        Ok(s) if !s.expose().trim().is_empty() => Ok(Some(s.expose().trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Denied) => Ok(None),
        Err(e) => Err(e),
    }
}

fn keys() -> Result<Keys> {
    Ok(Keys {
        access_key_id: secrets::get("access-key-id")?.expose().trim().to_owned(),
        secret_access_key: secrets::get("secret-access-key")?.expose().trim().to_owned(),
        session_token: optional_secret("session-token")?,
    })
}

/// The region an action's `region` input names, checked like the setting's.
pub(crate) fn given_region(given: &str) -> Result<String> {
    region(Some(given.to_owned())).map_err(|_| {
        Error::invalid_input(format!(
            "'region' ('{given}') must be an AWS region such as eu-west-1"
        ))
    })
}

/// Send `query` to the endpoint of `given` region (an action's `region` input; unset, the
/// `region` setting's), signed, and return the root of its XML answer (`{Action}Response`),
/// or the typed error of a failure.
pub(crate) fn call<T>(
    query: &Query,
    given: Option<&str>,
    read: impl FnOnce(roxmltree::Node) -> Result<T>,
) -> Result<T> {
    let region = match given {
        Some(r) => given_region(r)?,
        None => region(config::get("region"))?,
    };
    let url = endpoint(config::get("endpoint"), &region)?;
    let body = query.body();
    let headers = signed_headers(&keys()?, &region, &url, body.as_bytes(), SystemTime::now())?;
    let mut request = http::Request::post(&url).header("accept", "text/xml");
    for (name, value) in headers {
        request = request.header(&name, value);
    }
    let response = request.body(body).send()?;
    answer::read(&response, query.action(), read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_is_required_and_checked() {
        assert_eq!(region(Some(" eu-west-1 ".into())).unwrap(), "eu-west-1");
        for bad in [
            None,
            Some(String::new()),
            Some("EU West".into()),
            Some("eu-west-1/x".into()),
        ] {
            let e = region(bad.clone()).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{bad:?}");
            assert!(e.message.contains("region=eu-west-1"), "{}", e.message);
        }
    }

    #[test]
    fn a_given_region_is_checked_and_named_as_the_input() {
        assert_eq!(given_region("us-east-1").unwrap(), "us-east-1");
        let e = given_region("Mars 1").unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.starts_with("'region' ('Mars 1')"), "{}", e.message);
    }

    #[test]
    fn the_endpoint_is_the_regions_unless_set_to_an_origin() {
        assert_eq!(
            endpoint(None, "eu-west-1").unwrap(),
            "https://ec2.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            endpoint(Some(" ".into()), "us-east-1").unwrap(),
            "https://ec2.us-east-1.amazonaws.com/"
        );
        assert_eq!(
            endpoint(Some("http://127.0.0.1:9000/".into()), "us-east-1").unwrap(),
            "http://127.0.0.1:9000/"
        );
        for bad in ["ec2.amazonaws.com", "https://", "https://h/path", "https://u@h"] {
            let e = endpoint(Some(bad.into()), "us-east-1").unwrap_err();
            assert!(e.message.contains("'endpoint'"), "{bad}: {}", e.message);
        }
    }
}
