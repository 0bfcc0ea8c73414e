//! A connection to the controller for one call: logging in (and the kept session), one API
//! request with a second login when the session expired, and errors from its answers.

use crate::answer::{Envelope, cookies_of, envelope, said, vendor_message};
use crate::settings::{Flavour, Settings, settings};
use osprey_sdk::prelude::*;
use std::time::Duration;

const SET_CREDENTIALS_HINT: &str = "set them with `osprey secret set unifi username` and \
                                    `osprey secret set unifi password` (a local controller \
                                    account without two-factor authentication)";

/// A logged-in session: the cookies to send, and the CSRF token for writes.
#[derive(Serialize, Deserialize)]
struct Session {
    flavour: Flavour,
    cookie: String,
    #[serde(default)]
    csrf: Option<String>,
}

/// A connection to the controller for one call.
pub(crate) struct Controller {
    s: Settings,
    session: Option<Session>,
    /// Whether the session was opened during this call (a 401 then is not a stale session).
    fresh: bool,
}

fn credential(name: &str) -> Result<secrets::Secret> {
    match secrets::get(name) {
        Ok(v) if !v.expose().is_empty() => Ok(v),
        Ok(_) => Err(Error::denied(format!(
            "the UniFi {name} is empty; {SET_CREDENTIALS_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::NotFound => Err(Error::denied(format!(
            "no UniFi {name} is set; {SET_CREDENTIALS_HINT}"
        ))),
        Err(e) if e.kind == ErrorKind::Denied => Err(Error::denied(format!(
            "{}; grant the secrets with `osprey plugin grant unifi --requested`, then {SET_CREDENTIALS_HINT}",
            e.message
        ))),
        Err(e) => Err(e),
    }
}

impl Controller {
    fn open() -> Result<Controller> {
        Ok(Controller {
            s: settings()?,
            session: None,
            fresh: false,
        })
    }

    fn cache_key(&self) -> Option<String> {
        let key = format!("session:{}", self.s.base);
        (self.s.session_ttl > 0 && key.len() <= 512).then_some(key)
    }

    fn api_base(&self, flavour: Flavour) -> String {
        match flavour {
            Flavour::Classic => format!("{}/api/s/{}", self.s.base, self.s.site),
            Flavour::UnifiOs => format!("{}/proxy/network/api/s/{}", self.s.base, self.s.site),
        }
    }

    /// A session from the cache or a new login.
    fn ensure_session(&mut self) -> Result<()> {
        if self.session.is_some() {
            return Ok(());
        }
        if let Some(key) = self.cache_key() {
            // The cache saves logins; a cache that cannot be read costs a login, not the call.
            let cached = kv::get(&key).unwrap_or_else(|e| {
                log::warn("could not read the kept session", &[("error", &e.message)]);
                None
            });
            if let Some(bytes) = cached {
                match serde_json::from_slice::<Session>(&bytes) {
                    Ok(s) if self.s.flavour.is_none_or(|f| f == s.flavour) => {
                        self.session = Some(s);
                        self.fresh = false;
                        return Ok(());
                    }
                    _ => self.forget_session(),
                }
            }
        }
        self.login()
    }

    fn forget_session(&mut self) {
        self.session = None;
        if let Some(key) = self.cache_key()
            && let Err(e) = kv::delete(&key)
        {
            log::warn("could not drop the kept session", &[("error", &e.message)]);
        }
    }

    fn save_session(&self) {
        let (Some(key), Some(session)) = (self.cache_key(), self.session.as_ref()) else {
            return;
        };
        // A full kv store costs a login per call, not the call.
        if let Err(e) = kv::set_json(&key, session, Some(Duration::from_secs(self.s.session_ttl))) {
            log::warn("could not keep the controller session", &[("error", &e.message)]);
        }
    }

    /// `GET /` without following redirects: UniFi OS serves its console (200), a classic
    /// controller redirects to `/manage`.
    fn detect(&self) -> Result<Flavour> {
        let response = http::Request::get(format!("{}/", self.s.base))
            .header("accept", "text/html")
            .send()?;
        match response.status {
            200 => Ok(Flavour::UnifiOs),
            301 | 302 | 303 | 307 | 308 => Ok(Flavour::Classic),
            500..=599 => Err(Error::unavailable(said(&response))),
            status => Err(Error::upstream(format!(
                "could not tell whether {} is a classic UniFi controller or UniFi OS: GET / \
                 answered HTTP {status}; check the base_url setting, or set the kind with \
                 `osprey plugin config unifi controller=classic` (or controller=unifi-os)",
                self.s.base
            ))),
        }
    }

