//! Sessions of users signed in to the web console. The cookie holds a random token; only its
//! SHA-256 (`web_auth::session_token_hash`) is stored here, with the CSRF token every form of
//! the session must carry. A session counts only while it has not expired and its user is
//! not disabled. Signing in and out are audited (`user.login`, `user.logout`), and so are
//! failed sign-ins (`user.login_failed`); expired sessions are removed without an entry.

use super::audit::{self, Actor, Change};
use super::{Result, Store};

/// A live session, as [`Store::session`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub user_name: String,
    pub csrf: String,
    /// Unix ms.
    pub expires_at: i64,
}

/// Where a sign-in came from, for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginClient {
    /// The peer's IP address, or "unknown".
    pub remote: String,
    /// The `User-Agent` header, shortened; empty if none.
    pub user_agent: String,
}

/// Why a sign-in was refused, in its `user.login_failed` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFailure {
    /// A wrong user name or password.
    WrongPassword,
    /// The form was posted from another site (login CSRF), so nothing was checked.
    CrossSite,
}

impl LoginClient {
    fn details(&self) -> serde_json::Value {
        serde_json::json!({ "remote": self.remote, "user_agent": self.user_agent })
    }
}

impl Store {
    /// Start a session for `user` (audited as `user.login` by the user, with where they came
    /// from). `token_hash` is the SHA-256 of the cookie's token, never the token.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user: &str,
        csrf: &str,
        expires_at: i64,
        client: &LoginClient,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user)
        .bind(csrf)
        .bind(super::now_ms())
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        let actor = Actor::user(user);
        let change = Change {
            actor: &actor,
            action: "user.login",
            target: format!("user:{user}"),
            details: client.details(),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record a refused sign-in as `user.login_failed` (by `system`: nobody proved who they
    /// were), with the user name tried, where it came from and why (`reason`). Never the
    /// password.
    pub async fn record_failed_login(
        &self,
        user: &str,
        client: &LoginClient,
        reason: LoginFailure,
    ) -> Result<()> {
        let mut details = client.details();
        details["reason"] = serde_json::json!(reason);
        let change = Change {
            actor: &Actor::system(),
            action: "user.login_failed",
            target: format!("user:{user}"),
            details,
        };
        self.audit(&change).await?;
        Ok(())
    }

    /// The session with this token hash, if it has not expired by `now` (Unix ms) and its
    /// user exists and is not disabled.
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        Ok(sqlx::query_as(
            "SELECT s.user_name, s.csrf, s.expires_at FROM sessions s
             JOIN users u ON u.name = s.user_name
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// End a session (audited as `user.logout` by its user). Returns false if there was none.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let user: Option<String> =
            sqlx::query_scalar("DELETE FROM sessions WHERE token_hash = $1 RETURNING user_name")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(user) = user else {
            return Ok(false);
        };
        let actor = Actor::user(&user);
        let change = Change {
            actor: &actor,
            action: "user.logout",
            target: format!("user:{user}"),
            details: serde_json::Value::Null,
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Remove sessions expired by `now` (Unix ms); returns how many. Not audited: an expired
    /// session already counted for nothing.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::both_dialects;

    both_dialects!(sessions_live_until_expiry_logout_or_disable, |store| {
        use crate::store::audit::Actor;
        use crate::store::sessions::{LoginClient, SessionRecord};
        let cli = Actor::cli();
        assert!(store.create_user("alice", None, &[], &cli).await.unwrap());
        assert!(store.create_user("bob", None, &[], &cli).await.unwrap());
        let client = LoginClient {
            remote: "192.0.2.7".into(),
            user_agent: "test-agent".into(),
        };
        let now = crate::store::now_ms();
        store
            .create_session("h-alice", "alice", "csrf-a", now + 60_000, &client)
            .await
            .unwrap();
        store
            .create_session("h-old", "alice", "csrf-o", now - 1, &client)
            .await
            .unwrap();
        store
            .create_session("h-bob", "bob", "csrf-b", now + 60_000, &client)
            .await
            .unwrap();

        assert_eq!(
            store.session("h-alice", now).await.unwrap(),
            Some(SessionRecord {
                user_name: "alice".into(),
                csrf: "csrf-a".into(),
                expires_at: now + 60_000,
            })
        );
        assert_eq!(store.session("h-old", now).await.unwrap(), None, "expired");
        assert_eq!(store.session("nope", now).await.unwrap(), None);
        assert_eq!(
            store.session("h-alice", now + 60_000).await.unwrap(),
            None,
            "expired at its expiry"
        );

        // A disabled user's sessions count for nothing, and again once enabled.
        store.set_user_disabled("bob", true, &cli).await.unwrap();
        assert_eq!(store.session("h-bob", now).await.unwrap(), None);
        store.set_user_disabled("bob", false, &cli).await.unwrap();
        assert!(store.session("h-bob", now).await.unwrap().is_some());

        assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 1);
        assert!(store.delete_session("h-alice").await.unwrap());
        assert!(!store.delete_session("h-alice").await.unwrap(), "once");
        assert_eq!(store.session("h-alice", now).await.unwrap(), None);

        store
            .record_failed_login(
                "mallory",
                &client,
                crate::store::sessions::LoginFailure::WrongPassword,
            )
            .await
            .unwrap();
        let entries = store.audit_entries(0, 100, Some("user.log")).await.unwrap();
        let seen: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|e| (e.action.as_str(), e.actor.as_str(), e.target.as_str()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("user.login", "user:alice", "user:alice"),
                ("user.login", "user:alice", "user:alice"),
                ("user.login", "user:bob", "user:bob"),
                ("user.logout", "user:alice", "user:alice"),
                ("user.login_failed", "system", "user:mallory"),
            ]
        );
        assert_eq!(entries[0].details["remote"], "192.0.2.7");
        assert_eq!(entries[0].details["user_agent"], "test-agent");
        assert_eq!(entries[4].details["reason"], "wrong_password");
        assert_eq!(entries[4].details["remote"], "192.0.2.7");
    });
}
