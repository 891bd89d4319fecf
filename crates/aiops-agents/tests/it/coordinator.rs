//! The coordinator contains a panicking agent: it is reported, its event is retried and then
//! dead-lettered, and the agent goes on with the next events.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiops_agents::{Agent, AgentContext, AgentResult, Coordinator};
use aiops_events::{EventBusExt, ReadQuery};
use aiops_model::{event_type, Envelope};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::support::{context, control_events};

#[derive(Debug, Default)]
struct Fragile {
    handled: Mutex<Vec<u64>>,
}

#[async_trait]
impl Agent for Fragile {
    fn name(&self) -> &'static str {
        "fragile"
    }

    fn control_types(&self) -> Vec<String> {
        vec!["test.*".into()]
    }

    async fn handle(&self, _ctx: &AgentContext, event: &Envelope) -> AgentResult<()> {
        if event.data["panic"] == true {
            panic!("cannot handle {}", event.id);
        }
        self.handled.lock().unwrap().push(event.data["n"].as_u64().unwrap());
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_agent_is_reported_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let agent = Arc::new(Fragile::default());
    let shutdown = CancellationToken::new();
    let coordinator = tokio::spawn(Coordinator::new(ctx.clone(), vec![agent.clone()]).run(shutdown.clone()));
    let control = ctx.streams.control.clone();
    ctx.bus.publish_one(&control, Envelope::new("t", "test.ok", serde_json::json!({ "n": 1 }))).await.unwrap();
    let poison = Envelope::new("t", "test.poison", serde_json::json!({ "panic": true }));
    ctx.bus.publish_one(&control, poison.clone()).await.unwrap();
    ctx.bus.publish_one(&control, Envelope::new("t", "test.ok", serde_json::json!({ "n": 2 }))).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let dead = ctx.bus.read(&control.dead_letter(), &ReadQuery::default()).await.unwrap();
        if !dead.is_empty() {
            assert_eq!(dead[0].event.data["event"]["id"], poison.id);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the poison event was never dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(*agent.handled.lock().unwrap(), vec![1, 2], "the agent must go on after a panic");
    let failures = control_events(&ctx, event_type::AGENT_FAILED).await;
    assert_eq!(failures.len(), 3, "each of the 3 deliveries' panics is reported");
    assert!(failures[0].event.data["reason"].as_str().unwrap().contains("panicked"));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), coordinator).await.expect("coordinator did not stop").unwrap();
}
