//! Reading a run's journal: its steps in order, as a worker resumes it and as the API and
//! the console show it. (Steps are appended through the writer, `writer.rs`.)

use super::json::{read, unreadable};
use super::runs::StepRecord;
use super::{Dialect, Result, Store};

/// A row of `run_steps`, as an element of the journal read as one JSON array:
/// `[seq, kind, request, outcome, ok, started_at, duration_ms]`, the request and outcome as
/// their stored text.
#[derive(serde::Deserialize)]
struct StepRow {
    seq: i64,
    kind: String,
    request: String,
    outcome: String,
    ok: i32,
    started_at: i64,
    duration_ms: i64,
}

fn step_from_row(row: StepRow) -> StepRecord {
    let request = read(&row.request, "request");
    let outcome = read(&row.outcome, "outcome");
    StepRecord {
        unreadable: unreadable([&request.unreadable, &outcome.unreadable]),
        seq: row.seq,
        kind: row.kind,
        request: request.value,
        outcome: outcome.value,
        ok: row.ok != 0,
        started_at: row.started_at,
        duration_ms: row.duration_ms,
    }
}

impl Store {
    /// The journal of a run, in order.
    ///
    /// Read as one value: the database builds the JSON array of the steps and one string
    /// crosses from it. Read row by row, sqlx copied and converted each of a step's seven
    /// values twice (its `Any` rows) and handed each row from SQLite's thread to the caller:
    /// reading a 100-step journal cost more than replaying it. The array holds the stored
    /// text of each request and outcome quoted, at most twice as long (only `"` and `\` are
    /// escaped in valid JSON text), so the longest journal a run may keep
    /// (`max_journal_bytes`, 256 MiB at most) stays well under the 1 GB that SQLite and
    /// PostgreSQL allow one value.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>> {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT json_group_array(json_array(seq, kind, request, outcome, ok, started_at, duration_ms)) \
                 FROM run_steps WHERE run_id = $1"
            }
            Dialect::Postgres => {
                "SELECT CAST(COALESCE(json_agg(json_build_array(seq, kind, request, outcome, ok, started_at, \
                 duration_ms)), '[]') AS TEXT) FROM run_steps WHERE run_id = $1"
            }
        };
        let text: String = sqlx::query_scalar(sql).bind(run_id).fetch_one(&self.pool).await?;
        let mut rows: Vec<StepRow> = serde_json::from_str(&text)
            .map_err(|e| super::StoreError::Corrupt(format!("the journal of run {run_id}: {e}")))?;
        // In order here: an aggregate's own ORDER BY made SQLite sort through a temporary
        // b-tree, which cost a one-step journal a quarter more than reading it row by row.
        // The rows come in the primary key's order already, which costs this nothing.
        rows.sort_by_key(|r| r.seq);
        Ok(rows.into_iter().map(step_from_row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::NewRun;
    use crate::store::testing::both_dialects;
    use serde_json::json;

    fn step(seq: i64, request: serde_json::Value, outcome: serde_json::Value, ok: bool) -> StepRecord {
        StepRecord {
            seq,
            kind: if ok { "invoke" } else { "act" }.into(),
            request,
            outcome,
            ok,
            started_at: 1_800_000_000_000 + seq,
            duration_ms: seq * 3,
            unreadable: None,
        }
    }

    async fn run(store: &Store, id: &str) {
        let run = NewRun {
            id: id.into(),
            playbook: "pb".into(),
            script_hash: "h".into(),
            input: json!({}),
            origin: "manual".into(),
            context: serde_json::Value::Null,
            lease: None,
        };
        store.create_run(&run).await.unwrap();
    }

    both_dialects!(
        a_journal_reads_back_in_order_with_every_value_as_written,
        |store| {
            run(store, "r1").await;
            run(store, "r2").await;
            assert_eq!(store.steps("r1").await.unwrap(), vec![], "no steps yet");
            assert_eq!(store.steps("nope").await.unwrap(), vec![], "no such run");
            // Twelve steps (10 sorts before 2 as text), with what quoting could break: quotes,
            // backslashes, control characters, other scripts, deep and big numbers.
            let awkward = json!({
                "quote": "say \"hi\"", "back": "C:\\dir\\", "ctl": "a\u{0}b\u{1f}\n\t",
                "uni": "日本 ✓ 𝄞", "deep": [[[{"k": [1, 2.5, -0.0, null, true]}]]],
                "big": i64::MAX, "small": i64::MIN, "float": 1.0e300, "empty": {}, "none": [],
            });
            let steps: Vec<StepRecord> = (1..=12)
                .map(|seq| match seq % 3 {
                    0 => step(seq, json!({ "n": seq, "v": awkward }), json!("plain text"), true),
                    1 => step(
                        seq,
                        json!(null),
                        json!({ "kind": "denied", "message": "no \"grant\"" }),
                        false,
                    ),
                    _ => step(seq, json!([seq]), awkward.clone(), true),
                })
                .collect();
            for s in &steps {
                store.append_step("r1", s).await.unwrap();
            }
            store.append_step("r2", &steps[0]).await.unwrap();
            assert_eq!(store.steps("r1").await.unwrap(), steps);
            assert_eq!(store.steps("r2").await.unwrap(), steps[..1]);
        }
    );

    both_dialects!(
        a_damaged_step_reads_as_null_with_the_reason_and_the_others_as_written,
        |store| {
            run(store, "r1").await;
            let steps: Vec<StepRecord> = (1..=3)
                .map(|seq| step(seq, json!({ "n": seq }), json!(seq), true))
                .collect();
            for s in &steps {
                store.append_step("r1", s).await.unwrap();
            }
            // Edited by hand: text that is not JSON, with a quote and a control character in it.
            sqlx::query("UPDATE run_steps SET outcome = $1 WHERE run_id = 'r1' AND seq = 2")
                .bind("{\"half\": \"\u{7}")
                .execute(&store.pool)
                .await
                .unwrap();
            let read = store.steps("r1").await.unwrap();
            assert_eq!(
                (read[0].clone(), read[2].clone()),
                (steps[0].clone(), steps[2].clone())
            );
            assert_eq!(read[1].request, json!({ "n": 2 }));
            assert_eq!(read[1].outcome, serde_json::Value::Null);
            let why = read[1].unreadable.as_deref().unwrap();
            assert!(why.starts_with("stored data is unreadable (outcome: "), "{why}");
        }
    );
}
