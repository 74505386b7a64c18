//! Free TCP ports.

use std::net::TcpListener;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and letting the kernel choose, then closing the
/// listener. Tests need distinct ports because many servers (and dbjobs listeners) run in
/// parallel on one machine; hard-coded ports would collide. The port can be taken by
/// someone else between this call and its use, so callers that bind it (like
/// [`MariaDb::start`](crate::MariaDb::start)) retry with a new port when the bind fails.
///
/// # Panics
/// When no port can be bound on 127.0.0.1 at all.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}