    fn login(&mut self) -> Result<()> {
        // Missing credentials are the operator's to fix before anything is sent.
        let username = credential("username")?;
        let password = credential("password")?;
        let flavour = match self.s.flavour {
            Some(f) => f,
            None => self.detect()?,
        };
        let url = format!("{}{}", self.s.base, flavour.login_path());
        let response = http::Request::post(url)
            .header("accept", "application/json")
            .json(&json!({
                "username": username.expose(),
                "password": password.expose(),
                "remember": true,
            }))
            .send()?;
        drop((username, password));

        let refused_in_body = envelope(&response).is_some_and(|e| e.meta.rc == "error");
        match response.status {
            200..=299 if !refused_in_body => {}
            200..=299 | 400 | 401 | 403 => return Err(self.login_refused(&response)),
            404 | 405 => {
                return Err(Error::upstream(format!(
                    "{}; there is no {} login there: check the base_url setting, and set \
                     `osprey plugin config unifi controller=auto` (or the other kind)",
                    said(&response),
                    if flavour == Flavour::Classic {
                        "classic controller"
                    } else {
                        "UniFi OS"
                    }
                )));
            }
            429 => {
                return Err(Error::rate_limited(format!(
                    "{}; the controller refuses logins for a while after too many",
                    said(&response)
                ))
                .retry_after(response.retry_after()));
            }
            300..=399 => {
                return Err(Error::upstream(format!(
                    "{}; redirects are not followed: check the base_url setting (https, and \
                     the port: 8443 for a classic controller, 443 for UniFi OS)",
                    said(&response)
                )));
            }
            500..=599 => return Err(Error::unavailable(said(&response))),
            _ => return Err(Error::upstream(said(&response))),
        }

        let cookies = cookies_of(&response);
        let wanted = flavour.session_cookie();
        if !cookies.iter().any(|(name, _)| name == wanted) {
            return Err(Error::upstream(format!(
                "{} accepted the login but set no '{wanted}' session cookie; is base_url a \
                 {} controller?",
                response.url,
                flavour.name()
            )));
        }
        let csrf = match flavour {
            Flavour::UnifiOs => response.header("x-csrf-token").map(str::to_owned),
            Flavour::Classic => cookies
                .iter()
                .find(|(name, _)| name == "csrf_token")
                .map(|(_, v)| v.clone()),
        };
        let cookie = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        self.session = Some(Session {
            flavour,
            cookie,
            csrf,
        });
        self.fresh = true;
        self.save_session();
        log::info(
            "logged in to the controller",
            &[("controller", &self.s.base), ("kind", flavour.name())],
        );
        Ok(())
    }

    fn login_refused(&self, response: &http::Response) -> Error {
        let message = vendor_message(response).unwrap_or_default();
        let lower = message.to_ascii_lowercase();
        if lower.contains("2fa") || lower.contains("mfa") || response.status == 499 {
            return Error::denied(format!(
                "{}: the account needs two-factor authentication, which Osprey cannot answer; \
                 create a local account without it for Osprey, then {SET_CREDENTIALS_HINT}",
                said(response)
            ));
        }
        Error::denied(format!(
            "the UniFi controller at {} refused the username or password ({}); check them, \
             then {SET_CREDENTIALS_HINT}",
            self.s.base,
            said(response)
        ))
    }

