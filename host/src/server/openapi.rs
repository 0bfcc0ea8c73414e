//! The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/openapi.json`, and an explorer
//! page at `GET /api/docs`. Both are public: the document describes the API, it grants
//! nothing (every operation still asks for a bearer token).
//!
//! The document is derived from the code: each handler's `#[utoipa::path]` (in `api.rs` and
//! `intake.rs`) and the request and response types (`ToSchema` where they are defined). What
//! every operation shares is added here by [`Shared`]: the ways to call it (a bearer token, or
//! a web session's cookie with its CSRF header) on each operation, the refusals any operation
//! may answer (401, 403, 500, 503) and, from
//! the `Permission: \`NAME\`` line of each handler's doc comment, the roles that may call it
//! (from `rbac`) and the
//! `x-permission` extension. The e2e test `tests/e2e/openapi.rs` checks that the document
//! validates, that it lists exactly the routes the router serves, and that each operation's
//! permission is the one the RBAC matrix walks.

use super::{api, intake};
use crate::app::App;
use crate::rbac::{Permission, Role};
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use sha2::Digest as _;
use std::sync::{Arc, LazyLock};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{ArrayItems, Object, Schema, SchemaType, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// Where the document and the explorer are served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
pub const EXPLORER_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Osprey",
        description = "The REST API of Osprey, a self-hosted security automation host: \
            incidents, tasks, indicators, pre-processing rules, plugins and alert intake.\n\n\
            Every operation needs an API token (`osprey token create NAME --role ROLE`) sent as \
            `Authorization: Bearer TOKEN`, or, from the web console, a signed-in session: its \
            `osprey_session` cookie with the session's CSRF token in `X-CSRF-Token` on every \
            request (the cookie alone is refused); a bearer token wins over a cookie. Each \
            operation says which permission it needs and which roles have it. Errors are `application/problem+json` documents with a stable \
            `type`, a `title` for people and the HTTP `status`; they never carry internals \
            (those go to the server's log). Bodies are JSON (at most 1 MiB, alerts excepted); \
            unknown fields and query parameters are refused with 400, naming them. \
            Timestamps are Unix milliseconds.",
        license(name = "Apache-2.0")
    ),
    paths(
        api::plugins::list_plugins,
        api::plugins::show_plugin,
        api::plugins::put_grant,
        api::plugins::put_mock,
        api::plugins::delete_mock,
        api::plugin_installs::prepare_install,
        api::plugin_installs::show_install,
        api::plugin_installs::apply_install,
        api::plugin_installs::cancel_install,
        api::incidents::list_incidents,
        api::incidents::create_incident,
        api::incidents::show_incident,
        api::incidents::update_incident,
        api::incidents::close_incident,
        api::incidents::reopen_incident,
        api::incidents::add_note,
        api::incidents::relate_incident,
        api::incidents::spawn_child,
        api::incidents::pause_sla,
        api::incidents::resume_sla,
        api::tasks::list_tasks,
        api::tasks::create_task,
        api::tasks::show_task,
        api::tasks::complete_task,
        api::tasks::delegate_task,
        api::tasks::cancel_task,
        api::indicators::list_indicators,
        api::indicators::show_indicator,
        api::indicators::set_indicator,
        api::alerts::list_alerts,
        api::playbooks::list_playbooks,
        api::playbooks::show_playbook,
        api::playbooks::start_run,
        api::playbook_charts::show_chart,
        api::runs::list_runs,
        api::runs::show_run,
        api::runs::cancel_run,
        api::runs::restart_run,
        api::audit::list_audit,
        api::audit::verify_audit,
        api::lists::list_lists,
        api::lists::list_entries,
        api::lists::add_entry,
        api::lists::remove_entry,
        api::questions::list_questions,
        api::questions::answer_question,
        api::requests::list_forms,
        api::requests::send_request,
        api::rules::list_rules,
        api::rules::test_rules,
        api::rules::put_rule_test,
        api::rules::delete_rule_test,
        api::rules::put_rule,
        api::rules::delete_rule,
        intake::post_alerts,
    ),
    components(
        schemas(Problem),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge, Unavailable, Internal)
    ),
    modifiers(&Shared),
    tags(
        (name = "incidents", description = "Incidents: create, change, close and re-open; notes, relations, SLA timers."),
        (name = "tasks", description = "Manual tasks of incidents: create, complete, delegate, cancel."),
        (name = "indicators", description = "Indicators (IPs, domains, URLs, hashes...) with their verdicts and sightings."),
        (name = "rules", description = "Pre-processing rules: what happens to alerts as they arrive."),
        (name = "plugins", description = "The installed plugins."),
        (name = "alerts", description = "Alert intake, and the alerts as received, paged."),
        (name = "playbooks", description = "The loaded playbooks, and starting their runs."),
        (name = "runs", description = "Playbook runs and their journals: cancel, restart from a step."),
        (name = "audit", description = "The keyed, hash-chained audit log."),
        (name = "lists", description = "Allow and block lists and their entries."),
        (name = "questions", description = "Questions playbooks asked people: the caller's open ones, and answering."),
        (name = "requests", description = "End users' request forms: playbooks with a [request] table."),
    )
)]
pub struct ApiDoc;

