//! `cargo xtask tidy`: the code-base rules of STYLE.md that no compiler checks. The same
//! checks run as a `#[test]`, so `cargo test --workspace` enforces them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("tidy") => {
            let problems = tidy(&repo_root());
            for problem in &problems {
                eprintln!("tidy: {problem}");
            }
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: cargo xtask tidy");
            ExitCode::from(2)
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every rule broken, one line each.
fn tidy(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("xtask"), &mut files);
    // Split so that this file does not match its own patterns.
    let banned = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let shown = file.strip_prefix(root).unwrap_or(file).display();
        if !text.starts_with("//!") {
            problems.push(format!("{shown}: must start with a `//!` doc saying what the file is for"));
        }
        for pattern in banned {
            if text.contains(pattern) {
                problems
                    .push(format!("{shown}: `{pattern}]` is not allowed; assert today's behaviour and add a FIXME"));
            }
        }
    }
    for crate_name in ["aiops-agents", "aiops-server"] {
        let manifest =
            std::fs::read_to_string(root.join("crates").join(crate_name).join("Cargo.toml")).unwrap_or_default();
        for backend_dep in ["sqlx", "redis"] {
            if manifest.lines().any(|line| line.trim_start().starts_with(backend_dep)) {
                problems.push(format!("crates/{crate_name}/Cargo.toml: must not depend on {backend_dep}; agents and server see traits only"));
            }
        }
    }
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap_or_default();
    if let Ok(entries) = std::fs::read_dir(root.join("crates")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !architecture.contains(&format!("crates/{name}")) {
                problems.push(format!("ARCHITECTURE.md: does not describe crates/{name}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    #[test]
    fn tidy() {
        let problems = super::tidy(&super::repo_root());
        assert!(problems.is_empty(), "tidy found problems:\n{}", problems.join("\n"));
    }
}
