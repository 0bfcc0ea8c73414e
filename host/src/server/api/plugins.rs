//! Plugins: the installed ones, one with its actions, requested and granted capabilities,
//! secret names (never values) and recent changes, and replacing a plugin's grant.

use super::{Answer, Problem, bad_request, body_as, caller, internal, not_found, ok};
use crate::app::{App, AppError};
use crate::capability::{Capabilities, Limits};
use crate::plugin::LoadedPlugin;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, NotFound, TooLarge};
use crate::store::audit::{AuditEntry, AuditFilter};
use crate::store::page::Keyset;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Entries of a plugin's history shown with it.
const HISTORY: i64 = 20;

/// An installed plugin.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PluginSummary {
    name: String,
    version: String,
    description: String,
    actions: Vec<String>,
    granted: bool,
    /// The mock answering its calls instead of the plugin; null when it runs for real.
    mock: Option<PluginMockView>,
}

/// A plugin in mock mode: its actions answer from canned cases and/or generated data, and
/// no call reaches its vendor (`osprey plugin mock`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PluginMockView {
    /// SHA-256 of the cases file in force (hex); null when it only generates.
    cases_sha256: Option<String>,
    /// Whether what no case answers gets data generated from the output schema.
    generate: bool,
    /// Who put it in mock mode.
    set_by: String,
    /// When (Unix ms).
    set_at: i64,
}

impl PluginMockView {
    /// The mock in force for `p`, if any.
    pub(crate) fn of(p: &LoadedPlugin) -> Option<PluginMockView> {
        p.mock().map(|m| PluginMockView {
            cases_sha256: m.cases_digest,
            generate: m.generate,
            set_by: m.set_by,
            set_at: m.set_at,
        })
    }
}

/// The installed plugins.
///
/// Name, version, description, actions, and whether the plugin is granted.
///
/// Permission: `plugins-read`.
#[utoipa::path(
    get,
    path = "/api/v1/plugins",
    tag = "plugins",
    responses((status = 200, description = "The plugins", body = Vec<PluginSummary>))
)]
pub(super) async fn list_plugins(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::PluginsRead).await?;
    let plugins: Vec<PluginSummary> = app
        .runtime
        .list()
        .iter()
        .map(|p| PluginSummary {
            name: p.manifest.name.clone(),
            version: p.manifest.version.clone(),
            description: p.description.description.clone(),
            actions: p.description.actions.iter().map(|a| a.name.clone()).collect(),
            granted: p.policy().granted,
            mock: PluginMockView::of(p),
        })
        .collect();
    ok(plugins)
}

/// One action of a plugin.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PluginAction {
    name: String,
    description: String,
    /// The JSON Schema its input is validated against.
    #[schema(value_type = Object)]
    input_schema: Value,
    /// The JSON Schema of its output.
    #[schema(value_type = Object)]
    output_schema: Value,
}

/// A secret a plugin requests or is granted: its name, never its value.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PluginSecret {
    name: String,
    /// Whether the plugin's `plugin.toml` asks for it.
    requested: bool,
    /// Whether the grant lets the plugin read it.
    granted: bool,
    /// When its value was last set (Unix ms); null if it has none.
    set_at: Option<i64>,
}

/// An installed plugin with everything about it.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct PluginDetail {
    name: String,
    version: String,
    description: String,
    /// SHA-256 of its WebAssembly component.
    component_sha256: String,
    actions: Vec<PluginAction>,
    /// What its `plugin.toml` asks for (only shown: the grant is what is enforced).
    requested: Capabilities,
    /// What the operator granted; null if nothing ever was.
    granted: Option<Capabilities>,
    /// What the grant requested gives not: `http https://...`, `secret NAME`, ...
    missing: Vec<String>,
    /// The limits its calls run under: the server's defaults with the grant's overrides.
    limits: Limits,
    /// The mock answering its calls instead of the plugin; null when it runs for real.
    mock: Option<PluginMockView>,
    /// Its settings in force: the operator's values over `plugin.toml`'s defaults.
    settings: BTreeMap<String, String>,
    /// Its secrets, requested or granted or set, by name.
    secrets: Vec<PluginSecret>,
    /// The latest audit entries about it (installs, grants, settings, secrets), newest
    /// first, at most 20. Calls and denials are counted in `/metrics` and journaled in runs,
    /// not recorded per plugin.
    history: Vec<AuditEntry>,
}

fn plugin_or_404(app: &App, name: &str) -> Result<Arc<LoadedPlugin>, Problem> {
    app.runtime.get(name).map_err(|e| not_found(e.to_string()))
}

/// `p` with `granted` (`None`: nothing was ever granted) and the `limits` its calls run under.
async fn detail(
    app: &App,
    p: &LoadedPlugin,
    granted: Option<Capabilities>,
    limits: Limits,
) -> Result<PluginDetail, Problem> {
    let name = &p.manifest.name;
    let grant = granted.clone().unwrap_or_default();
    let set: BTreeMap<String, i64> = app.store.secret_names(name).await?.into_iter().collect();
    let requested = &p.manifest.requests;
    let names: BTreeSet<&String> = requested
        .secrets
        .iter()
        .chain(&grant.secrets)
        .chain(set.keys())
        .collect();
    let secrets = names
        .into_iter()
        .map(|s| PluginSecret {
            name: s.clone(),
            requested: requested.secrets.contains(s),
            granted: grant.secrets.contains(s),
            set_at: set.get(s).copied(),
        })
        .collect();
    let target = format!("plugin:{name}");
    let filter = AuditFilter {
        target: Some(&target),
        ..AuditFilter::default()
    };
    let history = app
        .store
        .audit_page_sorted(&filter, &Keyset::first("seq", true, HISTORY))
        .await?
        .items;
    Ok(PluginDetail {
        name: name.clone(),
        version: p.manifest.version.clone(),
        description: p.description.description.clone(),
        component_sha256: p.component_hash.clone(),
        actions: p
            .description
            .actions
            .iter()
            .map(|a| PluginAction {
                name: a.name.clone(),
                description: a.description.clone(),
                input_schema: a.input_schema.clone(),
                output_schema: a.output_schema.clone(),
            })
            .collect(),
        requested: requested.clone(),
        missing: grant.missing_from(requested),
        granted,
        limits,
        mock: PluginMockView::of(p),
        settings: (*p.policy().config).clone(),
        secrets,
        history,
    })
}

