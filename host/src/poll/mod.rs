//! Polling intake (XSOAR's fetch-incidents): a plugin action asked on a schedule for new
//! items, each item an alert through the normal intake, with a cursor the plugin returns and
//! the host keeps.
//!
//! Each second the server claims the pollers that are due (one server per poller: the
//! store's conditional claim with a lease), calls the action through the runtime with
//! `{...input, cursor}`, reads the output's `items` as an intake JSON array (the same parser
//! `POST /api/v1/alerts` uses, so an item that is not an alert is refused the same way and
//! counted), and commits the alerts and the new cursor in ONE transaction
//! (`Store::poll_done`): a crash leaves either both or neither, so across a restart no item
//! is fetched twice and none is missed. Pre-processing then applies the rules, deduplication
//! and incidents as for any alert. A failed poll keeps the cursor, records the error and
//! waits twice as long each time, at most an hour (`spec::backoff`).

pub mod spec;

use crate::intake::{self, Format};
use crate::metrics::Metrics;
use crate::plugin::{CallContext, Runtime};
use crate::store::alerts::StoredAlert;
use crate::store::pollers::{PollDone, Poller, PollerSpec};
use crate::store::{Store, StoreError, new_id, now_ms};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// How long a claim on a poller lasts without a heartbeat. While a poll runs, its server
/// renews the claim every third of this (`heartbeat`), so a slow plugin call keeps it; a
/// server that stops cleanly gives its claims back (`release`); one that crashes (kill -9, a
/// lost machine) holds them at most this long before another server polls in its place.
/// Short, so a crash delays a poller by seconds rather than minutes; a renewal is one small
/// UPDATE.
const LEASE: Duration = Duration::from_secs(10);

/// What the polling loop works with.
#[derive(Clone)]
pub struct Polling {
    pub store: Store,
    pub runtime: Runtime,
    pub metrics: Arc<Metrics>,
    /// Woken when alerts are committed, so pre-processing looks at them at once.
    /// Told when a poll commits alerts, so pre-processing looks for them.
    pub handoff: Arc<crate::preprocess::Handoff>,
    /// The most items one poll may return (`intake.max_alerts_per_request`).
    pub max_items: usize,
    /// This server, as the holder of claims.
    pub node: String,
}

/// Why a poll failed (recorded as the poller's `last_error`).
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("{plugin}.{action}: {error}")]
    Call {
        plugin: String,
        action: String,
        error: crate::plugin::CallError,
    },
    #[error("{plugin}.{action} returned no `items` array; a polled action returns {{items: [...], cursor}}")]
    NoItems { plugin: String, action: String },
    #[error(
        "{plugin}.{action} returned more than {max} items (intake.max_alerts_per_request); ask for fewer in the poller's input (`limit`)"
    )]
    TooMany {
        plugin: String,
        action: String,
        max: usize,
    },
    #[error("storing the poll's alerts failed: {0}")]
    Store(#[from] StoreError),
}

impl Polling {
    /// A node name for this process.
    pub fn node_name() -> String {
        new_id('n')
    }

    /// Put the pollers of `[[intake.poll]]` into the store (their state is kept).
    pub async fn sync_config(&self, pollers: &[spec::PollConfig]) -> Result<(), StoreError> {
        for p in pollers {
            self.store.put_poller(&to_spec(p)).await?;
        }
        Ok(())
    }

    /// Poll every poller due now, one after another; returns how many were polled.
    pub async fn poll_due(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let claimed = self
            .store
            .claim_due_pollers(&self.node, now, LEASE.as_millis() as i64)
            .await?;
        let n = claimed.len();
        for poller in claimed {
            self.poll_one(poller).await?;
        }
        Ok(n)
    }

    /// Give back this server's claims (on shutdown), so another server or the next start
    /// polls at once.
    pub async fn release(&self) -> Result<(), StoreError> {
        self.store.release_pollers(&self.node).await
    }

    async fn poll_one(&self, poller: Poller) -> Result<(), StoreError> {
        let every = Duration::from_millis(poller.every_ms.max(0) as u64);
        let heartbeat = self.heartbeat(&poller.name);
        let fetched = self.fetch(&poller).await;
        heartbeat.abort();
        match fetched {
            Ok(done) => {
                let (accepted, bad) = (done.alerts.len() as u64, done.bad_items as u64);
                let name = poller.name.clone();
                match self.store.poll_done(done).await {
                    Ok(()) => {
                        self.metrics.polled(&name, true, accepted, bad);
                        if accepted > 0 {
                            self.handoff.scan_soon();
                        }
                        tracing::info!(poller = %name, accepted, bad, "polled");
                        Ok(())
                    }
                    Err(e) => self.failed(&poller, every, &PollError::Store(e), None).await,
                }
            }
            Err((e, retry_after)) => self.failed(&poller, every, &e, retry_after).await,
        }
    }

