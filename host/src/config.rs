//! Configuration: one TOML file, then environment variables, then command-line flags, each
//! overriding the one before. Every option is documented in README.md ("Configuration").

use crate::capability::Limits;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
}

/// Output format of the log on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Folder for the SQLite database, installed plugins, the compiled-plugin cache and the
    /// master key file.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`; default: SQLite in data_dir.
    pub database_url: Option<String>,
    /// Where installed plugins live; default: `<data_dir>/plugins`.
    pub plugins_dir: Option<PathBuf>,
    /// The master key file; default: `<data_dir>/master.key`. `OSPREY_MASTER_KEY` wins.
    pub master_key_file: Option<PathBuf>,
    /// Log filter, in `RUST_LOG` syntax (`info`, `osprey=debug`).
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Default limits of each plugin call; a grant may override them per plugin.
    pub limits: Limits,
    /// The plugin runtime.
    pub runtime: RuntimeConfig,
    /// Where playbooks live, one folder each.
    pub playbooks_dir: PathBuf,
    /// The run executor and cron triggers.
    pub runs: crate::runs::RunsConfig,
    /// Default limits of every playbook run; a playbook's `[limits]` may override them.
    pub playbook_limits: crate::playbook::ScriptLimits,
    /// The most a playbook's `[limits]` may ask for; above, the maximum is used.
    pub playbook_limits_max: crate::playbook::LimitOverrides,
    /// Alert intake: `POST /api/v1/alerts` and the syslog listeners.
    pub intake: IntakeConfig,
    /// Allow and block lists and their External Dynamic Lists (`GET /edl/NAME.txt`).
    pub lists: ListsConfig,
    /// Incident types: SLA timers, team and custom fields (`[incidents]`, see `cases.rs`).
    pub incidents: crate::cases::IncidentsConfig,
    /// Questions to people: the public address of links, escalation (`[humans]`).
    pub humans: crate::humans::HumansConfig,
    /// The web console: sessions of signed-in users (`[web]`).
    pub web: WebConfig,
    /// Outgoing mail over SMTP (`[mail]`, see `mail.rs`); off while `mail.host` is unset.
    pub mail: crate::mail::MailConfig,
}

/// Settings of the web console (`[web]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// How long a sign-in lasts; the session cookie's Max-Age.
    #[serde(with = "crate::duration::text")]
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Osprey serves plain HTTP, so
    /// set this when a TLS-terminating proxy is in front of it, as it should be.
    pub secure_cookies: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: false,
        }
    }
}

/// Who may fetch External Dynamic Lists (`GET /edl/NAME.txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EdlAuth {
    /// Anyone who can reach the server.
    None,
    /// Holders of an API token with scope `edl`, sent as `Authorization: Bearer TOKEN` or as
    /// HTTP basic auth with the token's name as user name and the token as password.
    #[default]
    Token,
}

/// Settings of lists (`[lists]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListsConfig {
    /// The most live entries of one list; adds beyond it are refused.
    pub max_entries: usize,
    /// How often the server removes expired entries (and audits it as `list.expire`).
    #[serde(with = "crate::duration::text")]
    pub expiry_interval: Duration,
    /// Who may fetch `GET /edl/NAME.txt`: `token` or `none`.
    pub edl_auth: EdlAuth,
}

impl Default for ListsConfig {
    fn default() -> Self {
        ListsConfig {
            max_entries: 50_000,
            expiry_interval: Duration::from_secs(60),
            edl_auth: EdlAuth::Token,
        }
    }
}

/// Settings of alert intake (`[intake]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeConfig {
    /// The largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// The most alerts in one request; more get 413.
    pub max_alerts_per_request: usize,
    /// Intake requests handled at once; more get 503 with Retry-After.
    pub max_in_flight: usize,
    /// Alerts committed but not yet decided by pre-processing, at most: past it, intake
    /// answers 503 with Retry-After until pre-processing catches up, so the lag stays bounded
    /// (`osprey_preprocess_waiting_alerts` and `osprey_preprocess_lag_seconds` in /metrics).
    pub max_undecided: usize,
    /// Listen for syslog on UDP at this address (one message per datagram); off if unset.
    pub syslog_udp: Option<SocketAddr>,
    /// Listen for syslog on TCP at this address (one message per line); off if unset.
    pub syslog_tcp: Option<SocketAddr>,
    /// The shortest interval a poller may have (`[[intake.poll]]`, `osprey intake poll add`).
    #[serde(with = "crate::duration::text")]
    pub poll_min_every: Duration,
    /// Pollers: plugin actions asked on a schedule for new items, each item an alert.
    pub poll: Vec<crate::poll::spec::PollConfig>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            max_body_bytes: 10 * 1024 * 1024,
            max_alerts_per_request: 10_000,
            max_in_flight: 64,
            max_undecided: 20_000,
            syslog_udp: None,
            syslog_tcp: None,
            poll_min_every: Duration::from_secs(10),
            poll: Vec::new(),
        }
    }
}

