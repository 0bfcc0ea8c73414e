//! The `osprey` binary: parse the command line, set up logging, run, report errors.

use clap::Parser;
use osprey::cli::Cli;
use osprey::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: alert intake allocates small objects per alert
/// from several threads, where glibc's malloc cost a fifth of the server's time. Metered, so
/// a playbook replay's memory limit can be checked (`alloc_meter.rs`).
#[global_allocator]
static ALLOCATOR: osprey::alloc_meter::ServerAllocator = osprey::alloc_meter::SERVER_ALLOCATOR;

fn main() {
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = cli.load_config()?;
    // The server logs at the configured level; one-shot commands show warnings and what
    // plugins log, so their own output stays readable. RUST_LOG overrides both.
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| {
        if cli.is_server() || std::env::var_os("OSPREY_LOG").is_some() {
            config.log.clone()
        } else {
            "warn,osprey::plugin_log=info".into()
        }
    });
    let filter = EnvFilter::try_new(&filter).map_err(|e| anyhow::anyhow!("log filter '{filter}': {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(osprey::playbook::engine::REPLAY_THREAD_STACK_BYTES)
        .build()?;
    runtime.block_on(cli.run(config))
}