    /// Renew this server's claim on `name` every third of the lease until aborted (the poll
    /// ended). A renewal that finds the claim gone (another server took the poller after a
    /// stall longer than the lease) stops renewing: the poll's end then keeps the cursor
    /// away from this server (`record_done` writes it only for the claim's holder).
    fn heartbeat(&self, name: &str) -> tokio::task::JoinHandle<()> {
        let (store, node, name) = (self.store.clone(), self.node.clone(), name.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let until = now_ms() + LEASE.as_millis() as i64;
                match store.renew_poller_claim(&name, &node, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(poller = %name, "the claim on the poller was lost during a poll");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(poller = %name, error = %e, "renewing the claim on the poller failed")
                    }
                }
            }
        })
    }

    /// Record a failed poll: the error, and the next try after the backoff (or the plugin's
    /// `retry-after`, if longer).
    async fn failed(
        &self,
        poller: &Poller,
        every: Duration,
        error: &PollError,
        retry_after: Option<Duration>,
    ) -> Result<(), StoreError> {
        let failures = u32::try_from(poller.failures + 1).unwrap_or(u32::MAX);
        let wait = spec::backoff(every, failures).max(retry_after.unwrap_or_default());
        let message = error.to_string();
        tracing::warn!(poller = %poller.name, failures, error = %message, retry_in = ?wait, "poll failed");
        self.metrics.polled(&poller.name, false, 0, 0);
        self.store
            .poll_failed(
                &poller.name,
                &self.node,
                &message,
                now_ms() + wait.as_millis() as i64,
            )
            .await
    }

    /// Call the action and read its items; the alerts and state to commit.
    async fn fetch(&self, poller: &Poller) -> Result<PollDone, (PollError, Option<Duration>)> {
        let mut input = poller.input_map();
        if let Some(cursor) = poller.cursor_value() {
            input.insert("cursor".into(), cursor);
        }
        let via = format!("poll:{}", poller.name);
        let ctx = CallContext {
            run_id: via.clone(),
            idempotency_key: new_id('k'),
        };
        let (plugin, action) = (poller.plugin.clone(), poller.action.clone());
        let outcome = self
            .runtime
            .call(&plugin, &action, &Value::Object(input), ctx)
            .await
            .map_err(|error| {
                let retry_after = error.retry_after;
                (
                    PollError::Call {
                        plugin: plugin.clone(),
                        action: action.clone(),
                        error,
                    },
                    retry_after,
                )
            })?;
        let Some(items) = outcome.output.get("items").filter(|v| v.is_array()) else {
            return Err((PollError::NoItems { plugin, action }, None));
        };
        let read = read_items(items, &via, self.max_items, now_ms())
            .map_err(|max| (PollError::TooMany { plugin, action, max }, None))?;
        for why in &read.bad {
            tracing::warn!(poller = %poller.name, item = %why, "polled item is not an alert");
        }
        let cursor = outcome.output.get("cursor").filter(|c| !c.is_null()).cloned();
        Ok(PollDone {
            name: poller.name.clone(),
            node: self.node.clone(),
            cursor,
            next_due: now_ms() + poller.every_ms,
            bad_items: read.bad.len() as i64,
            last_bad: read.bad.last().cloned(),
            alerts: read.alerts,
        })
    }
}

/// A poll's items read as intake reads a JSON array.
#[derive(Debug)]
struct Items {
    alerts: Vec<StoredAlert>,
    /// Where each item that is not an alert was and why ("item 3: expected a JSON object,
    /// got a number"), as the intake answer reports them.
    bad: Vec<String>,
}

/// Read `items` (a JSON array) with the parser `POST /api/v1/alerts` uses, as alerts
/// received `via` (also their source when an item names none); `Err(max)` when there are
/// more than `max`.
fn read_items(items: &Value, via: &str, max: usize, now: i64) -> Result<Items, usize> {
    let body = serde_json::to_vec(items).expect("a JSON value serialises");
    let parsed = intake::parse_bounded(Format::Json, &body, via, max).map_err(|e| e.max)?;
    let mut read = Items {
        alerts: Vec::new(),
        bad: Vec::new(),
    };
    for item in parsed {
        match item.alert {
            Ok(alert) => read.alerts.push(StoredAlert::new(new_id('a'), now, via, alert)),
            Err(e) => read.bad.push(format!("{}: {}", item.position, e.error)),
        }
    }
    Ok(read)
}

/// A poller as the store keeps its definition.
pub fn to_spec(p: &spec::PollConfig) -> PollerSpec {
    PollerSpec {
        name: p.name.clone(),
        plugin: p.plugin.clone(),
        action: p.action.clone(),
        every_ms: p.every.as_millis() as i64,
        input: p.input.clone(),
    }
}

/// Poll due pollers every second until aborted.
pub async fn run(polling: Polling) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = polling.poll_due().await {
            tracing::error!(error = %e, "polling failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn items_become_alerts_and_bad_items_are_reported_like_intake_reports_them() {
        let items = json!([
            {"number": "INC0010001", "short_description": "phish"},
            42,
            {"number": "INC0010003", "severity": "loud"},
            {"source": "edr", "title": "own source"}
        ]);
        let read = read_items(&items, "poll:tickets", 10, 7).unwrap();
        let sources: Vec<&str> = read.alerts.iter().map(|a| a.alert.source.as_str()).collect();
        assert_eq!(sources, ["poll:tickets", "edr"]);
        assert!(
            read.alerts
                .iter()
                .all(|a| a.via == "poll:tickets" && a.received_at == 7)
        );
        assert_eq!(read.alerts[0].alert.data["number"], "INC0010001");
        assert_eq!(
            read.bad,
            [
                "item 1: expected a JSON object, got a number",
                "item 2: unknown severity 'loud': use info, low, medium, high or critical, or a level 0-4"
            ]
        );
        assert_eq!(read_items(&items, "poll:tickets", 3, 7).unwrap_err(), 3);
    }
}
