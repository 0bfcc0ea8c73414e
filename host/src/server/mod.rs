//! The HTTP server. `run(listener, app, shutdown)` serves until `shutdown` resolves, so
//! tests can bind port 0 and stop the server when they are done.
//!
//! It serves health and readiness, a read-only list of plugins, alert intake (`intake.rs`),
//! External Dynamic Lists (`edl.rs`), and the REST API for incidents, tasks and rules
//! (`api.rs`); the last three are behind API tokens with scopes (a token may act for a user).
//! People sign in (`web/`), answer questions from signed links or their inbox
//! (`humans.rs`). Roles and permissions on routes come with the web UI.

mod api;
mod edl;
mod hooks;
mod humans;
mod intake;
mod metrics;
mod openapi;
mod paging;
mod pending_installs;
mod shown;
mod ui;
pub(crate) mod web;

use crate::app::App;
use crate::schedule::{Scheduler, SystemClock};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Build the router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app.clone())
        .merge(edl::router(app.clone()))
        .merge(api::router(app.clone()))
        .merge(openapi::router(app.clone()))
        .merge(web::router(app.clone()))
        .merge(humans::router(app.clone()))
        .merge(ui::router(app.clone()))
        .merge(metrics::router(app.clone()))
        .merge(hooks::router(app.clone()))
        .merge(intake::router(app))
        // Installs prepared through the API, which the console's review page reads too.
        .layer(axum::Extension(pending_installs::Installs::default()))
}

/// Log what the loaded playbooks should fix: undeclared plugins their scripts call, limits
/// above the server's maxima.
fn warn_playbooks(app: &App) {
    let Ok(limits) = app.config.run_limits() else {
        return;
    };
    for pb in app.playbooks.list() {
        for warning in pb.warnings(&limits) {
            tracing::warn!(playbook = pb.name(), %warning, "playbook warning");
        }
    }
}

/// Show `text` at the top of every console page this process serves (`osprey demo`: that
/// its connectors are mocked). Set before [`run`].
pub fn show_banner(text: &str) {
    ui::set_banner(text);
}

/// Serve on `listener` until `shutdown` resolves. Also runs, in the background: the run
/// workers, the cron scheduler, the refresher that picks up plugin installs, grant changes
/// and playbook edits (every `runtime.policy_refresh`), pre-processing, the SLA watch, the
/// question watch (reminders, timeouts) and the mail sender. On shutdown, runs being
/// replayed stop between two operations and are queued again.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    // The workers hear of the shutdown at once, not after the last HTTP connection closes:
    // replays in flight stop between two operations and are queued again.
    let shutdown = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.send_replace(true);
        }
    };
    let syslog = intake::start_syslog(&app).await?;
    let workers = app.executor.spawn_workers(stopped.clone());
    let list_expiry = edl::spawn_expiry(&app);
    let preprocessing = tokio::spawn(preprocess_alerts(app.clone()));
    let sla = tokio::spawn(watch_sla(app.clone()));
    let polling = polling(&app).await;
    let poller = tokio::spawn(crate::poll::run(polling.clone()));
    let mail = crate::mail::sender::spawn_sender(app.mail_sender(), app.mail_queued.clone());
    let slack = crate::humans::slack_sender::spawn(
        crate::humans::slack_sender::SlackSender {
            store: app.store.clone(),
            runtime: app.runtime.clone(),
        },
        app.humans.slack_queued(),
    );
    app.humans.listening_at(listener.local_addr()?);
    let questions = tokio::spawn(crate::humans::watch(app.humans.clone(), app.store.clone()));
    let background = {
        let app = app.clone();
        let every = app.config.runtime.policy_refresh.max(Duration::from_millis(50));
        tokio::spawn(async move {
            let scheduler = Scheduler::new(
                app.executor.clone(),
                app.playbooks.clone(),
                Arc::new(SystemClock),
                app.config.runs.timezone,
            );
            let mut signature = crate::playbook::dir_signature(&app.config.playbooks_dir);
            warn_playbooks(&app);
            if let Err(e) = app.audit_playbooks().await {
                tracing::error!(error = %e, "recording playbook versions failed");
            }
            let mut tick = tokio::time::interval(every.min(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let report = app.runtime.refresh().await;
                if report.policies_reloaded {
                    tracing::info!("plugin grants and settings reloaded");
                }
                let now = crate::playbook::dir_signature(&app.config.playbooks_dir);
                if now != signature {
                    signature = now;
                    for e in app.playbooks.reload(&app.config.playbooks_dir) {
                        tracing::error!(error = %e, "playbook not loaded");
                    }
                    tracing::info!(playbooks = app.playbooks.list().len(), "playbooks reloaded");
                    warn_playbooks(&app);
                    if let Err(e) = app.audit_playbooks().await {
                        tracing::error!(error = %e, "recording playbook versions failed");
                    }
                }
                if let Err(e) = scheduler.tick().await {
                    tracing::error!(error = %e, "cron scheduler failed");
                }
            }
        })
    };
    // Ready only once every listener is bound (tests and orchestrators wait for this line).
    tracing::info!(
        addr = %listener.local_addr()?,
        database = %crate::store::redact_url(&app.config.database_url()),
        plugins = app.runtime.list().len(),
        "osprey is ready"
    );
    // With the peer's address, which sign-in audits and rate-limits by (`web/rate_limit.rs`).
    let service = router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await;
    background.abort();
    list_expiry.abort();
    preprocessing.abort();
    sla.abort();
    poller.abort();
    if let Err(e) = polling.release().await {
        tracing::warn!(error = %e, "giving back poller claims failed; they lapse with their lease");
    }
    mail.abort();
    slack.abort();
    questions.abort();
    for t in syslog {
        t.abort();
    }
    stop.send_replace(true);
    let _ = workers.await;
    result
}

