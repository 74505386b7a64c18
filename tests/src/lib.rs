//! End-to-end test harness for dbjobs.
//!
//! dbjobs is a job runner that lives next to a MariaDB server and executes the jobs that
//! replication-manager queues in `replication_manager_schema.jobs` (see `shared/PROTOCOL.md`).
//! Its behaviour only means something against a real server, so the end-to-end tests start
//! throwaway `mariadbd` processes ([`MariaDb`]) and drive the real `dbjobs` binary ([`Dbjobs`])
//! against them, the way a node would run it.
//!
//! Design points every test relies on:
//! - Servers are cheap: a datadir template is installed once per build (see [`MariaDb`]) and
//!   copied, so a test can start as many servers as it needs, in parallel with other tests.
//! - Servers are private: own temp dir, unix socket and TCP port, `--no-defaults`, so nothing
//!   from `/etc/mysql` or the system server leaks in.
//! - Servers never outlive the test: [`MariaDb`] stops its server on drop (also while a test
//!   panics), and every child the harness starts is killed by the kernel if the test process
//!   itself dies (abort, SIGKILL, a server kept in a `static`).
//! - The binaries under test are the ones `cargo build --workspace` produced; the harness
//!   never builds anything itself, so a missing binary is reported with the command to run.

#![warn(missing_docs)]

mod binaries;
mod dbjobs;
pub mod fake_zfs;
pub mod fixtures;
mod net;
pub mod physical_fixtures;
pub mod repman_standin;
pub mod rm_listener;
pub mod schema_fixture;
pub mod sender;
mod server;
mod spawn;
mod template;
mod wait;

pub use binaries::{dbjobs_bin, fixture_file, mariadb_tool, plugin_dir, plugin_file, target_dir};
pub use dbjobs::{Dbjobs, RunOutput};
pub use net::free_port;
pub use server::{MariaDb, ServerOptions};
pub use wait::wait_for;
