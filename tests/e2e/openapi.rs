//! The OpenAPI document of `/api/v1` (`server/openapi.rs`), from the real server: it is a
//! valid OpenAPI 3.1 document whose references all resolve, it lists exactly the routes the
//! router serves (read from the source, as the RBAC matrix reads them), each operation's
//! permission is the one the matrix walks, and every documented operation is served. The
//! explorer page loads with its own script and nothing from elsewhere.

use crate::rbac::{ROUTES, served_routes};
use crate::support::{Cli, Server, http_client};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// axum's `{*value}` is OpenAPI's `{value}`.
fn openapi_path(axum: &str) -> String {
    axum.replace("{*", "{")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_valid_and_describes_exactly_the_served_routes() {
    let cli = Cli::new();
    let server = Server::start(&cli);
    let http = http_client();
    let base = format!("http://{}", server.addr);

    // Public, JSON.
    let r = http.get(format!("{base}/api/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();

    // A valid OpenAPI 3.1 document, read by a validator's model.
    let spec = oas3::from_json(&text).expect("the document is an OpenAPI 3.1 document");
    let version = spec.validate_version().expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert_eq!(spec.info.title, "Osprey");
    assert_eq!(spec.info.version, env!("CARGO_PKG_VERSION"));
    for (path, method, op) in spec.operations() {
        op.parameters(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: the parameters: {e}"));
        op.request_body(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: the body: {e}"));
        for (status, response) in op.responses.iter().flatten() {
            let response = response
                .resolve(&spec)
                .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
            for (media, content) in &response.content {
                if let Some(schema) = &content.schema {
                    schema
                        .resolve(&spec)
                        .unwrap_or_else(|e| panic!("{method} {path} {status} {media}: {e}"));
                }
            }
        }
    }

    // Every `$ref` points at something in the document.
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "{}", all.len());
    for r in all {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("an outside reference: {r}"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }

    // Operations: unique ids, and each path parameter declared and required.
    let mut documented = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in path.split('{').skip(1).map(|s| s.split('}').next().unwrap()) {
                assert!(
                    params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{method} {path}: the path parameter {name} is not declared"
                );
            }
            // 4xx and 5xx answers are problem documents of the shared schema.
            for (status, response) in op["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let name = response["$ref"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{method} {path} {status}"));
                    let response = doc.pointer(name.trim_start_matches('#')).unwrap();
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }

    // Exactly the routes the router serves under /api/v1.
    let served: BTreeSet<(String, String)> = served_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/api/v1/"))
        .map(|(m, p)| (m, openapi_path(&p)))
        .collect();
    assert!(served.len() >= 25, "the router was not read: {served:?}");
    for route in &served {
        assert!(
            documented.contains(route),
            "{} {} is served but not documented",
            route.0,
            route.1
        );
    }
    for route in &documented {
        assert!(
            served.contains(route),
            "{} {} is documented but not served",
            route.0,
            route.1
        );
    }

    // Each operation's permission is the one the RBAC matrix walks.
    for (method, path, _, permission) in ROUTES.iter().filter(|r| r.1.starts_with("/api/v1/")) {
        let op = &doc["paths"][openapi_path(path)][method.to_lowercase()];
        let expected = serde_json::to_value(permission).unwrap();
        assert_eq!(op["x-permission"], expected, "{method} {path}");
        assert!(
            op["description"].as_str().unwrap().contains("Roles: admin"),
            "{method} {path}"
        );
    }

    // And the server answers each documented operation (401 without a token, not 404/405).
    for (method, path) in &documented {
        let sample = path
            .replace("{kind}", "ip")
            .replace("{value}", "192.0.2.1")
            .replace("{id}", "x-1")
            .replace("{name}", "r");
        let r = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{sample}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {sample}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{method} {sample}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_page_loads_with_only_its_own_script() {
    let cli = Cli::new();
    let server = Server::start(&cli);
    let r = http_client()
        .get(format!("http://{}/api/docs", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("/api/openapi.json"), "{html}");
    assert!(
        html.contains("<script>") && !html.contains("<script src"),
        "{html}"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere: {html}"
    );
}
