//! A playbook's charts (`[[chart]]` in its `playbook.toml`): the points its runs recorded,
//! summed in the store over a bounded window. [`read`] is the one reading, for the API and
//! the console's pages alike.

use super::{Answer, Problem, bad_request, caller, millis, not_found, ok, query};
use crate::app::App;
use crate::playbook::Playbook;
use crate::playbook::chart::{self, Bucket, ChartError, ChartKind, ChartSpec};
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, NotFound};
use crate::store::{Store, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One bucket of a line or bar chart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct BucketValue {
    /// The bucket's start (Unix ms, UTC).
    pub at: i64,
    pub value: f64,
}

/// One row of a top chart.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct GroupValue {
    /// The grouped field's value, as text.
    pub key: String,
    pub value: f64,
}

/// A chart's data: what it counts or sums, over which window, and the values.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct ChartData {
    pub playbook: String,
    /// The chart's name in `playbook.toml`.
    pub chart: String,
    pub title: String,
    pub kind: ChartKind,
    /// The series `record` wrote.
    pub series: String,
    /// Line and bar: the length of a bucket.
    pub bucket: Option<Bucket>,
    /// The field summed; none: the points are counted.
    pub sum: Option<String>,
    /// Top: the field the rows are grouped by.
    pub group: Option<String>,
    /// The window read: from `since` (inclusive) to `until` (exclusive), Unix ms.
    pub since: i64,
    pub until: i64,
    /// Line and bar: every bucket of the window, oldest first, 0 where nothing was recorded
    /// (at most 400).
    pub points: Vec<BucketValue>,
    /// Top: the largest groups, largest first (at most the chart's `top`).
    pub rows: Vec<GroupValue>,
}

/// Why a chart could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error(transparent)]
    Window(#[from] ChartError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ReadError> for Problem {
    fn from(e: ReadError) -> Problem {
        match e {
            ReadError::Window(e) => bad_request(&e.to_string()),
            ReadError::Store(e) => e.into(),
        }
    }
}

/// Read `spec` of `playbook` at `now`, from `since` (default: the chart's window).
pub(crate) async fn read(
    store: &Store,
    playbook: &Playbook,
    spec: &ChartSpec,
    since: Option<i64>,
    now: i64,
) -> Result<ChartData, ReadError> {
    let q = spec.query(since, now)?;
    let name = playbook.name();
    let (points, rows) = match (&q.group, q.bucket_ms) {
        (Some((group, top)), _) => {
            let found = store
                .point_top(name, &q.series, q.since, q.until, group, q.sum.as_deref(), *top)
                .await?;
            let rows = found
                .into_iter()
                .map(|(key, value)| GroupValue { key, value })
                .collect();
            (Vec::new(), rows)
        }
        (None, Some(bucket_ms)) => {
            let found = store
                .point_buckets(name, &q.series, q.since, q.until, bucket_ms, q.sum.as_deref())
                .await?;
            let points = chart::fill(&q, &found)
                .into_iter()
                .map(|(at, value)| BucketValue { at, value })
                .collect();
            (points, Vec::new())
        }
        (None, None) => (Vec::new(), Vec::new()),
    };
    Ok(ChartData {
        playbook: name.to_owned(),
        chart: spec.name.clone(),
        title: spec.title.clone(),
        kind: spec.kind,
        series: spec.series.clone(),
        bucket: q.bucket_ms.map(|_| spec.bucket()),
        sum: spec.sum.clone(),
        group: spec.group.clone(),
        since: q.since,
        until: q.until,
        points,
        rows,
    })
}

/// A playbook's chart, or 404 naming the ones it has.
fn chart_or_404<'a>(playbook: &'a Playbook, chart: &str) -> Result<&'a ChartSpec, Problem> {
    let charts = &playbook.meta.charts;
    charts
        .iter()
        .map(|c| c.get_ref())
        .find(|c| c.name == chart)
        .ok_or_else(|| {
            let names: Vec<&str> = charts.iter().map(|c| c.get_ref().name.as_str()).collect();
            not_found(format!(
                "playbook {} has no chart named '{chart}' (its charts: {})",
                playbook.name(),
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ))
        })
}

/// Read a playbook's chart.
///
/// The points its runs recorded (`record(series, #{...})`) in the chart's series, counted or
/// summed as `playbook.toml`'s `[[chart]]` says: per hour or day for a line or bar (every
/// bucket of the window, 0 where none), or the largest groups of a field for a top chart.
/// The window is the chart's (`window`, default 30 days, or 2 days by hour) unless `since`
/// says; it reaches at most 400 buckets back (400 days for a top chart), so the answer is
/// bounded and not paged. Buckets are UTC.
///
/// Permission: `playbooks-read`.
#[utoipa::path(
    get,
    path = "/api/v1/playbooks/{name}/charts/{chart}",
    tag = "playbooks",
    params(
        ("name" = String, Path, description = "The playbook's name"),
        ("chart" = String, Path, description = "The chart's name in its playbook.toml"),
        ("since" = Option<i64>, Query, description = "From this time (Unix ms); default: the chart's window before now")
    ),
    responses(
        (status = 200, description = "The chart's data", body = ChartData),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn show_chart(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((name, chart)): Path<(String, String)>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::PlaybooksRead).await?;
    let params = query(params, &["since"])?;
    let since = millis(&params, "since")?;
    let playbook = app.playbooks.get(&name).map_err(|e| not_found(e.to_string()))?;
    let spec = chart_or_404(&playbook, &chart)?;
    ok(read(&app.store, &playbook, spec, since, crate::store::now_ms()).await?)
}
