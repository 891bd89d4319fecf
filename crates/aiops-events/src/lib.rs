//! The event mesh: every event, problem, decision and outcome travels through it.
//!
//! [`EventBus`] is the boundary. Producers publish [`aiops_model::Envelope`]s to named streams;
//! consumers read them in consumer groups (each event goes to one consumer of a group and stays
//! pending until acknowledged), or replay a stream from an offset.
//!
//! Backends:
//! - [`EmbeddedEventBus`] (default): an append-only, checksummed log file per stream under the
//!   data directory, fsynced before a publish returns.
//! - [`RedisEventBus`]: Redis Streams with Redis consumer groups, for several instances.
//!
//! The [`conformance`] suite states what every backend must do; each backend runs it.

mod bus;
mod config;
mod embedded;
mod error;
mod redis;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use bus::{Delivery, EventBus, EventBusExt, Offset, ReadQuery, StartFrom, StoredEvent, StreamName, Subscription};
pub use config::{EmbeddedConfig, EventsConfig};
pub use embedded::EmbeddedEventBus;
pub use error::{EventsError, EventsResult};
pub use redis::{RedisConfig, RedisEventBus};

/// Event type of the entries the mesh writes to a dead-letter stream.
pub const DEAD_LETTER_TYPE: &str = "event.dead_lettered";
