//! A real browser for the demo's front-end scenario and the browser tests: Debian's
//! `chromedriver` on a free port driving headless `chromium`, spoken to in W3C WebDriver over
//! HTTP as the specification writes it (a handful of commands: open a page, find, type,
//! click, run a script).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// The browser the sessions run.
pub const CHROMIUM_BINARY: &str = "/usr/bin/chromium";
/// Flags for headless Chromium on a machine with no display, run as root, with no network but
/// loopback: without the background-networking ones it keeps dialing Google's hosts.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often and how long [`Session::wait_for`] polls.
const POLL: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(10);

/// Whether a browser can run here (Debian's `chromium` and `chromedriver`).
pub fn available() -> bool {
    Path::new(CHROMIUM_BINARY).exists()
        && std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("chromedriver").is_file()))
}

/// A running `chromedriver`, killed (and its directory deleted) on drop.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts `chromedriver` on a free port and waits until it listens.
    ///
    /// # Errors
    /// When Chromium or ChromeDriver is missing (`bash scripts/install-test-deps.sh` installs
    /// them), or it does not listen within 20 s.
    pub fn start() -> anyhow::Result<Self> {
        if !available() {
            bail!(
                "a browser is needed: {CHROMIUM_BINARY} and chromedriver (install: bash scripts/install-test-deps.sh)"
            );
        }
        let dir = tempfile::Builder::new().prefix("aiops-chromedriver-").tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.path().join("chromedriver.log");
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, POLL).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("chromedriver exited with {status}; its log is {}", log.display());
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                bail!("chromedriver did not listen within {START_TIMEOUT:?}");
            }
            std::thread::sleep(POLL);
        }
        Ok(Self { child, port, dir })
    }

    /// The WebDriver endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn profile_dir(&self) -> PathBuf {
        self.dir.path().join("profile")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window, driven over WebDriver.
#[derive(Debug)]
pub struct Session {
    http: reqwest::Client,
    base: String,
}

impl Session {
    /// Opens a headless Chromium window.
    ///
    /// # Errors
    /// When chromedriver cannot start the browser.
    pub async fn start(driver: &ChromeDriver) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build()?;
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", driver.profile_dir().display()));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM_BINARY, "args": args },
        }}});
        let answer: Value =
            http.post(format!("{}/session", driver.url())).json(&capabilities).send().await?.json().await?;
        let id = answer["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("chromedriver did not open a session: {}", answer["value"]))?;
        Ok(Self { http, base: format!("{}/session/{id}", driver.url()) })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await?.json().await?;
        if answer["value"]["error"].is_string() {
            bail!("WebDriver {path}: {}", answer["value"]);
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url`.
    ///
    /// # Errors
    /// When the browser cannot.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await.map(drop)
    }

    async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .call(reqwest::Method::POST, "/element", Some(json!({ "using": "css selector", "value": css })))
            .await?;
        found[ELEMENT].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no element {css}"))
    }

    /// Types `text` into the element `css` selects.
    ///
    /// # Errors
    /// When there is no such element.
    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::POST, &format!("/element/{element}/value"), Some(json!({ "text": text })))
            .await
            .map(drop)
    }

    /// Clicks the element `css` selects.
    ///
    /// # Errors
    /// When there is no such element.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(reqwest::Method::POST, &format!("/element/{element}/click"), Some(json!({}))).await.map(drop)
    }

    /// Runs `script` in the page; returns what it returns.
    ///
    /// # Errors
    /// When the script throws.
    pub async fn run(&self, script: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": [] }))).await
    }

    /// Waits (10 s at most) until `script` returns something truthy; returns it.
    ///
    /// # Errors
    /// When it does not, naming `what` was waited for.
    pub async fn wait_for(&self, script: &str, what: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            let value = self.run(script).await?;
            if !(value.is_null() || value == false || value == "" || value == 0) {
                return Ok(value);
            }
            tokio::time::sleep(POLL).await;
        }
        bail!("timed out waiting for {what}")
    }

    /// Closes the window.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}
