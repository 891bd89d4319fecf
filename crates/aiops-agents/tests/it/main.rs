//! Agents against real embedded backends and a real HTTP target service.

mod coordinator;
mod healing;
mod monitor;
mod support;
