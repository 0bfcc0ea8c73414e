//! A well-behaved test plugin for Osprey's own tests and benchmarks.

use osprey_sdk::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Deserialize, Serialize, JsonSchema)]
struct Empty {}

#[derive(Deserialize, Serialize, JsonSchema)]
struct Message {
    /// Any text.
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct KvPut {
    key: String,
    value: String,
    ttl_seconds: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
struct Key {
    key: String,
}

#[derive(Serialize, JsonSchema)]
struct MaybeValue {
    value: Option<String>,
}

#[derive(Serialize, JsonSchema)]
struct Removed {
    removed: bool,
}

#[derive(Deserialize, JsonSchema)]
struct Name {
    name: String,
}

#[derive(Serialize, JsonSchema)]
struct Length {
    length: usize,
}

#[derive(Serialize, JsonSchema)]
struct Ids {
    run_id: String,
    idempotency_key: String,
}

#[derive(Serialize, JsonSchema)]
struct Count {
    count: u32,
}

static CALLS: AtomicU32 = AtomicU32::new(0);

fn noop(_: &Context, _: Empty) -> Result<Empty> {
    Ok(Empty {})
}

fn echo(_: &Context, input: Message) -> Result<Message> {
    Ok(input)
}

fn kv_put(_: &Context, input: KvPut) -> Result<Empty> {
    kv::set(
        &input.key,
        input.value.as_bytes(),
        input.ttl_seconds.map(Duration::from_secs),
    )?;
    Ok(Empty {})
}

fn kv_get(_: &Context, input: Key) -> Result<MaybeValue> {
    let value = kv::get(&input.key)?.map(|v| String::from_utf8_lossy(&v).into_owned());
    Ok(MaybeValue { value })
}

fn kv_delete(_: &Context, input: Key) -> Result<Removed> {
    Ok(Removed {
        removed: kv::delete(&input.key)?,
    })
}

fn secret_length(_: &Context, input: Name) -> Result<Length> {
    Ok(Length {
        length: secrets::get(&input.name)?.expose().len(),
    })
}

fn setting(_: &Context, input: Key) -> Result<MaybeValue> {
    Ok(MaybeValue {
        value: config::get(&input.key),
    })
}

fn context(ctx: &Context, _: Empty) -> Result<Ids> {
    log::info("context asked", &[("run", ctx.run_id())]);
    Ok(Ids {
        run_id: ctx.run_id().to_owned(),
        idempotency_key: ctx.idempotency_key().to_owned(),
    })
}

/// A global counter: always 1, because every call gets a fresh instance.
fn counter(_: &Context, _: Empty) -> Result<Count> {
    Ok(Count {
        count: CALLS.fetch_add(1, Ordering::SeqCst) + 1,
    })
}

#[derive(Deserialize, JsonSchema)]
struct Ping {
    url: String,
}

#[derive(Serialize, JsonSchema)]
struct Pinged {
    status: u16,
}

/// POST to a URL with the call's idempotency key, as a connector that changes something at
/// a vendor should.
fn ping(ctx: &Context, input: Ping) -> Result<Pinged> {
    let resp = http::Request::post(&input.url)
        .header("idempotency-key", ctx.idempotency_key())
        .send()?
        .error_for_status()?;
    Ok(Pinged { status: resp.status })
}

fn fail(_: &Context, input: Message) -> Result<Empty> {
    Err(Error::rate_limited(input.message))
}

#[derive(Deserialize, JsonSchema)]
struct Later {
    message: String,
    /// How long the error asks to wait, in milliseconds.
    retry_after_ms: u64,
}

/// A vendor's "come back later": rate-limited, with how long to wait (WIT 0.2.0).
fn fail_later(_: &Context, input: Later) -> Result<Empty> {
    Err(Error::rate_limited(input.message).retry_after(Duration::from_millis(input.retry_after_ms)))
}

/// Webhooks for the host's tests: checks `X-Echo-Signature` (hex HMAC-SHA256 of the body
/// under the secret `greeting`), then by path: `/panic` panics, `/spin` never returns, `/answer`
/// returns an answer event, and anything else echoes the request and returns its JSON body
/// as an alert event.
fn webhook(ctx: &Context, request: webhook::Request) -> Result<webhook::Response> {
    let key = secrets::get("greeting")?;
    let signature = request.header("x-echo-signature").unwrap_or_default();
    if !webhook::verify_hmac_sha256(key.expose().as_bytes(), &request.body, signature) {
        log::warn("webhook signature refused", &[("path", request.path.as_str())]);
        return webhook::Response::new(401).json(&json!({"error": "bad signature"}));
    }
    let echoed = json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "body": String::from_utf8_lossy(&request.body),
        "run_id": ctx.run_id(),
    });
    let response = webhook::Response::new(200)
        .header("x-echo", "1")
        .header("set-cookie", "osprey_session=from-a-plugin")
        .header("connection", "close")
        .json(&echoed)?;
    match request.path.as_str() {
        "/panic" => panic!("the echo webhook was asked to panic"),
        "/spin" => loop {
            std::hint::black_box(&response);
        },
        "/answer" => Ok(response.answer(webhook::Answer {
            question: "q-1".into(),
            answer: r#"{"choice":"approve"}"#.into(),
            email: Some("ana@example.com".into()),
            by: "echo:ana".into(),
        })),
        _ => response.alert(&request.json::<Value>()?),
    }
}

fn plugin() -> Plugin {
    Plugin::new("test-echo", env!("CARGO_PKG_VERSION"), "Well-behaved test plugin")
        .action("noop", "Does nothing: the benchmark's trivial action", noop)
        .action("echo", "Returns its input", echo)
        .action("kv-put", "Stores a value", kv_put)
        .action("kv-get", "Reads a value", kv_get)
        .action("kv-delete", "Deletes a value", kv_delete)
        .action(
            "secret-length",
            "The length of a granted secret, never its value",
            secret_length,
        )
        .action("config", "Reads a setting", setting)
        .action("context", "Returns the call context", context)
        .action("counter", "Increments a global counter", counter)
        .action("ping", "POSTs to a URL with the idempotency key", ping)
        .action(
            "fail",
            "Returns a retryable rate-limited error with the given message",
            fail,
        )
        .action(
            "fail-later",
            "Returns a rate-limited error that asks to wait retry_after_ms",
            fail_later,
        )
        .webhook(webhook)
}

osprey_sdk::export_plugin!(plugin);
