use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;
use secrecy::SecretString;
use std::io::{IsTerminal, Read};

#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Set a secret of a plugin. The value is read from stdin (never from the command line,
    /// where it would land in shell history and `ps`); on a terminal you are prompted.
    #[command(after_help = "\
Examples:
  osprey secret set ipinfo token                 prompts for the value
  echo -n \"$IPINFO_TOKEN\" | osprey secret set ipinfo token
  osprey secret set ipinfo token < token.txt

One trailing newline is removed. The value is sealed with the master key before it is stored,
and the plugin can read it only if its grant names it (`osprey plugin grant NAME --secret NAME`).

The server's own secrets live under the name `osprey`, which no plugin may take:
  osprey secret set osprey smtp-password          the password named by mail.password_secret")]
    Set {
        /// The plugin the secret belongs to.
        plugin: String,
        /// The secret's name, as the plugin asks for it.
        name: String,
    },
    /// List the names of a plugin's secrets and when each was set (never the values).
    List { plugin: String },
    /// Delete a secret.
    Delete { plugin: String, name: String },
}

pub async fn run(cmd: SecretCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        SecretCommand::Set { plugin, name } => {
            crate::plugin::manifest::validate_name(&plugin).map_err(anyhow::Error::msg)?;
            crate::app::validate_secret_name(&name)?;
            let value = read_value(&plugin, &name)?;
            app.set_secret(&plugin, &name, &value, &Actor::cli()).await?;
            println!("secret '{name}' of plugin '{plugin}' is set");
            let grant = app.grant(&plugin).await?;
            if plugin == crate::vault::SERVER_SECRET_OWNER {
                println!(
                    "(a secret of the server itself, such as the SMTP password; no plugin can be granted it)"
                );
            } else if !grant.has_secret(&name) {
                println!(
                    "note: plugin '{plugin}' is not granted this secret yet; grant it with `osprey plugin grant {plugin} --secret {name}`"
                );
            }
        }
        SecretCommand::List { plugin } => {
            let names = app.store.secret_names(&plugin).await?;
            if names.is_empty() {
                println!("plugin '{plugin}' has no secrets set");
            }
            let grant = app.grant(&plugin).await?;
            for (name, at) in names {
                let granted = if grant.has_secret(&name) {
                    "granted"
                } else {
                    "not granted"
                };
                println!("{name:<24} set {}  ({granted})", super::render::time(at));
            }
        }
        SecretCommand::Delete { plugin, name } => {
            if app.store.delete_secret(&plugin, &name, &Actor::cli()).await? {
                println!("secret '{name}' of plugin '{plugin}' deleted");
            } else {
                anyhow::bail!("plugin '{plugin}' has no secret named '{name}'");
            }
        }
    }
    Ok(0)
}

fn read_value(plugin: &str, name: &str) -> anyhow::Result<SecretString> {
    let mut value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("value of secret '{name}' for plugin '{plugin}': "))?
    } else {
        let mut v = String::new();
        std::io::stdin().read_to_string(&mut v)?;
        v
    };
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        anyhow::bail!(
            "the secret value is empty; pipe it on stdin, for example: echo -n \"$VALUE\" | osprey secret set {plugin} {name}"
        );
    }
    Ok(SecretString::from(value))
}
