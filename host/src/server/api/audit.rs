//! The audit log: its entries, paged in log order, and the verification of its keyed chain.

use super::{Answer, bad_request, caller, keyset, list_query, ok, param};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::openapi::BadRequest;
use crate::server::paging::{self, Paged, PagingParams, Sorted};
use crate::store::audit::{AUDIT_SORTS, AuditEntry, AuditFilter, Verification};
use crate::store::page::SortKey;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::sync::Arc;

impl Sorted for AuditEntry {
    const SORTS: &'static [&'static str] = AUDIT_SORTS;
    const DEFAULT_SORT: &'static str = "seq";

    fn position(&self, _: &str) -> (SortKey, String) {
        (SortKey::Int(self.seq), self.seq.to_string())
    }
}

/// Read the audit log.
///
/// In the log's order, `seq`: oldest first by default, `sort=-seq` for newest first. At most
/// 500 a page.
///
/// Permission: `audit-read`.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(
        ("action" = Option<String>, Query, description = "Only actions starting with this: secret. or secret.set"),
        ("actor" = Option<String>, Query, description = "Only entries by this actor: user:NAME, token:NAME, system, ..."),
        ("target" = Option<String>, Query, description = "Only entries on this target: plugin:NAME, run:ID, ..."),
        ("after_seq" = Option<i64>, Query, description = "Only entries after this one, in the sort's order (instead of cursor)"),
        PagingParams<AuditEntry>
    ),
    responses(
        (status = 200, description = "One page of audit entries", body = Paged<AuditEntry>),
        (status = 400, response = BadRequest)
    )
)]
pub(super) async fn list_audit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    caller(&app, &headers, Permission::AuditRead).await?;
    let params = list_query(params, &["action", "actor", "target", "after_seq"])?;
    let mut keyset = keyset::<AuditEntry>(&params)?;
    match (&keyset.after, param(&params, "after_seq")) {
        (Some(_), Some(_)) => return Err(bad_request("give cursor or after_seq, not both")),
        (Some((SortKey::Text(_), _)), None) => {
            return Err(bad_request("cursor is not a cursor of the audit log"));
        }
        (None, Some(t)) => {
            let seq = t
                .parse::<i64>()
                .map_err(|_| bad_request(&format!("after_seq '{t}' must be a whole number")))?;
            keyset.after = Some((SortKey::Int(seq), seq.to_string()));
        }
        _ => {}
    }
    let filter = AuditFilter {
        action: param(&params, "action"),
        actor: param(&params, "actor"),
        target: param(&params, "target"),
    };
    let page = app.store.audit_page_sorted(&filter, &keyset).await?;
    ok(paging::paged(&keyset, page))
}

/// The audit log's keyed chain, checked.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct AuditVerification {
    /// Whether every entry matches its MAC and the one before it.
    intact: bool,
    /// Entries checked (when intact).
    entries: Option<i64>,
    /// The last entry's MAC (when intact).
    head: Option<String>,
    /// The first entry that does not match (when broken).
    broken_at: Option<i64>,
    /// Why it does not match (when broken).
    reason: Option<String>,
}

/// Verify the audit log.
///
/// Recomputes the keyed chain of the whole log (as `osprey audit verify` does): every
/// entry's MAC (HMAC-SHA256 with a key derived from the master key) covers the previous
/// entry's MAC and its own fields, so a changed, removed or reordered entry breaks the chain
/// from there on, and the first such entry is named. A broken log is still a 200: the answer
/// says so. Entries cut off the end together with the head take a signed checkpoint to see
/// (`osprey audit verify --checkpoint`).
///
/// Permission: `audit-read`.
#[utoipa::path(
    get,
    path = "/api/v1/audit/verify",
    tag = "audit",
    responses((status = 200, description = "Whether the chain is intact", body = AuditVerification))
)]
pub(super) async fn verify_audit(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::AuditRead).await?;
    let answer = match app.store.verify_audit().await? {
        Verification::Intact { entries, head } => AuditVerification {
            intact: true,
            entries: Some(entries),
            head: Some(head),
            broken_at: None,
            reason: None,
        },
        Verification::Broken { seq, reason } => {
            tracing::error!(seq, reason, "the audit log's chain is broken");
            AuditVerification {
                intact: false,
                entries: None,
                head: None,
                broken_at: Some(seq),
                reason: Some(reason),
            }
        }
    };
    ok(answer)
}
