//! The Anthropic Messages API (`POST /v1/messages`, `anthropic-version: 2023-06-01`).
//!
//! Mapping: the system prompt goes into `system`; tool results become `tool_result` blocks of a
//! user turn (consecutive results merged into one turn, as the API requires); an assistant turn
//! carries its `text` and `tool_use` blocks. The API has no JSON-schema response mode in this
//! version, so structured output is a forced call of the [`RESPOND_TOOL`] tool whose input
//! schema is the requested schema; with other tools present the model must call one of them or
//! `respond` (`tool_choice: any`). With `stream` on, the server-sent events are put back together
//! into the same message object the non-streaming call returns, and a stream that ends before
//! `message_stop` is retried.

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    check_response, AiProvider, ChatRequest, ChatResponse, ChatRole, StopReason, ToolCall, Usage, RESPOND_TOOL,
};
use crate::transport::{decode_json, RetryPolicy, Transport};
use crate::{sse, AiError, AiResult, ApiKey};

/// The Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicProvider {
    transport: Transport,
    url: String,
    model: String,
    stream: bool,
}

impl AnthropicProvider {
    /// Where the API lives unless configured otherwise.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.anthropic.com";
    /// The `anthropic-version` header sent with every request.
    pub const API_VERSION: &'static str = "2023-06-01";

    /// A provider calling `{base_url}/v1/messages` for `model`.
    ///
    /// # Errors
    /// [`AiError::Invalid`] when the HTTP client cannot be built.
    pub fn new(base_url: &str, model: &str, key: ApiKey, policy: RetryPolicy, stream: bool) -> AiResult<Self> {
        Ok(Self {
            transport: Transport::new("anthropic", policy, Some(key))?,
            url: format!("{}/v1/messages", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            stream,
        })
    }

    fn headers(&self) -> AiResult<Vec<(HeaderName, HeaderValue)>> {
        let key = self.transport.key().ok_or_else(|| AiError::Invalid("the Anthropic API needs a key".into()))?;
        Ok(vec![
            (HeaderName::from_static("x-api-key"), self.transport.secret_header(key.expose())?),
            (HeaderName::from_static("anthropic-version"), HeaderValue::from_static(Self::API_VERSION)),
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        ])
    }

    fn body(&self, request: &ChatRequest) -> Value {
        let mut tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}))
            .collect();
        let mut body = json!({
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": messages(request),
        });
        if !request.system.is_empty() {
            body["system"] = json!(request.system);
        }
        if let Some(schema) = &request.response_schema {
            tools.push(json!({
                "name": RESPOND_TOOL,
                "description": "Give your final answer. Its input is the answer, in the required schema.",
                "input_schema": schema,
            }));
            body["tool_choice"] = if request.tools.is_empty() {
                json!({"type": "tool", "name": RESPOND_TOOL})
            } else {
                json!({"type": "any"})
            };
        }
        if !tools.is_empty() {
            body["tools"] = Value::Array(tools);
        }
        if self.stream {
            body["stream"] = json!(true);
        }
        body
    }

    fn parse(&self, message: Value, request: &ChatRequest) -> AiResult<ChatResponse> {
        let message: WireMessage = serde_json::from_value(message)
            .map_err(|err| self.transport.malformed(format!("not a Messages API message: {err}")))?;
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        let mut answered = false;
        for block in message.content {
            match block {
                ContentBlock::Text { text } if !answered => content.push_str(&text),
                ContentBlock::ToolUse { id: _, name, input }
                    if name == RESPOND_TOOL && request.response_schema.is_some() =>
                {
                    content = input.to_string();
                    answered = true;
                }
                ContentBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall { id, name, arguments: input }),
                ContentBlock::Text { .. } | ContentBlock::Other => {}
            }
        }
        let stop_reason = match message.stop_reason.as_deref() {
            // A `respond` input cut off at max_tokens is still JSON, only incomplete.
            Some("max_tokens") => StopReason::MaxTokens,
            _ if answered => StopReason::EndTurn,
            Some("end_turn") => StopReason::EndTurn,
            Some("tool_use") => StopReason::ToolUse,
            Some("stop_sequence") => StopReason::StopSequence,
            Some("refusal") => StopReason::Refusal,
            Some(other) => StopReason::Other(other.to_owned()),
            None => return Err(self.transport.malformed("the message has no stop_reason".into())),
        };
        let usage = Usage {
            input_tokens: message.usage.input_tokens
                + message.usage.cache_creation_input_tokens.unwrap_or(0)
                + message.usage.cache_read_input_tokens.unwrap_or(0),
            output_tokens: message.usage.output_tokens,
        };
        let response = ChatResponse { content, tool_calls, stop_reason, usage };
        check_response(&self.transport, request, &response)?;
        Ok(response)
    }
}

