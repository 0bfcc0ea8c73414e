//! Child runs: a run started by another's `playbook(name, input)`, linked both ways (the
//! child's `parent_run`, the parent's step that started it), made once per step.

use super::runs::{NewRun, RUN_COLUMNS, RunRecord, RunRow, run_from_row};
use super::{Result, Store, now_ms};

impl Store {
    /// Create `run` as the child of run `parent`, started by its step `step`, queued and due
    /// now; returns the child's id. Exactly once per step: if that step already made a
    /// child (the step is taken again after a crash), that child's id is returned and
    /// `run` is not stored.
    pub async fn create_child_run(&self, run: &NewRun, parent: &str, step: i64) -> Result<String> {
        super::json::check(&run.input, "the run's input")?;
        super::json::check(&run.context, "the run's context")?;
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM runs WHERE parent_run = $1 AND parent_step = $2")
                .bind(parent)
                .bind(step)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = existing {
            return Ok(id);
        }
        sqlx::query(
            "INSERT INTO runs (id, playbook, script_hash, input, origin, context, status, attempts, run_at,
                 claims, created_at, updated_at, parent_run, parent_step)
             VALUES ($1, $2, $3, $4, $5, $6, 'queued', 0, $7, 0, $7, $7, $8, $9)",
        )
        .bind(&run.id)
        .bind(&run.playbook)
        .bind(&run.script_hash)
        .bind(run.input.to_string())
        .bind(&run.origin)
        .bind((!run.context.is_null()).then(|| run.context.to_string()))
        .bind(now)
        .bind(parent)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        super::counts::runs_created(&mut tx, now, [run.playbook.as_str()]).await?;
        tx.commit().await?;
        Ok(run.id.clone())
    }

    /// The runs run `parent` started with `playbook(name, input)`, oldest first.
    pub async fn child_runs(&self, parent: &str) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE parent_run = $1 ORDER BY parent_step, created_at LIMIT 1000"
        );
        let rows: Vec<RunRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(parent)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(run_from_row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::Actor;
    use crate::store::runs::RunStatus;
    use crate::store::testing::both_dialects;

    fn new_run(id: &str) -> NewRun {
        NewRun {
            id: id.into(),
            playbook: "pb".into(),
            script_hash: "h".into(),
            input: serde_json::json!({}),
            origin: "manual".into(),
            context: serde_json::Value::Null,
            lease: None,
        }
    }

    both_dialects!(a_step_makes_one_child_and_its_end_wakes_the_parent, |store| {
        store.create_run(&new_run("r-parent")).await.unwrap();
        store
            .reschedule_run("r-parent", RunStatus::Waiting, i64::MAX / 2, None)
            .await
            .unwrap();
        let child = store
            .create_child_run(&new_run("r-child"), "r-parent", 3)
            .await
            .unwrap();
        assert_eq!(child, "r-child");
        // The step taken again after a crash finds the same child.
        let again = store
            .create_child_run(&new_run("r-other"), "r-parent", 3)
            .await
            .unwrap();
        assert_eq!(again, "r-child");
        assert!(store.run("r-other").await.unwrap().is_none());
        let children = store.child_runs("r-parent").await.unwrap();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].parent_run.as_deref(), Some("r-parent"));

        let before = now_ms();
        store
            .finish_run("r-child", RunStatus::Completed, Some(&serde_json::json!(1)), None)
            .await
            .unwrap();
        let parent = store.run("r-parent").await.unwrap().unwrap();
        assert!(
            parent.wake_at.is_some_and(|at| at <= now_ms() && at >= before),
            "{parent:?}"
        );
    });

    both_dialects!(cancelling_a_parent_cancels_its_unfinished_children, |store| {
        store.create_run(&new_run("r-top")).await.unwrap();
        store.create_child_run(&new_run("r-a"), "r-top", 1).await.unwrap();
        store.create_child_run(&new_run("r-b"), "r-top", 2).await.unwrap();
        store.create_child_run(&new_run("r-a1"), "r-a", 1).await.unwrap();
        store
            .finish_run("r-b", RunStatus::Completed, None, None)
            .await
            .unwrap();
        assert!(store.cancel_run("r-top", &Actor::cli()).await.unwrap());
        for (id, status) in [
            ("r-top", RunStatus::Cancelled),
            ("r-a", RunStatus::Cancelled),
            ("r-a1", RunStatus::Cancelled),
            ("r-b", RunStatus::Completed),
        ] {
            assert_eq!(store.run(id).await.unwrap().unwrap().status, status, "{id}");
        }
        let a1 = store.run("r-a1").await.unwrap().unwrap();
        assert!(a1.error.unwrap().contains("with its parent run r-a"));
        // Cancelling a child alone leaves its parent be.
        store.create_run(&new_run("r-p2")).await.unwrap();
        store.create_child_run(&new_run("r-c2"), "r-p2", 1).await.unwrap();
        assert!(store.cancel_run("r-c2", &Actor::cli()).await.unwrap());
        assert_eq!(
            store.run("r-p2").await.unwrap().unwrap().status,
            RunStatus::Queued
        );
    });
}
