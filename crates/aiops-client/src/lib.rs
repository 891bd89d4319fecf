//! Client library for services watched by AI-Ops Core.
//!
//! A service starts one [`AiopsClient`] and keeps cheap clones of it wherever it needs to
//! report something. The client
//! - registers the service instance with the core's registry (retrying until the core
//!   answers), keeps it alive with heartbeats every `ttl / 3`, and re-registers when the core
//!   has forgotten it (a heartbeat answered 404, e.g. after a core restart);
//! - buffers events in memory and ships them in batches to `POST /v1/events/batch`. An event
//!   leaves the buffer only once the core answered 2xx for its batch, so events produced while
//!   the core is down arrive after it recovers (at least once: a retried batch may repeat
//!   events, which the core drops by their stable ids);
//! - never blocks or fails the service: recording is a short, non-blocking critical section,
//!   the buffer is bounded (the oldest events are dropped and counted when it is full), and
//!   all I/O happens on one background task;
//! - picks an instance of another service to call ([`AiopsClient::pick`]): the core chooses
//!   among the healthy instances by round-robin, least-outstanding, weighted random or
//!   consistent hash.
//!
//! [`track_requests`] is a `tower` layer for axum routers that records every request as an
//! `http.request` event with its route template, status, duration and W3C trace id.
//!
//! What this crate deliberately does not do: persist the buffer across restarts of the
//! service (a crash loses what was not yet shipped), or talk TLS (the core is reached over
//! plain HTTP on the internal network).

mod backoff;
mod client;
mod config;
mod error;
mod layer;
mod pick;

pub use client::AiopsClient;
pub use config::ClientConfig;
pub use error::ClientError;
pub use layer::{parse_traceparent, track_requests, TrackRequests, TrackRequestsLayer, CLIENT_CLOSED_REQUEST};
pub use pick::{PickError, PickedInstance};

/// Re-exported so that services need no direct dependency on `aiops-model` for the basics.
pub use aiops_model::{event_type, Envelope, PickStrategy, RequestRecord, ServiceError};