#[async_trait]
impl AiProvider for AnthropicProvider {
    fn name(&self) -> &str {
        self.transport.provider()
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: ChatRequest) -> AiResult<ChatResponse> {
        let headers = self.headers()?;
        let body = self.body(&request);
        let message = if self.stream {
            self.transport.post(&self.url, &headers, &body, assemble_stream).await?
        } else {
            self.transport.post(&self.url, &headers, &body, decode_json).await?
        };
        self.parse(message, &request)
    }
}

/// The conversation as Messages API turns.
fn messages(request: &ChatRequest) -> Vec<Value> {
    let mut turns: Vec<Value> = Vec::new();
    for message in &request.messages {
        let (role, blocks) = match message.role {
            ChatRole::User => ("user", vec![json!({"type": "text", "text": message.content})]),
            ChatRole::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                    "content": message.content,
                })],
            ),
            ChatRole::Assistant => {
                let mut blocks = Vec::new();
                if !message.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": message.content}));
                }
                blocks.extend(message.tool_calls.iter().map(
                    |call| json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}),
                ));
                ("assistant", blocks)
            }
        };
        // Consecutive turns of one role are merged: the API wants them alternating, and all
        // results of one round of tool calls in a single user turn.
        match turns.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => turns.push(json!({"role": role, "content": blocks})),
        }
    }
    turns
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
    usage: WireUsage,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Thinking and other blocks this client does not use.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// Rebuilds the message object from a complete event stream (`message_start`,
/// `content_block_start` / `_delta` / `_stop`, `message_delta`, `message_stop`).
fn assemble_stream(body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the event stream is not UTF-8".to_owned())?;
    let mut message: Option<Value> = None;
    let mut partial_inputs: Vec<String> = Vec::new();
    for event in sse::parse(text) {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|err| format!("event data is not JSON ({err}): {}", event.data))?;
        let kind = data["type"].as_str().unwrap_or_default();
        if kind == "error" {
            return Err(format!("the stream reported an error: {}", data["error"]));
        }
        if kind == "message_start" {
            let started = data["message"].clone();
            let blocks = started["content"].as_array().map(Vec::len).ok_or("message_start has no content array")?;
            partial_inputs = vec![String::new(); blocks];
            message = Some(started);
            continue;
        }
        let Some(message) = message.as_mut().and_then(Value::as_object_mut) else {
            if kind == "ping" {
                continue;
            }
            return Err(format!("event {kind} came before message_start"));
        };
        // Blocks arrive in order: an index is an existing block or the next one, never a jump
        // (which could make us allocate whatever the server names).
        let index = data["index"].as_u64().unwrap_or(0);
        let content = message.get_mut("content").and_then(Value::as_array_mut).ok_or("the message lost its content")?;
        if index > content.len() as u64 {
            return Err(format!("block index {index} skips past the {} blocks so far", content.len()));
        }
        let index = index as usize;
        match kind {
            "content_block_start" => {
                if index == content.len() {
                    content.push(data["content_block"].clone());
                    partial_inputs.push(String::new());
                } else {
                    content[index] = data["content_block"].clone();
                }
            }
            "content_block_delta" => {
                let block = content
                    .get_mut(index)
                    .and_then(Value::as_object_mut)
                    .ok_or("a delta for a block that never started")?;
                match data["delta"]["type"].as_str() {
                    Some("text_delta") => {
                        let text = format!(
                            "{}{}",
                            block.get("text").and_then(Value::as_str).unwrap_or_default(),
                            data["delta"]["text"].as_str().unwrap_or_default()
                        );
                        block.insert("text".into(), json!(text));
                    }
                    Some("input_json_delta") => {
                        if let Some(partial) = partial_inputs.get_mut(index) {
                            partial.push_str(data["delta"]["partial_json"].as_str().unwrap_or_default());
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let block = content
                    .get_mut(index)
                    .and_then(Value::as_object_mut)
                    .ok_or("a stop for a block that never started")?;
                let partial = partial_inputs.get(index).map_or("", String::as_str);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") && !partial.is_empty() {
                    let input = serde_json::from_str(partial)
                        .map_err(|err| format!("tool input of block {index} is not JSON ({err})"))?;
                    block.insert("input".into(), input);
                }
            }
            "message_delta" => {
                if let Some(delta) = data["delta"].as_object() {
                    for (key, value) in delta {
                        message.insert(key.clone(), value.clone());
                    }
                }
                if let Some(usage) = data["usage"].as_object() {
                    let target = message.entry("usage").or_insert_with(|| json!({}));
                    if let Some(target) = target.as_object_mut() {
                        for (key, value) in usage.iter().filter(|(_, value)| !value.is_null()) {
                            target.insert(key.clone(), value.clone());
                        }
                    }
                }
            }
            "message_stop" => return Ok(Value::Object(message.clone())),
            _ => {}
        }
    }
    Err("the event stream ended before message_stop".into())
}
