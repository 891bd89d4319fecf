//! The `AiProvider` conformance suite: every provider runs the same checks against a scripted
//! server that answers in that provider's wire format, with the vendor's documented bodies.
//!
//! A provider joins by implementing [`WireFixture`] and invoking `provider_conformance!`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aiops_ai::{AiError, AiProvider, ChatMessage, ChatRequest, RetryPolicy, StopReason, ToolDefinition};
use aiops_testkit::{MockHttpServer, MockReply};
use serde_json::{json, Value};

/// The key every fixture configures; it must never appear in an error or `Debug` output.
pub(crate) const SECRET: &str = "sk-test-0123456789-very-secret";

/// How one vendor's wire format looks, for the suite.
pub(crate) trait WireFixture {
    /// A provider pointed at `base_url` (the mock server's URL).
    fn provider(&self, base_url: &str, policy: RetryPolicy, stream: bool) -> Arc<dyn AiProvider>;
    /// A finished text answer.
    fn text(&self, text: &str, input_tokens: u64, output_tokens: u64) -> MockReply;
    /// An answer asking for one tool call.
    fn tool_call(&self, id: &str, name: &str, arguments: &Value) -> MockReply;
    /// The structured (JSON) answer `answer` to a request with a response schema.
    fn structured(&self, answer: &Value) -> MockReply;
    /// The vendor's error body for `status`, whose message is `message`.
    fn error(&self, status: u16, message: &str) -> MockReply;
    /// A complete event stream of a text answer in `parts`.
    fn stream_text(&self, parts: &[&str], input_tokens: u64, output_tokens: u64) -> String;
    /// The end marker of a stream, which a cut stream lacks.
    fn stream_end(&self) -> &'static str;
    /// Asserts that `body` (a second-turn request) carries the call `id` of `name` and its result.
    fn assert_tool_result_sent(&self, body: &Value, id: &str, name: &str, result: &str);
}

/// Fast retries, so the suite runs in seconds.
pub(crate) fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        timeout_ms: 2_000,
        max_retries: 2,
        initial_backoff_ms: 5,
        max_backoff_ms: 20,
        max_retry_after_ms: 5_000,
        breaker_threshold: 100,
        breaker_cooldown_ms: 1_000,
    }
}

pub(crate) fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "recent_events".into(),
        description: "Recent events of a service".into(),
        input_schema: json!({"type": "object", "properties": {"service": {"type": "string"}}, "required": ["service"]}),
    }
}

pub(crate) fn request() -> ChatRequest {
    ChatRequest::new("You diagnose incidents.", "Why is bookmarks failing?", 256)
}

fn body(server: &MockHttpServer, index: usize) -> Value {
    serde_json::from_slice(&server.requests()[index].body).expect("request body is JSON")
}

pub(crate) async fn text_answer(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.text("The pool is exhausted.", 21, 7));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let answer = provider.chat(request()).await.unwrap();
    assert_eq!(answer.content, "The pool is exhausted.");
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    assert!(answer.tool_calls.is_empty());
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (21, 7));
    assert_eq!(server.requests().len(), 1);
}

pub(crate) async fn tool_call_round_trip(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.tool_call("call_01", "recent_events", &json!({"service": "bookmarks"})));
    server.push(fixture.text("Connection pool exhausted.", 40, 9));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let mut request = request();
    request.tools = vec![weather_tool()];

    let first = provider.chat(request.clone()).await.unwrap();
    assert_eq!(first.stop_reason, StopReason::ToolUse);
    assert_eq!(first.tool_calls.len(), 1);
    assert_eq!(first.tool_calls[0].id, "call_01");
    assert_eq!(first.tool_calls[0].name, "recent_events");
    assert_eq!(first.tool_calls[0].arguments, json!({"service": "bookmarks"}));

    request.messages.push(ChatMessage::assistant(&first));
    request.messages.push(ChatMessage::tool_result("call_01", "12 errors: pool timed out"));
    let second = provider.chat(request).await.unwrap();
    assert_eq!(second.content, "Connection pool exhausted.");
    fixture.assert_tool_result_sent(&body(&server, 1), "call_01", "recent_events", "12 errors: pool timed out");
}

