//! The typed error every job returns: a kind, a message, a hint and the server's state.
//!
//! pgBackRest and rustic taught the shape: a kind that code can act on, a message that says
//! what failed and why, a hint that says what to do. A restore adds the one fact an operator
//! needs before anything else: what it left the server in ([`ServerState`]). The host writes
//! every failure into the job's `result` the same way
//! (`failed, server untouched: <message> - hint: <hint>`), shows kind and state in
//! `dbjobs jobs --json`, and refuses a new restore over a node left [`ServerState::Partial`].

use std::fmt;

use abi_stable::std_types::{RNone, ROption, RSome, RString};

use crate::abi::{AbiJobError, ErrorKind_NE, ServerState_NE};
pub use crate::abi::{ErrorKind, ServerState};

/// A failed job (or a failed step of one).
///
/// Build it with the constructor of its kind ([`JobError::config`], [`JobError::network`],
/// ...), add what to do with [`JobError::with_hint`], and, where the code knows what the
/// server was left in, [`JobError::with_state`]. A new error's state is
/// [`ServerState::Unknown`]: the code that knows better (the plugin's `run`, the restore's
/// orchestrator) says so, typically with [`JobError::or_state`] at its boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// What failed and why, e.g. `cannot connect to 10.0.0.5:4444 within 120 s: refused`.
    pub message: String,
    /// What to do about it, e.g. `check that replication-manager listens for this backup`.
    pub hint: Option<String>,
    /// The state the server's data was left in.
    pub state: ServerState,
}

macro_rules! kind_constructors {
    ($($(#[$doc:meta])* $name:ident => $kind:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Self {
                JobError::new(ErrorKind::$kind, message)
            }
        )*
    };
}

impl JobError {
    /// An error of `kind`, without a hint, in state [`ServerState::Unknown`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            message: message.into(),
            hint: None,
            state: ServerState::Unknown,
        }
    }

    kind_constructors! {
        /// A setting or the option file is wrong ([`ErrorKind::Config`]).
        config => Config,
        /// The job's own fields cannot be used ([`ErrorKind::InvalidJob`]).
        invalid_job => InvalidJob,
        /// A connection failed ([`ErrorKind::Network`]).
        network => Network,
        /// Received data is malformed or cut ([`ErrorKind::BadInput`]).
        bad_input => BadInput,
        /// An external tool failed ([`ErrorKind::Tool`]).
        tool => Tool,
        /// A statement failed ([`ErrorKind::Sql`]).
        sql => Sql,
        /// The local filesystem failed ([`ErrorKind::Io`]).
        io => Io,
        /// Not enough disk space ([`ErrorKind::NoSpace`]).
        no_space => NoSpace,
        /// A precondition was not met ([`ErrorKind::Refused`]).
        refused => Refused,
        /// The operator stopped the job ([`ErrorKind::Cancelled`]).
        cancelled => Cancelled,
        /// Versions do not fit together ([`ErrorKind::Incompatible`]).
        incompatible => Incompatible,
        /// A bug ([`ErrorKind::Internal`]).
        internal => Internal,
    }

    /// Say what to do about it (replaces an earlier hint).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Say what the server was left in.
    pub fn with_state(mut self, state: ServerState) -> Self {
        self.state = state;
        self
    }

    /// Set the state only if nobody said it yet: `run` of a plugin that never changes data
    /// ends with `.map_err(|e| e.or_state(ServerState::Untouched))`.
    pub fn or_state(mut self, state: ServerState) -> Self {
        if self.state == ServerState::Unknown {
            self.state = state;
        }
        self
    }

    /// Put what was being done in front of the message: `"reading @@datadir: " + message`.
    pub fn context(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }

    /// The text the host writes into the job's `result`:
    /// `failed, server untouched: <message> - hint: <hint>`.
    pub fn result_text(&self) -> String {
        let mut out = format!("failed, {}: {}", self.state.describe(), self.message);
        if let Some(h) = &self.hint {
            out.push_str(" - hint: ");
            out.push_str(h);
        }
        out
    }

    /// The ABI form, for [`crate::export_plugin!`].
    pub fn into_abi(self) -> AbiJobError {
        AbiJobError {
            kind: ErrorKind_NE::new(self.kind),
            state: ServerState_NE::new(self.state),
            message: self.message.into(),
            hint: match self.hint {
                Some(h) => RSome(RString::from(h)),
                None => RNone,
            },
        }
    }

    /// Back from the ABI form, for the host. A kind or state this SDK does not know (a plugin
    /// built against a newer 0.2.x) reads as [`ErrorKind::Internal`] / [`ServerState::Unknown`],
    /// with the message kept.
    pub fn from_abi(e: &AbiJobError) -> Self {
        JobError {
            kind: e.kind.as_enum().copied().unwrap_or(ErrorKind::Internal),
            message: e.message.to_string(),
            hint: match &e.hint {
                ROption::RSome(h) => Some(h.to_string()),
                ROption::RNone => None,
            },
            state: e.state.as_enum().copied().unwrap_or(ServerState::Unknown),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " - hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JobError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_text_says_state_message_and_hint() {
        let e = JobError::network("cannot connect to 10.0.0.5:4444")
            .with_hint("check that replication-manager listens")
            .or_state(ServerState::Untouched);
        assert_eq!(
            e.result_text(),
            "failed, server untouched: cannot connect to 10.0.0.5:4444 - hint: check that replication-manager listens"
        );
        let e = JobError::sql("ERROR 1062").with_state(ServerState::Partial);
        assert_eq!(
            e.or_state(ServerState::Untouched).state,
            ServerState::Partial
        );
    }

    #[test]
    fn the_abi_form_round_trips() {
        let e = JobError::bad_input("stream cut after 3 MiB")
            .with_hint("send it again")
            .with_state(ServerState::RolledBack);
        assert_eq!(JobError::from_abi(&e.clone().into_abi()), e);
        let plain = JobError::tool("exit 1").context("mariadb-backup --prepare");
        assert_eq!(plain.message, "mariadb-backup --prepare: exit 1");
        assert_eq!(JobError::from_abi(&plain.clone().into_abi()), plain);
    }
}
