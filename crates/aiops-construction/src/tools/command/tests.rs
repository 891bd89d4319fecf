//! `CommandTool` runs the `Tool` conformance suite: its effect is a file it creates.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::conformance::Fixture;
use crate::spec::parse_spec;

fn command_spec(name: &str, argv: &str, timeout_ms: u64) -> ToolSpec {
    parse_spec(
        &format!(
            r#"name = "{name}"
version = 1
description = "Creates a marker file."
risk = "low"
timeout_ms = {timeout_ms}
capability = "fs.write"

[[params]]
name = "file"
pattern = "path"

[kind]
type = "command"
argv = {argv}
"#
        ),
        "test",
    )
    .unwrap_or_else(|err| panic!("{err}"))
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marker");
    let tool = CommandTool::new(command_spec("touch_marker", r#"["touch", "{file}"]"#, 5_000)).unwrap();
    let slow = CommandTool::new(command_spec("slow", r#"["env", "MARKER={file}", "sleep", "5"]"#, 200)).unwrap();
    let counted = file.clone();
    Fixture {
        tool: Arc::new(tool),
        slow_tool: Some(Arc::new(slow)),
        target: ToolTarget {
            service: "svc".into(),
            instance_id: "svc-1".into(),
            address: "http://127.0.0.1:1".into(),
            capabilities: vec!["fs.write".into()],
        },
        valid_params: json!({ "file": file.display().to_string() }),
        invalid_params: json!({ "file": "-rf" }),
        effects: Some(Box::new(move || usize::from(counted.exists()))),
        guard: Box::new(dir),
    }
}

crate::tool_conformance!(fixture());

#[test]
fn display_argv_quotes_only_what_needs_it() {
    let argv = ["printf", "%s\n", "; rm -rf /", "it's", "", "a=b/c.d"].map(String::from);
    assert_eq!(
        display_argv(&argv),
        r"printf '%s
' '; rm -rf /' 'it'\''s' '' a=b/c.d"
    );
}

#[test]
fn new_refuses_another_kind() {
    let spec = parse_spec(
        "name = \"b\"\nversion = 1\ndescription = \"d\"\nrisk = \"low\"\n[kind]\ntype = \"builtin\"\nname = \"noop_probe\"\n",
        "test",
    )
    .unwrap();
    assert!(matches!(CommandTool::new(spec), Err(ConstructionError::InvalidSpec { .. })));
}
