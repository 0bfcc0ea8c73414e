//! Durable replay of a playbook script. Only this module (with `api.rs`) touches Rhai.
//!
//! A run is its script plus a journal of numbered steps. Every call with an effect or a
//! nondeterministic result (`invoke`, `sleep`, `now`, `random`, `log`) is a step: if the
//! journal has it, the recorded outcome is returned at once (after checking that the script
//! asks for the same thing); if not, the effect is performed, the step is recorded through
//! [`Effects::record`] (committed before the script sees it), and the script goes on. When the
//! script must wait (`sleep` into the future) the replay unwinds with [`Outcome::Waiting`];
//! nothing but the journal is kept, and the next replay picks up where this one stopped.
//!
//! Stops the script cannot catch (waiting, non-determinism, limits, cancellation) are raised
//! as Rhai's `ErrorTerminated`, which `try`/`catch` does not intercept. Plugin errors are
//! ordinary catchable errors whose value is a map `#{kind, message, retryable, plugin, action}`.

use super::api;
pub use super::limits::ScriptLimits;
use rhai::{AST, Dynamic, Engine, EvalAltResult, Map, Position, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One journaled step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// 1-based position in the run.
    pub seq: u32,
    /// `invoke`, `sleep`, `now`, `random`, `log`.
    pub kind: String,
    /// What the script asked for; must be the same on every replay.
    pub request: Value,
    /// What it got.
    pub outcome: Value,
    /// Whether the outcome is a success (an `invoke` error is recorded with `ok = false`).
    pub ok: bool,
    /// Unix ms.
    pub started_at: i64,
    pub duration_ms: i64,
}

impl From<crate::store::runs::StepRecord> for Step {
    fn from(s: crate::store::runs::StepRecord) -> Step {
        Step {
            seq: s.seq as u32,
            kind: s.kind,
            request: s.request,
            outcome: s.outcome,
            ok: s.ok,
            started_at: s.started_at,
            duration_ms: s.duration_ms,
        }
    }
}

impl From<&Step> for crate::store::runs::StepRecord {
    fn from(s: &Step) -> Self {
        crate::store::runs::StepRecord {
            seq: i64::from(s.seq),
            kind: s.kind.clone(),
            request: s.request.clone(),
            outcome: s.outcome.clone(),
            ok: s.ok,
            started_at: s.started_at,
            duration_ms: s.duration_ms,
            unreadable: None,
        }
    }
}

/// A plugin call that failed, as the script sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginFailure {
    pub kind: String,
    pub message: String,
    pub retryable: bool,
}

/// What a replay may do to the world. The executor's implementation calls plugins and writes
/// the journal to the store; `osprey playbook test` uses canned responses and a virtual clock.
pub trait Effects: Send + 'static {
    /// Call a plugin action (the journal was already consulted).
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        input: &Value,
        run_id: &str,
        idempotency_key: &str,
    ) -> Result<Value, PluginFailure>;
    /// Persist a new step; the script sees its outcome only if this succeeds.
    fn record(&mut self, run_id: &str, step: &Step) -> Result<(), String>;
    /// The current time, Unix ms.
    fn now_ms(&mut self) -> i64;
    /// A random number for `random()`, `random_int()` and `uuid()`.
    fn random_u64(&mut self) -> u64;
    /// Whether the run was cancelled meanwhile (checked between steps).
    fn cancelled(&mut self) -> bool {
        false
    }
    /// Change what Osprey keeps: `incident_note`, `incident_close`, `incident_set`,
    /// `list_add`, `list_remove`, `notify` (the journal was already consulted). `args` carries
    /// the run's incident id as `incident` when it has one. The change must be idempotent
    /// under `idempotency_key`: the one step in flight at a crash is taken again.
    fn act(
        &mut self,
        action: &str,
        args: &Value,
        run_id: &str,
        idempotency_key: &str,
    ) -> Result<Value, String> {
        let _ = (args, run_id, idempotency_key);
        Err(format!("{action} is not available here"))
    }
    /// For `ask`, `approve` and `form`: whether question `id` (asked by an earlier `act`
    /// step) is closed, with what the script gets, or until when to wait.
    fn question_wait(&mut self, id: &str) -> Result<QuestionWait, String> {
        let _ = id;
        Err("questions to people are not available here".into())
    }
    /// For `invoke_cached`: the output of `plugin.action(input)` if the enrichment cache
    /// holds one that has not expired (the journal was already consulted). Offline
    /// (`osprey playbook test`) there is no cache, and canned responses answer.
    fn cached_output(&mut self, plugin: &str, action: &str, input: &Value) -> Option<Value> {
        let _ = (plugin, action, input);
        None
    }
    /// For `invoke_cached`: keep a successful output for `ttl`.
    fn cache_output(&mut self, plugin: &str, action: &str, input: &Value, output: &Value, ttl: Duration) {
        let _ = (plugin, action, input, output, ttl);
    }
}

