//! People signing in to the web pages, and what every page of Osprey builds on:
//!
//! - `sign_in.rs`: the routes `GET|POST /login`, `POST /logout`, `GET /whoami`, and the
//!   same-origin check of their forms;
//! - `rate_limit.rs`: the in-memory limiter of failed sign-ins;
//! - `session.rs`: the [`WebUser`] extractor (the signed-in user of the session cookie, or a
//!   redirect to the sign-in page) and where a request came from;
//! - `csrf.rs`: [`check_csrf`] for every form a page accepts;
//! - `layout.rs`: the plain page readable on a phone (sign-in, answer links) and the headers
//!   of every page, rendered from the templates of `ui/` (auto-escaped).

mod csrf;
mod layout;
mod rate_limit;
mod session;
mod sign_in;

pub use csrf::check_csrf;
pub(crate) use layout::{plain_message, plain_page, render_failed, secure_headers_with};
pub use session::WebUser;
pub(crate) use session::{peer, session_token, signed_in};
pub(crate) use sign_in::router;
