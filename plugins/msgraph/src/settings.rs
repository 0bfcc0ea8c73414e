//! The operator's settings: the tenant and app registration, and the two origins (the
//! identity platform and Graph), which a national cloud or a test server changes.

use osprey_sdk::prelude::*;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) tenant: String,
    pub(crate) client_id: String,
    /// Without a trailing slash.
    pub(crate) login_base: String,
    /// Without a trailing slash.
    pub(crate) graph_base: String,
}

/// The settings of this call, from `osprey plugin config` over the manifest's defaults.
pub(crate) fn settings() -> Result<Settings> {
    Settings::read(config::get)
}

impl Settings {
    pub(crate) fn read(get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let required = |key: &str, example: &str| -> Result<String> {
            get(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::invalid_input(format!(
                        "setting '{key}' is not configured; set it with \
                         `osprey plugin config msgraph {key}={example}`"
                    ))
                })
        };
        let tenant = required("tenant", "contoso.onmicrosoft.com")?;
        if !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(Error::invalid_input(format!(
                "setting 'tenant' is '{tenant}': give the directory (tenant) id or a domain \
                 such as contoso.onmicrosoft.com"
            )));
        }
        let origin = |key: &str| -> Result<String> {
            let value = required(key, "https://...")?;
            if !(value.starts_with("https://") || value.starts_with("http://")) {
                return Err(Error::invalid_input(format!(
                    "setting '{key}' is '{value}': it must be an http(s) origin such as \
                     https://graph.microsoft.com"
                )));
            }
            Ok(value.trim_end_matches('/').to_owned())
        };
        Ok(Settings {
            client_id: required("client_id", "00000000-0000-0000-0000-000000000000")?,
            login_base: origin("login_base")?,
            graph_base: origin("graph_base")?,
            tenant,
        })
    }

    /// `{login_base}/{tenant}/oauth2/v2.0/token`.
    pub(crate) fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.login_base, self.tenant)
    }

    /// The `.default` scope of this Graph: the application permissions an admin granted.
    /// Graph names its scope by the public origin even when asked through another one (a
    /// test server), except in national clouds, whose origin is the scope.
    pub(crate) fn scope(&self) -> String {
        let national =
            self.graph_base.starts_with("https://") && self.graph_base != "https://graph.microsoft.com";
        if national {
            format!("{}/.default", self.graph_base)
        } else {
            "https://graph.microsoft.com/.default".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Settings> {
        let mut map: HashMap<String, String> = [
            ("login_base", "https://login.microsoftonline.com"),
            ("graph_base", "https://graph.microsoft.com"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, v) in pairs {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        Settings::read(|k| map.get(k).cloned())
    }

    #[test]
    fn the_token_url_and_scope_follow_the_settings() {
        let s = read(&[("tenant", "contoso.onmicrosoft.com"), ("client_id", "app-1")]).unwrap();
        assert_eq!(
            s.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(s.scope(), "https://graph.microsoft.com/.default");
        let us_gov = read(&[
            ("tenant", "t1"),
            ("client_id", "app-1"),
            ("graph_base", "https://graph.microsoft.us/"),
            ("login_base", "https://login.microsoftonline.us/"),
        ])
        .unwrap();
        assert_eq!(us_gov.scope(), "https://graph.microsoft.us/.default");
        assert_eq!(
            us_gov.token_url(),
            "https://login.microsoftonline.us/t1/oauth2/v2.0/token"
        );
        let fake = read(&[
            ("tenant", "t1"),
            ("client_id", "app-1"),
            ("graph_base", "http://127.0.0.1:9"),
        ])
        .unwrap();
        assert_eq!(fake.scope(), "https://graph.microsoft.com/.default");
    }

    #[test]
    fn missing_or_odd_settings_say_how_to_set_them() {
        let e = read(&[("client_id", "app-1")]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(
            e.message.contains("osprey plugin config msgraph tenant="),
            "{}",
            e.message
        );
        let e = read(&[("tenant", "t1")]).unwrap_err();
        assert!(e.message.contains("client_id"), "{}", e.message);
        let e = read(&[("tenant", "a/b"), ("client_id", "x")]).unwrap_err();
        assert!(e.message.contains("'a/b'"), "{}", e.message);
        let e = read(&[("tenant", "t"), ("client_id", "x"), ("graph_base", "graph")]).unwrap_err();
        assert!(e.message.contains("graph_base"), "{}", e.message);
    }
}
