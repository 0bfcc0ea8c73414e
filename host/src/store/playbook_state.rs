//! What playbooks keep between their runs (`playbook_state`): `state_get` and `state_set`,
//! by the playbook of the run that asks. Setting the same value again changes nothing, so
//! the step in flight at a crash may be taken again.

use super::{Result, Store, StoreError, now_ms};
use serde_json::Value;

/// The largest value kept, as JSON text (the playbook's own limit is smaller).
const MAX_VALUE_BYTES: usize = 64 * 1024;

impl Store {
    /// The playbook of run `run_id`, or why there is none.
    async fn playbook_of(&self, run_id: &str) -> Result<String> {
        let playbook: Option<String> = sqlx::query_scalar("SELECT playbook FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.writer)
            .await?;
        playbook.ok_or_else(|| StoreError::Invalid(format!("no run {run_id} to keep state for")))
    }

    /// What run `run_id`'s playbook keeps under `key`; `None` if nothing.
    pub async fn playbook_state(&self, run_id: &str, key: &str) -> Result<Option<Value>> {
        let playbook = self.playbook_of(run_id).await?;
        let text: Option<String> =
            sqlx::query_scalar("SELECT value FROM playbook_state WHERE playbook = $1 AND name = $2")
                .bind(&playbook)
                .bind(key)
                .fetch_optional(&self.writer)
                .await?;
        Ok(text.map(|t| super::json::read(&t, "a kept value").value))
    }

    /// Keep `value` under `key` for run `run_id`'s playbook (`null` removes the key). A new
    /// key is refused when the playbook already keeps `max_keys`.
    pub async fn set_playbook_state(
        &self,
        run_id: &str,
        key: &str,
        value: &Value,
        max_keys: usize,
    ) -> Result<()> {
        let playbook = self.playbook_of(run_id).await?;
        if value.is_null() {
            sqlx::query("DELETE FROM playbook_state WHERE playbook = $1 AND name = $2")
                .bind(&playbook)
                .bind(key)
                .execute(&self.writer)
                .await?;
            return Ok(());
        }
        super::json::check(value, "a kept value")?;
        let text = value.to_string();
        if text.len() > MAX_VALUE_BYTES {
            return Err(StoreError::Invalid(format!(
                "a kept value is at most {MAX_VALUE_BYTES} bytes as JSON, not {}",
                text.len()
            )));
        }
        let mut tx = self.writer.begin().await?;
        let others: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM playbook_state WHERE playbook = $1 AND name <> $2")
                .bind(&playbook)
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
        if others as usize >= max_keys {
            return Err(StoreError::Invalid(format!(
                "playbook '{playbook}' already keeps {others} keys, the most a playbook may; \
                 remove one with state_set(key, ()) before keeping '{key}'"
            )));
        }
        sqlx::query(
            "INSERT INTO playbook_state (playbook, name, value, run_id, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (playbook, name) DO UPDATE SET value = excluded.value, \
             run_id = excluded.run_id, updated_at = excluded.updated_at",
        )
        .bind(&playbook)
        .bind(key)
        .bind(&text)
        .bind(run_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::runs::NewRun;
    use crate::store::testing::both_dialects;
    use serde_json::json;

    fn new_run(id: &str, playbook: &str) -> NewRun {
        NewRun {
            id: id.into(),
            playbook: playbook.into(),
            script_hash: "h".into(),
            input: json!({}),
            origin: "manual".into(),
            context: serde_json::Value::Null,
            lease: None,
        }
    }

    both_dialects!(
        a_playbook_keeps_its_values_between_runs_and_only_its_own,
        |store| {
            store.create_run(&new_run("r1", "giver")).await.unwrap();
            store.create_run(&new_run("r2", "giver")).await.unwrap();
            store.create_run(&new_run("r3", "other")).await.unwrap();
            assert_eq!(store.playbook_state("r1", "next").await.unwrap(), None);
            store
                .set_playbook_state("r1", "next", &json!(2), 2)
                .await
                .unwrap();
            // Taken again (a crash mid-step): the same value, nothing new.
            store
                .set_playbook_state("r1", "next", &json!(2), 2)
                .await
                .unwrap();
            assert_eq!(store.playbook_state("r2", "next").await.unwrap(), Some(json!(2)));
            assert_eq!(
                store.playbook_state("r3", "next").await.unwrap(),
                None,
                "another playbook's"
            );
            store
                .set_playbook_state("r2", "next", &json!({"i": 3}), 2)
                .await
                .unwrap();
            assert_eq!(
                store.playbook_state("r1", "next").await.unwrap(),
                Some(json!({"i": 3}))
            );

            // Bounded: a new key past the most is refused; an existing one still changes.
            store
                .set_playbook_state("r1", "seen", &json!([]), 2)
                .await
                .unwrap();
            let e = store
                .set_playbook_state("r1", "third", &json!(1), 2)
                .await
                .unwrap_err();
            assert!(e.to_string().contains("already keeps 2 keys"), "{e}");
            store
                .set_playbook_state("r1", "seen", &json!([1]), 2)
                .await
                .unwrap();
            // `()` removes a key, which makes room.
            store
                .set_playbook_state("r1", "seen", &serde_json::Value::Null, 2)
                .await
                .unwrap();
            assert_eq!(store.playbook_state("r1", "seen").await.unwrap(), None);
            store
                .set_playbook_state("r1", "third", &json!(1), 2)
                .await
                .unwrap();

            let e = store.playbook_state("nope", "next").await.unwrap_err();
            assert!(e.to_string().contains("no run nope"), "{e}");
        }
    );
}
