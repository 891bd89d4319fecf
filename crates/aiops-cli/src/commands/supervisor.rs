//! The demo's process supervisor: runs the bookmark manager and its title service as child
//! processes, restarts a unit that fails when its policy says so (as systemd's
//! `Restart=on-failure` does), and answers `POST /units/{name}/start` on a local control API,
//! which the demo's `start_service` tool calls. Starting a running unit changes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

use super::demo::say;

/// How long the supervisor waits before starting a failed unit again (systemd's default
/// `RestartSec`).
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// What a unit runs and how it is restarted.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub name: &'static str,
    /// Arguments after the executable; `--listen` is added (port 0 the first time, then the
    /// port it got, so that it comes back at the address it registered).
    pub args: Vec<String>,
    /// Start it again when it exits with a failure.
    pub restart_on_failure: bool,
    /// The file its standard error is appended to (a crash-looping fault's panics would
    /// otherwise flood the terminal); inherited when `None`.
    pub stderr_log: Option<PathBuf>,
}

enum Command {
    Start(oneshot::Sender<anyhow::Result<Value>>),
    Kill(oneshot::Sender<bool>),
    Stop(oneshot::Sender<()>),
}

/// Handles of the running units and the control API's URL.
pub(crate) struct Supervisor {
    units: Arc<HashMap<&'static str, mpsc::Sender<Command>>>,
    url: String,
}

impl Supervisor {
    /// Serves the control API; units are added with [`Supervisor::start`].
    pub(crate) async fn new(names: &[&'static str]) -> anyhow::Result<(Self, HashMap<&'static str, UnitInbox>)> {
        let mut senders = HashMap::new();
        let mut inboxes = HashMap::new();
        for name in names {
            let (tx, rx) = mpsc::channel(16);
            senders.insert(*name, tx);
            inboxes.insert(*name, UnitInbox(rx));
        }
        let units = Arc::new(senders);
        let app = Router::new().route("/units/{name}/start", post(start_unit)).with_state(units.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the supervisor's API")?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((Self { units, url }, inboxes))
    }

    /// Base URL of the control API.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Starts `unit` and supervises it; returns its base URL once it listens.
    pub(crate) async fn start(&self, exe: PathBuf, unit: Unit, inbox: UnitInbox) -> anyhow::Result<String> {
        let (child, base) = launch(&exe, &unit, "127.0.0.1:0").await?;
        say(format!("{:<16} {base}  (pid {}, supervised)", unit.name, child.id().unwrap_or_default()));
        let listen = base.trim_start_matches("http://").to_owned();
        tokio::spawn(supervise(exe, unit, listen, child, inbox.0));
        Ok(base)
    }

    /// Kills `name` with SIGKILL, as the kernel's OOM killer does; returns whether it ran.
    pub(crate) async fn kill(&self, name: &str) -> anyhow::Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.sender(name)?.send(Command::Kill(reply)).await.map_err(|_| anyhow!("unit {name} is gone"))?;
        Ok(answer.await.unwrap_or(false))
    }

    /// Stops every unit.
    pub(crate) async fn stop_all(&self) {
        for sender in self.units.values() {
            let (reply, done) = oneshot::channel();
            if sender.send(Command::Stop(reply)).await.is_ok() {
                let _ = done.await;
            }
        }
    }

    fn sender(&self, name: &str) -> anyhow::Result<&mpsc::Sender<Command>> {
        self.units.get(name).ok_or_else(|| anyhow!("no unit {name}"))
    }
}

/// Commands for one unit, waiting for its supervising task.
pub(crate) struct UnitInbox(mpsc::Receiver<Command>);

async fn start_unit(
    State(units): State<Arc<HashMap<&'static str, mpsc::Sender<Command>>>>,
    Path(name): Path<String>,
) -> (StatusCode, Json<Value>) {
    let Some(sender) = units.get(name.as_str()) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": { "code": "not_found", "message": format!("no unit {name}") } })),
        );
    };
    let (reply, answer) = oneshot::channel();
    let sent = sender.send(Command::Start(reply)).await.is_ok();
    match (sent, answer.await) {
        (true, Ok(Ok(body))) => (StatusCode::OK, Json(body)),
        (_, Ok(Err(err))) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": { "code": "start_failed", "message": format!("{err:#}") } })),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": { "code": "stopping", "message": "the supervisor is stopping" } })),
        ),
    }
}

