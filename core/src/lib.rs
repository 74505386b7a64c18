//! # dbjobs: the host
//!
//! dbjobs runs on every MariaDB/MySQL node of a cluster managed by replication-manager. It
//! reads the node's job table (`replication_manager_schema.jobs`), claims each pending job and
//! hands it to the plugin that owns its task. This crate is the host; job types live in plugin
//! libraries built against `dbjobs-sdk`.
//!
//! ```text
//!  replication-manager ──INSERT──▶ replication_manager_schema.jobs ◀──claim/update── queue
//!                                                                                   │
//!   plugin dirs ──▶ loader (checks owner/mode, ABI header, SDK version) ──▶ registry ─┤
//!                                                                                   ▼
//!                            runner ──run(job, host context)──▶ plugin .so (cdylib)
//! ```
//!
//! Modules, one idea each: [`config`] (connection options and settings with their origin),
//! [`option_file`] (the option-file format as MariaDB reads it), [`settings`] (the host's own
//! settings, declared once), [`setting_catalog`] (every declared setting: start-up checks),
//! [`settings_doc`] (`dbjobs settings`), [`db`] (sessions and rows as text), [`queue`] (the
//! table protocol), [`validate`] (row fields), [`loader`] (plugin libraries), [`context`]
//! (what plugins call back into), [`runner`] (passes, the daemon, one job's run), [`workers`]
//! (jobs of different tasks at the same time, each on a thread of its own), [`recovery`] (what
//! dead runs left, handed to the plugins at start-up), [`state_dir`] (what outlives a run),
//! [`outcomes`] (how jobs ended, typed), [`node_state`] (the mark of a node left partial),
//! [`doctor`] (is the node ready?), [`manual`] (man pages and shell
//! completions from the CLI definition).

pub mod config;
pub mod context;
pub mod db;
pub mod doctor;
pub mod env;
pub mod error;
pub mod layout_cache;
pub mod loader;
pub mod manual;
pub mod node_state;
pub mod option_file;
pub mod outcomes;
pub mod queue;
pub mod recovery;
pub mod repman;
pub mod runner;
pub mod setting_catalog;
pub mod settings;
pub mod settings_doc;
pub mod source;
pub mod state_dir;
pub mod validate;
pub mod workers;

pub use error::{Error, Result};
