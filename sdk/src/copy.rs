//! Copying a stream with byte counting and progress.
//!
//! Backups and reseeds move gigabytes; the copy loop is the hot path. It uses one large buffer
//! (socat's 8 KiB default halves loopback throughput), counts bytes for the job's result, and
//! reports progress at most once per interval so the row is not rewritten per buffer.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// Buffer size for stream copies: large enough that a loopback copy is not syscall-bound.
pub const COPY_BUFFER: usize = 1 << 20;

/// How often [`copy_with_progress`] calls its progress callback at most.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Copy `reader` into `writer` until end of input; returns the number of bytes copied.
///
/// `progress` is called with the running total at most once per [`PROGRESS_INTERVAL`], and
/// not at all for a copy that ends sooner. An error says which side failed, so the job result
/// can tell a dead sender from a full disk or a closed listener.
pub fn copy_with_progress<R: Read + ?Sized, W: Write + ?Sized>(
    reader: &mut R,
    writer: &mut W,
    mut progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    let mut last = Instant::now();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(CopyError::Read {
                    after: total,
                    error: e,
                })
            }
        };
        writer.write_all(&buf[..n]).map_err(|e| CopyError::Write {
            after: total,
            error: e,
        })?;
        total += n as u64;
        if last.elapsed() >= PROGRESS_INTERVAL {
            last = Instant::now();
            progress(total);
        }
    }
    writer.flush().map_err(|e| CopyError::Write {
        after: total,
        error: e,
    })?;
    Ok(total)
}

/// A reader that fails with "the job was cancelled" once `cancelled()` says so, checked
/// before every read: wrapped around the source of [`copy_with_progress`], it lets a long
/// stream stop at the operator's request (the caller then kills whatever produced it).
pub struct Cancellable<R, F> {
    inner: R,
    cancelled: F,
}

impl<R: Read, F: Fn() -> bool> Cancellable<R, F> {
    /// Wrap `inner`; `cancelled` is e.g. `|| host.cancelled()`.
    pub fn new(inner: R, cancelled: F) -> Self {
        Cancellable { inner, cancelled }
    }
}

impl<R: Read, F: Fn() -> bool> Read for Cancellable<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if (self.cancelled)() {
            return Err(io::Error::other("the job was cancelled"));
        }
        self.inner.read(buf)
    }
}

/// Move everything from the pipe `source` into `dest` (a socket) with `splice(2)` until the
/// pipe's writer closes it; returns the number of bytes moved.
///
/// Why: streaming a backup, the tool writes into a pipe and the job copies the pipe into the
/// socket. A read/write loop copies every byte twice more (pipe to user space, user space to
/// the socket) on a machine whose cores the backup tool and the database already use;
/// `splice` hands the pipe's pages to the socket inside the kernel. `cancelled` is checked
/// before every call and `progress` behaves as in [`copy_with_progress`]. When the kernel
/// refuses to splice these two descriptors at all (`EINVAL` before the first byte, e.g. a
/// destination that is not a socket or a pipe), the copy falls back to
/// [`copy_with_progress`] on duplicates of the descriptors.
///
/// Errors are attributed as the copy loop does: a failure of the destination (peer closed,
/// send deadline passed: `EPIPE`, `ECONNRESET`, `EAGAIN`, ...) is [`CopyError::Write`];
/// anything else, cancellation included, is [`CopyError::Read`].
pub fn splice_with_progress(
    source: &impl AsFd,
    dest: &impl AsFd,
    cancelled: impl Fn() -> bool,
    mut progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let (from, to) = (source.as_fd(), dest.as_fd());
    let mut total = 0u64;
    let mut last = Instant::now();
    loop {
        if cancelled() {
            return Err(CopyError::Read {
                after: total,
                error: io::Error::other("the job was cancelled"),
            });
        }
        // SAFETY: splice(2) between two descriptors borrowed for the duration of the call,
        // with no offsets (both are streams).
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                COPY_BUFFER,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
            )
        };
        if n == 0 {
            return Ok(total);
        }
        if n < 0 {
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) if total == 0 => {
                    return copy_duplicates(from, to, &cancelled, progress)
                }
                Some(
                    libc::EPIPE
                    | libc::ECONNRESET
                    | libc::EAGAIN
                    | libc::ENOTCONN
                    | libc::ETIMEDOUT,
                ) => {
                    let error = if error.raw_os_error() == Some(libc::EAGAIN) {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the receiver stopped reading (send deadline passed)",
                        )
                    } else {
                        error
                    };
                    return Err(CopyError::Write {
                        after: total,
                        error,
                    });
                }
                _ => {
                    return Err(CopyError::Read {
                        after: total,
                        error,
                    })
                }
            }
        }
        total += n as u64;
        if last.elapsed() >= PROGRESS_INTERVAL {
            last = Instant::now();
            progress(total);
        }
    }
}

