//! A rule set compiled once and the decision it makes for one alert; what a rule set would do
//! to some alerts without changing anything (`osprey rules test`). Pure.

use super::spec::{RuleAction, RuleError, RuleSpec};
use crate::playbook::expr::{Expr, Vars};
use crate::store::alerts::StoredAlert;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// What pre-processing decided for one alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Drop {
        rule: String,
    },
    /// Open an incident (or, with a window, fold into the open one with the same key).
    Incident {
        rule: String,
        key: Option<String>,
        window: Option<Duration>,
    },
    /// Link to the open incident with this key, if any.
    Link {
        rule: String,
        key: String,
    },
    Unmatched,
}

struct CompiledRule {
    spec: RuleSpec,
    matches: Expr,
    key: Option<Expr>,
}

/// Rules compiled once, ready to decide.
pub struct RuleSet {
    rules: Vec<CompiledRule>,
}

impl RuleSet {
    /// Compile `specs` (in order). A rule that does not compile is an error naming it.
    pub fn compile(specs: Vec<RuleSpec>) -> Result<RuleSet, RuleError> {
        let mut rules = Vec::new();
        for spec in specs.into_iter().filter(|s| s.enabled) {
            spec.validate()?;
            let matches = spec.compile_match()?;
            let key = spec.compile_key()?;
            rules.push(CompiledRule { spec, matches, key });
        }
        Ok(RuleSet { rules })
    }

    /// The candidates for `alert`, in order: each matching rule's decision (a link rule may
    /// find no incident, and then the next candidate counts). Expression errors are
    /// returned beside them, naming the rule; that rule is skipped.
    pub fn candidates(&self, alert: &Value) -> (Vec<Decision>, Vec<String>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let mut vars = match Vars::new(&[("alert", alert)]) {
            Ok(v) => v,
            Err(e) => return (vec![Decision::Unmatched], vec![format!("the alert: {e}")]),
        };
        for r in &self.rules {
            let name = r.spec.name.clone();
            match r.matches.matches_in(&mut vars) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    errors.push(format!("rule '{name}': {e}"));
                    continue;
                }
            }
            let key = match r.key.as_ref().map(|k| k.key_in(&mut vars)).transpose() {
                Ok(k) => k,
                Err(e) => {
                    errors.push(format!("rule '{name}': key: {e}"));
                    continue;
                }
            };
            let decision = match r.spec.action {
                RuleAction::Drop => Decision::Drop { rule: name },
                RuleAction::Link => Decision::Link {
                    rule: name,
                    key: key.expect("validated"),
                },
                RuleAction::Dedup | RuleAction::Incident => Decision::Incident {
                    rule: name,
                    key,
                    window: r.spec.window,
                },
            };
            let ends = !matches!(decision, Decision::Link { .. });
            out.push(decision);
            if ends {
                return (out, errors);
            }
        }
        out.push(Decision::Unmatched);
        (out, errors)
    }

    /// The rule spec named `name`.
    pub fn spec(&self, name: &str) -> Option<&RuleSpec> {
        self.rules.iter().find(|r| r.spec.name == name).map(|r| &r.spec)
    }
}

/// The alert as rule expressions and playbooks see it.
pub fn alert_json(alert: &StoredAlert) -> Value {
    serde_json::to_value(alert).expect("an alert serialises")
}

/// Check a rule before it is stored (`osprey rules set`, `PUT /api/v1/rules/NAME`): the rule
/// itself, and the playbooks it starts must be loaded.
pub fn check_rule(spec: &RuleSpec, playbooks: &crate::playbook::Playbooks) -> Result<(), RuleCheckError> {
    spec.validate()?;
    for p in &spec.playbooks {
        playbooks.get(p).map_err(|source| RuleCheckError::Playbook {
            rule: spec.name.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Why a rule may not be stored: it is wrong in itself, or starts a playbook not loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleCheckError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("rule '{rule}': {source}")]
    Playbook {
        rule: String,
        #[source]
        source: crate::playbook::PlaybookError,
    },
}

/// What a rule set would have done to some alerts (`osprey rules test`,
/// `POST /api/v1/rules/test`). Offline, a link rule counts as deciding (whether an incident
/// is open depends on the moment).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleTest {
    /// How many alerts were tested.
    pub alerts: usize,
    /// Each rule, in order, with how many alerts it decided.
    pub rules: Vec<RuleTestCount>,
    /// Alerts no rule decided.
    pub unmatched: usize,
    /// Expression errors, naming the alert and the rule.
    pub errors: Vec<String>,
    /// Per rule that decided any: the title of the first alert it decided.
    pub examples: std::collections::BTreeMap<String, String>,
}

/// One rule's line of a [`RuleTest`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleTestCount {
    pub name: String,
    pub action: RuleAction,
    pub alerts: usize,
}

