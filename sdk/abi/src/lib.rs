//! # dbjobs-sdk: the stable ABI of dbjobs plugins
//!
//! What the `dbjobs` host and every job-type plugin library agree on, and nothing else: this
//! crate depends on `abi_stable` alone and knows no job type. Helpers for writing plugins
//! (network, tools, SQL, service control, ...) are in `dbjobs-kit`, versioned separately, so
//! a fix there never makes the host refuse a plugin.
//!
//! * [`abi`]: the types that cross the boundary, and how each may grow within 0.2.x (prefix
//!   types, non-exhaustive enums, a `sabi_trait` host context). `README.md` of this crate says
//!   the same for vendors.
//! * [`plugin`]: what plugin authors write against: the safe [`Plugin`] trait (`run` a job,
//!   and `recover` what a dead run left, called at every host start), [`Job`], [`Host`],
//!   [`Outcome`] and the [`export_plugin!`] macro that writes the `extern` glue and catches
//!   panics.
//! * [`error`]: [`JobError`], the typed error every job returns: a kind, a message, a hint and
//!   the state the server's data was left in.
//! * [`settings`]: settings declared once ([`declare_settings!`]): a typed struct for the
//!   plugin, declarations for the host, which checks values and documents them.
//!
//! A minimal plugin:
//!
//! ```no_run
//! use dbjobs_sdk::{export_plugin, Direction, Host, Job, JobError, Outcome, Plugin, PluginInfo};
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn info(&self) -> PluginInfo {
//!         PluginInfo::new("hello", env!("CARGO_PKG_VERSION"), "says hello")
//!             .task("hello", Direction::Local, "writes hello into the job result")
//!     }
//!     fn run(&self, job: &Job, _host: &Host<'_>) -> Result<Outcome, JobError> {
//!         Ok(Outcome::new(format!("hello from job {}", job.id)))
//!     }
//! }
//!
//! export_plugin!(Hello);
//! # fn main() {}
//! ```

pub mod abi;
pub mod error;
pub mod plugin;
pub mod settings;

pub use abi::{Direction, JobSource, LogLevel, SettingKind, TableVariant};
pub use error::{ErrorKind, JobError, ServerState};
pub use plugin::{Host, Job, Outcome, Plugin, PluginInfo, TaskInfo};
pub use settings::{FromSetting, SettingDecl, SettingSource, SettingType};

/// Re-exported so that [`export_plugin!`] can name `abi_stable` items from a plugin crate
/// that does not depend on `abi_stable` itself.
#[doc(hidden)]
pub use abi_stable;

/// The version of this ABI crate, as the host reports it next to each plugin's.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
