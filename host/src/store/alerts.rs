//! Alerts as received. New alerts go through the group-commit writer (`writer.rs`): a 2xx
//! answer to a sender means they are committed, and concurrent senders share commits.

use super::page::{self, Arg, Keyset, Page};
use super::writer::Write;
use super::{Result, Store};
use crate::intake::{Alert, Observables, Severity};
use serde::Serialize;
use std::sync::Arc;

/// An alert with what the store adds: its id, when and how it came in.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredAlert {
    pub id: String,
    pub received_at: i64,
    /// "token:NAME", "syslog-udp", "syslog-tcp".
    pub via: String,
    #[serde(flatten)]
    pub alert: Alert,
    /// What pre-processing did with it: dropped, incident, duplicate, linked, unmatched;
    /// `None` until it has looked.
    pub disposition: Option<String>,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    pub incident_id: Option<String>,
    /// Why some of the alert's stored values could not be read (they read as empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl StoredAlert {
    /// A new alert, not yet looked at by pre-processing.
    pub fn new(id: String, received_at: i64, via: &str, alert: Alert) -> StoredAlert {
        StoredAlert {
            id,
            received_at,
            via: via.to_owned(),
            alert,
            disposition: None,
            rule: None,
            incident_id: None,
            unreadable: None,
        }
    }
}

/// An `alerts` row, by column name.
#[derive(sqlx::FromRow)]
struct AlertRow {
    id: String,
    received_at: i64,
    via: String,
    source: String,
    title: String,
    severity: String,
    occurred_at: Option<i64>,
    data: String,
    observables: String,
    raw: Option<String>,
    disposition: Option<String>,
    rule: Option<String>,
    incident_id: Option<String>,
}

const ALERT_COLUMNS: &str = "id, received_at, via, source, title, severity, occurred_at, data, observables, raw, \
     disposition, rule, incident_id";

/// An alert as stored; a value that cannot be read is empty and the alert says why.
fn alert_from_row(row: AlertRow) -> Result<StoredAlert> {
    let AlertRow {
        id,
        received_at,
        via,
        source,
        title,
        severity,
        occurred_at,
        data,
        observables,
        raw,
        disposition,
        rule,
        incident_id,
    } = row;
    let (severity, bad_severity) = match Severity::parse(&severity) {
        Some(s) => (s, None),
        None => (Severity::Info, Some(format!("severity '{severity}'"))),
    };
    let data = super::json::read(&data, "data");
    let (observables, bad_observables) = match serde_json::from_str::<Observables>(&observables) {
        Ok(o) => (o, None),
        Err(e) => (Observables::default(), Some(format!("observables: {e}"))),
    };
    let unreadable = super::json::unreadable([&bad_severity, &data.unreadable, &bad_observables]);
    let data = data.value;
    Ok(StoredAlert {
        unreadable,
        alert: Alert {
            source,
            title,
            severity,
            occurred_at,
            data,
            observables,
            raw,
        },
        id,
        received_at,
        via,
        disposition,
        rule,
        incident_id,
    })
}

/// The columns alerts may be sorted by (`GET /api/v1/alerts?sort=`).
pub const ALERT_SORTS: &[&str] = &["received_at", "source"];

/// What pre-processing may have done with an alert; `pending` is "not yet looked at".
pub const DISPOSITIONS: &[&str] = &[
    "dropped",
    "incident",
    "duplicate",
    "linked",
    "unmatched",
    "pending",
];

/// Which alerts a page holds; `None` is any.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter<'a> {
    pub source: Option<&'a str>,
    /// One of [`DISPOSITIONS`].
    pub disposition: Option<&'a str>,
    /// Received at or after (Unix ms).
    pub since: Option<i64>,
    /// Received before (Unix ms).
    pub until: Option<i64>,
}

