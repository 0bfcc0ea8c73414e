//! The limits checked as the script runs, between steps: its memory and wall time after its
//! operations, and the size of containers it changes in place.

use super::state::{Shared, lock};
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};

/// Watch the script's operations and variables for limits and interruptions.
pub(super) fn register_guards(engine: &mut Engine, state: &Shared) {
    // Wall time of the script itself, checked as it runs.
    let s = state.clone();
    engine.on_progress(move |ops| {
        let mut st = lock(&s);
        // Memory, after every operation: one operation can allocate up to a limit's size.
        let held = st.memory();
        let max_memory = st.limits.max_memory_mib as i64 * 1024 * 1024;
        if held > max_memory {
            let message = format!(
                "limit max_memory_mib ({}) reached: the script held {} MiB",
                st.limits.max_memory_mib,
                held / (1024 * 1024)
            );
            return Some(st.stop_at_limit("max_memory_mib", message));
        }
        if ops % 1024 != 0 {
            return None;
        }
        if st.interrupted().is_some() {
            return Some(Dynamic::from("interrupted".to_string()));
        }
        let script_time = st.started.elapsed().saturating_sub(st.outside);
        if script_time > st.limits.wall_time {
            let message = format!(
                "limit wall_time ({}) reached: the script ran that long in one replay",
                humantime::format_duration(st.limits.wall_time)
            );
            return Some(st.stop_at_limit("wall_time", message));
        }
        None
    });

    // `m[k] = v` and `a[i] = v` change a container without Rhai's size check (a map past
    // max_map_len, or many references to one big string, which Rhai would then show whole):
    // check containers as they are used: when a container's length changed, and at every
    // 16th use otherwise (a check costs as much as the container is big), so at most 16
    // assignments go unchecked.
    let s = state.clone();
    #[allow(deprecated)] // "volatile", not deprecated: Rhai marks it so.
    engine.on_var(move |name, _, ctx| {
        let Some(v) = ctx.scope().get(name) else {
            return Ok(None);
        };
        let (address, len) = if let Some(map) = v.read_lock::<Map>() {
            (&*map as *const Map as usize, map.len())
        } else if let Some(array) = v.read_lock::<rhai::Array>() {
            (&*array as *const rhai::Array as usize, array.len())
        } else {
            return Ok(None);
        };
        let mut st = lock(&s);
        let limits = st.limits;
        let seen = &mut st.containers;
        if let Some((checked_len, uses)) = seen.get_mut(&address)
            && *checked_len == len
            && *uses < 16
        {
            *uses += 1;
            return Ok(None);
        }
        if let Some(over) = crate::playbook::json::over_limits(v, &limits) {
            return Err(Box::new(EvalAltResult::ErrorDataTooLarge(
                format!("'{name}' ({over})"),
                Position::NONE,
            )));
        }
        if seen.len() > 10_000 {
            seen.clear();
        }
        seen.insert(address, (len, 0));
        Ok(None)
    });
}
