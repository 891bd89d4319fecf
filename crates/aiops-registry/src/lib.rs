//! The service registry: what runs where, what it can do, whether it is healthy, and who
//! depends on whom.
//!
//! Boundary: [`Registry`]. Backends, each in the knowledge database of its engine:
//! - [`SqliteRegistry`] (default).
//! - [`PgRegistry`]: several core instances share it.
//!
//! [`HealthChecker`] runs the due checks (HTTP, TCP, command, heartbeat TTL) with flap
//! damping and reports every status change once; the Monitor agent runs it and publishes the
//! changes. [`Balancer`] picks an instance among the healthiest; [`DependencyGraph`] tells
//! diagnosis which failing dependency explains a service's errors. `conformance` (tests) is the
//! suite every backend runs.

mod balancer;
mod checker;
mod clock;
#[cfg(test)]
mod conformance;
mod error;
mod graph;
mod model;
mod postgres;
mod probe;
mod registry;
mod rows;
mod services_dir;
mod sqlite;

pub use balancer::{Balancer, Strategy};
pub use checker::{CheckReport, HealthChecker, RegistryConfig};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{RegistryError, RegistryResult};
pub use graph::{DependencyEdge, DependencyGraph, FailingDependency, ServiceNode};
pub use model::{
    CheckDefinition, CheckKind, CheckState, ServiceInstance, ServiceQuery, ServiceRegistration, MAX_CHECKS,
    MAX_TIMEOUT_MS,
};
pub use postgres::PgRegistry;
pub use registry::{CheckRecord, DueCheck, Registry};
pub use services_dir::{load_registration_file, load_services_dir};
pub use sqlite::SqliteRegistry;
