//! Alert intake over HTTP (`POST /api/v1/alerts`) and syslog (UDP and TCP listeners, off by
//! default). Parsing is `intake`'s; this file authenticates, bounds, stores and answers.
//!
//! A 2xx answer means the accepted alerts are committed (the store's group commit makes that
//! cheap). Over `max_in_flight` requests at once, or while pre-processing has
//! `max_undecided` alerts to decide, the answer is 503 with Retry-After, never a silent drop.
//! Committed alerts are handed to pre-processing in memory (`preprocess::handoff`).

use super::problem;
use crate::app::App;
use crate::auth::{self, AuthError};
use crate::config::IntakeConfig;
use crate::intake::{self, Format};
use crate::store::alerts::StoredAlert;
use crate::store::new_id;
use crate::store::now_ms;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
use tokio::sync::Semaphore;

#[derive(Clone)]
struct Intake {
    app: Arc<App>,
    config: IntakeConfig,
    in_flight: Arc<Semaphore>,
}

/// The intake routes.
pub fn router(app: Arc<App>) -> Router {
    let config = app.config.intake.clone();
    let state = Intake {
        in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        config,
        app,
    };
    Router::new()
        .route("/api/v1/alerts", post(post_alerts))
        // The body is read with our own limit, which answers 413 in our words.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct IntakeParams {
    /// json (also ndjson), passivedns, syslog; default json.
    #[param(schema_with = format_schema)]
    format: Option<String>,
    /// The source of alerts that do not name one.
    source: Option<String>,
}

/// `format` in the OpenAPI document: one of [`Format::NAMES`].
fn format_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(Format::NAMES.iter().copied()))
        .build()
}

/// A JSON body of alerts, in the OpenAPI document: one alert object, or an array of them
/// (an item that is not an object is refused on its own, in the answer, so any array is
/// read).
struct JsonAlerts;

impl utoipa::PartialSchema for JsonAlerts {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Object))
            .item(ArrayBuilder::new())
            .into()
    }
}

impl utoipa::ToSchema for JsonAlerts {}

/// The fate of one item of a request: where it was (`at`, `n`), and its alert's id or why
/// there is none.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Fate {
    #[serde(flatten)]
    position: intake::Position,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What became of a request's alerts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct IntakeAnswer {
    accepted: usize,
    rejected: usize,
    items: Vec<Fate>,
}

