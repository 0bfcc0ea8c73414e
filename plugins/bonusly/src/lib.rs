//! bonusly: Bonusly's API v1 (`https://bonus.ly/api/v1`, an access token as a bearer token).
//!
//! Answers are `{"success": true, "result": ...}`; failures `{"success": false, "message":
//! "..."}` with 400/422 (invalid input, such as a balance too small), 401 (a wrong token),
//! 403 (a token without the scope), 404, 429 (with `Retry-After`) or 5xx (`answer.rs`).
//! `give-bonus` gives at most once per idempotency key (`bonuses.rs`).

mod answer;
mod bonuses;
mod io;
mod users;

use osprey_sdk::prelude::*;

fn plugin() -> Plugin {
    Plugin::new(
        "bonusly",
        env!("CARGO_PKG_VERSION"),
        "Bonusly employee recognition: your giving balance, the company's users, and giving a \
         bonus (once per run step)",
    )
    .action(
        "giving-balance",
        "The points the token's user has left to give, with the user's id and username.",
        users::giving_balance,
    )
    .action(
        "list-users",
        "The company's users (id, username, email, names), a page at a time (limit, skip), or \
         the one with an email address.",
        users::list_users,
    )
    .action(
        "give-bonus",
        "Give a bonus: '+10 @username for ... #value' as the reason, or receiver_email and \
         amount with a reason. A retried step returns the bonus it gave (replayed: true) \
         instead of giving twice.",
        bonuses::give_bonus,
    )
}

osprey_sdk::export_plugin!(plugin);
