//! msgraph: the directory in Microsoft Graph (Entra ID), app-only: a user by id or UPN, the
//! user's manager, and the members of a group.
//!
//! The token comes from the Microsoft identity platform's client-credentials grant and is kept
//! in the plugin's kv store until shortly before it expires (`token.rs`); a token Graph no
//! longer takes is dropped and replaced once per call (`graph.rs`).

mod answer;
mod graph;
mod objects;
mod settings;
mod token;

use graph::{Graph, segment};
use objects::{GroupInput, MEMBER_FIELDS, Member, MembersOutput, USER_FIELDS, User, UserInput};
use osprey_sdk::prelude::*;

/// `GET /v1.0/users/{id|upn}`.
fn get_user(_ctx: &Context, input: UserInput) -> Result<User> {
    let user = segment("user", &input.user)?;
    let mut g = Graph::open()?;
    let url = g.url(&format!("/users/{user}?$select={USER_FIELDS}"));
    Ok(serde_json::from_value(
        g.get(&url, &format!("user '{}'", input.user.trim()))?,
    )?)
}

/// `GET /v1.0/users/{id|upn}/manager`.
fn get_manager(_ctx: &Context, input: UserInput) -> Result<User> {
    let user = segment("user", &input.user)?;
    let mut g = Graph::open()?;
    let url = g.url(&format!("/users/{user}/manager?$select={USER_FIELDS}"));
    let what = format!("manager for user '{}' (or no such user)", input.user.trim());
    Ok(serde_json::from_value(g.get(&url, &what)?)?)
}

/// `GET /v1.0/groups/{id}/members`, following `@odata.nextLink` for up to `max_pages` pages.
fn group_members(_ctx: &Context, input: GroupInput) -> Result<MembersOutput> {
    let group = segment("group", &input.group)?;
    if !(1..=20).contains(&input.max_pages) {
        return Err(Error::invalid_input("max_pages must be 1 to 20"));
    }
    let mut g = Graph::open()?;
    let what = format!("group '{}'", input.group.trim());
    let mut next = Some(g.url(&format!(
        "/groups/{group}/members?$select={MEMBER_FIELDS}&$top=100"
    )));
    let mut members = Vec::new();
    let mut pages = 0;
    while let Some(url) = next.take() {
        if pages == input.max_pages {
            next = Some(url);
            break;
        }
        let page = g.get(&url, &what)?;
        pages += 1;
        let entries = page
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::upstream("Graph's members page has no 'value' list"))?;
        for entry in entries {
            members.push(Member::read(entry)?);
        }
        next = g.next_link(&page)?;
    }
    Ok(MembersOutput {
        group: input.group.trim().to_owned(),
        count: members.len(),
        members,
        complete: next.is_none(),
    })
}

fn plugin() -> Plugin {
    Plugin::new(
        "msgraph",
        env!("CARGO_PKG_VERSION"),
        "Microsoft Graph directory (Entra ID): users by id or UPN, their manager, the members of a group",
    )
    .action(
        "get-user",
        "A user of the directory by object id or user principal name",
        get_user,
    )
    .action("get-manager", "The manager of a user (by id or UPN)", get_manager)
    .action(
        "group-members",
        "The direct members of a group, page by page up to a bound",
        group_members,
    )
}

osprey_sdk::export_plugin!(plugin);
