//! The caller's inbox of questions: the open questions addressed to them or to one of their
//! roles, and answering one (what the inbox page and answer links do, for scripts and other
//! front ends). A question is answered by a person: a web session, or a token that acts for
//! a user.

use super::{Answer, Problem, bad_request, caller, conflict, forbidden, not_found, ok};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::openapi::{BadRequest, Conflict, Forbidden, NotFound, TooLarge};
use crate::server::paging::{self, LimitParam, Paged};
use crate::store::questions::{Answerer, QuestionError, QuestionStatus};
use axum::extract::{Path, Query, Request, State};
use axum::http::HeaderMap;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The user a question is answered as.
fn person(user: Option<String>) -> Result<String, Problem> {
    user.ok_or_else(|| {
        forbidden("questions are answered by a person: sign in, or use a token that acts for a user (osprey token create --user)")
    })
}

/// The caller's open questions.
///
/// Those addressed to the caller or to one of their roles, oldest first; `limit` 1 to 500,
/// default 50 (one page: `next_cursor` is always null).
///
/// Permission: `inbox`.
#[utoipa::path(
    get,
    path = "/api/v1/questions",
    tag = "questions",
    params(LimitParam),
    responses(
        (status = 200, description = "The open questions", body = inline(Paged<Object>)),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden)
    )
)]
pub(super) async fn list_questions(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Answer {
    let who = caller(&app, &headers, Permission::Inbox).await?;
    let params = super::query(params, &["limit"])?;
    let limit =
        paging::limit(params.get("limit").map(String::as_str)).map_err(|e| bad_request(&e.to_string()))?;
    let user = person(who.user)?;
    let items = app
        .store
        .questions(Some(QuestionStatus::Open), Some(&user), limit)
        .await?;
    ok(Paged {
        items,
        next_cursor: None,
    })
}

/// Answer a question.
///
/// The body is `{"value": ..., "comment": "..."}`: for `ask` one of its options, for
/// `approve` true or false (or "approve"/"deny"), for `form` an object of its fields; the
/// comment is optional. Checked as the inbox checks it; answered once; audited as the user.
///
/// Permission: `inbox` (and the question is for the caller or one of their roles).
#[utoipa::path(
    post,
    path = "/api/v1/questions/{id}/answer",
    tag = "questions",
    params(("id" = String, Path, description = "The question's id")),
    request_body(content = Object, description = "`value` and an optional `comment`"),
    responses(
        (status = 200, description = "The answered question", body = Object),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge)
    )
)]
pub(super) async fn answer_question(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    request: Request,
) -> Answer {
    let (parts, body) = request.into_parts();
    let who = caller(&app, &parts.headers, Permission::Inbox).await?;
    let user = person(who.user)?;
    let submitted: Value = super::body_json(body).await?;
    let q = match app.store.question(&id).await {
        Ok(Some(q)) => q,
        Ok(None) => return Err(not_found(format!("no question '{id}'"))),
        Err(e) => return Err(e.into()),
    };
    let answer = q.question.check_answer(&submitted).map_err(|errors| {
        let why: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        bad_request(&format!("the answer is not right: {}", why.join("; ")))
    })?;
    let (ip, agent) = crate::server::web::peer(&parts);
    let from = ip.map(|ip| ip.to_string());
    let answerer = Answerer::User {
        name: &user,
        from: from.as_deref(),
        agent: agent.as_deref(),
    };
    match app.store.answer_question(&id, &answer, &answerer).await {
        Ok(q) => ok(q),
        Err(e @ QuestionError::NotAllowed { .. }) => Err(forbidden(&e.to_string())),
        Err(QuestionError::NotFound(_)) => Err(not_found(format!("no question '{id}'"))),
        Err(QuestionError::Store(e)) => Err(e.into()),
        Err(QuestionError::Invalid(why)) => Err(bad_request(&why)),
        Err(e) => Err(conflict(&e.to_string())),
    }
}
