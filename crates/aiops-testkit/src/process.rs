//! Running helper commands and turning their failures into [`TestkitError`]s that carry the
//! output, so that a failing test shows why without anyone re-running it by hand.
//!
//! Nothing here knows about Redis or PostgreSQL.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::{TestkitError, TestkitResult};

/// How many lines of a server log an error message carries.
const LOG_TAIL_LINES: usize = 40;

/// Formats a command line for messages (not for a shell: arguments are not quoted).
pub(crate) fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Maps a failure to start `binary` to [`TestkitError::MissingBinary`] when it is not installed.
pub(crate) fn spawn_error(binary: &str, looked_in: &str, err: io::Error) -> TestkitError {
    if err.kind() == io::ErrorKind::NotFound {
        TestkitError::MissingBinary { binary: binary.to_owned(), looked_in: looked_in.to_owned() }
    } else {
        TestkitError::io(format!("starting {binary}"), err)
    }
}

/// Runs `cmd` to completion with no input and returns its standard output.
///
/// `binary` names the program in a [`TestkitError::MissingBinary`] if it cannot be found on
/// `PATH`.
pub(crate) fn run(binary: &str, cmd: &mut Command) -> TestkitResult<String> {
    cmd.stdin(Stdio::null());
    let output = cmd.output().map_err(|err| spawn_error(binary, "PATH", err))?;
    check(cmd, output)
}

/// Runs `cmd` with `input` on its standard input and returns its standard output.
pub(crate) fn run_with_stdin(binary: &str, cmd: &mut Command, input: &str) -> TestkitResult<String> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|err| spawn_error(binary, "PATH", err))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits early closes its end; its exit status then tells the story, so a
        // broken pipe here is not the error to report.
        match stdin.write_all(input.as_bytes()) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {}
            Err(err) => return Err(TestkitError::io(format!("writing to {binary}"), err)),
        }
    }
    let output = child.wait_with_output().map_err(|err| TestkitError::io(format!("waiting for {binary}"), err))?;
    check(cmd, output)
}

fn check(cmd: &Command, output: Output) -> TestkitResult<String> {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(TestkitError::CommandFailed {
        command: describe(cmd),
        status: output.status.to_string(),
        output: format!("{}\n{}", stderr.trim_end(), stdout.trim_end()).trim().to_owned(),
    })
}

/// The last lines of a log file, or a note saying why it could not be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            lines[start..].join("\n")
        }
        Err(err) => format!("(could not read {}: {err})", path.display()),
    }
}

/// Whether a start-up failure was another process taking the port first (see
/// [`free_port`](crate::free_port)), so that trying again with a new port is worth it.
pub(crate) fn is_port_clash(err: &TestkitError) -> bool {
    let text = match err {
        TestkitError::NotReady { log, .. } => log,
        TestkitError::CommandFailed { output, .. } => output,
        _ => return false,
    };
    text.contains("Address already in use")
}

/// The effective user id of this process.
///
/// Asked of `id -u` because reading it directly needs `libc` and `unsafe`, which the workspace
/// forbids; one process start per server is negligible.
pub(crate) fn effective_uid() -> TestkitResult<u32> {
    let out = run("id", Command::new("id").arg("-u"))?;
    parse_uid(&out, "id -u")
}

/// The user id of `user`, or `None` if there is no such user.
pub(crate) fn uid_of(user: &str) -> TestkitResult<Option<u32>> {
    let mut cmd = Command::new("id");
    cmd.arg("-u").arg(user);
    match run("id", &mut cmd) {
        Ok(out) => parse_uid(&out, &describe(&cmd)).map(Some),
        Err(TestkitError::CommandFailed { .. }) => Ok(None),
        Err(err) => Err(err),
    }
}

fn parse_uid(out: &str, command: &str) -> TestkitResult<u32> {
    out.trim().parse().map_err(|_| TestkitError::CommandFailed {
        command: command.to_owned(),
        status: "output that is not a user id".to_owned(),
        output: out.to_owned(),
    })
}
