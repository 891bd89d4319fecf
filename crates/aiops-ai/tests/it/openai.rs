//! The OpenAI Chat Completions API, hosted and on compatible local servers: the conformance
//! suite for both, plus the exact requests they send.

use std::sync::Arc;

use aiops_ai::{AiError, AiProvider, ApiKey, ChatRequest, OpenAiProvider, RetryPolicy};
use aiops_testkit::{MockHttpServer, MockReply};
use serde_json::{json, Value};

use crate::conformance::{fast_policy, weather_tool, WireFixture, SECRET};

/// Hosted OpenAI (`compatible == false`) or a compatible server with a key.
pub(crate) struct OpenAi {
    pub(crate) compatible: bool,
}

fn completion(message: Value, finish_reason: &str, prompt_tokens: u64, completion_tokens: u64) -> MockReply {
    MockReply::json(
        200,
        &json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion",
            "created": 1741569952,
            "model": "gpt-4.1-2025-04-14",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
            },
            "service_tier": "default"
        })
        .to_string(),
    )
}

impl WireFixture for OpenAi {
    fn provider(&self, base_url: &str, policy: RetryPolicy, stream: bool) -> Arc<dyn AiProvider> {
        let key = ApiKey::new(SECRET).unwrap();
        let base_url = format!("{base_url}/v1");
        Arc::new(if self.compatible {
            OpenAiProvider::compatible(&base_url, "llama3.1:8b", Some(key), policy, stream).unwrap()
        } else {
            OpenAiProvider::openai(&base_url, "gpt-4.1", key, policy, stream).unwrap()
        })
    }

    fn text(&self, text: &str, input_tokens: u64, output_tokens: u64) -> MockReply {
        completion(
            json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
            "stop",
            input_tokens,
            output_tokens,
        )
    }

    fn tool_call(&self, id: &str, name: &str, arguments: &Value) -> MockReply {
        completion(
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}],
                "refusal": null,
                "annotations": []
            }),
            "tool_calls",
            82,
            17,
        )
    }

    fn structured(&self, answer: &Value) -> MockReply {
        self.text(&answer.to_string(), 90, 20)
    }

    fn error(&self, status: u16, message: &str) -> MockReply {
        let (kind, code) = match status {
            401 => ("invalid_request_error", json!("invalid_api_key")),
            429 => ("requests", json!("rate_limit_exceeded")),
            400 => ("invalid_request_error", Value::Null),
            _ => ("server_error", Value::Null),
        };
        MockReply::json(
            status,
            &json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string(),
        )
    }

    fn stream_text(&self, parts: &[&str], input_tokens: u64, output_tokens: u64) -> String {
        let chunk = |choices: Value, usage: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190, "model": "gpt-4.1-2025-04-14", "system_fingerprint": "fp_44709d6fcb", "choices": choices, "usage": usage})
            )
        };
        let mut body = chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}]),
            Value::Null,
        );
        for part in parts {
            body.push_str(&chunk(
                json!([{"index": 0, "delta": {"content": part}, "logprobs": null, "finish_reason": null}]),
                Value::Null,
            ));
        }
        body.push_str(&chunk(
            json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"}]),
            Value::Null,
        ));
        body.push_str(&chunk(
            json!([]),
            json!({"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}),
        ));
        body.push_str("data: [DONE]\n\n");
        body
    }

    fn stream_end(&self) -> &'static str {
        "data: [DONE]"
    }

    fn assert_tool_result_sent(&self, body: &Value, id: &str, name: &str, result: &str) {
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 4, "{body}");
        assert_eq!(messages[2]["role"], "assistant");
        assert_eq!(messages[2]["content"], Value::Null);
        let call = &messages[2]["tool_calls"][0];
        assert_eq!((call["id"].as_str(), call["type"].as_str()), (Some(id), Some("function")));
        assert_eq!(call["function"]["name"], name);
        let arguments: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(arguments.is_object());
        assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": id, "content": result}));
    }
}

crate::provider_conformance!(crate::openai::OpenAi { compatible: false });

mod compatible {
    crate::provider_conformance!(crate::openai::OpenAi { compatible: true });
}

#[tokio::test]
async fn the_request_follows_chat_completions() {
    let server = MockHttpServer::start().unwrap();
    server.push(OpenAi { compatible: false }.text("{}", 1, 1));
    let provider = OpenAi { compatible: false }.provider(&server.url(), fast_policy(), false);
    let mut request = ChatRequest::new("You diagnose incidents.", "Why?", 512);
    request.tools = vec![weather_tool()];
    request.response_schema = Some(json!({"type": "object", "properties": {}, "additionalProperties": false}));
    provider.chat(request).await.unwrap();

    let sent = &server.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": "You diagnose incidents."},
                {"role": "user", "content": "Why?"}
            ],
            "max_completion_tokens": 512,
            "tools": [{"type": "function", "function": {
                "name": "recent_events", "description": "Recent events of a service", "parameters": weather_tool().input_schema
            }}],
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "response", "schema": {"type": "object", "properties": {}, "additionalProperties": false}, "strict": true
            }}
        })
    );
}

