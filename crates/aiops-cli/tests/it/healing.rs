//! `aiops healing`, `aiops approvals` and `aiops audit` against a running core.

use crate::support::{free_port, serve};

async fn aiops(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_aiops")).args(args).output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_kill_switch_and_approvals_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), free_port(), &[]).await;
    let url = server.url.as_str();
    let (ok, stdout, _) = aiops(&["healing", "status", "--url", url]).await;
    assert!(ok && stdout.contains("released"), "{stdout}");
    let (ok, stdout, stderr) = aiops(&["healing", "stop", "--reason", "migrating the database", "--url", url]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ENGAGED by anonymous") && stdout.contains("migrating the database"), "{stdout}");
    let (ok, _, _) = aiops(&["healing", "resume", "--reason", "done", "--url", url]).await;
    assert!(ok);
    let (ok, stdout, _) = aiops(&["audit", "--limit", "5", "--url", url]).await;
    assert!(ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("kill_switch.released") && lines[1].contains("kill_switch.engaged"), "{stdout}");
    let (ok, stdout, _) = aiops(&["approvals", "list", "--url", url]).await;
    assert!(ok && stdout.trim().is_empty(), "{stdout}");
    let (ok, _, stderr) = aiops(&["approvals", "approve", "nope", "--reason", "x", "--url", url]).await;
    assert!(!ok);
    assert!(stderr.contains("404") && stderr.contains("no approval request nope"), "{stderr}");
}
