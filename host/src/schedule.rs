//! Cron triggers. Each cron trigger of each playbook has a row with its next fire time; a
//! node fires it by advancing that row with compare-and-set in the same transaction that
//! creates the run, so a schedule fires once however many nodes watch it, and a crash cannot
//! lose or double an occurrence.
//!
//! Missed occurrences (no server was running) follow the trigger's `missed` policy: `once`
//! (the default) fires a single run for all of them as soon as a server is up, then goes on
//! with the schedule; `skip` forgets them and waits for the next occurrence.

use crate::playbook::cron::parse_cron;
use crate::playbook::meta::{MissedPolicy, Trigger};
use crate::playbook::{Playbook, Playbooks};
use crate::runs::Executor;
use croner::Cron;
use std::sync::Arc;

/// An occurrence this late is "missed" (the server was not running), not merely delayed.
const GRACE_MS: i64 = 120_000;

/// The first occurrence of `cron` strictly after `after_ms`, in time zone `tz`.
pub fn next_after(cron: &Cron, tz: chrono_tz::Tz, after_ms: i64) -> Option<i64> {
    let after = chrono::DateTime::from_timestamp_millis(after_ms)?.with_timezone(&tz);
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Where the scheduler reads the time: the system clock, or a test's.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::store::now_ms()
    }
}

/// Fires cron triggers.
pub struct Scheduler {
    executor: Arc<Executor>,
    playbooks: Playbooks,
    clock: Arc<dyn Clock>,
    default_tz: chrono_tz::Tz,
}

/// One cron trigger, resolved.
struct CronTrigger<'a> {
    index: usize,
    cron: Cron,
    tz: chrono_tz::Tz,
    spec: String,
    missed: MissedPolicy,
    input: &'a serde_json::Map<String, serde_json::Value>,
}

impl Scheduler {
    pub fn new(
        executor: Arc<Executor>,
        playbooks: Playbooks,
        clock: Arc<dyn Clock>,
        default_tz: chrono_tz::Tz,
    ) -> Self {
        Scheduler {
            executor,
            playbooks,
            clock,
            default_tz,
        }
    }

