//! Configuration: MySQL option files, connection options and `[dbjobs]` settings.
//!
//! dbjobs reads the same option file format as the MariaDB tools, so an operator keeps one
//! file (e.g. `/etc/mysql/dbjobs.cnf`, mode 0600) with the credentials in `[client]` and the
//! job settings in `[dbjobs]`. The password is never accepted as a flag: it would be visible in
//! `ps` to every user of the node, which is exactly what the bash agent did.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
pub use crate::option_file::{normalize_key, OptionFile};

/// The socket MariaDB uses on Debian when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// How to reach the local server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Unix socket; used unless `host` is set and is not `localhost`.
    pub socket: Option<PathBuf>,
    /// TCP host.
    pub host: Option<String>,
    /// TCP port (3306 when unset).
    pub port: Option<u16>,
    /// User name (`root` when unset).
    pub user: Option<String>,
    /// Password, from the option file or `MYSQL_PWD`; never from a flag.
    pub password: Option<String>,
}

impl ConnectionOptions {
    /// Merge: command-line flags win over the option file's `[dbjobs]` (which may hold
    /// connection keys too), which wins over its `[client]`, which wins over `MYSQL_PWD` for
    /// the password. The result must fit the option file the tools get
    /// ([`Self::client_option_file_text`]): checked here, so a password that no option file
    /// can carry is a configuration error at start-up, not a failed tool half-way through.
    pub fn resolve(flags: &ConnectionFlags, file: &OptionFile) -> Result<Self> {
        let from_file = |key: &str| {
            file.get("dbjobs", key)
                .or_else(|| file.get("client", key))
                .map(str::to_string)
        };
        let port = match flags.port {
            Some(p) => Some(p),
            None => match from_file("port") {
                Some(p) => Some(p.parse::<u16>().map_err(|_| {
                    Error::new(format!("port={p:?} in the option file is not a TCP port"))
                })?),
                None => None,
            },
        };
        let options = ConnectionOptions {
            socket: flags
                .socket
                .clone()
                .or_else(|| from_file("socket").map(PathBuf::from)),
            host: flags.host.clone().or_else(|| from_file("host")),
            port,
            user: flags.user.clone().or_else(|| from_file("user")),
            password: match from_file("password") {
                Some(p) => Some(p),
                None => password_from_environment()?,
            },
        };
        options.client_option_file_text()?;
        Ok(options)
    }

    /// Whether the connection goes through the unix socket.
    pub fn uses_socket(&self) -> bool {
        match self.host.as_deref() {
            None | Some("localhost") => true,
            Some(_) => false,
        }
    }

    /// The socket path actually used.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// `/run/mysqld/mysqld.sock` or `db1:3306`, for messages.
    pub fn describe(&self) -> String {
        if self.uses_socket() {
            self.socket_path().display().to_string()
        } else {
            format!(
                "{}:{}",
                self.host.as_deref().unwrap_or("localhost"),
                self.port.unwrap_or(3306)
            )
        }
    }

    /// The text of a `[client]` option file with these credentials, for child tools. Every
    /// value is written so that MariaDB's tools read it back unchanged
    /// ([`crate::option_file::option_line`]); one that cannot be (a NUL, a line longer than
    /// the tools read) is a configuration error naming the key, never a broken file.
    pub fn client_option_file_text(&self) -> Result<String> {
        let mut out = String::from(
            "# written by dbjobs for the tools it starts; removed when it exits\n[client]\n",
        );
        let socket = self.socket_path().display().to_string();
        let port = self.port.unwrap_or(3306).to_string();
        let mut lines = vec![("user", self.user.as_deref().unwrap_or("root"))];
        if let Some(p) = &self.password {
            lines.push(("password", p));
        }
        if self.uses_socket() {
            lines.push(("socket", &socket));
        } else {
            lines.push(("host", self.host.as_deref().unwrap_or("localhost")));
            lines.push(("port", &port));
            lines.push(("protocol", "tcp"));
        }
        for (key, value) in lines {
            let line = crate::option_file::option_line(key, value).map_err(|why| {
                Error::new(format!(
                    "the {key} cannot be handed to the MariaDB tools dbjobs starts: {why}"
                ))
                .help(format!(
                    "use a {key} the tools can read from an option file"
                ))
            })?;
            out.push_str(&line);
            out.push('\n');
        }
        Ok(out)
    }
}

/// `MYSQL_PWD`, the password's last fallback; a value that is not UTF-8 is an error, not
/// silently no password.
fn password_from_environment() -> Result<Option<String>> {
    match std::env::var("MYSQL_PWD") {
        Ok(p) => Ok(Some(p)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::new("MYSQL_PWD is not UTF-8 text")
            .help("put the password into [client] of --defaults-file, in UTF-8")),
    }
}

/// The connection flags of the command line (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFlags {
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--user`.
    pub user: Option<String>,
}

/// Keys of `[dbjobs]` that configure the connection rather than jobs; never shown to plugins.
pub const CONNECTION_KEYS: [&str; 5] = ["socket", "host", "port", "user", "password"];

/// Where a setting's value came from, for messages: `/etc/dbjobs/dbjobs.cnf line 12` or
/// `--set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of `[dbjobs]` in the option file (`None`: text parsed without a file).
    File {
        /// The option file.
        path: Option<PathBuf>,
        /// Its line, from 1.
        line: usize,
    },
    /// A `--set name=value` of the command line.
    Set,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File {
                path: Some(path),
                line,
            } => write!(f, "{} line {line}", path.display()),
            Origin::File { path: None, line } => write!(f, "option file line {line}"),
            Origin::Set => f.write_str("--set"),
        }
    }
}