/// The read/write fallback of [`splice_with_progress`], on duplicates of its descriptors.
fn copy_duplicates(
    from: BorrowedFd<'_>,
    to: BorrowedFd<'_>,
    cancelled: &impl Fn() -> bool,
    progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let dup = |fd: BorrowedFd<'_>| fd.try_clone_to_owned().map(std::fs::File::from);
    let file = dup(from).map_err(|error| CopyError::Read { after: 0, error })?;
    let mut reader = Cancellable::new(file, cancelled);
    let mut writer = dup(to).map_err(|error| CopyError::Write { after: 0, error })?;
    copy_with_progress(&mut reader, &mut writer, progress)
}

/// Where a copy failed, and after how many bytes.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed (the sender or the tool died, a read deadline passed).
    Read {
        /// Bytes copied before the failure.
        after: u64,
        /// The I/O error.
        error: io::Error,
    },
    /// Writing the destination failed (the peer closed, the disk is full).
    Write {
        /// Bytes copied before the failure.
        after: u64,
        /// The I/O error.
        error: io::Error,
    },
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Read { after, error } => {
                write!(f, "reading failed after {}: {error}", human_bytes(*after))
            }
            CopyError::Write { after, error } => {
                write!(f, "writing failed after {}: {error}", human_bytes(*after))
            }
        }
    }
}

impl std::error::Error for CopyError {}

/// `1536` -> `1.5 KiB`: sizes for people, in results and progress.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `bytes` over `elapsed` as `12.3 MiB/s`.
pub fn human_rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_everything_and_counts() {
        let data = vec![7u8; 3 * COPY_BUFFER + 17];
        let mut out = Vec::new();
        let n = copy_with_progress(&mut data.as_slice(), &mut out, |_| {}).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(out, data);
    }

    #[test]
    fn write_errors_say_after_how_much() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = copy_with_progress(&mut &b"abc"[..], &mut Full, |_| {}).unwrap_err();
        assert_eq!(err.to_string(), "writing failed after 0 B: disk full");
    }

    /// A pipe whose writer end is fed `data` by a thread, then closed.
    fn pipe_with(data: Vec<u8>) -> (io::PipeReader, std::thread::JoinHandle<()>) {
        let (reader, mut writer) = io::pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = writer.write_all(&data);
        });
        (reader, feeder)
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn splices_a_pipe_into_a_socket() {
        let data = pattern(3 * COPY_BUFFER + 17);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let socket = std::net::TcpStream::connect(addr).unwrap();
        let (pipe, feeder) = pipe_with(data.clone());
        let n = splice_with_progress(&pipe, &socket, || false, |_| {}).unwrap();
        drop(socket);
        feeder.join().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(sink.join().unwrap(), data);
    }

    #[test]
    fn a_closed_receiver_is_a_write_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let closer = std::thread::spawn(move || drop(listener.accept().unwrap()));
        let socket = std::net::TcpStream::connect(addr).unwrap();
        closer.join().unwrap();
        let (pipe, feeder) = pipe_with(pattern(64 * COPY_BUFFER));
        let err = splice_with_progress(&pipe, &socket, || false, |_| {}).unwrap_err();
        drop(pipe);
        feeder.join().unwrap();
        assert!(matches!(err, CopyError::Write { .. }), "{err}");
    }

    #[test]
    fn falls_back_to_copying_where_the_kernel_cannot_splice() {
        // splice(2) refuses a destination opened for appending (EINVAL).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let data = pattern(COPY_BUFFER + 5);
        let (pipe, feeder) = pipe_with(data.clone());
        let n = splice_with_progress(&pipe, &out, || false, |_| {}).unwrap();
        feeder.join().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_cancelled_splice_stops_before_moving_anything() {
        let (pipe, feeder) = pipe_with(pattern(1000));
        let (_keep, out) = io::pipe().unwrap();
        let err = splice_with_progress(&pipe, &out, || true, |_| {}).unwrap_err();
        drop(pipe);
        feeder.join().unwrap();
        assert_eq!(
            err.to_string(),
            "reading failed after 0 B: the job was cancelled"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_rate(2 << 20, Duration::from_secs(2)), "1.0 MiB/s");
    }
}
