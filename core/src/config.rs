//! Configuration: MySQL option files, connection options and `[dbjobs]` settings.
//!
//! dbjobs reads the same option file format as the MariaDB tools, so an operator keeps one
//! file (e.g. `/etc/mysql/dbjobs.cnf`, mode 0600) with the credentials in `[client]` and the
//! job settings in `[dbjobs]`. The password is never accepted as a flag: it would be visible in
//! `ps` to every user of the node, which is exactly what the bash agent did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The socket MariaDB uses on Debian when nothing else is configured.
pub const DEFAULT_SOCKET: &str = "/run/mysqld/mysqld.sock";

/// A parsed option file: section name -> (key -> value). Keys are normalised to use `_`
/// (MariaDB treats `-` and `_` alike); a key given without `=` has the value `""`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OptionFile {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl OptionFile {
    /// Read and parse `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(format!("cannot read option file {}: {e}", path.display()))
                .help("check the path given to --defaults-file and that this user may read it")
        })?;
        Self::parse(&text).map_err(|e| Error::new(format!("{}: {}", path.display(), e.message)))
    }

    /// Parse option-file text: `[section]`, `key = value`, `key`, `#`/`;` comments, values in
    /// single or double quotes with backslash escapes. `!include` lines are refused, because
    /// silently ignoring them would connect with the wrong credentials.
    pub fn parse(text: &str) -> Result<Self> {
        let mut file = OptionFile::default();
        let mut section: Option<String> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if line.starts_with('!') {
                return Err(Error::new(format!(
                    "line {}: {line:?} is not supported by dbjobs",
                    n + 1
                ))
                .help(
                    "put the settings dbjobs needs directly into the file given to --defaults-file",
                ));
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest.strip_suffix(']').ok_or_else(|| {
                    Error::new(format!(
                        "line {}: unterminated section header {line:?}",
                        n + 1
                    ))
                })?;
                section = Some(name.trim().to_ascii_lowercase());
                file.sections
                    .entry(name.trim().to_ascii_lowercase())
                    .or_default();
                continue;
            }
            let Some(section) = &section else {
                return Err(Error::new(format!(
                    "line {}: {line:?} comes before any [section]",
                    n + 1
                )));
            };
            let (key, value) = match line.split_once('=') {
                Some((k, v)) => (
                    k.trim(),
                    parse_value(v.trim())
                        .map_err(|e| Error::new(format!("line {}: {e}", n + 1)))?,
                ),
                None => (line, String::new()),
            };
            file.sections
                .entry(section.clone())
                .or_default()
                .insert(normalize_key(key), value);
        }
        Ok(file)
    }

    /// The value of `key` in `section`, if set.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|s| s.get(&normalize_key(key)))
            .map(String::as_str)
    }

    /// Every key and value of `section`.
    pub fn section(&self, section: &str) -> impl Iterator<Item = (&str, &str)> {
        self.sections
            .get(section)
            .into_iter()
            .flat_map(|s| s.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// `innodb-buffer-pool` and `innodb_buffer_pool` are the same key.
pub fn normalize_key(key: &str) -> String {
    key.trim().replace('-', "_").to_ascii_lowercase()
}

/// Strip quotes and resolve escapes of an option-file value; cut a trailing ` # comment` of an
/// unquoted value.
fn parse_value(v: &str) -> std::result::Result<String, String> {
    let quote = match v.chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => {
            let v = match v.find(" #") {
                Some(i) => &v[..i],
                None => v,
            };
            return Ok(v.trim().to_string());
        }
    };
    let mut out = String::new();
    let mut chars = v[1..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b') => out.push('\u{8}'),
                Some('s') => out.push(' '),
                Some(other) => out.push(other),
                None => return Err("value ends with a backslash".into()),
            },
            c if c == quote => return Ok(out),
            c => out.push(c),
        }
    }
    Err(format!("unterminated quoted value {v:?}"))
}

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
    /// Merge: command-line flags win over the option file's `[client]` (and `[dbjobs]`, which
    /// may hold connection keys too), which win over `MYSQL_PWD` for the password.
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
        Ok(ConnectionOptions {
            socket: flags
                .socket
                .clone()
                .or_else(|| from_file("socket").map(PathBuf::from)),
            host: flags.host.clone().or_else(|| from_file("host")),
            port,
            user: flags.user.clone().or_else(|| from_file("user")),
            password: from_file("password").or_else(|| std::env::var("MYSQL_PWD").ok()),
        })
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

    /// The text of a `[client]` option file with these credentials, for child tools. Values
    /// are double-quoted with `\` and `"` escaped, so any password survives.
    pub fn client_option_file_text(&self) -> String {
        let mut out = String::from(
            "# written by dbjobs for the tools it starts; removed when it exits\n[client]\n",
        );
        let mut put = |k: &str, v: &str| {
            out.push_str(&format!(
                "{k}=\"{}\"\n",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            ));
        };
        put("user", self.user.as_deref().unwrap_or("root"));
        if let Some(p) = &self.password {
            put("password", p);
        }
        if self.uses_socket() {
            put("socket", &self.socket_path().display().to_string());
        } else {
            put("host", self.host.as_deref().unwrap_or("localhost"));
            put("port", &self.port.unwrap_or(3306).to_string());
            put("protocol", "tcp");
        }
        out
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

/// Job settings: `[dbjobs]` of the option file, overridden by `--set name=value`. Names are
/// normalised like option-file keys. Connection keys are not settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

/// Keys of `[dbjobs]` that configure the connection rather than jobs; never shown to plugins.
const CONNECTION_KEYS: [&str; 5] = ["socket", "host", "port", "user", "password"];

impl Settings {
    /// Build from the option file and the `--set` pairs.
    pub fn resolve(file: &OptionFile, overrides: &[String]) -> Result<Self> {
        let mut values = BTreeMap::new();
        for (k, v) in file.section("dbjobs") {
            if !CONNECTION_KEYS.contains(&k) {
                values.insert(k.to_string(), v.to_string());
            }
        }
        for pair in overrides {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::new(format!("--set {pair:?} is not of the form name=value"))
                    .help("write e.g. --set example_log=/tmp/example.log")
            })?;
            values.insert(normalize_key(k), v.to_string());
        }
        Ok(Settings { values })
    }

    /// The value of a setting.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(&normalize_key(name)).map(String::as_str)
    }

    /// The host's own settings, typed; a bad value is a configuration error naming it.
    pub fn host(&self) -> Result<crate::settings::HostSettings> {
        crate::settings::HostSettings::read(self).map_err(|e| {
            let mut err = Error::new(e.message);
            err.help = e.hint;
            err
        })
    }

    /// All settings, for `dbjobs plugins --json` and debugging.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
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
# comment
[client]
user = repman
password = "p\"a ss#word"
socket=/tmp/my.sock
[dbjobs]
example-log = /tmp/x.log   # trailing comment
receive_bind='0.0.0.0'
flag
"#;

    #[test]
    fn parses_sections_quotes_and_keys() {
        let f = OptionFile::parse(SAMPLE).unwrap();
        assert_eq!(f.get("client", "user"), Some("repman"));
        assert_eq!(f.get("client", "password"), Some("p\"a ss#word"));
        assert_eq!(f.get("dbjobs", "example_log"), Some("/tmp/x.log"));
        assert_eq!(f.get("dbjobs", "receive-bind"), Some("0.0.0.0"));
        assert_eq!(f.get("dbjobs", "flag"), Some(""));
    }

    #[test]
    fn refuses_includes_and_orphan_keys() {
        assert!(OptionFile::parse("!include /etc/x.cnf").is_err());
        assert!(OptionFile::parse("user=x").is_err());
        assert!(OptionFile::parse("[client]\npassword='open").is_err());
    }

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
        assert_eq!(s.get("receive_bind"), Some("0.0.0.0"));
        assert!(Settings::resolve(&f, &["novalue".into()]).is_err());
    }

    #[test]
    fn client_file_round_trips_any_password() {
        let c = ConnectionOptions {
            socket: Some("/s".into()),
            host: None,
            port: None,
            user: Some("u".into()),
            password: Some(r#"a"b\c d"#.into()),
        };
        let f = OptionFile::parse(&c.client_option_file_text()).unwrap();
        assert_eq!(f.get("client", "password"), Some(r#"a"b\c d"#));
        assert_eq!(f.get("client", "socket"), Some("/s"));
    }
}
