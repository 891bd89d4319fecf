//! `BuiltinTool` runs the `Tool` conformance suite. `noop_probe` has no observable effect
//! and cannot be slow, so those checks only confirm success.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::conformance::Fixture;
use crate::spec::parse_spec;

fn fixture() -> Fixture {
    let spec = parse_spec(
        r#"name = "probe"
version = 1
description = "Probes."
risk = "low"
capability = "probe"

[[params]]
name = "level"
pattern = "integer"

[kind]
type = "builtin"
name = "noop_probe"
"#,
        "test",
    )
    .unwrap_or_else(|err| panic!("{err}"));
    Fixture {
        tool: Arc::new(BuiltinTool::new(spec).unwrap()),
        slow_tool: None,
        target: ToolTarget {
            service: "svc".into(),
            instance_id: "svc-1".into(),
            address: "http://127.0.0.1:1".into(),
            capabilities: vec!["probe".into()],
        },
        valid_params: json!({ "level": 3 }),
        invalid_params: json!({ "level": "three" }),
        effects: None,
        guard: Box::new(()),
    }
}

crate::tool_conformance!(fixture());
