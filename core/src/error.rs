//! The host's error type: what failed, and what the operator can do about it.
//!
//! Errors print the way cargo's do: one line saying what failed and why, then an optional
//! `help:` line with the fix. The exit status of the CLI is derived from where they come from
//! (configuration and connection errors exit 2).

use std::fmt;

/// A host error: a message and, where we know one, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What failed and why, e.g. `cannot connect to MariaDB at /run/mysqld/mysqld.sock: ...`.
    pub message: String,
    /// What to do about it, e.g. `pass --socket or set socket= in [client] of --defaults-file`.
    pub help: Option<String>,
}

impl Error {
    /// An error without a hint.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            help: None,
        }
    }

    /// Add the line that tells the operator what to do.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<mysql::Error> for Error {
    fn from(e: mysql::Error) -> Self {
        Error::new(format!("MariaDB error: {e}"))
    }
}

/// Result with the host's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
