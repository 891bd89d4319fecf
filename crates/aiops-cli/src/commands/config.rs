//! `aiops config default` and `aiops config check`.

use std::io::Write;
use std::path::PathBuf;

use aiops_app::Config;

pub(crate) fn print_default() -> anyhow::Result<bool> {
    std::io::stdout().write_all(Config::default_toml().as_bytes())?;
    Ok(true)
}

pub(crate) fn check(path: Option<PathBuf>) -> anyhow::Result<bool> {
    Config::load(path.as_deref(), std::env::vars())?;
    writeln!(std::io::stdout(), "configuration is valid")?;
    Ok(true)
}
