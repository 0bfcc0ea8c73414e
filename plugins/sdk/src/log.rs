//! Structured logs, attributed to the plugin and the run in Osprey's own log.

use crate::bindings::osprey::plugin::log as wit;

fn write(level: wit::Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wit::write(level, message, &fields);
}

/// Very detailed tracing.
pub fn trace(message: &str, fields: &[(&str, &str)]) {
    write(wit::Level::Trace, message, fields)
}
/// Detail for whoever debugs the plugin.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    write(wit::Level::Debug, message, fields)
}
/// Normal operation worth recording.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    write(wit::Level::Info, message, fields)
}
/// Something odd that did not stop the call.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    write(wit::Level::Warn, message, fields)
}
/// Something failed.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    write(wit::Level::Error, message, fields)
}
