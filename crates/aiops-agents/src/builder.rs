//! The Builder agent: admits new remediation tools.
//!
//! For each `tool.proposed` (data: `spec`, the tool spec as TOML text, and `origin`, where it
//! came from) it parses and validates the spec, registers it in the tool catalog (a name
//! already there needs a higher version), records it as a `tool` node in the knowledge graph,
//! and publishes `tool.registered`, or `tool.rejected` with the precise reason. A proposal
//! may not replace a tool shipped with the binary. [`restore_tools`] re-registers the
//! admitted tools from the knowledge graph at start.

use aiops_construction::{parse_spec, shipped_specs, ConstructionError};
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

/// Names of the tools shipped with the binary, which proposals may not replace.
pub(crate) fn shipped_tool_names() -> Vec<String> {
    shipped_specs().map(|specs| specs.into_iter().map(|s| s.name).collect()).unwrap_or_default()
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
            if shipped_tool_names().contains(&spec.name) {
                return Err(ConstructionError::InvalidSpec {
                    origin: proposal.origin.clone(),
                    line: None,
                    reason: format!("{} is a tool shipped with aiops; a proposal may not replace it", spec.name),
                });
            }
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
                // The origin is the verdict's subject; one that cannot be a subject (blank,
                // or too long) must not keep the verdict from being published.
                let subject = match proposal.origin.trim() {
                    origin if origin.is_empty() || origin.len() > 256 => default_origin(),
                    _ => proposal.origin.clone(),
                };
                ctx.emit(NAME, event_type::TOOL_REJECTED, &subject, Some(Severity::Warning), data).await?;
            }
        }
        Ok(())
    }
}

/// Re-registers the tools the Builder admitted before (their specs are kept in `tool` nodes),
/// so that a restart does not forget them. Returns how many were registered; specs that no
/// longer validate are logged and skipped.
///
/// # Errors
/// When the knowledge store cannot be read.
pub async fn restore_tools(
    knowledge: &dyn aiops_knowledge::KnowledgeStore,
    tools: &aiops_construction::ToolCatalog,
) -> AgentResult<usize> {
    let shipped = shipped_tool_names();
    let mut restored = 0;
    for node in knowledge.nodes(NodeKind::Tool, 10_000).await? {
        let Some(spec_text) = node.data["spec"].as_str() else { continue };
        match parse_spec(spec_text, &node.id).and_then(|spec| {
            if shipped.contains(&spec.name) {
                return Ok(None);
            }
            tools.register(spec).map(Some)
        }) {
            Ok(Some(_)) => restored += 1,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(tool = %node.id, error = %err, "A stored tool spec no longer validates; skipped.")
            }
        }
    }
    Ok(restored)
}
