//! The actions' inputs and outputs, and Graph's directory objects as Osprey shows them.

use osprey_sdk::prelude::*;

/// The user fields asked for with `$select` (Graph returns only a few by default).
pub(crate) const USER_FIELDS: &str = "id,displayName,givenName,surname,userPrincipalName,mail,\
    jobTitle,department,officeLocation,mobilePhone,businessPhones,accountEnabled,employeeId,\
    companyName,userType";

/// The fields asked for of each member of a group.
pub(crate) const MEMBER_FIELDS: &str = "id,displayName,userPrincipalName,mail,accountEnabled";

/// A user, by object id or user principal name.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserInput {
    /// The user's object id (a GUID) or user principal name (`alice@contoso.com`).
    pub(crate) user: String,
}

/// A user of the directory. Fields Graph leaves empty are left out.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all(deserialize = "camelCase"))]
pub(crate) struct User {
    /// The object id.
    pub(crate) id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) surname: Option<String>,
    /// The sign-in name, `alice@contoso.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_principal_name: Option<String>,
    /// The primary e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) job_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) office_location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mobile_phone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) business_phones: Vec<String>,
    /// Whether the account may sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) account_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) employee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) company_name: Option<String>,
    /// `Member` or `Guest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_type: Option<String>,
}

/// A group, and how many pages of its members to read at most.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupInput {
    /// The group's object id (a GUID).
    pub(crate) group: String,
    /// Read at most this many pages of 100 members (1 to 20; 5 when left out). When the group
    /// has more, `complete` is false.
    #[serde(default = "five")]
    #[schemars(range(min = 1, max = 20))]
    pub(crate) max_pages: u32,
}

fn five() -> u32 {
    5
}

/// A direct member of a group: a user, a group, a device, a service principal or a contact.
#[derive(Serialize, JsonSchema, Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    /// `user`, `group`, `device`, `servicePrincipal`, `orgContact`, ...
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) account_enabled: Option<bool>,
}

impl Member {
    /// One entry of a members page (`@odata.type` `#microsoft.graph.user`, ...).
    pub(crate) fn read(v: &Value) -> Result<Member> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let id = text("id").ok_or_else(|| Error::upstream("Graph listed a member without an id"))?;
        let kind = text("@odata.type")
            .map(|t| t.trim_start_matches("#microsoft.graph.").to_owned())
            .unwrap_or_else(|| "directoryObject".to_owned());
        Ok(Member {
            id,
            kind,
            display_name: text("displayName"),
            user_principal_name: text("userPrincipalName"),
            mail: text("mail"),
            account_enabled: v.get("accountEnabled").and_then(Value::as_bool),
        })
    }
}

/// The members of a group.
#[derive(Serialize, JsonSchema)]
pub(crate) struct MembersOutput {
    pub(crate) group: String,
    /// Direct members, in Graph's order.
    pub(crate) members: Vec<Member>,
    /// How many were read.
    pub(crate) count: usize,
    /// False when the group has more members than `max_pages` pages held.
    pub(crate) complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_reads_graph_camel_case_and_shows_snake_case_without_empties() {
        let u: User = serde_json::from_value(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "id": "4562bcc8-c4b1-4d2a-9a42-3e1b0d6f2a11",
            "displayName": "Adele Vance", "userPrincipalName": "AdeleV@contoso.example",
            "jobTitle": "Retail Manager", "mail": null, "businessPhones": ["+1 425 555 0109"],
            "accountEnabled": true
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"id": "4562bcc8-c4b1-4d2a-9a42-3e1b0d6f2a11", "display_name": "Adele Vance",
                   "user_principal_name": "AdeleV@contoso.example", "job_title": "Retail Manager",
                   "business_phones": ["+1 425 555 0109"], "account_enabled": true})
        );
    }

    #[test]
    fn members_carry_their_type() {
        let m = Member::read(
            &json!({"@odata.type": "#microsoft.graph.group", "id": "g2", "displayName": "Nested"}),
        )
        .unwrap();
        assert_eq!(
            (m.kind.as_str(), m.display_name.as_deref()),
            ("group", Some("Nested"))
        );
        assert_eq!(Member::read(&json!({"id": "x"})).unwrap().kind, "directoryObject");
        assert_eq!(
            Member::read(&json!({"displayName": "no id"})).unwrap_err().kind,
            ErrorKind::Upstream
        );
    }
}
