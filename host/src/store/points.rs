//! The data points playbooks record for their charts (`playbook_points`), and the two
//! aggregations charts read: per time bucket, and the top groups of a field. Each reads one
//! playbook's series over a window through the index on (playbook, series, at), so its cost
//! is the points in the window, not the history; the sum of a field counts only the points
//! where it is a number.

use super::{Dialect, Result, Store, StoreError};
use serde_json::Value;

/// The largest point the store keeps, as JSON text (the playbook's own limit is smaller).
const MAX_POINT_BYTES: usize = 16 * 1024;

/// The value a chart sums, as an SQL expression over `data`: a count, or the sum of the
/// numeric field bound as `$field` (a JSON path on SQLite, a key on PostgreSQL).
fn value_sql(dialect: Dialect, sum: bool, field: &str) -> String {
    if !sum {
        return "CAST(COUNT(*) AS DOUBLE PRECISION)".into();
    }
    let number = match dialect {
        Dialect::Sqlite => {
            format!(
                "CASE WHEN json_type(data, {field}) IN ('integer', 'real') THEN json_extract(data, {field}) END"
            )
        }
        Dialect::Postgres => format!(
            "CASE WHEN jsonb_typeof(data::jsonb -> CAST({field} AS TEXT)) = 'number' \
             THEN (data::jsonb ->> CAST({field} AS TEXT))::double precision END"
        ),
    };
    format!("CAST(COALESCE(SUM({number}), 0) AS DOUBLE PRECISION)")
}

/// A field name as the dialect's JSON functions take it.
fn field_param(dialect: Dialect, field: &str) -> String {
    match dialect {
        Dialect::Sqlite => format!("$.{field}"),
        Dialect::Postgres => field.to_owned(),
    }
}

