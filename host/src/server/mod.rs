//! The HTTP server. `run(listener, app, shutdown)` serves until `shutdown` resolves, so
//! tests can bind port 0 and stop the server when they are done.
//!
//! For now it serves health and readiness, and a read-only list of plugins; the REST API
//! with authentication and roles comes with the web UI.

use crate::app::App;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Build the router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/plugins", get(list_plugins))
        .with_state(app)
}

/// Serve on `listener` until `shutdown` resolves. Also keeps the runtime in step with
/// installs and grant changes made by the CLI (every `runtime.policy_refresh`).
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let refresher = {
        let app = app.clone();
        let every = app.config.runtime.policy_refresh.max(Duration::from_millis(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let report = app.runtime.refresh().await;
                if report.policies_reloaded {
                    tracing::info!("plugin grants and settings reloaded");
                }
            }
        })
    };
    let result = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    refresher.abort();
    result
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

#[derive(Serialize)]
struct PluginSummary {
    name: String,
    version: String,
    description: String,
    actions: Vec<String>,
    granted: bool,
}

async fn list_plugins(State(app): State<Arc<App>>) -> Json<Vec<PluginSummary>> {
    Json(
        app.runtime
            .list()
            .iter()
            .map(|p| PluginSummary {
                name: p.manifest.name.clone(),
                version: p.manifest.version.clone(),
                description: p.description.description.clone(),
                actions: p.description.actions.iter().map(|a| a.name.clone()).collect(),
                granted: p.policy().granted,
            })
            .collect(),
    )
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