/// Where a question a run waits on stands.
#[derive(Debug, Clone, PartialEq)]
pub enum QuestionWait {
    /// Closed: `#{ question, answer, comment, by, at, via, timed_out, status }`.
    Done(Value),
    /// Still open: replay again at this time (Unix ms) if not woken before.
    Until(i64),
}

/// How a replay ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The script returned; its value (as JSON).
    Completed(Value),
    /// The script waits until this time (Unix ms).
    Waiting { wake_at: i64 },
    /// The script failed.
    Failed(Failure),
    /// The server is shutting down: the replay stopped between operations and nothing of it
    /// was lost (the journal holds every step taken); replay it again later.
    Interrupted,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// The step being taken when it failed, if any.
    pub step: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum FailureKind {
    /// An error in the script (a thrown value, a type error, a missing variable).
    Script,
    /// A plugin error the script did not catch.
    Plugin { retryable: bool },
    /// A limit was hit; `limit` is its name in `[limits]`.
    Limit { limit: String },
    /// The script asked for something other than what the journal recorded.
    NonDeterminism,
    /// The run was cancelled.
    Cancelled,
    /// The script called a plugin its playbook does not declare in `plugins`.
    Undeclared { plugin: String },
    /// The journal could not be written (the store is down): retry later.
    Journal,
}

impl Failure {
    /// Whether retrying the replay later may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::Plugin { retryable: true } | FailureKind::Journal
        )
    }
}

/// A compiled playbook script.
#[derive(Debug, Clone)]
pub struct Script {
    pub ast: AST,
    /// SHA-256 of the source, hex.
    pub hash: String,
}

/// Why a script does not compile: `line:column: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The functions every script can use, written in Rhai.
const PRELUDE: &str = r#"
/// Call `f` up to `attempts` times while it throws a retryable plugin error, sleeping
/// `backoff` (seconds or "2s"), then twice that, and so on, between attempts.
fn retry(attempts, backoff, f) {
    let n = 0;
    loop {
        try {
            return f.call();
        } catch (e) {
            n += 1;
            if type_of(e) != "map" || !(e.retryable ?? false) || n >= attempts { throw e; }
            sleep(__backoff(backoff, n));
        }
    }
}
"#;

/// An engine with the language set up, but no effectful functions: for compiling, and as
/// the base of each replay's engine.
pub(super) fn base_engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new_raw();
    for module in api::packages() {
        engine.register_global_module(module.clone());
    }
    engine.register_global_module(api::module());
    engine.disable_symbol("eval");
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_string_size(limits.max_string_bytes);
    engine.set_max_array_size(limits.max_array_len);
    engine.set_max_map_size(limits.max_map_len);
    engine.set_max_expr_depths(128, 64);
    engine.set_optimization_level(rhai::OptimizationLevel::Simple);
    engine
}

/// Compile a script (with the prelude).
pub fn compile(source: &str) -> Result<Script, CompileError> {
    use sha2::Digest;
    let engine = base_engine(&ScriptLimits::default());
    let prelude = engine.compile(PRELUDE).expect("the prelude compiles");
    let ast = engine.compile(source).map_err(|e| {
        let pos = e.1;
        CompileError {
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            message: e.0.to_string(),
        }
    })?;
    Ok(Script {
        ast: prelude.merge(&ast),
        hash: hex::encode(sha2::Sha256::digest(source.as_bytes())),
    })
}

/// The plugins a script names literally in `invoke("NAME", ...)` and
/// `invoke_cached("NAME", ...)`, in its body and its functions, sorted. Calls with a computed
/// name are not seen (they are checked when they run).
pub fn literal_invokes(script: &Script) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    script.ast.walk(&mut |path: &[rhai::ASTNode]| {
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(call, _))) => Some(call),
            Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(call, _))) => Some(call),
            _ => None,
        };
        if let Some(call) = call
            && (call.name == "invoke" || call.name == "invoke_cached")
            && let Some(rhai::Expr::StringConstant(name, _)) = call.args.first()
        {
            found.insert(name.to_string());
        }
        true
    });
    found.into_iter().collect()
}

