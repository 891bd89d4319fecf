//! The `bookmarks` binary: the one stdout line, serving, a clean exit on SIGTERM, and the
//! crash loop that only `bookmarks config rollback` ends.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn binary_prints_its_address_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bookmarks"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("cli.db"))
        .env_remove("AIOPS_URL")
        .env_remove("BOOKMARKS_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        (line, stdout)
    });
    let (line, mut stdout) = tokio::time::timeout(Duration::from_secs(20), line).await.unwrap().unwrap();
    let base =
        line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout carries only the listening line");
}

/// Starts `bookmarks serve` on `listen` with the database `db`; returns it and its base URL.
async fn serve(listen: &str, db: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bookmarks"))
        .args(["serve", "--listen", listen, "--db"])
        .arg(db)
        .env_remove("AIOPS_URL")
        .env_remove("BOOKMARKS_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line).await.unwrap().unwrap();
    let base = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}"));
    (child, base.to_owned())
}

/// Waits for the process to exit; returns its exit code and stderr, or `None` if it still
/// runs after `within`.
async fn exit_within(mut child: Child, within: Duration) -> Result<(Option<i32>, String), Child> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return Ok((status.code(), stderr));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(child)
}

#[tokio::test]
async fn crash_loop_config_crashes_every_start_until_rolled_back_offline() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("loop.db");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (child, base) = serve("127.0.0.1:0", &db).await;
    let listen = base.trim_start_matches("http://").to_owned();
    let injected = http
        .post(format!("{base}/admin/faults"))
        .json(&serde_json::json!({ "fault": "crash_loop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(injected.status(), 200);
    let (code, stderr) = exit_within(child, Duration::from_secs(5)).await.expect("the warmer panics");
    assert_eq!(code, Some(101));
    assert!(stderr.contains("panicked") && stderr.contains("configuration v3"), "{stderr}");

    // The configuration outlives the process: a restart on the same port crashes again.
    let started = Instant::now();
    let (child, _) = serve(&listen, &db).await;
    let (code, _) = exit_within(child, Duration::from_secs(5)).await.expect("crashes again");
    assert_eq!(code, Some(101));
    assert!(started.elapsed() >= bookmarks::CRASH_AFTER);

    let rollback =
        Command::new(env!("CARGO_BIN_EXE_bookmarks")).args(["config", "rollback", "--db"]).arg(&db).output().unwrap();
    assert!(rollback.status.success());
    assert_eq!(String::from_utf8_lossy(&rollback.stdout).trim(), r#"{"changed":true,"config":"v1"}"#);

    let (child, base) = serve(&listen, &db).await;
    let child = match exit_within(child, bookmarks::CRASH_AFTER * 3).await {
        Ok((code, stderr)) => panic!("exited with {code:?} after the rollback: {stderr}"),
        Err(child) => child,
    };
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let faults: serde_json::Value =
        http.get(format!("{base}/admin/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(faults["active"], serde_json::json!([]));
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let (code, _) = exit_within(child, Duration::from_secs(10)).await.expect("stops on SIGTERM");
    assert_eq!(code, Some(0));
}
