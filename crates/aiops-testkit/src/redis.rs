//! An ephemeral `redis-server`: a child process on a free loopback port, in its own temporary
//! directory, without persistence unless asked for AOF.
//!
//! Readiness is checked with a raw `PING` over TCP rather than a Redis client crate, so the kit
//! pulls in no client and works with whatever client a part crate chooses.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{TestkitError, TestkitResult};
use crate::port::free_port;
use crate::process::{is_port_clash, log_tail, spawn_error};

/// The program started, looked up on `PATH`.
const REDIS_SERVER: &str = "redis-server";
/// How long a server may take to answer `PING` after being started.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after `SHUTDOWN`.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many ports are tried on the first start (see [`free_port`]).
const START_ATTEMPTS: usize = 3;
/// The log file inside the server's directory; it receives the server's stdout and stderr.
const LOG_FILE: &str = "redis.log";

/// How to run a [`RedisServer`]. The default keeps nothing on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisOptions {
    /// Keep an append-only file (`appendfsync everysec`), so that data survives
    /// [`RedisServer::stop`] and [`RedisServer::restart`]. Off by default: RDB snapshots are
    /// always off, so without AOF a restart starts empty.
    pub aof: bool,
}

impl RedisOptions {
    /// Turns the append-only file on or off.
    pub fn aof(mut self, aof: bool) -> Self {
        self.aof = aof;
        self
    }
}

/// A private `redis-server` on `127.0.0.1`, killed and deleted on drop.
///
/// ```no_run
/// use aiops_testkit::{RedisOptions, RedisServer};
///
/// let mut redis = RedisServer::start_with(RedisOptions::default().aof(true)).expect("start redis-server");
/// let url = redis.url(); // redis://127.0.0.1:PORT
/// redis.restart().expect("restart redis-server"); // same port, same data
/// assert_eq!(redis.url(), url);
/// ```
#[derive(Debug)]
pub struct RedisServer {
    /// `None` while stopped.
    child: Option<Child>,
    port: u16,
    options: RedisOptions,
    /// Dropped last (fields drop in declaration order), after `Drop` has killed the server.
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server without persistence and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// [`TestkitError::MissingBinary`] if `redis-server` is not on `PATH`;
    /// [`TestkitError::NotReady`] with the server's log if it exits or does not answer within 10 s.
    pub fn start() -> TestkitResult<Self> {
        Self::start_with(RedisOptions::default())
    }

    /// Starts a server with `options` and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// As [`RedisServer::start`].
    pub fn start_with(options: RedisOptions) -> TestkitResult<Self> {
        let dir = tempfile::Builder::new()
            .prefix("aiops-redis-")
            .tempdir()
            .map_err(|err| TestkitError::io("creating a temporary directory for redis-server", err))?;
        let mut attempt = 1;
        loop {
            let port = free_port()?;
            match spawn_ready(dir.path(), port, &options) {
                Ok(child) => return Ok(Self { child: Some(child), port, options, dir }),
                Err(err) if attempt < START_ATTEMPTS && is_port_clash(&err) => attempt += 1,
                Err(err) => return Err(err),
            }
        }
    }

