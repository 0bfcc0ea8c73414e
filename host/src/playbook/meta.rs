//! `playbook.toml`: a playbook's name, inputs, triggers, the plugins it uses, and its limits.
//! Every mistake is reported with the file, the line, and what is wrong.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// The metadata file's name inside a playbook folder.
pub const META_FILE: &str = "playbook.toml";
/// The script's file name inside a playbook folder.
pub const SCRIPT_FILE: &str = "playbook.rhai";

/// A parsed and validated `playbook.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Lower-case letters, digits and dashes.
    pub name: String,
    pub description: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// The plugins the script calls.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Default SLA of what the playbook opens, such as "4h".
    #[serde(default, with = "crate::duration::opt_text")]
    pub sla: Option<Duration>,
    /// Analyst minutes one run saves (for the dashboard's time-saved estimate).
    #[serde(default)]
    pub minutes_saved: Option<u32>,
    /// Named inputs.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputSpec>,
    /// What starts a run; a playbook with none can be started by hand only.
    #[serde(default)]
    pub triggers: Vec<Spanned<Trigger>>,
    /// Limits that differ from the defaults.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// `[request]`: people start the playbook from a request form whose fields are its
    /// inputs (see [`RequestForm`]).
    #[serde(default)]
    pub request: Option<RequestForm>,
    /// `[[chart]]`: charts over the points the script records (`chart.rs`).
    #[serde(default, rename = "chart")]
    pub charts: Vec<Spanned<super::chart::ChartSpec>>,
    /// The input names in the order the file declares them (the fields of a request form).
    #[serde(skip)]
    pub input_order: Vec<String>,
}

/// `[request]` in `playbook.toml`: the playbook is a form end users fill in (such as "allow
/// this domain for 7 days because ..."); its inputs are the form's fields, and the script
/// sees who asked as `requester`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestForm {
    /// What the form is called, such as "Allow a domain".
    pub title: String,
    /// A few words under the title.
    #[serde(default)]
    pub description: String,
    /// The roles whose (enabled) members may make the request; empty: anyone allowed to
    /// start requests.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl RequestForm {
    /// Whether a user with `roles` may make this request: an enabled user (not `disabled`),
    /// in one of the form's roles when it names some.
    pub fn allows(&self, roles: &[String], disabled: bool) -> bool {
        roles_allow(&self.roles, roles, disabled)
    }
}

/// The one rule of who may make a request open to `open_to`: an enabled user with one of
/// those roles (any role, when it names none).
pub(crate) fn roles_allow(open_to: &[String], roles: &[String], disabled: bool) -> bool {
    !disabled && (open_to.is_empty() || open_to.iter().any(|r| roles.contains(r)))
}

fn default_version() -> String {
    "0.1.0".into()
}

/// One input of a playbook.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type")]
    pub kind: InputType,
    #[serde(default)]
    pub description: String,
    /// Required unless it has a default; `required = false` makes it optional.
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub default: Option<serde_json::Value>,
}

impl InputSpec {
    /// Whether a run must be given this input: it has no default and is not `required = false`.
    pub fn is_required(&self) -> bool {
        self.default.is_none() && self.required.unwrap_or(true)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

/// What starts a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// Started by hand (`osprey playbook run`) or a form.
    Manual,
    /// A cron schedule, five fields (minute hour day-of-month month day-of-week) or six with
    /// seconds first.
    Cron {
        schedule: String,
        /// IANA time zone, such as "Europe/London" (written `timezone` or `zone`); default:
        /// the server's `runs.timezone` (UTC unless set). Daylight saving time is the zone's.
        #[serde(default, alias = "zone")]
        timezone: Option<String>,
        /// What to do about occurrences missed while no server ran.
        #[serde(default)]
        missed: MissedPolicy,
        /// The input of each run.
        #[serde(default)]
        input: serde_json::Map<String, serde_json::Value>,
    },
    /// An alert matching a Rhai expression over `alert` (wired up by alert intake).
    Alert {
        #[serde(rename = "match")]
        matches: String,
    },
    /// An SLA timer breaching: of an incident (`acknowledge`, `resolve`) or of a task (`due`).
    /// The run sees the incident as `incident` and the breach as `breach`
    /// (`timer`, `task`, `due_at`, `late_ms`).
    Sla {
        /// Which timers; default all three.
        #[serde(default = "all_timers")]
        timers: Vec<SlaTimerName>,
        /// A Rhai expression over `incident` and `breach`; default: every breach.
        #[serde(default, rename = "match")]
        matches: Option<String>,
    },
}

impl Trigger {
    /// A few words for lists: `manual`, `cron "0 * * * *"`, `alert`, `sla acknowledge/resolve`.
    pub fn summary(&self) -> String {
        match self {
            Trigger::Manual => "manual".to_owned(),
            Trigger::Cron { schedule, .. } => format!("cron \"{schedule}\""),
            Trigger::Alert { .. } => "alert".to_owned(),
            Trigger::Sla { timers, .. } => format!(
                "sla {}",
                timers.iter().map(|t| t.as_str()).collect::<Vec<_>>().join("/")
            ),
        }
    }
}

/// The SLA timers a trigger can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlaTimerName {
    Acknowledge,
    Resolve,
    Due,
}

