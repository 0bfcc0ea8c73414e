//! Bindings generated from `wit/v0.2.0/plugin.wit`. Plugin authors use the safe wrappers in
//! the rest of this crate; this module is public only so `export_plugin!` can reach it.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../wit/v0.2.0",
    world: "osprey:plugin/integration",
    generate_all,
    pub_export_macro: true,
    default_bindings_module: "osprey_sdk::bindings",
});
