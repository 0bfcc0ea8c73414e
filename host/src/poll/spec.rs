//! A poller as written (`[[intake.poll]]`, `osprey intake poll add`) and its checks: the
//! name by the one rule of names, an interval between the floor (`intake.poll_min_every`)
//! and [`MAX_EVERY`], an input that is a JSON object without a `cursor` (the host's).
//! Pure.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// The longest interval between two polls.
pub const MAX_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The longest a failing poller waits before it tries again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// One poller (`[[intake.poll]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    pub name: String,
    pub plugin: String,
    pub action: String,
    #[serde(with = "crate::duration::text")]
    pub every: Duration,
    /// The action's input; the host adds `cursor`.
    #[serde(default)]
    pub input: Map<String, Value>,
}

/// Why a poller is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PollSpecError {
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(
        "poller '{name}': every {} is below the floor of {} (intake.poll_min_every)",
        humantime::format_duration(*every),
        humantime::format_duration(*floor)
    )]
    TooOften {
        name: String,
        every: Duration,
        floor: Duration,
    },
    #[error(
        "poller '{name}': every {} is above the most, {}",
        humantime::format_duration(*every),
        humantime::format_duration(MAX_EVERY)
    )]
    TooRare { name: String, every: Duration },
    #[error("poller '{0}': the input must not name `cursor`; the host passes the cursor the plugin returned")]
    CursorInInput(String),
}

impl PollConfig {
    /// Check the names and the interval against `floor`.
    pub fn check(&self, floor: Duration) -> Result<(), PollSpecError> {
        crate::names::check("poller", &self.name)?;
        crate::names::check("plugin", &self.plugin)?;
        if self.every < floor {
            return Err(PollSpecError::TooOften {
                name: self.name.clone(),
                every: self.every,
                floor,
            });
        }
        if self.every > MAX_EVERY {
            return Err(PollSpecError::TooRare {
                name: self.name.clone(),
                every: self.every,
            });
        }
        if self.input.contains_key("cursor") {
            return Err(PollSpecError::CursorInInput(self.name.clone()));
        }
        Ok(())
    }
}

/// How long to wait after `failures` failed polls in a row: the interval doubled each time,
/// at most [`MAX_BACKOFF`] (and never less than the interval).
pub fn backoff(every: Duration, failures: u32) -> Duration {
    let doubled = every.saturating_mul(1u32 << failures.min(20));
    doubled.min(MAX_BACKOFF.max(every))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(every: u64) -> PollConfig {
        PollConfig {
            name: "tickets".into(),
            plugin: "servicenow".into(),
            action: "list-incidents".into(),
            every: Duration::from_secs(every),
            input: Map::new(),
        }
    }

    #[test]
    fn interval_between_floor_and_ceiling() {
        let floor = Duration::from_secs(10);
        assert!(poll(10).check(floor).is_ok());
        let e = poll(5).check(floor).unwrap_err().to_string();
        assert_eq!(
            e,
            "poller 'tickets': every 5s is below the floor of 10s (intake.poll_min_every)"
        );
        assert!(matches!(
            poll(2 * 86400).check(floor),
            Err(PollSpecError::TooRare { .. })
        ));
        let bad = PollConfig {
            name: "Tickets".into(),
            ..poll(60)
        };
        assert!(
            bad.check(floor)
                .unwrap_err()
                .to_string()
                .contains("poller name 'Tickets'")
        );
        let mut with_cursor = poll(60);
        with_cursor.input.insert("cursor".into(), Value::Null);
        assert!(matches!(
            with_cursor.check(floor),
            Err(PollSpecError::CursorInInput(_))
        ));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let m = Duration::from_secs(60);
        assert_eq!(backoff(m, 1), Duration::from_secs(120));
        assert_eq!(backoff(m, 3), Duration::from_secs(480));
        assert_eq!(backoff(m, 30), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(7200), 5), Duration::from_secs(7200));
    }
}
