//! # dbjobs-sdk
//!
//! Everything a dbjobs job-type plugin is built against.
//!
//! * [`abi`] is the stable ABI between the `dbjobs` host and a plugin library: the root module
//!   the host looks up in every `.so`, the job and outcome types, and the host context a plugin
//!   calls back into. It is built on `abi_stable`, so a plugin compiled with another rustc, or
//!   against an older minor version of this SDK, still loads; a plugin built against an
//!   incompatible SDK is refused by the host before any of its code runs.
//! * [`plugin`] is what plugin authors write against: the safe [`Plugin`] trait, the [`Host`]
//!   wrapper and the [`export_plugin!`] macro that writes the `extern` glue and catches panics.
//! * [`net`], [`copy`], [`tool`] and [`sql`] are plain-Rust helpers compiled into each plugin
//!   (they never cross the ABI): connecting and listening with deadlines and a peer check,
//!   copying a stream with byte counting and progress, spawning a client tool with the
//!   credentials in an option file, and quoting SQL identifiers.
//!
//! A minimal plugin:
//!
//! ```no_run
//! use dbjobs_sdk::{export_plugin, Direction, Host, Job, Outcome, Plugin, PluginInfo, TaskInfo};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn info(&self) -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION"), "says hello")
//!             .task("hello", Direction::Local, "writes hello into the job result")
//!     }
//!     fn run(&self, job: &Job, _host: &Host<'_>) -> Result<Outcome, String> {
//!         Ok(Outcome::new(format!("hello from job {}", job.id)))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! # fn main() {}
//! ```

pub mod abi;
pub mod copy;
pub mod logship;
pub mod net;
pub mod plugin;
pub mod restore;
pub mod service;
pub mod sql;
pub mod tool;

pub use abi::{Direction, LogLevel, TableVariant};
pub use plugin::{Host, Job, Outcome, Plugin, PluginInfo, TaskInfo};

/// Re-exported so that [`export_plugin!`] can name `abi_stable` items from a plugin crate
/// that does not depend on `abi_stable` itself.
#[doc(hidden)]
pub use abi_stable;

/// The version of this SDK, as the host reports it next to each plugin's.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
