//! What a playbook's actions ([`Act`]) do, for real: incidents, tasks, lists, indicators,
//! notifications, questions and mail, through the store and `humans`. Each is idempotent
//! under the step's key (the step in flight at a crash is taken again).

use crate::playbook::{Act, ActCall, ActError};
use crate::store::audit::Actor;
use crate::store::incidents::IncidentStatus;
use crate::store::{Store, StoreError, now_ms};
use serde_json::Value;

/// How a store error reads in a failed action: a refusal says what was wrong; any other
/// failure is logged and said to be the store's.
fn store_failed(action: &'static str, run_id: &str, e: StoreError) -> ActError {
    if let StoreError::Invalid(message) = e {
        return ActError::Invalid { action, message };
    }
    tracing::error!(run = %run_id, action, error = %e, "a playbook action failed in the store");
    ActError::Store {
        action,
        source: Box::new(e),
    }
}

/// Perform `call` for run `run_id`, idempotently under `key`.
pub(super) async fn perform(
    store: &Store,
    humans: &crate::humans::Humans,
    call: &ActCall,
    run_id: &str,
    key: &str,
    max_list_entries: usize,
) -> Result<Value, ActError> {
    let actor = Actor::run(run_id);
    let action = call.act.name();
    let store_err = |e: StoreError| store_failed(action, run_id, e);
    let invalid = |e: &dyn std::fmt::Display| ActError::Invalid {
        action,
        message: e.to_string(),
    };
    let case_err = |source| ActError::Case { action, source };
    let incident = call.incident.as_deref();
    match &call.act {
        Act::IncidentNote { text } => {
            let id = call.incident()?;
            let details = serde_json::json!({ "text": text });
            store
                .incident_event_once(id, &actor, "note", details, key)
                .await
                .map_err(store_err)?;
            Ok(Value::Null)
        }
        Act::IncidentClose { reason } => {
            let id = call.incident()?;
            let current = store.incident(id).await.map_err(store_err)?;
            if current.is_some_and(|i| i.status != IncidentStatus::Closed) {
                store
                    .set_incident_status(id, IncidentStatus::Closed, Some(reason), &actor)
                    .await
                    .map_err(store_err)?;
            }
            Ok(Value::Null)
        }
        Act::IncidentSet(changes) => {
            let id = call.incident()?;
            let changes: crate::cases::IncidentChanges =
                crate::cases::parse(action, &Value::Object(changes.clone()))?;
            let update = changes.update().map_err(case_err)?;
            if let Some(status) = changes.status.as_deref() {
                let Some(to) = IncidentStatus::parse(status).filter(|s| *s != IncidentStatus::Closed) else {
                    return Err(invalid(&format!(
                        "status '{status}' is not one of new, active, pending (use incident_close to close)"
                    )));
                };
                store
                    .set_incident_status(id, to, None, &actor)
                    .await
                    .map_err(store_err)?;
            }
            store
                .update_incident(id, &update, &actor)
                .await
                .map_err(store_err)?;
            Ok(Value::Null)
        }
        Act::IncidentCreate(spec) | Act::IncidentSpawn(spec) => {
            let parent = if matches!(call.act, Act::IncidentSpawn(_)) {
                Some(incident.ok_or(ActError::NoIncidentToSpawnFrom)?)
            } else {
                None
            };
            let spec: crate::cases::IncidentSpec = crate::cases::parse(action, &Value::Object(spec.clone()))?;
            let new = spec.into_new(parent).map_err(case_err)?;
            let id = store
                .create_or_join_incident(&new, &actor, Some(key))
                .await
                .map_err(store_err)?;
            Ok(Value::String(id))
        }
        Act::IncidentLink { other } => {
            let id = call.incident()?;
            let added = store
                .relate_incidents(id, other, &actor)
                .await
                .map_err(store_err)?;
            Ok(Value::Bool(added))
        }
        Act::TaskCreate(spec) => {
            let spec: crate::cases::TaskSpec = crate::cases::parse(action, &Value::Object(spec.clone()))?;
            let new = spec.into_new(incident).map_err(case_err)?;
            let task = store
                .create_task(&new, &actor, Some(key))
                .await
                .map_err(|e| match e {
                    crate::store::tasks::TaskError::Store(e) => store_err(e),
                    other => invalid(&other),
                })?;
            Ok(serde_json::to_value(task).expect("a task serialises"))
        }
        Act::ListAdd { list, value, options } => {
            let ttl = match Act::list_ttl(options) {
                Some(t) => {
                    Some(crate::duration::parse(t).map_err(|source| ActError::Ttl { action, source })?)
                }
                None => None,
            };
            let expires_at = ttl.map(|t| now_ms() + t.as_millis() as i64);
            let reason = Act::list_reason(options).unwrap_or("added by a playbook");
            let added = store
                .add_list_entry(
                    list,
                    value,
                    expires_at,
                    reason,
                    Some(run_id),
                    max_list_entries,
                    &actor,
                )
                .await
                .map_err(|e| invalid(&e))?;
            let value = added
                .added
                .first()
                .or(added.updated.first())
                .cloned()
                .unwrap_or_default();
            Ok(
                serde_json::json!({ "value": value, "expires_at": expires_at, "new": !added.added.is_empty() }),
            )
        }
        Act::IndicatorGet { kind, value } | Act::IndicatorSet { kind, value, .. } => {
            use crate::store::indicators::IndicatorError;
            let fail = |e: IndicatorError| match e {
                IndicatorError::Store(e) => store_err(e),
                other => invalid(&other),
            };
            let found = match &call.act {
                Act::IndicatorSet { verdict, .. } => {
                    let v = Act::verdict(verdict)?;
                    let indicator = store
                        .set_verdict(kind, value, v.verdict, v.score, v.source, &actor)
                        .await
                        .map_err(fail)?;
                    Some(indicator)
                }
                _ => store.indicator(kind, value).await.map_err(fail)?,
            };
            Ok(serde_json::to_value(found).expect("an indicator serialises"))
        }
        Act::ListRemove { list, value } => {
            let removed = store
                .remove_list_entry(list, value, &actor)
                .await
                .map_err(|e| invalid(&e))?;
            Ok(Value::Bool(removed))
        }
        Act::Notify { to, message } => {
            tracing::info!(run = %run_id, to, message, "notification");
            if let Some(id) = incident {
                let details = serde_json::json!({ "to": to, "message": message });
                store
                    .incident_event_once(id, &actor, "notification", details, key)
                    .await
                    .map_err(store_err)?;
            }
            Ok(Value::Null)
        }
        Act::QuestionAsk { kind, spec } => {
            let q = humans
                .ask(store, *kind, spec, run_id, incident, key)
                .await
                .map_err(|e| ActError::Refused(e.into()))?;
            Ok(serde_json::json!({ "id": q.id, "due_at": q.due_at, "to": q.addressee() }))
        }
        Act::Record { series, point } => {
            store
                .record_point(run_id, key, series, &Value::Object(point.clone()), now_ms())
                .await
                .map_err(store_err)?;
            Ok(Value::Null)
        }
        Act::SendEmail(spec) => humans
            .send_email(store, &Value::Object(spec.clone()), incident, key)
            .await
            .map_err(|e| ActError::Refused(e.into())),
        Act::PastRuns(given) => {
            use crate::playbook::past_runs::{Past, Query, SCANNED};
            let query = Query::read(given).map_err(|e| invalid(&e))?;
            let Some(me) = store.run(run_id).await.map_err(store_err)? else {
                return Err(invalid(&format!("run {run_id} is not in the store")));
            };
            let runs = store
                .runs(
                    Some(&me.playbook),
                    Some(crate::store::runs::RunStatus::Completed),
                    SCANNED,
                )
                .await
                .map_err(store_err)?;
            let found = query.select(runs.iter().filter(|r| r.id != run_id).map(|r| Past {
                id: &r.id,
                origin: &r.origin,
                input: &r.input,
                output: r.output.as_ref().unwrap_or(&Value::Null),
                finished_at: r.finished_at,
            }));
            Ok(Value::Array(found))
        }
        Act::IncidentSearch(filter) => {
            use crate::playbook::search::{IncidentQuery, StatusQuery};
            let query = IncidentQuery::read(filter)?;
            let filter = crate::store::incidents::IncidentFilter {
                status: match query.status {
                    Some(StatusQuery::Is(s)) => IncidentStatus::parse(s),
                    _ => None,
                },
                open: query.status == Some(StatusQuery::Open),
                kind: query.kind.as_deref(),
                severity: query.severity.and_then(crate::intake::Severity::parse),
                owner: query.owner.as_deref(),
                since: query.since_ms(now_ms()),
            };
            let found = store
                .incidents_matching(&filter, i64::from(query.limit))
                .await
                .map_err(store_err)?;
            Ok(serde_json::to_value(found).expect("incidents serialise"))
        }
        Act::StateGet { key } => Ok(store
            .playbook_state(run_id, key)
            .await
            .map_err(store_err)?
            .unwrap_or(Value::Null)),
        Act::StateSet { key, value } => {
            store
                .set_playbook_state(run_id, key, value, crate::playbook::keep::MAX_KEYS)
                .await
                .map_err(store_err)?;
            Ok(Value::Null)
        }
        Act::AlertSearch(filter) => {
            let query = crate::playbook::alert_search::AlertQuery::read(filter)?;
            let now = now_ms();
            let found = store
                .alerts_with_field(
                    &query.field,
                    &query.value,
                    query.since_ms(now),
                    i64::from(query.limit),
                )
                .await
                .map_err(store_err)?;
            Ok(serde_json::to_value(found).expect("alerts serialise"))
        }
    }
}

#[cfg(test)]
mod tests {
    /// The states a playbook's search names are the store's.
    #[test]
    fn a_search_names_the_stored_states() {
        assert_eq!(
            crate::playbook::search::STATUS_NAMES,
            crate::store::incidents::IncidentStatus::NAMES
        );
    }
}
