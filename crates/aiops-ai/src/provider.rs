//! The `AiProvider` trait: chat completion with tool calling and structured output.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::AiResult;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    /// The operator's side.
    User,
    /// The model's side.
    Assistant,
    /// The result of a tool call the model asked for.
    Tool,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    pub content: String,
    /// For `Tool` messages: the id of the call answered.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A tool the model may call, described by a JSON schema of its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Tool name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON schema of its arguments.
    pub input_schema: serde_json::Value,
}

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Id to answer with.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments, matching the tool's schema.
    pub arguments: serde_json::Value,
}

/// One chat completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// System prompt.
    pub system: String,
    /// The conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call.
    pub tools: Vec<ToolDefinition>,
    /// When set, the answer must be JSON matching this schema.
    pub response_schema: Option<serde_json::Value>,
    /// Upper bound on output tokens.
    pub max_tokens: u32,
}

/// Tokens used by one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Text (JSON text when a response schema was given).
    pub content: String,
    /// Tool calls the model asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Why the model stopped, as the provider says it.
    pub stop_reason: String,
    /// Tokens used.
    pub usage: Usage,
}

/// A chat-completion model behind some API.
///
/// # Contract
/// - Budgets are checked before a call is made: a call that would exceed one fails with
///   [`crate::AiError::OverBudget`] and sends nothing.
/// - Secrets (API keys) never appear in errors, logs or `Debug` output.
/// - With `response_schema` set, `content` of an `Ok` answer parses as JSON.
///
/// # Errors
/// [`crate::AiError::Unavailable`] after retries are exhausted or while a circuit breaker is open.
#[async_trait]
pub trait AiProvider: Send + Sync + fmt::Debug + 'static {
    /// Provider name for logs and metrics, e.g. `anthropic`.
    fn name(&self) -> &str;
    /// One chat completion.
    async fn chat(&self, request: ChatRequest) -> AiResult<ChatResponse>;
}
