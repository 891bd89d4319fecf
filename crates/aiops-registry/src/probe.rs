//! Runs one check against an instance: HTTP, TCP connect, a command, or a heartbeat TTL.

use std::process::Stdio;
use std::time::Duration;

use aiops_model::HealthStatus;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{CheckDefinition, CheckKind, ServiceInstance};

/// Most body bytes an HTTP check reads.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What one run found, before damping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Probe {
    pub status: HealthStatus,
    pub output: String,
    /// The heartbeat was lost: critical at once, there is nothing to repeat.
    pub heartbeat_lost: bool,
    /// Nothing listens at the address any more (connection refused): like a lost heartbeat,
    /// it says the process is gone, but it is damped like any failure, since a supervisor
    /// may be starting the process again.
    pub refused: bool,
}

impl Probe {
    fn new(status: HealthStatus, output: String) -> Self {
        Self { status, output, heartbeat_lost: false, refused: false }
    }
}

/// How to run probes.
#[derive(Debug, Clone)]
pub(crate) struct ProbeContext<'a> {
    pub http: &'a reqwest::Client,
    pub timeout: Duration,
    pub max_output_bytes: usize,
    pub now: DateTime<Utc>,
}

pub(crate) async fn run(ctx: &ProbeContext<'_>, instance: &ServiceInstance, check: &CheckDefinition) -> Probe {
    match check.kind {
        CheckKind::Http => http(ctx, check).await,
        CheckKind::Tcp => tcp(ctx, check).await,
        CheckKind::Command => command(ctx, check).await,
        CheckKind::Ttl => ttl(ctx, instance, check),
    }
}

/// Whether the connection was refused: the host answered that nothing listens on the port.
fn refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = err.source();
    }
    false
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

async fn http(ctx: &ProbeContext<'_>, check: &CheckDefinition) -> Probe {
    let url = check.url.as_deref().unwrap_or_default();
    let request = async {
        let mut response = ctx.http.get(url).send().await?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        if check.body_contains.is_some() {
            while let Some(chunk) = response.chunk().await? {
                body.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY_BYTES - body.len())]);
                if body.len() >= MAX_BODY_BYTES {
                    break;
                }
            }
        }
        Ok::<_, reqwest::Error>((status, body))
    };
    let (status, body) = match tokio::time::timeout(ctx.timeout, request).await {
        Err(_) => {
            return Probe::new(
                HealthStatus::Critical,
                format!("GET {url} timed out after {}ms", ctx.timeout.as_millis()),
            )
        }
        Ok(Err(err)) if refused(&err) => {
            return Probe {
                refused: true,
                ..Probe::new(HealthStatus::Critical, format!("GET {url}: connection refused"))
            }
        }
        Ok(Err(err)) if err.is_connect() => {
            return Probe::new(HealthStatus::Critical, format!("GET {url}: cannot connect: {}", error_chain(&err)))
        }
        Ok(Err(err)) => return Probe::new(HealthStatus::Critical, format!("GET {url} failed: {err}")),
        Ok(Ok(answer)) => answer,
    };
    let status_ok = match check.status {
        Some(expected) => status == expected,
        None => (200..300).contains(&status),
    };
    if !status_ok {
        // Consul's convention: 429 means "alive but shedding load".
        let verdict = if status == 429 { HealthStatus::Warning } else { HealthStatus::Critical };
        return Probe::new(verdict, format!("GET {url} returned {status}"));
    }
    if let Some(needle) = &check.body_contains {
        if !String::from_utf8_lossy(&body).contains(needle.as_str()) {
            return Probe::new(
                HealthStatus::Critical,
                format!("GET {url} returned {status} without {needle:?} in its body"),
            );
        }
    }
    Probe::new(HealthStatus::Passing, format!("GET {url} returned {status}"))
}

async fn tcp(ctx: &ProbeContext<'_>, check: &CheckDefinition) -> Probe {
    let target = check.target.as_deref().unwrap_or_default();
    match tokio::time::timeout(ctx.timeout, tokio::net::TcpStream::connect(target)).await {
        Ok(Ok(_)) => Probe::new(HealthStatus::Passing, format!("TCP connect {target}: open")),
        Ok(Err(err)) => Probe::new(HealthStatus::Critical, format!("TCP connect {target}: {err}")),
        Err(_) => Probe::new(
            HealthStatus::Critical,
            format!("TCP connect {target} timed out after {}ms", ctx.timeout.as_millis()),
        ),
    }
}

/// Reads all of `reader` and keeps the first `cap` bytes, so that a chatty command neither
/// blocks on a full pipe nor fills memory.
async fn read_capped(mut reader: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0_u8; 8192];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

async fn command(ctx: &ProbeContext<'_>, check: &CheckDefinition) -> Probe {
    let argv = check.argv.as_deref().unwrap_or_default();
    let Some((program, args)) = argv.split_first() else {
        return Probe::new(HealthStatus::Critical, "empty argv".into());
    };
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => return Probe::new(HealthStatus::Critical, format!("{program} could not start: {err}")),
    };
    let cap = ctx.max_output_bytes;
    let stdout = child.stdout.take().map(|out| tokio::spawn(read_capped(out, cap)));
    let stderr = child.stderr.take().map(|err| tokio::spawn(read_capped(err, cap)));
    let exit = match tokio::time::timeout(ctx.timeout, child.wait()).await {
        Ok(Ok(exit)) => exit,
        Ok(Err(err)) => return Probe::new(HealthStatus::Critical, format!("{program}: {err}")),
        Err(_) => {
            // kill_on_drop only sends the signal; kill().await also reaps the process.
            let _ = child.kill().await;
            return Probe::new(
                HealthStatus::Critical,
                format!("{program} timed out after {}ms and was killed", ctx.timeout.as_millis()),
            );
        }
    };
    let mut output = Vec::new();
    for reader in [stdout, stderr].into_iter().flatten() {
        output.extend(reader.await.unwrap_or_default());
    }
    output.truncate(cap);
    let text = String::from_utf8_lossy(&output).trim().to_owned();
    let status = match exit.code() {
        Some(0) => HealthStatus::Passing,
        Some(1) => HealthStatus::Warning,
        _ => HealthStatus::Critical,
    };
    let how = match exit.code() {
        Some(code) => format!("exit {code}"),
        None => "killed by a signal".to_owned(),
    };
    Probe::new(status, if text.is_empty() { format!("{program}: {how}") } else { format!("{program}: {how}: {text}") })
}

fn ttl(ctx: &ProbeContext<'_>, instance: &ServiceInstance, check: &CheckDefinition) -> Probe {
    let ttl = check.ttl_secs.unwrap_or(1);
    let last = instance.last_heartbeat.unwrap_or(instance.registered_at);
    let silent_ms = (ctx.now - last).num_milliseconds().max(0);
    if silent_ms > (ttl * 1000) as i64 {
        return Probe {
            status: HealthStatus::Critical,
            output: format!("no heartbeat for {:.1}s (ttl {ttl}s)", silent_ms as f64 / 1000.0),
            heartbeat_lost: true,
            refused: false,
        };
    }
    Probe::new(HealthStatus::Passing, format!("heartbeat {:.1}s ago (ttl {ttl}s)", silent_ms as f64 / 1000.0))
}
