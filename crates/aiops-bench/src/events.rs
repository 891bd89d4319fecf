//! Suite `events`: publish throughput and end-to-end latency of both event mesh backends,
//! beside `redis-benchmark`'s raw XADD throughput on the same Redis at the same batching.
//!
//! - Raw peer: `redis-benchmark -c CLIENTS -P BATCH XADD` (pipelined, no durability wait).
//! - Redis backend: CLIENTS tasks each publishing batches of BATCH events.
//! - Embedded backend: the same, each batch fsynced before the call returns; plus batches of
//!   1000 (how a busy ingest endpoint publishes).
//! - Latency: one publisher at 10,000 events/s, one consumer group receiving; the time from
//!   the publish call to the delivery, p50/p99.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_events::{
    EmbeddedConfig, EmbeddedEventBus, EventBus, RedisConfig, RedisEventBus, StartFrom, StreamName, Subscription,
};
use aiops_model::Envelope;
use aiops_testkit::{RedisOptions, RedisServer};
use anyhow::{bail, Context};
use serde_json::{json, Value};

const CLIENTS: usize = 4;
const BATCH: usize = 16;
const EVENTS: usize = 100_000;
const LATENCY_RATE: u64 = 10_000;
const LATENCY_EVENTS: usize = 20_000;

fn say(line: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", line.as_ref());
}

fn event(n: usize) -> Envelope {
    let mut event = Envelope::new(
        "bench/1",
        "http.request",
        json!({ "method": "GET", "route": "/api/bookmarks", "status": 200, "duration_ms": 3.2 }),
    )
    .with_subject("bookmarks");
    event.id = format!("bench-{n}-{}", event.id);
    event
}

