//! servicenow: incidents through ServiceNow's Table API (`/api/now/table/incident`), with
//! basic auth (setting `username`, secret `password`) or an OAuth access token (secret
//! `oauth-token`, which wins when set), on the instance the `instance_url` setting names (`io.rs`).
//!
//! Answers are `{"result": ...}`; failures `{"error": {"message", "detail"}, "status":
//! "failure"}` with 400, 401, 403, 404, 429 (with `Retry-After`) or 5xx (`answer.rs`).
//! `list-incidents` pages by a cursor for polling (`poll.rs`).

mod answer;
mod incidents;
mod io;
mod poll;

use osprey_sdk::prelude::*;

fn plugin() -> Plugin {
    Plugin::new(
        "servicenow",
        env!("CARGO_PKG_VERSION"),
        "ServiceNow incidents through the Table API: create, update, read, work notes, and a \
         cursor for polling changes",
    )
    .action(
        "create-incident",
        "Create an incident (short_description, and optionally description, urgency, impact \
         and any other fields); returns it with its sys_id and number.",
        incidents::create_incident,
    )
    .action(
        "update-incident",
        "Set fields of an incident by sys_id (state, assigned_to, close_code, ...).",
        incidents::update_incident,
    )
    .action(
        "get-incident",
        "One incident, by sys_id or by number.",
        incidents::get_incident,
    )
    .action(
        "add-work-note",
        "Add a work note to an incident by sys_id.",
        incidents::add_work_note,
    )
    .action(
        "list-incidents",
        "The incidents changed after a cursor (optionally matching an encoded query), oldest \
         change first: items, and the cursor to pass next time.",
        poll::list_incidents,
    )
}

osprey_sdk::export_plugin!(plugin);
