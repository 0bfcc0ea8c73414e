//! The script functions with an effect or a nondeterministic result, each a journaled step
//! bound to one replay's state: `invoke`, `invoke_cached`, `sleep`, `now`, `random`,
//! `random_int`, `uuid`, `log` (and `print`, `debug`), and `retry`'s backoff.

use super::StepKind;
use super::state::{Shared, Stop, lock, step_json, terminate};
use crate::playbook::api;
use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};
use serde_json::Value;

/// What a plugin step gives the script: its output, or its failure as a catchable error map
/// `#{ kind, message, retryable, plugin, action }` (and `retry_after_ms` when the plugin gave one).
fn plugin_result(
    outcome: &Value,
    ok: bool,
    plugin: &str,
    action: &str,
) -> Result<Dynamic, Box<EvalAltResult>> {
    if ok {
        return api::from_json_value(outcome);
    }
    let mut err = api::from_json_value(outcome)?;
    if let Some(mut map) = err.write_lock::<Map>() {
        map.insert("plugin".into(), plugin.into());
        map.insert("action".into(), action.into());
    }
    Err(Box::new(EvalAltResult::ErrorRuntime(err, Position::NONE)))
}

/// The longest `sleep`: a year and a day. Longer waits are a cron trigger's job.
const MAX_SLEEP_SECONDS: f64 = 366.0 * 24.0 * 3600.0;

