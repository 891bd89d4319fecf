//! The tool kinds: one file per `[kind] type`, each implementing [`Tool`].
//!
//! Only [`build_tool`] picks a concrete type; everything else holds `Arc<dyn Tool>`.

pub mod builtin;
pub mod command;
pub mod http;

use std::sync::Arc;

use crate::error::ConstructionResult;
use crate::secrets::Secrets;
use crate::spec::{ToolKind, ToolSpec};
use crate::tool::Tool;

/// Builds the tool for `spec`'s kind, validating the spec first. The one non-test function
/// that names the concrete tool types.
///
/// # Errors
/// [`InvalidSpec`](crate::ConstructionError::InvalidSpec) when the spec does not validate.
pub fn build_tool(spec: ToolSpec, http: &reqwest::Client, secrets: &Secrets) -> ConstructionResult<Arc<dyn Tool>> {
    Ok(match &spec.kind {
        ToolKind::Command(_) => Arc::new(command::CommandTool::new(spec)?),
        ToolKind::Http(_) => Arc::new(http::HttpTool::new(spec, http.clone(), secrets.clone())?),
        ToolKind::Builtin(_) => Arc::new(builtin::BuiltinTool::new(spec)?),
    })
}
