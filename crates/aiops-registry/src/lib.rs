//! The service registry: what runs where, what it can do, and whether it is healthy.
//!
//! Boundary: [`Registry`]. Backends:
//! - [`SqliteRegistry`] (default): tables in the knowledge database file.
//!
//! [`HealthChecker`] turns heartbeats and active HTTP checks into health statuses, with flap
//! damping, and reports every change; the Monitor agent runs it and publishes the changes.

mod checker;
mod error;
mod model;
mod registry;
mod sqlite;

pub use checker::{HealthChecker, HealthCheckerConfig};
pub use error::{RegistryError, RegistryResult};
pub use model::{ServiceInstance, ServiceQuery, ServiceRegistration};
pub use registry::Registry;
pub use sqlite::SqliteRegistry;
