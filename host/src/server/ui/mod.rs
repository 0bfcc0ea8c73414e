//! The web console: server-rendered pages for everyone who signs in. Each page reads what it
//! shows from the store (the same store functions the API's lists use) and checks the
//! signed-in user's roles with `rbac` first, as the API does; what a page does goes through
//! the API itself: a form marked `data-api` is sent as JSON to `/api/v1/...` by
//! `static/console.js` with the session cookie and the session's CSRF token in the
//! `X-CSRF-Token` header, so every action in the console is an API call that a script can
//! make too. (The inbox's answer forms and sign-out are plain HTML forms, `humans.rs` and
//! `web/`.)
//!
//! Templates (`templates/`, minijinja, auto-escaped: `render.rs`, which the sign-in and link
//! pages use too) and static files are compiled into the binary. Only `ui/` renders console
//! pages; charts are drawn on the server by `charts.rs`.

mod audit;
mod charts;
mod dashboard;
mod incidents;
mod lists;
mod playbook_charts;
mod playbooks;
mod plugin_install;
mod plugins;
mod render;
pub(crate) use render::set_banner;
mod requests;

pub(crate) use render::render;

use super::web::WebUser;
use crate::app::App;
use crate::rbac::{self, Permission};
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use minijinja::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The console's routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(dashboard::show))
        .route("/ui/static/{file}", get(asset))
        .route("/incidents", get(incidents::list))
        .route("/incidents/{id}", get(incidents::show))
        .route("/playbooks", get(playbooks::list))
        .route("/playbooks/{name}", get(playbooks::show))
        .route("/runs", get(playbooks::runs))
        .route("/runs/{id}", get(playbooks::run))
        .route("/plugins", get(plugins::list))
        .route("/plugins/{name}", get(plugins::show))
        .route("/plugin-installs", get(plugin_install::form))
        .route("/plugin-installs/{id}", get(plugin_install::review))
        .route("/audit", get(audit::page_of_log))
        .route("/lists", get(lists::list))
        .route("/lists/{name}", get(lists::show))
        .route("/requests", get(requests::list))
        .route("/requests/{playbook}", get(requests::form))
        .with_state(app)
}

/// The pages in the navigation bar, each with what it needs; a user sees the ones their roles
/// allow.
const NAV: &[(&str, &str, Option<Permission>)] = &[
    ("/", "Dashboard", Some(Permission::DashboardRead)),
    ("/incidents", "Incidents", Some(Permission::IncidentsRead)),
    ("/inbox", "Inbox", None),
    ("/playbooks", "Playbooks", Some(Permission::PlaybooksRead)),
    ("/runs", "Runs", Some(Permission::PlaybooksRead)),
    ("/plugins", "Plugins", Some(Permission::PluginsRead)),
    ("/lists", "Lists", Some(Permission::ListsRead)),
    ("/audit", "Audit", Some(Permission::AuditRead)),
    ("/requests", "Requests", Some(Permission::RequestsCreate)),
];

/// Whether `user`'s roles allow `p`.
pub(crate) fn may(user: &WebUser, p: Permission) -> bool {
    rbac::allowed(&rbac::roles_of(&user.roles), &[], p)
}

/// A 403 page unless `user` may do `p`.
#[allow(clippy::result_large_err)]
pub(crate) fn require(user: &WebUser, p: Permission) -> Result<(), Response> {
    if may(user, p) {
        return Ok(());
    }
    tracing::info!(user = %user.name, permission = ?p, "a console page was refused");
    let roles = rbac::roles_of(&user.roles);
    let roles = if roles.is_empty() {
        "no console role".to_owned()
    } else {
        roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
    };
    Err(page(
        user,
        StatusCode::FORBIDDEN,
        "message.html",
        "Not allowed",
        minijinja::context! {
            heading => "Not allowed",
            message => format!(
                "Your roles ({roles}) do not allow this page. Ask an administrator if you need it."
            ),
        },
    ))
}

/// A page that failed: the details go to the log, the user gets a short message.
pub(crate) fn failed(user: &WebUser, e: impl std::fmt::Display) -> Response {
    tracing::error!(user = %user.name, error = %e, "a console page failed");
    page(
        user,
        StatusCode::INTERNAL_SERVER_ERROR,
        "message.html",
        "Error",
        minijinja::context! {
            heading => "Something went wrong",
            message => "Osprey could not show this page; try again in a moment.",
        },
    )
}

/// A 303 to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A 404 page naming what was not found.
pub(crate) fn not_found(user: &WebUser, what: &str) -> Response {
    page(
        user,
        StatusCode::NOT_FOUND,
        "message.html",
        "Not found",
        minijinja::context! { heading => "Not found", message => format!("There is no {what}.") },
    )
}

