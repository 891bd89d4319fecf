//! Integration tests of the construction part through its public API: real processes, a
//! real HTTP server on 127.0.0.1, the shipped catalog.

mod builtin;
mod command;
mod http;

use aiops_construction::{parse_spec, ToolSpec, ToolTarget};

/// A target at `address` advertising `capabilities`.
pub(crate) fn target(address: &str, capabilities: &[&str]) -> ToolTarget {
    ToolTarget {
        service: "bookmarks-backend".to_owned(),
        instance_id: "backend-1".to_owned(),
        address: address.to_owned(),
        capabilities: capabilities.iter().map(|cap| (*cap).to_owned()).collect(),
    }
}

/// Parses a spec written in a test, panicking with the error.
pub(crate) fn spec(text: &str) -> ToolSpec {
    parse_spec(text, "test").unwrap_or_else(|err| panic!("{err}"))
}
