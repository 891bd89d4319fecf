//! The HTTP API through the router, without a socket, over real embedded backends.

mod auth;
mod browser;
mod dead_letters;
mod healing;
mod services;
mod support;
