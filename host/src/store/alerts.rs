//! Alerts as received. New alerts go through the group-commit writer (`writer.rs`): a 2xx
//! answer to a sender means they are committed, and concurrent senders share commits.

use super::writer::Write;
use super::{Result, Store, StoreError};
use crate::intake::{Alert, Observables, Severity};
use serde::Serialize;

/// An alert with what the store adds: its id, when and how it came in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAlert {
    pub id: String,
    pub received_at: i64,
    /// "token:NAME", "syslog-udp", "syslog-tcp".
    pub via: String,
    #[serde(flatten)]
    pub alert: Alert,
}

/// A fresh alert id: time-ordered, with 64 random bits.
pub fn new_alert_id(now_ms: i64) -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    format!("a{now_ms:011x}{:016x}", chacha20poly1305::aead::OsRng.next_u64())
}

type AlertRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    String,
    Option<String>,
);

impl Store {
    /// Commit `alerts`; returns once they are durable.
    pub async fn insert_alerts(&self, alerts: Vec<StoredAlert>) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.write(Write::InsertAlerts(alerts)).await.map(drop)
    }

    /// The newest alerts first, optionally from one source.
    pub async fn alerts(&self, source: Option<&str>, limit: i64) -> Result<Vec<StoredAlert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(
            "SELECT id, received_at, via, source, title, severity, occurred_at, data, observables, raw
             FROM alerts WHERE ($1 IS NULL OR source = $1) ORDER BY received_at DESC, id DESC LIMIT $2",
        )
        .bind(source)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(id, received_at, via, source, title, severity, occurred_at, data, observables, raw)| {
                    let corrupt =
                        |what: &str, e: String| StoreError::Corrupt(format!("alert {id}: {what}: {e}"));
                    let severity =
                        Severity::parse(&severity).ok_or_else(|| corrupt("severity", severity.clone()))?;
                    let data = serde_json::from_str(&data).map_err(|e| corrupt("data", e.to_string()))?;
                    let observables: Observables = serde_json::from_str(&observables)
                        .map_err(|e| corrupt("observables", e.to_string()))?;
                    Ok(StoredAlert {
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
                    })
                },
            )
            .collect()
    }

    /// How many alerts are stored.
    pub async fn alert_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM alerts")
            .fetch_one(&self.pool)
            .await?)
    }
}
