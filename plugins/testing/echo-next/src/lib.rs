//! The next version of the test-echo plugin, for Osprey's upgrade tests: what it describes
//! differs from test-echo 0.1.0 in each way an upgrade check looks at.

use osprey_sdk::prelude::*;

#[derive(Deserialize, Serialize, JsonSchema)]
struct Empty {}

#[derive(Deserialize, JsonSchema)]
struct Loud {
    /// Any text.
    message: String,
    /// Upper-case it.
    loud: bool,
}

#[derive(Deserialize, Serialize, JsonSchema)]
struct Message {
    message: String,
}

fn noop(_: &Context, _: Empty) -> Result<Empty> {
    Ok(Empty {})
}

fn echo(_: &Context, input: Loud) -> Result<Message> {
    let message = if input.loud {
        input.message.to_uppercase()
    } else {
        input.message
    };
    Ok(Message { message })
}

fn shout(_: &Context, input: Message) -> Result<Message> {
    Ok(Message {
        message: input.message.to_uppercase(),
    })
}

fn plugin() -> Plugin {
    Plugin::new("test-echo", env!("CARGO_PKG_VERSION"), "Well-behaved test plugin, next version")
        .action("noop", "Does nothing", noop)
        .action("echo", "Returns its message, upper-cased if loud", echo)
        .action("shout", "Returns its message upper-cased", shout)
}

osprey_sdk::export_plugin!(plugin);
