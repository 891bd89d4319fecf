//! The Anthropic Messages API: the conformance suite, plus the exact request it sends.

use std::sync::Arc;

use aiops_ai::{AiProvider, AnthropicProvider, ApiKey, ChatMessage, ChatRequest, RetryPolicy, ToolCall};
use aiops_testkit::{MockHttpServer, MockReply};
use serde_json::{json, Value};

use crate::conformance::{fast_policy, weather_tool, WireFixture, SECRET};

pub(crate) struct Anthropic;

impl WireFixture for Anthropic {
    fn provider(&self, base_url: &str, policy: RetryPolicy, stream: bool) -> Arc<dyn AiProvider> {
        Arc::new(
            AnthropicProvider::new(base_url, "claude-sonnet-4-5", ApiKey::new(SECRET).unwrap(), policy, stream)
                .unwrap(),
        )
    }

    fn text(&self, text: &str, input_tokens: u64, output_tokens: u64) -> MockReply {
        MockReply::json(
            200,
            &json!({
                "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
            })
            .to_string(),
        )
        .with_header("request-id", "req_018EeWyXxfu5pfWkrYcMdjWG")
    }

    fn tool_call(&self, id: &str, name: &str, arguments: &Value) -> MockReply {
        MockReply::json(
            200,
            &json!({
                "id": "msg_01Aq9w938a90dw8q",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [
                    {"type": "text", "text": "I'll look at the recent events first."},
                    {"type": "tool_use", "id": id, "name": name, "input": arguments}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 380, "output_tokens": 71}
            })
            .to_string(),
        )
    }

    fn structured(&self, answer: &Value) -> MockReply {
        self.tool_call("toolu_01respond", "respond", answer)
    }

    fn error(&self, status: u16, message: &str) -> MockReply {
        let kind = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        MockReply::json(status, &json!({"type": "error", "error": {"type": kind, "message": message}}).to_string())
    }

    fn stream_text(&self, parts: &[&str], input_tokens: u64, output_tokens: u64) -> String {
        let mut body = format!(
            "event: message_start\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}})
        );
        body.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
        body.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
        for part in parts {
            body.push_str(&format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": part}})
            ));
        }
        body.push_str("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n");
        body.push_str(&format!(
            "event: message_delta\ndata: {}\n\n",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})
        ));
        body.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        body
    }

    fn stream_end(&self) -> &'static str {
        "event: message_stop"
    }

    fn assert_tool_result_sent(&self, body: &Value, id: &str, name: &str, result: &str) {
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 3, "{body}");
        assert_eq!(messages[1]["role"], "assistant");
        let tool_use = messages[1]["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").unwrap();
        assert_eq!((tool_use["id"].as_str(), tool_use["name"].as_str()), (Some(id), Some(name)));
        assert_eq!(
            messages[2],
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": result}]})
        );
    }
}

crate::provider_conformance!(crate::anthropic::Anthropic);

#[tokio::test]
async fn the_request_follows_the_messages_api() {
    let server = MockHttpServer::start().unwrap();
    server.push(Anthropic.structured(&json!({"cause": "pool"})));
    let provider = Anthropic.provider(&server.url(), fast_policy(), false);
    let mut request = ChatRequest::new("You diagnose incidents.", "Why?", 512);
    request.tools = vec![weather_tool()];
    request.response_schema = Some(json!({"type": "object", "properties": {"cause": {"type": "string"}}}));
    assert_eq!(provider.chat(request).await.unwrap().content, r#"{"cause":"pool"}"#);

    let sent = &server.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/messages"));
    assert_eq!(sent.header("x-api-key"), Some(SECRET));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("authorization"), None);
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 512,
            "system": "You diagnose incidents.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Why?"}]}],
            "tools": [
                {"name": "recent_events", "description": "Recent events of a service", "input_schema": weather_tool().input_schema},
                {"name": "respond", "description": "Give your final answer. Its input is the answer, in the required schema.",
                 "input_schema": {"type": "object", "properties": {"cause": {"type": "string"}}}}
            ],
            "tool_choice": {"type": "any"}
        })
    );
}

#[tokio::test]
async fn parallel_tool_results_go_back_in_one_user_turn() {
    let server = MockHttpServer::start().unwrap();
    server.push(Anthropic.text("done", 1, 1));
    let provider = Anthropic.provider(&server.url(), fast_policy(), false);
    let mut request = ChatRequest::new("", "Check both.", 64);
    request.tools = vec![weather_tool()];
    let calls = ["a", "b"].map(|id| ToolCall {
        id: id.into(),
        name: "recent_events".into(),
        arguments: json!({"service": id}),
    });
    request.messages.push(ChatMessage {
        role: aiops_ai::ChatRole::Assistant,
        content: String::new(),
        tool_call_id: None,
        tool_calls: calls.to_vec(),
    });
    request.messages.push(ChatMessage::tool_result("a", "fine"));
    request.messages.push(ChatMessage::tool_result("b", "failing"));
    provider.chat(request).await.unwrap();

    let body: Value = serde_json::from_slice(&server.requests()[0].body).unwrap();
    assert!(body.get("system").is_none(), "an empty system prompt is left out");
    let turns = body["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "{body}");
    assert_eq!(turns[1]["content"].as_array().unwrap().len(), 2, "no empty text block before tool_use");
    assert_eq!(turns[2]["content"].as_array().unwrap().len(), 2);
    assert_eq!(turns[2]["content"][1]["tool_use_id"], "b");
}

#[tokio::test]
async fn a_streamed_tool_call_is_assembled_from_json_deltas() {
    let server = MockHttpServer::start().unwrap();
    let stream = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"recent_events\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"service\\\": \\\"book\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"marks\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    server.push(MockReply::event_stream(stream));
    let provider = Anthropic.provider(&server.url(), fast_policy(), true);
    let mut request = ChatRequest::new("", "Why?", 256);
    request.tools = vec![weather_tool()];
    let answer = provider.chat(request).await.unwrap();
    assert_eq!(answer.content, "Checking.");
    assert_eq!(answer.tool_calls[0].id, "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(answer.tool_calls[0].arguments, json!({"service": "bookmarks"}));
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (472, 89));
}

#[tokio::test]
async fn an_error_event_in_the_stream_is_retried() {
    let server = MockHttpServer::start().unwrap();
    server.push(MockReply::event_stream(
        "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
    ));
    server.push(MockReply::event_stream(&Anthropic.stream_text(&["ok"], 1, 1)));
    let provider = Anthropic.provider(&server.url(), fast_policy(), true);
    assert_eq!(provider.chat(ChatRequest::new("", "hi", 16)).await.unwrap().content, "ok");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_stream_naming_a_far_block_index_is_refused_without_allocating_it() {
    let server = MockHttpServer::start().unwrap();
    let bad = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":18446744073709551615,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    for _ in 0..3 {
        server.push(MockReply::event_stream(bad));
    }
    let provider = Anthropic.provider(&server.url(), fast_policy(), true);
    let err = provider.chat(ChatRequest::new("", "hi", 16)).await.unwrap_err();
    assert!(err.to_string().contains("skips past"), "{err}");
}