/// Check that `expr` is a valid Rhai expression (for trigger match expressions).
pub fn check_expression(expr: &str) -> Result<(), String> {
    base_engine(&ScriptLimits::default())
        .compile_expression(expr)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Where a replay happens.
#[derive(Debug, Clone, Default)]
pub struct RunContext {
    pub run_id: String,
    pub playbook: String,
    pub input: serde_json::Map<String, Value>,
    /// The alert the run was started for (`null` if none): `alert` in the script.
    pub alert: Value,
    /// The incident, as it was when the run started (`null` if none): `incident` in the script.
    pub incident: Value,
    /// The SLA breach the run was started for (`null` if none): `breach` in the script.
    pub breach: Value,
    /// Who asked, for a run started from a request form (`null` if none): `requester` in
    /// the script, `{ "name": ..., "email": ... }`.
    pub requester: Value,
    /// The plugins the playbook declares (`plugins` in `playbook.toml`): the only ones its
    /// script may call.
    pub plugins: Vec<String>,
    /// Set from outside to stop the replay between two operations.
    pub interrupt: Interrupt,
}

/// A switch that stops a replay from another thread: checked between the script's
/// operations, so a loop that never takes a step stops too.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<std::sync::atomic::AtomicU8>);

impl Interrupt {
    const CANCEL: u8 = 1;
    const SHUT_DOWN: u8 = 2;

    /// The run was cancelled: the replay fails as cancelled.
    pub fn cancel(&self) {
        self.0
            .fetch_max(Self::CANCEL, std::sync::atomic::Ordering::SeqCst);
    }

    /// The server is shutting down: the replay ends as [`Outcome::Interrupted`].
    pub fn shut_down(&self) {
        self.0
            .fetch_max(Self::SHUT_DOWN, std::sync::atomic::Ordering::SeqCst);
    }

    fn get(&self) -> u8 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl RunContext {
    /// The context of a stored run: its input, and what it was started for from
    /// `run.context` (`alert`, `incident`, `breach`, `requester`).
    pub fn of_run(run: &crate::store::runs::RunRecord) -> RunContext {
        RunContext {
            run_id: run.id.clone(),
            playbook: run.playbook.clone(),
            input: run.input.as_object().cloned().unwrap_or_default(),
            alert: run.context["alert"].clone(),
            incident: run.context["incident"].clone(),
            breach: run.context["breach"].clone(),
            requester: run.context["requester"].clone(),
            plugins: Vec::new(),
            interrupt: Interrupt::default(),
        }
    }
}

struct ReplayState {
    run_id: String,
    /// The id of the run's incident, if it has one.
    incident: Option<String>,
    journal: Vec<Step>,
    next: u32,
    effects: Box<dyn Effects>,
    limits: ScriptLimits,
    stop: Option<Stop>,
    /// Time spent outside the script (effects and journal writes).
    outside: Duration,
    /// Bytes of the journal as JSON (requests and outcomes).
    journal_bytes: usize,
    /// The plugins the script may call.
    plugins: Vec<String>,
    interrupt: Interrupt,
    /// Bytes this thread held when the replay started (`alloc_meter`).
    memory_base: i64,
    /// Bytes held outside the script (the journal's new steps), not counted as its memory.
    memory_outside: i64,
}

/// A value as JSON for a step's request, at most `max_step_bytes` long.
fn step_json(s: &Shared, v: &Dynamic) -> Result<Value, Box<EvalAltResult>> {
    let max = lock(s).limits.max_step_bytes;
    super::json::to_json_value(v, max).map_err(Into::into)
}

/// Why the script was stopped from outside.
enum Stop {
    Waiting(i64),
    Failed(Failure),
    Interrupted,
}

type Shared = Arc<Mutex<ReplayState>>;

fn terminate(tag: &str) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(
        Dynamic::from(tag.to_owned()),
        Position::NONE,
    ))
}

