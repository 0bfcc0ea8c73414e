//! Installing a plugin through the API (and so from the console), in two steps as
//! `osprey plugin install` does: the server fetches and checks a pack (a file sent as the
//! body, or an `oci://` reference it pulls) exactly as the CLI does (`crate::install`: intact,
//! signed by a trusted publisher, its component compiled and described), keeps the plan
//! (`server/pending_installs.rs`) and answers with its review: what the plugin is, who signed
//! it, what it requests beside what is granted now, and on an upgrade what changes. The
//! operator then applies it by its id, granting what it requests or nothing more, or cancels
//! it. The plan never leaves the server; only whoever prepared it may apply it, and the
//! install is audited as them.
//!
//! No `--allow-unsigned` here: a pack without a trusted signature is refused with the CLI's
//! message, and only an operator at the host's command line can let one in (audited).

use super::{Answer, Problem, body_as, caller, created, internal, no_content, not_found, ok};
use crate::app::App;
use crate::capability::Capabilities;
use crate::install::{self, Approval, GrantChoice, InstallError, InstallPlan, Mode, SourceError};
use crate::oci::{Access, OciRef};
use crate::pack::{Limits, Pack, Signer};
use crate::plugin::Manifest;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, NotFound, TooLarge};
use crate::server::pending_installs::{Installs, PendingError};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The largest pack accepted as a body: a Python plugin's component is about 18 MB; a pack
/// may be larger than this (128 MiB), but not through a web request.
pub(crate) const MAX_UPLOAD_BYTES: u64 = 64 * 1024 * 1024;

/// Where to take the pack from, when it is not the body itself.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct InstallSource {
    /// A pack in an OCI registry: `oci://HOST[:PORT]/REPO:TAG` or
    /// `oci://HOST[:PORT]/REPO@sha256:DIGEST`, as `osprey pack push` puts it there. Spoken to
    /// over HTTPS, without credentials, except a registry on loopback (plain HTTP).
    source: String,
}

/// One action of the plugin.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReviewAction {
    pub name: String,
    pub description: String,
}

/// Who signed the pack.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReviewSigner {
    /// In one line, as the CLI says it: `key id KEYID, trusted as 'NAME'`.
    pub text: String,
    /// The name the publisher's key is trusted under (`osprey trust list`).
    pub trusted_as: Option<String>,
    /// The signing key's id (16 hex digits, as minisign shows it).
    pub key_id: Option<String>,
}

/// What changes when this version replaces the installed one.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReviewUpgrade {
    /// The version installed now.
    pub from_version: String,
    /// Requested now and not before, one line each (`http https://...`, `secret NAME`).
    pub capabilities_added: Vec<String>,
    /// Requested before and not now.
    pub capabilities_removed: Vec<String>,
    pub actions_added: Vec<String>,
    pub actions_removed: Vec<String>,
    /// Actions whose input or output schema changed.
    pub actions_changed: Vec<String>,
    /// The playbooks that call the plugin, checked against this version.
    pub playbooks: Vec<String>,
    /// How many of their offline test cases ran.
    pub test_cases: usize,
    /// What would break, one line each; any blocks the upgrade (the API does not force it:
    /// `osprey plugin upgrade --force` at the host does, audited).
    pub failures: Vec<String>,
}

/// A prepared install waiting for review: what `osprey plugin install` shows before it asks.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InstallReview {
    /// Apply or cancel it by this id.
    pub id: String,
    /// Until when it waits (Unix ms); then it is forgotten.
    pub expires_at: i64,
    pub name: String,
    pub version: String,
    pub description: String,
    pub actions: Vec<ReviewAction>,
    pub signer: ReviewSigner,
    /// The pack's digest (`sha256:...`), as `osprey pack inspect` shows it.
    pub digest: String,
    /// Where it came from: the `oci://` reference, or `the uploaded pack`.
    pub source: String,
    /// What its `plugin.toml` requests.
    pub requested: Capabilities,
    /// What is granted to a plugin of this name now; null if nothing ever was.
    pub granted: Option<Capabilities>,
    /// What it requests that the grant now does not give, one line each.
    pub not_granted: Vec<String>,
    /// On an upgrade: what changes.
    pub upgrade: Option<ReviewUpgrade>,
}