/// Send alerts.
///
/// The body is JSON (one alert object, or an array of them), NDJSON, PassiveDNS or syslog
/// lines, as `format` says. A 200 means the accepted alerts are stored; items that could not
/// be read are listed with their error. Over `intake.max_in_flight` requests at once the
/// answer is 503 with `Retry-After`; nothing is dropped silently.
///
/// Permission: `alerts-write`.
#[utoipa::path(
    post,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(IntakeParams),
    request_body(
        description = "Alerts, in the request's `format`",
        content(
            (inline(JsonAlerts) = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/plain")
        )
    ),
    responses(
        (status = 200, description = "Stored (those accepted)", body = IntakeAnswer),
        (status = 400, response = super::openapi::BadRequest),
        (status = 413, response = super::openapi::TooLarge)
    )
)]
async fn post_alerts(
    State(intake): State<Intake>,
    headers: HeaderMap,
    // A query that does not read (a parameter given twice) is refused below, after the
    // token, as a problem like every other refusal.
    params: Result<Query<IntakeParams>, QueryRejection>,
    body: Body,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let token = match auth::authenticate(
        &intake.app.store,
        &intake.app.tokens,
        authorization,
        crate::rbac::Permission::AlertsWrite,
    )
    .await
    {
        Ok(Ok(token)) => token,
        Ok(Err(e)) => {
            let (status, kind) = match e {
                AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "permission-denied"),
                AuthError::Missing | AuthError::Invalid => (StatusCode::UNAUTHORIZED, "unauthorized"),
            };
            tracing::warn!(error = %e, "intake request refused");
            return problem(status, kind, &e.to_string());
        }
        Err(e) => return store_unavailable(&e),
    };
    let Ok(_permit) = intake.in_flight.clone().try_acquire_owned() else {
        tracing::warn!(
            max_in_flight = intake.config.max_in_flight,
            "intake saturated; answering 503"
        );
        return retry_later("the server is handling as many alert requests as it allows; retry shortly");
    };
    // Backpressure: while pre-processing is this far behind, senders wait rather than the lag
    // growing without bound. What was accepted before is committed and will be decided.
    let undecided = intake.app.handoff.waiting();
    if undecided >= intake.config.max_undecided {
        intake.app.metrics.intake_throttled();
        tracing::debug!(undecided, "pre-processing lags; answering 503");
        return retry_later(&format!(
            "pre-processing is {undecided} alerts behind (intake.max_undecided is {}); nothing was stored, retry shortly",
            intake.config.max_undecided
        ));
    }
    let params = match params {
        Ok(Query(params)) => params,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "invalid",
                &format!("the query is not right: {}", e.body_text()),
            );
        }
    };
    let format = match params.format.as_deref() {
        None => Format::Json,
        Some(name) => match Format::from_name(name) {
            Some(f) => f,
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "unknown-format",
                    &format!(
                        "unknown format '{name}'; the formats are: {}",
                        Format::NAMES.join(", ")
                    ),
                );
            }
        },
    };
    let max = intake.config.max_body_bytes;
    let body = match http_body_util::Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                &format!("the body is larger than {max} bytes (intake.max_body_bytes); nothing was stored"),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading an intake body failed");
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "the request body could not be read",
            );
        }
    };
    let body_len = body.len();
    let via = format!("token:{}", token.name);
    let default_source = params.source.as_deref().unwrap_or(format.name());
    let max_items = intake.config.max_alerts_per_request;
    let parse = {
        let default_source = default_source.to_owned();
        move || intake::parse_bounded(format, &body, &default_source, max_items)
    };
    // A big body is parsed off the async threads, so other requests are not held up.
    let parsed = if body_len > 64 * 1024 {
        match tokio::task::spawn_blocking(parse).await {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(error = %e, "parsing an intake body failed");
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the body could not be parsed",
                );
            }
        }
    } else {
        parse()
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(too_many) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-alerts",
                &format!(
                    "{too_many}; the most is {} (intake.max_alerts_per_request); nothing was stored",
                    too_many.max
                ),
            );
        }
    };
    let (fates, alerts) = fates_and_alerts(parsed, &via);
    let accepted = alerts.len();
    let rejected = fates.len() - accepted;
    if accepted == 0 {
        let errors: Vec<&Fate> = fates.iter().collect();
        let title = match fates.first() {
            None => "the body holds no alerts".to_owned(),
            Some(f) => format!(
                "no alert was accepted; first error: {}",
                f.error.as_deref().unwrap_or("?")
            ),
        };
        return problem_with(
            StatusCode::BAD_REQUEST,
            "malformed",
            &title,
            serde_json::json!({ "items": errors }),
        );
    }
    if let Err(e) = commit(&intake.app, alerts).await {
        return store_unavailable(&e);
    }
    tracing::info!(via, accepted, rejected, "alerts received");
    Json(IntakeAnswer {
        accepted,
        rejected,
        items: fates,
    })
    .into_response()
}

/// Store `alerts` (committed on return), count them, and hand them to pre-processing. In a
/// task of its own: a sender that hangs up while the commit runs cancels the request, but
/// alerts that got committed all the same must still reach pre-processing at once (not
/// wait for the scan for orphans).
async fn commit(app: &Arc<App>, alerts: Vec<StoredAlert>) -> Result<(), crate::store::StoreError> {
    let app = app.clone();
    let committing = tokio::spawn(async move {
        let sources = per_source(&alerts);
        let committed = app.store.insert_alerts(alerts).await?;
        count_ingested(&app, sources);
        app.handoff.push(committed);
        Ok(())
    });
    match committing.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(crate::store::StoreError::Writer(
            "the server is shutting down".into(),
        )),
    }
}

/// Why one alert given as JSON text was not stored.
#[derive(Debug, thiserror::Error)]
pub(super) enum OneAlertError {
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Store one alert given as JSON text (one object), read exactly as `POST /api/v1/alerts`
/// reads one, received `via` (such as `plugin:NAME`), with `default_source` when it names
/// none. Returns its id once committed.
pub(super) async fn ingest_one(
    app: &Arc<App>,
    json: &str,
    default_source: &str,
    via: &str,
) -> Result<String, OneAlertError> {
    let parsed = intake::parse_bounded(Format::Json, json.as_bytes(), default_source, 1)
        .map_err(|too_many| OneAlertError::Malformed(format!("{too_many}; give one alert")))?;
    let (fates, alerts) = fates_and_alerts(parsed, via);
    let (Some(id), 1) = (fates.first().and_then(|f| f.id.clone()), alerts.len()) else {
        let why = fates.first().and_then(|f| f.error.clone());
        return Err(OneAlertError::Malformed(
            why.unwrap_or_else(|| "the text holds no alert".to_owned()),
        ));
    };
    commit(app, alerts).await?;
    Ok(id)
}

/// Each item's fate, in order, and the alerts to store.
fn fates_and_alerts(parsed: Vec<intake::Item>, via: &str) -> (Vec<Fate>, Vec<StoredAlert>) {
    let now = now_ms();
    let mut fates = Vec::with_capacity(parsed.len());
    let mut alerts = Vec::with_capacity(parsed.len());
    for item in parsed {
        match item.alert {
            Ok(alert) => {
                let id = new_id('a');
                fates.push(Fate {
                    position: item.position,
                    id: Some(id.clone()),
                    error: None,
                });
                alerts.push(StoredAlert::new(id, now, via, alert));
            }
            Err(e) => fates.push(Fate {
                position: item.position,
                id: None,
                error: Some(e.error.to_string()),
            }),
        }
    }
    (fates, alerts)
}

/// How many of `alerts` each source sent.
fn per_source(alerts: &[StoredAlert]) -> std::collections::HashMap<String, u64> {
    let mut counts = std::collections::HashMap::new();
    for a in alerts {
        *counts.entry(a.alert.source.clone()).or_default() += 1;
    }
    counts
}

/// Count alerts as ingested, once they are committed.
fn count_ingested(app: &App, sources: std::collections::HashMap<String, u64>) {
    for (source, n) in sources {
        app.metrics.alerts_ingested(&source, n);
    }
}

fn store_unavailable(e: &crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "storing alerts failed");
    retry_later("the alert store is unavailable; nothing was stored; retry shortly")
}