impl ReplayState {
    /// Take step `kind(request)`: from the journal if it is there, else by running `perform`
    /// and recording the result before returning it.
    fn step(
        &mut self,
        kind: &str,
        request: Value,
        perform: impl FnOnce(&mut ReplayState, u32) -> (Value, bool),
    ) -> Result<(Value, bool), Box<EvalAltResult>> {
        let seq = self.next;
        self.next += 1;
        if let Some(recorded) = self.journal.get(seq as usize - 1) {
            if recorded.kind != kind || recorded.request != request {
                let message = format!(
                    "non-determinism at step {seq}: the script now asks for {kind} {request}, but the journal recorded {} {}; \
                     the playbook changed in a way that breaks this run (restart it from step {seq} to take the new path)",
                    recorded.kind, recorded.request
                );
                return Err(self.fail(FailureKind::NonDeterminism, message, Some(seq), "non-determinism"));
            }
            return Ok((recorded.outcome.clone(), recorded.ok));
        }
        if seq > self.limits.max_steps {
            let message = format!("limit max_steps ({}) reached", self.limits.max_steps);
            return Err(self.fail(
                FailureKind::Limit {
                    limit: "max_steps".into(),
                },
                message,
                Some(seq),
                "limit",
            ));
        }
        if let Some(stop) = self.interrupted() {
            return Err(stop);
        }
        if self.effects.cancelled() {
            return Err(self.fail(
                FailureKind::Cancelled,
                "the run was cancelled".into(),
                Some(seq),
                "cancelled",
            ));
        }
        let request_bytes = super::json::json_len(&request);
        if request_bytes > self.limits.max_step_bytes {
            return Err(self.step_too_large(seq, kind, request_bytes));
        }
        let outside = Instant::now();
        let held = crate::alloc_meter::thread_bytes();
        let started_at = self.effects.now_ms();
        let (mut outcome, mut ok) = perform(self, seq);
        if self.interrupt.get() == Interrupt::SHUT_DOWN {
            // Shutting down: what this step got (perhaps an abandoned plugin call) is not
            // journaled; the step is taken again when the run is replayed.
            self.stop = Some(Stop::Interrupted);
            return Err(terminate("interrupted"));
        }
        if let Err(e) = crate::nesting::check(&outcome, crate::nesting::MAX_DEPTH) {
            // A plugin's output the store could not give back: a failure of that call.
            (outcome, ok) = (
                serde_json::json!({ "kind": "invalid-output", "message": format!("the output is {e}"), "retryable": false }),
                false,
            );
        }
        let bytes = request_bytes + super::json::json_len(&outcome);
        if bytes > self.limits.max_step_bytes {
            return Err(self.step_too_large(seq, kind, bytes));
        }
        if self.journal_bytes + bytes > self.limits.max_journal_bytes {
            let message = format!(
                "limit max_journal_bytes ({}) reached: step {seq} ({kind}, {bytes} bytes) would make the journal {} bytes",
                self.limits.max_journal_bytes,
                self.journal_bytes + bytes
            );
            return Err(self.fail(
                FailureKind::Limit {
                    limit: "max_journal_bytes".into(),
                },
                message,
                Some(seq),
                "limit",
            ));
        }
        let step = Step {
            seq,
            kind: kind.to_owned(),
            request,
            outcome: outcome.clone(),
            ok,
            started_at,
            duration_ms: (self.effects.now_ms() - started_at).max(0),
        };
        if let Err(e) = self.effects.record(&self.run_id, &step) {
            let message = format!("step {seq} could not be written to the journal: {e}");
            return Err(self.fail(FailureKind::Journal, message, Some(seq), "journal"));
        }
        self.journal.push(step);
        self.journal_bytes += bytes;
        self.memory_outside += crate::alloc_meter::thread_bytes() - held;
        self.outside += outside.elapsed();
        Ok((outcome, ok))
    }

    fn step_too_large(&mut self, seq: u32, kind: &str, bytes: usize) -> Box<EvalAltResult> {
        let message = format!(
            "limit max_step_bytes ({}) reached: step {seq} ({kind}) is {bytes} bytes as JSON",
            self.limits.max_step_bytes
        );
        self.fail(
            FailureKind::Limit {
                limit: "max_step_bytes".into(),
            },
            message,
            Some(seq),
            "limit",
        )
    }

    /// Refuse a new call to a plugin the playbook does not declare. A step the journal
    /// already has (recorded before the playbook changed) replays as it was.
    fn check_declared(&mut self, plugin: &str, request: &Value) -> Result<(), Box<EvalAltResult>> {
        let seq = self.next;
        let recorded = self
            .journal
            .get(seq as usize - 1)
            .is_some_and(|s| s.kind == "invoke" && &s.request == request);
        if recorded || self.plugins.iter().any(|p| p == plugin) {
            return Ok(());
        }
        let declared = if self.plugins.is_empty() {
            "it declares none".to_owned()
        } else {
            format!("it declares {}", self.plugins.join(", "))
        };
        let message = format!(
            "step {seq}: the playbook may not call plugin '{plugin}': {declared} (add it to `plugins` in playbook.toml)"
        );
        Err(self.fail(
            FailureKind::Undeclared {
                plugin: plugin.to_owned(),
            },
            message,
            Some(seq),
            "undeclared",
        ))
    }

    /// The stop to raise if the replay was interrupted from outside.
    fn interrupted(&mut self) -> Option<Box<EvalAltResult>> {
        match self.interrupt.get() {
            0 => None,
            Interrupt::CANCEL => Some(self.fail(
                FailureKind::Cancelled,
                "the run was cancelled".into(),
                None,
                "cancelled",
            )),
            _ => {
                self.stop = Some(Stop::Interrupted);
                Some(terminate("interrupted"))
            }
        }
    }

