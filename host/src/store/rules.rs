//! Pre-processing rules, in order. Each change is audited.

use super::audit::{self, Actor, Change};
use super::{Result, Store, StoreError, now_ms};
use crate::preprocess::spec::RuleSpec;
use serde::Serialize;

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RuleRecord {
    /// 1 is tried first.
    pub position: i64,
    pub spec: RuleSpec,
    pub updated_at: i64,
}

/// A row of `rules`: its spec as stored JSON.
#[derive(sqlx::FromRow)]
struct RuleRow {
    position: i64,
    spec: String,
    updated_at: i64,
}

impl Store {
    /// The rules, in the order they are tried.
    pub async fn rules(&self) -> Result<Vec<RuleRecord>> {
        let rows: Vec<RuleRow> =
            sqlx::query_as("SELECT position, spec, updated_at FROM rules ORDER BY position, name")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(
                |RuleRow {
                     position,
                     spec,
                     updated_at,
                 }| {
                    let spec =
                        serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("rule: {e}")))?;
                    Ok(RuleRecord {
                        position,
                        spec,
                        updated_at,
                    })
                },
            )
            .collect()
    }

    /// Add `spec`, or replace the rule of that name, at `position` (1 = first; `None` = last
    /// for a new rule, unchanged for a replaced one). The others move to make room. Audited
    /// as `rule.set` with the whole rule. The caller validates the spec.
    pub async fn set_rule(&self, spec: &RuleSpec, position: Option<i64>, actor: &Actor) -> Result<i64> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM rules ORDER BY position, name")
            .fetch_all(&mut *tx)
            .await?;
        let mut order: Vec<String> = names.iter().filter(|n| **n != spec.name).cloned().collect();
        let current = names.iter().position(|n| *n == spec.name);
        let at = match (position, current) {
            (Some(p), _) => (p.max(1) as usize - 1).min(order.len()),
            (None, Some(i)) => i.min(order.len()),
            (None, None) => order.len(),
        };
        order.insert(at, spec.name.clone());
        let json = serde_json::to_string(spec).expect("a rule serialises");
        sqlx::query(
            "INSERT INTO rules (name, position, enabled, spec, created_at, updated_at) VALUES ($1, 0, $2, $3, $4, $4)
             ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, spec = excluded.spec, updated_at = excluded.updated_at",
        )
        .bind(&spec.name)
        .bind(i32::from(spec.enabled))
        .bind(&json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        number(&mut tx, &order).await?;
        let change = Change {
            actor,
            action: "rule.set",
            target: format!("rule:{}", spec.name),
            details: serde_json::json!({ "position": at + 1, "rule": spec }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(at as i64 + 1)
    }

    /// Remove a rule (audited as `rule.remove`); returns false if there was none.
    pub async fn remove_rule(&self, name: &str, actor: &Actor) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query("DELETE FROM rules WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if removed {
            let order: Vec<String> = sqlx::query_scalar("SELECT name FROM rules ORDER BY position, name")
                .fetch_all(&mut *tx)
                .await?;
            number(&mut tx, &order).await?;
            let change = Change {
                actor,
                action: "rule.remove",
                target: format!("rule:{name}"),
                details: serde_json::json!({}),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }
}

/// Give the rules named in `order` the positions 1, 2, 3, ...
async fn number(conn: &mut sqlx::AnyConnection, order: &[String]) -> Result<()> {
    for (i, name) in order.iter().enumerate() {
        sqlx::query("UPDATE rules SET position = $1 WHERE name = $2")
            .bind(i as i64 + 1)
            .bind(name)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    fn spec(name: &str) -> RuleSpec {
        toml::from_str(&format!("name = \"{name}\"\nmatch = 'true'\naction = \"drop\"")).unwrap()
    }

    both_dialects!(rules_keep_their_order_and_are_audited, |store| {
        let who = Actor::system();
        store.set_rule(&spec("a"), None, &who).await.unwrap();
        store.set_rule(&spec("b"), None, &who).await.unwrap();
        assert_eq!(store.set_rule(&spec("c"), Some(1), &who).await.unwrap(), 1);
        let names = |rules: Vec<RuleRecord>| rules.into_iter().map(|r| r.spec.name).collect::<Vec<_>>();
        assert_eq!(names(store.rules().await.unwrap()), ["c", "a", "b"]);
        // Replacing keeps the place unless a new one is given.
        let mut b = spec("b");
        b.enabled = false;
        store.set_rule(&b, None, &who).await.unwrap();
        assert_eq!(names(store.rules().await.unwrap()), ["c", "a", "b"]);
        assert!(!store.rules().await.unwrap()[2].spec.enabled);
        store.set_rule(&spec("b"), Some(99), &who).await.unwrap();
        assert!(store.remove_rule("c", &who).await.unwrap());
        assert!(!store.remove_rule("c", &who).await.unwrap());
        assert_eq!(names(store.rules().await.unwrap()), ["a", "b"]);
        assert_eq!(store.rules().await.unwrap()[0].position, 1);
        let audited = store.audit_entries(0, 100, Some("rule.")).await.unwrap();
        assert_eq!(audited.len(), 6);
        assert_eq!(audited[5].action, "rule.remove");
    });
}
