//! The client handle, its bounded event buffer, and the one background task that talks to
//! the core.
//!
//! The buffer is a `std::sync::Mutex` around a `VecDeque` of serialized events rather than a
//! channel: the flusher must be able to look at a batch, send it, and remove it only once the
//! core accepted it, and the producer side must be able to drop the *oldest* events when the
//! buffer is full. Neither is possible with a bounded channel. Critical sections are a push or
//! a copy of at most one batch of `Arc<str>`s, and never span an `.await`.
//!
//! The background task runs two loops concurrently (`tokio::join!`, so still one task): the
//! registry loop (register, heartbeat, re-register) and the flush loop (ship batches, back off
//! while the core is unreachable). Keeping them apart means a slow batch never delays a
//! heartbeat past the TTL.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aiops_model::{event_type, Envelope, MetricSample, RequestRecord, ServiceError, Severity};
use reqwest::{StatusCode, Url};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::{ClientConfig, ClientError};

/// Whole-request timeout for calls to the core. A hung core must not stall the loops forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connection timeout for calls to the core.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of the one deregistration call made while shutting down.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait between two attempts to reach a core that does not answer.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Upper bound on one batch body. The core accepts 1 MiB; the rest is headroom.
const MAX_BATCH_BYTES: usize = 1_000_000;
/// While a failure persists, a warning is logged on the first attempt and then once every
/// this many attempts (about once a minute at the capped delay); the others go to debug.
const WARN_EVERY_N_FAILURES: u32 = 12;

/// Handle to a running client. Cheap to clone; every clone feeds the same buffer and task.
///
/// Recording methods never block on I/O and never fail: when the core is slow or gone, events
/// wait in a bounded buffer and, once it is full, the oldest are dropped and counted in
/// [`AiopsClient::dropped_events`].
///
/// Call [`AiopsClient::shutdown`] to ship what is buffered and deregister. If every clone is
/// dropped without it, the background task still makes that attempt, detached, as long as the
/// runtime lives.
#[derive(Clone)]
pub struct AiopsClient {
    handle: Arc<Handle>,
}

