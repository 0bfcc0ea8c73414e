//! Indicators: list (paged), show, and record a verdict.

use super::choice::{self, Choice, ChoiceParam};
use super::{Answer, Problem, bad_request, body_as, caller, keyset, list_query, not_found, ok};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, NotFound, TooLarge};
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::indicators::{
    INDICATOR_SORTS, Indicator, IndicatorError, IndicatorFilter, IndicatorKind, Verdict,
};
use crate::store::page::SortKey;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An indicator refused (a value or verdict that is not one) is a 400 that says why; a store
/// failure as the store's.
impl From<IndicatorError> for Problem {
    fn from(e: IndicatorError) -> Problem {
        match e {
            IndicatorError::Store(e) => e.into(),
            other => bad_request(&other.to_string()),
        }
    }
}

impl Sorted for Indicator {
    const SORTS: &'static [&'static str] = INDICATOR_SORTS;
    const DEFAULT_SORT: &'static str = "-last_seen";

    fn position(&self, column: &str) -> (SortKey, String) {
        let key = match column {
            "first_seen" => SortKey::Int(self.first_seen),
            "updated_at" => SortKey::Int(self.updated_at),
            "sightings" => SortKey::Int(self.sightings),
            "value" => SortKey::Text(self.value.clone()),
            _ => SortKey::Int(self.last_seen),
        };
        (key, self.key())
    }
}

/// `kind` of `GET /api/v1/indicators`.
pub(super) struct KindFilter;

impl Choice for KindFilter {
    const NAME: &'static str = "kind";
    const WHAT: &'static str = "a kind of indicator";
    const DESCRIPTION: &'static str = "Only this kind";
    const WORDS: &'static [&'static str] = IndicatorKind::NAMES;
}

/// `verdict` of `GET /api/v1/indicators`.
pub(super) struct VerdictFilter;

impl Choice for VerdictFilter {
    const NAME: &'static str = "verdict";
    const WHAT: &'static str = "a verdict";
    const DESCRIPTION: &'static str = "Only this verdict";
    const WORDS: &'static [&'static str] = Verdict::NAMES;
}

/// List indicators.
///
/// Sorts: `last_seen`, `first_seen`, `updated_at`, `sightings`, `value` (`-` before for
/// descending); default `-last_seen` (most recently seen first). At most 500 a page.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/indicators",
    tag = "indicators",
    params(
        ChoiceParam<KindFilter>,
        ChoiceParam<VerdictFilter>,
        PagingParams<Indicator>
    ),
    responses(
        (status = 200, description = "One page of indicators", body = Paged<Indicator>),
        (status = 400, response = BadRequest)
    )
)]
pub(super) async fn list_indicators(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let params = list_query(params, &["kind", "verdict"])?;
    let filter = IndicatorFilter {
        kind: choice::read::<KindFilter>(&params)?.and_then(IndicatorKind::from_name),
        verdict: choice::read::<VerdictFilter>(&params)?.and_then(Verdict::from_name),
    };
    let keyset = keyset::<Indicator>(&params)?;
    let page = app.store.indicator_page(&filter, &keyset).await?;
    ok(paging::paged(&keyset, page))
}

/// One indicator.
///
/// With its verdicts by source and its sightings. The value may hold slashes (a CIDR, a URL)
/// and is canonicalized as the store does.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/indicators/{kind}/{value}",
    tag = "indicators",
    params(
        ("kind" = IndicatorKind, Path, description = "What the indicator is"),
        ("value" = String, Path, description = "The indicator; may hold slashes")
    ),
    responses(
        (status = 200, description = "The indicator", body = Indicator),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn show_indicator(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    match app.store.indicator(&kind, &value).await? {
        Some(i) => ok(i),
        None => Err(not_found(format!("no {kind} indicator '{value}'"))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetVerdict {
    #[schema(value_type = Verdict)]
    verdict: String,
    /// 0 to 100.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    score: Option<i64>,
    #[serde(default)]
    source: Option<String>,
}

/// Record a verdict on an indicator.
///
/// The indicator is created if new. Audited as `indicator.set`.
///
/// Permission: `incidents-write`.
#[utoipa::path(
    put,
    path = "/api/v1/indicators/{kind}/{value}",
    tag = "indicators",
    params(
        ("kind" = IndicatorKind, Path, description = "What the indicator is"),
        ("value" = String, Path, description = "The indicator; may hold slashes")
    ),
    request_body(content = SetVerdict),
    responses(
        (status = 200, description = "The indicator", body = Indicator),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn set_indicator(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::IncidentsWrite).await?;
    let b: SetVerdict = body_as(body, "verdict").await?;
    let indicator = app
        .store
        .set_verdict(
            &kind,
            &value,
            &b.verdict,
            b.score,
            b.source.as_deref(),
            &who.actor,
        )
        .await?;
    ok(indicator)
}
