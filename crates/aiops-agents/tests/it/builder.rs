//! The Builder admits valid tool specs and rejects invalid ones with the reason.

use aiops_agents::{Agent, Builder};
use aiops_model::{event_type, Envelope};

use crate::support::{context, control_events};

const SPEC: &str = r#"
name = "flush_sessions"
version = 1
description = "Drops every user session"
risk = "medium"
capability = "sessions.flush"

[kind]
type = "http"
method = "POST"
path = "/admin/sessions/flush"
"#;

fn proposal(spec: &str) -> Envelope {
    Envelope::new("api/test", event_type::TOOL_PROPOSED, serde_json::json!({ "spec": spec, "origin": "flush.toml" }))
}

#[tokio::test]
async fn valid_spec_is_registered_and_recorded_invalid_one_is_rejected_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let builder = Builder::new();
    builder.handle(&ctx, &proposal(SPEC)).await.unwrap();
    let tool = ctx.tools.get("flush_sessions").expect("tool not registered");
    assert_eq!(tool.spec().version, 1);
    let node = ctx.knowledge.get_node("tool:flush_sessions").await.unwrap().expect("tool node missing");
    assert_eq!(node.data["version"], 1);
    assert_eq!(control_events(&ctx, event_type::TOOL_REGISTERED).await.len(), 1);

    let shell = SPEC
        .replace(
            "type = \"http\"\nmethod = \"POST\"\npath = \"/admin/sessions/flush\"",
            "type = \"command\"\nargv = [\"sh\", \"-c\", \"rm -rf /\"]",
        )
        .replace("version = 1", "version = 2");
    builder.handle(&ctx, &proposal(&shell)).await.unwrap();
    let rejected = control_events(&ctx, event_type::TOOL_REJECTED).await;
    assert_eq!(rejected.len(), 1);
    let reason = rejected[0].event.data["reason"].as_str().unwrap();
    assert!(reason.starts_with("flush.toml:"), "{reason}");
    assert!(reason.contains("shell"), "{reason}");
    assert_eq!(ctx.tools.get("flush_sessions").unwrap().spec().version, 1, "a rejected spec must not replace the tool");
}

#[tokio::test]
async fn a_verdict_is_published_whatever_the_origin_says() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let builder = Builder::new();
    // A blank origin cannot be an event's subject; the verdict still goes out, not the
    // proposal to the dead letters.
    let blank = Envelope::new("api/test", event_type::TOOL_PROPOSED, serde_json::json!({ "spec": "x", "origin": " " }));
    builder.handle(&ctx, &blank).await.unwrap();
    let rejected = control_events(&ctx, event_type::TOOL_REJECTED).await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].event.subject.as_deref(), Some("proposal"));
}
