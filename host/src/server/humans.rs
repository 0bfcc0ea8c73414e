//! Pages for people: answer links (`/a/TOKEN`, mailed), escalation links (the same route,
//! "talk to a human"), and the inbox of a signed-in user (`/inbox`).
//!
//! A link's GET only shows a confirmation page (mail scanners prefetch links; they must not
//! answer for anyone); only the POST from that page records the answer. A link that is
//! tampered with, expired, or used gets a page that says which, and changes nothing. The
//! token is the capability, so these pages need no account; they are never cached and send
//! no referrer (the token is in the URL).
//!
//! The pages are templates of `ui/templates` (auto-escaped): the link pages extend the plain
//! layout (`answer.html`, `escalate.html`), the inbox the console's (`inbox.html`), and both
//! show a question with `question_form.html`, from a [`QuestionForm`].

use super::web::{WebUser, check_csrf, plain_message, plain_page};
use crate::app::App;
use crate::humans::links::{LinkError, Purpose};
use crate::humans::questions::{FieldError, FieldType, FormField, Kind};
use crate::store::questions::{Answerer, QuestionError, QuestionRecord, QuestionStatus};
use crate::store::tasks::{TaskRecord, TaskStatus};
use axum::Router;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Serialize;
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

/// A page for a link, with no referrer sent onwards and kept out of search engines.
fn for_link(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r.headers_mut()
        .insert("x-robots-tag", HeaderValue::from_static("noindex, nofollow"));
    r
}

/// A link page of a heading (also its title) and a sentence.
fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    for_link(plain_message(status, title, title, text))
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
    plain_message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Something went wrong",
        "Nothing was recorded. Try again in a minute.",
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
        Ok(Target::Question(q, _)) => answer_page(StatusCode::OK, &q, &token, &pre, &[]),
        Ok(Target::Escalate { incident, .. }) => for_link(plain_page(
            StatusCode::OK,
            "escalate.html",
            "Talk to a human",
            minijinja::context! { incident => incident, token => token },
        )),
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
                    return answer_page(StatusCode::UNPROCESSABLE_ENTITY, &q, &token, &form, &errors);
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

/// The answer link's page of `q`: its form, posting to the link, with `values` filled in
/// again (or preselected) and `errors` next to their fields.
fn answer_page(
    status: StatusCode,
    q: &QuestionRecord,
    token: &str,
    values: &HashMap<String, String>,
    errors: &[FieldError],
) -> Response {
    let form = QuestionForm::new(q, format!("/a/{token}"), values, errors, None, true);
    for_link(plain_page(
        status,
        "answer.html",
        &q.title,
        serde_json::json!({ "q": form }),
    ))
}

/// What `question_form.html` shows of a question: its text, the form that answers it
/// (posting to `action`, with the CSRF token in the inbox), the values to show again, and
/// what is wrong with them.
#[derive(Serialize)]
struct QuestionForm<'a> {
    id: &'a str,
    title: &'a str,
    /// The page's heading (an answer link), or one section of several (the inbox).
    heading: bool,
    paragraphs: Vec<&'a str>,
    due: Option<String>,
    has_errors: bool,
    action: String,
    csrf: Option<&'a str>,
    fields: Vec<Field<'a>>,
    comment: &'a str,
    comment_error: Option<&'a str>,
}

/// One input of the form, by how it is shown.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Field<'a> {
    /// The options of `ask`, the decision of `approve`.
    Fieldset {
        legend: &'static str,
        name: &'static str,
        options: Vec<Choice<'a>>,
        error: Option<&'a str>,
    },
    /// A form's choice field.
    Choice {
        label: String,
        name: &'a str,
        options: Vec<Choice<'a>>,
        error: Option<&'a str>,
    },
    Checkbox {
        label: String,
        name: &'a str,
        checked: bool,
        error: Option<&'a str>,
    },
    Text {
        label: String,
        name: &'a str,
        value: &'a str,
        error: Option<&'a str>,
    },
    /// A number or a duration.
    Input {
        label: String,
        hint: &'static str,
        name: &'a str,
        value: &'a str,
        decimal: bool,
        error: Option<&'a str>,
    },
}