    /// Stop the script between two operations: limit `limit` was reached.
    fn stop_at_limit(&mut self, limit: &str, message: String) -> Dynamic {
        self.stop = Some(Stop::Failed(Failure {
            kind: FailureKind::Limit { limit: limit.into() },
            message,
            step: None,
        }));
        Dynamic::from("limit".to_string())
    }

    /// Memory the script holds now, in bytes.
    fn memory(&self) -> i64 {
        crate::alloc_meter::thread_bytes() - self.memory_base - self.memory_outside
    }

    /// Take step `kind(request)` that waits for something outside: from the journal if it
    /// is there; else `probe` says whether it is ready (then it is recorded and returned) or
    /// until when to wait (then the replay unwinds with `Waiting`, recording nothing).
    fn wait_step(
        &mut self,
        kind: &str,
        request: Value,
        probe: impl FnOnce(&mut ReplayState) -> Result<QuestionWait, String>,
    ) -> Result<Value, Box<EvalAltResult>> {
        let seq = self.next;
        if self.journal.get(seq as usize - 1).is_none() {
            let outside = Instant::now();
            let probed = probe(self);
            self.outside += outside.elapsed();
            match probed {
                Ok(QuestionWait::Until(wake_at)) => {
                    self.stop = Some(Stop::Waiting(wake_at));
                    return Err(terminate("waiting"));
                }
                Ok(QuestionWait::Done(outcome)) => {
                    return self
                        .step(kind, request, move |_, _| (outcome, true))
                        .map(|(v, _)| v);
                }
                Err(message) => {
                    // The store could not be read: the replay is retried later.
                    let message = format!("step {seq}: {message}");
                    return Err(self.fail(FailureKind::Journal, message, Some(seq), "question"));
                }
            }
        }
        self.step(kind, request, |_, _| (Value::Null, true))
            .map(|(v, _)| v)
    }

