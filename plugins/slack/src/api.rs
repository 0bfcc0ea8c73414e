//! Calling a Web API method: the bot token as a bearer, JSON bodies for writes and a query
//! for reads, the answer read by `answer.rs`.

use crate::answer::read;
use osprey_sdk::prelude::*;

const TOKEN_HINT: &str = "set it with `osprey secret set slack bot-token` (the app's xoxb- bot token)";

fn bot_token() -> Result<secrets::Secret> {
    match secrets::get("bot-token") {
        Ok(v) if !v.expose().trim().is_empty() => Ok(v),
        Ok(_) => Err(Error::denied(format!("the bot token is empty; {TOKEN_HINT}"))),
        Err(e) if e.kind == ErrorKind::NotFound => {
            Err(Error::denied(format!("no bot token is set; {TOKEN_HINT}")))
        }
        Err(e) if e.kind == ErrorKind::Denied => Err(Error::denied(format!(
            "{}; grant it with `osprey plugin grant slack --requested`, then {TOKEN_HINT}",
            e.message
        ))),
        Err(e) => Err(e),
    }
}

/// `{base_url}/{method}`.
pub(crate) fn method_url(base: &str, method: &str) -> String {
    format!("{}/{method}", base.trim_end_matches('/'))
}

fn send(method: &str, request: impl FnOnce(String) -> http::Request) -> Result<Value> {
    let token = bot_token()?;
    let base = config::require("base_url")?;
    let response = request(method_url(&base, method))
        .header("accept", "application/json")
        .bearer_auth(token.expose().trim())
        .send()?;
    drop(token);
    read(method, &response)
}

/// `POST {base}/{method}` with a JSON body (chat.postMessage, chat.update, conversations.open).
pub(crate) fn post(method: &str, body: &Value) -> Result<Value> {
    // Slack warns when a JSON body's content type names no charset.
    let bytes = serde_json::to_vec(body)?;
    send(method, |url| {
        http::Request::post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(bytes)
    })
}

/// `GET {base}/{method}?query` (users.lookupByEmail, which does not read JSON bodies).
pub(crate) fn get(method: &str, query: &[(&str, &str)]) -> Result<Value> {
    send(method, |url| http::Request::get(url).query(query))
}

#[cfg(test)]
mod tests {
    #[test]
    fn method_urls_have_one_slash() {
        assert_eq!(
            super::method_url("https://slack.com/api/", "chat.postMessage"),
            "https://slack.com/api/chat.postMessage"
        );
        assert_eq!(
            super::method_url("http://127.0.0.1:9/api", "chat.update"),
            "http://127.0.0.1:9/api/chat.update"
        );
    }
}
