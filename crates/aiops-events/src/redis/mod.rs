//! The Redis Streams event mesh, for several `aiops serve` instances sharing work.
//!
//! # Layout (readable by any Redis client)
//! A stream `S` is the Redis stream `<prefix>{S}` (default prefix `aiops:`; the braces are a
//! hash tag, so a stream and its keys share a cluster slot). Entry ids are `0-<offset>`, so
//! offsets are dense, start at 1, and `XRANGE <prefix>{S} 0-5 0-9` reads offsets 5 to 9. Each
//! entry has the fields `id`, `type`, `source`, `subject`, `time` (RFC 3339) and `event` (the
//! whole envelope as CloudEvents JSON). Beside it: `<prefix>{S}:ids` (sorted set: each event's
//! `<length of source>:<source><id>`, scored by its offset, for idempotent publishing and
//! trimming with the stream) and `<prefix>{S}:seq` (the last offset). Consumer groups are
//! Redis consumer groups named after the agent, so `XREADGROUP GROUP monitor c1 STREAMS
//! aiops:{telemetry} >` reads what the Monitor reads.
//!
//! # Semantics
//! - Retention (`XTRIM MINID`, every 1024 offsets) removes entries every group has finished
//!   once they exceed `retention_max_events` or `retention_max_age_secs`; a stream at
//!   `max_length` refuses publishes with an error naming the group furthest behind.
//! - Publish is one Lua script per batch: one `ZMSCORE` finds the ids stored already, one
//!   `INCRBY` reserves the new offsets, then one `XADD` per new event and one `ZADD` for all,
//!   atomically. Durability is Redis's: run it with `appendonly yes` and `appendfsync always`
//!   for "durable when acknowledged" (with `everysec` a machine crash may lose the last second).
//! - Pending entries idle longer than the visibility timeout are reclaimed with `XAUTOCLAIM`;
//!   `nack` resets an entry's idle time with `XCLAIM ... IDLE` so it is reclaimable after the
//!   retry delay; an entry delivered more than `max_deliveries` times is copied to the
//!   dead-letter stream and acknowledged.
//! - Blocking reads use a dedicated connection per subscription, so they never stall the
//!   shared connection; the shared one is a `ConnectionManager`, which reconnects with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aiops_model::Envelope;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamRangeReply, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::{
    Delivery, EventBus, EventsError, EventsResult, Offset, ReadQuery, StartFrom, StoredEvent, StreamName, Subscription,
};

#[cfg(test)]
mod tests;

const BACKEND: &str = "redis";
/// Retention runs when a publish crosses a multiple of this offset.
const TRIM_EVERY: Offset = 1024;

/// Settings of the Redis backend (`[events] backend = "redis"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port[/db]`. Default: `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prefix of every key. Default: `aiops:`.
    pub prefix: String,
    /// Deliveries of one event to a group before it goes to the dead-letter stream. Default: 5.
    pub max_deliveries: u32,
    /// Time a consumer may hold an event before another may claim it, in milliseconds. Default: 30000.
    pub visibility_timeout_ms: u64,
    /// Most events accepted in one publish call. Default: 1000.
    pub max_batch: usize,
    /// Timeout of one Redis command, in milliseconds. Default: 5000.
    pub command_timeout_ms: u64,
    /// Hard bound of one stream, in events; publishing beyond it fails (0: no bound).
    /// Default: 10000000.
    pub max_length: u64,
    /// Events kept per stream at least; older ones every group has finished are trimmed.
    /// Default: 5000000.
    pub retention_max_events: Option<u64>,
    /// Age after which entries every group has finished are trimmed, in seconds. Default: 604800.
    pub retention_max_age_secs: Option<u64>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "aiops:".into(),
            max_deliveries: 5,
            visibility_timeout_ms: crate::bus::default_visibility().as_millis() as u64,
            max_batch: 1000,
            command_timeout_ms: 5000,
            max_length: 10_000_000,
            retention_max_events: Some(5_000_000),
            retention_max_age_secs: Some(7 * 24 * 3600),
        }
    }
}

