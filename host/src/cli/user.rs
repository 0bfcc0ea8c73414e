use crate::app::App;
use crate::config::Config;
use crate::store::StoreError;
use crate::store::audit::Actor;
use secrecy::{ExposeSecret as _, SecretString};
use std::io::{IsTerminal as _, Read as _};

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
    /// Set a user's password for signing in to the web console. The password is read from
    /// stdin (never from the command line, where it would land in shell history and `ps`);
    /// on a terminal you are prompted twice.
    #[command(after_help = "\
Examples:
  osprey user password alice                       prompts twice
  printf '%s' \"$ALICE_PASSWORD\" | osprey user password alice

One trailing newline is removed. The password needs at least 12 characters. It is stored as an
argon2id hash, the change is audited as `user.password`, and the user's open sessions end.")]
    Password { name: String },
    /// Make sure an administrator can sign in to the console: when no enabled user in the
    /// `admin` role has a password, give the user `admin` (made if missing) a generated
    /// password and print it, once. Otherwise change nothing. `scripts/run.sh` runs this
    /// before it starts the server.
    #[command(after_help = "\
Example:
  osprey user first-admin        on a fresh data directory: prints the sign-in address, the
                                 user `admin` and its password (shown this once)

The change is audited (`user.create`, `user.password`). Change the password afterwards with
`osprey user password admin`.")]
    FirstAdmin,
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
    let sign_in_at = match &config.humans.public_url {
        Some(url) => format!("{}/login", url.trim_end_matches('/')),
        None => format!("http://{}/login", config.listen),
    };
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
        UserCommand::Password { name } => {
            if app.store.user(&name).await?.is_none() {
                anyhow::bail!("no user '{name}' (see `osprey user list`)");
            }
            let password = read_password(&name)?;
            crate::web_auth::check_new_password(&password)?;
            let hash = crate::web_auth::hash_password(&password);
            if !app.store.set_user_password(&name, &hash, &cli).await? {
                anyhow::bail!("no user '{name}' (see `osprey user list`)");
            }
            println!("password of user {name} set");
        }
        UserCommand::FirstAdmin => match crate::first_run::ensure_admin(&app.store, &cli).await? {
            crate::first_run::FirstAdmin::Exists(admins) => {
                println!("administrators who can sign in: {}", admins.join(", "));
            }
            crate::first_run::FirstAdmin::Made { name, password } => {
                println!("First sign-in: {sign_in_at}");
                println!("  user:     {name}");
                println!("  password: {}", password.expose_secret());
                println!("This password is shown once. Change it with `osprey user password {name}`.");
            }
        },
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

/// A new password: prompted twice on a terminal, else all of stdin less one trailing newline.
fn read_password(name: &str) -> anyhow::Result<SecretString> {
    if std::io::stdin().is_terminal() {
        let first = SecretString::from(rpassword::prompt_password(format!("new password for {name}: "))?);
        crate::web_auth::check_new_password(&first)?;
        let again = SecretString::from(rpassword::prompt_password("again: ")?);
        if first.expose_secret() != again.expose_secret() {
            anyhow::bail!("the two passwords differ; nothing was changed");
        }
        return Ok(first);
    }
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value)?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    let value = SecretString::from(value);
    if value.expose_secret().is_empty() {
        anyhow::bail!(
            "no password on stdin; pipe it, for example: printf '%s' \"$PASSWORD\" | osprey user password {name}"
        );
    }
    Ok(value)
}