    fn fail(
        &mut self,
        kind: FailureKind,
        message: String,
        step: Option<u32>,
        tag: &str,
    ) -> Box<EvalAltResult> {
        self.stop = Some(Stop::Failed(Failure { kind, message, step }));
        terminate(tag)
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, ReplayState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Register the effectful functions, each bound to this replay's state.
/// The functions that change what Osprey keeps (incidents, lists, notifications): each a
/// journaled step of kind `act`, whose failure the script can catch like a plugin error.
fn register_acts(engine: &mut Engine, state: &Shared) {
    let act = {
        let s = state.clone();
        move |action: &'static str,
              mut args: serde_json::Map<String, Value>|
              -> Result<Dynamic, Box<EvalAltResult>> {
            let mut st = lock(&s);
            if action.starts_with("incident_") && action != "incident_create" {
                match &st.incident {
                    Some(id) => {
                        args.insert("incident".into(), id.clone().into());
                    }
                    None => {
                        let mut e = Map::new();
                        e.insert("kind".into(), "invalid-input".into());
                        e.insert(
                            "message".into(),
                            format!("{action}: this run has no incident").into(),
                        );
                        e.insert("retryable".into(), false.into());
                        e.insert("action".into(), action.into());
                        return Err(Box::new(EvalAltResult::ErrorRuntime(e.into(), Position::NONE)));
                    }
                }
            } else if let Some(id) = &st.incident {
                args.insert("incident".into(), id.clone().into());
            }
            let args = Value::Object(args);
            let request = serde_json::json!({ "action": action, "args": args });
            let (outcome, ok) = st.step("act", request, |st, seq| {
                let key = format!("{}:{seq}", st.run_id);
                let run_id = st.run_id.clone();
                match st.effects.act(action, &args, &run_id, &key) {
                    Ok(v) => (v, true),
                    Err(message) => (serde_json::json!({ "kind": "invalid-input", "message": message, "retryable": false }), false),
                }
            })?;
            drop(st);
            if ok {
                api::from_json_value(&outcome)
            } else {
                let mut err = api::from_json_value(&outcome)?;
                if let Some(mut map) = err.write_lock::<Map>() {
                    map.insert("action".into(), action.into());
                }
                Err(Box::new(EvalAltResult::ErrorRuntime(err, Position::NONE)))
            }
        }
    };
    let args = |pairs: Vec<(&str, Value)>| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let a = act.clone();
    engine.register_fn("incident_note", move |text: &str| {
        a("incident_note", args(vec![("text", text.into())]))
    });
    let a = act.clone();
    engine.register_fn("incident_close", move |reason: &str| {
        a("incident_close", args(vec![("reason", reason.into())]))
    });
    let a = act.clone();
    let s2 = state.clone();
    engine.register_fn(
        "incident_set",
        move |changes: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let changes = step_json(&s2, &Dynamic::from_map(changes))?;
            a("incident_set", changes.as_object().cloned().unwrap_or_default())
        },
    );
    let a = act.clone();
    let s2 = state.clone();
    engine.register_fn(
        "list_add",
        move |list: &str, value: &str, options: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let options = step_json(&s2, &Dynamic::from_map(options))?;
            let mut m = options.as_object().cloned().unwrap_or_default();
            m.insert("list".into(), list.into());
            m.insert("value".into(), value.into());
            a("list_add", m)
        },
    );
    let a = act.clone();
    engine.register_fn("list_add", move |list: &str, value: &str| {
        a(
            "list_add",
            args(vec![("list", list.into()), ("value", value.into())]),
        )
    });
    // Indicators: a read (journaled, as it changes between runs) and a verdict.
    let a = act.clone();
    engine.register_fn("indicator", move |kind: &str, value: &str| {
        a(
            "indicator_get",
            args(vec![("kind", kind.into()), ("value", value.into())]),
        )
    });
    let a = act.clone();
    let s2 = state.clone();
    engine.register_fn(
        "indicator_set",
        move |kind: &str, value: &str, verdict: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let verdict = step_json(&s2, &Dynamic::from_map(verdict))?;
            let mut m = verdict.as_object().cloned().unwrap_or_default();
            m.insert("kind".into(), kind.into());
            m.insert("value".into(), value.into());
            a("indicator_set", m)
        },
    );
    let a = act.clone();
    engine.register_fn("list_remove", move |list: &str, value: &str| {
        a(
            "list_remove",
            args(vec![("list", list.into()), ("value", value.into())]),
        )
    });
    // Create an incident (top-level) or spawn a child of the run's incident; both return
    // the new incident's id.
    for name in ["incident_create", "incident_spawn"] {
        let a = act.clone();
        let s2 = state.clone();
        engine.register_fn(name, move |spec: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let spec = step_json(&s2, &Dynamic::from_map(spec))?;
            a(name, spec.as_object().cloned().unwrap_or_default())
        });
    }
    let a = act.clone();
    engine.register_fn("incident_link", move |other: &str| {
        a("incident_link", args(vec![("other", other.into())]))
    });
    let a = act.clone();
    let s2 = state.clone();
    engine.register_fn(
        "task_create",
        move |spec: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let spec = step_json(&s2, &Dynamic::from_map(spec))?;
            a("task_create", spec.as_object().cloned().unwrap_or_default())
        },
    );
    let a = act.clone();
    let s2 = state.clone();
    engine.register_fn(
        "send_email",
        move |spec: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let spec = step_json(&s2, &Dynamic::from_map(spec))?;
            a("send_email", spec.as_object().cloned().unwrap_or_default())
        },
    );
    // ask / approve / form: an `act` step that stores the question (and mails it), then a
    // `question` step that waits for its answer: the replay unwinds while it is open and
    // the answer (or the default, at the due time) is journaled when it comes.
    for kind in ["ask", "approve", "form"] {
        let a = act.clone();
        let s = state.clone();
        let s2 = state.clone();
        engine.register_fn(kind, move |spec: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let spec = step_json(&s2, &Dynamic::from_map(spec))?;
            let mut args = serde_json::Map::new();
            args.insert("kind".into(), kind.into());
            args.insert("spec".into(), spec);
            let asked = step_json(&s2, &a("question_ask", args)?)?;
            let id = asked["id"].as_str().unwrap_or_default().to_owned();
            let mut st = lock(&s);
            let request = serde_json::json!({ "question": id });
            let outcome = st.wait_step("question", request, |st| st.effects.question_wait(&id))?;
            drop(st);
            question_result(kind, &outcome)
        });
    }
    let a = act;
    engine.register_fn("notify", move |to: &str, message: &str| {
        a(
            "notify",
            args(vec![("to", to.into()), ("message", message.into())]),
        )
    });
}

/// What a plugin step gives the script: its output, or its failure as a catchable error map
/// `#{ kind, message, retryable, plugin, action }`.
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

/// What an answered question gives the script, or the catchable error of one that timed out
/// without a default (`kind: "timeout"`) or was cancelled (`kind: "cancelled"`).
fn question_result(function: &str, outcome: &Value) -> Result<Dynamic, Box<EvalAltResult>> {
    let failed = match outcome["status"].as_str() {
        Some("timed_out") if outcome["answer"].is_null() => {
            Some(("timeout", "was not answered in time and has no default"))
        }
        Some("cancelled") => Some(("cancelled", "was cancelled")),
        _ => None,
    };
    if let Some((kind, what)) = failed {
        let mut e = Map::new();
        e.insert("kind".into(), kind.into());
        e.insert(
            "message".into(),
            format!(
                "{function}: question {} {what}",
                outcome["question"].as_str().unwrap_or("?")
            )
            .into(),
        );
        e.insert("retryable".into(), false.into());
        e.insert("action".into(), function.into());
        return Err(Box::new(EvalAltResult::ErrorRuntime(e.into(), Position::NONE)));
    }
    api::from_json_value(outcome)
}