pub(crate) async fn structured_output(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    let answer = json!({"root_cause": "pool exhausted", "confidence": 0.8});
    server.push(fixture.structured(&answer));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let mut request = request();
    request.response_schema = Some(json!({
        "type": "object",
        "properties": {"root_cause": {"type": "string"}, "confidence": {"type": "number"}},
        "required": ["root_cause", "confidence"],
        "additionalProperties": false,
    }));
    let response = provider.chat(request).await.unwrap();
    let parsed: Value = serde_json::from_str(&response.content).unwrap();
    assert_eq!(parsed, answer);
    assert_eq!(response.stop_reason, StopReason::EndTurn);
}

pub(crate) async fn a_call_of_an_unknown_tool_is_malformed(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.tool_call("call_02", "drop_database", &json!({})));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let mut request = request();
    request.tools = vec![weather_tool()];
    let err = provider.chat(request).await.unwrap_err();
    assert!(matches!(err, AiError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("drop_database"), "{err}");
}

pub(crate) async fn rate_limit_waits_for_retry_after(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.error(429, "rate limited").with_header("retry-after", "1"));
    server.push(fixture.text("ok", 1, 1));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let started = Instant::now();
    provider.chat(request()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "retry-after ignored: {:?}", started.elapsed());
    assert_eq!(server.requests().len(), 2);
}

pub(crate) async fn a_retry_after_beyond_the_limit_fails_at_once(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.error(429, "rate limited").with_header("retry-after", "3600"));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let started = Instant::now();
    let err = provider.chat(request()).await.unwrap_err();
    assert!(matches!(err, AiError::Unavailable { .. }) && err.to_string().contains("3600"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.requests().len(), 1);
}

pub(crate) async fn server_errors_are_retried_then_reported(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.error(500, "internal"));
    server.push(fixture.error(503, "overloaded"));
    server.push(fixture.text("recovered", 3, 1));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    assert_eq!(provider.chat(request()).await.unwrap().content, "recovered");

    for _ in 0..3 {
        server.push(fixture.error(500, "still broken"));
    }
    let err = provider.chat(request()).await.unwrap_err();
    assert!(matches!(err, AiError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 500") && err.to_string().contains("3 attempts"), "{err}");
    assert_eq!(server.requests().len(), 6);
}

pub(crate) async fn a_client_error_is_not_retried(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(fixture.error(400, "max_tokens: must be positive"));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    let err = provider.chat(request()).await.unwrap_err();
    match &err {
        AiError::Rejected { status, detail, .. } => {
            assert_eq!(*status, 400);
            assert!(detail.contains("max_tokens: must be positive"), "{detail}");
        }
        other => panic!("expected Rejected, got {other}"),
    }
    assert_eq!(server.requests().len(), 1);
}

pub(crate) async fn a_timeout_is_retried(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(MockReply::Stall(Duration::from_secs(3)));
    server.push(fixture.text("after the stall", 1, 1));
    let policy = RetryPolicy { timeout_ms: 300, ..fast_policy() };
    let provider = fixture.provider(&server.url(), policy, false);
    assert_eq!(provider.chat(request()).await.unwrap().content, "after the stall");
    assert_eq!(server.requests().len(), 2);
}

pub(crate) async fn malformed_json_is_retried_then_reported(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(MockReply::json(200, "{\"id\": \"msg_1\", \"content\": ["));
    server.push(fixture.text("fine now", 1, 1));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    assert_eq!(provider.chat(request()).await.unwrap().content, "fine now");

    for _ in 0..3 {
        server.push(MockReply::json(200, "<html>proxy error</html>"));
    }
    let err = provider.chat(request()).await.unwrap_err();
    assert!(matches!(err, AiError::Malformed { .. }) && err.to_string().contains("proxy error"), "{err}");
}

pub(crate) async fn a_cut_connection_is_retried(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(MockReply::Raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n{\"id\":".to_vec(),
    ));
    server.push(fixture.text("whole", 1, 1));
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    assert_eq!(provider.chat(request()).await.unwrap().content, "whole");
    assert_eq!(server.requests().len(), 2);
}

pub(crate) async fn a_stream_is_assembled(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    server.push(MockReply::event_stream(&fixture.stream_text(&["The pool ", "is exhausted", "."], 30, 8)));
    let provider = fixture.provider(&server.url(), fast_policy(), true);
    let answer = provider.chat(request()).await.unwrap();
    assert_eq!(answer.content, "The pool is exhausted.");
    assert_eq!(answer.stop_reason, StopReason::EndTurn);
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (30, 8));
    assert_eq!(body(&server, 0)["stream"], json!(true));
}

