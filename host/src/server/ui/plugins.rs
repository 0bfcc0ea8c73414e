//! The auditor's page: `GET /plugins` and `GET /plugins/NAME`, for each plugin its actions,
//! what it requests beside what the operator granted (outbound HTTP, private address ranges,
//! secrets, kv room, limits), its secret names with whether a value is set (never the
//! values), and its recent calls and denials. Laid out to be printed. Changing a grant is
//! `PUT /api/v1/plugins/NAME/grant` (operators and admins); the page offers that form only
//! to them.

use super::{failed, may, not_found, page, require};
use crate::app::App;
use crate::capability::Capabilities;
use crate::plugin::LoadedPlugin;
use crate::rbac::Permission;
use crate::server::web::WebUser;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Calls listed on a plugin's page.
const RECENT_CALLS: i64 = 50;

#[derive(Serialize)]
struct Summary {
    name: String,
    version: String,
    description: String,
    actions: usize,
    granted: bool,
    http_granted: usize,
    http_requested: usize,
    secrets: usize,
    /// The mock answering its calls (mock mode), if any.
    mock: Option<crate::server::api::plugins::PluginMockView>,
}

fn summary(p: &LoadedPlugin) -> Summary {
    let policy = p.policy();
    Summary {
        name: p.manifest.name.clone(),
        version: p.manifest.version.clone(),
        description: p.manifest.description.clone(),
        actions: p.description.actions.len(),
        granted: policy.granted,
        http_granted: policy.grant.http.len(),
        http_requested: p.manifest.requests.http.len(),
        secrets: p.manifest.requests.secrets.len(),
        mock: crate::server::api::plugins::PluginMockView::of(p),
    }
}

pub(super) async fn list(user: WebUser, State(app): State<Arc<App>>) -> Response {
    if let Err(r) = require(&user, Permission::PluginsRead) {
        return r;
    }
    let plugins: Vec<Summary> = app.runtime.list().iter().map(|p| summary(p)).collect();
    let pollers = match app.store.pollers().await {
        Ok(p) => p,
        Err(e) => return failed(&user, e),
    };
    page(
        &user,
        StatusCode::OK,
        "plugins.html",
        "Plugins",
        serde_json::json!({
            "plugins": plugins,
            "pollers": pollers,
            "can_install": may(&user, Permission::PluginsWrite),
        }),
    )
}

/// One row of the requested-versus-granted table.
#[derive(Serialize)]
pub(super) struct Capability {
    kind: &'static str,
    value: String,
    requested: bool,
    granted: bool,
}

/// Every item either side names, in order, each marked requested and/or granted (also the
/// review of an install, `plugin_install.rs`).
pub(super) fn capabilities(requested: &Capabilities, granted: &Capabilities) -> Vec<Capability> {
    let mut rows = Vec::new();
    let mut add = |kind: &'static str, req: BTreeSet<String>, gra: BTreeSet<String>| {
        for value in req.union(&gra) {
            rows.push(Capability {
                kind,
                value: value.clone(),
                requested: req.contains(value),
                granted: gra.contains(value),
            });
        }
    };
    let strings = |items: &mut dyn Iterator<Item = String>| items.collect::<BTreeSet<String>>();
    add(
        "outbound HTTP",
        strings(&mut requested.http.iter().map(|h| h.to_string())),
        strings(&mut granted.http.iter().map(|h| h.to_string())),
    );
    add(
        "private addresses",
        strings(&mut requested.private_ranges.iter().map(|r| r.to_string())),
        strings(&mut granted.private_ranges.iter().map(|r| r.to_string())),
    );
    add("secret", requested.secrets.clone(), granted.secrets.clone());
    let webhooks = |c: &Capabilities| -> BTreeSet<String> {
        c.webhooks
            .then(|| "/hooks/NAME/...".to_owned())
            .into_iter()
            .collect()
    };
    add("webhooks", webhooks(requested), webhooks(granted));
    add(
        "kv store bytes",
        requested
            .kv_quota_bytes
            .map(|b| b.to_string())
            .into_iter()
            .collect(),
        granted
            .kv_quota_bytes
            .map(|b| b.to_string())
            .into_iter()
            .collect(),
    );
    let limits = |c: &Capabilities| -> BTreeSet<String> {
        match serde_json::to_value(&c.limits) {
            Ok(serde_json::Value::Object(m)) => m
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    format!(
                        "{k} = {}",
                        v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
                    )
                })
                .collect(),
            _ => BTreeSet::new(),
        }
    };
    add("limit", limits(requested), limits(granted));
    rows
}

