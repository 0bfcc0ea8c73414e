//! `osprey plugin mock NAME`: put an installed plugin in mock mode (its actions answered from
//! canned cases or generated data, no vendor reached), show its mock, or take it off.

use super::render;
use crate::app::App;
use crate::plugin::mock::read_cases_file;
use crate::store::audit::Actor;
use crate::store::plugin_mocks::PluginMock;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  osprey plugin mock ipinfo --cases ipinfo-cases.toml           canned answers
  osprey plugin mock ipinfo --generate                          fake data from the output schemas
  osprey plugin mock ipinfo --cases ipinfo-cases.toml --generate    cases first, then fake data
  osprey plugin mock ipinfo                                     show the mock in force
  osprey plugin mock ipinfo --off                               back to the real plugin

A cases file holds [[mock]] tables, as a playbook's tests/*.toml write them:

  [[mock]]
  plugin = \"ipinfo\"
  action = \"lookup\"
  when = { ip = \"203.0.113.7\" }       # optional: the input must contain these
  output = { ip = \"203.0.113.7\", country = \"NL\" }
  # or: error = { kind = \"unavailable\", message = \"down\", retryable = true }

Each output must match the action's output schema. While mocked, inputs are still checked
against the input schemas; an input no case answers fails (unless --generate).")]
pub struct MockArgs {
    /// The installed plugin.
    pub name: String,
    /// Answer from the [[mock]] cases in FILE (TOML, at most 1 MiB).
    #[arg(long, value_name = "FILE", conflicts_with = "off")]
    pub cases: Option<PathBuf>,
    /// Answer what no case matches with plausible data generated from the action's output
    /// schema (the same input gets the same data).
    #[arg(long, conflicts_with = "off")]
    pub generate: bool,
    /// Take the plugin out of mock mode: its calls reach the vendor again.
    #[arg(long)]
    pub off: bool,
}

pub async fn run(app: &App, args: &MockArgs) -> anyhow::Result<i32> {
    let name = &args.name;
    if args.off {
        match app.runtime.clear_mock(name, &Actor::cli()).await? {
            Some(_) => println!("{name} is no longer mocked: its calls run the plugin again"),
            None => println!("{name} was not in mock mode; nothing changed"),
        }
        return Ok(0);
    }
    if args.cases.is_none() && !args.generate {
        let plugin = app.runtime.get(name)?;
        match plugin.mock() {
            Some(m) => println!("{name}: {}", summary(&m)),
            None => println!(
                "{name} is not in mock mode (`osprey plugin mock {name} --cases FILE` or `--generate` to mock it)"
            ),
        }
        return Ok(0);
    }
    let text = args.cases.as_deref().map(read_cases_file).transpose()?;
    let set = app
        .runtime
        .set_mock(name, text.as_deref(), args.generate, &Actor::cli())
        .await?;
    println!("{name}: {}", summary(&set));
    println!("no call of {name} reaches its vendor until `osprey plugin mock {name} --off`");
    Ok(0)
}

/// One line saying what a mock answers from, and who set it when.
pub fn summary(m: &PluginMock) -> String {
    let from = match (&m.cases_digest, m.generate) {
        (Some(d), true) => format!("cases (sha256 {}), then generated data", short(d)),
        (Some(d), false) => format!("cases (sha256 {})", short(d)),
        (None, _) => "generated data".to_owned(),
    };
    format!(
        "MOCK: answers from {from}; set by {} at {}",
        m.set_by,
        render::time(m.set_at)
    )
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
