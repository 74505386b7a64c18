//! A stand-in for replication-manager's receiving end of an outbound job.
//!
//! For a backup or a log, replication-manager opens a TCP listener, inserts the job row with
//! the listener's port, accepts exactly one connection and writes whatever arrives to a file
//! (PROTOCOL.md §2). [`RmListener`] does the same on `127.0.0.1:0`, so a test can check that
//! the stream arrived whole. Its [`ListenMode`]s also play the failures a job must survive: a
//! listener that reads slowly (to observe a job while it runs), one that closes after some
//! bytes, and [`RmListener::never`], a port where nothing listens.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a listener waits for the job to connect: replication-manager's own deadline.
const ACCEPT_DEADLINE: Duration = Duration::from_secs(120);

/// How the listener reads what it accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenMode {
    /// Read everything until the sender closes, as replication-manager does.
    Full,
    /// Read `chunk` bytes, then sleep `pause`, until the sender closes: a slow network, so
    /// a test can look at the job while it streams.
    Slow {
        /// Bytes per read.
        chunk: usize,
        /// Pause after each read.
        pause: Duration,
    },
    /// Read about this many bytes, then close the connection (a listener that died).
    CloseAfter(u64),
}

/// What a listener received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes written to the file.
    pub bytes: u64,
    /// The file holding them.
    pub file: PathBuf,
}

/// A one-connection listener on `127.0.0.1`, writing what it receives to a file.
pub struct RmListener {
    port: u16,
    thread: Option<JoinHandle<io::Result<Received>>>,
}

impl RmListener {
    /// Listen on `127.0.0.1:0`; the accepted stream goes to `file` (created or truncated).
    ///
    /// # Panics
    /// When the port cannot be bound or the file cannot be created.
    pub fn start(file: &Path, mode: ListenMode) -> RmListener {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .unwrap_or_else(|e| panic!("cannot bind a test listener: {e}"));
        let port = listener.local_addr().expect("bound address").port();
        let out =
            File::create(file).unwrap_or_else(|e| panic!("cannot create {}: {e}", file.display()));
        let path = file.to_path_buf();
        let thread = std::thread::spawn(move || serve(listener, out, path, mode));
        RmListener {
            port,
            thread: Some(thread),
        }
    }

    /// A port on `127.0.0.1` where nothing listens (replication-manager never opened it).
    pub fn never() -> u16 {
        crate::free_port()
    }

    /// The port the job must connect to (the row's `port`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Wait until the connection is over and return what arrived; an error when nobody
    /// connected within 120 s or reading failed.
    ///
    /// # Panics
    /// When the listener thread panicked.
    pub fn finish(mut self) -> io::Result<Received> {
        self.thread
            .take()
            .expect("finish is called once")
            .join()
            .expect("the listener thread panicked")
    }
}

/// Accept one connection (with a deadline) and copy it to `out` as `mode` says.
fn serve(
    listener: TcpListener,
    mut out: File,
    file: PathBuf,
    mode: ListenMode,
) -> io::Result<Received> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    let mut stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if start.elapsed() > ACCEPT_DEADLINE {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "nobody connected to the test listener",
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    };
    drop(listener);
    stream.set_nonblocking(false)?;
    let (chunk, pause, limit) = match mode {
        ListenMode::Full => (1 << 20, Duration::ZERO, u64::MAX),
        ListenMode::Slow { chunk, pause } => (chunk.max(1), pause, u64::MAX),
        ListenMode::CloseAfter(n) => (64 << 10, Duration::ZERO, n),
    };
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    while total < limit {
        let want = buf
            .len()
            .min((limit - total).min(usize::MAX as u64) as usize);
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    out.flush()?;
    // Dropping the stream closes it; with unread data the kernel resets the connection, as
    // when replication-manager's listener dies.
    drop(stream);
    Ok(Received { bytes: total, file })
}
