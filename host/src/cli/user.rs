use crate::app::App;
use crate::config::Config;
use crate::store::StoreError;
use crate::store::audit::Actor;

#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Add a user, with the roles (teams) they belong to.
    #[command(after_help = "\
Example:
  osprey user add alice --email alice@example.com --role soc --role analyst")]
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// A role (team) the user belongs to; repeat for more.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Add or remove roles of a user.
    Roles {
        name: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Disable a user: they complete nothing until enabled again.
    Disable { name: String },
    /// Enable a disabled user.
    Enable { name: String },
    /// List users and their roles.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn refused(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid(message) => anyhow::anyhow!(message),
        other => other.into(),
    }
}

pub async fn run(cmd: UserCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    let cli = Actor::cli();
    match cmd {
        UserCommand::Add { name, email, roles } => {
            if !app
                .store
                .create_user(&name, email.as_deref(), &roles, &cli)
                .await
                .map_err(refused)?
            {
                anyhow::bail!("user '{name}' exists (change their roles with `osprey user roles {name}`)");
            }
            println!("user {name} added");
        }
        UserCommand::Roles { name, add, remove } => {
            let Some(roles) = app
                .store
                .change_user_roles(&name, &add, &remove, &cli)
                .await
                .map_err(refused)?
            else {
                anyhow::bail!("no user '{name}' (see `osprey user list`)");
            };
            println!("{name}: {}", roles.join(" "));
        }
        UserCommand::Disable { name } => {
            if !app.store.set_user_disabled(&name, true, &cli).await? {
                anyhow::bail!("no user '{name}' (see `osprey user list`)");
            }
            println!("user {name} disabled");
        }
        UserCommand::Enable { name } => {
            if !app.store.set_user_disabled(&name, false, &cli).await? {
                anyhow::bail!("no user '{name}' (see `osprey user list`)");
            }
            println!("user {name} enabled");
        }
        UserCommand::List { json } => {
            let users = app.store.users().await?;
            if json {
                for u in &users {
                    println!("{}", serde_json::to_string(u)?);
                }
            } else if users.is_empty() {
                println!("no users (add one with `osprey user add NAME --role ROLE`)");
            }
            if !json {
                for u in &users {
                    println!(
                        "{:<20} {:<30} {}{}",
                        u.name,
                        u.email.as_deref().unwrap_or("-"),
                        u.roles.join(" "),
                        if u.disabled_at.is_some() {
                            "  (disabled)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(0)
}
