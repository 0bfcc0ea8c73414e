use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;
use crate::store::tasks::{TaskError, TaskRecord, TaskStatus};

#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// List tasks, newest first.
    #[command(after_help = "\
Examples:
  osprey task list --for alice          what alice may complete (hers and her roles')
  osprey task list --incident i0190...  the tasks of one incident")]
    List {
        /// open, done or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        incident: Option<String>,
        /// Only tasks this user may complete (assigned to them or to one of their roles).
        #[arg(long = "for", value_name = "USER")]
        for_user: Option<String>,
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Create a task for a user or a role, with a due time (its SLA).
    #[command(after_help = "\
Example:
  osprey task add --incident i0190... --title 'Call the owner of pc-17' --role soc --due 30m")]
    Add {
        #[arg(long)]
        title: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        incident: Option<String>,
        /// Assign it to this user...
        #[arg(long)]
        user: Option<String>,
        /// ...and/or to this role (any member may complete it).
        #[arg(long)]
        role: Option<String>,
        /// Time to complete it, such as "4h"; default `[incidents] task_due`.
        #[arg(long)]
        due: Option<String>,
    },
    /// Complete a task as a user: only its assignee or a member of its role may.
    Done {
        id: String,
        /// The user completing it.
        #[arg(long = "as", value_name = "USER")]
        user: String,
        #[arg(long)]
        comment: Option<String>,
    },
    /// Hand a task to another user or role (delegation), optionally with a new due time.
    Delegate {
        id: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        due: Option<String>,
    },
    /// Cancel an open task.
    Cancel {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// "user alice", "role soc", or "user alice or role soc".
pub fn assigned_to(t: &TaskRecord) -> String {
    match (&t.assignee, &t.role) {
        (Some(u), Some(r)) => format!("user {u} or role {r}"),
        (Some(u), None) => format!("user {u}"),
        (None, Some(r)) => format!("role {r}"),
        (None, None) => "nobody".into(),
    }
}

fn refused(e: TaskError) -> anyhow::Error {
    match e {
        TaskError::Store(e) => e.into(),
        other => anyhow::anyhow!(other.to_string()),
    }
}

fn print(t: &TaskRecord) {
    println!(
        "{}  {}  {:<9} {}  ({}){}",
        t.id,
        super::render::time(t.created_at),
        t.status,
        t.title,
        assigned_to(t),
        t.incident_id
            .as_ref()
            .map(|i| format!("  incident {i}"))
            .unwrap_or_default()
    );
}

pub async fn run(cmd: TaskCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    let cli = Actor::cli();
    match cmd {
        TaskCommand::List {
            status,
            incident,
            for_user,
            limit,
            json,
        } => {
            let status = status
                .as_deref()
                .map(|s| {
                    TaskStatus::parse(s).ok_or_else(|| {
                        anyhow::anyhow!("'{s}' is not a task status: {}", TaskStatus::NAMES.join(", "))
                    })
                })
                .transpose()?;
            let tasks = app
                .store
                .tasks(status, incident.as_deref(), for_user.as_deref(), limit)
                .await?;
            if json {
                for t in &tasks {
                    println!("{}", serde_json::to_string(t)?);
                }
            } else if tasks.is_empty() {
                println!("no tasks");
            } else {
                tasks.iter().for_each(print);
            }
        }
        TaskCommand::Add {
            title,
            description,
            incident,
            user,
            role,
            due,
        } => {
            let spec = crate::cases::TaskSpec {
                title,
                description,
                user,
                role,
                due,
                incident,
            };
            let new = spec.into_new(None).map_err(|e| anyhow::anyhow!(e))?;
            let task = app.store.create_task(&new, &cli, None).await.map_err(refused)?;
            println!("{}", task.id);
        }
        TaskCommand::Done { id, user, comment } => {
            let task = app
                .store
                .complete_task(&id, &user, comment.as_deref())
                .await
                .map_err(refused)?;
            println!("task {} done by {user}", task.id);
        }
        TaskCommand::Delegate { id, user, role, due } => {
            let due_ms = due
                .as_deref()
                .map(crate::cases::duration_ms)
                .transpose()
                .map_err(|e| anyhow::anyhow!(e))?;
            let task = app
                .store
                .delegate_task(&id, user.as_deref(), role.as_deref(), due_ms, &cli)
                .await
                .map_err(refused)?;
            println!("task {} is now for {}", task.id, assigned_to(&task));
        }
        TaskCommand::Cancel { id, reason } => {
            app.store.cancel_task(&id, &reason, &cli).await.map_err(refused)?;
            println!("task {id} cancelled");
        }
    }
    Ok(0)
}
