//! One call, from input validation to a typed outcome.
//!
//! A call gets a fresh store and instance, a wall-clock deadline enforced twice (the epoch
//! callback stops a guest spinning in wasm; a timer stops a guest blocked in the host), a
//! memory cap, an outbound gate, and bounded stdout/stderr. Whatever happens inside, the
//! caller gets a [`CallOutcome`] or a [`CallError`] with the right kind.

use super::host::{CallLimiter, CallState, HostEnv, MemoryLimitExceeded, truncate};
use super::outbound::OutboundGate;
use super::sockets;
use super::stdio::CapturePipe;
use super::webhook::WebhookCall;
use super::wit::WebhookEvent;
use super::wit::{Descriptor, ErrorRecord, Pre, WebhookOutcome, WebhookRequest};
use super::{CallContext, CallError, CallOutcome, ErrorKind, HttpEvent, HttpOutcome, LoadedPlugin, Runtime};
use crate::capability::{Capabilities, Limits};
use crate::metrics::{Denial, Metrics};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::{Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

/// Bytes of stdout and of stderr kept per call.
const STDIO_CAPTURE: usize = 64 * 1024;
/// Longest error message passed on from a plugin.
const MAX_ERROR_MESSAGE: usize = 4096;
/// Deadline of `describe` at load time.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

struct Prepared {
    store: wasmtime::Store<CallState>,
    stdout: CapturePipe,
    stderr: CapturePipe,
    events: Arc<Mutex<Vec<HttpEvent>>>,
}

/// What one call's store is built from.
struct Setup<'a> {
    plugin: &'a str,
    run_id: &'a str,
    grant: Arc<Capabilities>,
    client: reqwest::Client,
    config: Arc<BTreeMap<String, String>>,
    secrets: Arc<BTreeMap<String, crate::vault::Sealed>>,
    limits: &'a Limits,
    /// Whether the osprey imports may reach the store (not while describing).
    with_store: bool,
    deadline: Instant,
}

fn prepare(rt: &Runtime, setup: Setup<'_>) -> Prepared {
    let Setup {
        plugin,
        run_id,
        grant,
        client,
        config,
        secrets,
        limits,
        with_store,
        deadline,
    } = setup;
    let stdout = CapturePipe::new(STDIO_CAPTURE);
    let stderr = CapturePipe::new(STDIO_CAPTURE);
    // Nothing is inherited or preopened: no environment, arguments, stdin or directories,
    // and no network but the gated wasi:http.
    let wasi = sockets::deny_all(&mut WasiCtxBuilder::new())
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .build();
    let events = Arc::new(Mutex::new(Vec::new()));
    let plugin: Arc<str> = Arc::from(plugin);
    let state = CallState {
        wasi,
        table: wasmtime::component::ResourceTable::new(),
        http: WasiHttpCtx::new(),
        gate: OutboundGate {
            plugin: plugin.clone(),
            grant: grant.clone(),
            client,
            max_requests: limits.max_requests,
            max_response_bytes: limits.max_response_bytes,
            deadline,
            sent: 0,
            events: events.clone(),
        },
        limiter: CallLimiter {
            memory_limit: limits.memory_mib as usize * 1024 * 1024,
            memory_exceeded: false,
        },
        env: HostEnv {
            plugin,
            run_id: run_id.to_owned(),
            store: with_store.then(|| rt.inner.store.clone()),
            vault: rt.inner.vault.clone(),
            grant,
            config,
            secrets,
            kv_quota: limits.kv_quota_bytes,
            logs_written: 0,
            logs_dropped: 0,
            handed_out: Vec::new(),
            secrets_denied: 0,
        },
    };
    let mut store = wasmtime::Store::new(&rt.inner.engine, state);
    store.limiter(|s| &mut s.limiter);
    // Check the clock at every epoch tick: stop at the deadline, otherwise yield to the
    // executor so a spinning guest does not starve other tasks on this thread.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    Prepared {
        store,
        stdout,
        stderr,
        events,
    }
}

