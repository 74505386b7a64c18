//! What the checks share about the node: its session on the server, the server's facts, the
//! loaded plugins and the settings as a job would read them.

use std::cell::RefCell;

use dbjobs_kit::server::ServerFacts;
use dbjobs_sdk::Direction;
use mysql::Conn;

use crate::config::Settings;
use crate::db::{self, TextRow};
use crate::error::Result;
use crate::loader::{DeclaredSetting, Registry, Task};
use crate::settings::HostSettings;

/// The doctor's session on the local server, and what it read once.
pub struct Server {
    conn: RefCell<Conn>,
    /// `@@version`, vendor and `@@datadir`.
    pub facts: ServerFacts,
    /// The account the session runs as, `user@host` as `CURRENT_USER()` says.
    pub account: String,
}

impl Server {
    /// A session and what it found.
    pub fn new(conn: Conn, facts: ServerFacts, account: String) -> Self {
        Server {
            conn: RefCell::new(conn),
            facts,
            account,
        }
    }

    /// The session itself, for the library functions that take one.
    pub fn session(&self) -> std::cell::RefMut<'_, Conn> {
        self.conn.borrow_mut()
    }

    /// Run a read-only statement and return its rows as text.
    pub fn query(&self, sql: &str) -> Result<Vec<TextRow>> {
        db::query_text(&mut self.conn.borrow_mut(), sql, &[])
    }

    /// The first column of the first row, `None` for no row or NULL.
    pub fn value(&self, sql: &str) -> Result<Option<String>> {
        Ok(self
            .query(sql)?
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten()))
    }

    /// The account as a `GRANT ... TO` clause names it: `'user'@'host'`.
    pub fn grantee(&self) -> String {
        let (user, host) = self
            .account
            .rsplit_once('@')
            .unwrap_or((&self.account, "%"));
        format!("'{user}'@'{host}'")
    }
}

/// The node as the checks see it.
pub struct Node<'a> {
    /// `[dbjobs]` settings and `--set` overrides.
    pub settings: &'a Settings,
    /// The host's own settings; their defaults when a value is bad (the settings check says
    /// which).
    pub host: HostSettings,
    /// The loaded plugins.
    pub registry: &'a Registry,
    /// The session, when the connection succeeded.
    pub server: Option<Server>,
}

impl<'a> Node<'a> {
    /// Gather it.
    pub fn new(settings: &'a Settings, registry: &'a Registry, server: Option<Server>) -> Self {
        let host = settings.host().unwrap_or_else(|_| {
            HostSettings::read(&|_: &str| None).expect("the declared defaults are valid")
        });
        Node {
            settings,
            host,
            registry,
            server,
        }
    }

    /// Every task a loaded plugin owns.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.registry.plugins.iter().flat_map(|p| p.tasks.iter())
    }

    /// The owned tasks among `names`, in the order of `names`.
    pub fn owned<'n>(&self, names: &[&'n str]) -> Vec<&'n str> {
        names
            .iter()
            .copied()
            .filter(|n| self.registry.owner(n).is_some())
            .collect()
    }

    /// Whether some loaded task receives data on this node (it listens on the receive port).
    pub fn has_inbound_task(&self) -> bool {
        self.tasks().any(|t| t.direction == Direction::Inbound)
    }

    /// The value a job would read for a setting that a loaded plugin declares: the
    /// configured one, else the declared default. `None` when no loaded plugin declares it
    /// (no job reads it, so there is nothing to check).
    pub fn plugin_setting(&self, name: &str) -> Option<String> {
        let declared = self.declaration(name)?;
        Some(
            self.settings
                .get(name)
                .map(str::to_string)
                .unwrap_or_else(|| declared.default.clone()),
        )
    }

    /// The declaration of `name` in a loaded plugin.
    pub fn declaration(&self, name: &str) -> Option<&'a DeclaredSetting> {
        self.registry
            .plugins
            .iter()
            .flat_map(|p| p.settings.iter())
            .find(|s| s.name == name)
    }
}