/// Starts `aiops <unit args> --listen <listen>`; returns it once it prints its address.
async fn launch(exe: &std::path::Path, unit: &Unit, listen: &str) -> anyhow::Result<(Child, String)> {
    let stderr = match &unit.stderr_log {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Stdio::from)
            .with_context(|| format!("opening {}", path.display()))?,
        None => Stdio::inherit(),
    };
    let mut child = tokio::process::Command::new(exe)
        .args(&unit.args)
        .args(["--listen", listen])
        .env("AIOPS_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", unit.name))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("{} has no stdout", unit.name))?;
    let first = tokio::time::timeout(Duration::from_secs(20), BufReader::new(stdout).lines().next_line())
        .await
        .with_context(|| format!("{} did not start within 20s", unit.name))??
        .ok_or_else(|| anyhow!("{} exited before listening", unit.name))?;
    let base = first
        .strip_prefix("listening on ")
        .ok_or_else(|| anyhow!("unexpected first line from {}: {first:?}", unit.name))?
        .trim()
        .to_owned();
    Ok((child, base))
}

/// Waits for the child to exit; whether it failed, and how.
async fn exited(child: &mut Option<Child>) -> (bool, String) {
    match child {
        Some(running) => match running.wait().await {
            Ok(status) => (!status.success(), status.to_string()),
            Err(err) => (true, err.to_string()),
        },
        None => std::future::pending().await,
    }
}

async fn supervise(exe: PathBuf, unit: Unit, listen: String, first: Child, mut inbox: mpsc::Receiver<Command>) {
    let mut child = Some(first);
    let mut restarts = 0_u32;
    loop {
        let command = tokio::select! {
            (failed, status) = exited(&mut child) => {
                child = None;
                if !(failed && unit.restart_on_failure) {
                    say(format!("             supervisor: {} exited ({status}); not restarted", unit.name));
                    continue;
                }
                tokio::time::sleep(RESTART_DELAY).await;
                match launch(&exe, &unit, &listen).await {
                    Ok((next, _)) => {
                        restarts += 1;
                        say(format!(
                            "             supervisor: {} exited ({status}); started again (restart {restarts}, pid {})",
                            unit.name,
                            next.id().unwrap_or_default()
                        ));
                        child = Some(next);
                    }
                    Err(err) => say(format!("             supervisor: {} exited ({status}) and did not start again: {err:#}", unit.name)),
                }
                continue;
            }
            command = inbox.recv() => command,
        };
        match command {
            Some(Command::Start(reply)) => {
                if let Some(running) = &child {
                    let _ = reply.send(Ok(json!({ "unit": unit.name, "started": false, "pid": running.id() })));
                    continue;
                }
                match launch(&exe, &unit, &listen).await {
                    Ok((next, _)) => {
                        say(format!(
                            "             supervisor: {} started on request (pid {})",
                            unit.name,
                            next.id().unwrap_or_default()
                        ));
                        let _ = reply.send(Ok(json!({ "unit": unit.name, "started": true, "pid": next.id() })));
                        child = Some(next);
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            Some(Command::Kill(reply)) => {
                let killed = match child.as_mut() {
                    Some(running) => running.start_kill().is_ok(),
                    None => false,
                };
                let _ = reply.send(killed);
            }
            Some(Command::Stop(reply)) => {
                if let Some(mut running) = child.take() {
                    let _ = running.start_kill();
                    let _ = running.wait().await;
                }
                let _ = reply.send(());
                return;
            }
            None => return,
        }
    }
}