/// Owned by all clones together; dropping the last clone cancels the background task.
struct Handle {
    shared: Arc<Shared>,
    /// For calls made on behalf of the service (picks), beside the background task's.
    http: reqwest::Client,
    endpoints: Endpoints,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// State shared by the handle and the background task.
struct Shared {
    config: ClientConfig,
    source: String,
    buffer: Mutex<Buffer>,
    /// Signalled when the buffer holds at least one full batch.
    batch_ready: Notify,
    registered: AtomicBool,
}

#[derive(Default)]
struct Buffer {
    /// Serialized envelopes, oldest first.
    events: VecDeque<Arc<str>>,
    /// Events dropped from the front because the buffer was full, since start. Only overflow
    /// drops count here: the flusher relies on it to know how much of a batch in flight was
    /// pushed out of the front while the request was running.
    dropped_total: u64,
    /// Overflow drops not yet logged.
    dropped_unlogged: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the buffer half-updated in a way that
    // matters (every update is a push, pop or counter bump), so poisoning is ignored rather
    // than spreading the panic into the service.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AiopsClient {
    /// Starts the background task that registers this instance, sends heartbeats and ships
    /// events, and returns the handle to feed it. Returns at once: the core need not be up.
    ///
    /// # Errors
    /// [`ClientError::InvalidCoreUrl`] when `core_url` is not an absolute http(s) URL,
    /// [`ClientError::NoRuntime`] when called outside a Tokio runtime, and
    /// [`ClientError::Http`] when the HTTP client cannot be built.
    pub fn start(config: ClientConfig) -> Result<Self, ClientError> {
        let endpoints = Endpoints::new(&config.core_url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        // The core lives on the internal network; an HTTP(S)_PROXY meant for the outside world
        // must not capture calls to it.
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(ClientError::Http)?;
        let shared = Arc::new(Shared {
            source: config.source(),
            config,
            buffer: Mutex::new(Buffer::default()),
            batch_ready: Notify::new(),
            registered: AtomicBool::new(false),
        });
        let cancel = CancellationToken::new();
        let core = Core { shared: Arc::clone(&shared), http: http.clone(), endpoints: endpoints.clone() };
        let task = runtime.spawn(core.run(cancel.clone()));
        Ok(Self { handle: Arc::new(Handle { shared, http, endpoints, cancel, task: Mutex::new(Some(task)) }) })
    }

    /// Records one handled HTTP request as an `http.request` event.
    pub fn record_request(&self, record: RequestRecord) {
        self.emit_serialized(event_type::HTTP_REQUEST, &record, None);
    }

    /// Reports an error the service hit as a `service.error` event with severity `error`.
    pub fn report_error(&self, error: ServiceError) {
        self.emit_serialized(event_type::SERVICE_ERROR, &error, Some(Severity::Error));
    }

    /// Reports a gauge's value (a pool's connections in use, a queue's length, memory in use)
    /// as a `metric.sample` event. A sample the core would refuse (a name outside
    /// `[a-z0-9_.:]`, a value that is not finite) is dropped with a warning.
    pub fn report_metric(&self, name: &str, value: f64) {
        let sample = MetricSample { name: name.to_owned(), value };
        if let Err(reason) = sample.validate() {
            tracing::warn!(%reason, "Dropped a metric sample.");
            return;
        }
        self.emit_serialized(event_type::METRIC_SAMPLE, &sample, None);
    }

    /// Emits an event of any type, e.g. `bookmark.created`, with `data` as its payload.
    ///
    /// The type must be dot-separated segments of `[a-z0-9_-]` and `data` at most
    /// [`aiops_model::MAX_DATA_BYTES`] once serialized; an event that is not valid is dropped
    /// with a warning instead of making the core refuse the whole batch it would travel in.
    pub fn emit(&self, event_type: &str, data: serde_json::Value) {
        self.publish(self.envelope(event_type, data));
    }

    /// Buffers a ready-made envelope as is, for callers that need to set attributes such as
    /// the severity themselves. Invalid envelopes are dropped with a warning, as in `emit`.
    pub fn publish(&self, envelope: Envelope) {
        self.handle.shared.push(envelope);
    }

    /// A new envelope from this instance: fresh id, current time, this instance's `source`,
    /// the service name as `subject`.
    pub fn envelope(&self, event_type: &str, data: serde_json::Value) -> Envelope {
        let shared = &self.handle.shared;
        Envelope::new(shared.source.as_str(), event_type, data).with_subject(shared.config.service.as_str())
    }

    /// How many events were dropped since start because the buffer was full.
    pub fn dropped_events(&self) -> u64 {
        lock(&self.handle.shared.buffer).dropped_total
    }

    /// How many events wait in the buffer for the core to accept them.
    pub fn buffered_events(&self) -> usize {
        lock(&self.handle.shared.buffer).events.len()
    }

    /// Whether the core currently knows this instance: it accepted the registration and the
    /// last heartbeat did not come back 404.
    pub fn is_registered(&self) -> bool {
        self.handle.shared.registered.load(Ordering::Relaxed)
    }

    /// The configuration the client was started with.
    pub fn config(&self) -> &ClientConfig {
        &self.handle.shared.config
    }

    /// The CloudEvents `source` of this instance's events: `{service}/{instance_id}`.
    pub fn source(&self) -> &str {
        &self.handle.shared.source
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.handle.http
    }

    pub(crate) fn endpoints(&self) -> &Endpoints {
        &self.handle.endpoints
    }

    /// Stops the background task: ships what is buffered (trying for at most
    /// `shutdown_timeout_ms`), then deregisters the instance. Events the core did not accept
    /// by then are lost, and a warning says how many.
    ///
    /// Other clones keep working as buffers, but nothing ships their events any more.
    pub async fn shutdown(self) {
        self.handle.cancel.cancel();
        let task = lock(&self.handle.task).take();
        let Some(mut task) = task else {
            return;
        };
        let limit = self.handle.shared.config.shutdown_timeout() + DEREGISTER_TIMEOUT + Duration::from_millis(500);
        match tokio::time::timeout(limit, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "The aiops client task failed."),
            Err(_) => {
                task.abort();
                warn!("The aiops client task did not stop in time; aborted it.");
            }
        }
    }

