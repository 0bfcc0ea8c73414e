//! The app-only access token: the OAuth2 client-credentials grant at the Microsoft identity
//! platform, kept in the plugin's kv store until shortly before it expires, so calls in a row
//! ask for one token.

use crate::answer::token_failure;
use crate::settings::Settings;
use osprey_sdk::prelude::*;
use std::time::Duration;

const SECRET_HINT: &str = "set it with `osprey secret set msgraph client-secret` (the app \
                           registration's client secret value)";

/// The identity platform's answer to a token request.
#[derive(Deserialize)]
struct TokenAnswer {
    token_type: String,
    expires_in: u64,
    access_token: String,
}

/// The form body of the client-credentials grant.
pub(crate) fn token_form(s: &Settings, client_secret: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &s.client_id)
        .append_pair("client_secret", client_secret)
        .append_pair("scope", &s.scope())
        .finish()
}

/// How long to keep a token that lives `expires_in` seconds: until five minutes before it
/// expires (half its life, if it is short), so a kept token is never sent stale.
pub(crate) fn keep_for(expires_in: u64) -> Duration {
    let margin = 300.min(expires_in / 2);
    Duration::from_secs(expires_in - margin)
}

/// The token and how long to keep it, from a successful answer.
pub(crate) fn read_token(response: &http::Response) -> Result<(String, Duration)> {
    if !(200..300).contains(&response.status) {
        return Err(token_failure(response));
    }
    let answer: TokenAnswer = response.json()?;
    if !answer.token_type.eq_ignore_ascii_case("bearer") || answer.access_token.is_empty() {
        return Err(Error::upstream(format!(
            "{} answered with a '{}' token, not a bearer token",
            response.url, answer.token_type
        )));
    }
    Ok((answer.access_token, keep_for(answer.expires_in)))
}

fn client_secret() -> Result<secrets::Secret> {
    match secrets::get("client-secret") {
        Ok(v) if !v.expose().is_empty() => Ok(v),
        Ok(_) => Err(Error::denied(format!(
            "the client secret is empty; {SECRET_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::NotFound => {
            Err(Error::denied(format!("no client secret is set; {SECRET_HINT}")))
        }
        Err(e) if e.kind == ErrorKind::Denied => Err(Error::denied(format!(
            "{}; grant it with `osprey plugin grant msgraph --requested`, then {SECRET_HINT}",
            e.message
        ))),
        Err(e) => Err(e),
    }
}

/// Where the token of these settings is kept.
pub(crate) fn kv_key(s: &Settings) -> String {
    format!("token:{}/{}/{}", s.login_base, s.tenant, s.client_id)
}

/// The kept token, if there is one.
pub(crate) fn kept(s: &Settings) -> Option<String> {
    // A kv store that cannot be read costs a token request, not the call.
    match kv::get(&kv_key(s)) {
        Ok(v) => v.and_then(|bytes| String::from_utf8(bytes).ok()),
        Err(e) => {
            log::warn("could not read the kept token", &[("error", &e.message)]);
            None
        }
    }
}

/// Drop the kept token (Graph said it is no longer good).
pub(crate) fn forget(s: &Settings) {
    if let Err(e) = kv::delete(&kv_key(s)) {
        log::warn("could not drop the kept token", &[("error", &e.message)]);
    }
}

/// A new token from the identity platform, kept for its life.
pub(crate) fn fetch(s: &Settings) -> Result<String> {
    let secret = client_secret()?;
    let response = http::Request::post(s.token_url())
        .header("accept", "application/json")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(token_form(s, secret.expose()))
        .send()?;
    drop(secret);
    let (token, keep) = read_token(&response)?;
    if !keep.is_zero()
        && let Err(e) = kv::set(&kv_key(s), token.as_bytes(), Some(keep))
    {
        // A full kv store costs a token per call, not the call.
        log::warn("could not keep the access token", &[("error", &e.message)]);
    }
    log::info(
        "got a Graph access token",
        &[
            ("tenant", &s.tenant),
            ("kept_seconds", &keep.as_secs().to_string()),
        ],
    );
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::answer;

    fn settings() -> Settings {
        Settings {
            tenant: "contoso.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            login_base: "https://login.microsoftonline.com".into(),
            graph_base: "https://graph.microsoft.com".into(),
        }
    }

    #[test]
    fn the_form_is_the_client_credentials_grant_url_encoded() {
        assert_eq!(
            token_form(&settings(), "s3cr+t=&x~"),
            "grant_type=client_credentials&client_id=11111111-2222-3333-4444-555555555555\
             &client_secret=s3cr%2Bt%3D%26x%7E&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        );
    }

    #[test]
    fn a_token_is_kept_until_five_minutes_before_it_expires() {
        assert_eq!(keep_for(3599), Duration::from_secs(3299));
        assert_eq!(keep_for(120), Duration::from_secs(60));
        assert_eq!(keep_for(0), Duration::ZERO);
        let (token, keep) = read_token(&answer(
            200,
            &[],
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAi"}"#,
        ))
        .unwrap();
        assert_eq!((token.as_str(), keep.as_secs()), ("eyJ0eXAi", 3299));
    }

    #[test]
    fn odd_or_failed_token_answers_are_typed() {
        let e = read_token(&answer(
            200,
            &[],
            r#"{"token_type":"pop","expires_in":1,"access_token":"x"}"#,
        ))
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert_eq!(
            read_token(&answer(200, &[], "<html>")).unwrap_err().kind,
            ErrorKind::Upstream
        );
        let e = read_token(&answer(401, &[], r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#))
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Denied);
        assert_eq!(
            kv_key(&settings()),
            "token:https://login.microsoftonline.com/contoso.onmicrosoft.com/11111111-2222-3333-4444-555555555555"
        );
    }
}