/// Settings of the plugin runtime.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// How many plugin calls may run at once (slots in the pooling allocator).
    pub max_instances: u32,
    /// The most memory any grant may give one call, in MiB (the size of a pool slot).
    pub max_memory_mib: u32,
    /// How often a running server looks for changed grants and settings.
    #[serde(with = "crate::duration::text")]
    pub policy_refresh: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 128,
            max_memory_mib: 512,
            policy_refresh: Duration::from_secs(1),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            plugins_dir: None,
            master_key_file: None,
            log: "info".into(),
            log_format: LogFormat::Text,
            limits: Limits::default(),
            runtime: RuntimeConfig::default(),
            playbooks_dir: PathBuf::from("playbooks"),
            runs: Default::default(),
            playbook_limits: Default::default(),
            playbook_limits_max: Default::default(),
            intake: Default::default(),
            lists: Default::default(),
            incidents: Default::default(),
            humans: Default::default(),
            web: Default::default(),
            mail: Default::default(),
        }
    }
}

/// The environment variables read by [`Config::load`], with what they set.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "OSPREY_CONFIG",
        "path of the config file (default: ./osprey.toml if it exists)",
    ),
    ("OSPREY_LISTEN", "listen"),
    ("OSPREY_DATA_DIR", "data_dir"),
    ("OSPREY_DATABASE_URL", "database_url"),
    ("OSPREY_PLUGINS_DIR", "plugins_dir"),
    ("OSPREY_MASTER_KEY_FILE", "master_key_file"),
    (
        "OSPREY_MASTER_KEY",
        "the master key itself, base64 (instead of a key file)",
    ),
    ("OSPREY_LOG", "log"),
    ("OSPREY_LOG_FORMAT", "log_format"),
    ("OSPREY_PLAYBOOKS_DIR", "playbooks_dir"),
];

impl Config {
    /// The defaults and maxima of playbook replays (`[playbook_limits]`,
    /// `[playbook_limits_max]`), checked.
    pub fn run_limits(&self) -> Result<crate::playbook::RunLimits, crate::playbook::limits::LimitError> {
        crate::playbook::RunLimits::new(self.playbook_limits, &self.playbook_limits_max)
    }

