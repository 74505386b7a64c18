//! Can an inbound job (a reseed, a flashback) listen on the receive port?
//!
//! replication-manager connects once, within seconds of the job being marked waiting; a port
//! another process holds makes every reseed of the node fail. Doctor binds the address a
//! receive would bind for an instant and closes it again.

use std::net::{IpAddr, SocketAddr, TcpListener};

use super::node::Node;
use super::report::Check;

/// The address a receive binds when `receive_bind` is not declared by a loaded plugin.
const ANY_ADDRESS: &str = "0.0.0.0";

/// One line, when an owned task receives data.
pub fn check(node: &Node<'_>) -> Vec<Check> {
    if !node.has_inbound_task() {
        return Vec::new();
    }
    let port = node.host.receive_port;
    let bind = node
        .plugin_setting("receive_bind")
        .unwrap_or_else(|| ANY_ADDRESS.to_string());
    let name = "receive-port";
    let ip: IpAddr = match bind.trim().parse() {
        Ok(ip) => ip,
        Err(_) => {
            return vec![Check::fail(
                name,
                format!("receive_bind={bind:?} is not an IP address"),
                "set receive_bind to an IP literal (0.0.0.0 or :: for every address)",
            )]
        }
    };
    let addr = SocketAddr::new(ip, port);
    vec![match TcpListener::bind(addr) {
        Ok(listener) => {
            drop(listener);
            Check::ok(name, format!("{addr} is free to bind"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Check::fail(
            name,
            format!("{addr} is taken by another process, so every reseed and flashback of this node would fail"),
            format!(
                "stop that process (`ss -ltnp 'sport = :{port}'` names it), or set receive_port to a free port and the same port in replication-manager (its SST receiver port)"
            ),
        ),
        Err(e) => Check::fail(
            name,
            format!("cannot bind {addr}: {e}"),
            "set receive_bind to an address of this node and receive_port to a port this user may bind",
        ),
    }]
}