/// A radio button.
#[derive(Serialize)]
struct Choice<'a> {
    value: &'a str,
    label: &'a str,
    checked: bool,
}

impl<'a> QuestionForm<'a> {
    fn new(
        q: &'a QuestionRecord,
        action: String,
        values: &'a HashMap<String, String>,
        errors: &'a [FieldError],
        csrf: Option<&'a str>,
        heading: bool,
    ) -> QuestionForm<'a> {
        let error_of = |field: &str| {
            errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| e.message.as_str())
        };
        let value = |field: &str| values.get(field).map_or("", String::as_str);
        let fields = match q.kind {
            Kind::Ask => vec![Field::Fieldset {
                legend: "Your answer",
                name: "option",
                options: choices(
                    q.question.options.iter().map(|o| (o.as_str(), o.as_str())),
                    value("option"),
                ),
                error: error_of("option"),
            }],
            Kind::Approve => vec![Field::Fieldset {
                legend: "Your decision",
                name: "decision",
                options: choices([("approve", "Approve"), ("deny", "Deny")], value("decision")),
                error: error_of("decision"),
            }],
            Kind::Form => q
                .question
                .fields
                .iter()
                .map(|f| form_field(f, value(&f.name), error_of(&f.name)))
                .collect(),
        };
        QuestionForm {
            id: &q.id,
            title: &q.title,
            heading,
            paragraphs: q.body.split("\n\n").filter(|p| !p.trim().is_empty()).collect(),
            due: q.due_at.map(time),
            has_errors: !errors.is_empty(),
            action,
            csrf,
            fields,
            comment: value("comment"),
            comment_error: error_of("comment"),
        }
    }
}

/// Radio buttons of `(value, label)`, the one whose value is `checked` checked.
fn choices<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>, checked: &str) -> Vec<Choice<'a>> {
    options
        .into_iter()
        .map(|(value, label)| Choice {
            value,
            label,
            checked: value == checked,
        })
        .collect()
}

/// A form's field as shown, with `value` submitted before and `error` about it.
fn form_field<'a>(f: &'a FormField, value: &'a str, error: Option<&'a str>) -> Field<'a> {
    let required = if f.required && f.kind != FieldType::Boolean {
        " *"
    } else {
        ""
    };
    let label = format!("{}{required}", f.label());
    let name = f.name.as_str();
    match f.kind {
        FieldType::Boolean => Field::Checkbox {
            label,
            name,
            checked: matches!(value, "true" | "on" | "yes"),
            error,
        },
        FieldType::Choice => Field::Choice {
            label,
            name,
            options: choices(f.options.iter().map(|o| (o.as_str(), o.as_str())), value),
            error,
        },
        FieldType::Text => Field::Text {
            label,
            name,
            value,
            error,
        },
        FieldType::Number | FieldType::Duration => Field::Input {
            label,
            hint: if f.kind == FieldType::Duration {
                " (such as 3d, 12h, 30m)"
            } else {
                ""
            },
            name,
            value,
            decimal: f.kind == FieldType::Number,
            error,
        },
    }
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
    let empty = HashMap::new();
    let forms: Vec<QuestionForm> = questions
        .iter()
        .map(|q| {
            let (values, errors) = match failed {
                Some((id, values, errors)) if id == q.id => (values, errors),
                _ => (&empty, &[][..]),
            };
            QuestionForm::new(
                q,
                format!("/inbox/questions/{}", q.id),
                values,
                errors,
                Some(&user.csrf),
                false,
            )
        })
        .collect();
    let status = if failed.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    inbox_page(user, status, &forms, &tasks)
}

/// The inbox of `user`: `questions` to answer and `tasks` to mark as done.
fn inbox_page(
    user: &WebUser,
    status: StatusCode,
    questions: &[QuestionForm],
    tasks: &[TaskRecord],
) -> Response {
    super::ui::page(
        user,
        status,
        "inbox.html",
        "Inbox",
        serde_json::json!({ "questions": questions, "tasks": tasks }),
    )
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