/// Alerts pre-processed in one transaction, at most.
const PREPROCESS_BATCH: i64 = 500;

/// How often pre-processing looks in the store for alerts no server is deciding: received
/// more than [`ORPHAN_AGE`] ago and still undecided (a crashed server's, on PostgreSQL).
const ORPHAN_SCAN: Duration = Duration::from_secs(5);
const ORPHAN_AGE: Duration = Duration::from_secs(10);

/// Pre-process alerts as they are committed: those intake hands over in memory, at once and
/// in batches of whatever has gathered while the last batch committed; and those the store
/// holds undecided, when the hand-off asks for a scan (at start, for what a crash left; past
/// its capacity; after a poll) and every few seconds for other servers' orphans. While a
/// scan finds a backlog, scan batches and hand-off batches take turns, so neither starves.
async fn preprocess_alerts(app: Arc<App>) {
    let (executor, metrics, handoff) = (&app.executor, &app.metrics, &app.handoff);
    let mut orphans_at = std::time::Instant::now() + ORPHAN_SCAN;
    let mut backlog = false;
    loop {
        let mut worked = false;
        // A scan: of every undecided alert (`None`), or of those older than ORPHAN_AGE.
        let scan = if backlog || handoff.take_scan() {
            Some(None)
        } else if std::time::Instant::now() >= orphans_at {
            orphans_at = std::time::Instant::now() + ORPHAN_SCAN;
            Some(Some(crate::store::now_ms() - ORPHAN_AGE.as_millis() as i64))
        } else {
            None
        };
        if let Some(before) = scan {
            worked = true;
            match crate::preprocess::process_pending(executor, metrics, PREPROCESS_BATCH, before).await {
                // More may wait: scan again after the next hand-off batch.
                Ok(n) => backlog = n as i64 >= PREPROCESS_BATCH,
                Err(e) => {
                    tracing::error!(error = %e, "pre-processing alerts failed; retrying");
                    handoff.scan_soon();
                    backlog = false;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let taken = handoff.take(PREPROCESS_BATCH as usize);
        if !taken.is_empty() {
            worked = true;
            let decided = crate::preprocess::decide(executor, metrics, &taken.alerts()).await;
            handoff.finished(taken);
            match decided {
                Ok(true) => {}
                // Some were decided first (found by a scan too, or by another server): the
                // store has the rest.
                Ok(false) => handoff.scan_soon(),
                Err(e) => {
                    // They are committed: the scan finds them again.
                    tracing::error!(error = %e, "pre-processing alerts failed; retrying from the store");
                    handoff.scan_soon();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if !worked {
            handoff.wait(Duration::from_secs(1)).await;
        }
    }
}

/// The polling intake, with the pollers of `[[intake.poll]]` put into the store.
async fn polling(app: &Arc<App>) -> crate::poll::Polling {
    let polling = crate::poll::Polling {
        store: app.store.clone(),
        runtime: app.runtime.clone(),
        metrics: app.metrics.clone(),
        handoff: app.handoff.clone(),
        max_items: app.config.intake.max_alerts_per_request,
        node: crate::poll::Polling::node_name(),
    };
    if let Err(e) = polling.sync_config(&app.config.intake.poll).await {
        tracing::error!(error = %e, "storing the configured pollers failed");
    }
    polling
}

/// Look for SLA breaches every second.
async fn watch_sla(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = crate::sla_watch::check_breaches(&app.executor, &app.metrics).await {
            tracing::error!(error = %e, "checking SLA timers failed; retrying");
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.store.ready().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "the database is not reachable or not migrated",
            )
        }
    }
}

/// An RFC 9457 problem document: a stable type, a human title, no internals.
fn problem(status: StatusCode, kind: &str, title: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("https://osprey.dev/problems/{kind}"),
        "title": title,
        "status": status.as_u16(),
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}