    fn emit_serialized<T: serde::Serialize>(&self, event_type: &str, payload: &T, severity: Option<Severity>) {
        match serde_json::to_value(payload) {
            Ok(data) => {
                let envelope = self.envelope(event_type, data);
                self.publish(match severity {
                    Some(severity) => envelope.with_severity(severity),
                    None => envelope,
                });
            }
            Err(err) => {
                warn!(error = %err, event_type, "Could not serialize an event; dropped it.")
            }
        }
    }
}

impl fmt::Debug for AiopsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AiopsClient")
            .field("core_url", &self.handle.shared.config.core_url)
            .field("source", &self.handle.shared.source)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn push(&self, envelope: Envelope) {
        if let Err(err) = envelope.validate() {
            warn!(error = %err, event_type = %envelope.event_type, "Invalid event; dropped it.");
            return;
        }
        let json = match serde_json::to_string(&envelope) {
            Ok(json) => json,
            Err(err) => {
                warn!(error = %err, event_type = %envelope.event_type, "Could not serialize an event; dropped it.");
                return;
            }
        };
        let limit = self.config.buffer_limit();
        let batch_ready = {
            let mut buffer = lock(&self.buffer);
            buffer.events.push_back(Arc::from(json));
            while buffer.events.len() > limit {
                buffer.events.pop_front();
                buffer.dropped_total += 1;
                buffer.dropped_unlogged += 1;
            }
            buffer.events.len() >= self.config.batch_limit()
        };
        if batch_ready {
            self.batch_ready.notify_one();
        }
    }

    /// Copies the oldest events, up to a batch, without removing them.
    fn peek_batch(&self) -> PendingBatch {
        let limit = self.config.batch_limit();
        let mut buffer = lock(&self.buffer);
        let mut events = Vec::new();
        let mut bytes = 2;
        for event in buffer.events.iter() {
            if events.len() == limit {
                break;
            }
            // The first event always goes, so one oversized event cannot wedge the buffer;
            // the core then refuses it and it is dropped.
            if !events.is_empty() && bytes + event.len() + 1 > MAX_BATCH_BYTES {
                break;
            }
            bytes += event.len() + 1;
            events.push(Arc::clone(event));
        }
        let newly_dropped = std::mem::take(&mut buffer.dropped_unlogged);
        PendingBatch {
            events,
            dropped_before: buffer.dropped_total,
            newly_dropped,
            dropped_total: buffer.dropped_total,
        }
    }

    /// Removes a batch that the core accepted or refused for good. Returns whether more
    /// events wait.
    fn remove_batch(&self, batch: &PendingBatch) -> bool {
        let mut buffer = lock(&self.buffer);
        // The batch was the front of the buffer when it was copied. Since then only overflow
        // drops can have removed events, all from the front, so whatever of the batch is left
        // is still exactly the front.
        let dropped_since = usize::try_from(buffer.dropped_total - batch.dropped_before).unwrap_or(usize::MAX);
        let still_buffered = batch.events.len().saturating_sub(dropped_since).min(buffer.events.len());
        buffer.events.drain(..still_buffered);
        !buffer.events.is_empty()
    }
}

struct PendingBatch {
    events: Vec<Arc<str>>,
    dropped_before: u64,
    newly_dropped: u64,
    dropped_total: u64,
}

impl PendingBatch {
    fn body(&self) -> String {
        let len = self.events.iter().map(|event| event.len() + 1).sum::<usize>() + 2;
        let mut body = String::with_capacity(len);
        body.push('[');
        for (idx, event) in self.events.iter().enumerate() {
            if idx > 0 {
                body.push(',');
            }
            body.push_str(event);
        }
        body.push(']');
        body
    }
}

/// The core's endpoints, resolved once against `core_url`.
#[derive(Clone)]
pub(crate) struct Endpoints {
    services: Url,
    batch: Url,
}

impl Endpoints {
    fn new(core_url: &str) -> Result<Self, ClientError> {
        let invalid = || ClientError::InvalidCoreUrl { url: core_url.to_owned() };
        let base = Url::parse(core_url).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid());
        }
        let join = |segments: &[&str]| -> Result<Url, ClientError> {
            let mut url = base.clone();
            url.path_segments_mut().map_err(|()| invalid())?.pop_if_empty().extend(segments);
            Ok(url)
        };
        Ok(Self { services: join(&["v1", "services"])?, batch: join(&["v1", "events", "batch"])? })
    }

    /// `/v1/services/{instance_id}` plus `extra` segments, with the id percent-encoded.
    pub(crate) fn instance(&self, instance_id: &str, extra: &[&str]) -> Url {
        let mut url = self.services.clone();
        // `new` checked that the base URL can have path segments.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.push(instance_id).extend(extra);
        }
        url
    }
}

/// Body of `POST /v1/services`.
#[derive(serde::Serialize)]
struct Registration<'a> {
    name: &'a str,
    instance_id: &'a str,
    address: &'a str,
    tags: &'a [String],
    capabilities: &'a [String],
    metadata: &'a std::collections::BTreeMap<String, String>,
    dependencies: &'a [String],
    health_url: &'a str,
    ttl_secs: u64,
}