/// A setting's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingValue {
    /// The text, quotes and escapes resolved.
    pub text: String,
    /// Where it was set.
    pub origin: Origin,
}

/// Job settings: `[dbjobs]` of the option file, overridden by `--set name=value`. Names are
/// normalised like option-file keys. Connection keys are not settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<String, SettingValue>,
}

impl Settings {
    /// Build from the option file and the `--set` pairs. A connection key given with `--set`
    /// is refused: the connection has flags of its own, and a password must never be on a
    /// command line.
    pub fn resolve(file: &OptionFile, overrides: &[String]) -> Result<Self> {
        let mut values = BTreeMap::new();
        for (k, entry) in file.section("dbjobs") {
            if !CONNECTION_KEYS.contains(&k) {
                let origin = Origin::File {
                    path: file.path().map(PathBuf::from),
                    line: entry.line,
                };
                let text = entry.value.clone();
                values.insert(k.to_string(), SettingValue { text, origin });
            }
        }
        for pair in overrides {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::new(format!("--set {pair:?} is not of the form name=value"))
                    .help("write e.g. --set example_log=/tmp/example.log")
            })?;
            let name = normalize_key(k);
            if CONNECTION_KEYS.contains(&name.as_str()) {
                return Err(Error::new(format!(
                    "--set {name}=... would configure the connection, which --set does not do"
                ))
                .help("use --socket, --host, --port or --user, or put it into [client] of --defaults-file (the password only there, never on a command line)"));
            }
            let text = v.to_string();
            values.insert(
                name,
                SettingValue {
                    text,
                    origin: Origin::Set,
                },
            );
        }
        Ok(Settings { values })
    }

    /// The value of a setting.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&normalize_key(name))
            .map(|v| v.text.as_str())
    }

    /// Where a setting was set, if it was.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        self.values.get(&normalize_key(name)).map(|v| &v.origin)
    }

    /// The host's own settings, typed; a bad value is a configuration error naming it and
    /// where it was set.
    pub fn host(&self) -> Result<crate::settings::HostSettings> {
        // `read` asks for the settings one by one and stops at the first bad one, so the
        // last name asked for is the one the error is about.
        let last_asked = std::cell::RefCell::new(String::new());
        let source = |name: &str| {
            *last_asked.borrow_mut() = name.to_string();
            self.get(name).map(str::to_string)
        };
        crate::settings::HostSettings::read(&source).map_err(|e| {
            let origin = match self.origin(&last_asked.borrow()) {
                Some(origin) => origin.to_string(),
                None => "its declared default".to_string(),
            };
            Error {
                message: format!("{} ({origin})", e.message),
                help: e.hint,
            }
        })
    }

    /// All settings with where they came from, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SettingValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl dbjobs_sdk::SettingSource for Settings {
    fn raw_setting(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[client]
user = repman
password = "p\"a ss#word"
socket=/tmp/my.sock
[dbjobs]
example-log = /tmp/x.log
receive_bind='0.0.0.0'
"#;

    #[test]
    fn flags_win_over_the_file_and_settings_over_nothing() {
        let f = OptionFile::parse(SAMPLE).unwrap();
        let flags = ConnectionFlags {
            user: Some("root".into()),
            ..Default::default()
        };
        let c = ConnectionOptions::resolve(&flags, &f).unwrap();
        assert_eq!(c.user.as_deref(), Some("root"));
        assert_eq!(c.password.as_deref(), Some("p\"a ss#word"));
        assert_eq!(c.socket_path(), PathBuf::from("/tmp/my.sock"));
        let s = Settings::resolve(&f, &["example_log=/other".into()]).unwrap();
        assert_eq!(s.get("example-log"), Some("/other"));
        assert_eq!(s.origin("example_log"), Some(&Origin::Set));
        assert_eq!(s.get("receive_bind"), Some("0.0.0.0"));
        assert_eq!(
            s.origin("receive_bind").unwrap().to_string(),
            "option file line 8"
        );
        assert!(Settings::resolve(&f, &["novalue".into()]).is_err());
    }

    #[test]
    fn the_connection_is_not_set_with_set() {
        let f = OptionFile::default();
        let e = Settings::resolve(&f, &["password=x".into()]).unwrap_err();
        assert!(e.message.contains("--set password"), "{e}");
    }

    #[test]
    fn a_bad_host_setting_names_where_it_was_set() {
        let f = OptionFile::parse("[dbjobs]\nmax_parallel_jobs=many\n").unwrap();
        let e = Settings::resolve(&f, &[]).unwrap().host().unwrap_err();
        assert!(e.message.contains("max_parallel_jobs"), "{e}");
        assert!(e.message.ends_with("(option file line 2)"), "{e}");
        let e = Settings::resolve(&OptionFile::default(), &["receive_port=70000".into()])
            .unwrap()
            .host()
            .unwrap_err();
        assert!(e.message.ends_with("(--set)"), "{e}");
    }

    #[test]
    fn client_file_round_trips_any_password() {
        let mut c = ConnectionOptions {
            socket: Some("/s".into()),
            host: None,
            port: None,
            user: Some("u".into()),
            password: Some("a\"b\\c d\ne#f;g\th\u{e0}".into()),
        };
        let f = OptionFile::parse(&c.client_option_file_text().unwrap()).unwrap();
        assert_eq!(f.get("client", "password"), c.password.as_deref());
        assert_eq!(f.get("client", "socket"), Some("/s"));
        c.password = Some("nul\0".into());
        let e = c.client_option_file_text().unwrap_err();
        assert!(
            e.message.contains("password") && e.message.contains("NUL"),
            "{e}"
        );
    }
}
