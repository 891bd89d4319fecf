//! Who may send browser reports and how fast: the origins allowed to post to
//! `/v1/browser/events`, and a token bucket per origin. A page cannot keep a secret, so
//! browser reports carry no token; the origin list, the limits and the strict format are the
//! guard, and the reports can only become `browser.*` telemetry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Origins tracked by the rate limiter at most; the least recently seen go first.
const MAX_TRACKED_ORIGINS: usize = 1000;

/// The browser ingest policy.
#[derive(Debug)]
pub struct BrowserIngest {
    allowed_origins: Vec<String>,
    batches_per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Default for BrowserIngest {
    /// No origin allowed: browser reports are refused until origins are configured.
    fn default() -> Self {
        Self::new(Vec::new(), 20.0)
    }
}

impl BrowserIngest {
    /// Accepts reports from `allowed_origins` (`scheme://host[:port]`, or `*` for any), at
    /// most `batches_per_second` batches per origin (bursts of twice that).
    pub fn new(allowed_origins: Vec<String>, batches_per_second: f64) -> Self {
        let allowed_origins = allowed_origins.into_iter().map(|o| o.trim_end_matches('/').to_owned()).collect();
        let rate = batches_per_second.max(0.1);
        Self { allowed_origins, batches_per_second: rate, burst: rate * 2.0, buckets: Mutex::new(HashMap::new()) }
    }

    /// Whether pages served from `origin` may send reports.
    pub fn allows(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == "*" || allowed == origin)
    }

    /// Takes one batch from `origin`'s bucket; false when it is empty.
    pub fn admit(&self, origin: &str) -> bool {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_ORIGINS && !buckets.contains_key(origin) {
            if let Some(oldest) = buckets.iter().min_by_key(|(_, (_, seen))| *seen).map(|(o, _)| o.clone()) {
                buckets.remove(&oldest);
            }
        }
        let (tokens, seen) = buckets.entry(origin.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*seen).as_secs_f64() * self.batches_per_second).min(self.burst);
        *seen = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BrowserIngest;

    #[test]
    fn only_listed_origins_and_only_so_fast() {
        let ingest = BrowserIngest::new(vec!["http://127.0.0.1:8080/".into()], 1.0);
        assert!(ingest.allows("http://127.0.0.1:8080"));
        assert!(!ingest.allows("http://evil.example"));
        assert!(BrowserIngest::new(vec!["*".into()], 1.0).allows("http://any.example"));
        assert!(!BrowserIngest::default().allows("http://127.0.0.1:8080"));
        let admitted = (0..5).filter(|_| ingest.admit("http://127.0.0.1:8080")).count();
        assert_eq!(admitted, 2, "a burst of twice the rate, then refused");
    }
}
