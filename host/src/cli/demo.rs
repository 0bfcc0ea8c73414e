//! `osprey demo`: set a demo data directory up from the repository's `demo/` folder (see
//! `crate::demo`), print the demo users' passwords, and serve it as `osprey serve` does, with
//! a trickle of sample alerts and the scenarios started once.

use super::serve;
use crate::app::App;
use crate::config::Config;
use crate::demo::kick::Kicked;
use crate::demo::{self, DemoSpec, TrickleSpec};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The data directory of the demo unless --data-dir says otherwise.
pub const DEMO_DATA_DIR: &str = "demo-data";

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Run it from the repository (scripts/run.sh --demo builds everything first and runs this):
  osprey demo                                  data in ./demo-data, http://127.0.0.1:8080
  osprey demo --rate 10                        a calmer trickle: 10 alerts a minute
  osprey demo --no-trickle                     no sample alerts, only the setup
  osprey --data-dir /tmp/try demo --listen 127.0.0.1:9000

What it sets up, from demo/setup.toml (every start; what exists is left alone):
  - the bundled connectors of --plugins-dir, installed with what they request granted, each
    in mock mode (MOCK badges): answers from demo/cases/NAME.toml, then generated data;
    no call reaches a vendor
  - a user for each role (admin, operator, engineer, analyst, auditor, requester) and the
    playbooks' users; their passwords are new at every start and printed below
  - the lists the playbooks need (served as EDLs at /edl/NAME.txt), the pre-processing
    rules that turn the sample alerts into incidents, the intake token `demo-trickle`
  - the playbooks of --playbooks-dir, with their schedules
Then it serves like `osprey serve`, sends the samples of demo/alerts.toml to its own intake
API (PassiveDNS, firewall and syslog lines, IDS signatures, now and then a critical one),
and starts the [[kick]] scenarios once (a domain request, so the analysts' inbox has a
question; Bonusly's month-end, so its chart has points; a defence validation).

Add a scenario by adding data: a [[kick]], [[rules]] or [[list]] in demo/setup.toml, samples
in demo/alerts.toml, cases in demo/cases/NAME.toml. Leave the demo with Ctrl-C; delete
./demo-data to start over. The real server (`scripts/run.sh`, `osprey serve`) uses ./data
and never the demo's.")]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The built connectors to install (scripts/build-plugins.sh lays them out there).
    #[arg(long, value_name = "DIR", default_value = "plugins/dist")]
    pub plugins_dir: PathBuf,
    /// The playbooks to run.
    #[arg(long, value_name = "DIR", default_value = "playbooks")]
    pub playbooks_dir: PathBuf,
    /// The demo's wiring: setup.toml, alerts.toml and cases/.
    #[arg(long, value_name = "DIR", default_value = "demo")]
    pub demo_dir: PathBuf,
    /// Send no sample alerts.
    #[arg(long)]
    pub no_trickle: bool,
    /// Sample alerts a minute.
    #[arg(long, value_name = "N", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=6000))]
    pub rate: u32,
}

/// The demo's configuration: its own data directory, database and plugins, never the real
/// server's, and the playbooks of `--playbooks-dir`.
pub fn configure(config: &mut Config, data_dir_given: bool, args: &DemoArgs) {
    if !data_dir_given {
        config.data_dir = PathBuf::from(DEMO_DATA_DIR);
    }
    config.database_url = None;
    config.plugins_dir = None;
    config.playbooks_dir = args.playbooks_dir.clone();
    config.listen = args.listen;
}

pub async fn run(args: DemoArgs, config: Config) -> anyhow::Result<i32> {
    refuse_real_data(&config.data_dir)?;
    let setup = DemoSpec::load(&args.demo_dir)?;
    let trickle = TrickleSpec::load(&args.demo_dir)?;
    let data_dir = config.data_dir.clone();
    let app = App::open(config).await?;
    for e in &app.playbook_errors {
        tracing::warn!(error = %e, "playbook not loaded");
    }
    eprintln!(
        "demo: setting up {} (connectors are compiled once; later starts are quick)",
        data_dir.display()
    );
    let prepared = demo::prepare(&app, &setup, &args.demo_dir, &args.plugins_dir).await?;
    let listener = serve::bind(args.listen).await?;
    let addr = listener.local_addr()?;

    println!(
        "Osprey demo: data in {}; connectors are mocked, no call reaches a vendor",
        data_dir.display()
    );
    println!("mocked connectors: {}", prepared.plugins.join(", "));
    for s in &prepared.skipped {
        println!("skipped: {s}");
    }
    println!("Sign in at http://{addr}/login with one of these (new passwords at every start):");
    for u in &prepared.users {
        println!(
            "  user {}  password {}  ({})",
            u.name,
            u.password.expose_secret(),
            u.roles.join(", ")
        );
    }
    println!("Leave with Ctrl-C; delete {} to start over.", data_dir.display());

    crate::server::show_banner(demo::BANNER);
    let app = Arc::new(app);
    let background = {
        let app = app.clone();
        let every = Duration::from_millis(60_000 / u64::from(args.rate));
        let token = prepared.token;
        let no_trickle = args.no_trickle;
        tokio::spawn(async move {
            for (playbook, kicked) in demo::kick::start(&app, &setup.kicks).await {
                match kicked {
                    Kicked::Started(run) => tracing::info!(%playbook, %run, "demo scenario started"),
                    Kicked::Going(run) => {
                        tracing::info!(%playbook, %run, "demo scenario still going from an earlier start")
                    }
                    Kicked::Skipped(why) => tracing::warn!(%playbook, %why, "demo scenario not started"),
                }
            }
            if !no_trickle {
                demo::trickle::run(addr, token, trickle, every).await;
            }
        })
    };
    let served = serve::serve(app, listener).await;
    background.abort();
    served
}

/// The demo never runs on the real server's `./data`.
fn refuse_real_data(data_dir: &Path) -> anyhow::Result<()> {
    let real = std::env::current_dir()?.join("data");
    let plain: PathBuf = data_dir
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    let same = match (data_dir.canonicalize(), real.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => plain == Path::new("data") || data_dir == real,
    };
    if same {
        anyhow::bail!(
            "the demo does not run on ./data, the real server's data directory: give it another with --data-dir, or leave it out for ./{DEMO_DATA_DIR}"
        );
    }
    Ok(())
}
