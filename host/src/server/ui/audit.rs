//! `GET /audit`: the audit log with filters (action prefix, actor, target), oldest first in
//! pages, and the result of verifying its keyed chain from the first entry to the last.

use super::{failed, page, require};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::web::WebUser;
use crate::store::audit::{AuditFilter, Verification};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use std::sync::Arc;

/// Entries one page shows.
const PAGE_SIZE: i64 = 100;

pub(super) async fn page_of_log(user: WebUser, State(app): State<Arc<App>>, uri: Uri) -> Response {
    if let Err(r) = require(&user, Permission::AuditRead) {
        return r;
    }
    let params = super::query_params(&uri);
    let filter = AuditFilter {
        action: params.get("action").map(String::as_str),
        actor: params.get("actor").map(String::as_str),
        target: params.get("target").map(String::as_str),
    };
    let after = params
        .get("after")
        .and_then(|a| a.parse::<i64>().ok())
        .unwrap_or(0);
    let found = match app.store.audit_page(&filter, after, PAGE_SIZE).await {
        Ok(p) => p,
        Err(e) => return failed(&user, e),
    };
    let verification = match app.store.verify_audit().await {
        Ok(Verification::Intact { entries, head }) => {
            serde_json::json!({ "intact": true, "text": format!("The chain is intact: {entries} entries verified, head {head}.") })
        }
        Ok(Verification::Broken { seq, reason }) => {
            serde_json::json!({ "intact": false, "text": format!("The chain is broken at entry {seq}: {reason}") })
        }
        Err(e) => return failed(&user, e),
    };
    let next = match (found.more, found.items.last()) {
        (true, Some(last)) => Some(super::next_page(
            "/audit",
            &params,
            "after",
            &last.seq.to_string(),
        )),
        _ => None,
    };
    page(
        &user,
        StatusCode::OK,
        "audit.html",
        "Audit log",
        serde_json::json!({ "entries": found.items, "next": next, "params": params, "verification": verification }),
    )
}