/// The longest `sleep`: a year and a day. Longer waits are a cron trigger's job.
const MAX_SLEEP_SECONDS: f64 = 366.0 * 24.0 * 3600.0;

fn register_effects(engine: &mut Engine, state: &Shared) {
    let s = state.clone();
    engine.register_fn(
        "invoke",
        move |plugin: &str, action: &str, input: Map| -> Result<Dynamic, Box<EvalAltResult>> {
            let input_json = step_json(&s, &Dynamic::from_map(input))?;
            let request = serde_json::json!({ "plugin": plugin, "action": action, "input": input_json });
            lock(&s).check_declared(plugin, &request)?;
            let (outcome, ok) = lock(&s).step("invoke", request, |st, seq| {
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
            let (outcome, ok) = lock(&s).step("invoke", request, |st, seq| {
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

    register_acts(engine, state);

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
        let (outcome, _) = st.step("sleep", serde_json::json!({ "ms": ms }), |st, _| {
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
        let (outcome, _) = lock(&s).step("now", Value::Null, |st, _| (st.effects.now_ms().into(), true))?;
        Ok(outcome.as_i64().unwrap_or(0))
    });

    let s = state.clone();
    engine.register_fn("random", move || -> Result<f64, Box<EvalAltResult>> {
        let (outcome, _) = lock(&s).step("random", Value::Null, |st, _| {
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
                "random",
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
        let (outcome, _) = lock(&s).step("random", serde_json::json!({ "uuid": true }), |st, _| {
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
                    "log",
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
            "log",
            serde_json::json!({ "level": "info", "message": text }),
            |_, _| (Value::Null, true),
        );
    });
    let s = state.clone();
    engine.on_debug(move |text, _, _| {
        let _ = lock(&s).step(
            "log",
            serde_json::json!({ "level": "debug", "message": text }),
            |_, _| (Value::Null, true),
        );
    });

    // retry()'s backoff: base seconds (or a duration string) doubled per attempt.
    engine.register_fn(
        "__backoff",
        |base: Dynamic, attempt: i64| -> Result<f64, Box<EvalAltResult>> {
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

    // Wall time of the script itself, checked as it runs.
    let s = state.clone();
    let started = Instant::now();
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
        let script_time = started.elapsed().saturating_sub(st.outside);
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
    let limits = lock(state).limits;
    let checked = Mutex::new(std::collections::HashMap::<usize, (usize, u32)>::new());
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
        let mut seen = checked.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((checked_len, uses)) = seen.get_mut(&address)
            && *checked_len == len
            && *uses < 16
        {
            *uses += 1;
            return Ok(None);
        }
        if let Some(over) = super::json::over_limits(v, &limits) {
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

/// Room for the replay's stack: the script's values are dropped (and compared, and shown)
/// by recursion as deep as they are nested. Reserved, not committed: only what is used
/// costs memory.
const REPLAY_STACK_BYTES: usize = 1 << 30;

/// Replay `script` for `run` over `journal`, performing new steps through `effects`.
/// Returns how it ended and the effects (to reuse), plus the full journal.
pub fn replay(
    script: &Script,
    limits: ScriptLimits,
    run: &RunContext,
    journal: Vec<Step>,
    effects: Box<dyn Effects>,
) -> (Outcome, Box<dyn Effects>, Vec<Step>) {
    stacker::grow(REPLAY_STACK_BYTES, || {
        replay_here(script, limits, run, journal, effects)
    })
}

fn replay_here(
    script: &Script,
    limits: ScriptLimits,
    run: &RunContext,
    journal: Vec<Step>,
    effects: Box<dyn Effects>,
) -> (Outcome, Box<dyn Effects>, Vec<Step>) {
    let journal_bytes = journal
        .iter()
        .map(|s| super::json::json_len(&s.request) + super::json::json_len(&s.outcome))
        .sum();
    let state: Shared = Arc::new(Mutex::new(ReplayState {
        run_id: run.run_id.clone(),
        incident: run.incident["id"].as_str().map(str::to_owned),
        journal,
        next: 1,
        effects,
        limits,
        stop: None,
        outside: Duration::ZERO,
        journal_bytes,
        plugins: run.plugins.clone(),
        interrupt: run.interrupt.clone(),
        memory_base: crate::alloc_meter::thread_bytes(),
        memory_outside: 0,
    }));
    let mut engine = base_engine(&limits);
    register_effects(&mut engine, &state);

    let mut scope = Scope::new();
    let input = api::from_json_value(&Value::Object(run.input.clone())).unwrap_or(Dynamic::UNIT);
    scope.push_constant("input", input);
    let mut run_map = Map::new();
    run_map.insert("id".into(), run.run_id.clone().into());
    run_map.insert("playbook".into(), run.playbook.clone().into());
    scope.push_constant("run", run_map);
    // `()` for runs not started from an alert, a breach or a request.
    for (name, value) in [
        ("alert", &run.alert),
        ("incident", &run.incident),
        ("breach", &run.breach),
        ("requester", &run.requester),
    ] {
        scope.push_constant(name, api::from_json_value(value).unwrap_or(Dynamic::UNIT));
    }

    let result = engine.eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast);
    drop(engine);
    let state = Arc::try_unwrap(state)
        .ok()
        .expect("the engine held the only other reference")
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let current_step = if state.next > 1 {
        Some(state.next - 1)
    } else {
        None
    };
    let outcome = match (result, state.stop) {
        (_, Some(Stop::Waiting(wake_at))) => Outcome::Waiting { wake_at },
        (_, Some(Stop::Failed(f))) => Outcome::Failed(f),
        (_, Some(Stop::Interrupted)) => Outcome::Interrupted,
        (Ok(value), None) => match super::json::to_json_value(&value, limits.max_step_bytes) {
            Ok(v) => Outcome::Completed(v),
            Err(e) => Outcome::Failed(Failure {
                kind: FailureKind::Script,
                message: format!("the script's result cannot be stored as JSON: {e}"),
                step: None,
            }),
        },
        (Err(e), None) => Outcome::Failed(failure_from(*e, &limits, current_step)),
    };
    (outcome, state.effects, state.journal)
}

/// Turn an error that escaped the script into a failure that says what happened.
fn failure_from(err: EvalAltResult, limits: &ScriptLimits, step: Option<u32>) -> Failure {
    let limit = |name: &str, value: String| Failure {
        kind: FailureKind::Limit { limit: name.into() },
        message: format!("limit {name} ({value}) reached"),
        step,
    };
    let inner = unwrap_calls(err);
    match inner {
        EvalAltResult::ErrorTooManyOperations(pos) => {
            let mut f = limit("max_operations", limits.max_operations.to_string());
            f.message.push_str(&format!(" at {pos}"));
            f
        }
        EvalAltResult::ErrorStackOverflow(pos) => {
            let mut f = limit("max_call_depth", limits.max_call_depth.to_string());
            f.message.push_str(&format!(" at {pos}"));
            f
        }
        EvalAltResult::ErrorDataTooLarge(what, pos) => {
            let (name, value) = if what.contains("limit max_map_len") {
                ("max_map_len", limits.max_map_len)
            } else if what.contains("limit max_array_len") {
                ("max_array_len", limits.max_array_len)
            } else if what.contains("string") || what.contains("String") {
                ("max_string_bytes", limits.max_string_bytes)
            } else if what.contains("rray") {
                ("max_array_len", limits.max_array_len)
            } else {
                ("max_map_len", limits.max_map_len)
            };
            let mut f = limit(name, value.to_string());
            f.message.push_str(&format!(": {what} too large at {pos}"));
            f
        }
        EvalAltResult::ErrorRuntime(value, pos) => {
            if let Some(map) = value.read_lock::<Map>()
                && map.contains_key("kind")
                && map.contains_key("plugin")
            {
                let retryable = map
                    .get("retryable")
                    .and_then(|v| v.as_bool().ok())
                    .unwrap_or(false);
                let text = |k: &str| map.get(k).map(|v| v.to_string()).unwrap_or_default();
                return Failure {
                    kind: FailureKind::Plugin { retryable },
                    message: format!(
                        "{}/{} failed ({}): {} (not caught by the script, at {pos})",
                        text("plugin"),
                        text("action"),
                        text("kind"),
                        text("message")
                    ),
                    step,
                };
            }
            Failure {
                kind: FailureKind::Script,
                message: format!("{value} (thrown at {pos})"),
                step,
            }
        }
        other => Failure {
            kind: FailureKind::Script,
            message: other.to_string(),
            step,
        },
    }
}

/// The innermost error of a chain of function calls.
fn unwrap_calls(err: EvalAltResult) -> EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => unwrap_calls(*inner),
        other => other,
    }
}