/// One plugin.
///
/// Its actions with their schemas, what it requests beside what is granted, the limits and
/// settings in force, its secrets by name (never their values: whether each is set, and
/// when), and its latest audit entries.
///
/// Permission: `plugins-read`.
#[utoipa::path(
    get,
    path = "/api/v1/plugins/{name}",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The plugin", body = PluginDetail),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn show_plugin(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    caller(&app, &headers, Permission::PluginsRead).await?;
    let p = plugin_or_404(&app, &name)?;
    let policy = p.policy();
    let granted = policy.granted.then(|| (*policy.grant).clone());
    ok(detail(&app, &p, granted, policy.limits).await?)
}

/// Replace a plugin's grant.
///
/// The body is the whole grant, in the shape `osprey plugin grant` builds (and
/// `GET /api/v1/plugins/{name}` shows as `granted`): outbound HTTP patterns, private address
/// ranges, secret names, kv room and limit overrides; `{}` grants nothing. The plugin must be
/// installed. The server's workers apply it within `runtime.policy_refresh`. Audited as
/// `plugin.grant`.
///
/// Permission: `plugins-write`.
#[utoipa::path(
    put,
    path = "/api/v1/plugins/{name}/grant",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body(content = Capabilities),
    responses(
        (status = 200, description = "The plugin with its new grant", body = PluginDetail),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn put_grant(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    let grant: Capabilities = body_as(body, "grant").await?;
    let p = plugin_or_404(&app, &name)?;
    app.set_grant(&name, &grant, &who.actor)
        .await
        .map_err(|e| match e {
            AppError::Invalid(message) => bad_request(&format!("grant: {message}")),
            AppError::Store(e) => e.into(),
            other => {
                tracing::error!(error = %other, plugin = %name, "setting a grant failed");
                internal()
            }
        })?;
    // As stored, and the limits it gives (in force once the refresh picks it up).
    let limits = app.config.limits.with_grant(&grant);
    ok(detail(&app, &p, Some(grant), limits).await?)
}

/// What puts a plugin in mock mode.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MockRequest {
    /// A cases file's text: `[[mock]]` tables (TOML), as a playbook's tests write them, each
    /// for this plugin, an action it has, and an output its schema accepts.
    #[serde(default)]
    cases: Option<String>,
    /// Answer what no case matches with data generated from the action's output schema.
    #[serde(default)]
    generate: bool,
}

/// Put a plugin in mock mode.
///
/// Its actions answer from the canned cases and/or generated data; no call reaches its
/// vendor and no instance runs (inputs are still checked against the input schemas). Cases
/// that do not fit the plugin are refused with 400, naming the case. Replaces any mock in
/// force. The server's workers apply it within `runtime.policy_refresh`. Audited as
/// `plugin.mock` with the cases' SHA-256.
///
/// Permission: `plugins-write`.
#[utoipa::path(
    put,
    path = "/api/v1/plugins/{name}/mock",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    request_body(content = MockRequest),
    responses(
        (status = 200, description = "The plugin in mock mode", body = PluginDetail),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn put_mock(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    let request: MockRequest = body_as(body, "mock").await?;
    plugin_or_404(&app, &name)?;
    app.runtime
        .set_mock(&name, request.cases.as_deref(), request.generate, &who.actor)
        .await
        .map_err(|e| mock_problem(&name, e))?;
    let p = plugin_or_404(&app, &name)?;
    let policy = p.policy();
    let granted = policy.granted.then(|| (*policy.grant).clone());
    ok(detail(&app, &p, granted, policy.limits).await?)
}

/// Take a plugin out of mock mode.
///
/// Its calls run the plugin again. Audited as `plugin.unmock` (nothing is audited when it
/// was not mocked).
///
/// Permission: `plugins-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/plugins/{name}/mock",
    tag = "plugins",
    params(("name" = String, Path, description = "The plugin's name")),
    responses(
        (status = 200, description = "The plugin, no longer mocked", body = PluginDetail),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn delete_mock(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    plugin_or_404(&app, &name)?;
    app.runtime
        .clear_mock(&name, &who.actor)
        .await
        .map_err(|e| mock_problem(&name, e))?;
    let p = plugin_or_404(&app, &name)?;
    let policy = p.policy();
    let granted = policy.granted.then(|| (*policy.grant).clone());
    ok(detail(&app, &p, granted, policy.limits).await?)
}

/// A mock that could not be set or taken off, as a problem: the plugin is not installed
/// (404), the request or its cases are wrong (400), or the server failed (500, logged).
fn mock_problem(name: &str, e: crate::plugin::MockError) -> Problem {
    use crate::plugin::{MockError, PluginError};
    match e {
        MockError::Store(e) | MockError::Plugin(PluginError::Store(e)) => e.into(),
        MockError::Plugin(e @ PluginError::NotInstalled { .. }) => not_found(e.to_string()),
        MockError::Plugin(other) => {
            tracing::error!(error = %other, plugin = %name, "changing a mock failed");
            internal()
        }
        other => bad_request(&format!("mock: {other}")),
    }
}
