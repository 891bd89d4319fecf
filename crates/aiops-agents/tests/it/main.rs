//! Agents against real embedded backends and a real HTTP target service.

mod approvals;
mod builder;
mod clusters;
mod coordinator;
mod diagnostic;
mod healing;
mod llm;
mod monitor;
mod patterns;
mod support;