    /// The URL clients connect to: `redis://127.0.0.1:PORT`. It stays the same across restarts.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port, for example for `redis-cli -p PORT`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory: its log (`redis.log`) and, with AOF, its data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The options the server was started with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// Whether the server process has been started and not stopped or killed through this handle.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Shuts the server down cleanly (`SHUTDOWN NOSAVE`; the AOF, if on, is flushed) and waits
    /// until it has exited. The directory and port are kept for [`RedisServer::restart`].
    /// Stopping a stopped server does nothing.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] if the process cannot be waited for or killed. A server that ignores
    /// `SHUTDOWN` for 10 s is killed, which is not an error.
    pub fn stop(&mut self) -> TestkitResult<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // The reply is irrelevant: on success Redis closes the connection without one, and if the
        // request is lost the kill below ends the process anyway.
        if let Ok(mut conn) = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1)) {
            let _ = conn.set_read_timeout(Some(STOP_TIMEOUT));
            let _ = conn.write_all(b"SHUTDOWN NOSAVE\r\n");
            let _ = conn.read(&mut [0u8; 64]);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_status)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                Ok(None) => return kill_and_reap(&mut child),
                Err(err) => return Err(TestkitError::io("waiting for redis-server to exit", err)),
            }
        }
    }

    /// Kills the server abruptly (SIGKILL), as a crash would, and waits until it has exited.
    /// Writes from the last second may be missing from the AOF afterwards. Killing a stopped
    /// server does nothing.
    ///
    /// # Errors
    ///
    /// [`TestkitError::Io`] if the process cannot be killed or waited for.
    pub fn kill(&mut self) -> TestkitResult<()> {
        match self.child.take() {
            Some(mut child) => kill_and_reap(&mut child),
            None => Ok(()),
        }
    }

    /// Stops the server if it runs, then starts it again on the same port with the same
    /// directory and options, and waits until it answers `PING`.
    ///
    /// Between stop and start another process could take the port; that is reported as an error
    /// rather than worked around, because clients hold the old URL.
    ///
    /// # Errors
    ///
    /// As [`RedisServer::stop`] and [`RedisServer::start`].
    pub fn restart(&mut self) -> TestkitResult<()> {
        self.stop()?;
        self.child = Some(spawn_ready(self.dir.path(), self.port, &self.options)?);
        Ok(())
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Killing is enough: the directory is deleted next, so there is nothing to flush.
        let _ = self.kill();
    }
}

/// Starts `redis-server` in `dir` on `port` and waits until it answers `PING`.
fn spawn_ready(dir: &Path, port: u16, options: &RedisOptions) -> TestkitResult<Child> {
    let log_path = dir.join(LOG_FILE);
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|err| TestkitError::io(format!("opening {}", log_path.display()), err))?;
    let log_for_stderr =
        log.try_clone().map_err(|err| TestkitError::io(format!("duplicating {}", log_path.display()), err))?;

    let mut cmd = Command::new(REDIS_SERVER);
    cmd.arg("--bind")
        .arg("127.0.0.1")
        .arg("--port")
        .arg(port.to_string())
        .arg("--protected-mode")
        .arg("yes")
        .arg("--daemonize")
        .arg("no")
        .arg("--dir")
        .arg(dir)
        // An empty `save` turns RDB snapshots off, so no test pays for a fork and a disk write.
        .arg("--save")
        .arg("")
        .arg("--appendonly")
        .arg(if options.aof { "yes" } else { "no" })
        .arg("--appendfsync")
        .arg("everysec")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr);
    let mut child = cmd.spawn().map_err(|err| spawn_error(REDIS_SERVER, "PATH", err))?;

    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(not_ready(started, &log_path, &format!("redis-server exited with {status}")));
            }
            Ok(None) => {}
            Err(err) => {
                let _ = kill_and_reap(&mut child);
                return Err(TestkitError::io("waiting for redis-server to start", err));
            }
        }
        if answers_ping(port) {
            return Ok(child);
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = kill_and_reap(&mut child);
            return Err(not_ready(started, &log_path, "redis-server did not answer PING"));
        }
        thread::sleep(POLL_INTERVAL);
    }
}

fn not_ready(started: Instant, log_path: &Path, what: &str) -> TestkitError {
    TestkitError::NotReady {
        service: REDIS_SERVER,
        waited: started.elapsed(),
        log_path: PathBuf::from(log_path),
        log: format!("({what})\n{}", log_tail(log_path)),
    }
}

/// Sends an inline `PING` and checks for `+PONG`. A server still loading its AOF answers
/// `-LOADING`, which counts as not ready.
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(250)) else {
        return false;
    };
    if conn.set_read_timeout(Some(Duration::from_secs(1))).is_err() || conn.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 16];
    let mut n_read = 0;
    // The reply is 7 bytes; TCP may deliver it in pieces.
    while n_read < b"+PONG\r\n".len() {
        match conn.read(&mut reply[n_read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => n_read += n,
        }
    }
    reply[..n_read].starts_with(b"+PONG")
}

fn kill_and_reap(child: &mut Child) -> TestkitResult<()> {
    // `kill` fails with InvalidInput only when the process has already exited; reaping it is
    // then all that is left to do.
    let _ = child.kill();
    child.wait().map(|_status| ()).map_err(|err| TestkitError::io("waiting for redis-server to exit", err))
}
