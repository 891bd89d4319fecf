//! The HTTP path every remote provider shares: per-request timeout, retries with exponential
//! backoff and full jitter that honour `retry-after`, a circuit breaker, and redaction of the
//! key from anything that could reach an error or a log line.
//!
//! What is retried: connection errors, timeouts, a body cut short, 408, 409, 429, every 5xx
//! (including Anthropic's 529 "overloaded") and a 2xx whose body is not JSON. What is not: any
//! other 4xx, because the same request will be refused again. Only retryable failures count
//! towards the breaker; a 401 says the key is wrong, not that the provider is down.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};

use crate::{AiError, AiResult, ApiKey};

/// Timeouts, retries and the circuit breaker of one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Whole-request timeout, from connect to the last body byte. Default: 60 s.
    pub timeout_ms: u64,
    /// Retries after the first attempt. Default: 3.
    pub max_retries: u32,
    /// First backoff; each retry doubles it, with full jitter. Default: 500 ms.
    pub initial_backoff_ms: u64,
    /// Cap of one backoff. Default: 20 s.
    pub max_backoff_ms: u64,
    /// A `retry-after` longer than this ends the retries instead of waiting. Default: 60 s.
    pub max_retry_after_ms: u64,
    /// Consecutive failed attempts that open the breaker. Default: 5.
    pub breaker_threshold: u32,
    /// How long an open breaker refuses calls before letting one probe through. Default: 30 s.
    pub breaker_cooldown_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            timeout_ms: 60_000,
            max_retries: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 20_000,
            max_retry_after_ms: 60_000,
            breaker_threshold: 5,
            breaker_cooldown_ms: 30_000,
        }
    }
}

/// Consecutive failures and, once open, until when calls are refused.
#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// The breaker's one half-open probe in flight; frees the slot when dropped.
struct Probe<'a> {
    transport: &'a Transport,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.transport.breaker().probing = false;
    }
}

/// Largest response body read; a bigger one is refused rather than buffered.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// A failed attempt, before deciding whether to try again.
enum Attempt {
    Retry { detail: String, retry_after: Option<Duration> },
    Malformed(String),
    Fatal(AiError),
}

/// Sends JSON requests for one provider.
#[derive(Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    provider: String,
    policy: RetryPolicy,
    key: Option<ApiKey>,
    breaker: Mutex<Breaker>,
}

