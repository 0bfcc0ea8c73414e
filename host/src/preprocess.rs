//! Pre-processing: ordered rules that decide, for each stored alert, before any playbook
//! starts, whether to drop it, fold it into an incident as a duplicate, link it to an open
//! incident, or open an incident and start playbooks. The first enabled rule that matches
//! decides; an alert no rule matches is kept, marked `unmatched`.
//!
//! The server runs [`process_pending`] in the background; `osprey rules test` and
//! `POST /api/v1/rules/test` run [`test_rules`] over stored alerts without changing anything.

use crate::app::App;
use crate::intake::Severity;
use crate::playbook::Trigger;
use crate::playbook::expr::{Expr, Vars};
use crate::store::StoreError;
use crate::store::alerts::StoredAlert;
use crate::store::incidents::NewIncident;
use crate::store::runs::NewRun;
use crate::store::triage::Triage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
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

impl RuleSpec {
    /// Check the rule: its name, its expressions, and the fields its action needs.
    pub fn validate(&self) -> Result<(), String> {
        crate::names::check("rule", &self.name)?;
        Expr::compile(&self.matches).map_err(|e| format!("rule '{}': match: {e}", self.name))?;
        if let Some(key) = &self.key {
            Expr::compile(key).map_err(|e| format!("rule '{}': key: {e}", self.name))?;
        }
        let needs = |what: &str| format!("rule '{}': a {:?} rule needs {what}", self.name, self.action);
        match self.action {
            RuleAction::Dedup if self.key.is_none() || self.window.is_none() => {
                return Err(needs("a key and a window").to_lowercase());
            }
            RuleAction::Link if self.key.is_none() => return Err(needs("a key").to_lowercase()),
            RuleAction::Drop | RuleAction::Link
                if self.window.is_some() || !self.playbooks.is_empty() || self.severity.is_some() =>
            {
                return Err(format!(
                    "rule '{}': window, severity and playbooks belong to dedup and incident rules",
                    self.name
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

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
    pub fn compile(specs: Vec<RuleSpec>) -> Result<RuleSet, String> {
        let mut rules = Vec::new();
        for spec in specs.into_iter().filter(|s| s.enabled) {
            spec.validate()?;
            let matches = Expr::compile(&spec.matches)?;
            let key = spec.key.as_deref().map(Expr::compile).transpose()?;
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
pub fn check_rule(spec: &RuleSpec, playbooks: &crate::playbook::Playbooks) -> Result<(), String> {
    spec.validate()?;
    for p in &spec.playbooks {
        playbooks
            .get(p)
            .map_err(|e| format!("rule '{}': {e}", spec.name))?;
    }
    Ok(())
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
pub fn test_rules(specs: Vec<RuleSpec>, alerts: &[StoredAlert]) -> Result<RuleTest, String> {
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

/// Look at up to `batch` alerts pre-processing has not seen; returns how many it handled.
pub async fn process_pending(app: &App, batch: i64) -> Result<usize, StoreError> {
    let alerts = app.store.unprocessed_alerts(batch).await?;
    if alerts.is_empty() {
        return Ok(0);
    }
    let specs = app.store.rules().await?.into_iter().map(|r| r.spec).collect();
    let rules = match RuleSet::compile(specs) {
        Ok(r) => r,
        Err(e) => {
            // Rules are validated when they are stored; this is a rule from an older version.
            tracing::error!(error = %e, "the stored rules do not compile; alerts wait until they are fixed");
            return Ok(0);
        }
    };
    let triggers = alert_triggers(app);
    let now = crate::store::now_ms();
    let mut triage = Triage::default();
    // Every alert's candidates first, so that the open incidents of all their keys are
    // looked up in a few queries, not one per key.
    let decided: Vec<(Value, Vec<Decision>)> = alerts
        .iter()
        .map(|alert| {
            let json = alert_json(alert);
            let (candidates, errors) = rules.candidates(&json);
            for e in errors {
                tracing::warn!(alert = %alert.id, error = %e, "a rule could not be evaluated");
            }
            (json, candidates)
        })
        .collect();
    let keys: Vec<&str> = decided
        .iter()
        .flat_map(|(_, c)| c.iter())
        .filter_map(|d| match d {
            Decision::Link { key, .. } => Some(key.as_str()),
            Decision::Incident { key, .. } => key.as_deref(),
            _ => None,
        })
        .collect();
    // The newest open incident per key, as the store has it or as this batch opened it.
    let mut open: HashMap<String, Option<(String, i64)>> = app.store.open_incidents_by_keys(&keys).await?;
    for (alert, (json, candidates)) in alerts.iter().zip(decided) {
        let json = &json;
        for decision in candidates {
            match decision {
                Decision::Drop { rule } => {
                    triage
                        .dispositions
                        .push((alert.id.clone(), "dropped", Some(rule)));
                    break;
                }
                Decision::Unmatched => {
                    triage.dispositions.push((alert.id.clone(), "unmatched", None));
                    break;
                }
                Decision::Link { rule, key } => {
                    if let Some((incident, _)) = open.get(&key).cloned().flatten() {
                        triage.linked.push((incident, alert.id.clone(), rule, false));
                        break;
                    }
                }
                Decision::Incident { rule, key, window } => {
                    if let (Some(key), Some(window)) = (&key, window)
                        && let Some((incident, created_at)) = open.get(key).cloned().flatten()
                        && created_at >= now - window.as_millis() as i64
                    {
                        triage.linked.push((incident, alert.id.clone(), rule, true));
                        break;
                    }
                    let (incident, runs) =
                        new_incident(app, &rules, &triggers, alert, json, &rule, key.clone());
                    if let Some(key) = key {
                        open.insert(key, Some((incident.id.clone(), now)));
                    }
                    triage.opened.push((incident, alert.id.clone(), runs));
                    break;
                }
            }
        }
    }
    // Every alert's observables are sightings, dropped ones too: written with the triage.
    triage.sightings =
        crate::store::indicators::sightings(alerts.iter().map(|a| (&a.alert.observables, a.received_at)));
    if !app.store.apply_triage(&triage).await? {
        tracing::debug!(
            alerts = alerts.len(),
            "another server pre-processed these alerts first"
        );
        return Ok(alerts.len());
    }
    count_decisions(&app.metrics, &triage);
    for (incident, _, runs) in &triage.opened {
        tracing::info!(incident = %incident.id, rule = ?incident.rule, runs = runs.len(), "incident opened");
    }
    if triage.opened.iter().any(|(_, _, runs)| !runs.is_empty()) {
        app.executor.wake();
    }
    Ok(alerts.len())
}

/// Count a committed triage's decisions, per outcome and rule.
fn count_decisions(metrics: &crate::metrics::Metrics, triage: &Triage) {
    use crate::metrics::Preprocessed;
    let mut counts: HashMap<(Preprocessed, Option<&str>), u64> = HashMap::new();
    for (_, disposition, rule) in &triage.dispositions {
        let outcome = if *disposition == "dropped" {
            Preprocessed::Dropped
        } else {
            Preprocessed::Unmatched
        };
        *counts.entry((outcome, rule.as_deref())).or_default() += 1;
    }
    for (_, _, rule, duplicate) in &triage.linked {
        let outcome = if *duplicate {
            Preprocessed::Deduplicated
        } else {
            Preprocessed::Linked
        };
        *counts.entry((outcome, Some(rule.as_str()))).or_default() += 1;
    }
    for (incident, _, _) in &triage.opened {
        *counts
            .entry((Preprocessed::Incident, incident.rule.as_deref()))
            .or_default() += 1;
    }
    for ((outcome, rule), n) in counts {
        metrics.alerts_preprocessed(outcome, rule, n);
    }
}

/// The playbooks with alert triggers, their expressions compiled.
fn alert_triggers(app: &App) -> Vec<(String, Expr)> {
    let mut out = Vec::new();
    for pb in app.playbooks.list() {
        for t in &pb.meta.triggers {
            if let Trigger::Alert { matches } = t.get_ref() {
                match Expr::compile(matches) {
                    Ok(e) => out.push((pb.name().to_owned(), e)),
                    Err(e) => {
                        tracing::error!(playbook = pb.name(), error = %e, "alert trigger does not compile")
                    }
                }
            }
        }
    }
    out
}

/// A new incident for `alert`, and the runs it starts: the rule's playbooks and those whose
/// alert trigger matches, each seeing the alert and the incident.
fn new_incident(
    app: &App,
    rules: &RuleSet,
    triggers: &[(String, Expr)],
    alert: &StoredAlert,
    json: &Value,
    rule: &str,
    key: Option<String>,
) -> (NewIncident, Vec<NewRun>) {
    let spec = rules.spec(rule).expect("the rule decided");
    let kind = spec.incident_type.as_deref().unwrap_or(&alert.alert.source);
    let mut incident = NewIncident::new(
        kind,
        &alert.alert.title,
        spec.severity.unwrap_or(alert.alert.severity),
    );
    incident.dedup_key = key;
    incident.rule = Some(rule.to_owned());
    let snapshot = serde_json::json!({
        "id": incident.id,
        "type": incident.kind,
        "title": incident.title,
        "severity": incident.severity,
        "status": "new",
        "dedup_key": incident.dedup_key,
        "role": app.store.incident_types().role(&incident.kind),
        "fields": {},
    });
    let mut names: Vec<String> = spec.playbooks.clone();
    for (playbook, trigger) in triggers {
        if !names.contains(playbook) && trigger.matches(json).unwrap_or(false) {
            names.push(playbook.clone());
        }
    }
    let mut runs = Vec::new();
    for name in names {
        let run = app
            .playbooks
            .get(&name)
            .map_err(|e| e.to_string())
            .and_then(|pb| {
                app.executor
                    .prepare_run(&pb, &serde_json::Map::new(), &format!("incident {}", incident.id))
                    .map_err(|e| e.to_string())
            });
        match run {
            Ok(mut run) => {
                run.context = serde_json::json!({ "alert": json, "incident": snapshot });
                runs.push(run);
            }
            Err(e) => {
                tracing::error!(playbook = %name, incident = %incident.id, error = %e, "playbook not started")
            }
        }
    }
    (incident, runs)
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
        .unwrap();
        assert!(e.contains("rule 'x': match"), "{e}");
        let e = rule("name = \"x\"\nmatch = 'true'\naction = \"dedup\"\nkey = 'alert.source'")
            .validate()
            .unwrap_err();
        assert!(e.contains("needs a key and a window"), "{e}");
        let e = rule("name = \"x\"\nmatch = 'true'\naction = \"link\"")
            .validate()
            .unwrap_err();
        assert!(e.contains("needs a key"), "{e}");
        let e = rule("name = \"x\"\nmatch = 'true'\naction = \"drop\"\nplaybooks = [\"p\"]")
            .validate()
            .unwrap_err();
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
        .unwrap_err();
        assert!(e.contains("rule 'x'"), "{e}");
    }
}