#[tokio::test]
async fn a_local_server_gets_max_tokens_and_no_key() {
    let server = MockHttpServer::start().unwrap();
    let base_url = format!("{}/v1", server.url());
    let provider = OpenAiProvider::compatible(&base_url, "llama3.1:8b", None, fast_policy(), true).unwrap();
    server.push(MockReply::event_stream(&OpenAi { compatible: true }.stream_text(&["hi"], 1, 1)));
    provider.chat(ChatRequest::new("", "hello", 32)).await.unwrap();
    let sent = &server.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["max_tokens"], 32);
    assert!(body.get("max_completion_tokens").is_none());
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hello"}]));
}

#[tokio::test]
async fn a_refusal_and_bad_arguments_are_malformed() {
    let server = MockHttpServer::start().unwrap();
    server.push(completion(
        json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
        "stop",
        1,
        1,
    ));
    server.push(completion(
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "recent_events", "arguments": "{\"service\": "}}]}),
        "tool_calls",
        1,
        1,
    ));
    let provider = OpenAi { compatible: false }.provider(&server.url(), fast_policy(), false);
    let mut request = ChatRequest::new("", "Why?", 64);
    request.tools = vec![weather_tool()];
    let refused = provider.chat(request.clone()).await.unwrap_err();
    assert!(matches!(&refused, AiError::Malformed { detail, .. } if detail.contains("can't help")), "{refused}");
    let bad = provider.chat(request).await.unwrap_err();
    assert!(matches!(&bad, AiError::Malformed { detail, .. } if detail.contains("recent_events")), "{bad}");
}

#[tokio::test]
async fn a_streamed_tool_call_is_assembled_from_argument_fragments() {
    let server = MockHttpServer::start().unwrap();
    let stream = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"recent_events\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"serv\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ice\\\":\\\"bookmarks\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4.1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    server.push(MockReply::event_stream(stream));
    let provider = OpenAi { compatible: false }.provider(&server.url(), fast_policy(), true);
    let mut request = ChatRequest::new("", "Why?", 64);
    request.tools = vec![weather_tool()];
    let answer = provider.chat(request).await.unwrap();
    assert_eq!(answer.tool_calls.len(), 1);
    assert_eq!(answer.tool_calls[0].id, "call_DdmO9pD3xa9XTPNJ32zg2hcA");
    assert_eq!(answer.tool_calls[0].arguments, json!({"service": "bookmarks"}));
}

mod embeddings {
    use aiops_ai::{AiError, ApiKey, Embedder, OpenAiEmbedder};
    use aiops_testkit::{MockHttpServer, MockReply};
    use serde_json::{json, Value};

    use crate::conformance::{fast_policy, SECRET};

    fn embedder(server: &MockHttpServer, dimensions: usize) -> OpenAiEmbedder {
        let key = ApiKey::new(SECRET).unwrap();
        OpenAiEmbedder::new(
            &format!("{}/v1", server.url()),
            "text-embedding-3-small",
            dimensions,
            true,
            Some(key),
            fast_policy(),
        )
        .unwrap()
    }

    fn list(vectors: &[(usize, Vec<f32>)]) -> MockReply {
        let data: Vec<Value> =
            vectors.iter().map(|(index, v)| json!({"object": "embedding", "index": index, "embedding": v})).collect();
        MockReply::json(
            200,
            &json!({"object": "list", "data": data, "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}})
                .to_string(),
        )
    }

    #[tokio::test]
    async fn vectors_come_back_in_input_order_normalised_and_empty_texts_are_not_sent() {
        let server = MockHttpServer::start().unwrap();
        // The API may answer out of order; `index` says which input each vector belongs to.
        server.push(list(&[(1, vec![0.0, 2.0, 0.0]), (0, vec![3.0, 0.0, 4.0])]));
        let texts = ["pool exhausted", "", "disk full"].map(String::from);
        let vectors = embedder(&server, 3).embed(&texts).await.unwrap();
        assert_eq!(vectors, vec![vec![0.6, 0.0, 0.8], vec![0.0; 3], vec![0.0, 1.0, 0.0]]);

        let sent = &server.requests()[0];
        assert_eq!(sent.path, "/v1/embeddings");
        assert_eq!(sent.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "text-embedding-3-small", "input": ["pool exhausted", "disk full"], "encoding_format": "float", "dimensions": 3})
        );
    }

    #[tokio::test]
    async fn a_wrong_dimension_or_count_is_malformed() {
        let server = MockHttpServer::start().unwrap();
        server.push(list(&[(0, vec![1.0, 0.0])]));
        server.push(list(&[(0, vec![1.0, 0.0, 0.0])]));
        let embedder = embedder(&server, 3);
        let texts = ["a b".to_owned(), "c d".to_owned()];
        let err = embedder.embed(&texts[..1]).await.unwrap_err();
        assert!(matches!(&err, AiError::Malformed { detail, .. } if detail.contains("2 components")), "{err}");
        let err = embedder.embed(&texts).await.unwrap_err();
        assert!(
            matches!(&err, AiError::Malformed { detail, .. } if detail.contains("1 embeddings for 2 inputs")),
            "{err}"
        );
    }
}
