//! Manual tasks: work for a person, assigned to a user or to a role, usually on an incident,
//! with a due time kept by an SLA timer. Only the assignee, or a member of the assigned role,
//! may complete one; delegating hands it to another user or role (and may set a new due time).

use super::audit::{self, Actor, Change};
use super::incidents::add_event;
use super::page::{self, Arg, Keyset, Page};
use super::{Result, Store, StoreError, now_ms, sla};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A task's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    Open,
    Done,
    Cancelled,
}

impl TaskStatus {
    /// The names of the states, as [`as_str`](Self::as_str) gives them (and the store keeps
    /// them).
    pub const NAMES: &[&str] = &["open", "done", "cancelled"];

    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "open" => TaskStatus::Open,
            "done" => TaskStatus::Done,
            "cancelled" => TaskStatus::Cancelled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The columns tasks may be sorted by (`GET /api/v1/tasks?sort=`).
pub const TASK_SORTS: &[&str] = &["created_at", "updated_at", "status", "title"];

/// Which tasks a page holds; `None` is any.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaskFilter<'a> {
    pub status: Option<TaskStatus>,
    /// Only this incident's tasks.
    pub incident: Option<&'a str>,
    /// Only tasks this user may complete: assigned to them or to one of their roles.
    pub for_user: Option<&'a str>,
}

/// A task ready to be stored.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub incident_id: Option<String>,
    pub title: String,
    pub description: String,
    /// The user it is assigned to, if any.
    pub assignee: Option<String>,
    /// The role it is assigned to, if any. At least one of the two is needed.
    pub role: Option<String>,
    /// Time to complete it, in ms; the store's `[incidents] task_due` when `None`.
    pub due_ms: Option<i64>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TaskRecord {
    pub id: String,
    pub incident_id: Option<String>,
    pub title: String,
    pub description: String,
    pub assignee: Option<String>,
    pub role: Option<String>,
    pub status: TaskStatus,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    pub completed_by: Option<String>,
    pub comment: Option<String>,
}

/// Why a task could not be changed.
#[derive(Debug, Error)]
pub enum TaskError {
    #[error("no task '{0}'")]
    NotFound(String),
    #[error("task {id} is {status}, not open")]
    NotOpen { id: String, status: TaskStatus },
    #[error("no user '{0}' (see `osprey user list`)")]
    NoUser(String),
    #[error("user '{user}' is disabled")]
    Disabled { user: String },
    #[error(
        "task {id} is assigned to {assigned}; user '{user}' is neither that user nor a member of that role"
    )]
    NotAllowed {
        id: String,
        user: String,
        assigned: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TaskError {
    fn from(e: sqlx::Error) -> Self {
        TaskError::Store(e.into())
    }
}

/// A `tasks` row, by column name.
#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    incident_id: Option<String>,
    title: String,
    description: String,
    assignee: Option<String>,
    role: Option<String>,
    status: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
    completed_by: Option<String>,
    comment: Option<String>,
}

const TASK_COLUMNS: &str = "id, incident_id, title, description, assignee, role, status, created_by, \
     created_at, updated_at, completed_at, completed_by, comment";

fn task_from_row(r: TaskRow) -> Result<TaskRecord> {
    let status = TaskStatus::parse(&r.status)
        .ok_or_else(|| StoreError::Corrupt(format!("task {}: status '{}'", r.id, r.status)))?;
    Ok(TaskRecord {
        id: r.id,
        incident_id: r.incident_id,
        title: r.title,
        description: r.description,
        assignee: r.assignee,
        role: r.role,
        status,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
        completed_at: r.completed_at,
        completed_by: r.completed_by,
        comment: r.comment,
    })
}

/// "user alice", "role soc", or both.
fn assigned(assignee: Option<&str>, role: Option<&str>) -> String {
    match (assignee, role) {
        (Some(u), Some(r)) => format!("user '{u}' or role '{r}'"),
        (Some(u), None) => format!("user '{u}'"),
        (None, Some(r)) => format!("role '{r}'"),
        (None, None) => "nobody".into(),
    }
}