/// Why an attempt to reach the core should be retried.
struct Retry(String);

enum Heartbeat {
    Alive,
    Unknown,
}

/// What the background task owns.
struct Core {
    shared: Arc<Shared>,
    http: reqwest::Client,
    endpoints: Endpoints,
}

impl Core {
    async fn run(self, cancel: CancellationToken) {
        tokio::join!(self.registry_loop(&cancel), self.flush_loop(&cancel));
        if self.shared.registered.load(Ordering::Relaxed) {
            self.deregister().await;
        }
    }

    async fn registry_loop(&self, cancel: &CancellationToken) {
        let config = &self.shared.config;
        let mut backoff = Backoff::new(Duration::from_millis(100), MAX_RETRY_DELAY);
        let mut registered = false;
        let mut failures = 0_u32;
        loop {
            let attempt = async {
                if registered {
                    self.heartbeat().await.map(Some)
                } else {
                    self.register().await.map(|()| None)
                }
            };
            let outcome = tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                outcome = attempt => outcome,
            };
            let delay = match outcome {
                Ok(None) => {
                    if failures > 0 {
                        info!(instance = %config.instance_id, failures, "Registered with the AI-Ops core after failed attempts.");
                    } else {
                        info!(instance = %config.instance_id, "Registered with the AI-Ops core.");
                    }
                    failures = 0;
                    backoff.reset();
                    registered = true;
                    self.shared.registered.store(true, Ordering::Relaxed);
                    config.heartbeat_interval()
                }
                Ok(Some(Heartbeat::Alive)) => {
                    if failures > 0 {
                        info!(instance = %config.instance_id, failures, "Heartbeats reach the AI-Ops core again.");
                    }
                    failures = 0;
                    config.heartbeat_interval()
                }
                Ok(Some(Heartbeat::Unknown)) => {
                    info!(instance = %config.instance_id, "The AI-Ops core does not know this instance; registering again.");
                    failures = 0;
                    registered = false;
                    self.shared.registered.store(false, Ordering::Relaxed);
                    Duration::ZERO
                }
                Err(Retry(reason)) => {
                    failures += 1;
                    let what = if registered { "Heartbeat" } else { "Registration" };
                    if failures == 1 || failures.is_multiple_of(WARN_EVERY_N_FAILURES) {
                        warn!(instance = %config.instance_id, failures, error = %reason, "{what} to the AI-Ops core failed; will retry.");
                    } else {
                        debug!(instance = %config.instance_id, failures, error = %reason, "{what} to the AI-Ops core failed; will retry.");
                    }
                    if registered {
                        config.heartbeat_interval()
                    } else {
                        backoff.next_delay()
                    }
                }
            };
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn register(&self) -> Result<(), Retry> {
        let config = &self.shared.config;
        let health_url = config.health_url();
        let body = Registration {
            name: &config.service,
            instance_id: &config.instance_id,
            address: &config.address,
            tags: &config.tags,
            capabilities: &config.capabilities,
            metadata: &config.metadata,
            dependencies: &config.dependencies,
            health_url: &health_url,
            ttl_secs: config.ttl_secs,
        };
        let response = self
            .http
            .post(self.endpoints.services.clone())
            .json(&body)
            .send()
            .await
            .map_err(|err| Retry(error_chain(&err)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Retry(format!("{status}: {}", body_text(response).await)))
        }
    }

    async fn heartbeat(&self) -> Result<Heartbeat, Retry> {
        let url = self.endpoints.instance(&self.shared.config.instance_id, &["heartbeat"]);
        let response = self.http.put(url).send().await.map_err(|err| Retry(error_chain(&err)))?;
        match response.status() {
            status if status.is_success() => Ok(Heartbeat::Alive),
            StatusCode::NOT_FOUND => Ok(Heartbeat::Unknown),
            status => Err(Retry(format!("{status}: {}", body_text(response).await))),
        }
    }

    async fn deregister(&self) {
        let instance_id = &self.shared.config.instance_id;
        let url = self.endpoints.instance(instance_id, &[]);
        match self.http.delete(url).timeout(DEREGISTER_TIMEOUT).send().await {
            Ok(response) if response.status().is_success() => {
                info!(instance = %instance_id, "Deregistered from the AI-Ops core.");
            }
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                debug!(instance = %instance_id, "The AI-Ops core did not know this instance any more.");
            }
            Ok(response) => {
                let status = response.status();
                let body = body_text(response).await;
                warn!(instance = %instance_id, %status, body = %body, "Deregistration was refused.");
            }
            Err(err) => {
                warn!(instance = %instance_id, error = %error_chain(&err), "Deregistration failed.");
            }
        }
    }

