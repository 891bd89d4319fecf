//! `CommandTool` against real programs: exit codes, output, timeouts, argv injection.

use std::time::{Duration, Instant};

use aiops_construction::{CommandTool, ConstructionError, RunMode, Tool, OUTPUT_LIMIT_BYTES};
use serde_json::json;

use crate::{spec, target};

/// A command tool running `argv` (a TOML array) with the given `[[params]]` TOML.
fn command_tool(argv: &str, params: &str, extra: &str) -> CommandTool {
    CommandTool::new(spec(&format!(
        r#"name = "cmd"
version = 1
description = "A test command."
risk = "low"
{extra}
{params}
[kind]
type = "command"
argv = {argv}
"#
    )))
    .unwrap()
}

const MSG_PARAM: &str = "[[params]]\nname = \"msg\"\npattern = \"any_text\"\n";

#[tokio::test]
async fn echo_succeeds_with_its_output() {
    let tool = command_tool(r#"["echo", "hello", "{msg}"]"#, MSG_PARAM, "");
    let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({"msg": "world"}), RunMode::Execute).await.unwrap();
    assert!(out.success);
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.http_status, None);
    assert_eq!(out.output, "hello world\n");
    assert_eq!(out.resolved, "echo hello world");
}

#[tokio::test]
async fn non_zero_exit_is_an_unsuccessful_output_not_an_error() {
    let tool = command_tool(r#"["false"]"#, "", "");
    let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap();
    assert!(!out.success);
    assert_eq!(out.exit_code, Some(1));
}

#[tokio::test]
async fn stderr_is_captured() {
    let tool = command_tool(r#"["ls", "/definitely/not/here"]"#, "", "");
    let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap();
    assert!(!out.success);
    assert!(out.output.starts_with("[stderr]\n"), "{}", out.output);
    assert!(out.output.contains("/definitely/not/here"), "{}", out.output);
}

#[tokio::test]
async fn slow_command_times_out_and_is_killed_quickly() {
    let tool = command_tool(r#"["sleep", "5"]"#, "", "timeout_ms = 200");
    let start = Instant::now();
    let err = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap_err();
    assert!(matches!(&err, ConstructionError::Timeout { tool, after_ms: 200 } if tool == "cmd"), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[tokio::test]
async fn injection_attempt_stays_one_literal_argument() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("x");
    std::fs::write(&victim, "still here").unwrap();
    let pwned = dir.path().join("pwned");
    let tool = command_tool(r#"["printf", "[%s]\n", "{msg}"]"#, MSG_PARAM, "");
    for msg in [
        format!("; rm -rf {}", victim.display()),
        format!("$(touch {})", pwned.display()),
        format!("`touch {}` && rm {} | cat > {}", pwned.display(), victim.display(), pwned.display()),
    ] {
        let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({"msg": msg}), RunMode::Execute).await.unwrap();
        assert!(out.success);
        assert_eq!(out.output, format!("[{msg}]\n"), "printf saw exactly one argument");
    }
    assert!(victim.exists(), "the victim file must survive");
    assert!(!pwned.exists(), "nothing may have been executed");
}

#[tokio::test]
async fn invalid_params_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("created");
    let tool = command_tool(r#"["touch", "{file}"]"#, "[[params]]\nname = \"file\"\npattern = \"path\"\n", "");
    let target = target("http://127.0.0.1:1", &[]);
    for params in [
        json!({}),
        json!({"file": file.display().to_string(), "extra": "1"}),
        json!({"file": "-rf"}),
        json!({"file": format!("{}/../x", dir.path().display())}),
    ] {
        let err = tool.run(&target, &params, RunMode::Execute).await.unwrap_err();
        assert!(matches!(err, ConstructionError::InvalidParams { .. }), "{params}: {err:?}");
    }
    assert!(!file.exists());
}

#[tokio::test]
async fn missing_capability_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("created");
    let tool = command_tool(
        r#"["touch", "{file}"]"#,
        "[[params]]\nname = \"file\"\npattern = \"path\"\n",
        "capability = \"fs.touch\"",
    );
    let params = json!({"file": file.display().to_string()});
    let err = tool.run(&target("http://127.0.0.1:1", &["cache.clear"]), &params, RunMode::Execute).await.unwrap_err();
    assert!(
        matches!(&err, ConstructionError::MissingCapability { capability, service, .. }
            if capability == "fs.touch" && service == "bookmarks-backend"),
        "{err:?}"
    );
    assert!(!file.exists());
    tool.run(&target("http://127.0.0.1:1", &["fs.touch"]), &params, RunMode::Execute).await.unwrap();
    assert!(file.exists());
}

#[tokio::test]
async fn dry_run_runs_nothing_and_says_what_it_would_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("with space");
    let tool = command_tool(r#"["touch", "{file}"]"#, "[[params]]\nname = \"file\"\npattern = \"path\"\n", "");
    let out = tool
        .run(&target("http://127.0.0.1:1", &[]), &json!({"file": file.display().to_string()}), RunMode::DryRun)
        .await
        .unwrap();
    assert!(out.success);
    assert_eq!(out.exit_code, None);
    assert_eq!(out.duration_ms, 0);
    assert_eq!(out.resolved, format!("touch '{}'", file.display()));
    assert!(out.output.starts_with("dry run: would run"), "{}", out.output);
    assert!(!file.exists());
}

#[tokio::test]
async fn dry_run_reports_a_missing_program() {
    let tool = command_tool(r#"["no-such-program-aiops"]"#, "", "");
    let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::DryRun).await.unwrap();
    assert!(!out.success);
    assert!(out.output.contains("not found"), "{}", out.output);
}

#[tokio::test]
async fn missing_program_fails() {
    let tool = command_tool(r#"["no-such-program-aiops"]"#, "", "");
    let err = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap_err();
    assert!(
        matches!(&err, ConstructionError::Failed { reason, .. } if reason.contains("no-such-program-aiops")),
        "{err:?}"
    );
}

#[tokio::test]
async fn large_output_is_capped_and_noted() {
    let tool = command_tool(r#"["seq", "1", "200000"]"#, "", "");
    let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap();
    assert!(out.success);
    assert!(out.output.len() <= OUTPUT_LIMIT_BYTES, "{}", out.output.len());
    assert!(out.output.starts_with("1\n2\n3\n"));
    assert!(out.output.contains("[output cut:"), "the cut must be noted");
}

#[tokio::test]
async fn absent_optional_param_drops_its_argv_element() {
    let tool = command_tool(
        r#"["printf", "%s|", "a", "{opt}", "b", "x{opt}"]"#,
        "[[params]]\nname = \"opt\"\npattern = \"word\"\nrequired = false\n",
        "",
    );
    let target = target("http://127.0.0.1:1", &[]);
    let out = tool.run(&target, &json!({}), RunMode::Execute).await.unwrap();
    assert_eq!(out.output, "a|b|x|");
    let out = tool.run(&target, &json!({"opt": "o"}), RunMode::Execute).await.unwrap();
    assert_eq!(out.output, "a|o|b|xo|");
}

#[tokio::test]
async fn target_fields_are_substituted() {
    let argv = r#"["echo", "{target.service}", "{target.instance_id}", "{target.address}"]"#;
    let tool = command_tool(argv, "", "capability = \"host.echo\"");
    let out = tool.run(&target("http://127.0.0.1:1", &["host.echo"]), &json!({}), RunMode::Execute).await.unwrap();
    assert_eq!(out.output, "bookmarks-backend backend-1 http://127.0.0.1:1\n");
    // A service that did not advertise it (only an admin can register `host.` capabilities)
    // is never its target.
    let err = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap_err();
    assert!(matches!(err, ConstructionError::MissingCapability { .. }), "{err:?}");
}

#[tokio::test]
async fn child_gets_only_path_from_the_environment() {
    let tool = command_tool(r#"["env"]"#, "", "");
    let out = tool.run(&target("http://127.0.0.1:1", &[]), &json!({}), RunMode::Execute).await.unwrap();
    let names: Vec<&str> = out.output.lines().filter_map(|line| line.split('=').next()).collect();
    assert_eq!(names, ["PATH"], "{}", out.output);
}

#[tokio::test]
async fn shipped_sqlite_check_resolves_one_argument_per_element() {
    let catalog = aiops_construction::ToolCatalog::new(reqwest::Client::new(), aiops_construction::Secrets::new())
        .with_shipped_tools()
        .unwrap();
    let tool = catalog.get("sqlite_integrity_check").unwrap();
    let target = target("http://127.0.0.1:1", &[]);
    let out = tool.run(&target, &json!({"db_path": "/var/lib/bookmarks/app.db"}), RunMode::DryRun).await.unwrap();
    assert_eq!(out.resolved, "sqlite3 -readonly /var/lib/bookmarks/app.db 'PRAGMA integrity_check'");
    let err = tool.run(&target, &json!({"db_path": "-cmd"}), RunMode::DryRun).await.unwrap_err();
    assert!(matches!(err, ConstructionError::InvalidParams { .. }), "{err:?}");
}

#[tokio::test]
async fn the_target_handed_in_as_a_parameter_needs_a_host_capability_too() {
    // A rollback's `{target.service}`, a pattern or a language model can fill a parameter
    // with the target's name; the command then acts on it on the core's machine.
    let tool = command_tool(r#"["echo", "{msg}"]"#, MSG_PARAM, "");
    let backend = target("http://127.0.0.1:1", &[]);
    for named in ["bookmarks-backend", "backend-1"] {
        let err = tool.run(&backend, &json!({ "msg": named }), RunMode::Execute).await.unwrap_err();
        assert!(
            matches!(&err, ConstructionError::InvalidParams { reason, .. } if reason.contains("`msg` names the target")),
            "{err:?}"
        );
    }
    assert!(tool.run(&backend, &json!({ "msg": "hello" }), RunMode::Execute).await.unwrap().success);
    let host_tool = command_tool(r#"["echo", "{msg}"]"#, MSG_PARAM, "capability = \"host.echo\"");
    let out = host_tool
        .run(&target("http://127.0.0.1:1", &["host.echo"]), &json!({ "msg": "bookmarks-backend" }), RunMode::Execute)
        .await
        .unwrap();
    assert_eq!(out.output, "bookmarks-backend\n");
}
