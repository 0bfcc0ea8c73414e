//! Installs prepared through the API (and so the console) and waiting for an operator's
//! review. The checked plan (the pack unpacked in its temporary folder, who signed it, what it
//! requests) stays here, on the server, under a random id: the review page reads it from
//! here, and an approval or a cancel names only the id, so the client never sends the plan
//! back. Bounded: at most [`MAX_PREPARING`] being prepared and [`MAX_PENDING`] waiting at once,
//! each for [`TTL`]; expired ones are dropped
//! (their folders removed with them) whenever the store is used. Only whoever prepared an
//! install (the same user or token) may see, apply or cancel it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Installs waiting at once, across all users.
pub(crate) const MAX_PENDING: usize = 8;

/// How long a prepared install waits for its review.
pub(crate) const TTL: Duration = Duration::from_secs(15 * 60);

/// Installs being prepared at once (each holds its pack in memory and compiles a component).
pub(crate) const MAX_PREPARING: usize = 2;

/// The server's prepared installs, shared by the API and the console's review page.
pub(crate) type Installs = std::sync::Arc<PendingInstalls<crate::install::InstallPlan>>;

/// Prepared installs (`T`: the plan) by id.
pub(crate) struct PendingInstalls<T> {
    entries: Mutex<HashMap<String, Entry<T>>>,
    max: usize,
    ttl: Duration,
    preparing: tokio::sync::Semaphore,
}

struct Entry<T> {
    owner: String,
    plan: T,
    expires: Instant,
    /// The same moment in Unix milliseconds, to show.
    expires_at_ms: i64,
}

/// Why a plan was not kept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PendingError {
    #[error(
        "{max} installs are already waiting for review; approve or cancel one (each expires {} minutes after it was prepared)",
        ttl.as_secs() / 60
    )]
    Full { max: usize, ttl: Duration },
    #[error("{0} installs are being prepared already; try again in a moment")]
    Busy(usize),
}

impl<T> Default for PendingInstalls<T> {
    fn default() -> Self {
        PendingInstalls::with_bounds(MAX_PENDING, TTL)
    }
}

impl<T> PendingInstalls<T> {
    pub(crate) fn with_bounds(max: usize, ttl: Duration) -> Self {
        PendingInstalls {
            entries: Mutex::new(HashMap::new()),
            max,
            ttl,
            preparing: tokio::sync::Semaphore::new(MAX_PREPARING),
        }
    }

    /// A turn to prepare an install (fetch, check and compile a pack), held until dropped;
    /// refused while [`MAX_PREPARING`] others are at it.
    pub(crate) fn preparing(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PendingError> {
        self.preparing
            .try_acquire()
            .map_err(|_| PendingError::Busy(MAX_PREPARING))
    }

    /// Keep `plan` for `owner`: its id and when it expires (Unix ms).
    pub(crate) fn insert(&self, owner: &str, plan: T) -> Result<(String, i64), PendingError> {
        let mut entries = self.live();
        if entries.len() >= self.max {
            return Err(PendingError::Full {
                max: self.max,
                ttl: self.ttl,
            });
        }
        let id = crate::web_auth::random_token();
        let expires_at_ms = crate::store::now_ms() + self.ttl.as_millis() as i64;
        entries.insert(
            id.clone(),
            Entry {
                owner: owner.to_owned(),
                plan,
                expires: Instant::now() + self.ttl,
                expires_at_ms,
            },
        );
        Ok((id, expires_at_ms))
    }

    /// `f` of the plan `id` and its expiry (Unix ms), if it is `owner`'s and still waiting.
    pub(crate) fn view<R>(&self, id: &str, owner: &str, f: impl FnOnce(&T, i64) -> R) -> Option<R> {
        let entries = self.live();
        entries
            .get(id)
            .filter(|e| e.owner == owner)
            .map(|e| f(&e.plan, e.expires_at_ms))
    }

    /// The plan `id`, taken out (to apply it, or to drop it on cancel), if it is `owner`'s and
    /// still waiting.
    pub(crate) fn take(&self, id: &str, owner: &str) -> Option<T> {
        let mut entries = self.live();
        if entries.get(id)?.owner != owner {
            return None;
        }
        entries.remove(id).map(|e| e.plan)
    }

    /// The entries, the expired ones dropped first.
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        // A panic while the lock was held leaves nothing half-done: every change is one
        // insert or remove.
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, e| e.expires > now);
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_seen_and_taken_only_by_its_owner_and_once() {
        let pending = PendingInstalls::default();
        let (id, expires) = pending.insert("user:olga", "plan".to_owned()).unwrap();
        assert!(expires > crate::store::now_ms());
        assert_eq!(id.len(), 43);
        assert_eq!(pending.view(&id, "user:eve", |p, _| p.clone()), None);
        assert_eq!(pending.take(&id, "user:eve"), None);
        assert_eq!(
            pending.view(&id, "user:olga", |p, _| p.clone()).as_deref(),
            Some("plan")
        );
        assert_eq!(pending.take(&id, "user:olga").as_deref(), Some("plan"));
        assert_eq!(pending.take(&id, "user:olga"), None);
        assert_eq!(pending.take("no-such-id", "user:olga"), None);
    }

    #[test]
    fn it_holds_a_few_and_forgets_them_when_they_expire() {
        let pending = PendingInstalls::with_bounds(2, Duration::from_millis(50));
        let (a, _) = pending.insert("user:olga", 1).unwrap();
        pending.insert("user:olga", 2).unwrap();
        let full = pending.insert("user:olga", 3).unwrap_err();
        assert!(
            full.to_string().contains("2 installs are already waiting"),
            "{full}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while pending.view(&a, "user:olga", |p, _| *p).is_some() {
            assert!(Instant::now() < deadline, "the plan never expired");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(pending.take(&a, "user:olga"), None);
        pending
            .insert("user:olga", 4)
            .expect("room again once they expired");
    }

    #[test]
    fn only_a_few_are_prepared_at_once() {
        let pending = PendingInstalls::<()>::default();
        let turns: Vec<_> = (0..MAX_PREPARING).map(|_| pending.preparing().unwrap()).collect();
        assert_eq!(
            pending.preparing().unwrap_err(),
            PendingError::Busy(MAX_PREPARING)
        );
        drop(turns);
        assert!(pending.preparing().is_ok());
    }
}
