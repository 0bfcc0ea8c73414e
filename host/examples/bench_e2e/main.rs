//! The two tools of `scripts/bench-e2e.sh` (alert in, automation done), in one binary built
//! as an example of the `osprey` package so it reuses the dependencies already built:
//!
//! - `vendor --token T`: the fake ipinfo of the end-to-end tests (`tests/e2e/support/`, the
//!   same file, so the bench's vendor answers exactly as the tested one does), served on
//!   127.0.0.1 on a free port until the process is killed; prints its base URL.
//! - `send ...`: alerts to `POST /api/v1/alerts` over keep-alive connections, as fast as
//!   the server takes them or paced at a fixed rate (`load.rs`); prints what it did as one
//!   line of `key=value`.
//!
//! `cargo run -p osprey --example bench_e2e -- --help`.

mod load;

// The tests' fake vendor and the serving helper it uses; the tests' counters and their other
// fakes' helpers are not used here.
#[allow(dead_code)]
#[path = "../../../tests/e2e/support/fake_http.rs"]
mod fake_http;
#[allow(dead_code)]
#[path = "../../../tests/e2e/support/fake_ipinfo.rs"]
mod fake_ipinfo;

use clap::Parser;
use std::io::Write;

#[derive(Parser)]
#[command(about = "The fake vendor and the alert sender of scripts/bench-e2e.sh")]
enum Command {
    /// Serve the fake ipinfo on 127.0.0.1 (a free port) until killed; print its base URL.
    Vendor {
        /// The API token it accepts (as a bearer header or `?token=`).
        #[arg(long)]
        token: String,
    },
    /// Send alerts to an Osprey server and print what was sent and answered.
    Send(load::Load),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Command::parse() {
        Command::Vendor { token } => {
            let vendor = fake_ipinfo::FakeIpinfo::start(&token).await;
            let mut out = std::io::stdout();
            writeln!(out, "{}", vendor.base_url())?;
            out.flush()?;
            // Serves until the process is killed; `vendor` owns the server's stop signal.
            std::future::pending::<()>().await;
            drop(vendor);
            Ok(())
        }
        Command::Send(load) => {
            let report = load.run().await?;
            println!("{report}");
            Ok(())
        }
    }
}
