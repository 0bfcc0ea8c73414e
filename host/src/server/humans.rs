//! Pages for people: answer links (`/a/TOKEN`, mailed), escalation links (the same route,
//! "talk to a human"), and the inbox of a signed-in user (`/inbox`).
//!
//! A link's GET only shows a confirmation page (mail scanners prefetch links; they must not
//! answer for anyone); only the POST from that page records the answer. A link that is
//! tampered with, expired, or used gets a page that says which, and changes nothing. The
//! token is the capability, so these pages need no account; they are never cached and send
//! no referrer (the token is in the URL).

use super::web::{WebUser, check_csrf, escape_html, html_page};
use crate::app::App;
use crate::humans::links::{LinkError, Purpose};
use crate::humans::questions::{FieldError, FieldType, Kind};
use crate::store::questions::{Answerer, QuestionError, QuestionRecord, QuestionStatus};
use crate::store::tasks::TaskStatus;
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/a/{token}", get(link_page).post(link_submit))
        .route("/inbox", get(inbox))
        .route("/inbox/questions/{id}", post(inbox_answer))
        .route("/inbox/tasks/{id}", post(inbox_task))
        .with_state(app)
}

/// Where a request came from, for the audit log.
pub(crate) struct Client {
    pub from: Option<String>,
    pub agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let (ip, agent) = super::web::peer(parts);
        Ok(Client {
            from: ip.map(|ip| ip.to_string()),
            agent,
        })
    }
}

fn time(ms: i64) -> String {
    crate::mail::message::format_time(ms)
}

/// A page for a link, with no referrer sent onwards.
fn link_response(status: StatusCode, title: &str, body: &str) -> Response {
    let mut r = html_page(status, title, body);
    r.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r.headers_mut()
        .insert("x-robots-tag", HeaderValue::from_static("noindex, nofollow"));
    r
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    link_response(
        status,
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape_html(title), escape_html(text)),
    )
}

/// The page for a link that cannot be used, saying why.
fn refused(e: &LinkRefusal) -> Response {
    match e {
        LinkRefusal::Tampered => message_page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "It was changed, cut short, or not made by this server. Nothing was recorded. \
             Open the link from the message again, or ask the sender for a new one.",
        ),
        LinkRefusal::Expired(at) => message_page(
            StatusCode::GONE,
            "This link expired",
            &format!("It was valid until {}. Nothing was recorded.", time(*at)),
        ),
        LinkRefusal::Used(at) => message_page(
            StatusCode::GONE,
            "This link was already used",
            &format!(
                "It was used on {}, and a link works once. Nothing more was recorded.",
                time(*at)
            ),
        ),
        LinkRefusal::Closed(q) => closed_page(q),
    }
}

fn closed_page(q: &QuestionRecord) -> Response {
    let text = match q.status {
        QuestionStatus::TimedOut => format!(
            "\"{}\" was not answered in time; on {} it took its default answer. Nothing more was recorded.",
            q.title,
            time(q.answered_at.unwrap_or_default())
        ),
        QuestionStatus::Cancelled => format!("\"{}\" was cancelled. Nothing was recorded.", q.title),
        _ => format!(
            "\"{}\" was already answered by {} on {}. Nothing more was recorded.",
            q.title,
            who(q.answered_by.as_deref().unwrap_or("someone")),
            time(q.answered_at.unwrap_or_default())
        ),
    };
    message_page(StatusCode::CONFLICT, "Already answered", &text)
}

/// `user:alice` → `alice`; `email:a@b` → `a@b`.
fn who(by: &str) -> &str {
    by.split_once(':').map_or(by, |(_, w)| w)
}

enum LinkRefusal {
    Tampered,
    Expired(i64),
    Used(i64),
    Closed(Box<QuestionRecord>),
}

enum Target {
    Question(Box<QuestionRecord>, String),
    Escalate { link: String, incident: String },
}

/// Check a token and its link row: what it is for, or why it cannot be used.
async fn resolve(app: &App, token: &str) -> Result<Target, Response> {
    let claim = match app.humans.verify(token) {
        Ok(c) => c,
        Err(LinkError::Tampered) => return Err(refused(&LinkRefusal::Tampered)),
        Err(LinkError::Expired { at }) => return Err(refused(&LinkRefusal::Expired(at))),
    };
    let link = match app.store.link(&claim.link).await {
        Ok(Some(l)) => l,
        Ok(None) => return Err(refused(&LinkRefusal::Tampered)),
        Err(e) => return Err(server_error(&e)),
    };
    if let Some(at) = link.used_at {
        return Err(refused(&LinkRefusal::Used(at)));
    }
    match (claim.purpose, link.question_id, link.incident_id) {
        (Purpose::Answer, Some(qid), _) => match app.store.question(&qid).await {
            Ok(Some(q)) if q.status == QuestionStatus::Open => Ok(Target::Question(Box::new(q), link.id)),
            Ok(Some(q)) => Err(refused(&LinkRefusal::Closed(Box::new(q)))),
            Ok(None) => Err(refused(&LinkRefusal::Tampered)),
            Err(e) => Err(server_error(&e)),
        },
        (Purpose::Escalate, _, Some(incident)) => Ok(Target::Escalate {
            link: link.id,
            incident,
        }),
        _ => Err(refused(&LinkRefusal::Tampered)),
    }
}

