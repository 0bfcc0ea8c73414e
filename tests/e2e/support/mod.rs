//! Shared helpers: where the built plugins are, a host with a temporary data directory
//! (library or binary), fake servers, and a headless browser (`browser.rs`).

pub mod browser;
pub mod connector;
pub mod fake_autofocus;
pub mod fake_aws_ec2;
pub mod fake_bonusly;
pub mod fake_http;
pub mod fake_ipinfo;
pub mod fake_msgraph;
pub mod fake_servicenow;
pub mod fake_slack;
pub mod fake_tls;
pub mod fake_unifi;
pub mod fake_virustotal;
pub mod fake_web_filter;
pub mod postgres;
pub mod smtp;
pub mod step_counter;

use osprey::app::App;
use osprey::capability::Capabilities;
use osprey::config::Config;
use osprey::plugin::{CallContext, CallError};
use osprey::store::audit::Actor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The folder with the built plugins (plugins/dist), or a panic that says how to build them.
pub fn dist() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    assert!(
        dir.join("test-echo/plugin.toml").exists(),
        "the plugins are not built: run scripts/build-plugins.sh (scripts/test.sh does)"
    );
    dir
}

/// The `minisign` tool (Debian's, installed by scripts/lib/minisign.sh from scripts/test.sh),
/// or `OSPREY_MINISIGN`. Missing, the test fails: it never skips.
pub fn minisign_tool() -> PathBuf {
    let path = PathBuf::from(std::env::var("OSPREY_MINISIGN").unwrap_or_else(|_| "/usr/bin/minisign".into()));
    assert!(
        path.exists(),
        "minisign is not at {}: run scripts/test.sh (it installs Debian's minisign) or set OSPREY_MINISIGN",
        path.display()
    );
    path
}

