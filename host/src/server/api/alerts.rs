//! Alerts as received, paged (intake, `POST /api/v1/alerts`, is in `server/intake.rs`).

use super::{Answer, caller, keyset, list_query, millis, ok, one_of, param, store_failed, text_key};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::openapi::BadRequest;
use crate::server::paging::{self, Paged};
use crate::store::alerts::{ALERT_SORTS, AlertFilter, DISPOSITIONS, StoredAlert};
use crate::store::page::SortKey;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::sync::Arc;

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
        (
            "disposition" = Option<String>,
            Query,
            description = "Only alerts pre-processing handled so: dropped, incident, duplicate, linked, unmatched, or pending (not yet)"
        ),
        ("since" = Option<i64>, Query, description = "Received at or after (Unix ms)"),
        ("until" = Option<i64>, Query, description = "Received before (Unix ms)"),
        ("sort" = Option<String>, Query, description = "received_at or source, '-' for descending; default -received_at"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 500; default 50"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
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
        disposition: one_of(&params, "disposition", "a disposition", DISPOSITIONS)?,
        since: millis(&params, "since")?,
        until: millis(&params, "until")?,
    };
    let keyset = keyset(&params, ALERT_SORTS, "-received_at")?;
    let page = app
        .store
        .alert_page(&filter, &keyset)
        .await
        .map_err(|e| store_failed(&e))?;
    ok(paging::paged(&keyset, page.items, page.more, |a| {
        let key = match keyset.column {
            "source" => text_key(&a.alert.source),
            _ => SortKey::Int(a.received_at),
        };
        (key, a.id.clone())
    }))
}
