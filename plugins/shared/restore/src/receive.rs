//! The receiving side of an inbound job: listen, accept replication-manager, read the stream.
//!
//! PROTOCOL.md §2-3: replication-manager connects once to the node's port after the row says
//! the node listens, writes raw bytes and closes. [`accept`] binds first and only then lets the
//! host mark the row waiting, accepts nobody but the row's `server` (or an address of the
//! `receive_allow` setting), and gives up at a deadline instead of waiting forever (the bash
//! agent's `socat` once waited seven days). A sender speaking TLS (replication-manager's
//! `scheduler-db-servers-receiver-use-ssl`) gets the handshake completed with the node's
//! certificate, a plain one is read as before, on the same port. The stream it returns has an
//! idle read deadline, so a sender that stops sending fails the job instead of hanging it.
//!
//! The helpers below are shared by the logical and physical restores: [`CountingReader`]
//! counts what arrived and turns a read timeout into a clear error, [`SpaceCheckedWriter`]
//! stops a staging file before it fills the disk, and [`drain_padding`] accepts the stale
//! bytes replication-manager's sender appends after the real end of a stream.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dbjobs_kit::copy::human_bytes;
use dbjobs_kit::net::{OneShotListener, PeerFilter};
use dbjobs_kit::tls::{ReceiveTls, ReceivedStream};
use dbjobs_sdk::{ErrorKind, Host, Job, JobError};

use crate::settings::RestoreSettings;

/// The most bytes accepted after the end of a complete stream: replication-manager up to
/// 3.0.1-rc sends its whole 16 KiB buffer on the last write (PROTOCOL.md §2), so up to 16383
/// stale bytes follow the data; a margin on top, but anything beyond is not padding.
pub const MAX_PADDING: u64 = 16 * 1024 + 4 * 1024;

/// How often (in bytes written) [`SpaceCheckedWriter`] asks the file system for free space.
const SPACE_CHECK_EVERY: u64 = 64 << 20;

/// replication-manager's accepted connection.
pub struct Received {
    /// The connection, plain or TLS (told apart by its first byte, see [`dbjobs_kit::tls`]),
    /// blocking, with the idle read deadline (`receive_idle_timeout`) set.
    pub stream: ReceivedStream,
    /// Who connected (an address the job allows).
    pub peer: SocketAddr,
}

/// Listen on `receive_bind:job.port`, tell the host (which marks the row waiting, the signal
/// replication-manager connects on), then accept the first connection from an allowed peer.
///
/// Allowed peers are the addresses of the row's `server` plus those of the comma-separated
/// setting `receive_allow`. Others are logged as warnings, closed at once, and the wait goes
/// on. The wait ends at `receive_accept_timeout` seconds or when the job is cancelled; the
/// listener is closed either way, so the port is free again.
pub fn accept(
    job: &Job,
    host: &Host<'_>,
    settings: &RestoreSettings,
) -> Result<Received, JobError> {
    let names = job
        .server
        .as_deref()
        .into_iter()
        .chain(settings.receive_allow.split(','));
    // Resolve before binding: a name that does not resolve fails the job before the row says
    // "waiting", so replication-manager does not connect to a node that would refuse it.
    let filter = PeerFilter::resolve(names).map_err(|e| {
        e.with_hint(
            "check the job's server or the receive_allow setting (comma-separated addresses)",
        )
    })?;
    // The certificate for a TLS sender, loaded (or generated once) before anything listens.
    let tls = ReceiveTls::prepare(host)?;
    let listener = OneShotListener::bind(settings.bind_address(), job.port).map_err(|e| {
        e.with_hint("free the port (`ss -ltnp` shows who holds it) or set receive_bind to an address of this node")
    })?;
    host.waiting()?;
    let accept_timeout = settings.receive_accept_timeout;
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
        .map_err(|e| match e.kind {
            ErrorKind::Network => e.with_hint(
                "check that replication-manager sends this backup, or raise receive_accept_timeout",
            ),
            _ => e,
        })?;
    let idle = Duration::from_secs(settings.receive_idle_timeout.max(1));
    stream.set_read_timeout(Some(idle)).map_err(|e| {
        JobError::network(format!(
            "cannot set the read deadline on the connection: {e}"
        ))
    })?;
    let stream = tls.accept(stream)?;
    let over = if stream.is_tls() { " over TLS" } else { "" };
    host.info(&format!("receiving from {peer}{over}"));
    Ok(Received { stream, peer })
}

/// Why a [`CountingReader`] stopped delivering bytes, when it was not the end of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFailure {
    /// The operator cancelled the job.
    Cancelled,
    /// The sender sent nothing for `receive_idle_timeout` seconds.
    Silent,
    /// The connection failed (reset, closed with an error).
    Connection,
}

/// A reader over the sender's connection that counts the bytes it delivered, stops when the
/// job is cancelled, turns a read timeout into an error that says the sender went silent,
/// and remembers why it stopped ([`CountingReader::error`]), so a failed receive says
/// whether the network, the operator or the data was at fault.
pub struct CountingReader<'h, R> {
    inner: R,
    cancelled: Box<dyn Fn() -> bool + 'h>,
    count: u64,
    failure: Option<ReadFailure>,
}

