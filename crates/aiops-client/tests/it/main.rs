//! Integration tests of the client against a fake core served over real HTTP.
//!
//! One test binary, one module per topic.

mod events;
mod fake_core;
mod middleware;
mod registry;

use aiops_client::ClientConfig;

/// A config for `core_url` with short intervals so the tests run fast.
fn test_config(core_url: &str) -> ClientConfig {
    let mut config = ClientConfig::new(core_url, "bookmarks", "http://127.0.0.1:9999");
    config.instance_id = format!("bookmarks-{}", aiops_model::new_id());
    config.capabilities = vec!["db.reset_pool".into(), "cache.clear".into()];
    config.dependencies = vec!["sqlite".into()];
    config.ttl_secs = 1;
    config.flush_interval_ms = 50;
    config.shutdown_timeout_ms = 1_000;
    config
}
