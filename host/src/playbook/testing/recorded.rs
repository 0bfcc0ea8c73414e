//! Replaying a recorded run offline, from its journal only.

use super::*;

/// Effects for replaying a recorded run offline: every step must come from the journal.
struct Offline;

impl Effects for Offline {
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        _: &Value,
        _: &str,
        _: &str,
    ) -> Result<Value, PluginFailure> {
        Err(PluginFailure {
            kind: "internal".into(),
            message: format!("offline replay: {plugin}.{action} is past the end of the journal"),
            retryable: false,
            retry_after_ms: None,
        })
    }
    fn record(&mut self, _: &str, _: &Step) -> Result<(), JournalError> {
        Ok(())
    }
    fn now_ms(&mut self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
    fn random_u64(&mut self) -> u64 {
        0
    }
}

/// Replay a recorded run offline against `playbook`'s script: what the run would do now,
/// without calling any plugin. Steps past the end of the journal fail.
pub fn replay_recorded(
    playbook: &Playbook,
    run: &RunContext,
    journal: Vec<Step>,
    limits: ScriptLimits,
) -> Outcome {
    let mut ctx = run.clone();
    ctx.plugins = playbook.meta.plugins.clone();
    engine::replay(&playbook.script, limits, &ctx, journal, Box::new(Offline)).0
}
