//! Role-based access, walked as a matrix: a token of each role calls every API route, and
//! each call is allowed or refused (403) exactly as the route's permission and the role say
//! (`rbac.rs`). The table below is the routes' contract: a route added to the router without
//! a row here fails `every_route_is_in_the_matrix`.

use crate::api::{set_password, sign_in};
use crate::support::{Cli, Server, http_client};
use osprey::rbac::{Permission, Role};
use reqwest::Method;

/// Every route under /api/v1 and /edl, with a sample path, and the permission it needs
/// (`openapi.rs` checks the OpenAPI document against it too).
pub(crate) const ROUTES: &[(&str, &str, &str, Permission)] = &[
    (
        "GET",
        "/api/v1/plugins",
        "/api/v1/plugins",
        Permission::PluginsRead,
    ),
    (
        "GET",
        "/api/v1/plugins/{name}",
        "/api/v1/plugins/some-plugin",
        Permission::PluginsRead,
    ),
    (
        "PUT",
        "/api/v1/plugins/{name}/grant",
        "/api/v1/plugins/some-plugin/grant",
        Permission::PluginsWrite,
    ),
    (
        "PUT",
        "/api/v1/plugins/{name}/mock",
        "/api/v1/plugins/some-plugin/mock",
        Permission::PluginsWrite,
    ),
    (
        "DELETE",
        "/api/v1/plugins/{name}/mock",
        "/api/v1/plugins/some-plugin/mock",
        Permission::PluginsWrite,
    ),
    (
        "POST",
        "/api/v1/plugin-installs",
        "/api/v1/plugin-installs",
        Permission::PluginsWrite,
    ),
    (
        "GET",
        "/api/v1/plugin-installs/{id}",
        "/api/v1/plugin-installs/no-such-install",
        Permission::PluginsWrite,
    ),
    (
        "DELETE",
        "/api/v1/plugin-installs/{id}",
        "/api/v1/plugin-installs/no-such-install",
        Permission::PluginsWrite,
    ),
    (
        "POST",
        "/api/v1/plugin-installs/{id}/apply",
        "/api/v1/plugin-installs/no-such-install/apply",
        Permission::PluginsWrite,
    ),
    (
        "GET",
        "/api/v1/incidents",
        "/api/v1/incidents",
        Permission::IncidentsRead,
    ),
    (
        "POST",
        "/api/v1/incidents",
        "/api/v1/incidents",
        Permission::IncidentsWrite,
    ),
    (
        "GET",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/i-none",
        Permission::IncidentsRead,
    ),
    (
        "PATCH",
        "/api/v1/incidents/{id}",
        "/api/v1/incidents/i-none",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/close",
        "/api/v1/incidents/i-none/close",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/reopen",
        "/api/v1/incidents/i-none/reopen",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/notes",
        "/api/v1/incidents/i-none/notes",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/related",
        "/api/v1/incidents/i-none/related",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/children",
        "/api/v1/incidents/i-none/children",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/sla/pause",
        "/api/v1/incidents/i-none/sla/pause",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/incidents/{id}/sla/resume",
        "/api/v1/incidents/i-none/sla/resume",
        Permission::IncidentsWrite,
    ),
    ("GET", "/api/v1/tasks", "/api/v1/tasks", Permission::IncidentsRead),
    (
        "POST",
        "/api/v1/tasks",
        "/api/v1/tasks",
        Permission::IncidentsWrite,
    ),
    (
        "GET",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/t-none",
        Permission::IncidentsRead,
    ),
    (
        "POST",
        "/api/v1/tasks/{id}/complete",
        "/api/v1/tasks/t-none/complete",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/tasks/{id}/delegate",
        "/api/v1/tasks/t-none/delegate",
        Permission::IncidentsWrite,
    ),
    (
        "POST",
        "/api/v1/tasks/{id}/cancel",
        "/api/v1/tasks/t-none/cancel",
        Permission::IncidentsWrite,
    ),
    (
        "GET",
        "/api/v1/indicators",
        "/api/v1/indicators",
        Permission::IncidentsRead,
    ),
    (
        "GET",
        "/api/v1/indicators/{kind}/{*value}",
        "/api/v1/indicators/ip/192.0.2.1",
        Permission::IncidentsRead,
    ),
    (
        "PUT",
        "/api/v1/indicators/{kind}/{*value}",
        "/api/v1/indicators/ip/192.0.2.1",
        Permission::IncidentsWrite,
    ),
    ("GET", "/api/v1/rules", "/api/v1/rules", Permission::RulesRead),
    (
        "POST",
        "/api/v1/rules/test",
        "/api/v1/rules/test",
        Permission::RulesRead,
    ),
    (
        "PUT",
        "/api/v1/rules/test",
        "/api/v1/rules/test",
        Permission::RulesWrite,
    ),
    (
        "DELETE",
        "/api/v1/rules/test",
        "/api/v1/rules/test",
        Permission::RulesWrite,
    ),
    (
        "PUT",
        "/api/v1/rules/{name}",
        "/api/v1/rules/some-rule",
        Permission::RulesWrite,
    ),
    (
        "DELETE",
        "/api/v1/rules/{name}",
        "/api/v1/rules/some-rule",
        Permission::RulesWrite,
    ),
    (
        "POST",
        "/api/v1/alerts",
        "/api/v1/alerts",
        Permission::AlertsWrite,
    ),
    (
        "GET",
        "/api/v1/alerts",
        "/api/v1/alerts",
        Permission::IncidentsRead,
    ),
    (
        "GET",
        "/api/v1/playbooks",
        "/api/v1/playbooks",
        Permission::PlaybooksRead,
    ),
    (
        "GET",
        "/api/v1/playbooks/{name}",
        "/api/v1/playbooks/some-playbook",
        Permission::PlaybooksRead,
    ),
    (
        "POST",
        "/api/v1/playbooks/{name}/runs",
        "/api/v1/playbooks/some-playbook/runs",
        Permission::PlaybooksWrite,
    ),
    (
        "GET",
        "/api/v1/playbooks/{name}/charts/{chart}",
        "/api/v1/playbooks/some-playbook/charts/some-chart",
        Permission::PlaybooksRead,
    ),
    ("GET", "/api/v1/runs", "/api/v1/runs", Permission::PlaybooksRead),
    (
        "GET",
        "/api/v1/runs/{id}",
        "/api/v1/runs/r-none",
        Permission::PlaybooksRead,
    ),
    (
        "POST",
        "/api/v1/runs/{id}/cancel",
        "/api/v1/runs/r-none/cancel",
        Permission::PlaybooksWrite,
    ),
    (
        "POST",
        "/api/v1/runs/{id}/restart",
        "/api/v1/runs/r-none/restart",
        Permission::PlaybooksWrite,
    ),
    ("GET", "/api/v1/audit", "/api/v1/audit", Permission::AuditRead),
    (
        "GET",
        "/api/v1/audit/verify",
        "/api/v1/audit/verify",
        Permission::AuditRead,
    ),
    ("GET", "/api/v1/lists", "/api/v1/lists", Permission::ListsRead),
    (
        "GET",
        "/api/v1/lists/{name}/entries",
        "/api/v1/lists/some-list/entries",
        Permission::ListsRead,
    ),
    (
        "POST",
        "/api/v1/lists/{name}/entries",
        "/api/v1/lists/some-list/entries",
        Permission::ListsWrite,
    ),
    (
        "DELETE",
        "/api/v1/lists/{name}/entries/{*value}",
        "/api/v1/lists/some-list/entries/192.0.2.0/24",
        Permission::ListsWrite,
    ),
    ("GET", "/api/v1/questions", "/api/v1/questions", Permission::Inbox),
    (
        "POST",
        "/api/v1/questions/{id}/answer",
        "/api/v1/questions/q-none/answer",
        Permission::Inbox,
    ),
    (
        "GET",
        "/api/v1/requests",
        "/api/v1/requests",
        Permission::RequestsCreate,
    ),
    (
        "POST",
        "/api/v1/requests/{playbook}",
        "/api/v1/requests/no-such-form",
        Permission::RequestsCreate,
    ),
    ("GET", "/edl/{file}", "/edl/some-list.txt", Permission::EdlRead),
];