    /// Load from `path` (or `OSPREY_CONFIG`, or `./osprey.toml` if present), then apply
    /// environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("OSPREY_CONFIG").map(PathBuf::from);
        let path = path.map(Path::to_path_buf).or(env_path).or_else(|| {
            let default = PathBuf::from("osprey.toml");
            default.exists().then_some(default)
        });
        let mut config = match &path {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Parse one TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config
            .incidents
            .validate()
            .map_err(|e| e.to_string())
            .and_then(|()| config.humans.validate().map_err(|e| e.to_string()))
            .and_then(|()| config.mail.validate().map_err(|e| e.to_string()))
            .and_then(|()| config.runs.validate().map_err(|e| e.to_string()))
            .and_then(|()| config.run_limits().map(|_| ()).map_err(|e| e.to_string()))
            .and_then(|()| match config.intake.max_undecided {
                0 => Err("intake.max_undecided must be at least 1 (0 would refuse every alert)".to_owned()),
                _ => Ok(()),
            })
            .and_then(|()| {
                config
                    .intake
                    .poll
                    .iter()
                    .try_for_each(|p| p.check(config.intake.poll_min_every))
                    .map_err(|e| e.to_string())
            })
            .map_err(|message| ConfigError::Parse {
                path: path.to_owned(),
                message,
            })?;
        Ok(config)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("OSPREY_LISTEN") {
            self.listen = v.parse().map_err(|_| ConfigError::Env {
                var: "OSPREY_LISTEN",
                message: format!("'{v}' is not an address like 127.0.0.1:8080"),
            })?;
        }
        if let Some(v) = get("OSPREY_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("OSPREY_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("OSPREY_PLUGINS_DIR") {
            self.plugins_dir = Some(v.into());
        }
        if let Some(v) = get("OSPREY_MASTER_KEY_FILE") {
            self.master_key_file = Some(v.into());
        }
        if let Some(v) = get("OSPREY_PLAYBOOKS_DIR") {
            self.playbooks_dir = v.into();
        }
        if let Some(v) = get("OSPREY_LOG") {
            self.log = v;
        }
        if let Some(v) = get("OSPREY_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        var: "OSPREY_LOG_FORMAT",
                        message: format!("'{v}' is neither 'text' nor 'json'"),
                    });
                }
            };
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("osprey.db").display()))
    }

    /// Where installed plugins live.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugins"))
    }

    /// The master key file.
    pub fn master_key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// Where compiled plugins are cached.
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join("cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_local_and_in_the_data_dir() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://data/osprey.db");
        assert_eq!(c.plugins_dir(), PathBuf::from("data/plugins"));
        assert_eq!(c.limits.timeout, Duration::from_secs(30));
        assert_eq!(c.limits.memory_mib, 64);
        assert_eq!(c.web.session_ttl, Duration::from_secs(12 * 3600));
        assert!(!c.web.secure_cookies);
    }

    #[test]
    fn by_default_every_worker_can_call_a_plugin_at_once() {
        // Past `runtime.max_instances`, runs calling plugins together would fail as
        // `unavailable` (the server warns at start when the settings allow it).
        let c = Config::default();
        assert!(
            c.runs.workers <= c.runtime.max_instances as usize,
            "{} workers, {} plugin slots",
            c.runs.workers,
            c.runtime.max_instances
        );
    }

    #[test]
    fn pollers_in_the_file_are_checked_against_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osprey.toml");
        let poll = "[[intake.poll]]\nname = \"tickets\"\nplugin = \"servicenow\"\naction = \"list-incidents\"\nevery = \"5s\"\ninput = { limit = 50 }\n";
        std::fs::write(&path, poll).unwrap();
        let e = Config::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("every 5s is below the floor of 10s"), "{e}");
        std::fs::write(&path, format!("[intake]\npoll_min_every = \"5s\"\n{poll}")).unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.intake.poll.len(), 1);
        assert_eq!(c.intake.poll[0].input["limit"], 50);
    }

    #[test]
    fn web_section() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osprey.toml");
        std::fs::write(&path, "[web]\nsession_ttl = \"30m\"\nsecure_cookies = true\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.web.session_ttl, Duration::from_secs(1800));
        assert!(c.web.secure_cookies);
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osprey.toml");
        std::fs::write(
            &path,
            "data_dir = \"/var/lib/osprey\"\nlisten = \"0.0.0.0:9000\"\n[limits]\ntimeout = \"5s\"\n",
        )
        .unwrap();
        let mut c = Config::from_file(&path).unwrap();
        assert_eq!(c.limits.timeout, Duration::from_secs(5));
        assert_eq!(c.limits.memory_mib, 64, "unset limits keep their defaults");
        c.apply_env(|k| (k == "OSPREY_LISTEN").then(|| "127.0.0.1:1".to_string()))
            .unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:1");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/osprey"));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osprey.toml");
        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        let e = Config::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("unknown field") && e.contains("listn"), "{e}");
        let e = Config::default()
            .apply_env(|k| (k == "OSPREY_LISTEN").then(|| "nope".to_string()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("OSPREY_LISTEN") && e.contains("nope"), "{e}");
    }

    #[test]
    fn limits_of_zero_are_refused_and_maxima_cap_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osprey.toml");
        for (text, expected) in [
            (
                "[playbook_limits]\nmax_operations = 0\n",
                "limit max_operations = 0: must be above 0",
            ),
            (
                "[playbook_limits_max]\nwall_time = \"0s\"\n",
                "limit wall_time = 0s: must be above 0",
            ),
            (
                "[playbook_limits_max]\nmax_steps = 10\n",
                "a default is above the maximum",
            ),
            (
                "[runs]\nmax_unfinished_replays = 0\n",
                "runs.max_unfinished_replays must be at least 1",
            ),
            (
                "[runs]\nworkers = 18446744073709551615\n",
                "runs.workers = 18446744073709551615 is above the most a server runs (10000)",
            ),
            (
                "[intake]\nmax_undecided = 0\n",
                "intake.max_undecided must be at least 1",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = Config::from_file(&path).unwrap_err().to_string();
            assert!(e.contains(expected), "{text}: {e}");
        }
        std::fs::write(&path, "[playbook_limits_max]\nwall_time = \"1m\"\n").unwrap();
        let limits = Config::from_file(&path).unwrap().run_limits().unwrap();
        assert_eq!(limits.maxima.wall_time, std::time::Duration::from_secs(60));
    }
}
