//! The receiving side of an inbound job: listen, accept replication-manager, read the stream.
//!
//! PROTOCOL.md §2-3: replication-manager connects once to the node's port after the row says
//! the node listens, writes raw bytes and closes. [`accept`] binds first and only then lets the
//! host mark the row waiting, accepts nobody but the row's `server` (or an address of the
//! `receive_allow` setting), and gives up at a deadline instead of waiting forever (the bash
//! agent's `socat` once waited seven days). The stream it returns has an idle read deadline,
//! so a sender that stops sending fails the job instead of hanging it.
//!
//! The helpers below are shared by the logical and physical restores: [`CountingReader`]
//! counts what arrived and turns a read timeout into a clear error, [`SpaceCheckedWriter`]
//! stops a staging file before it fills the disk, and [`drain_padding`] accepts the stale
//! bytes replication-manager's sender appends after the real end of a stream.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbjobs_kit::copy::{human_bytes, Cancellable};
use dbjobs_kit::net::{OneShotListener, PeerFilter};
use dbjobs_sdk::{Host, Job};

use crate::Text;

/// Default of `receive_bind`: every IPv4 address, as the bash agent's `socat TCP-LISTEN`.
pub const DEFAULT_BIND: &str = "0.0.0.0";

/// Default of `receive_accept_timeout` in seconds: how long to wait for the sender. Longer
/// than replication-manager's 11 tries 15 s apart (state variant), short enough that a job
/// nobody serves does not hold the port for hours.
pub const DEFAULT_ACCEPT_TIMEOUT_SECS: u64 = 600;

/// Default of `receive_idle_timeout` in seconds: how long the sender may stay silent.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;

/// Default of `min_free_mb`: the free space (MiB) the staging file system must keep while a
/// stream is written into it. A reseed that fills the disk would take the server down with it.
pub const DEFAULT_MIN_FREE_MB: u64 = 1024;

/// The most bytes accepted after the end of a complete stream: replication-manager up to
/// 3.0.1-rc sends its whole 16 KiB buffer on the last write (PROTOCOL.md §2), so up to 16383
/// stale bytes follow the data; a margin on top, but anything beyond is not padding.
pub const MAX_PADDING: u64 = 16 * 1024 + 4 * 1024;

/// How often (in bytes written) [`SpaceCheckedWriter`] asks the file system for free space.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// replication-manager's accepted connection.
pub struct Received {
    /// The connection, blocking, with the idle read deadline (`receive_idle_timeout`) set.
    pub stream: TcpStream,
    /// Who connected (an address the job allows).
    pub peer: SocketAddr,
}

/// Listen on `receive_bind:job.port`, tell the host (which marks the row waiting, the signal
/// replication-manager connects on), then accept the first connection from an allowed peer.
///
/// Allowed peers are the addresses of the row's `server` plus those of the comma-separated
/// setting `receive_allow`. Others are logged as warnings, closed at once, and the wait goes
/// on. The wait ends at `receive_accept_timeout` seconds (default 600) or when the job is
/// cancelled; the listener is closed either way, so the port is free again.
pub fn accept(job: &Job, host: &Host<'_>) -> Result<Received, String> {
    let settings = crate::RestoreSettings::read(host).text()?;
    let bind = Some(settings.receive_bind.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_BIND.to_string());
    let accept_timeout = settings.receive_accept_timeout;
    let idle_timeout = settings.receive_idle_timeout;
    let allow = settings.receive_allow;
    let names: Vec<&str> = job
        .server
        .as_deref()
        .into_iter()
        .chain(allow.split(','))
        .collect();
    // Resolve before binding: a name that does not resolve fails the job before the row says
    // "waiting", so replication-manager does not connect to a node that would refuse it.
    let filter = PeerFilter::resolve(names).map_err(|e| {
        format!(
            "{e}; check the job's server or the receive_allow setting (comma-separated addresses)"
        )
    })?;
    let listener = OneShotListener::bind(&bind, job.port).map_err(|e| {
        format!("{e}; free the port or set receive_bind to an address of this node")
    })?;
    host.waiting().text()?;
    host.info(&format!(
        "listening on {} for {} (at most {accept_timeout} s)",
        listener.local_addr(),
        filter
            .addresses()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let (stream, peer) = listener
        .accept_from(
            &filter,
            Duration::from_secs(accept_timeout),
            |p| {
                host.warn(&format!(
                    "refused a connection from {p}: not the job's sender"
                ))
            },
            || host.cancelled(),
        )
        .text()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(idle_timeout.max(1))))
        .map_err(|e| format!("cannot set the read deadline on the connection: {e}"))?;
    host.info(&format!("receiving from {peer}"));
    Ok(Received { stream, peer })
}

