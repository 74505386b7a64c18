//! `dbjobs doctor`: is this node ready for replication-manager's jobs?
//!
//! Before the first reseed fails on a node, the operator wants to know what would make it
//! fail: a missing privilege, a mariadb-backup of another version than the server, a port
//! taken, too little disk, a plugin refused. Doctor looks at each of them the way a job
//! would, without doing anything a job does: it connects, reads grants, variables and
//! `information_schema`, stats files and directories, asks tools for `--version` and binds
//! the receive port for an instant. It writes nothing, runs no job and creates no table.
//!
//! Each module is one idea and yields [`Check`]s: [`connection`], [`values`] (settings
//! against their declarations), [`plugins`] (directories, files, what loaded), [`privileges`]
//! (what the owned tasks need, named), [`job_table`] (the queue and its layout), [`tools`]
//! (found, versions, the backup tool against the server), [`dirs`] (datadir, backup_dir,
//! state_dir: writable, free space against `min_free_mb`), [`receive_port`], [`logs`]
//! (the files the log tasks ship) and, when `repman_api` is set, [`repman`] (reachable,
//! certificate as trusted, login accepted).
//!
//! What a check needs to know about the node (its session, the server's facts, the loaded
//! plugins and the settings they declare) is gathered once in a [`Node`].

mod connection;
mod dirs;
mod job_table;
mod logs;
mod node;
mod plugins;
mod privileges;
mod receive_port;
mod repman;
mod report;
mod tools;
mod values;

use std::path::PathBuf;

pub use node::{Node, Server};
pub use report::{Check, Report, Status};

use crate::config::{ConnectionOptions, Settings};
use crate::loader::Registry;

/// What doctor is given: the same configuration a `dbjobs run` would use.
pub struct Inputs<'a> {
    /// How to reach the local server.
    pub connection: &'a ConnectionOptions,
    /// `[dbjobs]` settings and `--set` overrides.
    pub settings: &'a Settings,
    /// Every plugin directory, the default one first.
    pub plugin_dirs: &'a [PathBuf],
}

/// Run every check; the report says what failed and what to do.
pub fn run(inputs: &Inputs<'_>) -> Report {
    let registry = Registry::load(inputs.plugin_dirs);
    let mut report = Report::default();
    let (connected, server) = connection::check(inputs.connection);
    report.push(connected);
    let node = Node::new(inputs.settings, &registry, server);
    report.extend(values::check(&node));
    report.extend(plugins::check(inputs.plugin_dirs, &registry));
    report.extend(privileges::check(&node));
    report.extend(job_table::check(&node));
    report.extend(tools::check(&node));
    report.extend(dirs::check(&node));
    report.extend(receive_port::check(&node));
    report.extend(logs::check(&node));
    report.extend(repman::check(&node, inputs.connection.password.as_deref()));
    report
}