fn retry_later(title: &str) -> Response {
    let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable", title);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

fn problem_with(status: StatusCode, kind: &str, title: &str, extra: serde_json::Value) -> Response {
    let mut body = serde_json::json!({
        "type": format!("https://osprey.dev/problems/{kind}"),
        "title": title,
        "status": status.as_u16(),
    });
    if let (Some(b), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The most bytes of one syslog message (a UDP datagram or a TCP line).
const MAX_SYSLOG_MESSAGE: usize = 64 * 1024;
/// The most messages stored in one write.
const SYSLOG_BATCH: usize = 500;

/// Start the syslog listeners that `config` turns on. Returns their tasks (abort to stop).
pub async fn start_syslog(app: &Arc<App>) -> std::io::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    if let Some(addr) = app.config.intake.syslog_udp {
        let socket = tokio::net::UdpSocket::bind(addr).await?;
        tracing::info!(addr = %socket.local_addr()?, "syslog listener on UDP");
        tasks.push(tokio::spawn(syslog_udp(app.clone(), socket)));
    }
    if let Some(addr) = app.config.intake.syslog_tcp {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "syslog listener on TCP");
        tasks.push(tokio::spawn(syslog_tcp(app.clone(), listener)));
    }
    Ok(tasks)
}

/// Store syslog messages; a bad one is logged and skipped (syslog has no way to answer).
async fn store_syslog(app: &App, messages: &[Vec<u8>], via: &str) {
    let mut alerts = Vec::new();
    for m in messages {
        for item in intake::parse(Format::Syslog, m, "syslog") {
            match item {
                Ok(alert) => alerts.push(alert),
                Err(e) => tracing::warn!(via, error = %e, "syslog message skipped"),
            }
        }
    }
    let now = now_ms();
    let alerts: Vec<StoredAlert> = alerts
        .into_iter()
        .map(|alert| StoredAlert::new(new_id('a'), now, via, alert))
        .collect();
    let n = alerts.len();
    let sources = per_source(&alerts);
    match app.store.insert_alerts(alerts).await {
        Ok(committed) => {
            count_ingested(app, sources);
            app.handoff.push(committed)
        }
        Err(e) => tracing::error!(via, error = %e, lost = n, "storing syslog messages failed"),
    }
}

async fn syslog_udp(app: Arc<App>, socket: tokio::net::UdpSocket) {
    let mut buf = vec![0u8; MAX_SYSLOG_MESSAGE];
    loop {
        let mut batch = Vec::new();
        match socket.recv_from(&mut buf).await {
            Ok((n, _)) => batch.push(buf[..n].to_vec()),
            Err(e) => {
                tracing::warn!(error = %e, "syslog UDP receive failed");
                continue;
            }
        }
        // Whatever else has arrived goes into the same write.
        while batch.len() < SYSLOG_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, _)) => batch.push(buf[..n].to_vec()),
                Err(_) => break,
            }
        }
        store_syslog(&app, &batch, "syslog-udp").await;
    }
}

async fn syslog_tcp(app: Arc<App>, listener: tokio::net::TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "syslog TCP accept failed");
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stream);
            loop {
                let mut batch = Vec::new();
                // One line, then whatever complete lines are already buffered.
                loop {
                    let mut line = Vec::new();
                    let n = match (&mut reader)
                        .take(MAX_SYSLOG_MESSAGE as u64)
                        .read_until(b'\n', &mut line)
                        .await
                    {
                        Ok(n) => n,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "syslog TCP read failed");
                            0
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    batch.push(line);
                    if batch.len() >= SYSLOG_BATCH || !reader.buffer().contains(&b'\n') {
                        break;
                    }
                }
                if batch.is_empty() {
                    return;
                }
                store_syslog(&app, &batch, "syslog-tcp").await;
            }
        });
    }
}
