//! The SLA watcher: finds timers past their deadline, records each breach once (timeline,
//! audit) and starts the playbooks whose `sla` trigger matches, in the same transaction.

use crate::metrics::Metrics;
use crate::playbook::expr::Expr;
use crate::playbook::meta::Trigger;
use crate::runs::Executor;
use crate::store::StoreError;
use crate::store::runs::NewRun;
use crate::store::sla::SlaTimer;
use serde_json::Value;

/// The most breaches recorded in one pass.
const BATCH: i64 = 100;

/// Record the breaches due now; returns how many were recorded by this server.
pub async fn check_breaches(executor: &Executor, metrics: &Metrics) -> Result<usize, StoreError> {
    let now = crate::store::now_ms();
    let due = executor.store().due_breaches(now, BATCH).await?;
    let mut recorded = 0;
    for timer in due {
        let incident = match &timer.incident_id {
            Some(id) => executor.store().incident(id).await?,
            None => None,
        };
        let incident_json = incident
            .as_ref()
            .map(|i| serde_json::to_value(i).expect("an incident serialises"))
            .unwrap_or(Value::Null);
        let breach = timer.breach(now);
        let runs = if incident.is_some() {
            runs_for(executor, &timer, &incident_json, &breach)
        } else {
            Vec::new()
        };
        if executor.store().record_breach(&timer, &runs).await? {
            recorded += 1;
            metrics.sla_breached(&timer.timer);
            tracing::warn!(
                subject = %timer.subject,
                timer = %timer.timer,
                incident = ?timer.incident_id,
                runs = runs.len(),
                "SLA breached"
            );
            if !runs.is_empty() {
                executor.wake();
            }
        }
    }
    Ok(recorded)
}

/// The runs of the playbooks whose `sla` trigger names this timer and whose match holds.
fn runs_for(executor: &Executor, timer: &SlaTimer, incident: &Value, breach: &Value) -> Vec<NewRun> {
    let mut runs = Vec::new();
    for pb in executor.playbooks().list() {
        let wanted = pb.meta.triggers.iter().any(|t| match t.get_ref() {
            Trigger::Sla { timers, matches } => {
                timers.iter().any(|n| n.as_str() == timer.timer)
                    && matches.as_deref().is_none_or(|m| {
                        Expr::compile(m)
                            .and_then(|e| e.matches_with(&[("incident", incident), ("breach", breach)]))
                            .unwrap_or_else(|e| {
                                tracing::warn!(playbook = pb.name(), error = %e, "sla trigger could not be evaluated");
                                false
                            })
                    })
            }
            _ => false,
        });
        if !wanted {
            continue;
        }
        let origin = format!("sla {} {}", timer.timer, timer.subject);
        match executor.prepare_run(&pb, &serde_json::Map::new(), &origin) {
            Ok(mut run) => {
                run.context = serde_json::json!({ "incident": incident, "breach": breach });
                runs.push(run);
            }
            Err(e) => {
                tracing::error!(playbook = pb.name(), error = %e, "playbook not started for an SLA breach")
            }
        }
    }
    runs
}
