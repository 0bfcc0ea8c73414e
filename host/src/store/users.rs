//! Users and the roles (teams) they belong to. Tasks and incidents are assigned to a user or
//! a role; completing a role's task needs membership. A user may have a password (an argon2id
//! PHC string made by `web_auth::hash_password`) to sign in to the web console; sessions are
//! in `sessions.rs`.

use super::audit::{self, Actor, Change};
use super::{Result, Store, StoreError, now_ms};
use serde::Serialize;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    pub name: String,
    pub email: Option<String>,
    pub roles: Vec<String>,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
}

impl UserRecord {
    /// Whether the user is enabled and a member of `role`.
    pub fn in_role(&self, role: &str) -> bool {
        self.disabled_at.is_none() && self.roles.iter().any(|r| r == role)
    }
}

fn check_names(name: &str, roles: &[String]) -> Result<()> {
    crate::names::check("user", name).map_err(|e| StoreError::Invalid(e.to_string()))?;
    for r in roles {
        crate::names::check("role", r).map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(())
}

async fn roles_of(conn: &mut sqlx::AnyConnection, name: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query_scalar("SELECT role FROM user_roles WHERE user_name = $1 ORDER BY role")
            .bind(name)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// A row of `users` (the roles are read apart).
#[derive(sqlx::FromRow)]
struct UserRow {
    name: String,
    email: Option<String>,
    created_at: i64,
    disabled_at: Option<i64>,
}

impl Store {
    /// Add a user with roles (audited as `user.create`). Returns false if the name is taken.
    pub async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        roles: &[String],
        actor: &Actor,
    ) -> Result<bool> {
        check_names(name, roles)?;
        let mut tx = self.writer.begin().await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO users (name, email, created_at) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(email)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for role in roles {
            sqlx::query("INSERT INTO user_roles (user_name, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(name)
                .bind(role)
                .execute(&mut *tx)
                .await?;
        }
        let change = Change {
            actor,
            action: "user.create",
            target: format!("user:{name}"),
            details: serde_json::json!({ "email": email, "roles": roles }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Add and remove roles of a user (audited as `user.roles`). Returns the roles after,
    /// or `None` if there is no such user.
    pub async fn change_user_roles(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        actor: &Actor,
    ) -> Result<Option<Vec<String>>> {
        check_names(name, add)?;
        let mut tx = self.writer.begin().await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        for role in add {
            sqlx::query("INSERT INTO user_roles (user_name, role) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(name)
                .bind(role)
                .execute(&mut *tx)
                .await?;
        }
        for role in remove {
            sqlx::query("DELETE FROM user_roles WHERE user_name = $1 AND role = $2")
                .bind(name)
                .bind(role)
                .execute(&mut *tx)
                .await?;
        }
        let roles = roles_of(&mut tx, name).await?;
        let change = Change {
            actor,
            action: "user.roles",
            target: format!("user:{name}"),
            details: serde_json::json!({ "added": add, "removed": remove, "roles": roles }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(Some(roles))
    }

    /// Disable or enable a user (audited as `user.disable` / `user.enable`). A disabled user
    /// completes nothing. Returns false if there is no such user.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE users SET disabled_at = $1 WHERE name = $2")
            .bind(disabled.then(now_ms))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if done {
            let change = Change {
                actor,
                action: if disabled { "user.disable" } else { "user.enable" },
                target: format!("user:{name}"),
                details: serde_json::Value::Null,
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Set a user's password hash (a PHC string from `web_auth::hash_password`), audited as
    /// `user.password` without the hash. The user's sessions end: whoever knew the old
    /// password is signed out. Returns false if there is no such user.
    pub async fn set_user_password(&self, name: &str, hash: &str, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(hash)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if done {
            let ended = sqlx::query("DELETE FROM sessions WHERE user_name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let change = Change {
                actor,
                action: "user.password",
                target: format!("user:{name}"),
                details: serde_json::json!({ "sessions_ended": ended }),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The password hash of an enabled user; `None` for an unknown or disabled user, or one
    /// without a password.
    pub async fn user_password_hash(&self, name: &str) -> Result<Option<String>> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM users WHERE name = $1 AND disabled_at IS NULL")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(hash.flatten())
    }

    /// The enabled users in the `admin` role who have a password: who can sign in to the
    /// console and manage it. Empty on a fresh data directory.
    pub async fn admins_who_can_sign_in(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT u.name FROM users u JOIN user_roles r ON r.user_name = u.name \
             WHERE r.role = 'admin' AND u.disabled_at IS NULL AND u.password_hash IS NOT NULL \
             ORDER BY u.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// One user with their roles.
    pub async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let mut conn = self.pool.acquire().await?;
        let row: Option<UserRow> =
            sqlx::query_as("SELECT name, email, created_at, disabled_at FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(UserRow {
            name,
            email,
            created_at,
            disabled_at,
        }) = row
        else {
            return Ok(None);
        };
        let roles = roles_of(&mut conn, &name).await?;
        Ok(Some(UserRecord {
            name,
            email,
            roles,
            created_at,
            disabled_at,
        }))
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(u) = self.user(&name).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// The enabled user with e-mail address `email` (any case), if exactly one has it.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<String>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM users WHERE lower(email) = lower($1) AND disabled_at IS NULL ORDER BY name LIMIT 2",
        )
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        Ok(match names.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        })
    }

    /// The enabled members of `role`, by name.
    pub async fn role_members(&self, role: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT u.name FROM users u JOIN user_roles r ON r.user_name = u.name
             WHERE r.role = $1 AND u.disabled_at IS NULL ORDER BY u.name",
        )
        .bind(role)
        .fetch_all(&self.pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::both_dialects;

    both_dialects!(users_have_roles_and_changes_are_audited, |store| {
        use crate::store::audit::Actor;
        let cli = Actor::cli();
        let roles = vec!["soc".to_owned(), "analyst".to_owned()];
        assert!(
            store
                .create_user("alice", Some("alice@example.com"), &roles, &cli)
                .await
                .unwrap()
        );
        assert!(
            !store.create_user("alice", None, &[], &cli).await.unwrap(),
            "name taken"
        );
        let e = store
            .create_user("Bob", None, &[], &cli)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("user name 'Bob'"), "{e}");
        let e = store
            .create_user("bob", None, &["Bad Role".into()], &cli)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("role name 'Bad Role'"), "{e}");
        assert!(store.user("bob").await.unwrap().is_none(), "nothing half-made");

        let alice = store.user("alice").await.unwrap().unwrap();
        assert_eq!(alice.roles, vec!["analyst", "soc"]);
        assert!(alice.in_role("soc") && !alice.in_role("admin"));
        let after = store
            .change_user_roles("alice", &["admin".into()], &["analyst".into()], &cli)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, vec!["admin", "soc"]);
        assert!(
            store
                .change_user_roles("nobody", &[], &[], &cli)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.role_members("soc").await.unwrap(), vec!["alice"]);
        assert!(store.set_user_disabled("alice", true, &cli).await.unwrap());
        assert!(store.role_members("soc").await.unwrap().is_empty());
        assert!(!store.user("alice").await.unwrap().unwrap().in_role("soc"));

        let actions: Vec<String> = store
            .audit_entries(0, 100, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, vec!["user.create", "user.roles", "user.disable"]);
    });

    both_dialects!(
        passwords_are_set_audited_without_the_hash_and_end_sessions,
        |store| {
            use crate::store::audit::Actor;
            use crate::store::sessions::LoginClient;
            let cli = Actor::cli();
            assert!(store.create_user("alice", None, &[], &cli).await.unwrap());
            assert_eq!(store.user_password_hash("alice").await.unwrap(), None, "none yet");
            assert_eq!(store.user_password_hash("nobody").await.unwrap(), None);
            assert!(
                !store
                    .set_user_password("nobody", "$argon2id$x", &cli)
                    .await
                    .unwrap()
            );

            let now = crate::store::now_ms();
            store
                .create_session("h1", "alice", "c1", now + 60_000, &LoginClient::default())
                .await
                .unwrap();
            assert!(
                store
                    .set_user_password("alice", "$argon2id$v=19$first", &cli)
                    .await
                    .unwrap()
            );
            assert_eq!(
                store.user_password_hash("alice").await.unwrap().as_deref(),
                Some("$argon2id$v=19$first")
            );
            assert!(
                store.session("h1", now).await.unwrap().is_none(),
                "a new password ends the old sessions"
            );

            store.set_user_disabled("alice", true, &cli).await.unwrap();
            assert_eq!(store.user_password_hash("alice").await.unwrap(), None, "disabled");
            store.set_user_disabled("alice", false, &cli).await.unwrap();
            assert!(store.user_password_hash("alice").await.unwrap().is_some());

            let entries = store.audit_entries(0, 100, Some("user.password")).await.unwrap();
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].target, "user:alice");
            let details = entries[0].details.to_string();
            assert!(!details.contains("argon2"), "never the hash: {details}");
            assert_eq!(entries[0].details["sessions_ended"], 1);
        }
    );
}