/// Why a plugin's `describe` gave no descriptor.
#[derive(Debug, thiserror::Error)]
pub(super) enum DescribeError {
    #[error("did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
    /// It trapped or broke a limit: the call's message says how.
    #[error("{}", .0.message)]
    Failed(#[source] CallError),
}

/// Call `describe` in a fresh instance, with no imports usable.
pub(super) async fn describe(rt: &Runtime, pre: &Pre, plugin: &str) -> Result<Descriptor, DescribeError> {
    let limits = rt.inner.options.limits;
    let deadline = Instant::now() + DESCRIBE_TIMEOUT;
    let grant = Arc::new(Capabilities::default());
    let client = super::outbound::client_for(grant.clone());
    let mut p = prepare(
        rt,
        Setup {
            plugin,
            run_id: "describe",
            grant,
            client,
            config: Arc::default(),
            secrets: Arc::default(),
            limits: &limits,
            with_store: false,
            deadline,
        },
    );
    let run = pre.describe(&mut p.store);
    match tokio::time::timeout(DESCRIBE_TIMEOUT, run).await {
        Err(_) => Err(DescribeError::Timeout(DESCRIBE_TIMEOUT)),
        Ok(Ok(d)) => Ok(d),
        Ok(Err(e)) => {
            let (stderr, _) = p.stderr.contents();
            Err(DescribeError::Failed(classify_trap(
                &e,
                &p.store.data().limiter,
                &stderr,
                &limits,
            )))
        }
    }
}

/// Check `input` against `action`'s input schema, as every call does before it runs: an
/// unknown action or an input the schema rejects is invalid input. Returns the action's output
/// validator.
pub(super) fn check_input<'p>(
    plugin: &'p LoadedPlugin,
    action: &str,
    input: &serde_json::Value,
) -> Result<&'p jsonschema::Validator, CallError> {
    let name = plugin.name();
    let Some((input_validator, output_validator)) = plugin.validators.get(action) else {
        let known: Vec<&str> = plugin
            .description
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        return Err(CallError::new(
            ErrorKind::InvalidInput,
            format!(
                "plugin '{name}' has no action '{action}'; it has: {}",
                known.join(", ")
            ),
        ));
    };
    let problems = schema_problems(input_validator, input, 10);
    if !problems.is_empty() {
        return Err(CallError::new(
            ErrorKind::InvalidInput,
            format!("input of {name}/{action} does not match its schema: {problems}"),
        ));
    }
    Ok(output_validator)
}