const PUBLISH: &str = r#"
local n = tonumber(ARGV[1])
local max_length = tonumber(ARGV[2])
if max_length > 0 and redis.call('XLEN', KEYS[1]) + n > max_length then
  return redis.error_reply('AIOPS_FULL the stream holds its maximum of ' .. max_length .. ' events')
end
local ids = {}
for k = 1, n do
  local a = 3 + (k - 1) * 6
  ids[k] = #ARGV[a + 2] .. ':' .. ARGV[a + 2] .. ARGV[a]
end
local known = redis.call('ZMSCORE', KEYS[2], unpack(ids))
local fresh, seen = 0, {}
for k = 1, n do
  if not known[k] and not seen[ids[k]] then
    fresh = fresh + 1
    seen[ids[k]] = true
  end
end
local offset = 0
if fresh > 0 then offset = redis.call('INCRBY', KEYS[3], fresh) - fresh end
local now = redis.call('TIME')
local appended = tostring(now[1] * 1000 + math.floor(now[2] / 1000))
local out, assigned, scored = {}, {}, {}
for k = 1, n do
  local id = ids[k]
  if known[k] then
    out[k] = tonumber(known[k])
  elseif assigned[id] then
    out[k] = assigned[id]
  else
    offset = offset + 1
    local a = 3 + (k - 1) * 6
    redis.call('XADD', KEYS[1], '0-' .. offset, 'id', ARGV[a], 'type', ARGV[a + 1], 'source', ARGV[a + 2],
      'subject', ARGV[a + 3], 'time', ARGV[a + 4], 'appended_ms', appended, 'event', ARGV[a + 5])
    assigned[id] = offset
    out[k] = offset
    scored[#scored + 1] = offset
    scored[#scored + 1] = id
  end
end
if #scored > 0 then redis.call('ZADD', KEYS[2], unpack(scored)) end
return out
"#;

/// Stream, group and consumer of a subscription.
type SubscriptionKey = (String, String, String);

/// The event mesh on Redis Streams.
#[derive(Clone)]
pub struct RedisEventBus {
    client: redis::Client,
    shared: ConnectionManager,
    config: RedisConfig,
    publish: Arc<redis::Script>,
    /// One connection per subscription for blocking reads.
    blocking: Arc<Mutex<HashMap<SubscriptionKey, MultiplexedConnection>>>,
}

impl std::fmt::Debug for RedisEventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only the prefix.
        f.debug_struct("RedisEventBus").field("prefix", &self.config.prefix).finish_non_exhaustive()
    }
}

fn unavailable(err: redis::RedisError) -> EventsError {
    EventsError::Unavailable { backend: BACKEND, source: std::io::Error::other(err.to_string()) }
}

fn corrupt(detail: String) -> EventsError {
    EventsError::Corrupt { backend: BACKEND, detail }
}

fn entry_id(offset: Offset) -> String {
    format!("0-{offset}")
}

fn offset_of(entry_id: &str) -> EventsResult<Offset> {
    entry_id.strip_prefix("0-").and_then(|n| n.parse().ok()).ok_or_else(|| {
        corrupt(format!("entry id {entry_id} is not 0-<offset>: was the stream written by another program?"))
    })
}

fn field(entry: &StreamId, name: &str) -> EventsResult<String> {
    match entry.map.get(name) {
        Some(redis::Value::BulkString(bytes)) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Some(redis::Value::SimpleString(text)) => Ok(text.clone()),
        _ => Err(corrupt(format!("entry {} has no field {name}", entry.id))),
    }
}

fn decode(entry: &StreamId) -> EventsResult<(Offset, Envelope)> {
    let offset = offset_of(&entry.id)?;
    let json = field(entry, "event")?;
    let event = serde_json::from_str(&json).map_err(|err| corrupt(format!("entry {}: {err}", entry.id)))?;
    Ok((offset, event))
}

