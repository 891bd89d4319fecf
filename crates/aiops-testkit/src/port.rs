//! Picking a free TCP port on the loopback interface.
//!
//! This does not reserve the port: see [`free_port`] for the race and how the servers cope.

use std::net::{Ipv4Addr, TcpListener};

use crate::error::{TestkitError, TestkitResult};

/// Returns a TCP port on `127.0.0.1` that was free a moment ago.
///
/// The kernel picks the port (bind to port 0), the listener is dropped and the number returned.
/// Between that drop and the server binding the port, another process can take it; the window is
/// a few milliseconds and the kernel hands out ephemeral ports round-robin, so a clash is rare.
/// The servers in this crate detect "address already in use" on their first start and retry with
/// a new port. A server's [`restart`](crate::RedisServer::restart) reuses its port and does not
/// retry, because its clients hold the URL.
///
/// # Errors
///
/// [`TestkitError::Io`] if binding or reading the local address fails.
pub fn free_port() -> TestkitResult<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|err| TestkitError::io("binding 127.0.0.1:0 to find a free port", err))?;
    let addr = listener
        .local_addr()
        .map_err(|err| TestkitError::io("reading the address of a listener on 127.0.0.1:0", err))?;
    Ok(addr.port())
}