/// The review of `plan`, kept under `id` until `expires_at`.
pub(crate) fn review_of(plan: &InstallPlan, id: &str, expires_at: i64) -> InstallReview {
    let m = plan.manifest();
    let (trusted_as, key_id) = match plan.signer() {
        Some(Signer::Trusted { name, key_id }) => (Some(name.clone()), Some(key_id.to_string())),
        Some(Signer::Untrusted { key_id, .. }) => (None, Some(key_id.to_string())),
        Some(Signer::Unsigned) | None => (None, None),
    };
    let (digest, source) = match &plan.origin {
        install::Origin::Pack(p) => (p.digest.clone(), p.origin.clone()),
        install::Origin::Folder(dir) => (String::new(), dir.display().to_string()),
    };
    let upgrade = plan.previous.as_ref().map(|p| {
        let caps = plan.capability_diff.clone().unwrap_or_default();
        let actions = plan.action_diff.clone().unwrap_or_default();
        let mut changed = actions.input_changed.clone();
        changed.extend(
            actions
                .output_changed
                .iter()
                .filter(|a| !changed.contains(a))
                .cloned()
                .collect::<Vec<_>>(),
        );
        ReviewUpgrade {
            from_version: p.version.clone(),
            capabilities_added: caps.added,
            capabilities_removed: caps.removed,
            actions_added: actions.added,
            actions_removed: actions.removed,
            actions_changed: changed,
            playbooks: plan
                .impact
                .as_ref()
                .map(|i| i.playbooks.clone())
                .unwrap_or_default(),
            test_cases: plan.impact.as_ref().map_or(0, |i| i.cases),
            failures: plan
                .impact
                .iter()
                .flat_map(|i| i.failures.iter().map(|f| f.to_string()))
                .collect(),
        }
    });
    InstallReview {
        id: id.to_owned(),
        expires_at,
        name: m.name.clone(),
        version: m.version.to_string(),
        description: plan.checked.description.description.clone(),
        actions: plan
            .checked
            .description
            .actions
            .iter()
            .map(|a| ReviewAction {
                name: a.name.clone(),
                description: a.description.clone(),
            })
            .collect(),
        signer: ReviewSigner {
            text: plan.signed_by(),
            trusted_as,
            key_id,
        },
        digest,
        source,
        requested: m.requests.clone(),
        granted: plan.granted_before.then(|| plan.grant.clone()),
        not_granted: plan.not_granted(),
        upgrade,
    }
}

/// Prepare an install.
///
/// The pack is the body (`application/octet-stream`, at most 64 MiB: a pack file as
/// `osprey pack build` writes it), or the body names one in a registry
/// (`application/json`: `{"source": "oci://..."}`). It is checked as
/// `osprey plugin install` checks it: intact, signed by a trusted publisher (unsigned or
/// untrusted packs are refused, saying how to trust the key), its component compiled and
/// described; a new version of an installed plugin is checked as `osprey plugin upgrade`
/// checks it (the playbooks that call it, and their offline tests). Nothing is installed:
/// the answer is the review, kept on the server for 15
/// minutes (at most 8 at once; more, or more than 2 being prepared at once, answer 503) under
/// its `id`, to apply or cancel.
///
/// Permission: `plugins-write`.
#[utoipa::path(
    post,
    path = "/api/v1/plugin-installs",
    tag = "plugins",
    request_body(
        description = "The pack, or where to take it from",
        content(
            (InstallSource = "application/json"),
            (String = "application/octet-stream")
        )
    ),
    responses(
        (status = 201, description = "Checked and waiting for review", body = InstallReview),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn prepare_install(
    State(app): State<Arc<App>>,
    Extension(pending): Extension<Installs>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    let _preparing = pending.preparing().map_err(too_many)?;
    let is_pack = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim().starts_with("application/octet-stream"));
    let origin = if is_pack {
        let pack = read_pack(&headers, body).await?;
        install::source::check_pack(&pack, "the uploaded pack", &trusted(&app).await?, false)
            .map(install::Origin::Pack)
            .map_err(refused)?
    } else {
        let InstallSource { source } = body_as(body, "install").await?;
        let oci = OciRef::parse(&source).map_err(|e| super::bad_request(&e.to_string()))?;
        install::fetch(
            &install::Source::Oci(oci),
            &trusted(&app).await?,
            false,
            &Access {
                insecure: false,
                username: None,
                password: None,
            },
        )
        .await
        .map_err(refused)?
    };
    // A new version of an installed plugin is an upgrade: the playbooks that call it are
    // checked against it, as `osprey plugin upgrade` checks them.
    let name = Manifest::load(origin.dir())
        .map_err(|e| refused(SourceError::Manifest(e)))?
        .name;
    let mode = match app.runtime.get(&name) {
        Ok(_) => Mode::Upgrade { name },
        Err(_) => Mode::Install,
    };
    let plan = install::prepare(&app, origin, mode)
        .await
        .map_err(install_refused)?;
    let (id, expires_at) = pending.insert(who.actor.as_str(), plan).map_err(too_many)?;
    let review = pending
        .view(&id, who.actor.as_str(), |plan, _| {
            review_of(plan, &id, expires_at)
        })
        .ok_or_else(internal)?;
    created(&format!("/api/v1/plugin-installs/{id}"), review)
}

