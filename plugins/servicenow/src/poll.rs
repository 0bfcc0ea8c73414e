//! `list-incidents`, made for polling: the incidents changed since a cursor, oldest change
//! first, and the cursor to ask from next time.
//!
//! The cursor is the last `sys_updated_on` and `sys_id` seen (`2026-12-07 05:00:00/<sys_id>`).
//! The next page is `(sys_updated_on > t) OR (sys_updated_on = t AND sys_id > id)`, ordered
//! by `sys_updated_on` then `sys_id`: in ServiceNow's encoded query, the filter, then
//! `^NQ` (a second OR'ed query) with the filter again. Records updated within the same second
//! are told apart by sys_id, so no record comes twice unless it changed again. The instance
//! compares the time in the integration user's time zone while it answers in UTC: give that
//! user the UTC (GMT) time zone.

use crate::answer::result;
use crate::incidents::{Incident, check_sys_id};
use crate::io::incident_request;
use osprey_sdk::prelude::*;

/// Which incidents, from where.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListInput {
    /// An encoded query to filter by, such as `active=true^priority<=2` (no `ORDERBY` or
    /// `^NQ`: the order is the cursor's).
    #[serde(default)]
    query: Option<String>,
    /// The `cursor` of the previous call; without it, from the oldest change.
    #[serde(default)]
    cursor: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<u32>,
}

/// The incidents changed after the cursor, and the cursor to pass next time (the same one
/// when nothing changed).
#[derive(Serialize, JsonSchema)]
pub(crate) struct ListOutput {
    items: Vec<Incident>,
    cursor: String,
}

/// The last change seen.
#[derive(Debug, PartialEq)]
struct Cursor {
    updated_on: String,
    sys_id: String,
}

impl Cursor {
    fn parse(raw: &str) -> Result<Cursor> {
        let bad = || {
            Error::invalid_input(format!(
                "cursor '{raw}' is not one list-incidents returned (`YYYY-MM-DD HH:MM:SS/<sys_id>`)"
            ))
        };
        let (updated_on, sys_id) = raw.trim().rsplit_once('/').ok_or_else(bad)?;
        let shape = updated_on.len() == 19
            && updated_on.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b' ',
                13 | 16 => b == b':',
                _ => b.is_ascii_digit(),
            });
        if !shape {
            return Err(bad());
        }
        let sys_id = check_sys_id(sys_id).map_err(|_| bad())?.to_owned();
        Ok(Cursor {
            updated_on: updated_on.to_owned(),
            sys_id,
        })
    }

    fn of(incident: &Incident) -> String {
        format!("{}/{}", incident.sys_updated_on, incident.sys_id)
    }
}

/// The encoded query for `filter` after `cursor`, in the cursor's order.
fn encoded_query(filter: Option<&str>, cursor: Option<&Cursor>) -> Result<String> {
    let filter = filter.map(str::trim).unwrap_or_default();
    let upper = filter.to_ascii_uppercase();
    if upper.contains("ORDERBY") || upper.contains("^NQ") {
        return Err(Error::invalid_input(
            "query may not order (ORDERBY) or add queries (^NQ): list-incidents orders by the cursor",
        ));
    }
    let and = |rest: String| {
        if filter.is_empty() {
            rest
        } else {
            format!("{filter}^{rest}")
        }
    };
    let order = "ORDERBYsys_updated_on^ORDERBYsys_id";
    Ok(match cursor {
        None => and(order.to_owned()),
        Some(c) => format!(
            "{}^NQ{}^{order}",
            and(format!("sys_updated_on>{}", c.updated_on)),
            and(format!("sys_updated_on={}^sys_id>{}", c.updated_on, c.sys_id)),
        ),
    })
}

pub(crate) fn list_incidents(_ctx: &Context, input: ListInput) -> Result<ListOutput> {
    let limit = input.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid_input(format!(
            "limit must be 1 to 1000, not {limit}"
        )));
    }
    let cursor = input.cursor.as_deref().filter(|c| !c.trim().is_empty());
    let parsed = cursor.map(Cursor::parse).transpose()?;
    let query = encoded_query(input.query.as_deref(), parsed.as_ref())?;
    let limit = limit.to_string();
    let request = incident_request("GET", "")?.query(&[
        ("sysparm_query", query.as_str()),
        ("sysparm_limit", limit.as_str()),
    ]);
    let records: Vec<Value> = result(request.send()?)?;
    let items = records
        .into_iter()
        .map(Incident::from_record)
        .collect::<Result<Vec<_>>>()?;
    let next = match items.last() {
        Some(last) => Cursor::of(last),
        None => cursor.unwrap_or_default().trim().to_owned(),
    };
    Ok(ListOutput { items, cursor: next })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYS_ID: &str = "9d385017c611228701d22104cc95c371";

    #[test]
    fn a_cursor_is_a_time_and_a_sys_id() {
        let c = Cursor::parse(&format!("2026-12-07 05:00:00/{SYS_ID}")).unwrap();
        assert_eq!(c.updated_on, "2026-12-07 05:00:00");
        assert_eq!(c.sys_id, SYS_ID);
        for bad in [
            "".to_owned(),
            SYS_ID.to_owned(),
            format!("2026-12-07/{SYS_ID}"),
            format!("2026-12-07 05:00:00^NQactive=true/{SYS_ID}"),
            "2026-12-07 05:00:00/x".to_owned(),
        ] {
            let e = Cursor::parse(&bad).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn the_query_pages_after_the_cursor_in_its_order() {
        assert_eq!(
            encoded_query(None, None).unwrap(),
            "ORDERBYsys_updated_on^ORDERBYsys_id"
        );
        let c = Cursor {
            updated_on: "2026-12-07 05:00:00".into(),
            sys_id: SYS_ID.into(),
        };
        assert_eq!(
            encoded_query(Some(" active=true "), Some(&c)).unwrap(),
            format!(
                "active=true^sys_updated_on>2026-12-07 05:00:00^NQactive=true^sys_updated_on=2026-12-07 05:00:00\
                 ^sys_id>{SYS_ID}^ORDERBYsys_updated_on^ORDERBYsys_id"
            )
        );
        assert_eq!(
            encoded_query(Some(""), Some(&c)).unwrap(),
            format!(
                "sys_updated_on>2026-12-07 05:00:00^NQsys_updated_on=2026-12-07 05:00:00^sys_id>{SYS_ID}\
                 ^ORDERBYsys_updated_on^ORDERBYsys_id"
            )
        );
        for bad in ["active=true^ORDERBYDESCnumber", "a=1^NQb=2"] {
            assert_eq!(
                encoded_query(Some(bad), None).unwrap_err().kind,
                ErrorKind::InvalidInput
            );
        }
    }
}
