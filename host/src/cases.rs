//! Incident types as the operator declares them in `[incidents]`: their SLA (time to
//! acknowledge, time to resolve), the team they go to, and their custom fields; the one
//! check of custom field values against those declarations; and the one reading of a request
//! to create or change an incident or a task (from a playbook, the CLI or the API). Pure: no I/O.
//!
//! ```toml
//! [incidents]
//! acknowledge = "30m"        # defaults for every type
//! resolve = "1d"
//! task_due = "4h"            # default due time of a manual task
//!
//! [incidents.types.bitcoin-node]
//! acknowledge = "5m"
//! resolve = "4h"
//! role = "soc"
//! fields.asset = { type = "text", required = true }
//! fields.confidence = { type = "choice", options = ["low", "medium", "high"] }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[incidents]`: defaults and per-type settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Time to acknowledge an incident of a type that does not set its own; none if unset.
    #[serde(with = "crate::duration::opt_text")]
    pub acknowledge: Option<Duration>,
    /// Time to resolve (close) an incident of a type that does not set its own.
    #[serde(with = "crate::duration::opt_text")]
    pub resolve: Option<Duration>,
    /// Time to complete a manual task created without a due time.
    #[serde(with = "crate::duration::opt_text")]
    pub task_due: Option<Duration>,
    /// Incident types by name.
    pub types: BTreeMap<String, IncidentType>,
}

/// One incident type.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentType {
    #[serde(with = "crate::duration::opt_text")]
    pub acknowledge: Option<Duration>,
    #[serde(with = "crate::duration::opt_text")]
    pub resolve: Option<Duration>,
    /// The team new incidents of this type are assigned to.
    pub role: Option<String>,
    /// Custom fields, by name.
    pub fields: BTreeMap<String, FieldDecl>,
}

/// A custom field's declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDecl {
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether closing the incident needs the field set.
    #[serde(default)]
    pub required: bool,
    /// The allowed values of a `choice` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Integer,
    Number,
    Boolean,
    Choice,
}

/// The SLA timers a new incident of some type starts, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sla {
    pub acknowledge_ms: Option<i64>,
    pub resolve_ms: Option<i64>,
}

/// Why the `[incidents]` declarations were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IncidentsConfigError {
    /// A duration of 0s, named by its key ("incidents.resolve").
    #[error("{0} must be longer than 0s")]
    Zero(String),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("incidents.types.{kind}.fields: {source}")]
    FieldName {
        kind: String,
        #[source]
        source: FieldNameError,
    },
    #[error("incidents.types.{kind}.fields.{field}: a choice needs `options`")]
    ChoiceWithoutOptions { kind: String, field: String },
    #[error("incidents.types.{kind}.fields.{field}: only a choice has `options`")]
    OptionsWithoutChoice { kind: String, field: String },
}

/// Why custom field values were refused; the message names the field and what it takes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CustomFieldError {
    #[error("incident type '{kind}' has no custom fields (declare them in [incidents.types.{kind}.fields])")]
    NoFields { kind: String },
    #[error("'{name}' is not a field of incident type '{kind}'; its fields are: {}", .known.join(", "))]
    NotAField {
        name: String,
        kind: String,
        known: Vec<String>,
    },
    /// What the field takes ("a whole number", "one of low, high").
    #[error("field '{name}' takes {wanted}, not {value}")]
    WrongType {
        name: String,
        wanted: String,
        value: Value,
    },
}

/// A custom field name that is not an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field name '{0}' must be 1-64 lower-case letters, digits and underscores, starting with a letter")]
pub struct FieldNameError(pub String);

/// Why a case request (an incident or task to create or change) was refused.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The request did not read as `what` (its JSON shape, a field's type).
    #[error("{what}: {source}")]
    Parse {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("'{0}' is not a severity (info, low, medium, high, critical)")]
    Severity(String),
    #[error(transparent)]
    Duration(#[from] crate::duration::DurationError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("dedup_key '{0}' must be 1 to 200 characters")]
    DedupKey(String),
}