/// An entry as a [`StoredEvent`], with the time the publish script accepted it.
fn stored(entry: &StreamId) -> EventsResult<StoredEvent> {
    let (offset, event) = decode(entry)?;
    let accepted_at = field(entry, "appended_ms")?
        .parse::<i64>()
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .ok_or_else(|| corrupt(format!("entry {}: appended_ms is not a time", entry.id)))?;
    Ok(StoredEvent { offset, accepted_at, event })
}

/// Logs a warning when Redis keeps no append-only file: an acknowledged event would then
/// be lost when Redis restarts. Managed servers may forbid `CONFIG`; that is not an error.
async fn warn_if_not_durable(shared: &ConnectionManager) {
    let mut conn = shared.clone();
    let answer: redis::RedisResult<Vec<String>> =
        redis::cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut conn).await;
    if let Ok(pair) = answer {
        if pair.get(1).is_some_and(|value| value == "no") {
            tracing::warn!(
                "Redis runs without appendonly: events acknowledged by the mesh are lost if Redis restarts."
            );
        }
    }
}

impl RedisEventBus {
    /// Connects (with retries inside the connection manager) and loads the publish script.
    ///
    /// # Errors
    /// [`EventsError::Invalid`] for a malformed URL, [`EventsError::Unavailable`] when Redis
    /// cannot be reached.
    pub async fn connect(config: &RedisConfig) -> EventsResult<Self> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|err| EventsError::Invalid(format!("events.url is not a Redis URL: {err}")))?;
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(6)
            .set_max_delay(Duration::from_secs(2));
        let shared = client.get_connection_manager_with_config(manager_config).await.map_err(unavailable)?;
        warn_if_not_durable(&shared).await;
        Ok(Self {
            client,
            shared,
            config: config.clone(),
            publish: Arc::new(redis::Script::new(PUBLISH)),
            blocking: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn key(&self, stream: &StreamName) -> String {
        format!("{}{{{}}}", self.config.prefix, stream.as_str())
    }

    fn visibility(&self) -> Duration {
        Duration::from_millis(self.config.visibility_timeout_ms)
    }

    async fn ensure_group(&self, key: &str, sub: &Subscription) -> EventsResult<()> {
        let start = match sub.start {
            StartFrom::Earliest => "0",
            StartFrom::Latest => "$",
        };
        let mut conn = self.shared.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(key)
            .arg(&sub.group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => Ok(()),
            Err(err) if err.code() == Some("BUSYGROUP") => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn blocking_connection(&self, sub: &Subscription) -> EventsResult<MultiplexedConnection> {
        let key = (sub.stream.as_str().to_owned(), sub.group.clone(), sub.consumer.clone());
        let mut connections = self.blocking.lock().await;
        if let Some(conn) = connections.get(&key) {
            return Ok(conn.clone());
        }
        let conn = self.client.get_multiplexed_async_connection().await.map_err(unavailable)?;
        connections.insert(key, conn.clone());
        Ok(conn)
    }

    async fn drop_blocking_connection(&self, sub: &Subscription) {
        let key = (sub.stream.as_str().to_owned(), sub.group.clone(), sub.consumer.clone());
        self.blocking.lock().await.remove(&key);
    }

    /// Claims entries idle past their visibility timeout; dead-letters the exhausted ones.
    async fn reclaim(&self, key: &str, sub: &Subscription, max: usize) -> EventsResult<Vec<Delivery>> {
        let mut conn = self.shared.clone();
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(key)
            .arg(&sub.group)
            .arg(&sub.consumer)
            .arg(self.config.visibility_timeout_ms)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        let first = &reply.claimed[0].id;
        let last = &reply.claimed[reply.claimed.len() - 1].id;
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(key)
            .arg(&sub.group)
            .arg(first)
            .arg(last)
            .arg(reply.claimed.len() * 4 + 16)
            .arg(&sub.consumer)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let counts: HashMap<&str, usize> = pending.ids.iter().map(|p| (p.id.as_str(), p.times_delivered)).collect();
        let mut deliveries = Vec::new();
        let mut exhausted = Vec::new();
        for entry in &reply.claimed {
            let (offset, event) = decode(entry)?;
            let attempt = counts.get(entry.id.as_str()).copied().unwrap_or(1) as u32;
            if attempt > self.config.max_deliveries.max(1) {
                exhausted.push((offset, event, attempt - 1));
            } else {
                deliveries.push(Delivery { offset, event, attempt });
            }
        }
        for (offset, event, attempts) in exhausted {
            let letter = crate::embedded::dead_letter_envelope(&sub.stream, &sub.group, offset, event, attempts);
            self.publish_checked(&sub.stream.dead_letter(), &[letter]).await?;
            self.ack(sub, &[offset]).await?;
        }
        Ok(deliveries)
    }

    async fn publish_checked(&self, stream: &StreamName, events: &[Envelope]) -> EventsResult<Vec<Offset>> {
        let key = self.key(stream);
        let mut invocation = self.publish.key(&key);
        invocation.key(format!("{key}:ids")).key(format!("{key}:seq")).arg(events.len()).arg(self.config.max_length);
        for event in events {
            let json = serde_json::to_string(event)
                .map_err(|err| EventsError::Invalid(format!("event {} cannot be encoded: {err}", event.id)))?;
            invocation
                .arg(&event.id)
                .arg(&event.event_type)
                .arg(&event.source)
                .arg(event.subject.as_deref().unwrap_or(""))
                .arg(event.time.to_rfc3339())
                .arg(json);
        }
        let mut conn = self.shared.clone();
        let offsets: Vec<Offset> = match invocation.invoke_async(&mut conn).await {
            Ok(offsets) => offsets,
            Err(err) if err.to_string().contains("AIOPS_FULL") => {
                let lagging = self.slowest_group(&key).await.ok().flatten();
                let lagging = lagging.map(|(group, lag)| format!("; consumer group {group} is {lag} events behind"));
                return Err(EventsError::Overloaded(format!(
                    "stream {stream} holds its maximum of {} events{}",
                    self.config.max_length,
                    lagging.unwrap_or_default()
                )));
            }
            Err(err) => return Err(unavailable(err)),
        };
        let highest = offsets.iter().copied().max().unwrap_or(0);
        if highest / TRIM_EVERY != highest.saturating_sub(events.len() as Offset) / TRIM_EVERY {
            if let Err(err) = self.apply_retention(&key).await {
                tracing::warn!(stream = %stream, error = %err, "Trimming the stream failed; the next batch retries.");
            }
        }
        Ok(offsets)
    }

    /// For each group, the lowest offset it has not finished (pending or never delivered).
    async fn group_floors(&self, key: &str) -> EventsResult<Vec<(String, Offset)>> {
        let mut conn = self.shared.clone();
        let groups: redis::streams::StreamInfoGroupsReply =
            redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(&mut conn).await.map_err(unavailable)?;
        let mut floors = Vec::with_capacity(groups.groups.len());
        for group in groups.groups {
            let delivered = offset_of(&group.last_delivered_id).unwrap_or(0);
            let mut floor = delivered + 1;
            if group.pending > 0 {
                let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                    .arg(key)
                    .arg(&group.name)
                    .arg("-")
                    .arg("+")
                    .arg(1)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                if let Some(oldest) = pending.ids.first() {
                    floor = floor.min(offset_of(&oldest.id)?);
                }
            }
            floors.push((group.name, floor));
        }
        Ok(floors)
    }

    async fn slowest_group(&self, key: &str) -> EventsResult<Option<(String, Offset)>> {
        let last =
            self.range(key, "-", "+", 1, true).await?.first().map(|e| offset_of(&e.id)).transpose()?.unwrap_or(0);
        Ok(self
            .group_floors(key)
            .await?
            .into_iter()
            .min_by_key(|(_, floor)| *floor)
            .map(|(name, floor)| (name, (last + 1).saturating_sub(floor))))
    }

    /// Trims entries every group has finished that exceed the length or age limit.
    async fn apply_retention(&self, key: &str) -> EventsResult<()> {
        let Some(newest) = self.range(key, "-", "+", 1, true).await?.into_iter().next() else { return Ok(()) };
        let last = offset_of(&newest.id)?;
        let done_below = self.group_floors(key).await?.into_iter().map(|(_, floor)| floor).min().unwrap_or(last + 1);
        let by_length = self.config.retention_max_events.map_or(0, |max| (last + 1).saturating_sub(max));
        let by_age = match self.config.retention_max_age_secs {
            Some(age) => {
                let cutoff_ms = chrono::Utc::now().timestamp_millis() - (age as i64).saturating_mul(1000);
                self.first_since(key, cutoff_ms).await?
            }
            None => 0,
        };
        let cut = by_length.max(by_age).min(done_below);
        if cut <= 1 {
            return Ok(());
        }
        let mut conn = self.shared.clone();
        let _: i64 = redis::cmd("XTRIM")
            .arg(key)
            .arg("MINID")
            .arg(entry_id(cut))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let _: i64 = redis::cmd("ZREMRANGEBYSCORE")
            .arg(format!("{key}:ids"))
            .arg("-inf")
            .arg(format!("({cut}"))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The first offset Redis stored at or after `ms` (binary search over `appended_ms`).
    async fn first_since(&self, key: &str, ms: i64) -> EventsResult<Offset> {
        let appended =
            |entry: &StreamId| field(entry, "appended_ms").ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let Some(oldest) = self.range(key, "-", "+", 1, false).await?.into_iter().next() else { return Ok(1) };
        let Some(newest) = self.range(key, "-", "+", 1, true).await?.into_iter().next() else { return Ok(1) };
        let (mut low, mut high) = (offset_of(&oldest.id)?, offset_of(&newest.id)? + 1);
        while low < high {
            let mid = low + (high - low) / 2;
            let at = self.range(key, &entry_id(mid), "+", 1, false).await?;
            match at.first() {
                Some(entry) if appended(entry) < ms => low = offset_of(&entry.id)? + 1,
                Some(_) => high = mid,
                None => high = mid,
            }
        }
        Ok(low)
    }

    async fn range(&self, key: &str, from: &str, to: &str, count: usize, reverse: bool) -> EventsResult<Vec<StreamId>> {
        let mut conn = self.shared.clone();
        let mut cmd = if reverse { redis::cmd("XREVRANGE") } else { redis::cmd("XRANGE") };
        let (start, end) = if reverse { (to, from) } else { (from, to) };
        cmd.arg(key).arg(start).arg(end).arg("COUNT").arg(count);
        let reply: StreamRangeReply = cmd.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(reply.ids)
    }
}

#[async_trait]
impl EventBus for RedisEventBus {
    async fn publish(&self, stream: &StreamName, events: Vec<Envelope>) -> EventsResult<Vec<Offset>> {
        if events.len() > self.config.max_batch {
            return Err(EventsError::Overloaded(format!(
                "a batch holds at most {} events, got {}",
                self.config.max_batch,
                events.len()
            )));
        }
        for event in &events {
            event.validate().map_err(|err| EventsError::Invalid(format!("event {:?}: {err}", event.id)))?;
        }
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.publish_checked(stream, &events).await
    }

    async fn receive(&self, sub: &Subscription, max: usize, wait: Duration) -> EventsResult<Vec<Delivery>> {
        let key = self.key(&sub.stream);
        self.ensure_group(&key, sub).await?;
        let max = max.max(1);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let mut deliveries = self.reclaim(&key, sub, max).await?;
            if deliveries.len() < max {
                // Block briefly, so that entries becoming reclaimable are noticed soon too.
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let block_ms = remaining.min(Duration::from_millis(100)).as_millis().max(1) as u64;
                let mut conn = self.blocking_connection(sub).await?;
                let read: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(&sub.group)
                    .arg(&sub.consumer)
                    .arg("COUNT")
                    .arg(max - deliveries.len())
                    .arg("BLOCK")
                    .arg(block_ms)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(">")
                    .query_async(&mut conn)
                    .await;
                let read = match read {
                    Ok(read) => read,
                    Err(err) => {
                        self.drop_blocking_connection(sub).await;
                        return Err(unavailable(err));
                    }
                };
                let mut skipped = Vec::new();
                for entry in read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    let (offset, event) = decode(&entry)?;
                    if !sub.wants(&event) {
                        skipped.push(offset);
                        continue;
                    }
                    deliveries.push(Delivery { offset, event, attempt: 1 });
                }
                if !skipped.is_empty() {
                    self.ack(sub, &skipped).await?;
                }
            }
            if !deliveries.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(deliveries);
            }
        }
    }

    async fn ack(&self, sub: &Subscription, offsets: &[Offset]) -> EventsResult<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(self.key(&sub.stream)).arg(&sub.group);
        for offset in offsets {
            cmd.arg(entry_id(*offset));
        }
        let mut conn = self.shared.clone();
        let _: i64 = cmd.query_async(&mut conn).await.map_err(unavailable)?;
        Ok(())
    }

    async fn nack(&self, sub: &Subscription, offset: Offset, retry_after: Duration) -> EventsResult<()> {
        // Make the entry look idle for (visibility - retry_after), so XAUTOCLAIM takes it
        // after retry_after. JUSTID keeps the delivery count as it is.
        let idle = self.visibility().saturating_sub(retry_after).as_millis() as u64;
        let mut conn = self.shared.clone();
        let _: redis::Value = redis::cmd("XCLAIM")
            .arg(self.key(&sub.stream))
            .arg(&sub.group)
            .arg(&sub.consumer)
            .arg(0)
            .arg(entry_id(offset))
            .arg("IDLE")
            .arg(idle)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn read(&self, stream: &StreamName, query: &ReadQuery) -> EventsResult<Vec<StoredEvent>> {
        const PAGE: usize = 500;
        let key = self.key(stream);
        let mut out = Vec::new();
        if query.limit == 0 {
            return Ok(out);
        }
        let mut first = query.after.saturating_add(1);
        if let Some(since) = query.since {
            first = first.max(self.first_since(&key, since.timestamp_millis()).await?);
        }
        let last = match query.before {
            Some(before) if before <= first => return Ok(out),
            Some(before) => before - 1,
            None => u64::MAX >> 1,
        };
        let (mut low, mut high) = (first, last);
        loop {
            let page = self.range(&key, &entry_id(low), &entry_id(high), PAGE, query.newest_first).await?;
            let n_page = page.len();
            for entry in &page {
                let offset = offset_of(&entry.id)?;
                if query.newest_first {
                    high = offset.saturating_sub(1);
                } else {
                    low = offset + 1;
                }
                let type_ok = query.types.is_empty() || {
                    let event_type = field(entry, "type")?;
                    query.types.iter().any(|p| aiops_model::event_type::matches(p, &event_type))
                };
                let subject_ok = match &query.subject {
                    Some(want) => field(entry, "subject")? == *want,
                    None => true,
                };
                if type_ok && subject_ok {
                    out.push(stored(entry)?);
                    if out.len() >= query.limit {
                        return Ok(out);
                    }
                }
            }
            if n_page < PAGE || low > high || high == 0 {
                return Ok(out);
            }
        }
    }

    async fn last_offset(&self, stream: &StreamName) -> EventsResult<Offset> {
        let key = self.key(stream);
        let newest = self.range(&key, "-", "+", 1, true).await?;
        newest.first().map_or(Ok(0), |entry| offset_of(&entry.id))
    }

    async fn close(&self) -> EventsResult<()> {
        self.blocking.lock().await.clear();
        Ok(())
    }
}
