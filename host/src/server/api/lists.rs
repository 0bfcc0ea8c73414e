//! Allow and block lists: the lists, their entries (paged), and adding and removing entries
//! (served to firewalls by `server/edl.rs`).

use super::{
    Answer, Problem, bad_request, body_as, caller, conflict, keyset, list_query, no_content, not_found, ok,
    param,
};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, Conflict, NotFound, TooLarge};
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::lists::{ENTRY_SORTS, ListEntry, ListError, ListInfo, NewEntry};
use crate::store::now_ms;
use crate::store::page::SortKey;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A list error: no such list is a 404, a full list a 409, the rest (a bad value, reason or
/// expiry) a 400 that says what was wrong.
impl From<ListError> for Problem {
    fn from(e: ListError) -> Problem {
        match e {
            ListError::NoSuchList(name) => not_found(format!("no list '{name}'")),
            ListError::Store(e) => e.into(),
            ListError::Full { .. } => conflict(&e.to_string()),
            other => bad_request(&other.to_string()),
        }
    }
}

impl Sorted for ListEntry {
    const SORTS: &'static [&'static str] = ENTRY_SORTS;
    const DEFAULT_SORT: &'static str = "value";

    fn position(&self, column: &str) -> (SortKey, String) {
        let key = match column {
            "created_at" => SortKey::Int(self.created_at),
            "updated_at" => SortKey::Int(self.updated_at),
            _ => SortKey::Text(self.value.clone()),
        };
        (key, self.value.clone())
    }
}

/// List the allow and block lists.
///
/// Every list, by name, with its number of live entries (there are few: no paging, and
/// `next_cursor` is always null).
///
/// Permission: `lists-read`.
#[utoipa::path(
    get,
    path = "/api/v1/lists",
    tag = "lists",
    responses((status = 200, description = "The lists", body = Paged<ListInfo>))
)]
pub(super) async fn list_lists(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::ListsRead).await?;
    let lists = app.store.lists().await?;
    ok(paging::Paged {
        items: lists,
        next_cursor: None,
    })
}

/// List the entries of a list.
///
/// Live entries (also expired ones not yet removed with `expired=true`). Sorts: `value`,
/// `created_at`, `updated_at`; default `value`. At most 500 a page.
///
/// Permission: `lists-read`.
#[utoipa::path(
    get,
    path = "/api/v1/lists/{name}/entries",
    tag = "lists",
    params(
        ("name" = String, Path, description = "The list's name"),
        ("expired" = Option<bool>, Query, description = "Also entries expired but not yet removed; default false"),
        PagingParams<ListEntry>
    ),
    responses(
        (status = 200, description = "One page of entries", body = Paged<ListEntry>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn list_entries(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::ListsRead).await?;
    let params = list_query(params, &["expired"])?;
    let expired = match param(&params, "expired") {
        None | Some("false") => false,
        Some("true") => true,
        Some(t) => return Err(bad_request(&format!("expired '{t}' must be true or false"))),
    };
    let keyset = keyset::<ListEntry>(&params)?;
    let page = app.store.list_entry_page(&name, expired, &keyset).await?;
    ok(paging::paged(&keyset, page))
}

/// A value to put on a list.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewListEntry {
    /// Checked against the list's type and stored in canonical form.
    value: String,
    /// Why it is on the list (kept with it and in the audit log).
    reason: String,
    /// Stop serving it after this long, such as "12h" or "7d" (or give `expires_at`);
    /// default: never.
    #[serde(default)]
    ttl: Option<String>,
    /// Stop serving it at this time (Unix ms, in the future).
    #[serde(default)]
    expires_at: Option<i64>,
}

/// A value as put on a list.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ListEntryAdded {
    list: String,
    /// In canonical form.
    value: String,
    expires_at: Option<i64>,
    /// False if it was on the list already: its reason and expiry were replaced.
    new: bool,
}

/// Put a value on a list.
///
/// As `osprey list add`: the value is checked against the list's type and stored in
/// canonical form; a value already on the list gets the new reason and expiry. Audited as
/// `list.add` (or `list.update`).
///
/// Permission: `lists-write`.
#[utoipa::path(
    post,
    path = "/api/v1/lists/{name}/entries",
    tag = "lists",
    params(("name" = String, Path, description = "The list's name")),
    request_body(content = NewListEntry),
    responses(
        (status = 201, description = "Added", body = ListEntryAdded),
        (status = 200, description = "It was on the list: updated", body = ListEntryAdded),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn add_entry(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::ListsWrite).await?;
    let b: NewListEntry = body_as(body, "entry").await?;
    let expires_at = match (b.ttl.as_deref(), b.expires_at) {
        (Some(_), Some(_)) => return Err(bad_request("entry: give ttl or expires_at, not both")),
        (Some(ttl), None) => Some(now_ms().saturating_add(
            crate::cases::duration_ms(ttl).map_err(|e| bad_request(&format!("entry: ttl: {e}")))?,
        )),
        (None, at) => at,
    };
    let entry = NewEntry {
        reason: &b.reason,
        expires_at,
        run_id: None,
    };
    let done = app
        .store
        .add_list_entries(
            &name,
            &[&b.value],
            &entry,
            app.config.lists.max_entries,
            &who.actor,
        )
        .await?;
    let new = !done.added.is_empty();
    let answer = ListEntryAdded {
        list: name,
        value: done
            .added
            .into_iter()
            .chain(done.updated)
            .next()
            .unwrap_or_default(),
        expires_at,
        new,
    };
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(answer)).into_response())
}

/// Take a value off a list.
///
/// As `osprey list remove`: the value is put in canonical form first (`10.0.0.1/32` removes
/// `10.0.0.1`); it may hold slashes (a CIDR, a URL). Audited as `list.remove`.
///
/// Permission: `lists-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/lists/{name}/entries/{value}",
    tag = "lists",
    params(
        ("name" = String, Path, description = "The list's name"),
        ("value" = String, Path, description = "The value; may hold slashes")
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn remove_entry(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((name, value)): Path<(String, String)>,
) -> Answer {
    let who = caller(&app, &headers, Permission::ListsWrite).await?;
    let done = app
        .store
        .remove_list_entries(&name, &[&value], &who.actor)
        .await?;
    if done.removed.is_empty() {
        return Err(not_found(format!("'{value}' is not on list '{name}'")));
    }
    no_content()
}