/// The routes only machines call, with tokens: a web session is not a caller there.
const TOKEN_ONLY: &[(&str, &str)] = &[("POST", "/api/v1/alerts"), ("GET", "/edl/{file}")];

/// How a caller of one role authenticates.
enum Credential {
    Token(String),
    /// A signed-in user's session cookie and its CSRF token.
    Session {
        cookie: String,
        csrf: String,
    },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_is_allowed_or_refused_on_every_route() {
    let cli = Cli::new();
    let mut callers = Vec::new();
    for role in Role::ALL {
        let name = format!("as-{role}");
        let t = cli.ok(&["token", "create", &name, "--role", role.as_str()]);
        callers.push((role, Credential::Token(t.trim().to_owned())));
        let user = format!("user-{role}");
        cli.ok(&["user", "add", &user, "--role", role.as_str(), "--role", "soc"]);
        set_password(&cli, &user);
    }
    let server = Server::start(&cli);
    let base = format!("http://{}", server.addr);
    for role in Role::ALL {
        let (cookie, csrf) = sign_in(&base, &format!("user-{role}")).await;
        callers.push((role, Credential::Session { cookie, csrf }));
    }
    let http = http_client();
    let mut checked = 0;
    for (method, route, path, permission) in ROUTES {
        let url = format!("{base}{path}");
        let token_only = TOKEN_ONLY.contains(&(*method, *route));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        // Without a token: 401, whatever the route.
        let r = http
            .request(method.clone(), &url)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without a token");
        for (role, credential) in &callers {
            let mut request = http
                .request(method.clone(), &url)
                .header("content-type", "application/json")
                .body("{}");
            request = match credential {
                Credential::Token(token) => request.bearer_auth(token),
                Credential::Session { cookie, csrf } => {
                    request.header("cookie", cookie).header("x-csrf-token", csrf)
                }
            };
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            let kind = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["type"].clone();
            // A refusal by role is a 403 of its own type (in plain text from /edl, which
            // firewalls read); a route may still refuse an allowed caller for its own reasons
            // (a task completed by a token acting for nobody).
            let denied = status == 403
                && (kind == "https://osprey.dev/problems/permission-denied"
                    || body.contains("role and scopes do not allow this"));
            let how = match credential {
                Credential::Token(_) => "token",
                Credential::Session { .. } => "session",
            };
            if token_only && matches!(credential, Credential::Session { .. }) {
                assert_eq!(
                    status, 401,
                    "a {role} session is no caller of {method} {path}: {body}"
                );
            } else if role.allows(*permission) {
                assert!(
                    status != 401 && !denied,
                    "{role} ({how}) must be let through {method} {path} ({permission:?}): {status} {body}"
                );
            } else {
                assert!(
                    denied,
                    "{role} ({how}) must be refused {method} {path} ({permission:?}): {status} {body}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * Role::ALL.len() * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_a_user_cannot_have_a_role_the_user_lacks() {
    let cli = Cli::new();
    cli.ok(&["user", "add", "rita", "--role", "requester"]);
    let e = cli.fails(&[
        "token",
        "create",
        "rita-admin",
        "--role",
        "admin",
        "--user",
        "rita",
    ]);
    assert!(e.contains("does not have the role 'admin'"), "{e}");
    cli.ok(&[
        "token",
        "create",
        "rita-requests",
        "--role",
        "requester",
        "--user",
        "rita",
    ]);
    let e = cli.fails(&["token", "create", "nobody", "--role", "wizard"]);
    assert!(
        e.contains("unknown role 'wizard'") && e.contains("auditor"),
        "{e}"
    );
    let listed = cli.ok(&["token", "list"]);
    assert!(listed.contains("role requester"), "{listed}");
}

/// The router's routes under /api/v1 and /edl, as the code declares them (read from the
/// source: the router is the one list of routes), all in the matrix above. (The OpenAPI
/// document and its explorer, `/api/openapi.json` and `/api/docs`, are public.)
#[test]
fn every_route_is_in_the_matrix() {
    let declared = served_routes();
    assert!(declared.len() >= 20, "the router was not read: {declared:?}");
    for (method, path) in &declared {
        assert!(
            ROUTES.iter().any(|(m, p, _, _)| m == method && p == path),
            "{method} {path} is served but has no row in the RBAC matrix"
        );
    }
    for (m, p, _, _) in ROUTES {
        assert!(
            declared.iter().any(|(dm, dp)| dm == m && dp == p),
            "{m} {p} is in the matrix but not served"
        );
    }
}

/// The methods and paths of the routes under /api/v1 and /edl, as the files under
/// `host/src/server/` declare them (`.route("PATH", get(a).post(b))`), in axum's syntax
/// (`{*value}`).
pub(crate) fn served_routes() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server");
    let mut declared = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // `.route("PATH", get(a).post(b))`, possibly over several lines.
            for chunk in text.split(".route(").skip(1) {
                let Some(path) = chunk
                    .trim_start()
                    .strip_prefix('"')
                    .and_then(|c| c.split('"').next())
                else {
                    continue;
                };
                if !(path.starts_with("/api/v1/") || path.starts_with("/edl")) {
                    continue;
                }
                let handlers = &chunk[..chunk.find("\n        .").unwrap_or(chunk.len())];
                for (word, method) in [
                    ("get(", "GET"),
                    ("post(", "POST"),
                    ("put(", "PUT"),
                    ("patch(", "PATCH"),
                    ("delete(", "DELETE"),
                ] {
                    if handlers.contains(word) {
                        declared.push((method.to_owned(), path.to_owned()));
                    }
                }
            }
        }
    }
    declared
}