    async fn flush_loop(&self, cancel: &CancellationToken) {
        let interval = self.shared.config.flush_interval();
        let mut backoff = Backoff::new(interval, MAX_RETRY_DELAY);
        let mut delay = interval;
        let mut failures = 0_u32;
        loop {
            // Woken early by a full batch, only full batches go out, so that a busy service
            // sends few large batches; on the interval, everything goes.
            let full_batches_only = tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                // While backing off, a full buffer must not cut the wait short.
                () = self.shared.batch_ready.notified(), if failures == 0 => true,
                () = tokio::time::sleep(delay) => false,
            };
            let flushed = tokio::select! {
                biased;
                // A batch cut off here stays buffered and goes out in the final flush.
                () = cancel.cancelled() => break,
                flushed = self.flush_all(full_batches_only) => flushed,
            };
            match flushed {
                Ok(()) => {
                    if failures > 0 {
                        info!(failures, "The AI-Ops core accepts events again.");
                    }
                    failures = 0;
                    backoff.reset();
                    delay = interval;
                }
                Err(Retry(reason)) => {
                    failures += 1;
                    let buffered = lock(&self.shared.buffer).events.len();
                    if failures == 1 || failures.is_multiple_of(WARN_EVERY_N_FAILURES) {
                        warn!(failures, buffered, error = %reason, "Shipping events to the AI-Ops core failed; keeping them buffered.");
                    } else {
                        debug!(failures, buffered, error = %reason, "Shipping events to the AI-Ops core failed; keeping them buffered.");
                    }
                    delay = backoff.next_delay();
                }
            }
        }
        self.final_flush().await;
    }

    /// Ships what is left, retrying quickly, until the buffer is empty or the shutdown
    /// deadline passes.
    async fn final_flush(&self) {
        let deadline = Instant::now() + self.shared.config.shutdown_timeout();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
        let drained = tokio::time::timeout_at(deadline, async {
            while self.flush_all(false).await.is_err() {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        })
        .await;
        let left = lock(&self.shared.buffer).events.len();
        if drained.is_err() && left > 0 {
            warn!(lost = left, "Shutting down with events the AI-Ops core has not accepted; they are lost.");
        }
    }

    /// Sends batches until the buffer is empty, or until less than a full batch is left when
    /// `full_batches_only`. Stops at the first batch that must be retried.
    async fn flush_all(&self, full_batches_only: bool) -> Result<(), Retry> {
        loop {
            let batch = self.shared.peek_batch();
            if batch.newly_dropped > 0 {
                warn!(
                    dropped = batch.newly_dropped,
                    dropped_total = batch.dropped_total,
                    "Event buffer full; dropped the oldest events."
                );
            }
            if batch.events.is_empty() || (full_batches_only && batch.events.len() < self.shared.config.batch_limit()) {
                return Ok(());
            }
            if !self.send_batch(&batch).await? {
                return Ok(());
            }
        }
    }

    /// Sends one batch. `Ok(more)` when the batch is done with (accepted, or refused for good
    /// and dropped), `more` telling whether events still wait.
    async fn send_batch(&self, batch: &PendingBatch) -> Result<bool, Retry> {
        let response = self
            .http
            .post(self.endpoints.batch.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(batch.body())
            .send()
            .await
            .map_err(|err| Retry(error_chain(&err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(self.shared.remove_batch(batch));
        }
        let body = body_text(response).await;
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
        {
            return Err(Retry(format!("{status}: {body}")));
        }
        warn!(
            %status,
            body = %body,
            events = batch.events.len(),
            "The AI-Ops core refused a batch of events; dropped it, since sending it again cannot help."
        );
        Ok(self.shared.remove_batch(batch))
    }
}

/// The response body for a log line, shortened; reading it must not fail the caller.
async fn body_text(response: reqwest::Response) -> String {
    const MAX_LOGGED: usize = 2_000;
    let mut text = response.text().await.unwrap_or_default();
    if text.len() > MAX_LOGGED {
        let mut cut = MAX_LOGGED;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// reqwest's own message is terse ("error sending request"); the sources say why.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