/// The trusted publisher keys (those stored that no longer parse are left out, as the CLI
/// does).
async fn trusted(app: &App) -> Result<Vec<crate::pack::TrustedKey>, Problem> {
    let (keys, unreadable) = install::source::trusted_keys(app).await.map_err(refused)?;
    for (name, error) in unreadable {
        tracing::warn!(key = %name, %error, "a trusted key does not parse and is ignored");
    }
    Ok(keys)
}

/// The body as a pack: refused unread if it says it is over [`MAX_UPLOAD_BYTES`], and
/// stopped there if it is longer than it said.
async fn read_pack(headers: &HeaderMap, body: Body) -> Result<Pack, Problem> {
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!(
                "the pack is larger than {} MiB, the most a web request may bring; install it with `osprey plugin install` on the host",
                MAX_UPLOAD_BYTES / (1024 * 1024)
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD_BYTES) {
        return Err(too_large());
    }
    let bytes = match http_body_util::Limited::new(body, MAX_UPLOAD_BYTES as usize)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            tracing::warn!(error = %e, "reading an uploaded pack failed");
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-body",
                "the request body could not be read",
            ));
        }
    };
    Pack::read(std::io::Cursor::new(bytes), &Limits::default()).map_err(|error| {
        refused(SourceError::Format {
            origin: "the uploaded pack".into(),
            error,
        })
    })
}

/// A source refused (unreadable, unsigned, untrusted, tampered, unreachable): 400 with the
/// CLI's words. A store failure is the store's answer.
fn refused(e: SourceError) -> Problem {
    match e {
        SourceError::Store(e) => e.into(),
        SourceError::TempDir(_) | SourceError::Unpack { .. } | SourceError::Io { .. } => {
            tracing::error!(error = %e, "preparing an install failed");
            internal()
        }
        e => Problem::new(StatusCode::BAD_REQUEST, "install-refused", e.to_string()),
    }
}

/// An install that did not happen: refusals are 400 with their message, failures 500.
fn install_refused(e: InstallError) -> Problem {
    match e {
        InstallError::Source(e) => refused(e),
        InstallError::Store(e) => e.into(),
        InstallError::Check { error, .. } => Problem::new(
            StatusCode::BAD_REQUEST,
            "install-refused",
            format!("the pack's plugin cannot be installed: {error}"),
        ),
        e @ (InstallError::NotInstalled { .. } | InstallError::OtherPlugin { .. }) => {
            Problem::new(StatusCode::BAD_REQUEST, "install-refused", e.to_string())
        }
        InstallError::PlaybooksBreak { name, failures } => super::conflict(&format!(
            "not upgraded: upgrading '{name}' would break {} playbook check(s): {}. Fix the playbooks first, or upgrade at the host with `osprey plugin upgrade {name} SOURCE --force` (audited)",
            failures.len(),
            failures
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )),
        e => {
            tracing::error!(error = %e, "an install failed");
            internal()
        }
    }
}