    fn triggers<'a>(&self, pb: &'a Playbook) -> Vec<CronTrigger<'a>> {
        pb.meta
            .cron_triggers()
            .filter_map(|(index, t)| match t {
                Trigger::Cron {
                    schedule,
                    timezone,
                    missed,
                    input,
                } => {
                    let tz = timezone
                        .as_deref()
                        .and_then(|z| z.parse().ok())
                        .unwrap_or(self.default_tz);
                    let cron = parse_cron(schedule).ok()?;
                    Some(CronTrigger {
                        index,
                        cron,
                        spec: format!("{schedule} {tz}"),
                        tz,
                        missed: *missed,
                        input,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Look at every cron trigger once: set up new ones, fire the due ones. Returns the ids
    /// of the runs started.
    pub async fn tick(&self) -> Result<Vec<String>, crate::store::StoreError> {
        let now = self.clock.now_ms();
        let store = self.executor.store();
        let mut started = Vec::new();
        for pb in self.playbooks.list() {
            for t in self.triggers(&pb) {
                let Some(state) = store.schedule(pb.name(), t.index as i64).await? else {
                    if let Some(next) = next_after(&t.cron, t.tz, now) {
                        store
                            .init_schedule(pb.name(), t.index as i64, &t.spec, next)
                            .await?;
                    }
                    continue;
                };
                if state.spec != t.spec {
                    // The schedule changed: start over from now.
                    if let Some(next) = next_after(&t.cron, t.tz, now) {
                        store
                            .reset_schedule(pb.name(), t.index as i64, &t.spec, next)
                            .await?;
                    }
                    continue;
                }
                if state.next_fire_at > now {
                    continue;
                }
                let Some(next) = next_after(&t.cron, t.tz, now) else {
                    continue;
                };
                let late = now - state.next_fire_at > GRACE_MS;
                let fire = !(late && t.missed == MissedPolicy::Skip);
                let run = if fire {
                    match self
                        .executor
                        .prepare_run(&pb, t.input, &format!("cron #{}", t.index))
                    {
                        Ok(mut run) => {
                            // Which occurrence this run is (the first, for a catch-up run):
                            // one run per occurrence, whichever node fired it.
                            run.context = serde_json::json!({ "cron": { "fire_at": state.next_fire_at } });
                            Some(run)
                        }
                        Err(e) => {
                            tracing::error!(playbook = %pb.name(), trigger = t.index, error = %e, "cron trigger cannot start a run");
                            None
                        }
                    }
                } else {
                    tracing::info!(playbook = %pb.name(), trigger = t.index, "missed cron occurrence skipped (missed = \"skip\")");
                    None
                };
                let won = store
                    .advance_schedule(pb.name(), t.index as i64, state.next_fire_at, next, run.as_ref())
                    .await?;
                if won && let Some(run) = run {
                    tracing::info!(playbook = %pb.name(), trigger = t.index, run = %run.id, late, "cron trigger fired");
                    started.push(run.id);
                }
            }
        }
        Ok(started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn the_seed_schedule_fires_every_half_hour_from_nine_to_three_on_the_thirtieth() {
        let cron = parse_cron("*/30 9-14 30 * *").unwrap();
        let tz: chrono_tz::Tz = "Europe/London".parse().unwrap();
        let mut t = at("2026-11-01T00:00:00Z");
        let mut fires = Vec::new();
        for _ in 0..13 {
            t = next_after(&cron, tz, t).unwrap();
            fires.push(
                chrono::DateTime::from_timestamp_millis(t)
                    .unwrap()
                    .with_timezone(&tz)
                    .format("%m-%d %H:%M")
                    .to_string(),
            );
        }
        assert_eq!(fires[0], "11-30 09:00");
        assert_eq!(fires[1], "11-30 09:30");
        assert_eq!(fires[11], "11-30 14:30");
        assert_eq!(fires[12], "12-30 09:00", "then the next month");
    }

    #[test]
    fn time_zones_shift_the_fire_time() {
        let cron = parse_cron("0 9 * * *").unwrap();
        let utc = next_after(&cron, chrono_tz::UTC, at("2026-07-01T00:00:00Z")).unwrap();
        let ny = next_after(
            &cron,
            "America/New_York".parse().unwrap(),
            at("2026-07-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(utc, at("2026-07-01T09:00:00Z"));
        assert_eq!(ny, at("2026-07-01T13:00:00Z"));
    }

    #[test]
    fn daylight_saving_time_is_the_zones() {
        // Europe/London goes to BST (UTC+1) on 2027-03-28 at 01:00 UTC: 09:00 local is 09:00Z
        // the day before and 08:00Z from that day on; and back on 2027-10-31.
        let cron = parse_cron("0 9 * * *").unwrap();
        let london: chrono_tz::Tz = "Europe/London".parse().unwrap();
        let before = next_after(&cron, london, at("2027-03-26T12:00:00Z")).unwrap();
        let first = next_after(&cron, london, before).unwrap();
        assert_eq!(before, at("2027-03-27T09:00:00Z"));
        assert_eq!(first, at("2027-03-28T08:00:00Z"));
        let autumn = next_after(&cron, london, at("2027-10-31T00:00:00Z")).unwrap();
        assert_eq!(autumn, at("2027-10-31T09:00:00Z"));
        // The half hours of the seed's schedule on a 30th in summer are an hour earlier in UTC.
        let seed = parse_cron("*/30 9-14 30 * *").unwrap();
        let june = next_after(&seed, london, at("2027-06-01T00:00:00Z")).unwrap();
        assert_eq!(june, at("2027-06-30T08:00:00Z"));
    }
}
