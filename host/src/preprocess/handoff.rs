//! The hand-off from intake to pre-processing: alerts intake has just committed go to the
//! pre-processor in memory, so it decides them without reading them back from the store and
//! parsing their JSON again. The store stays the truth: what the hand-off does not carry
//! (alerts a crash left undecided, a poll's alerts, those past the hand-off's capacity, or
//! alerts another server took in) the pre-processor finds by scanning the store, and every
//! decision claims its alerts when it commits, so an alert found both ways is decided once.
//!
//! The hand-off also counts the alerts it carries until their decision is committed (or
//! left to the store): intake's backpressure reads that count.

use crate::store::alerts::StoredAlert;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Committed alerts waiting for pre-processing, in the order they were committed.
#[derive(Debug)]
pub struct Handoff {
    queue: Mutex<VecDeque<Arc<Vec<StoredAlert>>>>,
    /// Alerts in `queue` or taken and not yet [`Handoff::finished`].
    waiting: AtomicUsize,
    /// The most alerts `queue` holds; past it, alerts are left to the store scan.
    capacity: usize,
    /// Set when the store holds undecided alerts the queue does not: at start, after a
    /// batch past capacity, a poll, or a decision another server made first.
    scan: AtomicBool,
    ready: Notify,
}

/// A batch taken from the hand-off: the committed alerts, as intake stored them. Give it
/// back to [`Handoff::finished`] once decided (or left to the store).
#[derive(Debug, Default)]
pub struct Taken {
    chunks: Vec<Arc<Vec<StoredAlert>>>,
    len: usize,
}

impl Taken {
    /// The alerts, in commit order.
    pub fn alerts(&self) -> Vec<&StoredAlert> {
        self.chunks.iter().flat_map(|c| c.iter()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Handoff {
    /// A hand-off holding at most `capacity` alerts; the store is scanned first.
    pub fn new(capacity: usize) -> Handoff {
        Handoff {
            queue: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            capacity,
            scan: AtomicBool::new(true),
            ready: Notify::new(),
        }
    }

    /// Hand on alerts that are committed. Past capacity they stay only in the store, and the
    /// pre-processor is told to scan for them.
    pub fn push(&self, alerts: Arc<Vec<StoredAlert>>) {
        if alerts.is_empty() {
            return;
        }
        let n = alerts.len();
        {
            let mut queue = self.queue.lock().expect("hand-off lock");
            if self.waiting.load(Ordering::Relaxed) + n > self.capacity {
                drop(queue);
                self.scan_soon();
                return;
            }
            queue.push_back(alerts);
            self.waiting.fetch_add(n, Ordering::Relaxed);
        }
        self.ready.notify_one();
    }

    /// The store holds undecided alerts the queue does not: look for them soon.
    pub fn scan_soon(&self) {
        self.scan.store(true, Ordering::Relaxed);
        self.ready.notify_one();
    }

    /// Whether a store scan is due; clears the request.
    pub fn take_scan(&self) -> bool {
        self.scan.swap(false, Ordering::Relaxed)
    }

    /// Take whole commits from the front until at least `at_least` alerts (or all there is).
    pub fn take(&self, at_least: usize) -> Taken {
        let mut queue = self.queue.lock().expect("hand-off lock");
        let mut taken = Taken::default();
        while taken.len < at_least {
            let Some(chunk) = queue.pop_front() else {
                break;
            };
            taken.len += chunk.len();
            taken.chunks.push(chunk);
        }
        taken
    }

    /// `taken` is decided, or left to the store scan: it no longer counts as waiting.
    pub fn finished(&self, taken: Taken) {
        self.waiting.fetch_sub(taken.len, Ordering::Relaxed);
    }

    /// Alerts handed on and not yet decided (queued, or in the batch being decided).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Wait until alerts are handed on or a scan is asked for, at most `timeout`.
    pub async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.ready.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(n: usize, received_at: i64) -> Arc<Vec<StoredAlert>> {
        let alert = crate::intake::parse_items(
            crate::intake::Format::Json,
            br#"{"source":"fw","title":"t"}"#,
            "json",
        )
        .remove(0)
        .alert
        .unwrap();
        Arc::new(
            (0..n)
                .map(|_| StoredAlert::new(crate::store::new_id('a'), received_at, "test", alert.clone()))
                .collect(),
        )
    }

    #[test]
    fn commits_are_taken_whole_in_order_and_counted() {
        let h = Handoff::new(100);
        assert!(h.take_scan(), "the store is scanned first");
        assert!(!h.take_scan());
        h.push(alerts(3, 1));
        h.push(alerts(4, 2));
        h.push(alerts(5, 3));
        assert_eq!(h.waiting(), 12);
        let t = h.take(5);
        let got: Vec<i64> = t.alerts().iter().map(|a| a.received_at).collect();
        assert_eq!(got, [1, 1, 1, 2, 2, 2, 2], "whole commits up to at least 5");
        assert_eq!(h.waiting(), 12, "taken alerts wait until they are decided");
        h.finished(t);
        assert_eq!(h.waiting(), 5);
        let t = h.take(1000);
        assert_eq!(t.alerts().len(), 5);
        h.finished(t);
        assert_eq!(h.waiting(), 0);
        assert!(h.take(10).is_empty());
    }

    #[test]
    fn past_capacity_alerts_are_left_to_the_store_scan() {
        let h = Handoff::new(10);
        h.take_scan();
        h.push(alerts(8, 1));
        h.push(alerts(3, 2));
        assert_eq!(h.waiting(), 8, "the second commit did not fit");
        assert!(h.take_scan(), "so the store is scanned for it");
        h.push(alerts(2, 3));
        assert_eq!(h.waiting(), 10, "a commit that fits still goes in memory");
        let zero = Handoff::new(0);
        zero.push(alerts(1, 1));
        assert_eq!(zero.waiting(), 0, "a capacity of 0 sends everything to the scan");
    }
}
