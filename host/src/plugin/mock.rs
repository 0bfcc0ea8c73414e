//! Mock mode: a plugin's actions answered from canned cases (`[[mock]]` tables, as playbook
//! tests write them, matched by `playbook::testing`'s one matcher) and/or from data generated
//! from the action's output schema (`fake_data.rs`). No instance is started and nothing is
//! sent: the input is still checked against the action's input schema, and every answer is
//! one the output schema accepts (cases are checked when the mock is set).
//!
//! The mock is stored (`store/plugin_mocks.rs`) and part of a plugin's [`Policy`], so it
//! survives restarts and running servers pick it up as they pick up grant changes.

use super::{CallError, CallOutcome, ErrorKind, LoadedPlugin, PluginError, Runtime, call, fake_data};
use crate::playbook::testing::{Mock, MockCases, take_answer};
use crate::store::StoreError;
use crate::store::audit::Actor;
use crate::store::plugin_mocks::PluginMock;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The largest cases file read; a larger one is refused before it is read.
pub const MAX_CASES_BYTES: u64 = 1024 * 1024;
/// The most cases one file may hold.
pub const MAX_CASES: usize = 1000;

/// Why a mock could not be set.
#[derive(Debug, Error)]
pub enum MockError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the cases file is larger than {max} bytes; keep it under that")]
    TooLarge { max: u64 },
    #[error("the cases file is not TOML of [[mock]] tables: line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("the cases file has {0} cases; at most {MAX_CASES} are taken")]
    TooMany(usize),
    #[error("the cases file has no [[mock]] case; give at least one, or generate data instead")]
    NoCases,
    #[error("give cases, ask to generate data, or both")]
    Nothing,
    #[error("case {n} ({plugin}.{action}): {message}")]
    Case {
        n: usize,
        plugin: String,
        action: String,
        message: String,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The mock in force for one plugin, as its calls are answered.
#[derive(Debug)]
pub struct MockMode {
    /// What was set, by whom and when.
    pub set: PluginMock,
    /// The cases, each with the calls it answered since this server loaded it (`times`).
    cases: Mutex<Vec<(Mock, u32)>>,
    /// Why the stored cases no longer fit the plugin (it was upgraded since): then every call
    /// fails, rather than reaching the vendor while the operator believes it is mocked.
    broken: Option<String>,
}

type Validators = BTreeMap<String, (jsonschema::Validator, jsonschema::Validator)>;

impl MockMode {
    /// The stored mock of `plugin`, its cases checked against the plugin's schemas.
    pub(super) fn from_stored(plugin: &str, validators: &Validators, set: PluginMock) -> MockMode {
        let (cases, broken) = match set
            .cases_toml
            .as_deref()
            .map(|t| parse_cases(plugin, validators, t))
        {
            None => (Vec::new(), None),
            Some(Ok(cases)) => (cases, None),
            Some(Err(e)) => (Vec::new(), Some(e.to_string())),
        };
        MockMode {
            set,
            cases: Mutex::new(cases.into_iter().map(|c| (c, 0)).collect()),
            broken,
        }
    }

    /// Answer `action(input)` of `plugin` from the cases or the generator.
    fn answer(&self, plugin: &LoadedPlugin, action: &str, input: &Value) -> Result<Value, CallError> {
        let name = plugin.name();
        if let Some(why) = &self.broken {
            return Err(CallError::new(
                ErrorKind::Internal,
                format!(
                    "plugin '{name}' is in mock mode, but its cases no longer fit it ({why}); set them again with `osprey plugin mock {name} --cases FILE`, or `--off`"
                ),
            ));
        }
        let output_validator = call::check_input(plugin, action, input)?;
        let canned = {
            let mut cases = self.cases.lock().unwrap_or_else(|p| p.into_inner());
            take_answer(&mut cases, name, action, input)
        };
        match canned {
            Some(Ok(output)) => Ok(output),
            Some(Err(failure)) => {
                // The kind was checked when the mock was set.
                let kind = serde_json::from_value(Value::String(failure.kind.clone()))
                    .unwrap_or(ErrorKind::Internal);
                let mut e = CallError::new(kind, failure.message);
                e.retryable = failure.retryable;
                e.retry_after = failure
                    .retry_after_ms
                    .filter(|_| failure.retryable)
                    .map(Duration::from_millis);
                Err(e)
            }
            None if self.set.generate => {
                let schema = plugin
                    .description
                    .actions
                    .iter()
                    .find(|a| a.name == action)
                    .map(|a| &a.output_schema)
                    .unwrap_or(&Value::Bool(true));
                let output = fake_data::generate(schema, seed(name, action, input));
                let problems = super::call::schema_problems(output_validator, &output, 5);
                if problems.is_empty() {
                    Ok(output)
                } else {
                    Err(CallError::new(
                        ErrorKind::Internal,
                        format!(
                            "mock mode could not generate an output of {name}/{action} that its output schema accepts ({problems}); add a case for this input with --cases"
                        ),
                    ))
                }
            }
            None => {
                let mut shown = input.to_string();
                super::host::truncate(&mut shown, 200);
                Err(CallError::new(
                    ErrorKind::Internal,
                    format!(
                        "plugin '{name}' is in mock mode and no case answers {name}/{action} with input {shown}; add a [[mock]] case for it, or also --generate"
                    ),
                ))
            }
        }
    }
}

/// The generator's seed for one call: the same call gets the same data.
fn seed(plugin: &str, action: &str, input: &Value) -> u64 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [plugin, action, &input.to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
}

/// Read a cases file, refusing one over [`MAX_CASES_BYTES`] before reading it (and stopping
/// there if it grows meanwhile).
pub fn read_cases_file(path: &Path) -> Result<String, MockError> {
    let io = |source| MockError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() > MAX_CASES_BYTES {
        return Err(MockError::TooLarge { max: MAX_CASES_BYTES });
    }
    let mut text = String::new();
    file.take(MAX_CASES_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_CASES_BYTES {
        return Err(MockError::TooLarge { max: MAX_CASES_BYTES });
    }
    Ok(text)
}

/// The cases in `text`, each checked against `plugin`: its name, an action it has, an error
/// kind of the contract, and an output its schema accepts, at most 64 levels deep.
fn parse_cases(plugin: &str, validators: &Validators, text: &str) -> Result<Vec<Mock>, MockError> {
    if text.len() as u64 > MAX_CASES_BYTES {
        return Err(MockError::TooLarge { max: MAX_CASES_BYTES });
    }
    // The TOML parser bounds its own recursion; the values are checked below.
    let cases: MockCases = toml::from_str(text).map_err(|e| MockError::Parse {
        line: e
            .span()
            .map(|s| crate::playbook::meta::line_of(text, s.start))
            .unwrap_or(0),
        message: e.message().to_owned(),
    })?;
    if cases.mocks.is_empty() {
        return Err(MockError::NoCases);
    }
    if cases.mocks.len() > MAX_CASES {
        return Err(MockError::TooMany(cases.mocks.len()));
    }
    for (i, m) in cases.mocks.iter().enumerate() {
        let bad = |message: String| MockError::Case {
            n: i + 1,
            plugin: m.plugin.clone(),
            action: m.action.clone(),
            message,
        };
        if m.plugin != plugin {
            return Err(bad(format!(
                "this file mocks plugin '{plugin}', not '{}'",
                m.plugin
            )));
        }
        if let Some(problem) = m.problem() {
            return Err(bad(problem));
        }
        let Some((_, output_validator)) = validators.get(&m.action) else {
            let known: Vec<&str> = validators.keys().map(String::as_str).collect();
            return Err(bad(format!(
                "plugin '{plugin}' has no action '{}'; it has: {}",
                m.action,
                known.join(", ")
            )));
        };
        for v in m
            .when
            .iter()
            .map(|w| Value::Object(w.clone()))
            .chain(m.output.clone())
        {
            crate::nesting::check(&v, crate::nesting::MAX_DEPTH).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(e) = &m.error
            && serde_json::from_value::<ErrorKind>(Value::String(e.kind.clone())).is_err()
        {
            return Err(bad(format!(
                "error kind '{}' is not one of invalid-input, not-found, denied, unavailable, rate-limited, upstream, timeout, limit-exceeded, internal",
                e.kind
            )));
        }
        if m.error.is_none() {
            let output = m
                .output
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default()));
            let problems = super::call::schema_problems(output_validator, &output, 5);
            if !problems.is_empty() {
                return Err(bad(format!(
                    "its output does not match the action's output schema: {problems}"
                )));
            }
        }
    }
    Ok(cases.mocks)
}

impl LoadedPlugin {
    /// The mock in force, if the plugin is in mock mode.
    pub fn mock(&self) -> Option<PluginMock> {
        self.policy().mock.as_ref().map(|m| m.set.clone())
    }
}

impl Runtime {
    /// Put the installed plugin `name` in mock mode: its actions answer from `cases` (the
    /// text of a cases file) and, if `generate`, with generated data for what no case
    /// matches. Checked against the plugin, stored, audited, and in force at once here (and
    /// on running servers when they next look).
    pub async fn set_mock(
        &self,
        name: &str,
        cases: Option<&str>,
        generate: bool,
        actor: &Actor,
    ) -> Result<PluginMock, MockError> {
        let plugin = self.get(name)?;
        if cases.is_none() && !generate {
            return Err(MockError::Nothing);
        }
        if let Some(text) = cases {
            parse_cases(name, &plugin.validators, text)?;
        }
        let set = self
            .inner
            .store
            .set_plugin_mock(name, cases, generate, actor)
            .await?;
        self.reload_policies_if_changed(false).await?;
        Ok(set)
    }

    /// Take `name` out of mock mode; the mock taken off, or `None` if it was not mocked.
    pub async fn clear_mock(&self, name: &str, actor: &Actor) -> Result<Option<PluginMock>, MockError> {
        let was = self.inner.store.clear_plugin_mock(name, actor).await?;
        self.reload_policies_if_changed(false).await?;
        Ok(was)
    }

    /// Answer a call of a mocked plugin, as [`Runtime::call`] does (`None`: not mocked).
    pub(super) fn call_mocked(
        &self,
        plugin: &LoadedPlugin,
        action: &str,
        input: &Value,
    ) -> Option<Result<CallOutcome, CallError>> {
        let policy = plugin.policy();
        let mock = policy.mock.as_ref()?;
        let started = Instant::now();
        let answered = mock.answer(plugin, action, input);
        let duration = started.elapsed();
        let what = format!("{}/{action}", plugin.name());
        Some(match answered {
            Ok(output) => {
                tracing::debug!(call = %what, "mocked plugin call answered");
                Ok(CallOutcome {
                    output,
                    duration,
                    http: Vec::new(),
                    mocked: true,
                })
            }
            Err(mut e) => {
                tracing::warn!(call = %what, kind = %e.kind, error = %e.message, "mocked plugin call failed");
                e.duration = duration;
                e.mocked = true;
                Err(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn validators() -> Validators {
        let input = json!({"type": "object", "required": ["ip"], "properties": {"ip": {"type": "string"}}});
        let output = json!({"type": "object", "required": ["ip"], "properties": {
            "ip": {"type": "string"}, "country": {"type": "string", "maxLength": 2}}});
        let mut v = BTreeMap::new();
        v.insert(
            "lookup".to_owned(),
            (
                jsonschema::validator_for(&input).unwrap(),
                jsonschema::validator_for(&output).unwrap(),
            ),
        );
        v
    }

    const CASES: &str = r#"
[[mock]]
plugin = "ipinfo"
action = "lookup"
when = { ip = "203.0.113.7" }
output = { ip = "203.0.113.7", country = "NL" }

[[mock]]
plugin = "ipinfo"
action = "lookup"
error = { kind = "rate-limited", message = "slow down", retryable = true }
"#;

    #[test]
    fn cases_parse_and_match_with_the_playbook_tests_matcher() {
        let cases = parse_cases("ipinfo", &validators(), CASES).unwrap();
        let mut used: Vec<(Mock, u32)> = cases.into_iter().map(|c| (c, 0)).collect();
        let hit = take_answer(&mut used, "ipinfo", "lookup", &json!({"ip": "203.0.113.7"}));
        assert_eq!(hit.unwrap().unwrap()["country"], "NL");
        let other = take_answer(&mut used, "ipinfo", "lookup", &json!({"ip": "8.8.8.8"}));
        assert_eq!(other.unwrap().unwrap_err().kind, "rate-limited");
        assert!(take_answer(&mut used, "ipinfo", "whois", &json!({})).is_none());
    }

    #[test]
    fn cases_that_do_not_fit_the_plugin_are_refused_with_the_reason() {
        let v = validators();
        let refused = |text: &str| parse_cases("ipinfo", &v, text).unwrap_err().to_string();
        let e = refused(
            "[[mock]]\nplugin = \"ipinfo\"\naction = \"lookup\"\noutput = { ip = \"1.2.3.4\", country = \"Netherlands\" }\n",
        );
        assert!(
            e.contains("case 1") && e.contains("output schema") && e.contains("country"),
            "{e}"
        );
        let e = refused("[[mock]]\nplugin = \"virustotal\"\naction = \"lookup\"\n");
        assert!(e.contains("not 'virustotal'"), "{e}");
        let e = refused("[[mock]]\nplugin = \"ipinfo\"\naction = \"whois\"\noutput = {}\n");
        assert!(e.contains("no action 'whois'") && e.contains("lookup"), "{e}");
        let e = refused(
            "[[mock]]\nplugin = \"ipinfo\"\naction = \"lookup\"\nerror = { kind = \"oops\", message = \"x\", retryable = false }\n",
        );
        assert!(e.contains("'oops'"), "{e}");
        let e = refused(
            "[[mock]]\nplugin = \"ipinfo\"\naction = \"lookup\"\noutput = { ip = \"x\" }\nerror = { kind = \"internal\", message = \"x\", retryable = false }\n",
        );
        assert!(e.contains("both output and error"), "{e}");
        let e = refused("[[mock]]\nplugin = \"ipinfo\"\nactoin = \"lookup\"\n");
        assert!(e.contains("line 3"), "{e}");
        assert!(matches!(
            parse_cases("ipinfo", &v, "").unwrap_err(),
            MockError::NoCases
        ));
    }

    #[test]
    fn a_deep_or_huge_cases_file_is_refused() {
        let v = validators();
        // Nested far deeper than values may be: refused by the parser or the depth check,
        // never a stack overflow.
        let deep = format!(
            "[[mock]]\nplugin = \"ipinfo\"\naction = \"lookup\"\noutput = {{ ip = \"x\", deep = {}1{} }}\n",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert!(parse_cases("ipinfo", &v, &deep).is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.toml");
        std::fs::write(&path, vec![b'#'; MAX_CASES_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            read_cases_file(&path).unwrap_err(),
            MockError::TooLarge { .. }
        ));
        let many = "[[mock]]\nplugin = \"ipinfo\"\naction = \"lookup\"\n".repeat(MAX_CASES + 1);
        assert!(matches!(
            parse_cases("ipinfo", &v, &many).unwrap_err(),
            MockError::TooMany(_)
        ));
    }

    #[test]
    fn stored_cases_that_no_longer_fit_break_the_mock_instead_of_reaching_the_vendor() {
        let stored = |cases: &str| PluginMock {
            plugin: "ipinfo".into(),
            cases_toml: Some(cases.into()),
            cases_digest: Some("00".into()),
            generate: true,
            set_by: "cli:test".into(),
            set_at: 0,
        };
        let fits = MockMode::from_stored("ipinfo", &validators(), stored(CASES));
        assert!(fits.broken.is_none());
        assert_eq!(fits.cases.lock().unwrap().len(), 2);
        // An upgrade removed the action the cases answer.
        let gone = MockMode::from_stored("ipinfo", &BTreeMap::new(), stored(CASES));
        let why = gone.broken.expect("broken");
        assert!(why.contains("no action 'lookup'"), "{why}");
    }

    #[test]
    fn the_seed_depends_on_the_whole_call() {
        let a = seed("ipinfo", "lookup", &json!({"ip": "1.1.1.1"}));
        assert_eq!(a, seed("ipinfo", "lookup", &json!({"ip": "1.1.1.1"})));
        assert_ne!(a, seed("ipinfo", "lookup", &json!({"ip": "1.1.1.2"})));
        assert_ne!(a, seed("ipinfo", "whois", &json!({"ip": "1.1.1.1"})));
    }
}