/// A console page: `template` rendered with `ctx` plus `user`, `nav` and `title`.
pub(crate) fn page(
    user: &WebUser,
    status: StatusCode,
    template: &str,
    title: &str,
    ctx: impl Serialize,
) -> Response {
    let active = title_section(template);
    let nav: Vec<BTreeMap<&str, Value>> = NAV
        .iter()
        .filter(|(_, _, p)| p.is_none_or(|p| may(user, p)))
        .map(|(href, label, _)| {
            BTreeMap::from([
                ("href", Value::from(*href)),
                ("label", Value::from(*label)),
                ("active", Value::from(*href == active)),
            ])
        })
        .collect();
    let ctx = minijinja::context! {
        user => minijinja::context! { name => &user.name, csrf => &user.csrf, roles => &user.roles },
        nav => nav,
        title => title,
        ..Value::from(minijinja::value::Serde(ctx))
    };
    let html = match render(template, ctx) {
        Ok(html) => html,
        Err(e) => return super::web::render_failed(template, &e),
    };
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    console_headers(h);
    response
}

/// The nav entry a template belongs to.
fn title_section(template: &str) -> &'static str {
    match template {
        "dashboard.html" => "/",
        t if t.starts_with("incident") => "/incidents",
        t if t.starts_with("playbook") => "/playbooks",
        t if t.starts_with("run") => "/runs",
        t if t.starts_with("plugin") => "/plugins",
        t if t.starts_with("list") => "/lists",
        t if t.starts_with("audit") => "/audit",
        t if t.starts_with("request") => "/requests",
        "inbox.html" => "/inbox",
        _ => "",
    }
}

/// The console's headers: not cached, not framed, scripts and styles from this server only
/// (the one script is `console.js`; charts are inline SVG without scripts).
fn console_headers(h: &mut HeaderMap) {
    super::web::secure_headers_with(
        h,
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    );
}

/// `GET /ui/static/FILE`: the console's stylesheet and script.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "osprey.css" => (include_str!("static/osprey.css"), "text/css; charset=utf-8"),
        "console.js" => (
            include_str!("static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The link to the next page of a list at `path`: the same query with `key` set to `value`
/// (the cursor).
pub(crate) fn next_page(path: &str, params: &BTreeMap<String, String>, key: &str, value: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(k, _)| *k != key) {
        q.append_pair(k, v);
    }
    q.append_pair(key, value);
    format!("{path}?{}", q.finish())
}

/// A journaled step in a few words: `plugin.action` for a plugin call, else its kind.
pub(crate) fn step_label(kind: &str, request: &serde_json::Value) -> String {
    match request.get("plugin").and_then(|p| p.as_str()) {
        Some(plugin) => {
            let action = request.get("action").and_then(|a| a.as_str()).unwrap_or("");
            format!("{plugin}.{action}")
        }
        None => match request.get("playbook").and_then(|p| p.as_str()) {
            Some(name) if kind == "playbook" && request.get("input").is_some() => {
                format!("start playbook {name}")
            }
            Some(name) if kind == "playbook" => format!("wait for playbook {name}"),
            _ => kind.to_owned(),
        },
    }
}

/// The first value of each query parameter, empty ones left out.
pub(crate) fn query_params(uri: &axum::http::Uri) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if !v.trim().is_empty() {
            out.entry(k.into_owned()).or_insert_with(|| v.trim().to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_page_allows_only_its_own_script() {
        let user = WebUser {
            name: "eve".into(),
            roles: vec!["admin".into()],
            csrf: "c".into(),
        };
        let r = page(
            &user,
            StatusCode::OK,
            "message.html",
            "T",
            minijinja::context! {
                heading => "h", message => "m"
            },
        );
        assert_eq!(r.status(), StatusCode::OK);
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
    }

    #[test]
    fn the_nav_shows_what_the_roles_allow() {
        let user = |roles: &[&str]| WebUser {
            name: "u".into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            csrf: "c".into(),
        };
        let labels = |u: &WebUser| -> Vec<&str> {
            NAV.iter()
                .filter(|(_, _, p)| p.is_none_or(|p| may(u, p)))
                .map(|(_, l, _)| *l)
                .collect()
        };
        assert_eq!(labels(&user(&["requester"])), vec!["Inbox", "Requests"]);
        assert!(labels(&user(&["auditor"])).contains(&"Audit"));
        assert!(!labels(&user(&["analyst"])).contains(&"Plugins"));
        assert_eq!(labels(&user(&["admin"])).len(), NAV.len());
    }
}
