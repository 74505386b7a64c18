//! Network helpers for outbound and inbound jobs.
//!
//! replication-manager's wire is raw bytes on one TCP connection (PROTOCOL.md §2). Outbound
//! plugins connect to `server:port` from the row, retrying until a deadline because
//! replication-manager opens its listener around the time it inserts the row. Inbound plugins
//! listen once, accept only the peer the job names, and never block forever (the bash agent's
//! `socat` once waited seven days).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use dbjobs_sdk::{declare_settings, Host, Job, JobError};

declare_settings! {
    /// How outbound jobs reach replication-manager's listener.
    pub struct OutboundSettings {
        /// Seconds an outbound job retries connecting to replication-manager's listener (it waits 120 s in 2.1 to 2.3.4).
        pub connect_timeout: u64 = "120",
        /// Seconds one write to replication-manager may block before the job gives up on a listener that stopped reading.
        pub send_timeout: u64 = "600",
    }
}

/// Connect an outbound job to replication-manager's listener at the job's `server:port`,
/// retrying until `connect_timeout`, with writes bounded by `send_timeout`. Both the backup
/// and the log-shipping plugins start this way, before they touch anything, so nothing is done
/// for a listener that is not there.
pub fn connect_to_manager(
    job: &Job,
    host: &Host<'_>,
    settings: &OutboundSettings,
) -> Result<TcpStream, JobError> {
    let server = job.require_server()?;
    host.progress(&format!("connecting to {server}:{}", job.port));
    let stream = connect_with_retry(
        server,
        job.port,
        Duration::from_secs(settings.connect_timeout.max(1)),
    )?;
    stream
        .set_write_timeout(Some(Duration::from_secs(settings.send_timeout.max(1))))
        .map_err(|e| {
            JobError::network(format!("cannot set a write timeout on the connection: {e}"))
        })?;
    Ok(stream)
}

