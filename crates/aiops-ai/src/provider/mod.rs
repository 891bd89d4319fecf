//! The `AiProvider` trait: chat completion with tool calling and structured output, and the
//! implementations that speak each vendor's wire format.
//!
//! - `anthropic.rs`: [`AnthropicProvider`], the Anthropic Messages API.
//! - `openai.rs`: [`OpenAiProvider`], the OpenAI Chat Completions API and OpenAI-compatible
//!   local servers (Ollama, llama.cpp server, vLLM).
//! - `budget.rs`: [`BudgetedProvider`], token and cost budgets and usage records around any
//!   provider.
//! - `config.rs`: [`ProviderConfig`], `[ai.provider]` in aiops.toml.

mod anthropic;
mod budget;
mod config;
mod openai;

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::AiResult;

pub use anthropic::AnthropicProvider;
pub use budget::{BudgetConfig, BudgetedProvider, UsageRecord, UsageReport};
pub use config::{ProviderConfig, ProviderKind};
pub use openai::OpenAiProvider;

/// Name of the tool through which providers without a native JSON-schema mode (Anthropic)
/// return structured output: the model is made to call it, and its input is the answer.
pub const RESPOND_TOOL: &str = "respond";

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
    /// For `Assistant` messages: the tool calls the model made in that turn.
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
}

impl ChatMessage {
    /// A message from the operator's side.
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: ChatRole::User, content: content.into(), tool_call_id: None, tool_calls: Vec::new() }
    }

    /// The model's earlier answer, to continue a conversation after tool calls.
    pub fn assistant(response: &ChatResponse) -> Self {
        Self {
            role: ChatRole::Assistant,
            content: response.content.clone(),
            tool_call_id: None,
            tool_calls: response.tool_calls.clone(),
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::Tool,
            content: content.into(),
            tool_call_id: Some(call_id.into()),
            tool_calls: Vec::new(),
        }
    }
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
    /// The incident this call serves, for the per-incident budget.
    #[serde(default)]
    pub incident: Option<String>,
}

impl ChatRequest {
    /// A request with a system prompt and one user message, no tools, no schema.
    pub fn new(system: impl Into<String>, user: impl Into<String>, max_tokens: u32) -> Self {
        Self {
            system: system.into(),
            messages: vec![ChatMessage::user(user)],
            tools: Vec::new(),
            response_schema: None,
            max_tokens,
            incident: None,
        }
    }
}

/// Why the model stopped, normalised across vendors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It finished its answer.
    EndTurn,
    /// It wants tool results before going on.
    ToolUse,
    /// It hit `max_tokens`.
    MaxTokens,
    /// It hit a stop sequence.
    StopSequence,
    /// It refused, or a content filter stopped it.
    Refusal,
    /// Anything else, as the provider said it.
    Other(String),
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
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// Tokens used.
    pub usage: Usage,
}

/// A chat-completion model behind some API.
///
/// # Contract
/// - Budgets are checked before a call is made: a call that would exceed one fails with
///   [`crate::AiError::OverBudget`] and sends nothing.
/// - Secrets (API keys) never appear in errors, logs or `Debug` output.
/// - With `response_schema` set, `content` of an `Ok` answer without tool calls parses as JSON.
/// - Tool calls name only tools of the request; their arguments are JSON objects.
///
/// # Errors
/// [`crate::AiError::Unavailable`] after retries are exhausted or while a circuit breaker is
/// open; [`crate::AiError::Rejected`] for a request the provider refuses;
/// [`crate::AiError::Malformed`] for an answer that breaks the wire format or the contract.
#[async_trait]
pub trait AiProvider: Send + Sync + fmt::Debug + 'static {
    /// Provider name for logs and metrics, e.g. `anthropic`.
    fn name(&self) -> &str;
    /// The model asked for, e.g. `claude-sonnet-4-5`.
    fn model(&self) -> &str;
    /// One chat completion.
    async fn chat(&self, request: ChatRequest) -> AiResult<ChatResponse>;
}

/// Checks an answer against the [`AiProvider`] contract before a caller sees it.
pub(crate) fn check_response(
    transport: &crate::transport::Transport,
    request: &ChatRequest,
    response: &ChatResponse,
) -> AiResult<()> {
    for call in &response.tool_calls {
        if !request.tools.iter().any(|tool| tool.name == call.name) {
            return Err(transport.malformed(format!("the model called `{}`, a tool it was not given", call.name)));
        }
        if !call.arguments.is_object() {
            return Err(
                transport.malformed(format!("the arguments of the call of `{}` are not a JSON object", call.name))
            );
        }
    }
    if request.response_schema.is_some() && response.tool_calls.is_empty() {
        if response.stop_reason == StopReason::MaxTokens {
            return Err(transport
                .malformed(format!("the structured answer was cut off at max_tokens ({})", request.max_tokens)));
        }
        if serde_json::from_str::<serde_json::Value>(&response.content).is_err() {
            let excerpt: String = response.content.chars().take(120).collect();
            return Err(transport.malformed(format!("a JSON answer was required, got: {excerpt}")));
        }
    }
    Ok(())
}
