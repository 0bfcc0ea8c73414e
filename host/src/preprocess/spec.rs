//! Rules as an operator writes them (CLI flags, a TOML file, the API) and as the store keeps
//! them: what each matches and does, and the one check of a rule before it is stored. Pure.

use crate::intake::Severity;
use crate::playbook::expr::{Expr, ExprError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a rule does with the alerts it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Throw the alert away (it stays stored, marked dropped, for the record and for tests).
    Drop,
    /// One incident per `key` within `window`: later alerts with the same key are linked to
    /// it and counted as occurrences; no new run.
    Dedup,
    /// Link to the open incident with the same `key`; if there is none, the next rules decide.
    Link,
    /// Open an incident and start playbooks.
    Incident,
}

/// A rule as an operator writes it (CLI flags, or a TOML file for `osprey rules test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// A Rhai expression over `alert` that must give true or false.
    #[serde(rename = "match")]
    pub matches: String,
    pub action: RuleAction,
    /// dedup and link: a Rhai expression over `alert` whose value is the key
    /// (for example `alert.data.client + "|" + alert.data.query`). incident: optional, the key
    /// later link rules find the incident by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// dedup: how long after an incident is opened its duplicates are folded into it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::opt_text"
    )]
    #[schema(value_type = Option<String>, example = "10m")]
    pub window: Option<Duration>,
    /// dedup and incident: the incident's type (default: the alert's source).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub incident_type: Option<String>,
    /// dedup and incident: the incident's severity (default: the alert's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// dedup and incident: playbooks to start for a new incident, besides those whose own
    /// alert trigger matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub playbooks: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// A set of rules to try in order, as a TOML file (`[[rules]]` tables).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// Why a rule was refused; the message names the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error("rule '{rule}': match: {source}")]
    Match {
        rule: String,
        #[source]
        source: ExprError,
    },
    #[error("rule '{rule}': key: {source}")]
    Key {
        rule: String,
        #[source]
        source: ExprError,
    },
    /// An action without the fields it needs ("a key", "a key and a window").
    #[error("rule '{rule}': a {} rule needs {needs}", format!("{action:?}").to_lowercase())]
    Needs {
        rule: String,
        action: RuleAction,
        needs: &'static str,
    },
    #[error("rule '{0}': window, severity and playbooks belong to dedup and incident rules")]
    Misplaced(String),
}

impl RuleSpec {
    /// Check the rule: its name, its expressions, and the fields its action needs.
    pub fn validate(&self) -> Result<(), RuleError> {
        crate::names::check("rule", &self.name)?;
        self.compile_match()?;
        self.compile_key()?;
        let needs = |needs| RuleError::Needs {
            rule: self.name.clone(),
            action: self.action,
            needs,
        };
        match self.action {
            RuleAction::Dedup if self.key.is_none() || self.window.is_none() => {
                return Err(needs("a key and a window"));
            }
            RuleAction::Link if self.key.is_none() => return Err(needs("a key")),
            RuleAction::Drop | RuleAction::Link
                if self.window.is_some() || !self.playbooks.is_empty() || self.severity.is_some() =>
            {
                return Err(RuleError::Misplaced(self.name.clone()));
            }
            _ => {}
        }
        Ok(())
    }

    /// The rule's `match` expression, compiled.
    pub fn compile_match(&self) -> Result<Expr, RuleError> {
        Expr::compile(&self.matches).map_err(|source| RuleError::Match {
            rule: self.name.clone(),
            source,
        })
    }

    /// The rule's `key` expression, if it has one, compiled.
    pub fn compile_key(&self) -> Result<Option<Expr>, RuleError> {
        self.key
            .as_deref()
            .map(Expr::compile)
            .transpose()
            .map_err(|source| RuleError::Key {
                rule: self.name.clone(),
                source,
            })
    }
}
