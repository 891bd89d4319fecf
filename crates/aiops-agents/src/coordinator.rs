//! Runs every agent in its own tasks and keeps them running.
//!
//! Each agent gets one consumer task per stream it reads and one tick task if it has periodic
//! work. Every `handle` call runs in a task of its own, so a panic is caught as a `JoinError`:
//! the event is given back to the mesh (and dead-lettered after too many tries), an
//! `agent.failed` event is published, and the agent carries on with the next event. A consumer
//! or tick task that dies itself is restarted with a backoff.

use std::sync::Arc;
use std::time::Duration;

use aiops_events::{Delivery, StreamName, Subscription};
use aiops_model::{event_type, Severity};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Agent, AgentContext};

const BATCH: usize = 128;
const RECEIVE_WAIT: Duration = Duration::from_millis(250);
const RETRY_AFTER: Duration = Duration::from_secs(1);
const RESTART_BACKOFF: Duration = Duration::from_millis(500);

/// Runs the agents.
#[derive(Debug)]
pub struct Coordinator {
    ctx: AgentContext,
    agents: Vec<Arc<dyn Agent>>,
}

impl Coordinator {
    /// A coordinator for `agents` working through `ctx`.
    pub fn new(ctx: AgentContext, agents: Vec<Arc<dyn Agent>>) -> Self {
        Self { ctx, agents }
    }

    /// Runs every agent until `shutdown` is cancelled, then waits for the tasks to finish
    /// their current event (unacknowledged events stay pending in the mesh).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        for agent in &self.agents {
            let streams = [
                (self.ctx.streams.telemetry.clone(), agent.telemetry_types()),
                (self.ctx.streams.control.clone(), agent.control_types()),
            ];
            for (stream, types) in streams {
                if types.is_empty() {
                    continue;
                }
                let (agent, ctx, shutdown) = (agent.clone(), self.ctx.clone(), shutdown.clone());
                tasks.spawn(supervise(agent.name(), ctx.clone(), shutdown.clone(), move || {
                    consume(agent.clone(), ctx.clone(), stream.clone(), types.clone(), shutdown.clone())
                }));
            }
            if let Some(interval) = agent.tick_interval() {
                let (agent, ctx, shutdown) = (agent.clone(), self.ctx.clone(), shutdown.clone());
                tasks.spawn(supervise(agent.name(), ctx.clone(), shutdown.clone(), move || {
                    tick(agent.clone(), ctx.clone(), interval, shutdown.clone())
                }));
            }
            tracing::info!(agent = agent.name(), "Agent started.");
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// Restarts the task made by `make` whenever it panics, until shutdown.
async fn supervise<F, Fut>(name: &'static str, ctx: AgentContext, shutdown: CancellationToken, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(make()).await {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(agent = name, error = %err, "Agent task died; restarting it.");
                report_failure(&ctx, name, &format!("agent task died: {err}")).await;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RESTART_BACKOFF) => {}
                }
            }
        }
    }
}

async fn report_failure(ctx: &AgentContext, agent: &str, reason: &str) {
    metrics::counter!("aiops_agents_failures_total", "agent" => agent.to_owned()).increment(1);
    let data = serde_json::json!({ "agent": agent, "reason": reason });
    if let Err(err) = ctx.emit("coordinator", event_type::AGENT_FAILED, agent, Some(Severity::Error), data).await {
        tracing::error!(agent, error = %err, "Could not report an agent failure.");
    }
}

async fn consume(
    agent: Arc<dyn Agent>,
    ctx: AgentContext,
    stream: StreamName,
    types: Vec<String>,
    shutdown: CancellationToken,
) {
    let sub = Subscription { types, ..Subscription::new(stream, agent.name(), ctx.instance.clone()) };
    while !shutdown.is_cancelled() {
        let deliveries = tokio::select! {
            () = shutdown.cancelled() => return,
            received = ctx.bus.receive(&sub, BATCH, RECEIVE_WAIT) => received,
        };
        let deliveries = match deliveries {
            Ok(deliveries) => deliveries,
            Err(err) => {
                tracing::warn!(agent = agent.name(), error = %err, "Receiving events failed; retrying.");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        let mut done = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            // At shutdown, leave the rest of the batch pending for the next start.
            if shutdown.is_cancelled() {
                break;
            }
            if handle_one(&agent, &ctx, &sub, &delivery).await {
                done.push(delivery.offset);
            }
        }
        if let Err(err) = ctx.bus.ack(&sub, &done).await {
            tracing::warn!(agent = agent.name(), error = %err, "Acknowledging events failed; they will come again.");
        }
    }
}

/// Handles one delivery in its own task; true when it is done with (ack), false when it was
/// given back for a retry.
async fn handle_one(agent: &Arc<dyn Agent>, ctx: &AgentContext, sub: &Subscription, delivery: &Delivery) -> bool {
    let name = agent.name();
    let event = delivery.event.clone();
    let task = {
        let (agent, ctx) = (agent.clone(), ctx.clone());
        tokio::spawn(async move { agent.handle(&ctx, &event).await })
    };
    let outcome = match task.await {
        Ok(Ok(())) => "ok",
        Ok(Err(err)) if err.is_retryable() => {
            tracing::warn!(agent = name, event = %delivery.event.id, attempt = delivery.attempt, error = %err, "Handling failed; will retry.");
            "retry"
        }
        Ok(Err(err)) => {
            tracing::warn!(agent = name, event = %delivery.event.id, error = %err, "Dropping an event that cannot be handled.");
            "rejected"
        }
        Err(join_err) => {
            tracing::error!(agent = name, event = %delivery.event.id, error = %join_err, "Agent panicked while handling an event.");
            report_failure(ctx, name, &format!("panicked on event {}: {join_err}", delivery.event.id)).await;
            "panicked"
        }
    };
    metrics::counter!("aiops_agents_events_total", "agent" => name, "outcome" => outcome).increment(1);
    if matches!(outcome, "retry" | "panicked") {
        if let Err(err) = ctx.bus.nack(sub, delivery.offset, RETRY_AFTER).await {
            tracing::warn!(agent = name, error = %err, "Giving an event back failed; it comes again after its visibility timeout.");
        }
        return false;
    }
    true
}

async fn tick(agent: Arc<dyn Agent>, ctx: AgentContext, interval: Duration, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = agent.tick(&ctx).await {
            tracing::warn!(agent = agent.name(), error = %err, "Periodic work failed.");
        }
    }
}
