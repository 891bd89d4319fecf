//! End-to-end tests of the `aiops` binary: real processes, real HTTP, real files.

mod browser;
mod cluster;
mod demo;
mod healing;
mod kb;
mod registry;
mod replay;
mod serve;
mod support;