impl Transport {
    pub(crate) fn new(provider: &str, policy: RetryPolicy, key: Option<ApiKey>) -> AiResult<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(policy.timeout_ms))
            .connect_timeout(Duration::from_millis(policy.timeout_ms.min(10_000)))
            .build()
            .map_err(|err| AiError::Invalid(format!("cannot build the HTTP client for {provider}: {err}")))?;
        Ok(Self { client, provider: provider.to_owned(), policy, key, breaker: Mutex::default() })
    }

    pub(crate) fn provider(&self) -> &str {
        &self.provider
    }

    pub(crate) fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    /// A header carrying a secret: marked sensitive so that no HTTP layer prints it.
    pub(crate) fn secret_header(&self, value: &str) -> AiResult<HeaderValue> {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| AiError::Invalid(format!("the {} API key cannot go into an HTTP header", self.provider)))?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// POSTs `body` and returns the answer of a 2xx as `decode` reads it, retrying as the
    /// module doc says. `decode` checks the wire format (JSON, a complete event stream); when
    /// it fails the attempt is retried, and the last such failure ends as
    /// [`AiError::Malformed`].
    pub(crate) async fn post<T>(
        &self,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: &serde_json::Value,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> AiResult<T> {
        let mut header_map = HeaderMap::new();
        for (name, value) in headers {
            header_map.insert(name.clone(), value.clone());
        }
        let mut attempt = 0u32;
        loop {
            // Dropped at the end of the attempt, or when the caller gives up on the call
            // mid-flight: either way the breaker's half-open probe slot is freed.
            let _probe = self.admit()?;
            let started = Instant::now();
            let outcome = self.attempt(url, &header_map, body).await;
            let outcome = outcome.and_then(|bytes| {
                decode(&bytes).map_err(|detail| {
                    Attempt::Malformed(format!("{detail}; body starts: {}", excerpt(&self.redact_body(&bytes))))
                })
            });
            let (detail, retry_after) = match outcome {
                Ok(answer) => {
                    self.record_success();
                    return Ok(answer);
                }
                Err(Attempt::Malformed(detail)) => {
                    let detail = self.redact(&detail);
                    if attempt >= self.policy.max_retries {
                        self.record_failure();
                        return Err(self.malformed(format!("{detail} (gave up after {} attempts)", attempt + 1)));
                    }
                    (detail, None)
                }
                Err(Attempt::Fatal(err)) => return Err(err),
                Err(Attempt::Retry { detail, retry_after }) => (self.redact(&detail), retry_after),
            };
            self.record_failure();
            tracing::warn!(provider = %self.provider, attempt, elapsed_ms = started.elapsed().as_millis() as u64, %detail, "AI provider call failed");
            if attempt >= self.policy.max_retries {
                return Err(self.unavailable(format!("{detail} (gave up after {} attempts)", attempt + 1)));
            }
            let delay = match retry_after {
                Some(wait) if wait > Duration::from_millis(self.policy.max_retry_after_ms) => {
                    return Err(self.unavailable(format!(
                        "{detail}; it asks to retry after {} s, longer than the {} ms this client waits",
                        wait.as_secs(),
                        self.policy.max_retry_after_ms
                    )));
                }
                Some(wait) => wait,
                None => self.backoff(attempt),
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, url: &str, headers: &HeaderMap, body: &serde_json::Value) -> Result<Vec<u8>, Attempt> {
        let response = self.client.post(url).headers(headers.clone()).json(body).send().await.map_err(|err| {
            Attempt::Retry { detail: describe_reqwest_error("the request failed", err), retry_after: None }
        })?;
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(parse_retry_after);
        let mut response = response;
        let mut bytes = Vec::new();
        loop {
            let chunk = response.chunk().await.map_err(|err| Attempt::Retry {
                detail: describe_reqwest_error(&format!("reading the HTTP {} body failed", status.as_u16()), err),
                retry_after: None,
            })?;
            let Some(chunk) = chunk else { break };
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Attempt::Fatal(
                    self.malformed(format!("the response is larger than {MAX_RESPONSE_BYTES} bytes")),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(bytes);
        }
        // The whole body is redacted before any part of it is cut out, so that a key echoed
        // by a proxy cannot leak in pieces.
        let detail = error_detail(&self.redact_body(&bytes));
        let code = status.as_u16();
        if matches!(code, 408 | 409 | 429) || status.is_server_error() || code == 529 {
            Err(Attempt::Retry { detail: format!("HTTP {code}: {detail}"), retry_after })
        } else {
            Err(Attempt::Fatal(AiError::Rejected { provider: self.provider.clone(), status: code, detail }))
        }
    }

    fn redact_body(&self, bytes: &[u8]) -> String {
        self.redact(&String::from_utf8_lossy(bytes))
    }

    /// Full jitter: a uniform delay in `[0, min(cap, initial * 2^attempt)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling =
            self.policy.initial_backoff_ms.saturating_mul(1u64 << attempt.min(30)).min(self.policy.max_backoff_ms);
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }

    fn admit(&self) -> AiResult<Option<Probe<'_>>> {
        let mut breaker = self.breaker();
        let Some(open_until) = breaker.open_until else { return Ok(None) };
        let now = Instant::now();
        if now < open_until || breaker.probing {
            let wait = open_until.saturating_duration_since(now);
            return Err(self.unavailable(format!(
                "circuit breaker open after {} consecutive failures; next probe in {} ms",
                breaker.consecutive_failures,
                wait.as_millis()
            )));
        }
        breaker.probing = true;
        Ok(Some(Probe { transport: self }))
    }

    fn record_success(&self) {
        *self.breaker() = Breaker::default();
    }

    fn record_failure(&self) {
        let mut breaker = self.breaker();
        breaker.consecutive_failures += 1;
        breaker.probing = false;
        if breaker.consecutive_failures >= self.policy.breaker_threshold {
            if breaker.open_until.is_none_or(|until| until <= Instant::now()) {
                tracing::warn!(provider = %self.provider, failures = breaker.consecutive_failures, "AI provider circuit breaker opened");
            }
            breaker.open_until = Some(Instant::now() + Duration::from_millis(self.policy.breaker_cooldown_ms));
        }
    }

    fn breaker(&self) -> MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn redact(&self, text: &str) -> String {
        match &self.key {
            Some(key) => key.redact(text),
            None => text.to_owned(),
        }
    }

    pub(crate) fn unavailable(&self, detail: String) -> AiError {
        AiError::Unavailable { provider: self.provider.clone(), detail: self.redact(&detail) }
    }

    pub(crate) fn malformed(&self, detail: String) -> AiError {
        AiError::Malformed { provider: self.provider.clone(), detail: self.redact(&detail) }
    }
}

fn describe_reqwest_error(action: &str, err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the body was cut short"
    } else {
        "transport error"
    };
    // The URL is left out on purpose: some deployments put credentials in it.
    let err = err.without_url();
    let mut detail = format!("{action}: {kind}: {err}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        detail.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    detail
}

/// `retry-after` as seconds or an HTTP date.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now()).to_std().unwrap_or_default();
    Some(wait)
}

