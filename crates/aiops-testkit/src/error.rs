//! The one error type of the test kit.
//!
//! Variants say what the person running the tests does next: install something, or read the
//! captured output of a command or server log that the message carries.

use std::error::Error as _;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The command that installs every binary the test kit starts, run from the repository root.
///
/// Error messages about missing binaries or users contain it verbatim.
pub const INSTALL_COMMAND: &str = "bash scripts/install-test-deps.sh";

/// Result alias for the test kit.
pub type TestkitResult<T> = Result<T, TestkitError>;

/// Why a test service could not be started, stopped or used.
///
/// `Debug` prints the message and its causes rather than the fields, because tests call
/// `.expect(...)`, which prints `Debug`, and the message is what says what to do (for example
/// which command installs a missing binary).
#[derive(thiserror::Error)]
pub enum TestkitError {
    /// A binary is not installed. Run [`INSTALL_COMMAND`].
    #[error(
        "{binary} not found in {looked_in}; install the test dependencies with `bash scripts/install-test-deps.sh`"
    )]
    MissingBinary {
        /// The program's name, for example `redis-server`.
        binary: String,
        /// Where it was looked for: `PATH`, or a directory and where that came from.
        looked_in: String,
    },
    /// The unprivileged user PostgreSQL runs as when the tests run as root does not exist.
    /// Run [`INSTALL_COMMAND`] as root.
    #[error("system user {user} does not exist; PostgreSQL refuses to run as root and runs as {user} instead: create it with `bash scripts/install-test-deps.sh`")]
    MissingUser {
        /// The user's name.
        user: String,
    },
    /// A file-system or socket operation failed.
    #[error("{action}")]
    Io {
        /// What was being done, for example `creating a temporary directory`.
        action: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed. The message carries its output.
    #[error("`{command}` failed with {status}:\n{output}")]
    CommandFailed {
        /// The command line, for reading, not for a shell.
        command: String,
        /// How it ended, for example `exit status: 1`.
        status: String,
        /// Its standard error and standard output, or the server log.
        output: String,
    },
    /// A server did not start answering in time, or exited while starting.
    #[error("{service} did not become ready within {waited:?}; its log {log_path}:\n{log}")]
    NotReady {
        /// Which server, for example `redis-server`.
        service: &'static str,
        /// How long was waited.
        waited: Duration,
        /// Where the full log is (deleted with the server's directory).
        log_path: PathBuf,
        /// The end of its log.
        log: String,
    },
    /// The operation needs the server to be running, and it is stopped.
    #[error("{service} is stopped; call restart() first")]
    Stopped {
        /// Which server.
        service: &'static str,
    },
}

impl fmt::Debug for TestkitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = self.source();
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl TestkitError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { action: action.into(), source }
    }
}