/// Run `specs` (in order) over `alerts`, changing nothing. A rule that does not compile is
/// an error naming it.
pub fn test_rules(specs: Vec<RuleSpec>, alerts: &[StoredAlert]) -> Result<RuleTest, RuleError> {
    let rules = RuleSet::compile(specs.clone())?;
    let mut decided: HashMap<String, usize> = HashMap::new();
    let mut examples = std::collections::BTreeMap::new();
    let mut unmatched = 0;
    let mut errors = Vec::new();
    for a in alerts {
        let (candidates, errs) = rules.candidates(&alert_json(a));
        errors.extend(errs.into_iter().map(|e| format!("alert {}: {e}", a.id)));
        match candidates.first() {
            Some(Decision::Drop { rule } | Decision::Incident { rule, .. } | Decision::Link { rule, .. }) => {
                *decided.entry(rule.clone()).or_default() += 1;
                examples
                    .entry(rule.clone())
                    .or_insert_with(|| a.alert.title.clone());
            }
            _ => unmatched += 1,
        }
    }
    Ok(RuleTest {
        alerts: alerts.len(),
        rules: specs
            .iter()
            .map(|s| RuleTestCount {
                name: s.name.clone(),
                action: s.action,
                alerts: decided.get(&s.name).copied().unwrap_or(0),
            })
            .collect(),
        unmatched,
        errors,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(toml_text: &str) -> RuleSpec {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides_and_link_falls_through() {
        let rules = RuleSet::compile(vec![
            rule("name = \"noise\"\nmatch = 'alert.source == \"scanner\"'\naction = \"drop\""),
            rule("name = \"follow\"\nmatch = 'alert.source == \"dns\"'\naction = \"link\"\nkey = 'alert.data.client'"),
            rule(
                "name = \"stream\"\nmatch = 'alert.source == \"dns\"'\naction = \"dedup\"\nkey = 'alert.data.client'\nwindow = \"1h\"\nplaybooks = [\"streaming-guard\"]",
            ),
        ])
        .unwrap();
        let (d, _) = rules.candidates(&json!({"source": "scanner"}));
        assert_eq!(d, [Decision::Drop { rule: "noise".into() }]);
        let (d, _) = rules.candidates(&json!({"source": "dns", "data": {"client": "10.1.1.5"}}));
        assert_eq!(
            d,
            [
                Decision::Link {
                    rule: "follow".into(),
                    key: "10.1.1.5".into()
                },
                Decision::Incident {
                    rule: "stream".into(),
                    key: Some("10.1.1.5".into()),
                    window: Some(Duration::from_secs(3600))
                }
            ]
        );
        let (d, _) = rules.candidates(&json!({"source": "other"}));
        assert_eq!(d, [Decision::Unmatched]);
        // A key that cannot be computed skips the rule and says why.
        let (d, errors) = rules.candidates(&json!({"source": "dns", "data": {}}));
        assert_eq!(d, [Decision::Unmatched]);
        assert!(
            errors[0].contains("follow") && errors[0].contains("gave nothing"),
            "{errors:?}"
        );
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let e = RuleSet::compile(vec![rule(
            "name = \"x\"\nmatch = 'alert.source =='\naction = \"drop\"",
        )])
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("rule 'x': match"), "{e}");
        let e = rule("name = \"x\"\nmatch = 'true'\naction = \"dedup\"\nkey = 'alert.source'")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a key and a window"), "{e}");
        let e = rule("name = \"x\"\nmatch = 'true'\naction = \"link\"")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a key"), "{e}");
        let e = rule("name = \"x\"\nmatch = 'true'\naction = \"drop\"\nplaybooks = [\"p\"]")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("belong to dedup and incident"), "{e}");
        assert!(toml::from_str::<RuleSpec>("name = \"x\"\nmatch = 'true'\naction = \"explode\"").is_err());
    }

    #[test]
    fn a_rule_test_counts_what_each_rule_decided() {
        let alerts: Vec<StoredAlert> = crate::intake::parse(
            crate::intake::Format::Json,
            br#"[{"source": "ids", "title": "ET SCAN one"}, {"source": "ids", "title": "ET SCAN two"},
                {"source": "edr", "title": "malware"}, {"source": "mail", "title": "phish"}]"#,
            "json",
        )
        .into_iter()
        .enumerate()
        .map(|(i, a)| StoredAlert::new(format!("a{i}"), 0, "test", a.unwrap()))
        .collect();
        let specs = vec![
            rule("name = \"scans\"\nmatch = 'alert.title.contains(\"SCAN\")'\naction = \"drop\""),
            rule("name = \"edr\"\nmatch = 'alert.source == \"edr\"'\naction = \"incident\""),
            rule("name = \"off\"\nmatch = 'true'\naction = \"drop\"\nenabled = false"),
        ];
        let report = test_rules(specs, &alerts).unwrap();
        assert_eq!(report.alerts, 4);
        let counts: Vec<(&str, usize)> = report.rules.iter().map(|r| (r.name.as_str(), r.alerts)).collect();
        assert_eq!(counts, [("scans", 2), ("edr", 1), ("off", 0)]);
        assert_eq!(report.unmatched, 1);
        assert_eq!(report.examples["scans"], "ET SCAN one");
        assert!(report.errors.is_empty());
        let e = test_rules(
            vec![rule("name = \"x\"\nmatch = '('\naction = \"drop\"")],
            &alerts,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rule 'x'"), "{e}");
    }
}