fn server_error(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "a page for people failed");
    html_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "<h1>Something went wrong</h1><p>Nothing was recorded. Try again in a minute.</p>",
    )
}

/// GET: the confirmation page (the query may preselect an option or a decision). Never
/// records anything.
async fn link_page(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    Query(pre): Query<HashMap<String, String>>,
) -> Response {
    match resolve(&app, &token).await {
        Err(r) => r,
        Ok(Target::Question(q, _)) => {
            let body = question_form(&q, &format!("/a/{token}"), &pre, &[], None, true);
            link_response(StatusCode::OK, &q.title, &body)
        }
        Ok(Target::Escalate { incident, .. }) => {
            let body = format!(
                "<h1>Talk to a human</h1><p>Confirm, and a person from the team takes over your request \
                 ({}) and gets back to you.</p>\
                 <form method=\"post\" action=\"/a/{}\"><button type=\"submit\">Yes, I want to talk to a human</button></form>",
                escape_html(&incident),
                escape_html(&token)
            );
            link_response(StatusCode::OK, "Talk to a human", &body)
        }
    }
}

/// POST from the confirmation page: record the answer (or the escalation).
async fn link_submit(
    State(app): State<Arc<App>>,
    Path(token): Path<String>,
    client: Client,
    body: axum::body::Bytes,
) -> Response {
    // Read leniently: the escalation page's form has no fields, and some clients send it
    // without a content type.
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    match resolve(&app, &token).await {
        Err(r) => r,
        Ok(Target::Question(q, link)) => {
            let answer = match q.question.read_answer(&form) {
                Ok(a) => a,
                Err(errors) => {
                    let body = question_form(&q, &format!("/a/{token}"), &form, &errors, None, true);
                    return link_response(StatusCode::UNPROCESSABLE_ENTITY, &q.title, &body);
                }
            };
            let who = Answerer::Link {
                link: &link,
                from: client.from.as_deref(),
                agent: client.agent.as_deref(),
            };
            match app.store.answer_question(&q.id, &answer, &who).await {
                Ok(done) => thanks(&done),
                Err(e) => answer_refused(e),
            }
        }
        Ok(Target::Escalate { link, .. }) => {
            let h = app.humans.config();
            let escalated = app
                .store
                .escalate_incident(
                    &link,
                    h.escalation_severity,
                    h.oncall_role.as_deref(),
                    client.from.as_deref(),
                    client.agent.as_deref(),
                )
                .await;
            match escalated {
                Ok((incident, owner)) => {
                    tracing::info!(incident = %incident, owner = ?owner, "incident escalated from a link");
                    message_page(
                        StatusCode::OK,
                        "A person is on it",
                        "Thank you. Your request was handed to a person from the team, who will get back to you.",
                    )
                }
                Err(e) => answer_refused(e),
            }
        }
    }
}

fn answer_refused(e: QuestionError) -> Response {
    match e {
        QuestionError::LinkUsed { at } => refused(&LinkRefusal::Used(at)),
        QuestionError::Answered { by, at } => message_page(
            StatusCode::CONFLICT,
            "Already answered",
            &format!(
                "Someone answered first: {} on {}. Nothing more was recorded.",
                who(&by),
                time(at)
            ),
        ),
        QuestionError::TimedOut { at } => message_page(
            StatusCode::CONFLICT,
            "Too late",
            &format!(
                "The question took its default answer on {}. Nothing more was recorded.",
                time(at)
            ),
        ),
        QuestionError::Cancelled => {
            message_page(StatusCode::CONFLICT, "Cancelled", "This question was cancelled.")
        }
        QuestionError::NotAllowed { .. } => {
            message_page(StatusCode::FORBIDDEN, "Not yours to answer", &e.to_string())
        }
        QuestionError::NoLink | QuestionError::NotFound(_) => refused(&LinkRefusal::Tampered),
        QuestionError::Invalid(m) => message_page(StatusCode::CONFLICT, "Not possible", &m),
        QuestionError::Store(e) => server_error(&e),
    }
}