/// Field names are identifiers (`incident.fields.asset` in a script): 1 to 64 lower-case
/// letters, digits and underscores, starting with a letter.
fn check_field_name(name: &str) -> Result<(), FieldNameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(FieldNameError(name.to_owned()))
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl IncidentsConfig {
    /// Check the declarations: names, choices with options, no zero durations.
    pub fn validate(&self) -> Result<(), IncidentsConfigError> {
        let zero = |what: &str, d: Option<Duration>| match d {
            Some(d) if d.is_zero() => Err(IncidentsConfigError::Zero(what.to_owned())),
            _ => Ok(()),
        };
        zero("incidents.acknowledge", self.acknowledge)?;
        zero("incidents.resolve", self.resolve)?;
        zero("incidents.task_due", self.task_due)?;
        for (name, t) in &self.types {
            crate::names::check("incident type", name)?;
            zero(&format!("incidents.types.{name}.acknowledge"), t.acknowledge)?;
            zero(&format!("incidents.types.{name}.resolve"), t.resolve)?;
            if let Some(role) = &t.role {
                crate::names::check("role", role)?;
            }
            for (field, decl) in &t.fields {
                check_field_name(field).map_err(|source| IncidentsConfigError::FieldName {
                    kind: name.clone(),
                    source,
                })?;
                match (decl.kind, decl.options.is_empty()) {
                    (FieldType::Choice, true) => {
                        return Err(IncidentsConfigError::ChoiceWithoutOptions {
                            kind: name.clone(),
                            field: field.clone(),
                        });
                    }
                    (k, false) if k != FieldType::Choice => {
                        return Err(IncidentsConfigError::OptionsWithoutChoice {
                            kind: name.clone(),
                            field: field.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The SLA of a new incident of type `kind`: the type's own, else the defaults.
    pub fn sla(&self, kind: &str) -> Sla {
        let t = self.types.get(kind);
        Sla {
            acknowledge_ms: t.and_then(|t| t.acknowledge).or(self.acknowledge).map(ms),
            resolve_ms: t.and_then(|t| t.resolve).or(self.resolve).map(ms),
        }
    }

    /// The team a new incident of type `kind` goes to.
    pub fn role(&self, kind: &str) -> Option<&str> {
        self.types.get(kind).and_then(|t| t.role.as_deref())
    }

    /// The due time of a task created without one, in ms.
    pub fn task_due_ms(&self) -> Option<i64> {
        self.task_due.map(ms)
    }

    /// Check `changes` (field name → value, `null` to clear) against the fields declared for
    /// `kind`, and return `current` with them applied. The error names the field and says
    /// what it takes.
    pub fn apply_fields(
        &self,
        kind: &str,
        current: &Map<String, Value>,
        changes: &Map<String, Value>,
    ) -> Result<Map<String, Value>, CustomFieldError> {
        let declared = self.types.get(kind).map(|t| &t.fields);
        let mut out = current.clone();
        for (name, value) in changes {
            let Some(decl) = declared.and_then(|d| d.get(name)) else {
                let known: Vec<String> = declared.map(|d| d.keys().cloned().collect()).unwrap_or_default();
                return Err(if known.is_empty() {
                    CustomFieldError::NoFields {
                        kind: kind.to_owned(),
                    }
                } else {
                    CustomFieldError::NotAField {
                        name: name.clone(),
                        kind: kind.to_owned(),
                        known,
                    }
                });
            };
            if value.is_null() {
                out.remove(name);
                continue;
            }
            let ok = match decl.kind {
                FieldType::Text => value.is_string(),
                FieldType::Integer => value.is_i64() || value.is_u64(),
                FieldType::Number => value.is_number(),
                FieldType::Boolean => value.is_boolean(),
                FieldType::Choice => value
                    .as_str()
                    .is_some_and(|v| decl.options.iter().any(|o| o == v)),
            };
            if !ok {
                let wanted = match decl.kind {
                    FieldType::Text => "text".to_owned(),
                    FieldType::Integer => "a whole number".to_owned(),
                    FieldType::Number => "a number".to_owned(),
                    FieldType::Boolean => "true or false".to_owned(),
                    FieldType::Choice => format!("one of {}", decl.options.join(", ")),
                };
                return Err(CustomFieldError::WrongType {
                    name: name.clone(),
                    wanted,
                    value: value.clone(),
                });
            }
            out.insert(name.clone(), value.clone());
        }
        Ok(out)
    }

    /// The required fields of `kind` that `fields` lacks (closing needs them).
    pub fn missing_required(&self, kind: &str, fields: &Map<String, Value>) -> Vec<String> {
        self.types
            .get(kind)
            .map(|t| {
                t.fields
                    .iter()
                    .filter(|(name, d)| d.required && !fields.contains_key(*name))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Parse a value given on the command line (`--field name=value`) by the field's type.
    pub fn parse_cli_value(&self, kind: &str, name: &str, text: &str) -> Value {
        let decl = self.types.get(kind).and_then(|t| t.fields.get(name));
        match decl.map(|d| d.kind) {
            Some(FieldType::Integer) => text.parse::<i64>().map(Value::from).unwrap_or(text.into()),
            Some(FieldType::Number) => text.parse::<f64>().map(Value::from).unwrap_or(text.into()),
            Some(FieldType::Boolean) => text.parse::<bool>().map(Value::from).unwrap_or(text.into()),
            _ => Value::from(text),
        }
    }
}

/// A request to create an incident (`incident_create`/`incident_spawn` in a playbook,
/// `POST /api/v1/incidents`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentSpec {
    pub title: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Default: medium.
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
    /// One incident for one concern: when an open incident has this key, it is used instead
    /// of a new one (and related to the parent, for a child); otherwise the new incident
    /// keeps the key (pre-processing's dedup rules fold alerts with that key into it too).
    #[serde(default)]
    pub dedup_key: Option<String>,
}

/// A request to change an incident (`incident_set`, `PATCH /api/v1/incidents/ID`).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentChanges {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    /// new, active, pending (close with its reason elsewhere).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// A request to create a task (`task_create` in a playbook, `POST /api/v1/tasks`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Assigned to this user...
    #[serde(default)]
    pub user: Option<String>,
    /// ...and/or to this role.
    #[serde(default)]
    pub role: Option<String>,
    /// Time to complete it, such as "4h"; default `[incidents] task_due`.
    #[serde(default)]
    pub due: Option<String>,
    /// The incident it belongs to (a playbook's own incident by default).
    #[serde(default)]
    pub incident: Option<String>,
}

/// Read a request from JSON; the error says which field was wrong.
pub fn parse<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> Result<T, CaseError> {
    serde_json::from_value(value.clone()).map_err(|source| CaseError::Parse {
        what: what.to_owned(),
        source,
    })
}

/// A severity by name; the error lists the names.
pub fn severity(text: &str) -> Result<crate::intake::Severity, CaseError> {
    crate::intake::Severity::parse(text).ok_or_else(|| CaseError::Severity(text.to_owned()))
}

/// A duration such as "4h" as ms; the error says what is expected.
pub fn duration_ms(text: &str) -> Result<i64, crate::duration::DurationError> {
    Ok(ms(crate::duration::parse(text)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> IncidentsConfig {
        toml::from_str(
            r#"
            resolve = "1d"
            [types.miner]
            acknowledge = "5m"
            role = "soc"
            fields.asset = { type = "text", required = true }
            fields.count = { type = "integer" }
            fields.confirmed = { type = "boolean" }
            fields.confidence = { type = "choice", options = ["low", "high"] }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn sla_and_role_come_from_the_type_then_the_defaults() {
        let c = config();
        c.validate().unwrap();
        assert_eq!(
            c.sla("miner"),
            Sla {
                acknowledge_ms: Some(300_000),
                resolve_ms: Some(86_400_000)
            }
        );
        assert_eq!(
            c.sla("other"),
            Sla {
                acknowledge_ms: None,
                resolve_ms: Some(86_400_000)
            }
        );
        assert_eq!(c.role("miner"), Some("soc"));
        assert_eq!(c.role("other"), None);
    }

    #[test]
    fn fields_are_checked_against_their_type() {
        let c = config();
        let set = |changes: Value| c.apply_fields("miner", &Map::new(), changes.as_object().unwrap());
        let ok = set(json!({"asset": "pc-1", "count": 3, "confirmed": true, "confidence": "high"})).unwrap();
        assert_eq!(ok["count"], 3);
        assert_eq!(c.missing_required("miner", &ok), Vec::<String>::new());
        assert_eq!(c.missing_required("miner", &Map::new()), vec!["asset".to_owned()]);
        let e = set(json!({"count": 1.5})).unwrap_err().to_string();
        assert_eq!(e, "field 'count' takes a whole number, not 1.5");
        let e = set(json!({"confidence": "maybe"})).unwrap_err().to_string();
        assert_eq!(e, "field 'confidence' takes one of low, high, not \"maybe\"");
        let e = set(json!({"confirmed": "yes"})).unwrap_err().to_string();
        assert!(e.contains("true or false"), "{e}");
        let e = set(json!({"owner_phone": "x"})).unwrap_err().to_string();
        assert!(
            e.contains("'owner_phone' is not a field") && e.contains("asset, confidence"),
            "{e}"
        );
        let e = c
            .apply_fields("other", &Map::new(), json!({"a": 1}).as_object().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no custom fields"), "{e}");
        // null clears.
        let cleared = c
            .apply_fields("miner", &ok, json!({"count": null}).as_object().unwrap())
            .unwrap();
        assert!(!cleared.contains_key("count"));
        assert_eq!(c.parse_cli_value("miner", "count", "7"), json!(7));
        assert_eq!(c.parse_cli_value("miner", "asset", "7"), json!("7"));
    }

    #[test]
    fn bad_declarations_are_refused() {
        let bad = |t: &str| {
            toml::from_str::<IncidentsConfig>(t)
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string()
        };
        assert!(bad("[types.x]\nfields.c = { type = \"choice\" }").contains("needs `options`"));
        assert!(
            bad("[types.x]\nfields.c = { type = \"text\", options = [\"a\"] }").contains("only a choice")
        );
        assert!(bad("resolve = \"0s\"").contains("longer than 0s"));
        assert!(bad("[types.\"Bad Name\"]").contains("Bad Name"));
    }
}
