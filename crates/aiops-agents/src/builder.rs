//! The Builder agent: admits new remediation tools.
//!
//! For each `tool.proposed` (data: `spec`, the tool spec as TOML text, and `origin`, where it
//! came from) it parses and validates the spec, registers it in the tool catalog (a name
//! already there needs a higher version), records it as a `tool` node in the knowledge graph,
//! and publishes `tool.registered`, or `tool.rejected` with the precise reason.

use aiops_construction::parse_spec;
use aiops_knowledge::{Node, NodeKind};
use aiops_model::{event_type, Envelope, Severity};
use async_trait::async_trait;
use serde::Deserialize;

use crate::agent::payload;
use crate::{Agent, AgentContext, AgentResult};

const NAME: &str = "builder";

/// The Builder agent.
#[derive(Debug, Default)]
pub struct Builder;

impl Builder {
    /// A Builder agent.
    pub fn new() -> Self {
        Self
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proposal {
    spec: String,
    #[serde(default = "default_origin")]
    origin: String,
}

fn default_origin() -> String {
    "proposal".into()
}

#[async_trait]
impl Agent for Builder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn control_types(&self) -> Vec<String> {
        vec![event_type::TOOL_PROPOSED.into()]
    }

    async fn handle(&self, ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
        let proposal: Proposal = payload(event)?;
        let registered = parse_spec(&proposal.spec, &proposal.origin).and_then(|spec| {
            let version = ctx.tools.register(spec.clone())?;
            Ok((spec, version))
        });
        match registered {
            Ok((spec, version)) => {
                ctx.knowledge
                    .upsert_node(Node::new(
                        format!("tool:{}", spec.name),
                        NodeKind::Tool,
                        &spec.name,
                        serde_json::json!({
                            "version": version,
                            "description": spec.description,
                            "risk": spec.risk,
                            "kind": spec.kind.as_str(),
                            "spec": proposal.spec,
                        }),
                    ))
                    .await?;
                tracing::info!(tool = %spec.name, version, "Tool registered.");
                let data = serde_json::json!({ "name": spec.name, "version": version, "proposal": event.id });
                ctx.emit(NAME, event_type::TOOL_REGISTERED, &spec.name, Some(Severity::Info), data).await?;
            }
            Err(err) => {
                tracing::warn!(origin = %proposal.origin, error = %err, "Tool rejected.");
                let data =
                    serde_json::json!({ "origin": proposal.origin, "reason": err.to_string(), "proposal": event.id });
                ctx.emit(NAME, event_type::TOOL_REJECTED, &proposal.origin, Some(Severity::Warning), data).await?;
            }
        }
        Ok(())
    }
}