/// An RFC 9457 problem document, the body of every error (`super::problem` writes it).
#[derive(serde::Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://osprey.dev/problems/not-found",
    "title": "no incident 'i-123'",
    "status": 404
}))]
pub struct Problem {
    /// Stable: `https://osprey.dev/problems/KIND`, for example `.../invalid`,
    /// `.../permission-denied`, `.../not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For people: what was wrong, never internals.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
}

// The responses operations refer to: described here, never built (the handlers answer with
// `super::problem`).

/// Refused: a body, a field or a query parameter that is not valid (the title says which);
/// nothing was changed.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct BadRequest(Problem);

/// No credentials, a bearer token that is unknown, expired or revoked, or a web session that
/// ended (`WWW-Authenticate: Bearer`).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Unauthorized(Problem);

/// The token's role and scopes, or the signed-in user's roles, do not allow this (type
/// `permission-denied`); a session's request without its CSRF token in `X-CSRF-Token` (type
/// `csrf`); or the route refuses this caller (type `forbidden`, for example a task only its
/// assignee may complete).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Forbidden(Problem);

/// Nothing by that name or id.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct NotFound(Problem);

/// Not in this state (for example closing a closed incident).
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Conflict(Problem);

/// The body is too large; nothing was changed.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct TooLarge(Problem);

/// The store cannot be reached, or the server is at its limit; nothing was changed; retry
/// after `Retry-After` seconds.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Unavailable(Problem);

/// The server failed; the details are in its log.
#[derive(ToResponse)]
#[response(content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Internal(Problem);

/// Token scopes (machine tokens and tokens made before roles), for the roles line.
const SCOPES: [&str; 4] = ["intake", "edl", "incidents", "rules"];

/// What all operations share (see the file's doc).
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token from `osprey token create`, with a role or scopes.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::web_auth::SESSION_COOKIE,
                "A web console session (`POST /login`), by its user's roles; only with `csrf`.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The session's CSRF token, on every request made with the session cookie.",
            ))),
        );
        // A body that flattens a spec which refuses unknown fields: `allOf` would refuse the
        // other part's fields, so the parts become one object.
        for name in ["NewIncidentBody"] {
            if let Some(merged) = components
                .schemas
                .get(name)
                .and_then(|s| merge_all_of(s, components))
            {
                components.schemas.insert(name.to_owned(), merged);
            }
        }
        // A page's items refer to their item's schema (utoipa inlines generic arguments).
        let pages: Vec<(String, String)> = components
            .schemas
            .keys()
            .filter_map(|k| Some((k.clone(), k.strip_prefix("Paged_")?.to_owned())))
            .filter(|(_, item)| components.schemas.contains_key(item))
            .collect();
        for (page, item) in pages {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(&page)
                && let Some(RefOr::T(Schema::Array(items))) = object.properties.get_mut("items")
            {
                items.items = ArrayItems::RefOrSchema(Box::new(RefOr::Ref(
                    utoipa::openapi::Ref::from_schema_name(item),
                )));
            }
        }
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let permission = op.description.as_deref().and_then(permission_in);
                // Every operation under /api/v1 takes a bearer token, or a session with its
                // CSRF token (both at once); but sending alerts, which only machines do.
                let mut security = vec![SecurityRequirement::new("bearer", Vec::<String>::new())];
                if permission != Some(Permission::AlertsWrite) {
                    security.push(
                        SecurityRequirement::new("session", Vec::<String>::new())
                            .add("csrf", Vec::<String>::new()),
                    );
                }
                op.security = Some(security);
                if let Some(RefOr::T(body)) = &mut op.request_body {
                    for content in body.content.values_mut() {
                        if let RefOr::T(content) = content
                            && let Some(schema) = &mut content.schema
                        {
                            without_null(schema);
                        }
                    }
                }
                for (status, name) in [
                    ("401", "Unauthorized"),
                    ("403", "Forbidden"),
                    ("500", "Internal"),
                    ("503", "Unavailable"),
                ] {
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(utoipa::openapi::Ref::from_response_name(name)));
                }
                if let Some(permission) = permission {
                    let description = op.description.get_or_insert_with(String::new);
                    description.push_str(&format!("\n\n{}", who_may(permission)));
                    op.extensions.get_or_insert_with(Extensions::default).merge(
                        Extensions::builder()
                            .add("x-permission", permission_name(permission))
                            .build(),
                    );
                }
            }
        }
    }
}