/// Register the functions with an effect, each bound to this replay's state.
pub(super) fn register_effects(engine: &mut Engine, state: &Shared) {
    let s = state.clone();
    engine.register_fn(
        "invoke",
        move |plugin: &str, action: &str, input: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let input_json = step_json(&s, &Dynamic::from_map(input))?;
            let request = serde_json::json!({ "plugin": plugin, "action": action, "input": input_json });
            lock(&s).check_declared(plugin, &request)?;
            let (outcome, ok) = lock(&s).step(StepKind::Invoke, request, |st, seq| {
                let key = format!("{}:{seq}", st.run_id);
                let run_id = st.run_id.clone();
                match st.effects.call_plugin(plugin, action, &input_json, &run_id, &key) {
                    Ok(v) => (v, true),
                    Err(f) => (serde_json::to_value(&f).expect("a failure serialises"), false),
                }
            })?;
            plugin_result(&outcome, ok, plugin, action)
        },
    );

    // `invoke` through the enrichment cache: a step of kind `invoke` whose request carries
    // `cache_ttl_ms` and whose outcome is `#{ output, cached }`; a replay returns the
    // journaled outcome and never looks at the cache again. Failures are not cached.
    let s = state.clone();
    engine.register_fn(
        "invoke_cached",
        move |plugin: &str, action: &str, input: Map, ttl: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            let ttl = crate::duration::parse(ttl).map_err(|e| format!("invoke_cached: ttl {e}"))?;
            if ttl.is_zero() {
                return Err("invoke_cached: the ttl must be longer than 0s (use invoke not to cache)".into());
            }
            let input_json = step_json(&s, &Dynamic::from_map(input))?;
            let request = serde_json::json!({
                "plugin": plugin, "action": action, "input": input_json,
                "cache_ttl_ms": u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            });
            lock(&s).check_declared(plugin, &request)?;
            let (outcome, ok) = lock(&s).step(StepKind::Invoke, request, |st, seq| {
                if let Some(output) = st.effects.cached_output(plugin, action, &input_json) {
                    return (serde_json::json!({ "output": output, "cached": true }), true);
                }
                let key = format!("{}:{seq}", st.run_id);
                let run_id = st.run_id.clone();
                match st.effects.call_plugin(plugin, action, &input_json, &run_id, &key) {
                    Ok(v) => {
                        st.effects.cache_output(plugin, action, &input_json, &v, ttl);
                        (serde_json::json!({ "output": v, "cached": false }), true)
                    }
                    Err(f) => (serde_json::to_value(&f).expect("a failure serialises"), false),
                }
            })?;
            let outcome = if ok { &outcome["output"] } else { &outcome };
            plugin_result(outcome, ok, plugin, action)
        },
    );

    let s = state.clone();
    let sleep = move |seconds: f64| -> Result<(), Box<EvalAltResult>> {
        if !seconds.is_finite() || !(0.0..=MAX_SLEEP_SECONDS).contains(&seconds) {
            return Err(format!(
                "sleep needs a duration from 0 to {MAX_SLEEP_SECONDS} seconds (366 days), not {seconds}"
            )
            .into());
        }
        let ms = (seconds * 1000.0).round() as i64;
        let mut st = lock(&s);
        let (outcome, _) = st.step(StepKind::Sleep, serde_json::json!({ "ms": ms }), |st, _| {
            let wake_at = st.effects.now_ms() + ms;
            (serde_json::json!({ "wake_at": wake_at }), true)
        })?;
        let wake_at = outcome["wake_at"].as_i64().unwrap_or(0);
        if st.effects.now_ms() < wake_at {
            st.stop = Some(Stop::Waiting(wake_at));
            return Err(terminate("waiting"));
        }
        Ok(())
    };
    let sleep2 = sleep.clone();
    let sleep3 = sleep.clone();
    engine.register_fn("sleep", move |seconds: i64| sleep(seconds as f64));
    engine.register_fn("sleep", move |seconds: f64| sleep2(seconds));
    engine.register_fn("sleep", move |duration: &str| -> Result<(), Box<EvalAltResult>> {
        let d = humantime::parse_duration(duration)
            .map_err(|e| format!("sleep(\"{duration}\"): not a duration like \"30s\" or \"2h\": {e}"))?;
        sleep3(d.as_secs_f64())
    });

    let s = state.clone();
    engine.register_fn("now", move || -> Result<i64, Box<EvalAltResult>> {
        let (outcome, _) = lock(&s).step(StepKind::Now, Value::Null, |st, _| {
            (st.effects.now_ms().into(), true)
        })?;
        Ok(outcome.as_i64().unwrap_or(0))
    });

    let s = state.clone();
    engine.register_fn("random", move || -> Result<f64, Box<EvalAltResult>> {
        let (outcome, _) = lock(&s).step(StepKind::Random, Value::Null, |st, _| {
            let x = (st.effects.random_u64() >> 11) as f64 / (1u64 << 53) as f64;
            (x.into(), true)
        })?;
        Ok(outcome.as_f64().unwrap_or(0.0))
    });

    let s = state.clone();
    engine.register_fn(
        "random_int",
        move |low: i64, high: i64| -> Result<i64, Box<EvalAltResult>> {
            if high < low {
                return Err(format!("random_int({low}, {high}): the high bound is below the low one").into());
            }
            let (outcome, _) = lock(&s).step(
                StepKind::Random,
                serde_json::json!({ "low": low, "high": high }),
                |st, _| {
                    // In i128: the span of i64::MIN..=i64::MAX does not fit in 64 bits.
                    let span = i128::from(high) - i128::from(low) + 1;
                    let x = i128::from(low) + i128::from(st.effects.random_u64()) % span;
                    (i64::try_from(x).expect("low <= x <= high").into(), true)
                },
            )?;
            Ok(outcome.as_i64().unwrap_or(low))
        },
    );

    let s = state.clone();
    engine.register_fn("uuid", move || -> Result<String, Box<EvalAltResult>> {
        let (outcome, _) =
            lock(&s).step(StepKind::Random, serde_json::json!({ "uuid": true }), |st, _| {
                let (a, b) = (st.effects.random_u64(), st.effects.random_u64());
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&a.to_be_bytes());
                bytes[8..].copy_from_slice(&b.to_be_bytes());
                bytes[6] = (bytes[6] & 0x0f) | 0x40;
                bytes[8] = (bytes[8] & 0x3f) | 0x80;
                let h = hex::encode(bytes);
                (
                    format!(
                        "{}-{}-{}-{}-{}",
                        &h[..8],
                        &h[8..12],
                        &h[12..16],
                        &h[16..20],
                        &h[20..]
                    )
                    .into(),
                    true,
                )
            })?;
        Ok(outcome.as_str().unwrap_or_default().to_owned())
    });

    for level in ["info", "warn", "error"] {
        let s = state.clone();
        let name = if level == "info" {
            "log".to_string()
        } else {
            format!("log_{level}")
        };
        engine.register_fn(
            &name,
            move |ctx: rhai::NativeCallContext, message: Dynamic| -> Result<(), Box<EvalAltResult>> {
                let text = api::display(&ctx, "log", &message)?;
                lock(&s).step(
                    StepKind::Log,
                    serde_json::json!({ "level": level, "message": text }),
                    |_, _| (Value::Null, true),
                )?;
                Ok(())
            },
        );
    }
    let s = state.clone();
    engine.on_print(move |text| {
        // print() is a log line; a failure to journal it surfaces at the next step.
        let _ = lock(&s).step(
            StepKind::Log,
            serde_json::json!({ "level": "info", "message": text }),
            |_, _| (Value::Null, true),
        );
    });
    let s = state.clone();
    engine.on_debug(move |text, _, _| {
        let _ = lock(&s).step(
            StepKind::Log,
            serde_json::json!({ "level": "debug", "message": text }),
            |_, _| (Value::Null, true),
        );
    });

    // retry()'s backoff: base seconds (or a duration string) doubled per attempt, unless
    // the plugin's error said how long to wait (`retry_after_ms`, capped).
    engine.register_fn(
        "__backoff",
        |base: Dynamic, attempt: i64, retry_after_ms: Dynamic| -> Result<f64, Box<EvalAltResult>> {
            if let Ok(ms) = retry_after_ms.as_int()
                && let Ok(ms) = u64::try_from(ms)
            {
                return Ok(ms.min(super::MAX_RETRY_AFTER_MS) as f64 / 1000.0);
            }
            let secs = if let Some(s) = base.clone().try_cast::<String>() {
                humantime::parse_duration(&s)
                    .map_err(|e| format!("retry backoff \"{s}\": {e}"))?
                    .as_secs_f64()
            } else if let Ok(i) = base.as_int() {
                i as f64
            } else if let Ok(f) = base.as_float() {
                f
            } else {
                return Err("retry backoff must be seconds or a duration such as \"2s\"".into());
            };
            Ok(secs * 2f64.powi((attempt - 1).clamp(0, 30) as i32))
        },
    );
}
