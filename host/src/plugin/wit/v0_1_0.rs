//! The adapter of `wit/v0.1.0` (frozen): its bindings, and its `error` record, which has no
//! `retry-after`, to and from the host's.

wasmtime::component::bindgen!({
    path: "../wit/v0.1.0",
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
        ErrorRecord::new(e.kind.into(), e.message, e.retryable)
    }
}

impl From<ErrorRecord> for types::Error {
    fn from(e: ErrorRecord) -> Self {
        types::Error {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
        }
    }
}
