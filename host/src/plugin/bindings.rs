//! Host bindings generated from `wit/v0.1.0/plugin.wit`. The `wasi:*` interfaces are the
//! ones wasmtime-wasi and wasmtime-wasi-http implement.

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

pub use self::osprey::plugin::types::{Context as WitContext, Error as WitError, ErrorKind as WitErrorKind};