/// `{allOf: [{$ref: A}, {properties...}]}` as one object: the parts' properties and
/// required fields, and A's `additionalProperties`.
fn merge_all_of(schema: &RefOr<Schema>, components: &Components) -> Option<RefOr<Schema>> {
    let RefOr::T(Schema::AllOf(all_of)) = schema else {
        return None;
    };
    let mut merged: Option<Object> = None;
    for part in &all_of.items {
        let part = match part {
            RefOr::Ref(r) => components.schemas.get(r.ref_location.rsplit('/').next()?)?,
            t => t,
        };
        let RefOr::T(Schema::Object(part)) = part else {
            return None;
        };
        match &mut merged {
            None => merged = Some(part.clone()),
            Some(m) => {
                m.properties.extend(part.properties.clone());
                m.required.extend(part.required.clone());
            }
        }
    }
    let mut merged = merged?;
    merged.description = all_of.description.clone();
    Some(RefOr::T(Schema::Object(merged)))
}

/// An optional body (`Option<T>` in `request_body`, which utoipa writes as `T` or null) as
/// `T` alone: the handlers take no body or `T`, never `null` (the body stays not required).
fn without_null(schema: &mut RefOr<Schema>) {
    let RefOr::T(Schema::OneOf(one_of)) = schema else {
        return;
    };
    let is_null = |s: &RefOr<Schema>| matches!(s, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
    let mut kept = one_of.items.iter().filter(|s| !is_null(s));
    if let (Some(only), None) = (kept.next(), kept.next())
        && one_of.items.len() == 2
    {
        *schema = only.clone();
    }
}

/// The permission a handler's doc comment names (`Permission: \`incidents-read\``).
fn permission_in(description: &str) -> Option<Permission> {
    let name = description.split("Permission: `").nth(1)?.split('`').next()?;
    serde_json::from_value(serde_json::Value::from(name)).ok()
}

fn permission_name(p: Permission) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// "Roles: admin, analyst. Token scopes: incidents."
fn who_may(p: Permission) -> String {
    let roles: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| r.allows(p))
        .map(Role::as_str)
        .collect();
    let scopes: Vec<&str> = SCOPES
        .into_iter()
        .filter(|s| crate::rbac::scope_allows(s, p))
        .collect();
    let mut line = format!("Roles: {}.", roles.join(", "));
    if !scopes.is_empty() {
        line.push_str(&format!(" Token scopes: {}.", scopes.join(", ")));
    }
    line
}

/// The document, built once.
pub fn document() -> &'static Document {
    static DOC: LazyLock<Document> = LazyLock::new(ApiDoc::openapi);
    &DOC
}

/// The document and the explorer page.
pub fn router(_app: Arc<App>) -> Router {
    Router::new()
        .route(DOCUMENT_PATH, get(serve_document))
        .route(EXPLORER_PATH, get(serve_explorer))
}

