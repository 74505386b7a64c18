//! `jobs-check` and `jobs-upgrade` (PROTOCOL.md §6.3): replication-manager compares the
//! node's copy of its bash `dbjobs_new` script with its own and pushes upgrades.
//!
//! dbjobs does not run that script; it keeps the file replication-manager delivered at the
//! setting `repman_script`, sends it back byte for byte when asked (`jobs-check`), and stores
//! a new one when pushed (`jobs-upgrade`): only a non-empty file with a `# EOF` line is
//! accepted, written beside the old one and renamed over it, never executed. Without
//! `repman_script` neither task is polled (a `needs` answer would be consumed for nothing).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

use dbjobs_sdk::JobError;

use super::client::RepmanClient;

/// The largest script accepted (replication-manager's is about 60 KB).
pub const MAX_SCRIPT_BYTES: u64 = 16 << 20;

/// How long the node waits for replication-manager to connect and send the new script.
const UPGRADE_DEADLINE: Duration = Duration::from_secs(120);

/// Answer `jobs-check` and `jobs-upgrade` when replication-manager needs them. Errors are
/// returned per task, for the caller to log and count.
pub fn run(
    client: &RepmanClient,
    script: &Path,
    receive_port: u16,
) -> Vec<(&'static str, JobError)> {
    let mut errors = Vec::new();
    for (task, step) in [
        (
            "jobs-check",
            check as fn(&RepmanClient, &Path, u16) -> Result<(), JobError>,
        ),
        ("jobs-upgrade", upgrade),
    ] {
        match client.needs(task) {
            Ok(true) => {
                if let Err(e) = step(client, script, receive_port) {
                    errors.push((task, e));
                }
            }
            Ok(false) => {}
            Err(e) => errors.push((task, e)),
        }
    }
    errors
}

/// `jobs-check`: send the kept script, byte for byte, to the port replication-manager opens.
fn check(client: &RepmanClient, script: &Path, _receive_port: u16) -> Result<(), JobError> {
    let bytes = std::fs::read(script).map_err(|e| {
        JobError::io(format!("jobs-check: cannot read repman_script {}: {e}", script.display()))
            .with_hint("replication-manager pushes the file with jobs-upgrade; until then there is nothing to check")
    })?;
    let port = client.jobs_check_receiver()?;
    let host = client.config().api_host.clone();
    let mut stream = TcpStream::connect((host.as_str(), port)).map_err(|e| {
        JobError::network(format!("jobs-check: cannot connect to {host}:{port}: {e}"))
    })?;
    stream
        .write_all(&bytes)
        .and_then(|()| stream.shutdown(std::net::Shutdown::Write))
        .map_err(|e| JobError::network(format!("jobs-check: sending to {host}:{port}: {e}")))?;
    log::info!(
        "jobs-check: sent {} ({} bytes) to replication-manager",
        script.display(),
        bytes.len()
    );
    Ok(())
}

/// `jobs-upgrade`: listen on the receive port, ask replication-manager to send, accept one
/// connection from its host, and keep the file if it is a whole script.
fn upgrade(client: &RepmanClient, script: &Path, receive_port: u16) -> Result<(), JobError> {
    let listener = TcpListener::bind(("0.0.0.0", receive_port)).map_err(|e| {
        JobError::network(format!(
            "jobs-upgrade: cannot listen on port {receive_port}: {e}"
        ))
    })?;
    let allowed = resolve(&client.config().api_host);
    client.send_jobs_upgrade()?;
    let mut conn = accept_from(&listener, &allowed)?;
    let mut bytes = Vec::new();
    (&mut conn)
        .take(MAX_SCRIPT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| JobError::network(format!("jobs-upgrade: receiving the script: {e}")))?;
    check_script(&bytes)?;
    store(script, &bytes)?;
    log::info!(
        "jobs-upgrade: stored replication-manager's new script in {} ({} bytes; not executed)",
        script.display(),
        bytes.len()
    );
    Ok(())
}

/// The addresses of replication-manager's host: the only peers accepted.
fn resolve(host: &str) -> Vec<IpAddr> {
    (host, 0)
        .to_socket_addrs()
        .map(|it| it.map(|a: SocketAddr| a.ip()).collect())
        .unwrap_or_default()
}

fn accept_from(listener: &TcpListener, allowed: &[IpAddr]) -> Result<TcpStream, JobError> {
    let net = |e: std::io::Error| JobError::network(format!("jobs-upgrade: {e}"));
    listener.set_nonblocking(true).map_err(net)?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((conn, peer)) if allowed.contains(&peer.ip()) => {
                conn.set_nonblocking(false).map_err(net)?;
                conn.set_read_timeout(Some(UPGRADE_DEADLINE)).map_err(net)?;
                return Ok(conn);
            }
            Ok((_, peer)) => log::warn!("jobs-upgrade: refused a connection from {peer}"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > UPGRADE_DEADLINE {
                    return Err(JobError::network(format!(
                        "jobs-upgrade: replication-manager did not connect within {} s",
                        UPGRADE_DEADLINE.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(net(e)),
        }
    }
}

/// A whole script: not empty, not over [`MAX_SCRIPT_BYTES`], with a line `# EOF`.
pub fn check_script(bytes: &[u8]) -> Result<(), JobError> {
    if bytes.is_empty() {
        return Err(JobError::bad_input(
            "jobs-upgrade: replication-manager sent an empty file; the kept script is unchanged",
        ));
    }
    if bytes.len() as u64 > MAX_SCRIPT_BYTES {
        return Err(JobError::bad_input(format!(
            "jobs-upgrade: the file is larger than {MAX_SCRIPT_BYTES} bytes; the kept script is unchanged"
        )));
    }
    if !bytes
        .split(|b| *b == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line) == b"# EOF")
    {
        return Err(JobError::bad_input(
            "jobs-upgrade: the file has no '# EOF' line (cut short?); the kept script is unchanged",
        ));
    }
    Ok(())
}

/// Write `bytes` beside `script` and rename it over (0640, not executable).
fn store(script: &Path, bytes: &[u8]) -> Result<(), JobError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| {
        JobError::io(format!(
            "jobs-upgrade: cannot store {}: {e}",
            script.display()
        ))
    };
    let tmp = script.with_extension("dbjobs-new");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io)?;
    std::fs::rename(&tmp, script).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_scripts_are_accepted() {
        assert!(check_script(b"#!/bin/bash\necho hi\n# EOF\n").is_ok());
        assert!(check_script(b"#!/bin/bash\r\n# EOF\r\n").is_ok());
        assert!(check_script(b"").is_err());
        assert!(check_script(b"#!/bin/bash\necho hi\n").is_err());
        assert!(check_script(b"echo '# EOF here'\n").is_err());
    }

    #[test]
    fn stored_scripts_are_not_executable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbjobs_new");
        store(&path, b"x\n# EOF\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x\n# EOF\n");
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o111,
            0
        );
    }
}
