//! Pre-processing: ordered rules that decide, for each stored alert, before any playbook
//! starts, whether to drop it, fold it into an incident as a duplicate, link it to an open
//! incident, or open an incident and start playbooks. The first enabled rule that matches
//! decides; an alert no rule matches is kept, marked `unmatched`.
//!
//! The server decides the alerts intake hands it in memory ([`decide`], fed by
//! `handoff.rs`) and those it finds undecided in the store ([`process_pending`]); `osprey
//! rules test` and `POST /api/v1/rules/test` run [`test_rules`] over stored alerts without
//! changing anything.

pub mod handoff;
pub mod rules;
pub mod spec;

pub use handoff::Handoff;
pub use rules::{
    Decision, RuleCheckError, RuleSet, RuleTest, RuleTestCount, alert_json, check_rule, test_rules,
};
pub use spec::{RuleAction, RuleError, RuleFile, RuleSpec};

use crate::metrics::Metrics;
use crate::playbook::Trigger;
use crate::playbook::expr::Expr;
use crate::runs::Executor;
use crate::store::StoreError;
use crate::store::alerts::StoredAlert;
use crate::store::incidents::NewIncident;
use crate::store::runs::NewRun;
use crate::store::triage::Triage;

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Look at up to `batch` alerts the store holds undecided (those received before `before`,
/// if given); returns how many it found, or `batch` when some of them were decided first
/// (by another server): either way, a result of `batch` means "look again".
pub async fn process_pending(
    executor: &Arc<Executor>,
    metrics: &Metrics,
    batch: i64,
    before: Option<i64>,
) -> Result<usize, StoreError> {
    let alerts = match before {
        Some(before) => executor.store().unprocessed_alerts_before(before, batch).await?,
        None => executor.store().unprocessed_alerts(batch).await?,
    };
    let alerts: Vec<&StoredAlert> = alerts.iter().collect();
    if !decide(executor, metrics, &alerts).await? {
        return Ok(batch.max(0) as usize);
    }
    Ok(alerts.len())
}

/// Decide `alerts` (committed, undecided) and commit the decisions in one transaction.
/// Returns false, deciding nothing, when some of them were decided first (by another server,
/// or found twice): the caller leaves them to a store scan.
pub async fn decide(
    executor: &Arc<Executor>,
    metrics: &Metrics,
    alerts: &[&StoredAlert],
) -> Result<bool, StoreError> {
    if alerts.is_empty() {
        return Ok(true);
    }
    let specs = executor
        .store()
        .rules()
        .await?
        .into_iter()
        .map(|r| r.spec)
        .collect();
    let rules = match RuleSet::compile(specs) {
        Ok(r) => r,
        Err(e) => {
            // Rules are validated when they are stored; this is a rule from an older version.
            tracing::error!(error = %e, "the stored rules do not compile; alerts wait until they are fixed");
            return Ok(true);
        }
    };
    let triggers = alert_triggers(executor.playbooks());
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
    let mut open: HashMap<String, Option<(String, i64)>> =
        executor.store().open_incidents_by_keys(&keys).await?;
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
                        new_incident(executor, &rules, &triggers, alert, json, &rule, key.clone());
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
    // The runs of the new incidents go straight to the workers free here, claimed as they
    // are created; the rest are queued. Should the triage not commit, the workers are freed.
    let workers = executor.reserve_workers(triage.opened.iter_mut().flat_map(|(_, _, runs)| runs.iter_mut()));
    if !executor.store().apply_triage(&triage).await? {
        tracing::debug!(alerts = alerts.len(), "some of these alerts were decided first");
        return Ok(false);
    }
    executor.hand_over(triage.opened.iter().flat_map(|(_, _, runs)| runs.iter()), workers);
    count_decisions(metrics, &triage);
    for (incident, _, runs) in &triage.opened {
        tracing::info!(incident = %incident.id, rule = ?incident.rule, runs = runs.len(), "incident opened");
    }
    Ok(true)
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
fn alert_triggers(playbooks: &crate::playbook::Playbooks) -> Vec<(String, Expr)> {
    let mut out = Vec::new();
    for pb in playbooks.list() {
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
    executor: &Executor,
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
        "role": executor.store().incident_types().role(&incident.kind),
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
        let run = executor
            .playbooks()
            .get(&name)
            .map_err(|e| e.to_string())
            .and_then(|pb| {
                executor
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
