//! # dbjobs-kit: what every dbjobs plugin author needs
//!
//! Plain-Rust helpers compiled into each plugin; they never cross the ABI, so this crate has
//! its own version and the host never checks it (a fix here never makes a plugin refused).
//! Each module is one idea:
//!
//! * [`net`]: connect to replication-manager with a deadline, listen once and accept only the
//!   peer the job names;
//! * [`copy`]: copy a stream with byte counting, progress and cancellation; a read-ahead relay
//!   for a tool's stdout;
//! * [`tool`]: find and run `mariadb`, `mariadb-backup`, `mbstream` with the credentials in an
//!   option file, never on argv and never through a shell, keeping the stderr tail;
//! * [`sql`]: identifier quoting, GTID lists, the system schemas;
//! * [`service`]: service commands without a shell, waiting for the server, and
//!   [`service::ServiceControl`], the one stop / change / start-or-put-back pattern;
//! * [`private`]: 0600 files and 0700 directories, written one way;
//! * [`server`]: facts about the local server (version, vendor, datadir);
//! * [`position`]: [`position::BinlogPosition`], the one position type, parsed from every
//!   form dbjobs meets, with the payload replication-manager reads;
//! * [`tls`]: the inbound listener's TLS side: a sender's ClientHello told from a plain
//!   stream on the same port, the node's certificate (configured, or generated once).

pub mod copy;
pub mod disk;
pub mod net;
pub mod position;
pub mod private;
pub mod server;
pub mod service;
pub mod sql;
pub mod tls;
pub mod tool;
