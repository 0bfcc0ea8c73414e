//! The end user's request forms: `GET /requests` lists the forms the signed-in user may fill
//! in (playbooks with a `[request]` table, `playbook/meta.rs`) and their recent requests with
//! where each stands; `GET /requests/PLAYBOOK` is one form, whose fields are the playbook's
//! inputs. Sending it is `POST /api/v1/requests/PLAYBOOK` as the user, which starts the
//! playbook's run with the user as its `requester`.

use super::{failed, not_found, page, require};
use crate::app::App;
use crate::playbook::InputType;
use crate::rbac::Permission;
use crate::server::web::WebUser;
use crate::store::StoreError;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Serialize;
use std::sync::Arc;

/// A user's recent requests on the list page.
const RECENT: i64 = 20;

/// The forms `user` may fill in.
async fn forms_for(app: &App, user: &WebUser) -> Result<Vec<crate::playbook::RequestFormInfo>, StoreError> {
    let Some(record) = app.store.user(&user.name).await? else {
        return Ok(Vec::new());
    };
    Ok(app
        .executor
        .request_forms()
        .into_iter()
        .filter(|f| f.allows(&record.roles, record.disabled_at.is_some()))
        .collect())
}

pub(super) async fn list(user: WebUser, State(app): State<Arc<App>>, uri: Uri) -> Response {
    if let Err(r) = require(&user, Permission::RequestsCreate) {
        return r;
    }
    let forms = match forms_for(&app, &user).await {
        Ok(f) => f,
        Err(e) => return failed(&user, e),
    };
    let mine = match app
        .store
        .runs_from(&format!("request:{}", user.name), RECENT)
        .await
    {
        Ok(r) => r.into_iter().map(crate::server::shown::run).collect::<Vec<_>>(),
        Err(e) => return failed(&user, e),
    };
    let sent = super::query_params(&uri).get("sent").cloned();
    page(
        &user,
        StatusCode::OK,
        "requests.html",
        "Requests",
        serde_json::json!({ "forms": forms, "mine": mine, "sent": sent }),
    )
}

/// How a field is shown.
#[derive(Serialize)]
struct Field {
    name: String,
    label: String,
    description: String,
    required: bool,
    /// `text`, `number`, `checkbox` or `json`.
    widget: &'static str,
    /// `data-type` for the page's script, if not text.
    data_type: Option<&'static str>,
    default: String,
    checked: bool,
}

pub(super) async fn form(
    user: WebUser,
    State(app): State<Arc<App>>,
    Path(playbook): Path<String>,
) -> Response {
    if let Err(r) = require(&user, Permission::RequestsCreate) {
        return r;
    }
    let forms = match forms_for(&app, &user).await {
        Ok(f) => f,
        Err(e) => return failed(&user, e),
    };
    let Some(f) = forms.into_iter().find(|f| f.playbook == playbook) else {
        return not_found(&user, &format!("request form {playbook} that you may fill in"));
    };
    let fields: Vec<Field> = f
        .fields
        .iter()
        .map(|field| {
            let (widget, data_type) = match field.kind {
                InputType::String => ("text", None),
                InputType::Integer | InputType::Number => ("number", Some("number")),
                InputType::Boolean => ("checkbox", None),
                InputType::Object | InputType::Array => ("json", Some("json")),
            };
            let default = match &field.default {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            Field {
                name: field.name.clone(),
                label: field.name.replace(['_', '-'], " "),
                description: field.description.clone(),
                required: field.required,
                widget,
                data_type,
                checked: field.default == Some(serde_json::Value::Bool(true)),
                default,
            }
        })
        .collect();
    page(
        &user,
        StatusCode::OK,
        "request.html",
        &f.title,
        serde_json::json!({ "f": f, "fields": fields }),
    )
}
