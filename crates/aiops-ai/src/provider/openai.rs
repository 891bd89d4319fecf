//! The OpenAI Chat Completions API (`POST {base}/chat/completions`) and the servers that copy it
//! (Ollama at `http://localhost:11434/v1`, llama.cpp server, vLLM).
//!
//! Mapping: the system prompt is the first `system` message; tools are `function` tools; an
//! assistant turn carries `tool_calls` with JSON-string `arguments`; results are `tool`
//! messages. Structured output uses `response_format: {type: json_schema, strict: true}`. Hosted
//! OpenAI gets `max_completion_tokens`; compatible servers get `max_tokens`, the field they all
//! read. With `stream` on, the chunks are put back together into the `chat.completion` object
//! (usage via `stream_options.include_usage`), and a stream without `data: [DONE]` is retried.

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_response, AiProvider, ChatRequest, ChatResponse, ChatRole, StopReason, ToolCall, Usage};
use crate::transport::{decode_json, RetryPolicy, Transport};
use crate::{sse, AiResult, ApiKey};

/// The OpenAI Chat Completions API, hosted or self-hosted.
#[derive(Debug)]
pub struct OpenAiProvider {
    transport: Transport,
    url: String,
    model: String,
    stream: bool,
    compatible: bool,
}

impl OpenAiProvider {
    /// Where the hosted API lives unless configured otherwise.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";

    /// The hosted OpenAI API at `base_url` (usually [`Self::DEFAULT_BASE_URL`]).
    ///
    /// # Errors
    /// [`crate::AiError::Invalid`] when the HTTP client cannot be built.
    pub fn openai(base_url: &str, model: &str, key: ApiKey, policy: RetryPolicy, stream: bool) -> AiResult<Self> {
        Self::build("openai", base_url, model, Some(key), policy, stream, false)
    }

    /// An OpenAI-compatible server at `base_url` (the part before `/chat/completions`, e.g.
    /// `http://localhost:11434/v1`); the key is optional.
    ///
    /// # Errors
    /// [`crate::AiError::Invalid`] when the HTTP client cannot be built.
    pub fn compatible(
        base_url: &str,
        model: &str,
        key: Option<ApiKey>,
        policy: RetryPolicy,
        stream: bool,
    ) -> AiResult<Self> {
        Self::build("openai-compatible", base_url, model, key, policy, stream, true)
    }

    fn build(
        name: &str,
        base_url: &str,
        model: &str,
        key: Option<ApiKey>,
        policy: RetryPolicy,
        stream: bool,
        compatible: bool,
    ) -> AiResult<Self> {
        Ok(Self {
            transport: Transport::new(name, policy, key)?,
            url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            stream,
            compatible,
        })
    }

    fn headers(&self) -> AiResult<Vec<(HeaderName, HeaderValue)>> {
        let mut headers = vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        if let Some(key) = self.transport.key() {
            headers.push((AUTHORIZATION, self.transport.secret_header(&format!("Bearer {}", key.expose()))?));
        }
        Ok(headers)
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut messages = Vec::new();
        if !request.system.is_empty() {
            messages.push(json!({"role": "system", "content": request.system}));
        }
        messages.extend(request.messages.iter().map(|message| match message.role {
            ChatRole::User => json!({"role": "user", "content": message.content}),
            ChatRole::Tool => json!({
                "role": "tool",
                "tool_call_id": message.tool_call_id.clone().unwrap_or_default(),
                "content": message.content,
            }),
            ChatRole::Assistant => {
                let mut turn = json!({
                    "role": "assistant",
                    "content": if message.content.is_empty() { Value::Null } else { json!(message.content) },
                });
                if !message.tool_calls.is_empty() {
                    turn["tool_calls"] = message
                        .tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": {"name": call.name, "arguments": call.arguments.to_string()},
                            })
                        })
                        .collect();
                }
                turn
            }
        }));
        let mut body = json!({"model": self.model, "messages": messages});
        let max_tokens_field = if self.compatible { "max_tokens" } else { "max_completion_tokens" };
        body[max_tokens_field] = json!(request.max_tokens);
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {"name": tool.name, "description": tool.description, "parameters": tool.input_schema},
                    })
                })
                .collect();
        }
        if let Some(schema) = &request.response_schema {
            body["response_format"] =
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": true}});
        }
        if self.stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    }

    fn parse(&self, completion: Value, request: &ChatRequest) -> AiResult<ChatResponse> {
        let completion: WireCompletion = serde_json::from_value(completion)
            .map_err(|err| self.transport.malformed(format!("not a chat.completion object: {err}")))?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| self.transport.malformed("the completion has no choices".into()))?;
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.is_empty()) {
            let excerpt: String = refusal.chars().take(200).collect();
            return Err(self.transport.malformed(format!("the model refused: {excerpt}")));
        }
        let mut tool_calls = Vec::new();
        for call in choice.message.tool_calls.unwrap_or_default() {
            let arguments = serde_json::from_str(&call.function.arguments).map_err(|err| {
                self.transport.malformed(format!("the arguments of `{}` are not JSON: {err}", call.function.name))
            })?;
            tool_calls.push(ToolCall { id: call.id, name: call.function.name, arguments });
        }
        let stop_reason = match choice.finish_reason.as_deref() {
            Some("stop") => StopReason::EndTurn,
            Some("tool_calls" | "function_call") => StopReason::ToolUse,
            Some("length") => StopReason::MaxTokens,
            Some("content_filter") => StopReason::Refusal,
            Some(other) => StopReason::Other(other.to_owned()),
            None => StopReason::Other("unknown".into()),
        };
        let usage = completion
            .usage
            .map(|u| Usage { input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens })
            .unwrap_or_default();
        let response =
            ChatResponse { content: choice.message.content.unwrap_or_default(), tool_calls, stop_reason, usage };
        check_response(&self.transport, request, &response)?;
        Ok(response)
    }
}