/// The audit log of `cli`'s data directory, as `osprey audit export` writes it.
pub fn audit_export(cli: &Cli) -> Vec<serde_json::Value> {
    cli.ok(&["audit", "export"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A fresh config in a temporary data directory.
pub fn config(dir: &Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    config.runtime.policy_refresh = std::time::Duration::from_millis(100);
    config
}

/// A runtime over a temporary data directory, driven through the library: for tests that
/// make many calls (hostile plugins, limits).
pub struct TestHost {
    pub app: App,
    pub dir: tempfile::TempDir,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

impl TestHost {
    pub async fn new() -> TestHost {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(tweak: impl FnOnce(&mut Config)) -> TestHost {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(dir.path());
        config.database_url = postgres::suite_server().map(|server| postgres::fresh_database(&server));
        tweak(&mut config);
        let app = App::open(config).await.expect("the app opens");
        TestHost { app, dir }
    }

    /// Install a built plugin by copying its folder into the plugins directory.
    pub async fn install(&self, name: &str) {
        self.install_from(&dist().join(name), name).await;
    }

    /// Install the plugin folder `src` under the name `name`.
    pub async fn install_from(&self, src: &Path, name: &str) {
        let dst = self.app.runtime.options().plugins_dir.join(name);
        std::fs::create_dir_all(&dst).unwrap();
        for entry in std::fs::read_dir(src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
        self.app.runtime.load_dir(&dst).await.expect("the plugin loads");
    }

    /// Replace a plugin's grant (JSON in the shape of `Capabilities`) and apply it.
    pub async fn grant(&self, plugin: &str, grant: serde_json::Value) {
        let grant: Capabilities = serde_json::from_value(grant).expect("a valid grant");
        self.app
            .set_grant(plugin, &grant, &Actor::system())
            .await
            .unwrap();
        let report = self.app.runtime.refresh().await;
        assert!(report.policies_reloaded, "the new grant is picked up");
    }

    pub async fn call(
        &self,
        plugin: &str,
        action: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, CallError> {
        let n = RUNS.fetch_add(1, Ordering::SeqCst);
        let ctx = CallContext {
            run_id: format!("test-run-{n}"),
            idempotency_key: format!("test-run-{n}:1"),
        };
        self.app
            .runtime
            .call(plugin, action, &input, ctx)
            .await
            .map(|o| o.output)
    }

    /// A well-behaved plugin still answers: the host is healthy.
    pub async fn assert_healthy(&self) {
        let out = self
            .call("test-echo", "echo", serde_json::json!({"message": "still here"}))
            .await
            .expect("a well-behaved plugin works after a hostile one");
        assert_eq!(out["message"], "still here");
    }
}

/// The real `osprey` binary, run with a temporary data directory; its database is the
/// SQLite file there, or (when the suite runs on PostgreSQL, `postgres::suite_server`) a
/// fresh database of its own on that server.
pub struct Cli {
    pub dir: tempfile::TempDir,
    /// `OSPREY_DATABASE_URL` for every command; `None`: `<data dir>/osprey.db`.
    database_url: Option<String>,
}

impl Cli {
    pub fn new() -> Cli {
        match postgres::suite_server() {
            Some(server) => Cli::on_database(&postgres::fresh_database(&server)),
            None => Cli::sqlite(),
        }
    }

    /// A data directory with its SQLite file, whatever database the suite runs on: for what
    /// is SQLite-only by design (`osprey demo` keeps its own file).
    pub fn sqlite() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
            database_url: None,
        }
    }

    /// A data directory of its own whose commands use the database at `url` (several nodes
    /// on one PostgreSQL).
    pub fn on_database(url: &str) -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
            database_url: Some(url.to_owned()),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database these commands use, as the server opens it.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.dir.path().join("osprey.db").display()))
    }

    /// Whether the database is the SQLite file in the data directory.
    pub fn on_sqlite(&self) -> bool {
        self.database_url.is_none()
    }

    /// The playbooks folder these commands use (`<data dir>/playbooks`).
    pub fn playbooks_dir(&self) -> PathBuf {
        self.dir.path().join("playbooks")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_osprey"));
        c.arg("--data-dir").arg(self.dir.path());
        c.env("OSPREY_PLAYBOOKS_DIR", self.playbooks_dir());
        c.env_remove("RUST_LOG")
            .env_remove("OSPREY_LOG")
            .env_remove("OSPREY_MASTER_KEY");
        match &self.database_url {
            Some(url) => c.env("OSPREY_DATABASE_URL", url),
            None => c.env_remove("OSPREY_DATABASE_URL"),
        };
        c.env("NO_COLOR", "1");
        c.current_dir(self.dir.path());
        c.stdin(Stdio::null());
        c
    }

    /// Run with `args`; returns the output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("osprey runs")
    }

    /// Run with `args` and `stdin`.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = self.command();
        command.args(args);
        output_with_stdin(command, stdin)
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "osprey {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "osprey {args:?} should have failed:\n{}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An HTTP client for talking to the server under test.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Write a playbook folder `dir/name` with its metadata and script. Unless `toml_body` says
/// `plugins`, the playbook declares the plugins its script names in `invoke("NAME"` and
/// `invoke_cached("NAME"`, as its author would.
pub fn write_playbook(dir: &Path, name: &str, toml_body: &str, script: &str) -> PathBuf {
    let pb = dir.join(name);
    std::fs::create_dir_all(&pb).unwrap();
    let names_one = script.contains("invoke(\"") || script.contains("invoke_cached(\"");
    let plugins = if toml_body.contains("plugins") || !names_one {
        String::new()
    } else {
        let mut named: Vec<&str> = ["invoke(\"", "invoke_cached(\""]
            .iter()
            .flat_map(|call| script.split(call).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        named.sort();
        named.dedup();
        let quoted: Vec<String> = named.iter().map(|p| format!("\"{p}\"")).collect();
        format!("plugins = [{}]\n", quoted.join(", "))
    };
    std::fs::write(
        pb.join("playbook.toml"),
        format!("name = \"{name}\"\ndescription = \"test playbook\"\n{plugins}{toml_body}"),
    )
    .unwrap();
    std::fs::write(pb.join("playbook.rhai"), script).unwrap();
    pb
}

/// `osprey serve` on a free port, killed when dropped.
pub struct Server {
    child: Option<std::process::Child>,
    pub addr: String,
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    /// The server's `GET /metrics` text.
    pub async fn metrics(&self) -> String {
        let response = http_client()
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "GET /metrics: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    /// Start `osprey serve` for `cli`'s data directory and wait until it is ready.
    pub fn start(cli: &Cli) -> Server {
        let mut command = cli.command();
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        Server::spawn(command, Stdio::null(), 60)
    }

    /// Start `command`, an `osprey` that serves (`serve`, `demo`), with its stdout to
    /// `stdout`, and wait up to `ready_secs` until it logs that it is ready.
    pub fn spawn(mut command: Command, stdout: Stdio, ready_secs: u64) -> Server {
        use std::io::BufRead;
        let mut child = command
            .env("OSPREY_LOG_FORMAT", "json")
            .env("OSPREY_LOG", "info")
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("osprey starts");
        let stderr = child.stderr.take().unwrap();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["fields"]["message"] == "osprey is ready" {
                    let _ = tx.send(v["fields"]["addr"].as_str().unwrap_or_default().to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut server = Server {
            child: Some(child),
            addr: String::new(),
            logs,
        };
        server.addr = rx
            .recv_timeout(std::time::Duration::from_secs(ready_secs))
            .unwrap_or_else(|_| {
                panic!(
                    "the server did not get ready:\n{}",
                    server.logs.lock().unwrap().join("\n")
                )
            });
        server
    }

    /// `GET /healthz` answers 2xx.
    pub async fn assert_healthy(&self) {
        let r = http_client()
            .get(format!("http://{}/healthz", self.addr))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "healthz: {}", r.status());
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// The most memory the server's process has held so far (VmHWM), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kb * 1024
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("the server is running");
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", c.id())])
            .status()
            .unwrap();
        c.wait().unwrap()
    }

    /// SIGKILL: the crash nothing can clean up after.
    pub fn kill_9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `f` every 50 ms until it returns `Some`, or panic with `what` after `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The id in `osprey playbook run`'s "run ID started" line.
pub fn run_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.strip_suffix(" started")))
        .unwrap_or_else(|| panic!("no run id in: {stdout}"))
        .to_owned()
}

/// The store of `cli`'s data directory, opened as the server opens it.
pub async fn store_of(cli: &Cli) -> osprey::store::Store {
    let (vault, _) = osprey::vault::Vault::open(None, &cli.data_dir().join("master.key")).unwrap();
    osprey::store::Store::open(&cli.database_url(), vault.audit_chain_key())
        .await
        .unwrap()
}

/// A connection to `cli`'s database (its SQLite file, or its PostgreSQL database), opened as
/// someone who can write the database would: for tests that change rows behind Osprey's back.
/// Write SQL both dialects read (`$n` placeholders).
pub async fn raw_db(cli: &Cli) -> sqlx::AnyConnection {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&cli.database_url())
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", cli.database_url()))
}

/// Run `command` with `stdin` as its input, and wait for its output. A child may exit before
/// it reads its input (a refused command): a broken pipe then is its answer, not the test's
/// failure.
pub fn output_with_stdin(mut command: std::process::Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing to {command:?}'s stdin: {e}"),
        _ => {}
    }
    child.wait_with_output().unwrap()
}

/// Copy the bundled playbook `name` (`playbooks/NAME`: its metadata and script) into `cli`'s
/// playbooks folder.
pub fn bundled_playbook(cli: &Cli, name: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../playbooks")
        .join(name);
    let to = cli.playbooks_dir().join(name);
    std::fs::create_dir_all(&to).unwrap();
    for file in ["playbook.toml", "playbook.rhai"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}
