//! The first run: a server nobody can sign in to is no use, so `osprey user first-admin`
//! (which `scripts/run.sh` calls before it starts the server) makes sure an administrator can
//! sign in. When no enabled `admin` user has a password, it gives the user `admin` (created
//! if missing, with the `admin` role) a generated password, which the caller prints once, as
//! Jenkins and Grafana do. Otherwise it changes nothing.

use crate::store::audit::Actor;
use crate::store::{Store, StoreError};
use secrecy::SecretString;

/// The user the first run makes.
pub const FIRST_ADMIN: &str = "admin";

/// What [`ensure_admin`] found or did.
#[derive(Debug)]
pub enum FirstAdmin {
    /// These administrators can sign in already; nothing changed.
    Exists(Vec<String>),
    /// `admin` was created (or had no password, or lacked the role) and now signs in with
    /// this password, shown once.
    Made { name: String, password: SecretString },
}

/// Why the first administrator could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FirstAdminError {
    #[error(
        "the user '{FIRST_ADMIN}' exists but is disabled, and no other administrator can sign in; \
         enable it (`osprey user enable {FIRST_ADMIN}`) or give another user the admin role and a \
         password (`osprey user roles NAME --add admin`, `osprey user password NAME`)"
    )]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Make sure an administrator can sign in (see the module's documentation).
pub async fn ensure_admin(store: &Store, actor: &Actor) -> Result<FirstAdmin, FirstAdminError> {
    let admins = store.admins_who_can_sign_in().await?;
    if !admins.is_empty() {
        return Ok(FirstAdmin::Exists(admins));
    }
    let admin_role = vec!["admin".to_owned()];
    match store.user(FIRST_ADMIN).await? {
        None => {
            // Another node may create it between the read and this write: then it is theirs,
            // and their password is the one printed.
            if !store.create_user(FIRST_ADMIN, None, &admin_role, actor).await? {
                return Ok(FirstAdmin::Exists(store.admins_who_can_sign_in().await?));
            }
        }
        Some(user) if user.disabled_at.is_some() => return Err(FirstAdminError::Disabled),
        Some(user) if !user.roles.iter().any(|r| r == "admin") => {
            store
                .change_user_roles(FIRST_ADMIN, &admin_role, &[], actor)
                .await?;
        }
        Some(_) => {}
    }
    let password = SecretString::from(crate::web_auth::random_token());
    let hash = crate::web_auth::hash_password(&password);
    store.set_user_password(FIRST_ADMIN, &hash, actor).await?;
    Ok(FirstAdmin::Made {
        name: FIRST_ADMIN.to_owned(),
        password,
    })
}
