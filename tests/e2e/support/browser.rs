//! A real browser for the web console's tests: Debian's headless Chromium, driven by its
//! chromedriver (W3C WebDriver over plain HTTP on loopback) through `fantoccini`.
//!
//! `Browser::start` starts chromedriver on a free loopback port, in a process group of its
//! own, and opens a session with a fresh temporary profile; dropping the `Browser` kills the
//! group (chromedriver and the Chromium it started) and removes the profile. Screenshots are
//! kept as test artifacts (see [`artifacts_dir`]), and every one's path is printed.
//!
//! Chromium and chromedriver come from `OSPREY_CHROMIUM` and `OSPREY_CHROMEDRIVER`, or
//! `/usr/bin/chromium` and `/usr/bin/chromedriver` (`scripts/test.sh` installs them). Without
//! them the tests fail with a message saying so: they are never skipped silently.

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `wait_for` and `login` wait before they give up.
const WAIT: Duration = Duration::from_secs(15);

/// Where screenshots go: `$OSPREY_TEST_ARTIFACTS`, else `test-artifacts/browser` in the cargo
/// target directory (`$CARGO_TARGET_DIR`, else the one the `osprey` binary was built in, which
/// is `<workspace>/target` by default).
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OSPREY_TEST_ARTIFACTS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        // <target>/debug/osprey
        None => Path::new(env!("CARGO_BIN_EXE_osprey"))
            .parent()
            .and_then(Path::parent)
            .map(Path::to_owned)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")),
    };
    target.join("test-artifacts").join("browser")
}

fn tool(var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "the browser tests need {package} at {} (set {var} to use another): run \
         `bash scripts/test.sh`, which installs it, or install Debian's chromium and \
         chromium-driver (`apt-get install chromium chromium-driver`)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A headless Chromium session, with its own chromedriver.
pub struct Browser {
    client: Client,
    driver: Child,
    test: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Start chromedriver and a headless Chromium for the test `test_name` (the prefix of its
    /// screenshots' file names).
    pub async fn start(test_name: &str) -> Browser {
        use std::os::unix::process::CommandExt;
        let chromium = tool("OSPREY_CHROMIUM", "/usr/bin/chromium", "Chromium");
        let chromedriver = tool("OSPREY_CHROMEDRIVER", "/usr/bin/chromedriver", "ChromeDriver");
        // This test's screenshots from an earlier run would mislead: remove them.
        if let Ok(entries) = std::fs::read_dir(artifacts_dir()) {
            let prefix = format!("{test_name}-");
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && name.ends_with(".png") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let profile = tempfile::tempdir().expect("a temporary profile directory");
        let log = profile.path().join("chromedriver.log");
        let port = free_port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .arg("--log-level=WARNING")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Chromium's crash database and caches go to the temporary directory too, not to
            // ~/.config and ~/.cache.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .env("XDG_CACHE_HOME", profile.path().join("cache"))
            // Its own process group, so that Drop ends Chromium with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", chromedriver.display()));

        // Ready when it accepts connections.
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before it listened on port {port}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port} within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let user_data = profile.path().join("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .into_iter()
        .map(str::to_owned)
        .chain([format!("--user-data-dir={}", user_data.display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = match ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                kill_group(&mut driver);
                panic!(
                    "no browser session from chromedriver ({}): {e}\n{}",
                    chromium.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        Browser {
            client,
            driver,
            test: test_name.to_owned(),
            _profile: profile,
        }
    }

    /// End the session politely (Chromium quits), then stop chromedriver. Dropping the
    /// `Browser` without this (a failed test) kills both.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// The underlying WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Load `url` (absolute) and wait for the page to load.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// The current URL.
    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("the current URL")
    }

    /// The current page's HTML, as the browser has it now.
    pub async fn page_source(&self) -> String {
        self.client.source().await.expect("the page source")
    }

    /// The text of the page's body (what a reader sees).
    pub async fn page_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The element matching `css` now, or a panic that says which was missing and where.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no element {css:?} ({e}){}", self.whereabouts().await),
        }
    }

    /// Every element matching `css` now (perhaps none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("finding {css:?}: {e}"))
    }

    /// Wait up to 15 s for an element matching `css`.
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return e;
            }
            if Instant::now() >= deadline {
                panic!(
                    "waited {WAIT:?} for an element {css:?} in vain{}",
                    self.whereabouts().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait up to 15 s until `what` holds of the current URL.
    pub async fn wait_for_url(&self, what: &str, mut ok: impl FnMut(&url::Url) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if ok(&self.url().await) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("waited {WAIT:?} for {what} in vain{}", self.whereabouts().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css)
            .await
            .text()
            .await
            .unwrap_or_else(|e| panic!("the text of {css:?}: {e}"))
    }

    /// Replace the value of the input matching `css` with `value`, typed as keys.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {css:?}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("typing into {css:?}: {e}"));
    }

    /// Click the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css:?}: {e}"));
    }

    /// Choose the option with `value` in the `<select>` matching `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.find(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choosing {value:?} in {css:?}: {e}"));
    }

    /// Run `script` in the page (through WebDriver, which the page's Content-Security-Policy
    /// does not govern) and return what it returns.
    pub async fn execute(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// Resize the window (the viewport follows), e.g. 390×844 for a phone.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resizing to {width}x{height}: {e}"));
    }

    /// Whether the page scrolls sideways at the current window size.
    pub async fn scrolls_horizontally(&self) -> bool {
        let fits = self
            .execute("return document.documentElement.scrollWidth <= window.innerWidth;")
            .await;
        fits != serde_json::Value::Bool(true)
    }

    /// Save a PNG of the viewport as `<artifacts>/<test>-<name>.png`, print its path and
    /// return it.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let path = dir.join(format!("{}-{name}.png", self.test));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("screenshot: {}", path.display());
        path
    }

    /// Sign in through `base_url/login` (its `user` and `password` fields and its submit
    /// button) and wait until the browser has left the sign-in page.
    pub async fn login(&self, base_url: &str, user: &str, password: &str) {
        self.goto(&format!("{base_url}/login")).await;
        self.fill("input[name=user]", user).await;
        self.fill("input[name=password]", password).await;
        self.click("form[action='/login'] button[type=submit]").await;
        self.wait_for_url(&format!("{user} to be signed in (to leave /login)"), |u| {
            u.path() != "/login"
        })
        .await;
    }

    /// Where the browser is and the start of what it shows, for failure messages.
    async fn whereabouts(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(unknown: {e})"));
        let text = self.page_text().await;
        let excerpt: String = text.chars().take(600).collect();
        format!("\nat {url}; the page shows:\n{excerpt}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After `close` only chromedriver is left; otherwise Chromium goes with it. The
        // profile directory goes after, with its field.
        kill_group(&mut self.driver);
    }
}

/// Kill chromedriver's process group (chromedriver and the Chromium processes it started)
/// and reap chromedriver.
fn kill_group(driver: &mut Child) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -KILL -{}", driver.id())])
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}