async fn task_in(conn: &mut sqlx::AnyConnection, id: &str) -> Result<Option<TaskRecord>, TaskError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
    let row: Option<TaskRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(task_from_row).transpose().map_err(TaskError::from)
}

/// The open task `id`, or why not.
async fn open_task(conn: &mut sqlx::AnyConnection, id: &str) -> Result<TaskRecord, TaskError> {
    let task = task_in(conn, id)
        .await?
        .ok_or_else(|| TaskError::NotFound(id.to_owned()))?;
    if task.status != TaskStatus::Open {
        return Err(TaskError::NotOpen {
            id: id.to_owned(),
            status: task.status,
        });
    }
    Ok(task)
}

fn check_assignment(assignee: Option<&str>, role: Option<&str>) -> Result<(), TaskError> {
    if assignee.is_none() && role.is_none() {
        return Err(TaskError::Invalid(
            "a task is assigned to a user, a role, or both".into(),
        ));
    }
    if let Some(u) = assignee {
        crate::names::check("user", u).map_err(|e| TaskError::Invalid(e.to_string()))?;
    }
    if let Some(r) = role {
        crate::names::check("role", r).map_err(|e| TaskError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Put a change to task `id` on its incident's timeline (event `kind`), audit it as
/// `action`, and commit; returns the task as it now is.
async fn finish(
    key: &crate::vault::AuditChainKey,
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    incident: Option<&str>,
    actor: &Actor,
    (kind, action): (&str, &str),
    details: serde_json::Value,
) -> Result<TaskRecord, TaskError> {
    if let Some(incident) = incident {
        add_event(&mut tx, incident, actor, kind, details.clone()).await?;
    }
    let change = Change {
        actor,
        action,
        target: format!("task:{id}"),
        details,
    };
    audit::append(&mut tx, key, &change).await?;
    let record = task_in(&mut tx, id)
        .await?
        .ok_or_else(|| TaskError::NotFound(id.to_owned()))?;
    tx.commit().await?;
    Ok(record)
}

impl Store {
    /// Create a task (audited as `task.create`, on its incident's timeline) and start its
    /// due timer. A playbook passes its step's key as `step_key`: the same step taken again
    /// returns the task it made the first time.
    pub async fn create_task(
        &self,
        task: &NewTask,
        actor: &Actor,
        step_key: Option<&str>,
    ) -> Result<TaskRecord, TaskError> {
        check_assignment(task.assignee.as_deref(), task.role.as_deref())?;
        if task.title.trim().is_empty() {
            return Err(TaskError::Invalid("a task needs a title".into()));
        }
        if task.due_ms.is_some_and(|d| d <= 0) {
            return Err(TaskError::Invalid(
                "a task's due time must be in the future".into(),
            ));
        }
        let mut tx = self.writer.begin().await?;
        if let Some(key) = step_key {
            let made: Option<String> = sqlx::query_scalar("SELECT id FROM tasks WHERE step_key = $1")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = made {
                return task_in(&mut tx, &id).await?.ok_or(TaskError::NotFound(id));
            }
        }
        if let Some(incident) = &task.incident_id
            && !super::incidents::incident_exists(&mut tx, incident)
                .await
                .map_err(TaskError::Store)?
        {
            return Err(TaskError::Invalid(format!("no incident '{incident}'")));
        }
        let id = super::new_id('t');
        let now = now_ms();
        sqlx::query(
            "INSERT INTO tasks (id, incident_id, title, description, assignee, role, status, created_by,
                 created_at, updated_at, step_key)
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $8, $9)",
        )
        .bind(&id)
        .bind(&task.incident_id)
        .bind(&task.title)
        .bind(&task.description)
        .bind(&task.assignee)
        .bind(&task.role)
        .bind(actor.as_str())
        .bind(now)
        .bind(step_key)
        .execute(&mut *tx)
        .await?;
        let due_ms = task.due_ms.or(self.cases.task_due_ms());
        if let Some(ms) = due_ms {
            sla::start(
                &mut tx,
                &format!("task:{id}"),
                "due",
                task.incident_id.as_deref(),
                ms,
                now,
            )
            .await?;
        }
        let details = serde_json::json!({
            "task": id,
            "title": task.title,
            "assignee": task.assignee,
            "role": task.role,
            "due_at": due_ms.map(|ms| now + ms),
        });
        let incident = task.incident_id.as_deref();
        finish(
            &self.audit_key,
            tx,
            &id,
            incident,
            actor,
            ("task", "task.create"),
            details,
        )
        .await
    }

    /// Complete an open task as user `user`, who must be its assignee or a member of its
    /// role (audited as `task.done` by `user:NAME`, on the timeline; stops its timer).
    pub async fn complete_task(
        &self,
        id: &str,
        user: &str,
        comment: Option<&str>,
    ) -> Result<TaskRecord, TaskError> {
        let who = self
            .user(user)
            .await?
            .ok_or_else(|| TaskError::NoUser(user.to_owned()))?;
        if who.disabled_at.is_some() {
            return Err(TaskError::Disabled {
                user: user.to_owned(),
            });
        }
        let actor = Actor::user(user);
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let task = open_task(&mut tx, id).await?;
        let allowed =
            task.assignee.as_deref() == Some(user) || task.role.as_deref().is_some_and(|r| who.in_role(r));
        if !allowed {
            return Err(TaskError::NotAllowed {
                id: id.to_owned(),
                user: user.to_owned(),
                assigned: assigned(task.assignee.as_deref(), task.role.as_deref()),
            });
        }
        sqlx::query(
            "UPDATE tasks SET status = 'done', completed_at = $1, completed_by = $2, comment = $3, updated_at = $1
             WHERE id = $4 AND status = 'open'",
        )
        .bind(now)
        .bind(user)
        .bind(comment)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sla::stop(&mut tx, &format!("task:{id}"), None, now).await?;
        let details = serde_json::json!({ "task": id, "title": task.title, "comment": comment });
        let incident = task.incident_id.as_deref();
        finish(
            &self.audit_key,
            tx,
            id,
            incident,
            &actor,
            ("task_done", "task.done"),
            details,
        )
        .await
    }

    /// Hand an open task to another user and/or role (audited as `task.delegate`, on the
    /// timeline). With `due_ms` its timer starts again with that time.
    pub async fn delegate_task(
        &self,
        id: &str,
        assignee: Option<&str>,
        role: Option<&str>,
        due_ms: Option<i64>,
        actor: &Actor,
    ) -> Result<TaskRecord, TaskError> {
        check_assignment(assignee, role)?;
        if due_ms.is_some_and(|d| d <= 0) {
            return Err(TaskError::Invalid(
                "a task's due time must be in the future".into(),
            ));
        }
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let task = open_task(&mut tx, id).await?;
        sqlx::query("UPDATE tasks SET assignee = $1, role = $2, updated_at = $3 WHERE id = $4")
            .bind(assignee)
            .bind(role)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if let Some(ms) = due_ms {
            sla::start(
                &mut tx,
                &format!("task:{id}"),
                "due",
                task.incident_id.as_deref(),
                ms,
                now,
            )
            .await?;
        }
        let details = serde_json::json!({
            "task": id,
            "from": assigned(task.assignee.as_deref(), task.role.as_deref()),
            "assignee": assignee,
            "role": role,
            "due_at": due_ms.map(|ms| now + ms),
        });
        let incident = task.incident_id.as_deref();
        finish(
            &self.audit_key,
            tx,
            id,
            incident,
            actor,
            ("task_delegated", "task.delegate"),
            details,
        )
        .await
    }

    /// Cancel an open task (audited as `task.cancel`, on the timeline; stops its timer).
    pub async fn cancel_task(&self, id: &str, reason: &str, actor: &Actor) -> Result<TaskRecord, TaskError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let task = open_task(&mut tx, id).await?;
        sqlx::query("UPDATE tasks SET status = 'cancelled', comment = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sla::stop(&mut tx, &format!("task:{id}"), None, now).await?;
        let details = serde_json::json!({ "task": id, "reason": reason });
        let incident = task.incident_id.as_deref();
        finish(
            &self.audit_key,
            tx,
            id,
            incident,
            actor,
            ("task_cancelled", "task.cancel"),
            details,
        )
        .await
    }

    /// One task.
    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>> {
        let mut conn = self.pool.acquire().await?;
        task_in(&mut conn, id).await.map_err(|e| match e {
            TaskError::Store(e) => e,
            other => StoreError::Corrupt(other.to_string()),
        })
    }

    /// One page of tasks matching `filter`, in the order of `keyset` (one of [`TASK_SORTS`]).
    pub async fn task_page(&self, filter: &TaskFilter<'_>, keyset: &Keyset) -> Result<Page<TaskRecord>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        if let Some(status) = filter.status {
            args.push(status.as_str().into());
            conditions.push(format!("status = ${}", args.len()));
        }
        if let Some(incident) = filter.incident {
            args.push(incident.into());
            conditions.push(format!("incident_id = ${}", args.len()));
        }
        if let Some(user) = filter.for_user {
            args.push(user.into());
            let n = args.len();
            conditions.push(format!(
                "(assignee = ${n} OR role IN (SELECT r.role FROM user_roles r JOIN users u ON u.name = r.user_name
                                     WHERE r.user_name = ${n} AND u.disabled_at IS NULL))"
            ));
        }
        let select = format!("SELECT {TASK_COLUMNS} FROM tasks");
        let page: Page<TaskRow> = page::fetch(
            &self.pool,
            &select,
            &conditions.join(" AND "),
            args,
            keyset,
            TASK_SORTS,
            "id",
        )
        .await?;
        page.try_map(task_from_row)
    }

    /// Tasks, newest first: optionally only one status, one incident, or those `for_user`
    /// may complete (the first page of [`Store::task_page`]).
    pub async fn tasks(
        &self,
        status: Option<TaskStatus>,
        incident: Option<&str>,
        for_user: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TaskRecord>> {
        let filter = TaskFilter {
            status,
            incident,
            for_user,
        };
        let keyset = Keyset::first("created_at", true, limit);
        Ok(self.task_page(&filter, &keyset).await?.items)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn task_status_names_parse_to_themselves() {
        use super::TaskStatus;
        for name in TaskStatus::NAMES {
            assert_eq!(TaskStatus::parse(name).map(|s| s.as_str()), Some(*name));
            let json = serde_json::to_value(TaskStatus::parse(name).unwrap()).unwrap();
            assert_eq!(json, *name, "serialised as stored");
        }
        assert_eq!(TaskStatus::NAMES.len(), 3);
        assert_eq!(TaskStatus::parse("nonsense"), None);
    }

    use super::super::testing::both_dialects;

    both_dialects!(tasks_are_completed_only_by_their_user_or_role, |store| {
        use crate::intake::Severity;
        use crate::store::audit::Actor;
        use crate::store::incidents::NewIncident;
        use crate::store::tasks::{NewTask, TaskError, TaskStatus};
        let cli = Actor::cli();
        store
            .create_user("alice", None, &["soc".into()], &cli)
            .await
            .unwrap();
        store
            .create_user("bob", None, &["net".into()], &cli)
            .await
            .unwrap();
        store
            .create_user("carol", None, &["soc".into()], &cli)
            .await
            .unwrap();
        let incident = store
            .create_incident(
                &NewIncident::new("phishing", "mail", Severity::Medium),
                &[],
                &cli,
                None,
            )
            .await
            .unwrap();
        let task = NewTask {
            incident_id: Some(incident.clone()),
            title: "Call the owner".into(),
            role: Some("soc".into()),
            due_ms: Some(3_600_000),
            ..Default::default()
        };
        let t = store
            .create_task(&task, &Actor::run("r1"), Some("r1:3"))
            .await
            .unwrap();
        assert_eq!(t.status, TaskStatus::Open);
        // The same playbook step taken again gets the same task.
        let again = store
            .create_task(&task, &Actor::run("r1"), Some("r1:3"))
            .await
            .unwrap();
        assert_eq!(again.id, t.id);
        assert_eq!(
            store.tasks(None, Some(&incident), None, 10).await.unwrap().len(),
            1
        );
        let timers = store.sla_timers(&incident).await.unwrap();
        assert_eq!(timers.len(), 1);
        assert_eq!(
            (timers[0].timer.as_str(), timers[0].task()),
            ("due", Some(t.id.as_str()))
        );

        // Who may complete it.
        assert_eq!(
            store
                .tasks(Some(TaskStatus::Open), None, Some("alice"), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(
            store
                .tasks(Some(TaskStatus::Open), None, Some("bob"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let e = store.complete_task(&t.id, "bob", None).await.unwrap_err();
        assert!(matches!(e, TaskError::NotAllowed { .. }), "{e}");
        assert!(e.to_string().contains("role 'soc'"), "{e}");
        let e = store.complete_task(&t.id, "mallory", None).await.unwrap_err();
        assert!(matches!(e, TaskError::NoUser(_)), "{e}");
        store.set_user_disabled("carol", true, &cli).await.unwrap();
        let e = store.complete_task(&t.id, "carol", None).await.unwrap_err();
        assert!(matches!(e, TaskError::Disabled { .. }), "{e}");
        assert_eq!(
            store.task(&t.id).await.unwrap().unwrap().status,
            TaskStatus::Open,
            "refusals change nothing"
        );

        // Delegation to another role: now bob's team may, alice's may not.
        let d = store
            .delegate_task(&t.id, None, Some("net"), Some(60_000), &cli)
            .await
            .unwrap();
        assert_eq!(d.role.as_deref(), Some("net"));
        let due = &store.sla_timers(&incident).await.unwrap()[0];
        assert_eq!(due.due_at - due.started_at, 60_000, "new due time");
        assert!(matches!(
            store.complete_task(&t.id, "alice", None).await.unwrap_err(),
            TaskError::NotAllowed { .. }
        ));
        let done = store
            .complete_task(&t.id, "bob", Some("called, it was him"))
            .await
            .unwrap();
        assert_eq!(
            (done.status.as_str(), done.completed_by.as_deref()),
            ("done", Some("bob"))
        );
        assert!(matches!(
            store.complete_task(&t.id, "bob", None).await.unwrap_err(),
            TaskError::NotOpen { .. }
        ));
        assert_eq!(store.sla_timers(&incident).await.unwrap()[0].state(), "met");

        // Bad tasks are refused.
        let cli = &cli;
        let bad = |t: NewTask| async move { store.create_task(&t, cli, None).await.unwrap_err().to_string() };
        let e = bad(NewTask {
            title: "x".into(),
            ..Default::default()
        })
        .await;
        assert!(e.contains("assigned to a user, a role"), "{e}");
        let e = bad(NewTask {
            title: " ".into(),
            role: Some("soc".into()),
            ..Default::default()
        })
        .await;
        assert!(e.contains("needs a title"), "{e}");
        let e = bad(NewTask {
            title: "x".into(),
            role: Some("soc".into()),
            incident_id: Some("i-none".into()),
            ..Default::default()
        })
        .await;
        assert!(e.contains("no incident 'i-none'"), "{e}");
        let e = bad(NewTask {
            title: "x".into(),
            role: Some("Bad Role".into()),
            ..Default::default()
        })
        .await;
        assert!(e.contains("role name 'Bad Role'"), "{e}");

        let events: Vec<String> = store
            .incident_events(&incident)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(events, vec!["created", "task", "task_delegated", "task_done"]);
        let done_entry = store
            .audit_entries(0, 100, Some("task.done"))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(done_entry.actor, "user:bob");
    });
}