    /// Send one API request to `{api base}{path}` and return `data`. A 401 on a session from
    /// the cache means it expired: log in again and repeat the request, once.
    pub(crate) fn request(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Vec<Value>> {
        for _ in 0..2 {
            self.ensure_session()?;
            let Some(session) = self.session.as_ref() else {
                return Err(Error::internal("no session after logging in"));
            };
            let flavour = session.flavour;
            let url = format!("{}{path}", self.api_base(flavour));
            let mut request = http::Request::new(method, url)
                .header("accept", "application/json")
                .header("cookie", session.cookie.clone());
            if method != "GET"
                && let Some(token) = &session.csrf
            {
                request = request.header("x-csrf-token", token.clone());
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send()?;

            // UniFi OS may hand out a new CSRF token with any answer.
            if let Some(token) = response.header("x-updated-csrf-token").filter(|t| !t.is_empty())
                && let Some(session) = self.session.as_mut()
                && session.csrf.as_deref() != Some(token)
            {
                session.csrf = Some(token.to_owned());
                self.save_session();
            }

            let msg = envelope(&response).and_then(|e| e.meta.msg).unwrap_or_default();
            // UniFi OS answers 403 to a stale CSRF token; a new login brings a new one.
            let stale_csrf = response.status == 403
                && flavour == Flavour::UnifiOs
                && !msg.contains("NoPermission")
                && !self.fresh;
            if response.status == 401 || msg == "api.err.LoginRequired" || stale_csrf {
                if !self.fresh {
                    log::info(
                        "the controller session expired; logging in again",
                        &[("controller", &self.s.base)],
                    );
                    self.forget_session();
                    continue;
                }
                return Err(Error::denied(format!(
                    "{}; the controller refused the session it had just opened: check that the \
                     account may use the Network application on site '{}'",
                    said(&response),
                    self.s.site
                )));
            }
            return self.data_of(&response);
        }
        Err(Error::denied(format!(
            "the controller at {} refused two sessions in a row",
            self.s.base
        )))
    }

    fn data_of(&self, response: &http::Response) -> Result<Vec<Value>> {
        if (200..300).contains(&response.status) {
            let body: Envelope = response.json()?;
            if body.meta.rc == "ok" {
                return match body.data {
                    None | Some(Value::Null) => Ok(Vec::new()),
                    Some(Value::Array(items)) => Ok(items),
                    Some(other) => Ok(vec![other]),
                };
            }
        }
        Err(self.api_error(response))
    }

    /// Map an answer that is not `rc: ok` to an error kind, with the controller's message.
    fn api_error(&self, response: &http::Response) -> Error {
        let env = envelope(response);
        let msg = env.as_ref().and_then(|e| e.meta.msg.clone()).unwrap_or_default();
        let said = said(response);
        let status = response.status;
        if msg.contains("NoSiteContext") || msg.contains("InvalidSite") || msg.contains("SiteNotFound") {
            return Error::invalid_input(format!(
                "{said}; the controller has no site '{}': set the site's short name with \
                 `osprey plugin config unifi site=<name>` (as in /manage/site/<name>/)",
                self.s.site
            ));
        }
        if msg.contains("NoPermission") || status == 403 {
            return Error::denied(format!(
                "{said}; the controller account may not do this on site '{}': give it full \
                 management (administrator) rights",
                self.s.site
            ));
        }
        // The controller's own "no such object" (an envelope, not a bare 404 page).
        if msg.contains("IdInvalid") || msg.contains("NotFound") || (status == 404 && env.is_some()) {
            return Error::not_found(said);
        }
        match status {
            404 => Error::upstream(format!(
                "{said}; no such API path: check the base_url and controller settings"
            )),
            429 => Error::rate_limited(format!("{said}; retry later")).retry_after(response.retry_after()),
            500..=599 => Error::unavailable(said),
            300..=399 => Error::upstream(format!(
                "{said}; redirects are not followed: check the base_url setting"
            )),
            400 | 422 => Error::invalid_input(format!("{said}; the controller refused the request")),
            _ => Error::upstream(said),
        }
    }

    /// End the call: without a session cache, log out (best effort).
    fn close(self) {
        if self.cache_key().is_some() {
            return;
        }
        let Some(session) = self.session else { return };
        let mut request = http::Request::post(format!("{}{}", self.s.base, session.flavour.logout_path()))
            .header("accept", "application/json")
            .header("cookie", session.cookie);
        if let Some(token) = session.csrf {
            request = request.header("x-csrf-token", token);
        }
        if let Err(e) = request.send() {
            log::debug("logout failed", &[("error", &e.message)]);
        }
    }
}

/// Run `f` with a controller connection, logging out afterwards when sessions are not kept.
pub(crate) fn with_controller<T>(f: impl FnOnce(&mut Controller) -> Result<T>) -> Result<T> {
    let mut c = Controller::open()?;
    let out = f(&mut c);
    c.close();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::answer;

    fn controller() -> Controller {
        Controller {
            s: Settings::read("https://unifi.lan", |k| (k == "site").then(|| "branch".into())).unwrap(),
            session: None,
            fresh: false,
        }
    }

    #[test]
    fn the_site_api_is_under_api_s_or_proxy_network() {
        let c = controller();
        assert_eq!(c.api_base(Flavour::Classic), "https://unifi.lan/api/s/branch");
        assert_eq!(
            c.api_base(Flavour::UnifiOs),
            "https://unifi.lan/proxy/network/api/s/branch"
        );
        assert_eq!(c.cache_key().as_deref(), Some("session:https://unifi.lan"));
    }

    #[test]
    fn ok_answers_give_their_data_as_a_list() {
        let c = controller();
        let data = |body: &str| c.data_of(&answer(200, &[], body)).unwrap();
        assert_eq!(data(r#"{"meta":{"rc":"ok"},"data":[{"a":1},{"a":2}]}"#).len(), 2);
        assert_eq!(
            data(r#"{"meta":{"rc":"ok"},"data":{"a":1}}"#),
            vec![json!({"a": 1})]
        );
        assert!(data(r#"{"meta":{"rc":"ok"}}"#).is_empty());
        assert!(data(r#"{"meta":{"rc":"ok"},"data":null}"#).is_empty());
        let e = c.data_of(&answer(200, &[], "<html>")).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
    }

    #[test]
    fn errors_are_typed_by_the_controller_message_then_the_status() {
        let c = controller();
        let kind = |status: u16, body: &str| c.data_of(&answer(status, &[], body)).unwrap_err();
        let env = |msg: &str| format!(r#"{{"meta":{{"rc":"error","msg":"{msg}"}},"data":[]}}"#);

        let e = kind(400, &env("api.err.NoSiteContext"));
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert!(e.message.contains("no site 'branch'"), "{}", e.message);
        assert_eq!(kind(200, &env("api.err.NoPermission")).kind, ErrorKind::Denied);
        assert_eq!(kind(403, "").kind, ErrorKind::Denied);
        assert_eq!(kind(400, &env("api.err.IdInvalid")).kind, ErrorKind::NotFound);
        assert_eq!(kind(404, &env("api.err.Whatever")).kind, ErrorKind::NotFound);
        let e = kind(404, "<html>Not Found</html>");
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert!(e.message.contains("no such API path"), "{}", e.message);
        let e = kind(429, "");
        assert!(e.kind == ErrorKind::RateLimited && e.retryable);
        assert!(kind(503, "").retryable);
        assert!(kind(302, "").message.contains("redirects are not followed"));
        assert_eq!(
            kind(422, &env("api.err.InvalidPayload")).kind,
            ErrorKind::InvalidInput
        );
        assert_eq!(kind(418, "").kind, ErrorKind::Upstream);
    }

    #[test]
    fn a_refused_login_is_denied_and_says_when_two_factor_is_the_reason() {
        let c = controller();
        let e = c.login_refused(&answer(
            400,
            &[],
            r#"{"meta":{"rc":"error","msg":"api.err.Invalid"}}"#,
        ));
        assert!(e.kind == ErrorKind::Denied && !e.retryable);
        assert!(
            e.message.contains("refused the username or password"),
            "{}",
            e.message
        );
        let e = c.login_refused(&answer(499, &[], r#"{"code":"MFA_AUTH_REQUIRED"}"#));
        assert!(e.message.contains("two-factor"), "{}", e.message);
    }

    #[test]
    fn a_kept_session_round_trips_through_json() {
        let s = Session {
            flavour: Flavour::UnifiOs,
            cookie: "TOKEN=t".into(),
            csrf: Some("c".into()),
        };
        let back: Session = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
        assert_eq!(
            (back.flavour, back.cookie, back.csrf),
            (Flavour::UnifiOs, "TOKEN=t".into(), Some("c".into()))
        );
        let old: Session = serde_json::from_str(r#"{"flavour":"classic","cookie":"unifises=u"}"#).unwrap();
        assert_eq!(old.csrf, None);
    }
}
