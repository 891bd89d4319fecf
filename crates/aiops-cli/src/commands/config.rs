//! `aiops config default` and `aiops config check`.

use std::io::Write;
use std::path::PathBuf;

use aiops_app::Config;

pub(crate) fn print_default() -> anyhow::Result<bool> {
    crate::commands::stdout().write_all(Config::default_toml().as_bytes())?;
    Ok(true)
}

pub(crate) fn check(path: Option<PathBuf>) -> anyhow::Result<bool> {
    let config = Config::load(path.as_deref(), std::env::vars())?;
    writeln!(crate::commands::stdout(), "configuration is valid")?;
    // The file may be checked away from where it runs, so these only warn.
    for problem in aiops_app::environment_problems(&config) {
        eprintln!("warning: `aiops serve` would refuse this environment: {problem}");
    }
    Ok(true)
}
