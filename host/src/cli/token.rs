use crate::app::App;
use crate::config::Config;
use crate::store::audit::Actor;
use crate::store::now_ms;
use secrecy::ExposeSecret as _;

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it, once. Only its hash is stored.
    #[command(after_help = "\
Examples:
  osprey token create firewall-eu --scope intake
  osprey token create dns-sensor --scope intake --expires 90d
  osprey token create soc-dashboard --role auditor --expires 30d
  osprey token create alice-api --role analyst --user alice

Senders use it as `Authorization: Bearer <token>`:
  curl -H \"Authorization: Bearer $TOKEN\" --data-binary @alerts.ndjson \\
       http://127.0.0.1:8080/api/v1/alerts

Roles (what a person may do; see rbac.rs): admin (everything), operator (plugins, grants,
secrets, rules), engineer (playbooks and runs), analyst (incidents, tasks, indicators,
lists), auditor (read everything, change nothing), requester (start requests).

Scopes (for machines): intake (send alerts to POST /api/v1/alerts), edl (read
/edl/NAME.txt; as basic auth, the user is the token's name and the password the token),
incidents (read and change incidents, tasks and indicators), rules (read and change
pre-processing rules).

With --user, the token acts for that Osprey user (see `osprey user list`): its changes are
audited as the user, and it may complete the tasks assigned to the user or to the user's
roles. Completing a task through the API needs such a token; without --user, changes are
audited as the token.")]
    Create {
        /// A name for the token (who or what uses it), shown in the audit log.
        name: String,
        /// What the token may be used for; repeat for several.
        #[arg(long = "scope", value_name = "SCOPE", required_unless_present = "role")]
        scopes: Vec<String>,
        /// The role the token has: admin, operator, engineer, analyst, auditor or requester.
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        /// Expire after this long (e.g. 30d, 12h); default: never.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// The Osprey user the token acts for (needed to complete tasks through the API).
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// List tokens: name, scopes, the user it acts for, created, expiry, revoked (never the
    /// tokens).
    List,
    /// Revoke a token: a running server refuses it within a second.
    Revoke { name: String },
}

pub async fn run(cmd: TokenCommand, config: Config) -> anyhow::Result<i32> {
    let app = App::open(config).await?;
    match cmd {
        TokenCommand::Create {
            name,
            scopes,
            role,
            expires,
            user,
        } => {
            let role = match role.as_deref() {
                None => None,
                Some(r) => Some(crate::rbac::Role::parse(r).ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown role '{r}'; the roles are: {}",
                        crate::rbac::Role::ALL.map(|r| r.as_str()).join(", ")
                    )
                })?),
            };
            crate::names::check("token", &name).map_err(anyhow::Error::msg)?;
            for s in &scopes {
                if !crate::auth::SCOPES.contains(&s.as_str()) {
                    anyhow::bail!(
                        "unknown scope '{s}'; the scopes are: {}",
                        crate::auth::SCOPES.join(", ")
                    );
                }
            }
            let expires_at = expires.map(|d| now_ms() + d.as_millis() as i64);
            let (token, hash) = crate::auth::generate();
            if !app
                .store
                .create_token(
                    &name,
                    &hash,
                    &scopes,
                    role,
                    expires_at,
                    user.as_deref(),
                    &Actor::cli(),
                )
                .await?
            {
                anyhow::bail!("a token named '{name}' exists already; revoke it or choose another name");
            }
            eprintln!("token '{name}' created; it is shown only this once:");
            println!("{}", token.expose_secret());
        }
        TokenCommand::List => {
            let tokens = app.store.tokens().await?;
            if tokens.is_empty() {
                println!("no tokens; create one with `osprey token create NAME --scope intake`");
            }
            for t in tokens {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(at), _) => format!("revoked {}", super::render::time(at)),
                    (None, Some(at)) if at <= now_ms() => format!("expired {}", super::render::time(at)),
                    (None, Some(at)) => format!("expires {}", super::render::time(at)),
                    (None, None) => "never expires".into(),
                };
                let user = t
                    .user
                    .as_deref()
                    .map(|u| format!("user {u}  "))
                    .unwrap_or_default();
                let what = match (t.role, t.scopes.is_empty()) {
                    (Some(r), true) => format!("role {r}"),
                    (Some(r), false) => format!("role {r},{}", t.scopes.join(",")),
                    (None, _) => t.scopes.join(","),
                };
                println!(
                    "{:<24} {:<16} {user}created {}  {state}",
                    t.name,
                    what,
                    super::render::time(t.created_at)
                );
            }
        }
        TokenCommand::Revoke { name } => {
            if !app.store.revoke_token(&name, &Actor::cli()).await? {
                anyhow::bail!("no live token named '{name}' (see `osprey token list`)");
            }
            println!("token '{name}' revoked");
        }
    }
    Ok(0)
}
