//! Setting a data directory up as the demo, idempotently: each bundled connector installed
//! (with what it requests granted) and mocked, the demo users (with new passwords), the lists
//! and the rules, and the token the trickle sends alerts with. What is there already is left
//! as it is; passwords and the token are made afresh at every start.

use super::DemoError;
use super::spec::{DemoSpec, cases_file};
use crate::app::App;
use crate::install::{self, Approval, GrantChoice, Mode, Origin};
use crate::plugin::Manifest;
use crate::store::audit::Actor;
use crate::store::lists::{EntryType, ListKind};
use secrecy::SecretString;
use std::path::Path;

/// The token the trickle sends alerts with (made again at every start).
pub const TRICKLE_TOKEN: &str = "demo-trickle";

/// A demo user and the password it signs in with until the next start.
#[derive(Debug)]
pub struct DemoUser {
    pub name: String,
    pub roles: Vec<String>,
    pub password: SecretString,
}

/// What [`prepare`] did.
#[derive(Debug)]
pub struct Prepared {
    /// The connectors installed and mocked.
    pub plugins: Vec<String>,
    pub users: Vec<DemoUser>,
    /// The intake token of the trickle.
    pub token: SecretString,
    /// What was skipped, and why (a connector not built, a rule whose playbook is missing).
    pub skipped: Vec<String>,
}

/// Set the demo up in `app` from `spec` (and `demo_dir`'s mock cases), with the connectors
/// of `plugins_dir`.
pub async fn prepare(
    app: &App,
    spec: &DemoSpec,
    demo_dir: &Path,
    plugins_dir: &Path,
) -> Result<Prepared, DemoError> {
    let actor = Actor::system();
    let mut skipped = Vec::new();
    let mut plugins = Vec::new();
    for name in &spec.plugins {
        let dir = plugins_dir.join(name);
        if !dir.join(crate::plugin::manifest::MANIFEST_FILE).is_file() {
            skipped.push(format!(
                "connector {name}: not in {} (build it with scripts/build-plugins.sh)",
                plugins_dir.display()
            ));
            continue;
        }
        install_plugin(app, name, &dir, &actor).await?;
        let cases = match cases_file(demo_dir, name) {
            Some(path) => {
                Some(crate::plugin::mock::read_cases_file(&path).map_err(|e| plugin_error(name, e))?)
            }
            None => None,
        };
        app.runtime
            .set_mock(name, cases.as_deref(), true, &actor)
            .await
            .map_err(|e| plugin_error(name, e))?;
        plugins.push(name.clone());
    }

    let mut users = Vec::new();
    for u in &spec.users {
        let created = app
            .store
            .create_user(&u.name, u.email.as_deref(), &u.roles, &actor)
            .await?;
        if !created {
            app.store
                .change_user_roles(&u.name, &u.roles, &[], &actor)
                .await?;
            app.store.set_user_disabled(&u.name, false, &actor).await?;
        }
        let password = SecretString::from(crate::web_auth::random_token());
        let hash = crate::web_auth::hash_password(&password);
        app.store.set_user_password(&u.name, &hash, &actor).await?;
        users.push(DemoUser {
            name: u.name.clone(),
            roles: u.roles.clone(),
            password,
        });
    }

    for l in &spec.lists {
        if app.store.list(&l.name).await?.is_some() {
            continue;
        }
        let setup = |message: String| DemoError::Setup {
            what: format!("list {}", l.name),
            message,
        };
        let kind = ListKind::from_name(&l.kind)
            .ok_or_else(|| setup(format!("kind '{}' is not allow or block", l.kind)))?;
        let entry_type = EntryType::from_name(&l.entry_type)
            .ok_or_else(|| setup(format!("type '{}' is not ip, domain or url", l.entry_type)))?;
        app.store
            .create_list(&l.name, kind, entry_type, &l.description, &actor)
            .await
            .map_err(|e| setup(e.to_string()))?;
    }

    let stored = app.store.rules().await?;
    for rule in &spec.rules {
        if let Err(e) = crate::preprocess::check_rule(rule, &app.playbooks) {
            skipped.push(format!("rule {}: {e}", rule.name));
            continue;
        }
        if stored.iter().any(|s| &s.spec == rule) {
            continue;
        }
        app.store.set_rule(rule, None, &actor).await?;
    }

    app.store.revoke_token(TRICKLE_TOKEN, &actor).await?;
    let (token, hash) = crate::auth::generate();
    app.store
        .create_token(
            TRICKLE_TOKEN,
            &hash,
            &["intake".to_owned()],
            None,
            None,
            None,
            &actor,
        )
        .await?;

    Ok(Prepared {
        plugins,
        users,
        token,
        skipped,
    })
}

/// Install the connector in `dir` with what it requests granted, unless the same version
/// with the same component is installed.
async fn install_plugin(app: &App, name: &str, dir: &Path, actor: &Actor) -> Result<(), DemoError> {
    let manifest = Manifest::load(dir).map_err(|e| plugin_error(name, e))?;
    if let Ok(installed) = app.runtime.get(name)
        && installed.manifest.version == manifest.version
        && same_file(
            &installed.dir.join(&installed.manifest.component),
            &dir.join(&manifest.component),
        )
    {
        return Ok(());
    }
    let plan = install::prepare(app, Origin::Folder(dir.to_owned()), Mode::Install)
        .await
        .map_err(|e| plugin_error(name, e))?;
    let approval = Approval {
        grant: GrantChoice::Requested,
        force: false,
    };
    install::apply(app, plan, &approval, actor)
        .await
        .map_err(|e| plugin_error(name, e))?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn plugin_error(name: &str, e: impl std::fmt::Display) -> DemoError {
    DemoError::Plugin {
        name: name.to_owned(),
        message: e.to_string(),
    }
}
