//! The operator's settings (`base_url`, `site`, `controller`, `session_ttl_seconds`) and the
//! two kinds of controller they select between.

use crate::validation::snippet;
use osprey_sdk::prelude::*;

/// Which API the controller speaks.
#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Flavour {
    /// The UniFi Network application on its own.
    Classic,
    /// A UniFi OS console: the Network application behind `/proxy/network`.
    UnifiOs,
}

impl Flavour {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Flavour::Classic => "classic",
            Flavour::UnifiOs => "unifi-os",
        }
    }
    pub(crate) fn login_path(self) -> &'static str {
        match self {
            Flavour::Classic => "/api/login",
            Flavour::UnifiOs => "/api/auth/login",
        }
    }
    pub(crate) fn logout_path(self) -> &'static str {
        match self {
            Flavour::Classic => "/api/logout",
            Flavour::UnifiOs => "/api/auth/logout",
        }
    }
    /// The cookie that carries the session.
    pub(crate) fn session_cookie(self) -> &'static str {
        match self {
            Flavour::Classic => "unifises",
            Flavour::UnifiOs => "TOKEN",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Settings {
    /// The controller's origin, without a trailing slash.
    pub(crate) base: String,
    pub(crate) site: String,
    /// `None`: detect.
    pub(crate) flavour: Option<Flavour>,
    pub(crate) session_ttl: u64,
}

/// The settings of this call, from `osprey plugin config` over the manifest's defaults.
pub(crate) fn settings() -> Result<Settings> {
    Settings::read(&config::require("base_url")?, config::get)
}

impl Settings {
    /// Checked settings from `base_url` and the other values `get` gives by key.
    pub(crate) fn read(base_url: &str, get: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        let lower = base.to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) || base.contains(['?', '#']) {
            return Err(Error::invalid_input(format!(
                "setting 'base_url' ('{}') must be the controller's origin, such as \
             https://192.168.1.1 or https://unifi.example.lan:8443",
                snippet(&base, 200)
            )));
        }
        let site = get("site").unwrap_or_else(|| "default".into()).trim().to_owned();
        if site.is_empty()
            || site.len() > 64
            || !site
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::invalid_input(format!(
                "setting 'site' ('{}') must be the site's short name, as in /manage/site/<name>/ in \
             the controller's URL ('default' for the first site)",
                snippet(&site, 80)
            )));
        }
        let flavour = match get("controller")
            .unwrap_or_else(|| "auto".into())
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "" | "auto" => None,
            "classic" => Some(Flavour::Classic),
            "unifi-os" | "unifios" | "unifi_os" => Some(Flavour::UnifiOs),
            other => {
                return Err(Error::invalid_input(format!(
                    "setting 'controller' is '{}'; use auto, classic or unifi-os",
                    snippet(other, 40)
                )));
            }
        };
        let session_ttl = get("session_ttl_seconds")
            .unwrap_or_else(|| "1800".into())
            .trim()
            .parse()
            .map_err(|_| Error::invalid_input("setting 'session_ttl_seconds' must be a whole number"))?;
        Ok(Settings {
            base,
            site,
            flavour,
            session_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(base: &str, values: &[(&str, &str)]) -> Result<Settings> {
        let map: HashMap<String, String> = values.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Settings::read(base, |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_default_site_detection_and_half_an_hour_of_session() {
        let s = read(" https://unifi.example.lan:8443/ ", &[]).unwrap();
        assert_eq!(s.base, "https://unifi.example.lan:8443");
        assert_eq!(s.site, "default");
        assert_eq!(s.flavour, None);
        assert_eq!(s.session_ttl, 1800);
    }

    #[test]
    fn the_controller_kind_is_read_in_its_spellings() {
        for (raw, want) in [
            ("auto", None),
            ("", None),
            ("Classic", Some(Flavour::Classic)),
            ("unifi-os", Some(Flavour::UnifiOs)),
            ("unifi_os", Some(Flavour::UnifiOs)),
        ] {
            assert_eq!(
                read("https://h", &[("controller", raw)]).unwrap().flavour,
                want,
                "{raw}"
            );
        }
        let e = read("https://h", &[("controller", "edgerouter")]).unwrap_err();
        assert!(
            e.message.contains("use auto, classic or unifi-os"),
            "{}",
            e.message
        );
    }

    #[test]
    fn bad_settings_are_invalid_input_naming_the_setting() {
        for (base, values, says) in [
            ("unifi.lan", vec![], "'base_url'"),
            ("https://h/?x", vec![], "'base_url'"),
            ("https://h", vec![("site", "a/b")], "'site'"),
            ("https://h", vec![("site", " ")], "'site'"),
            (
                "https://h",
                vec![("session_ttl_seconds", "soon")],
                "'session_ttl_seconds'",
            ),
        ] {
            let e = read(base, &values).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains(says), "{says}: {}", e.message);
        }
    }

    #[test]
    fn each_kind_logs_in_and_out_at_its_own_paths_with_its_own_cookie() {
        assert_eq!(Flavour::Classic.login_path(), "/api/login");
        assert_eq!(Flavour::UnifiOs.logout_path(), "/api/auth/logout");
        assert_eq!(Flavour::Classic.session_cookie(), "unifises");
        assert_eq!(Flavour::UnifiOs.session_cookie(), "TOKEN");
        assert_eq!(
            serde_json::to_value(Flavour::UnifiOs).unwrap(),
            Flavour::UnifiOs.name()
        );
    }
}
