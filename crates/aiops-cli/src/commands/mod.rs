//! One module per command. Each returns `Ok(true)` for success, `Ok(false)` for a clean
//! failure it already explained, `Err` for an error to print.

pub(crate) mod config;
pub(crate) mod demo;
pub(crate) mod healing;
pub(crate) mod kb;
pub(crate) mod remote;
pub(crate) mod replay;
pub(crate) mod serve;
pub(crate) mod services;
pub(crate) mod supervisor;