impl SlaTimerName {
    pub fn as_str(&self) -> &'static str {
        match self {
            SlaTimerName::Acknowledge => "acknowledge",
            SlaTimerName::Resolve => "resolve",
            SlaTimerName::Due => "due",
        }
    }
}

fn all_timers() -> Vec<SlaTimerName> {
    vec![
        SlaTimerName::Acknowledge,
        SlaTimerName::Resolve,
        SlaTimerName::Due,
    ]
}

/// Occurrences of a schedule missed while no server was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissedPolicy {
    /// Fire once for all that were missed, then go on with the schedule (the default, like
    /// systemd's `Persistent=true`).
    #[default]
    Once,
    /// Forget them and wait for the next occurrence.
    Skip,
}

pub use super::limits::LimitOverrides;

/// A metadata file that could not be used; the message names the file, the line and what
/// is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct MetaError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Meta {
    /// Read and validate `dir/playbook.toml`.
    pub fn load(dir: &Path) -> Result<Meta, MetaError> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| MetaError {
            path: path.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Meta::parse(&path, &text)
    }

    /// Parse and validate the text of a metadata file.
    pub fn parse(path: &Path, text: &str) -> Result<Meta, MetaError> {
        let err = |line: Option<usize>, message: String| MetaError {
            path: path.to_owned(),
            line,
            message,
        };
        let mut meta: Meta = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            err(line, e.message().to_owned())
        })?;
        let at_line = |line: usize, m: String| err(Some(line), m);
        let key_line = |key: &str| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| i + 1)
        };
        crate::names::check("playbook", &meta.name).map_err(|m| err(key_line("name"), m.to_string()))?;
        for p in &meta.plugins {
            crate::names::check("plugin", p).map_err(|m| err(key_line("plugins"), m.to_string()))?;
        }
        meta.limits
            .validate()
            .map_err(|e| err(key_line("[limits]"), e.to_string()))?;
        for (name, spec) in &meta.inputs {
            if !is_identifier(name) {
                return Err(err(
                    key_line(&format!("[inputs.{name}")),
                    format!("input name '{name}' must be a Rhai identifier (letters, digits, '_')"),
                ));
            }
            if let Some(d) = &spec.default
                && !spec.kind.accepts(d)
            {
                return Err(err(
                    key_line(&format!("[inputs.{name}")),
                    format!("the default of input '{name}' is not of type {:?}", spec.kind),
                ));
            }
        }
        for t in &meta.triggers {
            let line = line_of(text, t.span().start);
            match t.get_ref() {
                Trigger::Cron {
                    schedule, timezone, ..
                } => {
                    super::cron::parse_cron(schedule)
                        .map_err(|e| at_line(line, format!("cron schedule '{schedule}': {e}")))?;
                    if let Some(tz) = timezone {
                        tz.parse::<chrono_tz::Tz>().map_err(|_| {
                            at_line(
                                line,
                                format!("'{tz}' is not an IANA time zone (such as Europe/London)"),
                            )
                        })?;
                    }
                }
                Trigger::Alert { matches } => {
                    super::engine::check_expression(matches)
                        .map_err(|e| at_line(line, format!("alert match expression: {e}")))?;
                }
                Trigger::Sla { matches, .. } => {
                    if let Some(m) = matches {
                        super::engine::check_expression(m)
                            .map_err(|e| at_line(line, format!("sla match expression: {e}")))?;
                    }
                }
                Trigger::Manual => {}
            }
        }
        if let Some(form) = &meta.request {
            let line = key_line("[request]");
            if form.title.trim().is_empty() || form.title.chars().count() > 200 {
                return Err(err(
                    line,
                    "[request] needs a `title` (what the form is called), at most 200 characters".into(),
                ));
            }
            for r in &form.roles {
                crate::names::check("role", r).map_err(|m| err(line, format!("[request] roles: {m}")))?;
            }
            // A request form is started by the person who fills it in: its runs have a
            // requester, which runs started by a schedule, an alert or a breach would not.
            for t in &meta.triggers {
                let kind = match t.get_ref() {
                    Trigger::Manual => continue,
                    Trigger::Cron { .. } => "cron",
                    Trigger::Alert { .. } => "alert",
                    Trigger::Sla { .. } => "sla",
                };
                return Err(at_line(
                    line_of(text, t.span().start),
                    format!(
                        "a playbook with [request] is started from its form: its triggers may only be manual \
                         (or none), not {kind}; make a separate playbook for that trigger"
                    ),
                ));
            }
        }
        super::chart::check_all(meta.charts.iter().map(|c| c.get_ref()))
            .map_err(|(i, e)| at_line(line_of(text, meta.charts[i].span().start), e.to_string()))?;
        meta.input_order = input_order(text, &meta.inputs);
        Ok(meta)
    }

    /// The inputs in the order the file declares them.
    pub fn inputs_in_order(&self) -> impl Iterator<Item = (&str, &InputSpec)> {
        self.input_order
            .iter()
            .filter_map(|n| self.inputs.get_key_value(n))
            .chain(self.inputs.iter().filter(|(n, _)| !self.input_order.contains(n)))
            .map(|(n, spec)| (n.as_str(), spec))
    }

    /// The cron triggers, with their index among all triggers.
    pub fn cron_triggers(&self) -> impl Iterator<Item = (usize, &Trigger)> {
        self.triggers
            .iter()
            .enumerate()
            .map(|(i, t)| (i, t.get_ref()))
            .filter(|(_, t)| matches!(t, Trigger::Cron { .. }))
    }

    /// Check `input` against the declared inputs and fill in defaults. Unknown keys and
    /// wrong types are errors that name the input.
    pub fn resolve_input(
        &self,
        input: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, InputError> {
        let mut out = serde_json::Map::new();
        for key in input.keys() {
            if !self.inputs.contains_key(key) {
                return Err(InputError::Unknown {
                    playbook: self.name.clone(),
                    key: key.clone(),
                    known: self.inputs.keys().cloned().collect(),
                });
            }
        }
        for (name, spec) in &self.inputs {
            match input.get(name).or(spec.default.as_ref()) {
                Some(v) if spec.kind.accepts(v) => {
                    out.insert(name.clone(), v.clone());
                }
                Some(v) => {
                    return Err(InputError::WrongType {
                        name: name.clone(),
                        kind: spec.kind,
                        value: v.clone(),
                    });
                }
                None if spec.required.unwrap_or(true) => {
                    return Err(InputError::Required {
                        name: name.clone(),
                        description: spec.description.clone(),
                    });
                }
                None => {}
            }
        }
        Ok(out)
    }
}

