//! The CSRF check of the forms pages accept: the session's token, sent back in a hidden
//! field.

use super::WebUser;
use super::layout::plain_message;
use crate::web_auth;
use axum::http::StatusCode;
use axum::response::Response;

/// Refuse a form whose CSRF token is not the session's: a 403 page saying the form has
/// expired. Call it first in every handler that changes something.
// The refusal is a page ready to return (`if let Err(r) = check_csrf(..) { return r; }`);
// it is made once per refused form, so its size does not matter.
#[allow(clippy::result_large_err)]
pub fn check_csrf(user: &WebUser, submitted: &str) -> Result<(), Response> {
    if web_auth::csrf_matches(&user.csrf, submitted) {
        Ok(())
    } else {
        tracing::warn!(user = %user.name, "a form without the session's CSRF token was refused");
        Err(plain_message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "Form expired",
            "This form has expired; reload the page and try again.",
        ))
    }
}