pub(crate) async fn a_truncated_stream_is_retried(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    let whole = fixture.stream_text(&["The pool ", "is exhausted", "."], 30, 8);
    let cut = &whole[..whole.find(fixture.stream_end()).expect("the stream has its end marker")];
    server.push(MockReply::event_stream(cut));
    server.push(MockReply::event_stream(&whole));
    let provider = fixture.provider(&server.url(), fast_policy(), true);
    assert_eq!(provider.chat(request()).await.unwrap().content, "The pool is exhausted.");
    assert_eq!(server.requests().len(), 2);

    for _ in 0..3 {
        server.push(MockReply::event_stream(cut));
    }
    let err = provider.chat(request()).await.unwrap_err();
    assert!(matches!(err, AiError::Malformed { .. }), "{err}");
}

pub(crate) async fn the_breaker_stops_calls_then_probes(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    let policy = RetryPolicy { max_retries: 0, breaker_threshold: 2, breaker_cooldown_ms: 300, ..fast_policy() };
    let provider = fixture.provider(&server.url(), policy, false);
    for _ in 0..2 {
        server.push(fixture.error(500, "down"));
        assert!(provider.chat(request()).await.is_err());
    }
    let err = provider.chat(request()).await.unwrap_err();
    assert!(err.to_string().contains("circuit breaker open"), "{err}");
    assert_eq!(server.requests().len(), 2, "an open breaker must not send");

    tokio::time::sleep(Duration::from_millis(350)).await;
    server.push(fixture.text("back", 1, 1));
    assert_eq!(provider.chat(request()).await.unwrap().content, "back");
    server.push(fixture.text("still back", 1, 1));
    assert_eq!(provider.chat(request()).await.unwrap().content, "still back");
}

pub(crate) async fn the_key_never_leaks(fixture: &dyn WireFixture) {
    let server = MockHttpServer::start().unwrap();
    let echo = format!("Invalid API key: {SECRET}");
    server.push(fixture.error(401, &echo));
    for _ in 0..3 {
        server.push(fixture.error(500, &echo));
    }
    let provider = fixture.provider(&server.url(), fast_policy(), false);
    assert!(!format!("{provider:?}").contains(SECRET), "{provider:?}");
    let rejected = provider.chat(request()).await.unwrap_err();
    let unavailable = provider.chat(request()).await.unwrap_err();
    for err in [rejected, unavailable] {
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(SECRET) && shown.contains("<redacted>"), "{shown}");
    }
}

/// Runs every check of the suite against one [`WireFixture`].
#[macro_export]
macro_rules! provider_conformance {
    ($fixture:expr) => {
        $crate::provider_conformance!(@tests $fixture;
            text_answer, tool_call_round_trip, structured_output, a_call_of_an_unknown_tool_is_malformed,
            rate_limit_waits_for_retry_after, a_retry_after_beyond_the_limit_fails_at_once,
            server_errors_are_retried_then_reported, a_client_error_is_not_retried, a_timeout_is_retried,
            malformed_json_is_retried_then_reported, a_cut_connection_is_retried, a_stream_is_assembled,
            a_truncated_stream_is_retried, the_breaker_stops_calls_then_probes, the_key_never_leaks);
    };
    (@tests $fixture:expr; $($check:ident),*) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    $crate::conformance::$check(&$fixture).await;
                }
            )*
        }
    };
}
