//! `GET /metrics`: the Prometheus metrics (`crate::metrics`) in the OpenMetrics text format.
//!
//! Unauthenticated, on the server's one listener, like `/healthz`: the numbers say how busy
//! the server is, never what an alert or a secret holds. Operators who do not want them
//! public restrict the path at the network or the reverse proxy (see README, "Metrics").

use super::problem;
use crate::app::App;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// The metrics route.
pub fn router(app: Arc<App>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(app)
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.metrics.scrape(&app.store).await {
        Ok(text) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the metrics from the store failed");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is not reachable; the metrics cannot be read",
            )
        }
    }
}
