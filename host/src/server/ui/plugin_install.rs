//! Installing a plugin from the console, for those who may (`plugins-write`: operators and
//! administrators): `GET /plugin-installs`, where the operator gives a signed pack (an
//! `oci://` reference, or a file), and `GET /plugin-installs/ID`, the review of a prepared
//! install with what `osprey plugin install` shows before it asks: the plugin and its
//! actions, who signed it, its digest, what it requests beside what is granted now, and on
//! an upgrade what changes. The pages only read; preparing, applying and cancelling are the
//! API's `/api/v1/plugin-installs` calls, made by `console.js` as the signed-in user.

use super::plugins::capabilities;
use super::{not_found, page, require};
use crate::rbac::Permission;
use crate::server::api::plugin_installs::{MAX_UPLOAD_BYTES, review_of};
use crate::server::pending_installs::Installs;
use crate::server::web::WebUser;
use crate::store::audit::Actor;
use axum::Extension;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;

/// `GET /plugin-installs`: where the pack comes from.
pub(super) async fn form(user: WebUser) -> Response {
    if let Err(r) = require(&user, Permission::PluginsWrite) {
        return r;
    }
    page(
        &user,
        StatusCode::OK,
        "plugin_install.html",
        "Install a plugin",
        serde_json::json!({ "max_mib": MAX_UPLOAD_BYTES / (1024 * 1024) }),
    )
}

/// `GET /plugin-installs/ID`: the review of an install the user prepared.
pub(super) async fn review(
    user: WebUser,
    Extension(pending): Extension<Installs>,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require(&user, Permission::PluginsWrite) {
        return r;
    }
    let actor = Actor::user(&user.name);
    let Some(r) = pending.view(&id, actor.as_str(), |plan, expires_at| {
        review_of(plan, &id, expires_at)
    }) else {
        return not_found(
            &user,
            "install waiting for your review under this id: it was applied or cancelled, or it expired (15 minutes after it was prepared)",
        );
    };
    let rows = capabilities(&r.requested, r.granted.as_ref().unwrap_or(&Default::default()));
    let title = format!("Review {} {}", r.name, r.version);
    page(
        &user,
        StatusCode::OK,
        "plugin_review.html",
        &title,
        serde_json::json!({ "r": r, "capabilities": rows, "granted_before": r.granted.is_some() }),
    )
}
