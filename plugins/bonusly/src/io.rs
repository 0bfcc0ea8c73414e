//! The one way a request to Bonusly is made: the `base_url` setting, the API's path, the
//! access token as a bearer token, JSON.

use osprey_sdk::prelude::*;

/// `{base_url}/api/v1{path}`.
pub(crate) fn api_url(base: &str, path: &str) -> String {
    format!("{}/api/v1{path}", base.trim().trim_end_matches('/'))
}

/// A request to the API path `path` (`/users/me`), authenticated, asking for JSON.
pub(crate) fn request(method: &str, path: &str) -> Result<http::Request> {
    let base = config::require("base_url")?;
    let token = secrets::get("access-token")?;
    Ok(http::Request::new(method, api_url(&base, path))
        .header("accept", "application/json")
        .bearer_auth(token.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_has_one_slash_whatever_the_base() {
        assert_eq!(
            api_url("https://bonus.ly/", "/users/me"),
            "https://bonus.ly/api/v1/users/me"
        );
        assert_eq!(
            api_url(" http://127.0.0.1:9 ", "/bonuses"),
            "http://127.0.0.1:9/api/v1/bonuses"
        );
    }
}