/// Events per second publishing `EVENTS` events from `CLIENTS` tasks in batches of `batch`.
async fn publish_rate(bus: Arc<dyn EventBus>, stream: &str, batch: usize) -> anyhow::Result<f64> {
    let stream = StreamName::new(stream)?;
    let per_client = EVENTS / CLIENTS;
    let batches: Vec<Vec<Vec<Envelope>>> = (0..CLIENTS)
        .map(|c| {
            (0..per_client)
                .map(|n| event(c * per_client + n))
                .collect::<Vec<_>>()
                .chunks(batch)
                .map(<[Envelope]>::to_vec)
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_batches in batches {
        let (bus, stream) = (bus.clone(), stream.clone());
        tasks.push(tokio::spawn(async move {
            for events in client_batches {
                bus.publish(&stream, events).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((per_client * CLIENTS) as f64 / started.elapsed().as_secs_f64())
}

/// p50 and p99 milliseconds from publish to delivery at `LATENCY_RATE` events/s.
async fn latency(bus: Arc<dyn EventBus>, stream: &str) -> anyhow::Result<(f64, f64)> {
    let stream = StreamName::new(stream)?;
    let sub = Subscription { start: StartFrom::Latest, ..Subscription::new(stream.clone(), "bench", "c1") };
    bus.receive(&sub, 1, Duration::from_millis(1)).await?;
    let sent: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let consumer = {
        let (bus, sub, sent) = (bus.clone(), sub.clone(), sent.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(LATENCY_EVENTS);
            while latencies.len() < LATENCY_EVENTS {
                let deliveries = bus.receive(&sub, 512, Duration::from_millis(50)).await?;
                let now = Instant::now();
                let offsets: Vec<u64> = deliveries.iter().map(|d| d.offset).collect();
                {
                    let sent = sent.lock().unwrap_or_else(|p| p.into_inner());
                    for delivery in &deliveries {
                        if let Some(at) = sent.get(&delivery.event.id) {
                            latencies.push(now.duration_since(*at).as_secs_f64() * 1000.0);
                        }
                    }
                }
                bus.ack(&sub, &offsets).await?;
            }
            anyhow::Ok(latencies)
        })
    };
    let interval = Duration::from_nanos(1_000_000_000 / LATENCY_RATE);
    let started = Instant::now();
    for n in 0..LATENCY_EVENTS {
        let due = started + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let event = event(n);
        sent.lock().unwrap_or_else(|p| p.into_inner()).insert(event.id.clone(), Instant::now());
        bus.publish(&stream, vec![event]).await?;
    }
    let mut latencies =
        tokio::time::timeout(Duration::from_secs(60), consumer).await.context("consumer stalled")???;
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok((pick(0.50), pick(0.99)))
}

/// Raw XADD throughput of `redis-benchmark` with the same clients and pipeline depth.
fn redis_benchmark(port: u16) -> anyhow::Result<f64> {
    let output = std::process::Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-c", &CLIENTS.to_string(), "-P", &BATCH.to_string()])
        .args([
            "-n",
            &EVENTS.to_string(),
            "--csv",
            "XADD",
            "rawbench",
            "*",
            "event",
            &serde_json::to_string(&event(0))?,
        ])
        .output()
        .context("running redis-benchmark (install it with: bash scripts/install-test-deps.sh)")?;
    if !output.status.success() {
        bail!("redis-benchmark failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let row = text
        .lines()
        .find(|l| l.to_lowercase().starts_with("\"xadd"))
        .context("no XADD row in redis-benchmark output")?;
    // The command text (with our JSON payload) may hold commas: count columns from the end.
    let rps = row.rsplit(',').nth(6).map(|v| v.trim_matches('"')).context("no rps column")?;
    Ok(rps.parse()?)
}

/// User CPU seconds the Redis server has used so far.
fn redis_cpu(port: u16) -> f64 {
    std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "INFO", "cpu"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("used_cpu_user:").map(|v| v.trim().parse().unwrap_or(0.0)))
        })
        .unwrap_or(0.0)
}

pub(crate) async fn run() -> anyhow::Result<Value> {
    let server = RedisServer::start_with(RedisOptions::default().aof(true)).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let dir = tempfile::tempdir()?;
    say(format!(
        "events suite: {EVENTS} events, {CLIENTS} clients, batches of {BATCH}; Redis 7 with AOF (everysec) on port {}",
        server.port()
    ));

    let cpu_before = redis_cpu(server.port());
    let raw = redis_benchmark(server.port())?;
    let raw_cpu = redis_cpu(server.port()) - cpu_before;
    let redis_config = RedisConfig { url: server.url(), ..RedisConfig::default() };
    let redis: Arc<dyn EventBus> = Arc::new(RedisEventBus::connect(&redis_config).await?);
    let redis_single = publish_rate(redis.clone(), "single", 1).await?;
    let cpu_before = redis_cpu(server.port());
    let redis_batched = publish_rate(redis.clone(), "batched", BATCH).await?;
    let ours_cpu = redis_cpu(server.port()) - cpu_before;
    let (redis_p50, redis_p99) = latency(redis.clone(), "latency").await?;

    let embedded: Arc<dyn EventBus> = Arc::new(EmbeddedEventBus::open(dir.path(), EmbeddedConfig::default()).await?);
    let embedded_single = publish_rate(embedded.clone(), "single", 1).await?;
    let embedded_batched = publish_rate(embedded.clone(), "batched", BATCH).await?;
    let embedded_large = publish_rate(embedded.clone(), "large", 1000).await?;
    let (embedded_p50, embedded_p99) = latency(embedded.clone(), "latency").await?;

    say(format!("{:<42} {:>14}", "measure", "events/s or ms"));
    let rows = [
        ("raw redis-benchmark XADD (-P 16)", raw),
        ("redis backend publish, single", redis_single),
        ("redis backend publish, batches of 16", redis_batched),
        ("embedded publish (fsync), single", embedded_single),
        ("embedded publish (fsync), batches of 16", embedded_batched),
        ("embedded publish (fsync), batches of 1000", embedded_large),
    ];
    for (name, value) in rows {
        say(format!("{name:<42} {value:>14.0}"));
    }
    say(format!("{:<42} {:>8.2} / {:.2}", "redis end-to-end p50 / p99 ms @10k/s", redis_p50, redis_p99));
    say(format!("{:<42} {:>8.2} / {:.2}", "embedded end-to-end p50 / p99 ms @10k/s", embedded_p50, embedded_p99));
    say(format!(
        "Redis server CPU per event: raw XADD {:.2} µs, redis backend batches of 16 {:.2} µs",
        raw_cpu * 1e6 / EVENTS as f64,
        ours_cpu * 1e6 / EVENTS as f64
    ));
    say(format!(
        "redis backend / raw: {:.2}   embedded (batches of 16) / raw Redis: {:.2}",
        redis_batched / raw,
        embedded_batched / raw
    ));
    Ok(json!({
        "suite": "events",
        "raw_redis_xadd_per_s": raw,
        "redis_publish_per_s": redis_batched,
        "redis_publish_single_per_s": redis_single,
        "embedded_publish_per_s": embedded_batched,
        "embedded_publish_single_per_s": embedded_single,
        "embedded_publish_batch1000_per_s": embedded_large,
        "redis_publish_ratio": redis_batched / raw,
        "embedded_publish_ratio": embedded_batched / raw,
        "embedded_p50_ms": embedded_p50,
        "embedded_p99_ms": embedded_p99,
        "redis_p50_ms": redis_p50,
        "redis_p99_ms": redis_p99,
        "raw_redis_cpu_us_per_event": raw_cpu * 1e6 / EVENTS as f64,
        "redis_cpu_us_per_event": ours_cpu * 1e6 / EVENTS as f64,
        "clients": CLIENTS,
        "batch": BATCH,
    }))
}
