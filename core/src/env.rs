//! What every job of this process shares ([`HostEnv`]): settings, credentials, the stop
//! signal and the link to replication-manager. It sits below the job sources and the host
//! contexts, which both use it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use abi_stable::std_types::{ROption, RStr, RString};

use crate::config::{ConnectionOptions, Settings};

/// What every job of this process shares: settings, credentials and the stop signal.
pub struct HostEnv {
    /// `[dbjobs]` settings and `--set` overrides.
    pub settings: Settings,
    /// The host's own settings, typed (read from `settings` at start-up).
    pub host: crate::settings::HostSettings,
    /// How to connect to the local server.
    pub connection: ConnectionOptions,
    /// Number of SIGTERM/SIGINT received: 1 = finish the running job then stop, 2 = cancel it.
    pub signals: Arc<AtomicUsize>,
    /// replication-manager's API, when `repman_api` is set: every line a job logs also goes
    /// to its `write-log`.
    pub repman: Option<crate::repman::RepmanLink>,
    option_file: OnceLock<Result<(tempfile::TempDir, PathBuf), String>>,
    warned: Mutex<std::collections::HashSet<u64>>,
}

impl HostEnv {
    /// A new environment; the option file is written on first use. A host setting with a bad
    /// value is a configuration error.
    pub fn new(settings: Settings, connection: ConnectionOptions) -> crate::Result<Self> {
        let host = settings.host()?;
        let repman =
            crate::repman::RepmanLink::from_settings(&host, connection.password.as_deref())?;
        Ok(HostEnv {
            repman,
            host,
            settings,
            connection,
            signals: Arc::new(AtomicUsize::new(0)),
            option_file: OnceLock::new(),
            warned: Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// `true` the first time it is asked about `job_id`: a daemon warns about a row once, not
    /// on every pass.
    pub fn warn_once(&self, job_id: u64) -> bool {
        self.warned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job_id)
    }

    /// A setting as a plugin asks for it ([`dbjobs_sdk::abi::HostApi::setting`]): the configured value, or for
    /// a host setting its declared default, so a plugin reads `state_dir` or `receive_port`
    /// without declaring them a second time.
    pub fn plugin_setting(&self, name: RStr<'_>) -> ROption<RString> {
        let host_default = || {
            crate::settings::HostSettings::DECLS
                .iter()
                .find(|d| d.name == crate::config::normalize_key(name.as_str()))
                .map(|d| d.default)
        };
        self.settings
            .get(name.as_str())
            .or_else(host_default)
            .map(RString::from)
            .into()
    }

    /// Whether a stop was requested (finish the current job, start no other).
    pub fn stop_requested(&self) -> bool {
        self.signals.load(Ordering::SeqCst) >= 1
    }

    /// The 0600 `[client]` option file for child tools, in a 0700 directory of its own that
    /// is removed when the process ends.
    pub fn option_file(&self) -> Result<PathBuf, String> {
        self.option_file
            .get_or_init(|| {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let dir = tempfile::Builder::new()
                    .prefix("dbjobs-")
                    .tempdir()
                    .map_err(|e| {
                        format!("cannot create a private directory for the option file: {e}")
                    })?;
                let path = dir.path().join("client.cnf");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                let text = self
                    .connection
                    .client_option_file_text()
                    .map_err(|e| e.to_string())?;
                f.write_all(text.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok((dir, path))
            })
            .as_ref()
            .map(|(_, p)| p.clone())
            .map_err(Clone::clone)
    }
}
