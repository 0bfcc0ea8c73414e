//! Pre-processing rules: list, set (create or replace, at a position), remove, and test
//! candidate rules against stored alerts.

use super::{
    Answer, bad_request, body_as, body_json, caller, created, internal, no_content, not_found, ok, query,
};
use crate::app::App;
use crate::preprocess::{RuleSpec, RuleTest};
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, NotFound, TooLarge};
use crate::store::rules::RuleRecord;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Alerts `POST /api/v1/rules/test` tests against by default, and at most.
const DEFAULT_TEST_ALERTS: i64 = 1000;
const MAX_TEST_ALERTS: i64 = 50_000;

/// A rule as stored, and where.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct RulePut {
    /// 1 is tried first.
    position: i64,
    rule: RuleSpec,
}

/// List the pre-processing rules.
///
/// In the order they are tried.
///
/// Permission: `rules-read`.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    responses((status = 200, description = "The rules", body = Vec<RuleRecord>))
)]
pub(super) async fn list_rules(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    caller(&app, &headers, Permission::RulesRead).await?;
    ok(app.store.rules().await?)
}

/// Create or replace a rule.
///
/// The body's `name` may be left out (the path names the rule). `?position=N` puts it there (1
/// is tried first); a new rule goes last by default. Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    put,
    path = "/api/v1/rules/{name}",
    tag = "rules",
    params(
        ("name" = String, Path, description = "The rule's name"),
        ("position" = Option<i64>, Query, minimum = 1, description = "Where it goes, from 1 (tried first)")
    ),
    request_body(content = RuleSpec),
    responses(
        (status = 200, description = "Replaced", body = RulePut),
        (
            status = 201,
            description = "Created; `Location` names it",
            body = RulePut,
            headers(("Location" = String, description = "/api/v1/rules/NAME"))
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn put_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
    body: Body,
) -> Answer {
    set_rule(&app, &headers, &name, params, body).await
}

/// Create or replace the rule named `test`.
///
/// The same as `PUT /api/v1/rules/{name}` for the name `test` (whose path `POST` is the rules
/// test). Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    put,
    path = "/api/v1/rules/test",
    tag = "rules",
    params(("position" = Option<i64>, Query, minimum = 1, description = "Where it goes, from 1 (tried first)")),
    request_body(content = RuleSpec),
    responses(
        (status = 200, description = "Replaced", body = RulePut),
        (status = 201, description = "Created", body = RulePut),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn put_rule_test(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
    body: Body,
) -> Answer {
    set_rule(&app, &headers, "test", params, body).await
}

/// Store the rule in the body under `name` (the body's `name` may be left out), at
/// `?position=N` if given (1 = first).
async fn set_rule(
    app: &App,
    headers: &HeaderMap,
    name: &str,
    params: BTreeMap<String, String>,
    body: Body,
) -> Answer {
    let who = caller(app, headers, Permission::RulesWrite).await?;
    let params = query(params, &["position"])?;
    let position = match params.get("position") {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                return Err(bad_request(&format!(
                    "position '{text}' must be a whole number from 1 (first)"
                )));
            }
        },
    };
    let mut value = body_json(body).await?;
    if let Some(object) = value.as_object_mut() {
        match object.get("name") {
            None => {
                object.insert("name".into(), name.into());
            }
            Some(Value::String(n)) if n == name => {}
            Some(other) => {
                return Err(bad_request(&format!(
                    "rule: the body names {other}, the path '{name}'; leave `name` out or make them the same"
                )));
            }
        }
    }
    let spec: RuleSpec = crate::cases::parse("rule", &value)?;
    crate::preprocess::check_rule(&spec, &app.playbooks).map_err(|e| bad_request(&e.to_string()))?;
    let existed = app.store.rules().await?.iter().any(|r| r.spec.name == spec.name);
    let at = app.store.set_rule(&spec, position, &who.actor).await?;
    let answer = RulePut {
        position: at,
        rule: spec.clone(),
    };
    if existed {
        ok(answer)
    } else {
        created(&format!("/api/v1/rules/{}", spec.name), answer)
    }
}

/// Remove a rule.
///
/// Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{name}",
    tag = "rules",
    params(("name" = String, Path, description = "The rule's name")),
    responses((status = 204, description = "Removed"), (status = 404, response = NotFound))
)]
pub(super) async fn delete_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Answer {
    remove_rule(&app, &headers, &name).await
}

/// Remove the rule named `test`.
///
/// The same as `DELETE /api/v1/rules/{name}` for the name `test`. Audited.
///
/// Permission: `rules-write`.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/test",
    tag = "rules",
    responses((status = 204, description = "Removed"), (status = 404, response = NotFound))
)]
pub(super) async fn delete_rule_test(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    remove_rule(&app, &headers, "test").await
}

async fn remove_rule(app: &App, headers: &HeaderMap, name: &str) -> Answer {
    let who = caller(app, headers, Permission::RulesWrite).await?;
    match app.store.remove_rule(name, &who.actor).await {
        Ok(true) => no_content(),
        Ok(false) => Err(not_found(format!("no rule named '{name}'"))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RuleTestRequest {
    /// Candidate rules, in order; the stored rules if absent.
    #[serde(default)]
    rules: Option<Vec<RuleSpec>>,
    /// How many of the newest alerts to test against: 1 to 50,000, default 1,000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 50000)]
    limit: Option<i64>,
}

// The schema's bounds above are literals (utoipa takes no constants there).
const _: () = assert!(MAX_TEST_ALERTS == 50_000 && DEFAULT_TEST_ALERTS == 1000);

/// Test rules against stored alerts.
///
/// Runs candidate rules (or the stored ones) over the newest alerts and says what each would
/// have decided; changes nothing.
///
/// Permission: `rules-read`.
#[utoipa::path(
    post,
    path = "/api/v1/rules/test",
    tag = "rules",
    request_body(content = Option<RuleTestRequest>),
    responses(
        (status = 200, description = "What the rules would have done", body = RuleTest),
        (status = 400, response = BadRequest),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn test_rules(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Answer {
    caller(&app, &headers, Permission::RulesRead).await?;
    let request: RuleTestRequest = body_as(body, "rules test").await?;
    let limit = request.limit.unwrap_or(DEFAULT_TEST_ALERTS);
    if !(1..=MAX_TEST_ALERTS).contains(&limit) {
        return Err(bad_request(&format!(
            "rules test: limit must be a whole number from 1 to {MAX_TEST_ALERTS}"
        )));
    }
    let specs = match request.rules {
        Some(specs) => specs,
        None => app.store.rules().await?.into_iter().map(|r| r.spec).collect(),
    };
    let alerts = app.store.alerts(None, limit).await?;
    // Rule expressions over many alerts: off the async workers.
    let report = tokio::task::spawn_blocking(move || crate::preprocess::test_rules(specs, &alerts))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "testing rules failed");
            internal()
        })?
        .map_err(|e| bad_request(&e.to_string()))?;
    ok(report)
}