async fn serve_document() -> Response {
    static JSON: LazyLock<String> =
        LazyLock::new(|| document().to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    let mut r = (StatusCode::OK, JSON.as_str()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Any page may read it (the explorer, a client generator); it holds nothing secret.
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    r
}

/// The explorer's script, inline and allowed by its hash alone (no other script runs).
const EXPLORER_SCRIPT: &str = include_str!("openapi_explorer.js");

const EXPLORER_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}\
main{max-width:56rem;margin:0 auto;padding:1rem}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid #ccd}\
details{background:#fff;border:1px solid #d5d9e2;border-radius:.3rem;margin:.4rem 0;padding:.4rem .6rem}\
summary{cursor:pointer;overflow-wrap:anywhere}\
.m{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace}\
.get{color:#1a6b2f}.post{color:#1f5fbf}.put{color:#8a5a00}.patch{color:#6b3fa0}.delete{color:#a11}\
code,pre,textarea{font-family:ui-monospace,monospace;font-size:.85rem}\
pre{background:#f0f2f6;padding:.5rem;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}\
label{display:block;margin:.5rem 0 .2rem;font-weight:600}\
input,textarea{box-sizing:border-box;width:100%;padding:.4rem;border:1px solid #b8bfcc;border-radius:.3rem}\
button{margin-top:.6rem;padding:.5rem 1rem;border:0;border-radius:.3rem;background:#1f5fbf;color:#fff}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #e2e5ec;vertical-align:top}";

async fn serve_explorer() -> Response {
    static CSP: LazyLock<String> = LazyLock::new(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(EXPLORER_SCRIPT));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; connect-src 'self'; \
             style-src 'unsafe-inline'; img-src 'self'; form-action 'none'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    });
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>API · Osprey</title><style>{EXPLORER_STYLE}</style></head>\
         <body><main><h1>Osprey API</h1>\
         <p>The operations of <code>/api/v1</code>, from <a href=\"{DOCUMENT_PATH}\">{DOCUMENT_PATH}</a> \
         (OpenAPI 3.1). Paste an API token to try them: it stays in this tab.</p>\
         <label for=\"token\">API token</label>\
         <input id=\"token\" type=\"password\" autocomplete=\"off\" placeholder=\"osp_...\">\
         <div id=\"ops\"><p>Loading the document…</p></div>\
         <noscript><p>This page needs JavaScript; the document itself is at \
         <a href=\"{DOCUMENT_PATH}\">{DOCUMENT_PATH}</a>.</p></noscript>\
         </main><script>{EXPLORER_SCRIPT}</script></body></html>\n"
    );
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_names_its_permission_and_roles() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut n = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let p = op["x-permission"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no permission"));
                let description = op["description"].as_str().unwrap();
                assert!(
                    description.contains("Roles: admin"),
                    "{method} {path}: {description}"
                );
                assert!(!p.is_empty());
                let security = if p == "alerts-write" {
                    serde_json::json!([{ "bearer": [] }])
                } else {
                    serde_json::json!([{ "bearer": [] }, { "session": [], "csrf": [] }])
                };
                assert_eq!(op["security"], security, "{method} {path}");
                for status in ["401", "403", "503"] {
                    assert!(
                        op["responses"][status].is_object(),
                        "{method} {path} lacks {status}"
                    );
                }
                n += 1;
            }
        }
        assert!(n >= 27, "{n}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn lists_answer_pages_of_their_items() {
        let doc = serde_json::to_value(document()).unwrap();
        for (path, item) in [
            ("/api/v1/incidents", "IncidentRecord"),
            ("/api/v1/tasks", "TaskRecord"),
            ("/api/v1/indicators", "Indicator"),
            ("/api/v1/alerts", "StoredAlert"),
            ("/api/v1/runs", "RunRecord"),
            ("/api/v1/audit", "AuditEntry"),
            ("/api/v1/lists", "ListInfo"),
            ("/api/v1/lists/{name}/entries", "ListEntry"),
            ("/api/v1/playbooks", "PlaybookSummary"),
        ] {
            let schema =
                &doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
            let page = schema["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: {schema}"));
            assert_eq!(page, format!("#/components/schemas/Paged_{item}"), "{path}");
            let page = &doc["components"]["schemas"][format!("Paged_{item}")];
            assert_eq!(
                page["properties"]["items"]["items"]["$ref"],
                format!("#/components/schemas/{item}"),
                "{path}: {page}"
            );
            assert!(
                doc["components"]["schemas"][item]["properties"].is_object()
                    || doc["components"]["schemas"][item]["allOf"].is_array(),
                "{item}"
            );
            assert!(page["properties"]["next_cursor"].is_object(), "{path}");
        }
    }

    #[test]
    fn a_new_incident_is_a_spec_and_its_parent_and_nothing_else() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let body = &schemas["NewIncidentBody"];
        assert_eq!(body["additionalProperties"], false, "{body}");
        let mut expected: Vec<&String> = schemas["IncidentSpec"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let parent = "parent".to_owned();
        expected.push(&parent);
        expected.sort();
        let keys: Vec<&String> = body["properties"].as_object().unwrap().keys().collect();
        assert_eq!(keys, expected);
        assert_eq!(body["required"], schemas["IncidentSpec"]["required"]);
    }

    #[test]
    fn an_optional_body_is_absent_or_an_object_never_null() {
        let doc = serde_json::to_value(document()).unwrap();
        let body = &doc["paths"]["/api/v1/incidents/{id}/sla/pause"]["post"]["requestBody"];
        assert_eq!(
            body["content"]["application/json"]["schema"],
            serde_json::json!({ "$ref": "#/components/schemas/Nothing" }),
            "{body}"
        );
        assert_ne!(body["required"], true, "{body}");
    }

    #[tokio::test]
    async fn the_problem_schema_is_what_the_server_writes() {
        let r = super::super::problem(StatusCode::NOT_FOUND, "not-found", "no such thing");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let written: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let mut keys: Vec<&String> = written.as_object().unwrap().keys().collect();
        keys.sort();
        let doc = serde_json::to_value(document()).unwrap();
        let schema = &doc["components"]["schemas"]["Problem"];
        let mut documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        documented.sort();
        assert_eq!(keys, documented);
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        required.sort();
        assert_eq!(required, ["status", "title", "type"]);
        assert_eq!(written["type"], "https://osprey.dev/problems/not-found");
        assert_eq!(written["status"], 404);
    }
}
