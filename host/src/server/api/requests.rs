//! Request forms: the ones the caller may fill in, and sending one, which starts the form's
//! playbook with the caller as its `requester` (`Executor::start_request`). A request needs a
//! user: a web session, or a token that acts for a user.

use super::runs::run_failed;
use super::{Answer, Problem, bad_request, body_as, caller, created, forbidden, not_found, ok};
use crate::app::App;
use crate::playbook::RequestFormInfo;
use crate::rbac::Permission;
use crate::runs::RequestError;
use crate::server::openapi::{BadRequest, Forbidden, NotFound, TooLarge};
use crate::server::paging::Paged;
use crate::store::runs::RunRecord;
use crate::store::users::UserRecord;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The user a request is made as.
async fn requester(app: &App, user: Option<&str>) -> Result<UserRecord, Problem> {
    let Some(name) = user else {
        return Err(forbidden(
            "a request is made by a person: sign in, or use a token that acts for a user (osprey token create --user)",
        ));
    };
    match app.store.user(name).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(forbidden(&format!("user '{name}' no longer exists"))),
        Err(e) => Err(e.into()),
    }
}

/// The request forms the caller may fill in.
///
/// Each is a playbook with a `[request]` table; its fields are the playbook's inputs. A
/// single page: `next_cursor` is always null.
///
/// Permission: `requests-create`.
#[utoipa::path(
    get,
    path = "/api/v1/requests",
    tag = "requests",
    responses(
        (status = 200, description = "The forms", body = inline(Paged<RequestFormInfo>)),
        (status = 403, response = Forbidden)
    )
)]
pub(super) async fn list_forms(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let who = caller(&app, &headers, Permission::RequestsCreate).await?;
    let user = requester(&app, who.user.as_deref()).await?;
    let items: Vec<RequestFormInfo> = app
        .executor
        .request_forms()
        .into_iter()
        .filter(|f| f.allows(&user.roles, user.disabled_at.is_some()))
        .collect();
    ok(Paged {
        items,
        next_cursor: None,
    })
}

/// Send a request.
///
/// The body holds the form's fields (the playbook's inputs), checked like a run's input.
/// Starts the playbook with the caller as `requester`; the run's origin is `request:NAME`.
///
/// Permission: `requests-create` (and one of the form's `roles`, if it names any).
#[utoipa::path(
    post,
    path = "/api/v1/requests/{playbook}",
    tag = "requests",
    params(("playbook" = String, Path, description = "The request form's playbook")),
    request_body(content = Object, description = "The form's fields"),
    responses(
        (status = 201, description = "Sent: the run that handles it", body = RunRecord),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn send_request(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(playbook): Path<String>,
    body: Body,
) -> Answer {
    let who = caller(&app, &headers, Permission::RequestsCreate).await?;
    let user = requester(&app, who.user.as_deref()).await?;
    let input: Map<String, Value> = body_as(body, "request").await?;
    let id = match app.executor.start_request(&playbook, &input, &user).await {
        Ok(id) => id,
        Err(RequestError::NotARequest(_)) => {
            return Err(not_found(format!("there is no request form '{playbook}'")));
        }
        Err(e @ RequestError::Forbidden { .. }) => return Err(forbidden(&e.to_string())),
        Err(RequestError::Run(e)) => return Err(run_failed(e, bad_request)),
    };
    let Some(run) = app.store.run(&id).await? else {
        return Err(super::internal());
    };
    created(&format!("/api/v1/runs/{id}"), run)
}
