//! Real services for tests: an ephemeral `redis-server` and an ephemeral PostgreSQL 18 with
//! pgvector, each on a free `127.0.0.1` port in its own temporary directory.
//!
//! ```no_run
//! let redis = aiops_testkit::RedisServer::start().expect("start redis-server");
//! let postgres = aiops_testkit::PostgresServer::start().expect("start postgres");
//! assert!(redis.url().starts_with("redis://127.0.0.1:"));
//! assert_eq!(postgres.psql("SELECT 1").expect("psql"), "1\n");
//! ```
//!
//! Servers stop and their directories are deleted when the handle is dropped, which also happens
//! while a failing test unwinds. Nothing is ever skipped: a missing binary is a
//! [`TestkitError`] whose message names the install command, `bash scripts/install-test-deps.sh`,
//! and tests call `.expect(...)` on it so that they fail loudly.
//!
//! The API is blocking (`std::process`, `std::net`): starting a server takes milliseconds (Redis)
//! to a couple of seconds (PostgreSQL), and a blocking call is fine at the top of a
//! `#[tokio::test]`.
//!
//! This crate deliberately depends on no other workspace crate and speaks no protocol beyond
//! `PING`: it hands back URLs, and each part crate connects with its own client.
//!
//! # Layout
//! - `redis.rs`: [`RedisServer`] and [`RedisOptions`].
//! - `http_mock.rs`: [`MockHttpServer`], a scripted HTTP server for clients of remote APIs.
//! - `postgres.rs`: [`PostgresServer`].
//! - `port.rs`: [`free_port`].
//! - `process.rs`: running commands and capturing their output for error messages.
//! - `error.rs`: [`TestkitError`].

mod error;
mod http_mock;
mod port;
mod postgres;
mod process;
mod redis;

pub use error::{TestkitError, TestkitResult, INSTALL_COMMAND};
pub use http_mock::{MockHttpServer, MockReply, RecordedRequest};
pub use port::free_port;
pub use postgres::{PostgresServer, DEFAULT_PG_BIN, PG_BIN_ENV, PG_DATABASE, PG_RUN_USER};
pub use redis::{RedisOptions, RedisServer};

#[cfg(test)]
mod tests;
