//! One incident: `create-incident` (`POST`), `update-incident` and `add-work-note`
//! (`PATCH /{sys_id}`), `get-incident` (`GET /{sys_id}`, or by number with
//! `sysparm_query=number=...`), and the record they all answer with.

use crate::answer::result;
use crate::io::incident_request;
use osprey_sdk::prelude::*;
use serde_json::Map;

/// An incident: the fields playbooks use most, and the whole record.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub(crate) struct Incident {
    /// The record's id (32 hex digits), for update-incident and add-work-note.
    pub(crate) sys_id: String,
    /// INC0010001.
    pub(crate) number: String,
    pub(crate) short_description: String,
    /// 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled.
    pub(crate) state: String,
    pub(crate) priority: String,
    /// Last change, UTC, `YYYY-MM-DD HH:MM:SS`.
    pub(crate) sys_updated_on: String,
    /// Every field as the instance returned it (raw values, not display values).
    pub(crate) record: Map<String, Value>,
}

impl Incident {
    /// An incident from a record of the table API.
    pub(crate) fn from_record(record: Value) -> Result<Incident> {
        let Value::Object(record) = record else {
            return Err(Error::upstream(
                "the instance answered with a record that is not an object",
            ));
        };
        let field = |name: &str| match record.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let sys_id = field("sys_id");
        if sys_id.is_empty() {
            return Err(Error::upstream(
                "the instance answered with a record without a sys_id",
            ));
        }
        Ok(Incident {
            sys_id,
            number: field("number"),
            short_description: field("short_description"),
            state: field("state"),
            priority: field("priority"),
            sys_updated_on: field("sys_updated_on"),
            record,
        })
    }
}

/// A sys_id as ServiceNow writes one: 32 hex digits.
pub(crate) fn check_sys_id(sys_id: &str) -> Result<&str> {
    let sys_id = sys_id.trim();
    if sys_id.len() == 32 && sys_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sys_id)
    } else {
        Err(Error::invalid_input(format!(
            "'{sys_id}' is not a sys_id (32 hex digits, as create-incident and get-incident return)"
        )))
    }
}

/// A new incident.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateInput {
    short_description: String,
    #[serde(default)]
    description: Option<String>,
    /// 1 (high) to 3 (low).
    #[serde(default)]
    urgency: Option<String>,
    /// 1 (high) to 3 (low).
    #[serde(default)]
    impact: Option<String>,
    /// Any other fields of the incident table, by column name (`caller_id`,
    /// `assignment_group`, `category`, `u_custom`...).
    #[serde(default)]
    fields: Map<String, Value>,
}

fn create_body(input: CreateInput) -> Result<Value> {
    if input.short_description.trim().is_empty() {
        return Err(Error::invalid_input("short_description is empty"));
    }
    let mut body = input.fields;
    body.insert("short_description".into(), json!(input.short_description.trim()));
    for (name, value) in [
        ("description", input.description),
        ("urgency", input.urgency),
        ("impact", input.impact),
    ] {
        if let Some(value) = value {
            body.insert(name.into(), json!(value));
        }
    }
    Ok(Value::Object(body))
}

pub(crate) fn create_incident(_ctx: &Context, input: CreateInput) -> Result<Incident> {
    let body = create_body(input)?;
    Incident::from_record(result(incident_request("POST", "")?.json(&body).send()?)?)
}

/// Fields to change on an incident.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateInput {
    sys_id: String,
    /// Columns to set, such as `{"state": "2", "assigned_to": "..."}`.
    fields: Map<String, Value>,
}

fn patch(sys_id: &str, body: &Value) -> Result<Incident> {
    let sys_id = check_sys_id(sys_id)?;
    let request = incident_request("PATCH", &format!("/{sys_id}"))?.json(body);
    Incident::from_record(result(request.send()?)?)
}

pub(crate) fn update_incident(_ctx: &Context, input: UpdateInput) -> Result<Incident> {
    if input.fields.is_empty() {
        return Err(Error::invalid_input("fields is empty: nothing to change"));
    }
    patch(&input.sys_id, &Value::Object(input.fields))
}

