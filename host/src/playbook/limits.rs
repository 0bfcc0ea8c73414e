//! The limits of a playbook's replay: the server's defaults (`[playbook_limits]`), a
//! playbook's own `[limits]`, and the server-wide maxima (`[playbook_limits_max]`) that no
//! playbook can go above. No limit can be switched off: 0 is refused everywhere.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How deep playbooks may start playbooks (`playbook(name, input)`): a run started by a
/// trigger is at depth 0, the child it starts at 1, and so on; a run at this depth may not
/// start another. Stops a playbook that starts itself, or a cycle of them, after a few
/// runs. Fixed, like the nesting limit: no playbook needs more to be composed of others.
pub const MAX_PLAYBOOK_DEPTH: u32 = 8;

/// Limits of one replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub max_call_depth: usize,
    pub max_string_bytes: usize,
    pub max_array_len: usize,
    pub max_map_len: usize,
    /// Steps in the whole run.
    pub max_steps: u32,
    /// Time the script itself runs in one replay, not counting plugin calls and journal writes.
    #[serde(with = "crate::duration::text")]
    pub wall_time: Duration,
    /// Size of one journaled step (its request and outcome as JSON), and of the run's output.
    pub max_step_bytes: usize,
    /// Size of the whole journal of a run.
    pub max_journal_bytes: usize,
    /// Memory the script holds at once in one replay, MiB.
    pub max_memory_mib: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 10_000_000,
            max_call_depth: 64,
            max_string_bytes: 1024 * 1024,
            max_array_len: 100_000,
            max_map_len: 10_000,
            max_steps: 10_000,
            wall_time: Duration::from_secs(10),
            max_step_bytes: 8 * 1024 * 1024,
            max_journal_bytes: 64 * 1024 * 1024,
            max_memory_mib: 128,
        }
    }
}

/// The maxima when the config names none.
pub const MAXIMA: ScriptLimits = ScriptLimits {
    max_operations: 1_000_000_000,
    max_call_depth: 128,
    max_string_bytes: 64 * 1024 * 1024,
    max_array_len: 10_000_000,
    max_map_len: 1_000_000,
    max_steps: 100_000,
    wall_time: Duration::from_secs(600),
    max_step_bytes: 64 * 1024 * 1024,
    max_journal_bytes: 256 * 1024 * 1024,
    max_memory_mib: 1024,
};

/// Limits of one replay of a run; `None` keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    pub max_operations: Option<u64>,
    pub max_call_depth: Option<usize>,
    pub max_string_bytes: Option<usize>,
    pub max_array_len: Option<usize>,
    pub max_map_len: Option<usize>,
    pub max_steps: Option<u32>,
    #[serde(default, with = "crate::duration::opt_text")]
    pub wall_time: Option<Duration>,
    pub max_step_bytes: Option<usize>,
    pub max_journal_bytes: Option<usize>,
    pub max_memory_mib: Option<usize>,
}

/// Calls `$m!(name)` for every limit, so the lists below cannot miss one.
macro_rules! each_limit {
    ($m:ident) => {
        $m!(max_operations);
        $m!(max_call_depth);
        $m!(max_string_bytes);
        $m!(max_array_len);
        $m!(max_map_len);
        $m!(max_steps);
        $m!(wall_time);
        $m!(max_step_bytes);
        $m!(max_journal_bytes);
        $m!(max_memory_mib);
    };
}

/// A limit that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit {name} = {value}: {why}")]
pub struct LimitError {
    pub name: &'static str,
    pub value: String,
    pub why: String,
}

fn show<T: std::fmt::Debug + 'static>(v: &T) -> String {
    match (v as &dyn std::any::Any).downcast_ref::<Duration>() {
        Some(d) => humantime::format_duration(*d).to_string(),
        None => format!("{v:?}"),
    }
}

fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl ScriptLimits {
    /// These limits with a playbook's overrides applied.
    pub fn with(&self, o: &LimitOverrides) -> ScriptLimits {
        let mut out = *self;
        macro_rules! apply {
            ($f:ident) => {
                if let Some(v) = o.$f {
                    out.$f = v;
                }
            };
        }
        each_limit!(apply);
        out
    }

    /// These limits, each at most the one in `max`.
    pub fn capped(&self, max: &ScriptLimits) -> ScriptLimits {
        let mut out = *self;
        macro_rules! cap {
            ($f:ident) => {
                out.$f = out.$f.min(max.$f);
            };
        }
        each_limit!(cap);
        out
    }

    /// The limits above `max`, as `name = value (maximum M)`.
    pub fn above(&self, max: &ScriptLimits) -> Vec<String> {
        let mut out = Vec::new();
        macro_rules! check {
            ($f:ident) => {
                if self.$f > max.$f {
                    out.push(format!(
                        "{} = {} (the server's maximum is {})",
                        stringify!($f),
                        show(&self.$f),
                        show(&max.$f)
                    ));
                }
            };
        }
        each_limit!(check);
        out
    }

    /// Refuse 0 (which once meant "unlimited" to Rhai): every limit is on.
    pub fn validate(&self) -> Result<(), LimitError> {
        macro_rules! nonzero {
            ($f:ident) => {
                if is_zero(&self.$f) {
                    return Err(LimitError {
                        name: stringify!($f),
                        value: show(&self.$f),
                        why: "must be above 0 (no limit can be switched off)".into(),
                    });
                }
            };
        }
        each_limit!(nonzero);
        Ok(())
    }
}

impl LimitOverrides {
    /// Refuse 0 in a playbook's `[limits]`.
    pub fn validate(&self) -> Result<(), LimitError> {
        ScriptLimits::default().with(self).validate()
    }
}

/// The server's defaults and maxima of replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    pub defaults: ScriptLimits,
    pub maxima: ScriptLimits,
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            defaults: ScriptLimits::default(),
            maxima: MAXIMA,
        }
    }
}

impl RunLimits {
    /// From the config: `maxima` over the built-in ones; both checked.
    pub fn new(defaults: ScriptLimits, maxima: &LimitOverrides) -> Result<RunLimits, LimitError> {
        let maxima = MAXIMA.with(maxima);
        maxima.validate()?;
        defaults.validate()?;
        if let Some(first) = defaults.above(&maxima).into_iter().next() {
            return Err(LimitError {
                name: "playbook_limits",
                value: first,
                why: "a default is above the maximum in [playbook_limits_max]".into(),
            });
        }
        Ok(RunLimits { defaults, maxima })
    }

    /// A playbook's limits: its overrides over the defaults, capped by the maxima.
    pub fn of(&self, overrides: &LimitOverrides) -> ScriptLimits {
        self.defaults.with(overrides).capped(&self.maxima)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_capped_by_the_maxima() {
        let limits = RunLimits::default();
        let o = LimitOverrides {
            max_operations: Some(u64::MAX),
            wall_time: Some(Duration::from_secs(100_000 * 3600)),
            max_steps: Some(5),
            ..Default::default()
        };
        let l = limits.of(&o);
        assert_eq!(l.max_operations, MAXIMA.max_operations);
        assert_eq!(l.wall_time, MAXIMA.wall_time);
        assert_eq!(l.max_steps, 5);
        let above = ScriptLimits::default().with(&o).above(&MAXIMA);
        assert_eq!(above.len(), 2, "{above:?}");
        assert!(above[1].starts_with("wall_time = 11years"), "{above:?}");
        assert!(above[1].ends_with("(the server's maximum is 10m)"), "{above:?}");
    }

    #[test]
    fn zero_is_refused() {
        let o = LimitOverrides {
            max_operations: Some(0),
            ..Default::default()
        };
        let e = o.validate().unwrap_err();
        assert_eq!(e.name, "max_operations");
        assert!(e.to_string().contains("must be above 0"), "{e}");
        let o = LimitOverrides {
            wall_time: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(o.validate().unwrap_err().name, "wall_time");
        let maxima = LimitOverrides {
            max_map_len: Some(0),
            ..Default::default()
        };
        assert!(RunLimits::new(ScriptLimits::default(), &maxima).is_err());
        let low = LimitOverrides {
            max_steps: Some(10),
            ..Default::default()
        };
        let e = RunLimits::new(ScriptLimits::default(), &low).unwrap_err();
        assert!(e.to_string().contains("max_steps = 10000"), "{e}");
    }
}
