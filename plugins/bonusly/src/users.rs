//! `giving-balance` (`GET /users/me`) and `list-users` (`GET /users`).

use crate::answer::result;
use crate::io::request;
use osprey_sdk::prelude::*;

/// A Bonusly user, as the API describes one (the fields a playbook needs).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub(crate) struct User {
    pub(crate) id: String,
    /// The name to mention in a reason: `@username`.
    #[serde(default)]
    pub(crate) username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_name: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BalanceInput {}

/// What the token's user has left to give this month.
#[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq)]
pub(crate) struct BalanceOutput {
    /// Points left to give.
    pub(crate) giving_balance: i64,
    /// The same with the company's currency name ("40 points").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) giving_balance_with_currency: Option<String>,
    /// The user the token belongs to.
    pub(crate) user: User,
}

#[derive(Deserialize)]
struct Me {
    #[serde(flatten)]
    user: User,
    giving_balance: i64,
    #[serde(default)]
    giving_balance_with_currency: Option<String>,
}

pub(crate) fn giving_balance(_ctx: &Context, _input: BalanceInput) -> Result<BalanceOutput> {
    read_balance(request("GET", "/users/me")?.send()?)
}

fn read_balance(response: http::Response) -> Result<BalanceOutput> {
    let me: Me = result(response)?;
    Ok(BalanceOutput {
        giving_balance: me.giving_balance,
        giving_balance_with_currency: me.giving_balance_with_currency,
        user: me.user,
    })
}

/// Which users to list.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListInput {
    /// At most this many (1 to 100; Bonusly's default is 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u32>,
    /// Skip this many first (for the next page).
    #[serde(default)]
    skip: Option<u32>,
    /// Only the user with this email address.
    #[serde(default)]
    email: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub(crate) struct ListOutput {
    users: Vec<User>,
    /// How many came back (fewer than `limit`: the last page).
    count: usize,
}

/// The query of `GET /users` for `input`.
fn list_query(input: &ListInput) -> Result<Vec<(&'static str, String)>> {
    let mut query = Vec::new();
    if let Some(limit) = input.limit {
        if !(1..=100).contains(&limit) {
            return Err(Error::invalid_input(format!(
                "limit must be 1 to 100, not {limit}"
            )));
        }
        query.push(("limit", limit.to_string()));
    }
    if let Some(skip) = input.skip {
        query.push(("skip", skip.to_string()));
    }
    if let Some(email) = input.email.as_deref().map(str::trim) {
        if !email.contains('@') {
            return Err(Error::invalid_input(format!("'{email}' is not an email address")));
        }
        query.push(("email", email.to_owned()));
    }
    Ok(query)
}

pub(crate) fn list_users(_ctx: &Context, input: ListInput) -> Result<ListOutput> {
    let query = list_query(&input)?;
    let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let users: Vec<User> = result(request("GET", "/users")?.query(&pairs).send()?)?;
    Ok(ListOutput {
        count: users.len(),
        users,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::answer;

    #[test]
    fn the_balance_is_read_with_the_user() {
        let out = read_balance(answer(
            200,
            &[],
            r#"{"success":true,"result":{"id":"5b3c","username":"ana","email":"ana@example.com",
               "giving_balance":40,"giving_balance_with_currency":"40 points","earning_balance":5,
               "display_name":"Ana"}}"#,
        ))
        .unwrap();
        assert_eq!(out.giving_balance, 40);
        assert_eq!(out.user.username, "ana");
        assert_eq!(out.user.email.as_deref(), Some("ana@example.com"));
        assert_eq!(out.giving_balance_with_currency.as_deref(), Some("40 points"));
        let e = read_balance(answer(200, &[], r#"{"success":true,"result":{"id":"x"}}"#)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Upstream);
    }

    #[test]
    fn the_list_query_is_checked_and_only_says_what_was_asked() {
        let input = |v: Value| serde_json::from_value::<ListInput>(v).unwrap();
        assert!(list_query(&input(json!({}))).unwrap().is_empty());
        assert_eq!(
            list_query(&input(
                json!({"limit": 5, "skip": 10, "email": " bo@example.com "})
            ))
            .unwrap(),
            vec![
                ("limit", "5".into()),
                ("skip", "10".into()),
                ("email", "bo@example.com".into())
            ]
        );
        assert_eq!(
            list_query(&input(json!({"limit": 0}))).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
        assert!(
            list_query(&input(json!({"email": "bo"})))
                .unwrap_err()
                .message
                .contains("not an email")
        );
    }
}
