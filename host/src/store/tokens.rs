//! API tokens: name, scopes, expiry, revocation. The store keeps only a hash of each token.

use super::audit::{self, Actor, Change};
use super::{Result, Store, StoreError, now_ms};
use serde::Serialize;

/// A token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRecord {
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The Osprey user the token acts for (API calls are audited as that user, and may
    /// complete that user's tasks), if any.
    pub user: Option<String>,
    /// Its role (see `rbac.rs`), if it has one.
    pub role: Option<crate::rbac::Role>,
}

impl TokenRecord {
    /// Whether the token may be used at `now` for `permission`, by its role or its scopes.
    pub fn allows(&self, permission: crate::rbac::Permission, now: i64) -> bool {
        self.revoked_at.is_none()
            && self.expires_at.is_none_or(|t| now < t)
            && crate::rbac::allowed(self.role.as_slice(), &self.scopes, permission)
    }
}

/// An `api_tokens` row, by column name.
#[derive(sqlx::FromRow)]
struct TokenRow {
    name: String,
    scopes: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    user_name: Option<String>,
    role: Option<String>,
}

const TOKEN_COLUMNS: &str = "name, scopes, created_at, expires_at, revoked_at, user_name, role";

fn record(
    TokenRow {
        name,
        scopes,
        created_at,
        expires_at,
        revoked_at,
        user_name: user,
        role,
    }: TokenRow,
) -> TokenRecord {
    TokenRecord {
        name,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at,
        expires_at,
        revoked_at,
        user,
        // A role this version does not know allows nothing.
        role: role.as_deref().and_then(crate::rbac::Role::parse),
    }
}

/// Whether the insert failed on a unique constraint (the name is taken).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    /// Store a new token by the hash of its value (audited as `token.create`), with a role
    /// and/or scopes, acting for `user` if given (who must exist, and have the token's role:
    /// a token never does more than its user; `StoreError::Invalid` otherwise). Returns false
    /// if the name is taken.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        name: &str,
        token_hash: &str,
        scopes: &[String],
        role: Option<crate::rbac::Role>,
        expires_at: Option<i64>,
        user: Option<&str>,
        actor: &Actor,
    ) -> Result<bool> {
        if let Some(user) = user {
            let Some(record) = self.user(user).await? else {
                return Err(StoreError::Invalid(format!(
                    "no user '{user}' (see `osprey user list`)"
                )));
            };
            if let Some(role) = role
                && !record.roles.iter().any(|r| r == role.as_str())
            {
                return Err(StoreError::Invalid(format!(
                    "user '{user}' does not have the role '{role}'; a token acting for them cannot either"
                )));
            }
        }
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, scopes, created_at, expires_at, user_name, role)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(name)
        .bind(token_hash)
        .bind(scopes.join(" "))
        .bind(now_ms())
        .bind(expires_at)
        .bind(user)
        .bind(role.map(|r| r.as_str()))
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(false),
            other => other?,
        };
        let change = Change {
            actor,
            action: "token.create",
            target: format!("token:{name}"),
            details: serde_json::json!({ "scopes": scopes, "role": role, "expires_at": expires_at, "user": user }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revoke a token (audited as `token.revoke`); returns false if there is no such live token.
    pub async fn revoke_token(&self, name: &str, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done =
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(name)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
        if done {
            let change = Change {
                actor,
                action: "token.revoke",
                target: format!("token:{name}"),
                details: serde_json::json!({}),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// The token whose value hashes to `token_hash`, whatever its state.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row: Option<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(record))
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name");
        let rows: Vec<TokenRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(record).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::Permission;
    use crate::store::testing::both_dialects;

    both_dialects!(tokens_are_created_found_by_hash_and_revoked, |store| {
        let who = Actor::system();
        let scopes = vec!["intake".to_string()];
        assert!(
            store
                .create_token("fw", "h1", &scopes, None, None, None, &who)
                .await
                .unwrap()
        );
        assert!(
            !store
                .create_token("fw", "h2", &scopes, None, None, None, &who)
                .await
                .unwrap(),
            "name taken"
        );
        let t = store.token_by_hash("h1").await.unwrap().unwrap();
        assert_eq!(t.name, "fw");
        assert!(t.allows(Permission::AlertsWrite, now_ms()));
        assert!(!t.allows(Permission::IncidentsRead, now_ms()));
        assert!(store.token_by_hash("h2").await.unwrap().is_none());
        assert!(store.revoke_token("fw", &who).await.unwrap());
        assert!(!store.revoke_token("fw", &who).await.unwrap());
        assert!(
            !store
                .token_by_hash("h1")
                .await
                .unwrap()
                .unwrap()
                .allows(Permission::AlertsWrite, now_ms())
        );
        store
            .create_token("old", "h3", &scopes, None, Some(now_ms() - 1), None, &who)
            .await
            .unwrap();
        assert!(
            !store
                .token_by_hash("h3")
                .await
                .unwrap()
                .unwrap()
                .allows(Permission::AlertsWrite, now_ms())
        );
        let actions: Vec<String> = store
            .audit_entries(0, 10, Some("token."))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        assert_eq!(actions, ["token.create", "token.revoke", "token.create"]);
    });

    both_dialects!(a_token_acts_for_an_existing_user, |store| {
        let who = Actor::system();
        let scopes = vec!["incidents".to_string()];
        let e = store
            .create_token("ghost", "h1", &scopes, None, None, Some("nobody"), &who)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("no user 'nobody'")),
            "{e}"
        );
        assert!(
            store.token_by_hash("h1").await.unwrap().is_none(),
            "nothing stored"
        );
        store.create_user("alice", None, &[], &who).await.unwrap();
        assert!(
            store
                .create_token("alice-api", "h2", &scopes, None, None, Some("alice"), &who)
                .await
                .unwrap()
        );
        let t = store.token_by_hash("h2").await.unwrap().unwrap();
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(store.tokens().await.unwrap()[0].user.as_deref(), Some("alice"));
        let created = store.audit_entries(0, 10, Some("token.")).await.unwrap();
        assert_eq!(created[0].details["user"], "alice");
    });
}