impl Store {
    /// One page of alerts matching `filter`, in the order of `keyset`.
    pub async fn alert_page(&self, filter: &AlertFilter<'_>, keyset: &Keyset) -> Result<Page<StoredAlert>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        if let Some(source) = filter.source {
            args.push(source.into());
            conditions.push(format!("source = ${}", args.len()));
        }
        match filter.disposition {
            None => {}
            Some("pending") => conditions.push("disposition IS NULL".to_owned()),
            Some(d) => {
                args.push(d.into());
                conditions.push(format!("disposition = ${}", args.len()));
            }
        }
        if let Some(since) = filter.since {
            args.push(since.into());
            conditions.push(format!("received_at >= ${}", args.len()));
        }
        if let Some(until) = filter.until {
            args.push(until.into());
            conditions.push(format!("received_at < ${}", args.len()));
        }
        let select = format!("SELECT {ALERT_COLUMNS} FROM alerts");
        let page: Page<AlertRow> = page::fetch(
            &self.pool,
            &select,
            &conditions.join(" AND "),
            args,
            keyset,
            ALERT_SORTS,
            "id",
        )
        .await?;
        page.try_map(alert_from_row)
    }

    /// Commit `alerts`; returns them once they are durable (to be handed to pre-processing).
    pub async fn insert_alerts(&self, alerts: Vec<StoredAlert>) -> Result<Arc<Vec<StoredAlert>>> {
        let alerts = Arc::new(alerts);
        if alerts.is_empty() {
            return Ok(alerts);
        }
        for a in alerts.iter() {
            super::json::check(&a.alert.data, "an alert")?;
        }
        self.write(Write::InsertAlerts(alerts.clone())).await?;
        Ok(alerts)
    }

    /// The newest alerts first, optionally from one source.
    pub async fn alerts(&self, source: Option<&str>, limit: i64) -> Result<Vec<StoredAlert>> {
        let condition = "($2 IS NULL OR source = $2) ORDER BY received_at DESC, id DESC";
        self.alerts_where(condition, source, limit).await
    }

    /// The newest alerts received since `since` (Unix ms) whose top-level field `field` holds
    /// `value` (text, or a number's decimal text), at most `limit`. The field name is bound
    /// (as a JSON path on SQLite, a key on PostgreSQL), never put in the SQL; the time bound
    /// uses the index on `received_at`.
    pub async fn alerts_with_field(
        &self,
        field: &str,
        value: &str,
        since: i64,
        limit: i64,
    ) -> Result<Vec<StoredAlert>> {
        let (held, key) = match self.dialect {
            super::Dialect::Sqlite => (
                "CAST(json_extract(data, $2) AS TEXT)",
                format!("$.\"{}\"", field.replace('"', "")),
            ),
            super::Dialect::Postgres => ("(data::jsonb ->> CAST($2 AS TEXT))", field.to_owned()),
        };
        let sql = format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE received_at >= $4 AND {held} = $3 \
             ORDER BY received_at DESC, id DESC LIMIT $1"
        );
        // Only fixed SQL text is put together here; every value is bound.
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(key)
            .bind(value)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(alert_from_row).collect()
    }

    /// Alerts matching `condition` (SQL after WHERE, with its ORDER BY), where `$1` is the
    /// limit and `$2` is `value`.
    pub(super) async fn alerts_where(
        &self,
        condition: &str,
        value: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredAlert>> {
        let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE {condition} LIMIT $1");
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .bind(value)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(alert_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    both_dialects!(alerts_are_found_by_a_field_since_a_time, |store| {
        let body = serde_json::to_vec(&serde_json::json!([
            {"source": "siem", "title": "blocked download", "osprey_probe": "p-1"},
            {"source": "siem", "title": "another probe", "osprey_probe": "p-2"},
            {"source": "siem", "title": "a number", "osprey_probe": 42},
            {"source": "siem", "title": "nested, not top-level", "x": {"osprey_probe": "p-1"}},
            {"source": "siem", "title": "too old", "osprey_probe": "p-1"},
            {"source": "siem", "title": "odd key", "probe id\"": "p-1"},
        ]))
        .unwrap();
        let items = crate::intake::parse_items(crate::intake::Format::Json, &body, "json");
        let received = [2000, 2001, 2002, 2003, 500, 2004];
        let alerts: Vec<StoredAlert> = items
            .into_iter()
            .zip(received)
            .map(|(item, at)| StoredAlert::new(crate::store::new_id('a'), at, "test", item.alert.unwrap()))
            .collect();
        store.insert_alerts(alerts).await.unwrap();

        let titles = |found: Vec<StoredAlert>| found.into_iter().map(|a| a.alert.title).collect::<Vec<_>>();
        let found = store
            .alerts_with_field("osprey_probe", "p-1", 1000, 10)
            .await
            .unwrap();
        assert_eq!(titles(found), ["blocked download"]);
        let found = store
            .alerts_with_field("osprey_probe", "p-1", 0, 10)
            .await
            .unwrap();
        assert_eq!(titles(found), ["blocked download", "too old"]);
        let found = store
            .alerts_with_field("osprey_probe", "42", 1000, 10)
            .await
            .unwrap();
        assert_eq!(titles(found), ["a number"]);
        assert!(
            store
                .alerts_with_field("osprey_probe", "p-9", 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // A key the SQL does not take as written is bound, never spliced into the statement.
        assert!(store.alerts_with_field("probe id\"", "p-1", 0, 10).await.is_ok());
        let found = store
            .alerts_with_field("osprey_probe", "p-1", 0, 1)
            .await
            .unwrap();
        assert_eq!(
            titles(found),
            ["blocked download"],
            "the newest first, at most the limit"
        );
    });
}
