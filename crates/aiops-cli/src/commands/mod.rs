//! One module per command. Each returns `Ok(true)` for success, `Ok(false)` for a clean
//! failure it already explained, `Err` for an error to print.

pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod healing;
pub(crate) mod kb;
pub(crate) mod remote;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod services;
pub(crate) mod supervisor;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output for a command's results. A write that fails because the reader went away
/// (`aiops … | head`) is remembered, so that `main` can end quietly on it without mistaking a
/// broken connection to the core or a database for it.
pub(crate) fn stdout() -> Stdout {
    Stdout(std::io::stdout().lock())
}

/// Whether a write to [`stdout`] found its reader gone.
pub(crate) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

pub(crate) struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    fn noting<T>(result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(err) = &result {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
            }
        }
        result
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Self::noting(self.0.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Self::noting(self.0.flush())
    }
}
