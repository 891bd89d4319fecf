//! Starting `aiops serve` as a real process for a test, and stopping it with the test.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `aiops serve`; killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `aiops serve` on `port` with `data_dir` and extra environment, and waits until it
/// is ready.
pub(crate) async fn serve(data_dir: &std::path::Path, port: u16, envs: &[(&str, &str)]) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("AIOPS_LOG", "error")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting aiops serve");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let http = reqwest::Client::new();
    while !matches!(http.get(format!("{url}/readyz")).send().await, Ok(r) if r.status().is_success()) {
        assert!(Instant::now() < deadline, "aiops serve did not get ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server { child, url }
}