fn thanks(q: &QuestionRecord) -> Response {
    let answer = q.answer.clone().unwrap_or_default();
    let shown = match &answer["value"] {
        serde_json::Value::Bool(true) => "approved".to_owned(),
        serde_json::Value::Bool(false) => "denied".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        _ => "sent".to_owned(),
    };
    message_page(
        StatusCode::OK,
        "Thank you",
        &format!("Your answer to \"{}\" was recorded: {shown}.", q.title),
    )
}

/// The form that answers `q`, posting to `action`; `values` fill it in again (or preselect),
/// `errors` are shown next to their fields. In the inbox the form carries the CSRF token.
fn question_form(
    q: &QuestionRecord,
    action: &str,
    values: &HashMap<String, String>,
    errors: &[FieldError],
    csrf: Option<&str>,
    heading: bool,
) -> String {
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| format!("<p class=\"error\">{}</p>", escape_html(&e.message)))
            .unwrap_or_default()
    };
    let value = |field: &str| values.get(field).map(String::as_str).unwrap_or("");
    let mut h = String::new();
    if heading {
        h.push_str(&format!("<h1>{}</h1>", escape_html(&q.title)));
    } else {
        h.push_str(&format!("<h2>{}</h2>", escape_html(&q.title)));
    }
    for p in q.body.split("\n\n").filter(|p| !p.trim().is_empty()) {
        h.push_str(&format!("<p>{}</p>", escape_html(p)));
    }
    if let Some(due) = q.due_at {
        h.push_str(&format!(
            "<p><small>Answer by {}.</small></p>",
            escape_html(&time(due))
        ));
    }
    if !errors.is_empty() {
        h.push_str(
            "<p class=\"error\">Some answers need another look; see below. Nothing was recorded yet.</p>",
        );
    }
    h.push_str(&format!(
        "<form method=\"post\" action=\"{}\">",
        escape_html(action)
    ));
    if let Some(csrf) = csrf {
        h.push_str(&format!(
            "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
            escape_html(csrf)
        ));
    }
    let radio = |name: &str, options: &[(String, String)], checked: &str| {
        options
            .iter()
            .map(|(v, label)| {
                format!(
                    "<label style=\"font-weight:normal\"><input type=\"radio\" style=\"width:auto\" name=\"{}\" value=\"{}\"{}> {}</label>",
                    escape_html(name),
                    escape_html(v),
                    if v == checked { " checked" } else { "" },
                    escape_html(label)
                )
            })
            .collect::<String>()
    };
    match q.kind {
        Kind::Ask => {
            let options: Vec<(String, String)> = q
                .question
                .options
                .iter()
                .map(|o| (o.clone(), o.clone()))
                .collect();
            h.push_str("<fieldset><legend>Your answer</legend>");
            h.push_str(&radio("option", &options, value("option")));
            h.push_str(&error_of("option"));
            h.push_str("</fieldset>");
        }
        Kind::Approve => {
            let options = [
                ("approve".to_owned(), "Approve".to_owned()),
                ("deny".to_owned(), "Deny".to_owned()),
            ];
            h.push_str("<fieldset><legend>Your decision</legend>");
            h.push_str(&radio("decision", &options, value("decision")));
            h.push_str(&error_of("decision"));
            h.push_str("</fieldset>");
        }
        Kind::Form => {
            for f in &q.question.fields {
                let label = format!(
                    "{}{}",
                    escape_html(f.label()),
                    if f.required && f.kind != FieldType::Boolean {
                        " *"
                    } else {
                        ""
                    }
                );
                let name = escape_html(&f.name);
                match f.kind {
                    FieldType::Boolean => h.push_str(&format!(
                        "<label><input type=\"checkbox\" style=\"width:auto\" name=\"{name}\" value=\"true\"{}> {label}</label>",
                        if matches!(value(&f.name), "true" | "on" | "yes") { " checked" } else { "" }
                    )),
                    FieldType::Choice => {
                        h.push_str(&format!("<label>{label}</label>"));
                        let options: Vec<(String, String)> = f.options.iter().map(|o| (o.clone(), o.clone())).collect();
                        h.push_str(&radio(&f.name, &options, value(&f.name)));
                    }
                    FieldType::Text => h.push_str(&format!(
                        "<label for=\"f-{name}\">{label}</label><textarea id=\"f-{name}\" name=\"{name}\" rows=\"3\" style=\"width:100%\">{}</textarea>",
                        escape_html(value(&f.name))
                    )),
                    FieldType::Number | FieldType::Duration => h.push_str(&format!(
                        "<label for=\"f-{name}\">{label}{}</label><input id=\"f-{name}\" name=\"{name}\" value=\"{}\"{}>",
                        if f.kind == FieldType::Duration { " (such as 3d, 12h, 30m)" } else { "" },
                        escape_html(value(&f.name)),
                        if f.kind == FieldType::Number { " inputmode=\"decimal\"" } else { "" }
                    )),
                }
                h.push_str(&error_of(&f.name));
            }
        }
    }
    h.push_str(&format!(
        "<label for=\"comment-{id}\">Comment (optional)</label><textarea id=\"comment-{id}\" name=\"comment\" rows=\"2\" style=\"width:100%\">{}</textarea>{}",
        escape_html(value("comment")),
        error_of("comment"),
        id = escape_html(&q.id)
    ));
    h.push_str("<button type=\"submit\">Send my answer</button></form>");
    h
}