/// The error message of an error body in either vendor's shape, else the first bytes of it.
///
/// Anthropic: `{"type":"error","error":{"type":"rate_limit_error","message":"..."}}`.
/// OpenAI: `{"error":{"message":"...","type":"...","param":null,"code":"..."}}`.
fn error_detail(body: &str) -> String {
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
        let error = value.get("error").unwrap_or(&value);
        let kind = error.get("type").and_then(|v| v.as_str()).or_else(|| error.get("code").and_then(|v| v.as_str()));
        if let Some(message) = error.get("message").and_then(|v| v.as_str()) {
            return match kind {
                Some(kind) => format!("{kind}: {message}"),
                None => message.to_owned(),
            };
        }
        if let Some(message) = error.as_str() {
            return message.to_owned();
        }
    }
    excerpt(body)
}

fn excerpt(text: &str) -> String {
    let excerpt: String = text.chars().take(200).collect();
    if excerpt.is_empty() {
        "empty body".into()
    } else {
        excerpt
    }
}

/// Parses a JSON body, the `decode` of non-streaming calls.
pub(crate) fn decode_json(body: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(body).map_err(|err| format!("the body is not JSON ({err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(parse_retry_after(&HeaderValue::from_static("2")), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("0.5")), Some(Duration::from_millis(500)));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = parse_retry_after(&HeaderValue::from_str(&soon).unwrap()).unwrap();
        assert!(wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28), "{wait:?}");
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
        assert_eq!(parse_retry_after(&HeaderValue::from_static("-1")), None);
        assert_eq!(parse_retry_after(&HeaderValue::from_static("99999999999999999999999")), None, "no panic");
    }

    #[test]
    fn error_details_of_both_vendors() {
        let anthropic = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
        assert_eq!(
            error_detail(anthropic),
            "rate_limit_error: Number of request tokens has exceeded your per-minute rate limit"
        );
        let openai = r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(error_detail(openai), "invalid_request_error: Incorrect API key provided.");
        assert_eq!(error_detail("<html>bad gateway</html>"), "<html>bad gateway</html>");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy { initial_backoff_ms: 100, max_backoff_ms: 1_000, ..RetryPolicy::default() };
        let transport = Transport::new("test", policy, None).unwrap();
        for attempt in 0..10 {
            let ceiling = (100u64 << attempt).min(1_000);
            assert!(transport.backoff(attempt) <= Duration::from_millis(ceiling));
        }
    }
}
