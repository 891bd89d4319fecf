//! `aiops-bench <suite> [--json]`: runs one benchmark suite, prints a readable table, and with
//! `--json` one JSON object as the last line of stdout (our figures, the peer's, the ratios).
//!
//! Suites start what they need themselves (ephemeral Redis through the test kit, the peer
//! tool) and measure ours and the peer's in the same run.

mod embed;
mod events;
mod knowledge;
mod loghub;
mod nab;
mod scenarios;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let suite = args.iter().find(|a| !a.starts_with("--")).map(String::as_str);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match suite {
        Some("events") => runtime.block_on(events::run()),
        Some("knowledge") => runtime.block_on(knowledge::run(&args)),
        Some("embed") => runtime.block_on(embed::run(&args)),
        Some("loghub") => runtime.block_on(loghub::run(&args)),
        Some("nab") => runtime.block_on(nab::run(&args)),
        Some("scenarios") => runtime.block_on(scenarios::run(&args)),
        _ => {
            eprintln!(
                "usage: aiops-bench <suite> [--json] [suite options]\nsuites: events, knowledge, embed, loghub, nab, scenarios"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(report) => {
            let mut stdout = std::io::stdout().lock();
            if json {
                let _ = writeln!(stdout, "{report}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
