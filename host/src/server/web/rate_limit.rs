//! The limiter of failed sign-ins, in memory, per server process: after [`MAX_FAILURES`]
//! failures for one user name, or from one remote address (an IPv6 address counts by its
//! /64), within [`FAILURE_WINDOW`], further attempts for that key are refused until the
//! oldest failure leaves the window, whether the password is right or not. A sign-in is
//! counted as a failure when it starts and forgiven if it succeeds, so parallel guesses
//! cannot slip past the count; a success also clears its user name's count.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failed sign-ins for one user name or one address before further attempts are refused.
pub(super) const MAX_FAILURES: usize = 5;
/// How long a failed sign-in counts.
pub(super) const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most user names and addresses the limiter remembers; past it, the one whose last
/// failure is oldest is forgotten.
const MAX_TRACKED_KEYS: usize = 100_000;

/// The limiter's key for an address: IPv4 whole, IPv6 by its /64 (what one site usually has).
pub(super) fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("addr:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "addr:unknown".to_owned(),
    }
}

/// Failed sign-ins of the last [`FAILURE_WINDOW`] by key (`user:NAME`, `addr:IP`), oldest
/// first.
#[derive(Debug, Default)]
pub(super) struct FailureLimiter {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl FailureLimiter {
    /// Start an attempt at `now`: refused with how long to wait if any key has
    /// [`MAX_FAILURES`] in the window; else counted as a failure of every key until
    /// [`forgive`](Self::forgive)n.
    pub(super) fn attempt(&mut self, keys: &[String], now: Instant) -> Result<(), Duration> {
        let mut wait = Duration::ZERO;
        for key in keys {
            if let Some(times) = self.failures.get_mut(key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= MAX_FAILURES {
                    // Attempts open again when all but MAX_FAILURES - 1 have left the window.
                    let unlocks = times[times.len() - MAX_FAILURES] + FAILURE_WINDOW;
                    wait = wait.max(unlocks.saturating_duration_since(now));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        if self.failures.len() + keys.len() > MAX_TRACKED_KEYS {
            self.failures
                .retain(|_, t| t.back().is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW));
            while self.failures.len() + keys.len() > MAX_TRACKED_KEYS {
                let Some(stalest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                self.failures.remove(&stalest);
            }
        }
        for key in keys {
            self.failures.entry(key.clone()).or_default().push_back(now);
        }
        Ok(())
    }

    /// Take back the failure counted at `at` for `keys` (the attempt succeeded, or never
    /// got to check the password). With `success`, the first key (the user name) starts
    /// over.
    pub(super) fn forgive(&mut self, keys: &[String], at: Instant, success: bool) {
        for (i, key) in keys.iter().enumerate() {
            let Some(times) = self.failures.get_mut(key) else {
                continue;
            };
            if success && i == 0 {
                times.clear();
            } else if let Some(pos) = times.iter().rposition(|t| *t == at) {
                times.remove(pos);
            }
            if times.is_empty() {
                self.failures.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(Some(a)), address_key(Some(b)));
        assert_eq!(address_key(Some("192.0.2.1".parse().unwrap())), "addr:192.0.2.1");
    }

    #[test]
    fn five_failures_lock_a_key_for_the_window() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        let alice = |addr: &str| vec!["user:alice".to_owned(), format!("addr:{addr}")];
        for i in 0..MAX_FAILURES as u64 {
            let at = t0 + Duration::from_secs(i * 60);
            assert!(
                l.attempt(&alice(&format!("10.0.0.{i}")), at).is_ok(),
                "attempt {i}"
            );
        }
        // The user name is locked, from any address, until the first failure is 15 min old.
        let at = t0 + Duration::from_secs(5 * 60);
        let wait = l.attempt(&alice("10.9.9.9"), at).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10 * 60));
        // Another user from an address that failed once is not.
        assert!(
            l.attempt(&["user:bob".into(), "addr:10.0.0.1".into()], at)
                .is_ok()
        );
        assert!(
            l.attempt(&alice("10.9.9.9"), t0 + FAILURE_WINDOW).is_ok(),
            "the first one left"
        );

        // One address trying many names is locked too.
        let mut l = FailureLimiter::default();
        for i in 0..MAX_FAILURES {
            assert!(l.attempt(&[format!("user:u{i}"), "addr:x".into()], t0).is_ok());
        }
        assert!(l.attempt(&["user:new".into(), "addr:x".into()], t0).is_err());
    }

    #[test]
    fn a_success_is_forgiven_and_clears_the_user_name() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        let keys = vec!["user:alice".to_owned(), "addr:x".to_owned()];
        for i in 0..4 {
            l.attempt(&keys, t0 + Duration::from_secs(i)).unwrap();
        }
        let ok_at = t0 + Duration::from_secs(10);
        l.attempt(&keys, ok_at).unwrap();
        l.forgive(&keys, ok_at, true);
        assert!(!l.failures.contains_key("user:alice"));
        assert_eq!(l.failures["addr:x"].len(), 4, "the address keeps its failures");
        // A forgiven attempt that never checked the password takes back only itself.
        let at = t0 + Duration::from_secs(11);
        l.attempt(&keys, at).unwrap();
        l.forgive(&keys, at, false);
        assert_eq!(l.failures["addr:x"].len(), 4);
        assert!(!l.failures.contains_key("user:alice"));
    }

    #[test]
    fn the_limiter_forgets_the_stalest_keys_when_full() {
        let mut l = FailureLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED_KEYS {
            l.failures.insert(format!("k{i}"), VecDeque::from([t0]));
        }
        l.failures
            .insert("k0".into(), VecDeque::from([t0 + Duration::from_secs(1)]));
        l.attempt(&["user:a".into(), "addr:b".into()], t0 + Duration::from_secs(2))
            .unwrap();
        assert!(l.failures.len() <= MAX_TRACKED_KEYS);
        assert!(l.failures.contains_key("k0") && l.failures.contains_key("user:a"));
    }
}