/// Too many installs waiting or being prepared: 503, as any limit of the server.
fn too_many(e: PendingError) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string()).with(super::Extra::RetryAfter)
}

/// The 404 of an id that names no install waiting for the caller.
fn gone() -> Problem {
    not_found(
        "no install is waiting under this id for you: it was applied or cancelled, or it expired (15 minutes after it was prepared)",
    )
}

/// A prepared install.
///
/// The review of an install prepared by the caller and still waiting.
///
/// Permission: `plugins-write`.
#[utoipa::path(
    get,
    path = "/api/v1/plugin-installs/{id}",
    tag = "plugins",
    params(("id" = String, Path, description = "The id the install was prepared under")),
    responses(
        (status = 200, description = "The install waiting for review", body = InstallReview),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn show_install(
    State(app): State<Arc<App>>,
    Extension(pending): Extension<Installs>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    let review = pending
        .view(&id, who.actor.as_str(), |plan, expires_at| {
            review_of(plan, &id, expires_at)
        })
        .ok_or_else(gone)?;
    ok(review)
}

/// What the operator grants with the install.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum Grant {
    /// Everything the plugin requests, added to what is granted now.
    Requested,
    /// Nothing more than is granted now.
    None,
}

/// The operator's approval.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ApplyInstall {
    grant: Grant,
}

/// What the install did.
#[derive(Serialize, utoipa::ToSchema)]
struct Installed {
    name: String,
    version: String,
    /// The version it replaced, kept for `osprey plugin rollback`.
    kept: Option<String>,
    /// Whether the grant was changed.
    granted: bool,
    /// What it requests that its grant does not give, one line each.
    not_granted: Vec<String>,
    /// Secrets it requests that have no value yet (`osprey secret set`).
    secrets_unset: Vec<String>,
}

/// Apply a prepared install.
///
/// Installs the plugin as reviewed (the running server uses it at once), granting what it
/// requests (`"grant": "requested"`, added to today's grant) or nothing more
/// (`"grant": "none"`). Audited as `plugin.install` (or `plugin.upgrade`) by the caller,
/// with the pack's digest and signer. An upgrade that would break a playbook's check (shown
/// in the review) is refused with 409. The id is spent, whatever the outcome.
///
/// Permission: `plugins-write`.
#[utoipa::path(
    post,
    path = "/api/v1/plugin-installs/{id}/apply",
    tag = "plugins",
    params(("id" = String, Path, description = "The id the install was prepared under")),
    request_body(content = ApplyInstall),
    responses(
        (status = 200, description = "Installed", body = Installed),
        (status = 400, response = BadRequest),
        (status = 409, response = crate::server::openapi::Conflict),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn apply_install(
    State(app): State<Arc<App>>,
    Extension(pending): Extension<Installs>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    let ApplyInstall { grant } = body_as(body, "approval").await?;
    let plan = pending.take(&id, who.actor.as_str()).ok_or_else(gone)?;
    let approval = Approval {
        grant: match grant {
            Grant::Requested => GrantChoice::Requested,
            Grant::None => GrantChoice::Nothing,
        },
        force: false,
    };
    let applied = install::apply(&app, plan, &approval, &who.actor)
        .await
        .map_err(install_refused)?;
    let m = &applied.plugin.manifest;
    ok(Installed {
        name: m.name.clone(),
        version: m.version.to_string(),
        kept: applied.kept,
        granted: applied.granted,
        not_granted: applied.not_granted,
        secrets_unset: applied.secrets_unset,
    })
}

/// Cancel a prepared install.
///
/// Forgets it (and its unpacked files); nothing was installed.
///
/// Permission: `plugins-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/plugin-installs/{id}",
    tag = "plugins",
    params(("id" = String, Path, description = "The id the install was prepared under")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, response = NotFound)
    )
)]
pub(super) async fn cancel_install(
    State(app): State<Arc<App>>,
    Extension(pending): Extension<Installs>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer {
    let who = caller(&app, &headers, Permission::PluginsWrite).await?;
    pending.take(&id, who.actor.as_str()).ok_or_else(gone)?;
    no_content()
}
