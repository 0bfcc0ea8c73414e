//! Alerts as received, paged (intake, `POST /api/v1/alerts`, is in `server/intake.rs`).

use super::choice::{Choice, ChoiceParam};
use super::{Answer, caller, choice, keyset, list_query, millis, ok, param};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::openapi::BadRequest;
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::alerts::{ALERT_SORTS, AlertFilter, DISPOSITIONS, StoredAlert};
use crate::store::page::SortKey;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Sorted for StoredAlert {
    const SORTS: &'static [&'static str] = ALERT_SORTS;
    const DEFAULT_SORT: &'static str = "-received_at";

    fn position(&self, column: &str) -> (SortKey, String) {
        let key = match column {
            "source" => SortKey::Text(self.alert.source.clone()),
            _ => SortKey::Int(self.received_at),
        };
        (key, self.id.clone())
    }
}

/// `disposition` of `GET /api/v1/alerts`.
pub(super) struct Disposition;

impl Choice for Disposition {
    const NAME: &'static str = "disposition";
    const WHAT: &'static str = "a disposition";
    const DESCRIPTION: &'static str = "Only alerts pre-processing handled so (pending: not yet)";
    const WORDS: &'static [&'static str] = DISPOSITIONS;
}

/// List alerts.
///
/// Sorts: `received_at`, `source` (`-` before for descending); default `-received_at`.
/// At most 500 a page.
///
/// Permission: `incidents-read`.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    params(
        ("source" = Option<String>, Query, description = "Only alerts of this source"),
        ChoiceParam<Disposition>,
        ("since" = Option<i64>, Query, description = "Received at or after (Unix ms)"),
        ("until" = Option<i64>, Query, description = "Received before (Unix ms)"),
        PagingParams<StoredAlert>
    ),
    responses(
        (status = 200, description = "One page of alerts", body = Paged<StoredAlert>),
        (status = 400, response = BadRequest)
    )
)]
pub(super) async fn list_alerts(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::IncidentsRead).await?;
    let params = list_query(params, &["source", "disposition", "since", "until"])?;
    let filter = AlertFilter {
        source: param(&params, "source"),
        disposition: choice::read::<Disposition>(&params)?,
        since: millis(&params, "since")?,
        until: millis(&params, "until")?,
    };
    let keyset = keyset::<StoredAlert>(&params)?;
    let page = app.store.alert_page(&filter, &keyset).await?;
    ok(paging::paged(&keyset, page))
}