/// Connect to `host:port`, retrying every second until `deadline` has passed.
///
/// Each address the name resolves to is tried in turn. The error names the address and the
/// last failure, e.g. `cannot connect to 10.0.0.5:4444 within 120 s: Connection refused`.
pub fn connect_with_retry(
    host: &str,
    port: u16,
    deadline: Duration,
) -> Result<TcpStream, JobError> {
    let start = Instant::now();
    let mut last_error = String::from("no address");
    loop {
        match (host, port).to_socket_addrs() {
            Ok(addrs) => {
                for addr in addrs {
                    let left = deadline
                        .saturating_sub(start.elapsed())
                        .max(Duration::from_millis(100));
                    match TcpStream::connect_timeout(&addr, left.min(Duration::from_secs(10))) {
                        Ok(stream) => {
                            let _ = stream.set_nodelay(true);
                            return Ok(stream);
                        }
                        Err(e) => last_error = e.to_string(),
                    }
                }
            }
            Err(e) => last_error = format!("cannot resolve {host}: {e}"),
        }
        if start.elapsed() + Duration::from_secs(1) > deadline {
            return Err(JobError::network(format!(
                "cannot connect to {host}:{port} within {} s: {last_error}",
                deadline.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The peers an inbound listener accepts: the addresses the job's `server` resolves to, plus
/// any the operator allowed explicitly (setting `receive_allow`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerFilter {
    allowed: Vec<IpAddr>,
}

impl PeerFilter {
    /// Resolve each name (host name or IP literal) and allow every address it has. A name that
    /// does not resolve is an error: accepting "anyone" instead would defeat the check.
    pub fn resolve<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, JobError> {
        let mut allowed = Vec::new();
        for name in names {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if let Ok(ip) = name.parse::<IpAddr>() {
                allowed.push(ip.to_canonical());
                continue;
            }
            let addrs = (name, 0).to_socket_addrs().map_err(|e| {
                JobError::network(format!("cannot resolve allowed peer {name:?}: {e}"))
            })?;
            allowed.extend(addrs.map(|a| a.ip().to_canonical()));
        }
        if allowed.is_empty() {
            return Err(JobError::invalid_job(
                "no peer address to accept: the job has no server and receive_allow is empty",
            ));
        }
        Ok(PeerFilter { allowed })
    }

    /// Whether a connection from `ip` is accepted (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allowed.contains(&ip.to_canonical())
    }

    /// The accepted addresses, for messages.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.allowed
    }
}

/// A bound listener waiting for one accepted peer.
pub struct OneShotListener {
    listener: TcpListener,
    local: SocketAddr,
}

impl OneShotListener {
    /// Bind `bind:port` (`bind` is an IP literal, `0.0.0.0` or `::` for all addresses).
    pub fn bind(bind: &str, port: u16) -> Result<Self, JobError> {
        let ip: IpAddr = bind
            .parse()
            .map_err(|_| JobError::config(format!("receive_bind={bind:?} is not an IP address")))?;
        let listener = TcpListener::bind((ip, port)).map_err(|e| {
            JobError::network(format!("cannot listen on {bind}:{port}: {e}"))
                .with_hint("another process holds the port: find it with `ss -ltnp`")
        })?;
        let local = listener
            .local_addr()
            .map_err(|e| JobError::network(e.to_string()))?;
        Ok(OneShotListener { listener, local })
    }

    /// The address actually bound (useful when `port` was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Accept connections until one comes from a peer `filter` allows or `deadline` passes.
    /// Refused peers are passed to `on_refused` (to be logged) and closed at once. The listener
    /// is closed when this returns, so the port is free again either way.
    pub fn accept_from(
        self,
        filter: &PeerFilter,
        deadline: Duration,
        mut on_refused: impl FnMut(SocketAddr),
        cancelled: impl Fn() -> bool,
    ) -> Result<(TcpStream, SocketAddr), JobError> {
        let net = |e: io::Error| JobError::network(e.to_string());
        self.listener.set_nonblocking(true).map_err(net)?;
        let start = Instant::now();
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if filter.allows(peer.ip()) {
                        stream.set_nonblocking(false).map_err(net)?;
                        return Ok((stream, peer));
                    }
                    on_refused(peer);
                    drop(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if start.elapsed() >= deadline {
                        return Err(JobError::network(format!(
                            "nobody connected to {} from {} within {} s",
                            self.local,
                            list_ips(filter.addresses()),
                            deadline.as_secs()
                        )));
                    }
                    if cancelled() {
                        return Err(JobError::cancelled(
                            "cancelled while waiting for the sender",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(JobError::network(format!(
                        "accept on {} failed: {e}",
                        self.local
                    )))
                }
            }
        }
    }
}

/// Connect to `to` from the local address `from`. Tests use it to play a sender at another
/// address of the loopback range (127.0.0.2), which the peer check must refuse.
pub fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect(&to.into())?;
    Ok(socket.into())
}

fn list_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn filter_accepts_only_named_peers() {
        let f = PeerFilter::resolve(["127.0.0.1", " ::1 "]).unwrap();
        assert!(f.allows("127.0.0.1".parse().unwrap()));
        assert!(f.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(f.allows("::1".parse().unwrap()));
        assert!(!f.allows("127.0.0.2".parse().unwrap()));
        assert!(PeerFilter::resolve(["", " "]).is_err());
    }

    #[test]
    fn listener_refuses_other_peers_and_accepts_the_named_one() {
        let l = OneShotListener::bind("127.0.0.1", 0).unwrap();
        let addr = l.local_addr();
        let sender = std::thread::spawn(move || {
            // Refused: 127.0.0.2 is not allowed (loopback range, bound explicitly).
            let bad = connect_from("127.0.0.2".parse().unwrap(), addr).unwrap();
            let mut good = TcpStream::connect(addr).unwrap();
            good.write_all(b"hello").unwrap();
            drop(bad);
        });
        let mut refused = Vec::new();
        let filter = PeerFilter::resolve(["127.0.0.1"]).unwrap();
        let (mut s, peer) = l
            .accept_from(
                &filter,
                Duration::from_secs(10),
                |p| refused.push(p),
                || false,
            )
            .unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        sender.join().unwrap();
        assert_eq!(got, "hello");
        assert_eq!(peer.ip().to_string(), "127.0.0.1");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].ip().to_string(), "127.0.0.2");
    }

    #[test]
    fn listener_gives_up_at_the_deadline_and_frees_the_port() {
        let l = OneShotListener::bind("127.0.0.1", 0).unwrap();
        let port = l.local_addr().port();
        let filter = PeerFilter::resolve(["127.0.0.1"]).unwrap();
        let err = l
            .accept_from(&filter, Duration::from_millis(200), |_| {}, || false)
            .unwrap_err();
        assert!(err.message.contains("nobody connected"), "{err}");
        TcpListener::bind(("127.0.0.1", port)).expect("port is free again");
    }

    #[test]
    fn connect_retries_until_the_deadline() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect_with_retry("127.0.0.1", port, Duration::from_millis(500)).unwrap_err();
        assert!(err.message.contains(&format!("127.0.0.1:{port}")), "{err}");
    }
}