/// The signed-in user's open questions and tasks, answered in place.
async fn inbox(user: WebUser, State(app): State<Arc<App>>) -> Response {
    render_inbox(&app, &user, None).await
}

/// The inbox, with `errors` shown in the form of question `id` (re-shown after a bad answer).
async fn render_inbox(
    app: &App,
    user: &WebUser,
    failed: Option<(&str, &HashMap<String, String>, &[FieldError])>,
) -> Response {
    let questions = match app
        .store
        .questions(Some(QuestionStatus::Open), Some(&user.name), 100)
        .await
    {
        Ok(q) => q,
        Err(e) => return server_error(&e),
    };
    let tasks = match app
        .store
        .tasks(Some(TaskStatus::Open), None, Some(&user.name), 100)
        .await
    {
        Ok(t) => t,
        Err(e) => return server_error(&e),
    };
    let mut h = format!(
        "<h1>Inbox</h1><p><small>{} question(s), {} task(s) open for you and your roles.</small></p>",
        questions.len(),
        tasks.len()
    );
    let empty = HashMap::new();
    for q in &questions {
        let (values, errors) = match failed {
            Some((id, values, errors)) if id == q.id => (values, errors),
            _ => (&empty, &[][..]),
        };
        h.push_str(
            "<section style=\"background:#fff;padding:.5rem 1rem;margin:1rem 0;border-radius:.4rem\">",
        );
        h.push_str(&question_form(
            q,
            &format!("/inbox/questions/{}", q.id),
            values,
            errors,
            Some(&user.csrf),
            false,
        ));
        h.push_str("</section>");
    }
    for t in &tasks {
        h.push_str(&format!(
            "<section style=\"background:#fff;padding:.5rem 1rem;margin:1rem 0;border-radius:.4rem\">\
             <h2>Task: {}</h2><p>{}</p><p><small>Assigned to {}{}</small></p>\
             <form method=\"post\" action=\"/inbox/tasks/{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"c-{id}\">Comment (optional)</label><textarea id=\"c-{id}\" name=\"comment\" rows=\"2\" style=\"width:100%\"></textarea>\
             <button type=\"submit\">Mark as done</button></form></section>",
            escape_html(&t.title),
            escape_html(&t.description),
            escape_html(t.assignee.as_deref().unwrap_or("-")),
            t.role.as_deref().map(|r| format!(" (role {})", escape_html(r))).unwrap_or_default(),
            escape_html(&t.id),
            escape_html(&user.csrf),
            id = escape_html(&t.id),
        ));
    }
    if questions.is_empty() && tasks.is_empty() {
        h.push_str("<p>Nothing waits for you. </p>");
    }
    let status = if failed.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    super::ui::raw_page(user, status, "Inbox", &h)
}

async fn inbox_answer(
    user: WebUser,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    client: Client,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_csrf(&user, form.get("csrf").map(String::as_str).unwrap_or("")) {
        return r;
    }
    let q = match app.store.question(&id).await {
        Ok(Some(q)) => q,
        Ok(None) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such question",
                &format!("There is no question {id}."),
            );
        }
        Err(e) => return server_error(&e),
    };
    if q.status != QuestionStatus::Open {
        return closed_page(&q);
    }
    let answer = match q.question.read_answer(&form) {
        Ok(a) => a,
        Err(errors) => return render_inbox(&app, &user, Some((&id, &form, &errors))).await,
    };
    let who = Answerer::User {
        name: &user.name,
        from: client.from.as_deref(),
        agent: client.agent.as_deref(),
    };
    match app.store.answer_question(&id, &answer, &who).await {
        Ok(_) => Redirect::to("/inbox").into_response(),
        Err(e) => answer_refused(e),
    }
}

async fn inbox_task(
    user: WebUser,
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_csrf(&user, form.get("csrf").map(String::as_str).unwrap_or("")) {
        return r;
    }
    let comment = form.get("comment").map(|c| c.trim()).filter(|c| !c.is_empty());
    match app.store.complete_task(&id, &user.name, comment).await {
        Ok(_) => Redirect::to("/inbox").into_response(),
        Err(crate::store::tasks::TaskError::Store(e)) => server_error(&e),
        Err(e) => message_page(StatusCode::CONFLICT, "Not done", &e.to_string()),
    }
}
