//! Built-in tools through the shipped catalog.

use aiops_construction::{ConstructionError, RunMode, Secrets, ToolCatalog};
use serde_json::json;

use crate::target;

#[tokio::test]
async fn noop_probe_succeeds_and_does_nothing() {
    let catalog = ToolCatalog::new(reqwest::Client::new(), Secrets::new()).with_shipped_tools().unwrap();
    let tool = catalog.get("noop_probe").unwrap();
    let target = target("http://127.0.0.1:1", &[]);
    let out = tool.run(&target, &json!({}), RunMode::Execute).await.unwrap();
    assert!(out.success);
    assert_eq!(out.resolved, "builtin noop_probe");
    let dry = tool.run(&target, &json!(null), RunMode::DryRun).await.unwrap();
    assert!(dry.success);
    assert!(dry.output.starts_with("dry run"));
    let err = tool.run(&target, &json!({"unexpected": 1}), RunMode::Execute).await.unwrap_err();
    assert!(matches!(err, ConstructionError::InvalidParams { .. }), "{err:?}");
}