/// What `validator` finds wrong with `value`: at most `most` problems, each at its path,
/// joined with "; " (empty when there is none).
pub(crate) fn schema_problems(
    validator: &jsonschema::Validator,
    value: &serde_json::Value,
    most: usize,
) -> String {
    validator
        .iter_errors(value)
        .take(most)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A call under way: its store, and when and under which limits it started.
struct Running {
    p: Prepared,
    started: Instant,
    limits: Limits,
}

/// A fresh store for one call of `plugin`, under its policy in force.
fn start(rt: &Runtime, plugin: &LoadedPlugin, run_id: &str) -> Running {
    let started = Instant::now();
    let policy = plugin.policy();
    let limits = policy.limits;
    let p = prepare(
        rt,
        Setup {
            plugin: plugin.name(),
            run_id,
            grant: policy.grant.clone(),
            client: policy.client.clone(),
            config: policy.config.clone(),
            secrets: policy.secrets.clone(),
            limits: &limits,
            with_store: true,
            deadline: started + limits.timeout,
        },
    );
    Running { p, started, limits }
}

/// What an export called in a call's store ended with, under the call's deadline.
type Ended<T> = Result<wasmtime::Result<Result<T, ErrorRecord>>, tokio::time::error::Elapsed>;

/// Account for what a call did (stdio, dropped logs, denials) and type how it ended. `what`
/// names the call in messages (`plugin/action`). Returns the guest's value and the call's
/// outbound requests.
fn settle<T>(
    rt: &Runtime,
    running: &Running,
    what: &str,
    result: Ended<T>,
) -> (Result<T, CallError>, Vec<HttpEvent>) {
    let limits = &running.limits;
    let p = &running.p;
    let state = p.store.data();
    let env = &state.env;
    let name = &*env.plugin;
    let http: Vec<HttpEvent> = p.events.lock().expect("events lock").clone();
    let (stdout, stdout_dropped) = p.stdout.contents();
    let (stderr, stderr_dropped) = p.stderr.contents();
    forward_stdio(env, "stdout", &stdout, stdout_dropped);
    forward_stdio(env, "stderr", &stderr, stderr_dropped);
    if env.logs_dropped > 0 {
        tracing::warn!(plugin = %name, run = %env.run_id, dropped = env.logs_dropped, "plugin wrote more log records than allowed; the rest were dropped");
    }
    count_denials(&rt.inner.options.metrics, name, &http, env.secrets_denied);

    let outcome = match result {
        Err(_elapsed) => Err(timeout_error(what, limits)),
        Ok(Err(trap)) => {
            let mut e = classify_trap(&trap, &state.limiter, &env.scrub(&stderr), limits);
            if e.kind == ErrorKind::Timeout {
                e = timeout_error(what, limits);
            }
            Err(e)
        }
        Ok(Ok(Err(guest))) => Err(guest_error(env, guest, &http)),
        Ok(Ok(Ok(value))) => Ok(value),
    };
    (outcome, http)
}

/// The guest's own error, scrubbed; or, when the host refused one of its requests, that
/// refusal, which explains the failure better than the guest can (a guest may see a refusal
/// as a reset connection).
fn guest_error(env: &HostEnv, guest: ErrorRecord, http: &[HttpEvent]) -> CallError {
    let name = &*env.plugin;
    let mut message = env.scrub(&guest.message);
    truncate(&mut message, MAX_ERROR_MESSAGE);
    let mut e = CallError::new(guest.kind, message);
    e.retryable = guest.retryable;
    e.retry_after = guest.retry_after.filter(|_| guest.retryable);
    if let Some((ev, why)) = http.iter().find_map(|ev| match &ev.outcome {
        HttpOutcome::LimitExceeded(why) => Some((ev, why)),
        _ => None,
    }) {
        e = CallError::new(
            ErrorKind::LimitExceeded,
            format!("{} {}: {why}", ev.method, ev.url),
        );
    } else if let Some((ev, why)) = http.iter().find_map(|ev| match &ev.outcome {
        HttpOutcome::Denied(why) => Some((ev, why)),
        _ => None,
    }) {
        e = CallError::new(
            ErrorKind::Denied,
            format!(
                "outbound request {} {} was denied by the grant of plugin '{name}': {why}",
                ev.method, ev.url
            ),
        );
    }
    e
}

/// Log the end of a call and give a failure its duration and requests.
fn finish<T>(
    what: &str,
    run_id: &str,
    running: &Running,
    outcome: Result<T, CallError>,
    http: &[HttpEvent],
) -> Result<T, CallError> {
    let duration = running.started.elapsed();
    let name = &*running.p.store.data().env.plugin;
    let ms = duration.as_millis() as u64;
    match outcome {
        Ok(value) => {
            tracing::debug!(plugin = %name, call = %what, run = %run_id, ms, "plugin call succeeded");
            Ok(value)
        }
        Err(mut e) => {
            tracing::warn!(plugin = %name, call = %what, run = %run_id, kind = %e.kind, error = %e.message, ms, "plugin call failed");
            e.duration = duration;
            e.http = http.to_vec();
            Err(e)
        }
    }
}

/// Run one action; see [`Runtime::call`].
pub(super) async fn invoke(
    rt: &Runtime,
    plugin: &LoadedPlugin,
    action: &str,
    input: &serde_json::Value,
    ctx: CallContext,
) -> Result<CallOutcome, CallError> {
    let name = plugin.name();
    let output_validator = check_input(plugin, action, input)?;
    let what = format!("{name}/{action}");
    let mut running = start(rt, plugin, &ctx.run_id);
    let input_text = input.to_string();
    let call = plugin.pre.invoke(&mut running.p.store, action, &input_text, &ctx);
    let ended = tokio::time::timeout(running.limits.timeout, call).await;
    let (outcome, http) = settle(rt, &running, &what, ended);
    let outcome = outcome.and_then(|output| {
        let env = &running.p.store.data().env;
        let checked = check_output(name, action, &output, &running.limits, output_validator, env);
        if checked.as_ref().is_err_and(|e| e.kind == ErrorKind::Denied) {
            rt.inner
                .options
                .metrics
                .plugin_denied(name, Denial::SecretInOutput, 1);
        }
        checked
    });
    let output = finish(&what, &ctx.run_id, &running, outcome, &http)?;
    Ok(CallOutcome {
        output,
        duration: running.started.elapsed(),
        http,
        mocked: false,
    })
}

/// Events one webhook may return, at most.
const MAX_WEBHOOK_EVENTS: usize = 100;

/// Handle one webhook; see [`Runtime::handle_webhook`].
pub(super) async fn handle_webhook(
    rt: &Runtime,
    plugin: &LoadedPlugin,
    request: &WebhookRequest,
    ctx: CallContext,
) -> Result<WebhookCall, CallError> {
    let name = plugin.name();
    let what = format!("{name}/handle-webhook");
    let mut running = start(rt, plugin, &ctx.run_id);
    let call = plugin.pre.handle_webhook(&mut running.p.store, request, &ctx);
    let ended = tokio::time::timeout(running.limits.timeout, call).await;
    let (outcome, http) = settle(rt, &running, &what, ended);
    let outcome = outcome.and_then(|o| {
        let checked = check_webhook_outcome(&what, o, &running.limits, &running.p.store.data().env);
        if checked.as_ref().is_err_and(|e| e.kind == ErrorKind::Denied) {
            rt.inner
                .options
                .metrics
                .plugin_denied(name, Denial::SecretInOutput, 1);
        }
        checked
    });
    let WebhookOutcome { response, events } = finish(&what, &ctx.run_id, &running, outcome, &http)?;
    Ok(WebhookCall {
        response,
        events,
        duration: running.started.elapsed(),
        http,
    })
}

/// A webhook's outcome within the output limit and the event count, and holding no secret.
fn check_webhook_outcome(
    what: &str,
    outcome: WebhookOutcome,
    limits: &Limits,
    env: &HostEnv,
) -> Result<WebhookOutcome, CallError> {
    let WebhookOutcome { response, events } = &outcome;
    if events.len() > MAX_WEBHOOK_EVENTS {
        return Err(CallError::new(
            ErrorKind::LimitExceeded,
            format!(
                "{what} returned {} events; the most is {MAX_WEBHOOK_EVENTS}",
                events.len()
            ),
        ));
    }
    let mut texts: Vec<std::borrow::Cow<'_, str>> = vec![String::from_utf8_lossy(&response.body)];
    for (name, value) in &response.headers {
        texts.extend([name.as_str().into(), value.as_str().into()]);
    }
    for event in events {
        match event {
            WebhookEvent::Alert(json) => texts.push(json.as_str().into()),
            WebhookEvent::Answer(a) => {
                texts.extend([
                    a.question.as_str().into(),
                    a.answer.as_str().into(),
                    a.by.as_str().into(),
                ]);
                texts.extend(a.email.as_deref().map(Into::into));
            }
        }
    }
    let size: u64 = texts.iter().map(|t| t.len() as u64).sum();
    if size > limits.max_output_bytes {
        return Err(CallError::new(
            ErrorKind::LimitExceeded,
            format!(
                "{what} returned {size} bytes of response and events; the limit is {} bytes",
                limits.max_output_bytes
            ),
        ));
    }
    if texts.iter().any(|t| env.contains_secret(t)) {
        tracing::warn!(call = %what, "a webhook's response or events contained a secret value; refused");
        return Err(CallError::new(
            ErrorKind::Denied,
            format!("{what} tried to return the value of a secret; secrets never leave a plugin"),
        ));
    }
    Ok(outcome)
}

/// Count what the host refused during one call: outbound requests (from its events) and
/// secrets.
fn count_denials(metrics: &Metrics, plugin: &str, http: &[HttpEvent], secrets_denied: u32) {
    let denied = http
        .iter()
        .filter(|e| matches!(e.outcome, HttpOutcome::Denied(_)))
        .count() as u64;
    let limited = http
        .iter()
        .filter(|e| matches!(e.outcome, HttpOutcome::LimitExceeded(_)))
        .count() as u64;
    for (kind, n) in [
        (Denial::Http, denied),
        (Denial::HttpLimit, limited),
        (Denial::Secret, u64::from(secrets_denied)),
    ] {
        if n > 0 {
            metrics.plugin_denied(plugin, kind, n);
        }
    }
}

fn check_output(
    name: &str,
    action: &str,
    output: &str,
    limits: &Limits,
    validator: &jsonschema::Validator,
    env: &HostEnv,
) -> Result<serde_json::Value, CallError> {
    if output.len() as u64 > limits.max_output_bytes {
        return Err(CallError::new(
            ErrorKind::LimitExceeded,
            format!(
                "{name}/{action} returned {} bytes of output; the limit is {} bytes",
                output.len(),
                limits.max_output_bytes
            ),
        ));
    }
    if env.contains_secret(output) {
        tracing::warn!(plugin = %name, %action, "plugin output contained a secret value; refused");
        return Err(CallError::new(
            ErrorKind::Denied,
            format!("{name}/{action} tried to return the value of a secret; secrets never leave a plugin"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(output).map_err(|e| {
        CallError::new(
            ErrorKind::Internal,
            format!("{name}/{action} returned invalid JSON: {e}"),
        )
    })?;
    let problems: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|e| e.to_string())
        .collect();
    if !problems.is_empty() {
        return Err(CallError::new(
            ErrorKind::Internal,
            format!(
                "{name}/{action} returned output that does not match its schema: {}",
                problems.join("; ")
            ),
        ));
    }
    Ok(value)
}

fn timeout_error(what: &str, limits: &Limits) -> CallError {
    CallError::new(
        ErrorKind::Timeout,
        format!(
            "{what} did not finish within its deadline of {}",
            humantime::format_duration(limits.timeout)
        ),
    )
}

/// Turn a trap or instantiation failure into a typed error.
fn classify_trap(err: &wasmtime::Error, limiter: &CallLimiter, stderr: &str, limits: &Limits) -> CallError {
    if limiter.memory_exceeded || err.is::<MemoryLimitExceeded>() {
        return CallError::new(
            ErrorKind::LimitExceeded,
            format!(
                "the plugin used more than its memory limit of {} MiB",
                limits.memory_mib
            ),
        );
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::new(ErrorKind::Timeout, "deadline reached"),
        Some(Trap::StackOverflow) => CallError::new(
            ErrorKind::LimitExceeded,
            "the plugin overflowed its stack (recursion too deep)",
        ),
        Some(trap) => match panic_message(stderr) {
            Some(msg) => CallError::new(ErrorKind::Internal, format!("the plugin panicked: {msg}")),
            None => CallError::new(ErrorKind::Internal, format!("the plugin crashed: {trap}")),
        },
        None => {
            let text = format!("{err:#}");
            if text.contains("concurrent") && text.contains("limit") {
                let mut e = CallError::new(
                    ErrorKind::Unavailable,
                    "too many plugin calls are running at once (runtime.max_instances); try again",
                );
                e.retryable = true;
                e
            } else {
                CallError::new(ErrorKind::Internal, format!("the plugin failed: {text}"))
            }
        }
    }
}

/// The message of a Rust panic, from what the guest wrote on stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at")?;
    let rest = &stderr[start..];
    let rest = rest.split_once('\n').map_or("", |(_, after)| after);
    let msg: Vec<&str> = rest.lines().take_while(|l| !l.starts_with("note:")).collect();
    let msg = msg.join(" ").trim().to_owned();
    Some(if msg.is_empty() {
        "(no message)".into()
    } else {
        msg
    })
}

fn forward_stdio(env: &HostEnv, stream: &str, text: &str, dropped: u64) {
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(100) {
        let mut line = env.scrub(line);
        truncate(&mut line, 4096);
        tracing::info!(target: "osprey::plugin_log", plugin = %env.plugin, run = %env.run_id, stream, "{line}");
    }
    if dropped > 0 {
        tracing::warn!(target: "osprey::plugin_log", plugin = %env.plugin, run = %env.run_id, stream, dropped, "the plugin wrote more than {STDIO_CAPTURE} bytes; the rest was dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_messages_are_extracted_from_stderr() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom went the plugin\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("boom went the plugin"));
        assert_eq!(panic_message("nothing here"), None);
    }
}
