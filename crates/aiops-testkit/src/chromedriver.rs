//! [`ChromeDriver`]: Debian's `chromedriver` on a free port, driving Debian's headless
//! `chromium` ([`CHROMIUM_BINARY`] with [`CHROMIUM_ARGS`]). Tests speak W3C WebDriver to
//! [`ChromeDriver::url`] with their own HTTP client.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{TestkitError, TestkitResult};
use crate::port::free_port;
use crate::process::{log_tail, spawn_error};

const CHROMEDRIVER: &str = "chromedriver";
/// The browser the sessions run.
pub const CHROMIUM_BINARY: &str = "/usr/bin/chromium";
/// Flags for headless Chromium on a machine with no display, run as root, with no network but
/// loopback: without the background-networking ones it keeps dialing Google's hosts.
pub const CHROMIUM_ARGS: &[&str] = &[
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
const LOG_FILE: &str = "chromedriver.log";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A running `chromedriver`; killed, with its directory (log, browser profiles) deleted, on
/// drop.
#[derive(Debug)]
pub struct ChromeDriver {
    child: Child,
    port: u16,
    dir: TempDir,
}

impl ChromeDriver {
    /// Starts `chromedriver` on a free port and waits until it accepts connections.
    ///
    /// # Errors
    /// [`TestkitError::MissingBinary`] if `chromedriver` or [`CHROMIUM_BINARY`] is missing;
    /// [`TestkitError::NotReady`] with its log if it exits or does not listen within 20 s.
    pub fn start() -> TestkitResult<Self> {
        if !Path::new(CHROMIUM_BINARY).exists() {
            return Err(TestkitError::MissingBinary { binary: "chromium".into(), looked_in: CHROMIUM_BINARY.into() });
        }
        let dir = tempfile::Builder::new()
            .prefix("aiops-chromedriver-")
            .tempdir()
            .map_err(|err| TestkitError::io("creating a temporary directory for chromedriver", err))?;
        let log_path = dir.path().join(LOG_FILE);
        let log =
            File::create(&log_path).map_err(|err| TestkitError::io(format!("creating {}", log_path.display()), err))?;
        let log_err = log.try_clone().map_err(|err| TestkitError::io("duplicating the chromedriver log", err))?;
        let port = free_port()?;
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log_path.display()))
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| spawn_error(CHROMEDRIVER, "PATH", err))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(not_ready(started, &log_path, &format!("chromedriver exited with {status}")));
            }
            if TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_ok() {
                return Ok(Self { child, port, dir });
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(not_ready(started, &log_path, "chromedriver did not listen"));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The WebDriver endpoint: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A directory for a session's browser profile (`--user-data-dir`), deleted with this handle.
    pub fn profile_dir(&self, name: &str) -> TestkitResult<std::path::PathBuf> {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).map_err(|err| TestkitError::io(format!("creating {}", dir.display()), err))?;
        Ok(dir)
    }

    /// The end of chromedriver's log, for a failing test's message.
    pub fn log(&self) -> String {
        log_tail(&self.dir.path().join(LOG_FILE))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn not_ready(started: Instant, log_path: &Path, why: &str) -> TestkitError {
    TestkitError::NotReady {
        service: "chromedriver",
        waited: started.elapsed(),
        log_path: log_path.to_owned(),
        log: format!("{why}\n{}", log_tail(log_path)),
    }
}
