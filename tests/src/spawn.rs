//! Starting child processes that cannot outlive the test process.
//!
//! `Drop` stops a server when a test ends or panics, but not when the test process itself
//! goes away without unwinding: `panic = abort`, `std::process::exit`, a signal, the test
//! runner being killed on a timeout, or a server stored in a `static` (statics are never
//! dropped). A `mariadbd` left behind keeps its memory, port and temp dir forever.
//!
//! Linux can tie a child's life to its parent with `prctl(PR_SET_PDEATHSIG)`, but the
//! "parent" there is the *thread* that forked the child, not the process: a server started
//! by one test thread would be killed as soon as that thread ends, even if the server was
//! handed to another thread. So every child is forked by one dedicated thread that lives as
//! long as the process; when the process ends, the kernel sends SIGKILL to the children.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

/// A command to spawn, and where to send the result.
type Request = (Command, Sender<io::Result<Child>>);

/// The spawner thread's inbox. The sender lives in a static, so it is never dropped and the
/// thread never ends before the process does.
static SPAWNER: OnceLock<Sender<Request>> = OnceLock::new();

/// Spawns `cmd` so that the kernel kills the child (SIGKILL) when the test process ends.
///
/// Used for every process that could otherwise linger: `mariadbd` and `dbjobs`.
pub(crate) fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let inbox = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<Request>();
        std::thread::Builder::new()
            .name("dbjobs-tests-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    // The requester may have gone (it panicked); then the child is dropped
                    // unreaped, which is no worse than what it asked for.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the harness's spawner thread");
        tx
    });
    let (reply_tx, reply_rx) = channel();
    inbox
        .send((cmd, reply_tx))
        .expect("the harness's spawner thread has gone");
    reply_rx
        .recv()
        .expect("the harness's spawner thread has gone")
}