/// A work note (visible to the service desk, not the caller) to add.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkNoteInput {
    sys_id: String,
    note: String,
}

pub(crate) fn add_work_note(_ctx: &Context, input: WorkNoteInput) -> Result<Incident> {
    if input.note.trim().is_empty() {
        return Err(Error::invalid_input("note is empty"));
    }
    patch(&input.sys_id, &json!({ "work_notes": input.note }))
}

/// One incident, by sys_id or by number (give one of them).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GetInput {
    #[serde(default)]
    sys_id: Option<String>,
    /// INC0010001.
    #[serde(default)]
    number: Option<String>,
}

/// Which lookup `input` asks for.
#[derive(Debug, PartialEq)]
enum Lookup {
    SysId(String),
    Number(String),
}

fn lookup(input: GetInput) -> Result<Lookup> {
    match (input.sys_id, input.number) {
        (Some(id), None) => Ok(Lookup::SysId(check_sys_id(&id)?.to_owned())),
        (None, Some(number)) => {
            let number = number.trim().to_ascii_uppercase();
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::invalid_input(format!(
                    "'{number}' is not an incident number such as INC0010001"
                )));
            }
            Ok(Lookup::Number(number))
        }
        _ => Err(Error::invalid_input("give either sys_id or number")),
    }
}

pub(crate) fn get_incident(_ctx: &Context, input: GetInput) -> Result<Incident> {
    match lookup(input)? {
        Lookup::SysId(id) => {
            Incident::from_record(result(incident_request("GET", &format!("/{id}"))?.send()?)?)
        }
        Lookup::Number(number) => {
            let query = format!("number={number}");
            let request = incident_request("GET", "")?
                .query(&[("sysparm_query", query.as_str()), ("sysparm_limit", "1")]);
            let found: Vec<Value> = result(request.send()?)?;
            match found.into_iter().next() {
                Some(record) => Incident::from_record(record),
                None => Err(Error::not_found(format!("no incident numbered {number}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS_ID: &str = "9d385017c611228701d22104cc95c371";

    #[test]
    fn a_record_becomes_an_incident_with_its_whole_record() {
        let record = json!({"sys_id": SYS_ID, "number": "INC0010001", "short_description": "Phish",
            "state": "1", "priority": "5", "sys_updated_on": "2026-12-07 05:00:00", "urgency": "3",
            "caller_id": "", "reopen_count": 0});
        let i = Incident::from_record(record.clone()).unwrap();
        assert_eq!((i.number.as_str(), i.state.as_str()), ("INC0010001", "1"));
        assert_eq!(Value::Object(i.record), record);
        assert_eq!(
            Incident::from_record(json!({"number": "INC1"})).unwrap_err().kind,
            ErrorKind::Upstream
        );
        assert!(Incident::from_record(json!([])).is_err());
    }

    #[test]
    fn a_new_incident_carries_its_named_and_other_fields() {
        let input: CreateInput = serde_json::from_value(json!({"short_description": " Phish ",
            "urgency": "1", "fields": {"category": "security", "urgency": "3"}}))
        .unwrap();
        assert_eq!(
            create_body(input).unwrap(),
            json!({"short_description": "Phish", "urgency": "1", "category": "security"})
        );
        let empty: CreateInput = serde_json::from_value(json!({"short_description": " "})).unwrap();
        assert_eq!(create_body(empty).unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn a_lookup_is_by_sys_id_or_by_number_and_never_carries_a_query() {
        let get = |v: Value| lookup(serde_json::from_value(v).unwrap());
        assert_eq!(
            get(json!({"sys_id": SYS_ID})).unwrap(),
            Lookup::SysId(SYS_ID.into())
        );
        assert_eq!(
            get(json!({"number": "inc0010001"})).unwrap(),
            Lookup::Number("INC0010001".into())
        );
        for bad in [
            json!({}),
            json!({"sys_id": SYS_ID, "number": "INC1"}),
            json!({"sys_id": "../x"}),
            json!({"number": "INC1^ORactive=true"}),
        ] {
            assert_eq!(
                get(bad.clone()).unwrap_err().kind,
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }
}