/// A reader that counts the bytes it delivered, stops when the job is cancelled, and turns
/// a read timeout into an error that says the sender went silent.
pub struct CountingReader<'h, R> {
    inner: Cancellable<R, Box<dyn Fn() -> bool + 'h>>,
    count: u64,
}

impl<'h, R: Read> CountingReader<'h, R> {
    /// Wrap `inner`; `cancelled` (e.g. `|| host.cancelled()`) is asked before each read.
    pub fn new(inner: R, cancelled: impl Fn() -> bool + 'h) -> Self {
        CountingReader {
            inner: Cancellable::new(inner, Box::new(cancelled)),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the sender sent nothing for too long (receive_idle_timeout) after {}",
                        human_bytes(self.count)
                    ),
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// Free space for unprivileged writers on the file system holding `path`, in bytes.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path contains a NUL byte"))?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// The `min_free_mb` setting in bytes (default [`DEFAULT_MIN_FREE_MB`]).
pub fn min_free_bytes(host: &Host<'_>) -> Result<u64, String> {
    Ok(crate::RestoreSettings::read(host).text()?.min_free_mb << 20)
}

/// A writer into the staging directory that fails, clearly, before the file system runs
/// below a minimum of free space. The check (statvfs) runs at the start and then every
/// 64 MiB written, so it costs nothing measurable.
pub struct SpaceCheckedWriter<W> {
    inner: W,
    dir: PathBuf,
    min_free: u64,
    written: u64,
    next_check: u64,
}

impl<W: Write> SpaceCheckedWriter<W> {
    /// Wrap `inner`, which writes into `dir`; keep at least `min_free` bytes free there.
    pub fn new(inner: W, dir: &Path, min_free: u64) -> Self {
        SpaceCheckedWriter {
            inner,
            dir: dir.to_path_buf(),
            min_free,
            written: 0,
            next_check: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The wrapped writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn check(&mut self) -> io::Result<()> {
        let free = free_bytes(&self.dir)?;
        if free < self.min_free {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "only {} free in {} after writing {} (min_free_mb asks for {}); free space or set backup_dir to a larger file system",
                    human_bytes(free),
                    self.dir.display(),
                    human_bytes(self.written),
                    human_bytes(self.min_free)
                ),
            ));
        }
        self.next_check = self.written + SPACE_CHECK_EVERY;
        Ok(())
    }
}

impl<W: Write> Write for SpaceCheckedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.next_check {
            self.check()?;
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Read what follows the end of a complete stream and accept it as replication-manager's
/// stale padding if it is at most [`MAX_PADDING`] bytes (`already` counts bytes of it that
/// were read ahead before the end was detected). Returns the padding length. More than that
/// means the sender sent something else after the backup: refuse it.
pub fn drain_padding<R: Read + ?Sized>(reader: &mut R, already: u64) -> Result<u64, String> {
    let mut total = already;
    let mut buf = [0u8; 8192];
    while total <= MAX_PADDING {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("reading after the end of the stream failed: {e}")),
        }
    }
    Err(format!(
        "more than {} followed the end of the stream: that is not a sender's stale padding; check what sends to this port",
        human_bytes(MAX_PADDING)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_up_to_the_limit_is_accepted() {
        assert_eq!(drain_padding(&mut &[0u8; 16383][..], 0).unwrap(), 16383);
        assert_eq!(drain_padding(&mut &[0u8; 100][..], 50).unwrap(), 150);
        assert_eq!(drain_padding(&mut &b""[..], 0).unwrap(), 0);
        let big = vec![0u8; MAX_PADDING as usize + 1];
        assert!(drain_padding(&mut big.as_slice(), 0)
            .unwrap_err()
            .contains("not a sender's stale padding"));
    }

    #[test]
    fn free_space_is_checked() {
        let dir = std::env::temp_dir();
        assert!(free_bytes(&dir).unwrap() > 0);
        let mut ok = SpaceCheckedWriter::new(Vec::new(), &dir, 0);
        ok.write_all(b"abc").unwrap();
        assert_eq!(ok.written(), 3);
        let mut full = SpaceCheckedWriter::new(Vec::new(), &dir, u64::MAX);
        let err = full.write_all(b"abc").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(err.to_string().contains("min_free_mb"), "{err}");
    }

    #[test]
    fn counting_reader_counts() {
        let mut r = CountingReader::new(&b"hello"[..], || false);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(r.count(), 5);
    }
}