/// The limits a call runs under now (the server's defaults with the grant's overrides).
fn effective_limits(l: &crate::capability::Limits) -> Vec<(&'static str, String)> {
    vec![
        ("time per call", humantime::format_duration(l.timeout).to_string()),
        ("memory", format!("{} MiB", l.memory_mib)),
        ("HTTP requests per call", l.max_requests.to_string()),
        ("HTTP response size", format!("{} bytes", l.max_response_bytes)),
        ("output size", format!("{} bytes", l.max_output_bytes)),
        ("kv store", format!("{} bytes", l.kv_quota_bytes)),
    ]
}

pub(super) async fn show(user: WebUser, State(app): State<Arc<App>>, Path(name): Path<String>) -> Response {
    if let Err(r) = require(&user, Permission::PluginsRead) {
        return r;
    }
    let Some(plugin) = app.runtime.list().into_iter().find(|p| p.manifest.name == name) else {
        return not_found(&user, &format!("plugin named {name}"));
    };
    let policy = plugin.policy();
    let set: BTreeSet<String> = match app.store.secret_names(&name).await {
        Ok(names) => names.into_iter().map(|(n, _)| n).collect(),
        Err(e) => return failed(&user, e),
    };
    let secrets: Vec<(String, bool)> = plugin
        .manifest
        .requests
        .secrets
        .union(&policy.grant.secrets)
        .map(|s| (s.clone(), set.contains(s)))
        .collect();
    let actions: Vec<(String, String)> = plugin
        .description
        .actions
        .iter()
        .map(|a| (a.name.clone(), a.description.clone()))
        .collect();
    let grant_json = serde_json::to_string_pretty(&*policy.grant).unwrap_or_default();
    let calls = match app.store.plugin_calls(&name, RECENT_CALLS).await {
        Ok(c) => c,
        Err(e) => return failed(&user, e),
    };
    let denied = calls
        .iter()
        .filter(|c| c.error_kind.as_deref() == Some("denied"))
        .count();
    let failed_calls = calls.iter().filter(|c| !c.ok).count();
    // A playbook's `plugins` is its grant: the auditor sees who may call this plugin.
    let callers: Vec<String> = app
        .playbooks
        .list()
        .iter()
        .filter(|pb| pb.meta.plugins.contains(&name))
        .map(|pb| pb.name().to_owned())
        .collect();
    page(
        &user,
        StatusCode::OK,
        "plugin.html",
        &name,
        serde_json::json!({
            "p": summary(&plugin),
            "actions": actions,
            "capabilities": capabilities(&plugin.manifest.requests, &policy.grant),
            "secrets": secrets,
            "limits": effective_limits(&policy.limits),
            "component_hash": &plugin.component_hash,
            "grant_json": grant_json,
            "can_grant": may(&user, Permission::PluginsWrite),
            "calls": calls,
            "callers": callers,
            "denied": denied,
            "failed_calls": failed_calls,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_and_granted_are_lined_up() {
        let requested: Capabilities = serde_json::from_value(serde_json::json!({
            "http": ["https://api.example.com", "https://extra.example.com"],
            "secrets": ["api-key"],
        }))
        .unwrap();
        let granted: Capabilities = serde_json::from_value(serde_json::json!({
            "http": ["https://api.example.com"],
            "secrets": ["api-key"],
        }))
        .unwrap();
        let rows = capabilities(&requested, &granted);
        let row = |v: &str| rows.iter().find(|r| r.value.contains(v)).unwrap();
        assert!(row("api.example.com").requested && row("api.example.com").granted);
        assert!(row("extra.example.com").requested && !row("extra.example.com").granted);
        assert!(row("api-key").granted && row("api-key").kind == "secret");
    }
}