/// Why a run's input does not fit the playbook's inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("playbook '{playbook}' has no input '{key}'; its inputs are: {}", known_inputs(.known))]
    Unknown {
        playbook: String,
        key: String,
        known: Vec<String>,
    },
    #[error("input '{name}' must be of type {kind:?}, not {value}")]
    WrongType {
        name: String,
        kind: InputType,
        value: serde_json::Value,
    },
    #[error("input '{name}' is required: {description}")]
    Required { name: String, description: String },
}

fn known_inputs(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

impl InputType {
    fn accepts(&self, v: &serde_json::Value) -> bool {
        use serde_json::Value as V;
        match self {
            InputType::String => v.is_string(),
            InputType::Integer => v.is_i64() || v.is_u64(),
            InputType::Number => v.is_number(),
            InputType::Boolean => v.is_boolean(),
            InputType::Object => matches!(v, V::Object(_)),
            InputType::Array => matches!(v, V::Array(_)),
        }
    }
}

/// The names of `inputs` in the order `text` declares them.
fn input_order(text: &str, inputs: &BTreeMap<String, InputSpec>) -> Vec<String> {
    #[derive(Deserialize)]
    struct Positions {
        #[serde(default)]
        inputs: BTreeMap<String, Spanned<toml::Value>>,
    }
    let Ok(found) = toml::from_str::<Positions>(text) else {
        return inputs.keys().cloned().collect();
    };
    let mut named: Vec<(usize, String)> = found
        .inputs
        .into_iter()
        .map(|(name, v)| (v.span().start, name))
        .collect();
    named.sort();
    named.into_iter().map(|(_, name)| name).collect()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Meta, MetaError> {
        Meta::parse(Path::new("playbooks/x/playbook.toml"), text)
    }

    #[test]
    fn a_full_playbook_toml_parses() {
        let m = parse(
            r#"
name = "bonusly-month-end"
description = "Give unspent points away"
plugins = ["bonusly"]
sla = "4h"
minutes_saved = 10

[inputs.amount]
type = "integer"
default = 10

[[triggers]]
kind = "cron"
schedule = "*/30 9-14 30 * *"
timezone = "Europe/London"

[[triggers]]
kind = "manual"

[limits]
max_operations = 5000
wall_time = "2s"
"#,
        )
        .unwrap();
        assert_eq!(m.cron_triggers().count(), 1);
        assert_eq!(m.limits.wall_time, Some(Duration::from_secs(2)));
        let input = m.resolve_input(&serde_json::Map::new()).unwrap();
        assert_eq!(input["amount"], 10);
    }

    #[test]
    fn a_cron_zone_is_written_zone_or_timezone() {
        for key in ["zone", "timezone"] {
            let text = format!(
                "name = \"x\"\ndescription = \"d\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"*/30 9-14 30 * *\"\n{key} = \"Europe/London\"\n"
            );
            let m = parse(&text).unwrap();
            let zone = m.cron_triggers().find_map(|(_, t)| match t {
                Trigger::Cron { timezone, .. } => timezone.clone(),
                _ => None,
            });
            assert_eq!(zone.as_deref(), Some("Europe/London"), "{key}");
        }
        let none = parse(
            "name = \"x\"\ndescription = \"d\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 9 * * *\"\n",
        )
        .unwrap();
        assert!(
            none.cron_triggers()
                .all(|(_, t)| matches!(t, Trigger::Cron { timezone: None, .. })),
            "no zone: the server's default (UTC unless runs.timezone says otherwise)"
        );
    }

    #[test]
    fn errors_carry_the_line_and_the_reason() {
        let cases = [
            (
                "name = \"x\"\ndescription = \"d\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"61 * * * *\"\n",
                3,
                "cron schedule",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"* * * * *\"\ntimezone = \"Mars/Olympus\"\n",
                3,
                "IANA",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[[triggers]]\nkind = \"cron\"\nschedule = \"* * * * *\"\nzone = \"Europe/Londres\"\n",
                3,
                "'Europe/Londres' is not an IANA time zone",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\nsla = \"soon\"\n",
                3,
                "not a duration",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\ncolour = 1\n",
                3,
                "unknown field",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n\n[[triggers]]\nkind = \"alert\"\nmatch = \"alert.x ==\"\n",
                4,
                "alert match",
            ),
            ("name = \"Bad\"\ndescription = \"d\"\n", 1, "lower-case"),
            (
                "name = \"x\"\ndescription = \"d\"\n[[chart]]\nname = \"a\"\ntitle = \"A\"\nseries = \"s\"\nkind = \"line\"\n\n[[chart]]\nname = \"b\"\ntitle = \"B\"\nseries = \"s\"\nkind = \"top\"\n",
                9,
                "chart 'b': a top chart needs `group`",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[[chart]]\nname = \"a\"\ntitle = \"A\"\nseries = \"s\"\nkind = \"pie\"\n",
                7,
                "unknown variant `pie`",
            ),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, Some(line), "{needle}: {e}");
            let shown = e.to_string();
            assert!(shown.contains(needle), "{needle}: {shown}");
            assert!(
                shown.starts_with(&format!("playbooks/x/playbook.toml:{line}:")),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_request_form_parses_with_its_fields_in_order() {
        let m = parse(
            r#"
name = "allow-domain-request"
description = "d"

[request]
title = "Allow a domain"
description = "For a few days"
roles = ["staff", "analyst"]

[inputs.domain]
type = "string"
description = "the domain"

[inputs.days]
type = "integer"
default = 7

[inputs.reason]
type = "string"

[[triggers]]
kind = "manual"
"#,
        )
        .unwrap();
        let form = m.request.as_ref().unwrap();
        assert_eq!(form.title, "Allow a domain");
        assert_eq!(form.roles, vec!["staff", "analyst"]);
        let order: Vec<&str> = m.inputs_in_order().map(|(n, _)| n).collect();
        assert_eq!(order, vec!["domain", "days", "reason"]);
        assert!(m.inputs["domain"].is_required() && !m.inputs["days"].is_required());

        let roles = |roles: &[&str]| -> Vec<String> { roles.iter().map(|r| r.to_string()).collect() };
        assert!(form.allows(&roles(&["staff"]), false));
        assert!(!form.allows(&roles(&["requester"]), false));
        assert!(!form.allows(&roles(&["staff"]), true), "disabled");
        let open = RequestForm {
            roles: vec![],
            ..form.clone()
        };
        assert!(open.allows(&roles(&[]), false));
        assert!(!open.allows(&roles(&[]), true), "disabled");

        // Without triggers: fine too; without [request]: not a form.
        let m = parse("name = \"x\"\ndescription = \"d\"\n[request]\ntitle = \"T\"\n").unwrap();
        assert!(m.request.unwrap().roles.is_empty());
        assert!(
            parse("name = \"x\"\ndescription = \"d\"\n")
                .unwrap()
                .request
                .is_none()
        );
    }

    #[test]
    fn a_bad_request_table_is_refused_with_its_line() {
        let cases = [
            (
                "name = \"x\"\ndescription = \"d\"\n[request]\ntitle = \"T\"\ncolour = 1\n",
                5,
                "unknown field `colour`",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[request]\ndescription = \"no title\"\n",
                3,
                "missing field `title`",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[request]\ntitle = \"  \"\n",
                3,
                "needs a `title`",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[request]\ntitle = \"T\"\nroles = [\"Staff\"]\n",
                3,
                "role name 'Staff'",
            ),
            (
                "name = \"x\"\ndescription = \"d\"\n[request]\ntitle = \"T\"\n\n[[triggers]]\nkind = \"manual\"\n\n[[triggers]]\nkind = \"cron\"\nschedule = \"0 * * * *\"\n",
                9,
                "triggers may only be manual (or none), not cron",
            ),
        ];
        for (text, line, needle) in cases {
            let e = parse(text).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains(needle), "{needle}: {shown}");
            assert_eq!(e.line, Some(line), "{needle}: {shown}");
        }
    }

    #[test]
    fn inputs_are_checked_and_defaulted() {
        let m = parse(
            "name = \"x\"\ndescription = \"d\"\n[inputs.ip]\ntype = \"string\"\n[inputs.days]\ntype = \"integer\"\nrequired = false\n",
        )
        .unwrap();
        let ok = serde_json::json!({"ip": "1.2.3.4"});
        assert_eq!(m.resolve_input(ok.as_object().unwrap()).unwrap().len(), 1);
        let e = m
            .resolve_input(serde_json::json!({}).as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("'ip' is required"), "{e}");
        let e = m
            .resolve_input(serde_json::json!({"ip": 5}).as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("type String"), "{e}");
        let e = m
            .resolve_input(serde_json::json!({"ip": "x", "ipp": 1}).as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no input 'ipp'") && e.contains("days, ip"), "{e}");
    }
}