impl Store {
    /// Record a point of `series` for run `run_id`'s playbook at `at` (Unix ms), once under
    /// `key` (the step's idempotency key: a second write of it changes nothing).
    pub async fn record_point(
        &self,
        run_id: &str,
        key: &str,
        series: &str,
        point: &Value,
        at: i64,
    ) -> Result<()> {
        super::json::check(point, "a chart point")?;
        let data = point.to_string();
        if data.len() > MAX_POINT_BYTES {
            return Err(StoreError::Invalid(format!(
                "a chart point is at most {MAX_POINT_BYTES} bytes as JSON, not {}",
                data.len()
            )));
        }
        let done = sqlx::query(
            "INSERT INTO playbook_points (id, playbook, series, at, run_id, data) \
             SELECT $1, playbook, $2, $3, id, $4 FROM runs WHERE id = $5 \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(key)
        .bind(series)
        .bind(at)
        .bind(&data)
        .bind(run_id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            let kept: Option<String> = sqlx::query_scalar("SELECT id FROM playbook_points WHERE id = $1")
                .bind(key)
                .fetch_optional(&self.writer)
                .await?;
            if kept.is_none() {
                return Err(StoreError::Invalid(format!(
                    "no run {run_id} to record a point for"
                )));
            }
        }
        Ok(())
    }

    /// The points of `playbook`'s `series` from `since` to `until` (Unix ms) in buckets of
    /// `bucket_ms`: each non-empty bucket's start and its count, or its sum of `sum`.
    pub async fn point_buckets(
        &self,
        playbook: &str,
        series: &str,
        since: i64,
        until: i64,
        bucket_ms: i64,
        sum: Option<&str>,
    ) -> Result<Vec<(i64, f64)>> {
        if bucket_ms <= 0 {
            return Err(StoreError::Invalid("a bucket is at least 1 ms".into()));
        }
        let value = value_sql(self.dialect, sum.is_some(), "$6");
        let sql = format!(
            "SELECT at / $5 AS bucket, {value} FROM playbook_points \
             WHERE playbook = $1 AND series = $2 AND at >= $3 AND at < $4 \
             GROUP BY 1 ORDER BY 1"
        );
        // Only fixed SQL text is put together here; every value is bound.
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(playbook)
            .bind(series)
            .bind(since)
            .bind(until)
            .bind(bucket_ms);
        if let Some(field) = sum {
            query = query.bind(field_param(self.dialect, field));
        }
        let rows: Vec<(i64, f64)> = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(b, v)| (b * bucket_ms, v)).collect())
    }

    /// The `top` largest groups of `playbook`'s `series` from `since` to `until` by the text
    /// or number in field `group`, with their count or sum of `sum`, largest first.
    #[allow(clippy::too_many_arguments)]
    pub async fn point_top(
        &self,
        playbook: &str,
        series: &str,
        since: i64,
        until: i64,
        group: &str,
        sum: Option<&str>,
        top: u32,
    ) -> Result<Vec<(String, f64)>> {
        let value = value_sql(self.dialect, sum.is_some(), "$7");
        let (key, has_key) = match self.dialect {
            Dialect::Sqlite => (
                "CAST(json_extract(data, $5) AS TEXT)",
                "json_type(data, $5) IN ('text', 'integer', 'real')",
            ),
            Dialect::Postgres => (
                "(data::jsonb ->> CAST($5 AS TEXT))",
                "jsonb_typeof(data::jsonb -> CAST($5 AS TEXT)) IN ('string', 'number')",
            ),
        };
        let sql = format!(
            "SELECT {key} AS grp, {value} FROM playbook_points \
             WHERE playbook = $1 AND series = $2 AND at >= $3 AND at < $4 AND {has_key} \
             GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $6"
        );
        // Only fixed SQL text is put together here; every value is bound.
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(playbook)
            .bind(series)
            .bind(since)
            .bind(until)
            .bind(field_param(self.dialect, group))
            .bind(i64::from(top));
        if let Some(field) = sum {
            query = query.bind(field_param(self.dialect, field));
        }
        Ok(query.fetch_all(&self.pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing::both_dialects;
    use serde_json::json;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    async fn run(store: &crate::store::Store, id: &str, playbook: &str) {
        sqlx::query(
            "INSERT INTO runs (id, playbook, script_hash, input, origin, status, created_at, updated_at)
             VALUES ($1, $2, 'h', '{}', 'test', 'completed', 0, 0)",
        )
        .bind(id)
        .bind(playbook)
        .execute(&store.pool)
        .await
        .unwrap();
    }

    both_dialects!(points_are_summed_per_bucket_and_grouped_in_the_window, |store| {
        run(store, "r1", "bonus").await;
        run(store, "r2", "bonus").await;
        run(store, "r3", "other").await;
        let day = 20_000 * DAY;
        for (key, run_id, series, point, at) in [
            (
                "r1:1",
                "r1",
                "gifts",
                json!({"to": "ann", "points": 10}),
                day + HOUR,
            ),
            (
                "r1:2",
                "r1",
                "gifts",
                json!({"to": "bob", "points": 10}),
                day + 2 * HOUR,
            ),
            (
                "r2:1",
                "r2",
                "gifts",
                json!({"to": "ann", "points": 5}),
                day + DAY + HOUR,
            ),
            // No number to sum: counted, adds 0.
            (
                "r2:2",
                "r2",
                "gifts",
                json!({"to": "cy", "points": "many"}),
                day + DAY + 2 * HOUR,
            ),
            // Another series, another playbook, before the window: not read.
            ("r2:3", "r2", "balance", json!({"points": 99}), day + HOUR),
            (
                "r3:1",
                "r3",
                "gifts",
                json!({"to": "ann", "points": 99}),
                day + HOUR,
            ),
            (
                "r1:3",
                "r1",
                "gifts",
                json!({"to": "ann", "points": 99}),
                day - DAY,
            ),
        ] {
            store.record_point(run_id, key, series, &point, at).await.unwrap();
        }
        // The step taken again after a crash writes nothing new.
        store
            .record_point(
                "r1",
                "r1:1",
                "gifts",
                &json!({"to": "ann", "points": 10}),
                day + 5 * HOUR,
            )
            .await
            .unwrap();
        let summed = store
            .point_buckets("bonus", "gifts", day, day + 2 * DAY, DAY, Some("points"))
            .await
            .unwrap();
        assert_eq!(summed, vec![(day, 20.0), (day + DAY, 5.0)]);
        let counted = store
            .point_buckets("bonus", "gifts", day, day + 2 * DAY, HOUR, None)
            .await
            .unwrap();
        assert_eq!(
            counted,
            vec![
                (day + HOUR, 1.0),
                (day + 2 * HOUR, 1.0),
                (day + DAY + HOUR, 1.0),
                (day + DAY + 2 * HOUR, 1.0)
            ]
        );
        let top = store
            .point_top("bonus", "gifts", day, day + 2 * DAY, "to", Some("points"), 2)
            .await
            .unwrap();
        assert_eq!(top, vec![("ann".to_owned(), 15.0), ("bob".to_owned(), 10.0)]);
        let top = store
            .point_top("bonus", "gifts", day, day + 2 * DAY, "to", None, 10)
            .await
            .unwrap();
        assert_eq!(
            top,
            vec![
                ("ann".to_owned(), 2.0),
                ("bob".to_owned(), 1.0),
                ("cy".to_owned(), 1.0)
            ]
        );
    });

    both_dialects!(a_point_without_a_run_or_too_big_is_refused, |store| {
        let e = store
            .record_point("r-none", "r-none:1", "gifts", &json!({}), 0)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "no run r-none to record a point for");
        run(store, "r1", "bonus").await;
        let big = json!({ "text": "x".repeat(20_000) });
        let e = store
            .record_point("r1", "r1:1", "gifts", &big, 0)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("at most 16384 bytes"), "{e}");
    });
}
