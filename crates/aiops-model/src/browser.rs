//! What the browser instrumentation (`/v1/browser.js`) reports, as it sends it. Every field is
//! checked: unknown fields are refused, texts are bounded by [`BrowserBatch::validate`].

use serde::{Deserialize, Serialize};

/// Most events in one batch.
pub const MAX_BROWSER_BATCH: usize = 50;
/// Longest text field (message, error excerpt, path), in characters; stacks may be longer.
pub const MAX_BROWSER_TEXT: usize = 1000;
/// Longest stack, in characters.
pub const MAX_BROWSER_STACK: usize = 4000;

/// One batch from a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserBatch {
    /// The front end's name (`data-app`), the subject of its events.
    pub app: String,
    /// Events the page dropped since the last batch (its queue or rate limit was full).
    #[serde(default)]
    pub dropped: u32,
    /// The events, oldest first.
    pub events: Vec<BrowserEvent>,
}

/// One observation in a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BrowserEvent {
    /// A failed (status 0 or ≥ 400) or slow call to the page's API.
    Request(BrowserRequest),
    /// An uncaught error.
    Error(BrowserError),
    /// An unhandled promise rejection.
    Rejection(BrowserError),
    /// The page loaded.
    PageLoad(BrowserPageLoad),
}

/// A call to the API as the browser saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserRequest {
    /// HTTP method.
    pub method: String,
    /// Path template (ids masked as `:id`), no query.
    pub path: String,
    /// Response status; 0 when no response came (network error, CORS refusal, abort).
    pub status: u16,
    /// From the call to its answer, in milliseconds.
    pub duration_ms: u64,
    /// Trace id sent in `traceparent`: the back end's record of the request has the same.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The start of the error body (or the network error's message).
    #[serde(default)]
    pub error: Option<String>,
    /// The page's path template.
    pub page: String,
    /// The browser's clock when seen, in Unix milliseconds.
    pub at: i64,
}

/// An uncaught error or unhandled rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserError {
    /// The error's message.
    pub message: String,
    /// Script path where it was thrown, when known.
    #[serde(default)]
    pub source: Option<String>,
    /// Line in that script.
    #[serde(default)]
    pub line: Option<u32>,
    /// Column in that script.
    #[serde(default)]
    pub column: Option<u32>,
    /// Stack trace excerpt.
    #[serde(default)]
    pub stack: Option<String>,
    /// It was an unhandled promise rejection, not a thrown error (set by the core from the
    /// report's type).
    #[serde(default)]
    pub unhandled_rejection: bool,
    /// The page's path template.
    pub page: String,
    /// The browser's clock when seen, in Unix milliseconds.
    pub at: i64,
}

/// A page load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserPageLoad {
    /// From navigation start to the load event, in milliseconds.
    pub duration_ms: u64,
    /// The page's path template.
    pub page: String,
    /// The browser's clock when seen, in Unix milliseconds.
    pub at: i64,
}

impl BrowserEvent {
    /// The data it is published with: the observation itself, without the report's `type`
    /// tag (the event type says it), as [`BrowserRequest`], [`BrowserError`] or
    /// [`BrowserPageLoad`] read it back.
    pub fn data(&self) -> serde_json::Value {
        let data = match self {
            Self::Request(request) => serde_json::to_value(request),
            Self::Error(error) => serde_json::to_value(error),
            Self::Rejection(error) => serde_json::to_value(BrowserError { unhandled_rejection: true, ..error.clone() }),
            Self::PageLoad(load) => serde_json::to_value(load),
        };
        data.unwrap_or(serde_json::Value::Null)
    }

    /// The event type it is published as.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Request(_) => crate::event_type::BROWSER_REQUEST,
            Self::Error(_) | Self::Rejection(_) => crate::event_type::BROWSER_ERROR,
            Self::PageLoad(_) => crate::event_type::BROWSER_PAGE_LOAD,
        }
    }
}

