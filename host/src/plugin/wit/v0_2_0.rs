//! The adapter of `wit/v0.2.0`: its bindings, and its `error` record (with `retry-after`,
//! in milliseconds) to and from the host's.

use std::time::Duration;

wasmtime::component::bindgen!({
    path: "../wit/v0.2.0",
    world: "osprey:plugin/integration",
    imports: { default: async },
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

super::adapter!();

impl From<types::Error> for ErrorRecord {
    fn from(e: types::Error) -> Self {
        ErrorRecord {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
            retry_after: e.retry_after.map(|ms| Duration::from_millis(u64::from(ms))),
        }
    }
}

impl From<ErrorRecord> for types::Error {
    fn from(e: ErrorRecord) -> Self {
        types::Error {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
            retry_after: e
                .retry_after
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        }
    }
}