#[async_trait]
impl AiProvider for OpenAiProvider {
    fn name(&self) -> &str {
        self.transport.provider()
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> AiResult<ChatResponse> {
        let headers = self.headers()?;
        let body = self.body(&request);
        let completion = if self.stream {
            self.transport.post(&self.url, &headers, &body, assemble_stream).await?
        } else {
            self.transport.post(&self.url, &headers, &body, decode_json).await?
        };
        self.parse(completion, &request)
    }
}

#[derive(Debug, Deserialize)]
struct WireCompletion {
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    message: WireMessage,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    id: String,
    function: WireFunction,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: String,
    arguments: String,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// Rebuilds the `chat.completion` object from `chat.completion.chunk` events ending in
/// `data: [DONE]`.
fn assemble_stream(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the event stream is not UTF-8".to_owned())?;
    let mut content = String::new();
    let mut refusal = String::new();
    let mut finish_reason = Value::Null;
    let mut usage = Value::Null;
    let mut tool_calls: Vec<Value> = Vec::new();
    for event in sse::parse(text) {
        if event.data == "[DONE]" {
            let mut message = json!({"role": "assistant", "content": content});
            if !refusal.is_empty() {
                message["refusal"] = json!(refusal);
            }
            if !tool_calls.is_empty() {
                message["tool_calls"] = Value::Array(tool_calls);
            }
            return Ok(json!({
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": usage,
            }));
        }
        let chunk: Value =
            serde_json::from_str(&event.data).map_err(|err| format!("chunk is not JSON ({err}): {}", event.data))?;
        if !chunk["error"].is_null() {
            return Err(format!("the stream reported an error: {}", chunk["error"]));
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
        let Some(choice) = chunk["choices"].get(0) else { continue };
        if !choice["finish_reason"].is_null() {
            finish_reason = choice["finish_reason"].clone();
        }
        let delta = &choice["delta"];
        content.push_str(delta["content"].as_str().unwrap_or_default());
        refusal.push_str(delta["refusal"].as_str().unwrap_or_default());
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            // Calls arrive in order: an index is an existing call or the next one, never a jump.
            let index = call["index"].as_u64().unwrap_or(0);
            if index > tool_calls.len() as u64 {
                return Err(format!("tool call index {index} skips past the {} calls so far", tool_calls.len()));
            }
            let index = index as usize;
            if index == tool_calls.len() {
                tool_calls.push(json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}));
            }
            let slot = &mut tool_calls[index];
            if let Some(id) = call["id"].as_str() {
                slot["id"] = json!(id);
            }
            for field in ["name", "arguments"] {
                if let Some(part) = call["function"][field].as_str() {
                    let joined = format!("{}{part}", slot["function"][field].as_str().unwrap_or_default());
                    slot["function"][field] = json!(joined);
                }
            }
        }
    }
    Err("the event stream ended without data: [DONE]".into())
}