impl BrowserBatch {
    /// Checks the limits a page must keep; the error names the first field that breaks one.
    ///
    /// # Errors
    /// A message naming the field and the limit.
    pub fn validate(&self) -> Result<(), String> {
        let valid_app = (1..=64).contains(&self.app.len())
            && self.app.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_app {
            return Err("app must be 1 to 64 letters, digits, `-`, `_` or `.`".into());
        }
        if self.events.len() > MAX_BROWSER_BATCH {
            return Err(format!("events: at most {MAX_BROWSER_BATCH} per batch, got {}", self.events.len()));
        }
        for (idx, event) in self.events.iter().enumerate() {
            let texts: Vec<(&str, &str, usize)> = match event {
                BrowserEvent::Request(r) => vec![
                    ("method", r.method.as_str(), 16),
                    ("path", r.path.as_str(), MAX_BROWSER_TEXT),
                    ("page", r.page.as_str(), MAX_BROWSER_TEXT),
                    ("trace_id", r.trace_id.as_deref().unwrap_or(""), 32),
                    ("error", r.error.as_deref().unwrap_or(""), MAX_BROWSER_TEXT),
                ],
                BrowserEvent::Error(e) | BrowserEvent::Rejection(e) => vec![
                    ("message", e.message.as_str(), MAX_BROWSER_TEXT),
                    ("source", e.source.as_deref().unwrap_or(""), MAX_BROWSER_TEXT),
                    ("stack", e.stack.as_deref().unwrap_or(""), MAX_BROWSER_STACK),
                    ("page", e.page.as_str(), MAX_BROWSER_TEXT),
                ],
                BrowserEvent::PageLoad(p) => vec![("page", p.page.as_str(), MAX_BROWSER_TEXT)],
            };
            for (field, text, max) in texts {
                if text.chars().count() > max {
                    return Err(format!("events[{idx}].{field}: at most {max} characters"));
                }
            }
            if let BrowserEvent::Request(r) = event {
                if let Some(trace) = &r.trace_id {
                    // W3C trace context: lower-case only, as `traceparent` carries it.
                    if trace.len() != 32 || !trace.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                        return Err(format!("events[{idx}].trace_id: 32 lower-case hex digits"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_parse_strictly_and_keep_their_limits() {
        let text = r#"{"app":"shop-web","events":[
            {"type":"request","method":"POST","path":"/api/bookmarks","status":422,"duration_ms":12,
             "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","error":"{\"error\":{}}","page":"/","at":1},
            {"type":"rejection","message":"boom","page":"/","at":2},
            {"type":"page_load","duration_ms":80,"page":"/","at":3}]}"#;
        let batch: BrowserBatch = serde_json::from_str(text).unwrap();
        batch.validate().unwrap();
        assert_eq!(batch.events[0].event_type(), "browser.request");
        assert_eq!(batch.events[1].event_type(), "browser.error");
        let rejection: BrowserError = serde_json::from_value(batch.events[1].data()).unwrap();
        assert!(rejection.unhandled_rejection);
        let request: BrowserRequest = serde_json::from_value(batch.events[0].data()).unwrap();
        assert_eq!(request.status, 422, "the published data reads back");
        let unknown = r#"{"app":"a","events":[{"type":"page_load","duration_ms":1,"page":"/","at":1,"cookie":"x"}]}"#;
        let err = serde_json::from_str::<BrowserBatch>(unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field `cookie`"), "{err}");
        let mut long = batch.clone();
        long.app = "bad app".into();
        assert!(long.validate().unwrap_err().starts_with("app must be"));
        for trace in ["xyz", "4BF92F3577B34DA6A3CE929D0E0E4736"] {
            let mut bad_trace = batch.clone();
            if let BrowserEvent::Request(r) = &mut bad_trace.events[0] {
                r.trace_id = Some(trace.into());
            }
            // Upper case would be stored as sent and never found by `/v1/traces/{id}`.
            assert_eq!(bad_trace.validate().unwrap_err(), "events[0].trace_id: 32 lower-case hex digits", "{trace}");
        }
    }
}