impl<'h, R: Read> CountingReader<'h, R> {
    /// Wrap `inner`; `cancelled` (e.g. `|| host.cancelled()`) is asked before each read.
    pub fn new(inner: R, cancelled: impl Fn() -> bool + 'h) -> Self {
        CountingReader {
            inner,
            cancelled: Box::new(cancelled),
            count: 0,
            failure: None,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Why reading stopped early, if it did.
    pub fn failure(&self) -> Option<ReadFailure> {
        self.failure
    }

    /// The job error of a receive that failed with `message`: cancelled or a network
    /// failure when reading stopped early, otherwise bad input (what arrived is cut or
    /// malformed).
    pub fn error(&self, message: impl Into<String>) -> JobError {
        match self.failure {
            Some(ReadFailure::Cancelled) => JobError::cancelled(message),
            Some(ReadFailure::Silent | ReadFailure::Connection) => JobError::network(message)
                .with_hint("check the network and replication-manager's log, then retry the job"),
            None => JobError::bad_input(message).with_hint(
                "the transfer was interrupted or the sender's backup is damaged: retry the job",
            ),
        }
    }
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.cancelled)() {
            self.failure = Some(ReadFailure::Cancelled);
            return Err(io::Error::other("the job was cancelled"));
        }
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
                self.failure = Some(ReadFailure::Silent);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the sender sent nothing for too long (receive_idle_timeout) after {}",
                        human_bytes(self.count)
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failure = Some(ReadFailure::Connection);
                Err(e)
            }
        }
    }
}

pub use dbjobs_kit::disk::free_bytes;

/// A writer into the staging directory that fails, clearly, before the file system runs
/// below a minimum of free space. The check (statvfs) runs at the start and then every
/// 64 MiB written, so it costs nothing measurable. It remembers how a write failed
/// ([`SpaceCheckedWriter::failure`]): a full disk is not the same fault as a dead extractor.
pub struct SpaceCheckedWriter<W> {
    inner: W,
    dir: PathBuf,
    min_free: u64,
    written: u64,
    next_check: u64,
    failure: Option<io::ErrorKind>,
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
            failure: None,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The kind of the first failed write, if one failed
    /// ([`io::ErrorKind::StorageFull`] for the free-space check).
    pub fn failure(&self) -> Option<io::ErrorKind> {
        self.failure
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

    /// Remember the first failure's kind and pass the error on.
    fn failed(&mut self, e: io::Error) -> io::Error {
        self.failure.get_or_insert(e.kind());
        e
    }
}

impl<W: Write> Write for SpaceCheckedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written >= self.next_check {
            self.check().map_err(|e| self.failed(e))?;
        }
        let n = self.inner.write(buf).map_err(|e| self.failed(e))?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.failed(e))
    }
}

/// The job error of a failed write into the staging directory (the staged dump, or the
/// extractor's pipe): no space when the disk filled or the free-space check stopped it.
pub fn write_error(kind: Option<io::ErrorKind>, message: impl Into<String>) -> JobError {
    match kind {
        Some(io::ErrorKind::StorageFull) => JobError::no_space(message)
            .with_hint("free space on the staging file system or set backup_dir to a larger one"),
        _ => JobError::io(message),
    }
}

/// Read what follows the end of a complete stream and accept it as replication-manager's
/// stale padding if it is at most [`MAX_PADDING`] bytes (`already` counts bytes of it that
/// were read ahead before the end was detected). Returns the padding length. More than that
/// means the sender sent something else after the backup: refuse it.
pub fn drain_padding<R: Read + ?Sized>(reader: &mut R, already: u64) -> Result<u64, JobError> {
    let mut total = already;
    let mut buf = [0u8; 8192];
    while total <= MAX_PADDING {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(JobError::network(format!(
                    "reading after the end of the stream failed: {e}"
                )))
            }
        }
    }
    Err(JobError::bad_input(format!(
        "more than {} followed the end of the stream: that is not a sender's stale padding",
        human_bytes(MAX_PADDING)
    ))
    .with_hint("check what sends to this port"))
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
        let err = drain_padding(&mut big.as_slice(), 0).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadInput);
        assert!(
            err.message.contains("not a sender's stale padding"),
            "{err}"
        );
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
        assert_eq!(full.failure(), Some(io::ErrorKind::StorageFull));
        assert_eq!(ok.failure(), None);
        let e = write_error(full.failure(), err.to_string());
        assert_eq!(e.kind, ErrorKind::NoSpace);
    }

    #[test]
    fn counting_reader_counts_and_says_why_it_stopped() {
        let mut r = CountingReader::new(&b"hello"[..], || false);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(r.count(), 5);
        assert_eq!(r.failure(), None);
        assert_eq!(r.error("cut").kind, ErrorKind::BadInput);

        let mut r = CountingReader::new(&b"hello"[..], || true);
        assert!(r.read(&mut [0u8; 8]).is_err());
        assert_eq!(r.failure(), Some(ReadFailure::Cancelled));
        assert_eq!(r.error("stopped").kind, ErrorKind::Cancelled);

        /// A connection that fails like a reset one, or goes silent.
        struct Failing(io::ErrorKind);
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(self.0.into())
            }
        }
        let mut r = CountingReader::new(Failing(io::ErrorKind::ConnectionReset), || false);
        assert!(r.read(&mut [0u8; 8]).is_err());
        assert_eq!(r.error("reset").kind, ErrorKind::Network);
        let mut r = CountingReader::new(Failing(io::ErrorKind::WouldBlock), || false);
        let err = r.read(&mut [0u8; 8]).unwrap_err();
        assert!(err.to_string().contains("receive_idle_timeout"), "{err}");
        assert_eq!(r.failure(), Some(ReadFailure::Silent));
    }
}
