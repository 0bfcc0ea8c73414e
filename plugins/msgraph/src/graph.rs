//! Requests to Microsoft Graph for one call: the bearer token (kept, or new), one retry with a
//! new token when Graph says the kept one is no longer good, and the checks on what is put in
//! a path or followed as a next page.

use crate::answer::{graph_failure, token_rejected};
use crate::settings::{Settings, settings};
use crate::token;
use osprey_sdk::prelude::*;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What stays as it is in a path segment: RFC 3986's unreserved characters and `@` (a UPN).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// A user's id or UPN, or a group's id, as one path segment. `what` names it in the error.
pub(crate) fn segment(what: &str, raw: &str) -> Result<String> {
    let value = raw.trim();
    if value.is_empty() || value.len() > 1024 {
        return Err(Error::invalid_input(format!(
            "the {what} must be 1 to 1024 characters"
        )));
    }
    if value.contains(['/', '\\']) || value.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "the {what} '{value}' has a slash or a control character: give an object id or a \
             user principal name"
        )));
    }
    Ok(utf8_percent_encode(value, SEGMENT).to_string())
}

/// Graph for one call.
pub(crate) struct Graph {
    pub(crate) s: Settings,
    /// The token in use, and whether this call fetched it (a 401 then is not a stale token).
    token: Option<(String, bool)>,
}

impl Graph {
    pub(crate) fn open() -> Result<Graph> {
        Ok(Graph {
            s: settings()?,
            token: None,
        })
    }

    /// `{graph_base}/v1.0{path_and_query}`.
    pub(crate) fn url(&self, path_and_query: &str) -> String {
        format!("{}/v1.0{path_and_query}", self.s.graph_base)
    }

    fn bearer(&mut self) -> Result<(String, bool)> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let t = match token::kept(&self.s) {
            Some(kept) => (kept, false),
            None => (token::fetch(&self.s)?, true),
        };
        self.token = Some(t.clone());
        Ok(t)
    }

    /// `GET url` and its JSON. A 401 to a kept token means it expired or was revoked: drop it,
    /// get a new one, and ask again, once. `what` names the object for a not-found error.
    pub(crate) fn get(&mut self, url: &str, what: &str) -> Result<Value> {
        loop {
            let (bearer, fresh) = self.bearer()?;
            let response = http::Request::get(url)
                .header("accept", "application/json")
                .bearer_auth(&bearer)
                .send()?;
            if token_rejected(&response) && !fresh {
                log::info(
                    "Graph refused the kept token; getting a new one",
                    &[("tenant", &self.s.tenant)],
                );
                token::forget(&self.s);
                self.token = None;
                token::fetch(&self.s).map(|t| self.token = Some((t, true)))?;
                continue;
            }
            if !(200..300).contains(&response.status) {
                return Err(graph_failure(&response, what));
            }
            return response.json();
        }
    }

    /// The `@odata.nextLink` of a page, checked to stay on this Graph's v1.0 API (the token
    /// is sent with it).
    pub(crate) fn next_link(&self, page: &Value) -> Result<Option<String>> {
        let Some(link) = page.get("@odata.nextLink").and_then(Value::as_str) else {
            return Ok(None);
        };
        if link.starts_with(&self.url("/")) {
            Ok(Some(link.to_owned()))
        } else {
            Err(Error::upstream(format!(
                "Graph's next page link '{}' leaves {}; not following it",
                link.chars().take(200).collect::<String>(),
                self.url("")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Graph {
        Graph {
            s: Settings {
                tenant: "t".into(),
                client_id: "c".into(),
                login_base: "https://login.microsoftonline.com".into(),
                graph_base: "https://graph.microsoft.com".into(),
            },
            token: None,
        }
    }

    #[test]
    fn ids_and_upns_become_one_encoded_segment() {
        assert_eq!(
            segment("user", " alice@contoso.example ").unwrap(),
            "alice@contoso.example"
        );
        assert_eq!(
            segment("user", "bob_contoso.example#EXT#@fabrikam.onmicrosoft.com").unwrap(),
            "bob_contoso.example%23EXT%23@fabrikam.onmicrosoft.com"
        );
        assert_eq!(segment("user", "a b?c").unwrap(), "a%20b%3Fc");
        for bad in ["", "  ", "../groups/x", "a\\b", "a\nb"] {
            let e = segment("user", bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn next_links_are_followed_only_on_the_same_graph() {
        let g = graph();
        assert_eq!(g.url("/users/x"), "https://graph.microsoft.com/v1.0/users/x");
        let next = "https://graph.microsoft.com/v1.0/groups/g/members?$skiptoken=X";
        assert_eq!(
            g.next_link(&json!({"@odata.nextLink": next})).unwrap().as_deref(),
            Some(next)
        );
        assert_eq!(g.next_link(&json!({"value": []})).unwrap(), None);
        for elsewhere in [
            "https://evil.example/v1.0/groups/g/members",
            "https://graph.microsoft.com.evil.example/v1.0/x",
            "https://graph.microsoft.com/beta/groups/g/members",
        ] {
            let e = g.next_link(&json!({"@odata.nextLink": elsewhere})).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Upstream, "{elsewhere}");
        }
    }
}
