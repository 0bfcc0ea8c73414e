//! `GET /lists` and `GET /lists/NAME`: the allow and block lists, their External Dynamic
//! List address, and their entries with who added them, why, and when they expire. Analysts
//! add and remove entries through forms sent to `/api/v1/lists/NAME/entries`.

use super::{failed, may, not_found, page, require};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::paging;
use crate::server::web::WebUser;
use crate::store::lists::{ListEntry, ListError};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;

/// Entries one page shows.
const PAGE_SIZE: &str = "200";

pub(super) async fn list(user: WebUser, State(app): State<Arc<App>>) -> Response {
    if let Err(r) = require(&user, Permission::ListsRead) {
        return r;
    }
    match app.store.lists().await {
        Ok(lists) => page(
            &user,
            StatusCode::OK,
            "lists.html",
            "Lists",
            serde_json::json!({ "lists": lists }),
        ),
        Err(e) => failed(&user, e),
    }
}

pub(super) async fn show(
    user: WebUser,
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    uri: Uri,
) -> Response {
    if let Err(r) = require(&user, Permission::ListsRead) {
        return r;
    }
    let info = match app.store.list(&name).await {
        Ok(Some(l)) => l,
        Ok(None) => return not_found(&user, &format!("list named {name}")),
        Err(e) => return failed(&user, e),
    };
    let params = super::query_params(&uri);
    let cursor = params.get("cursor").map(String::as_str);
    let keyset = match paging::keyset::<ListEntry>(None, cursor, Some(PAGE_SIZE)) {
        Ok(k) => k,
        Err(_) => return super::see_other(&format!("/lists/{name}")),
    };
    let found = match app.store.list_entry_page(&name, false, &keyset).await {
        Ok(p) => p,
        Err(ListError::NoSuchList(_)) => return not_found(&user, &format!("list named {name}")),
        Err(e) => return failed(&user, e),
    };
    let found = paging::paged(&keyset, found);
    let next = found
        .next_cursor
        .as_ref()
        .map(|c| super::next_page(&format!("/lists/{name}"), &params, "cursor", c));
    page(
        &user,
        StatusCode::OK,
        "list.html",
        &name,
        serde_json::json!({ "l": info, "entries": found.items, "next": next, "can_write": may(&user, Permission::ListsWrite) }),
    )
}
