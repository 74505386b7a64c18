//! The calls dbjobs makes to replication-manager's API (PROTOCOL.md §6.2, §6.3).
//!
//! One [`RepmanClient`] per process: a ureq agent over rustls with the certificate rule of
//! [`super::tls`], the body cipher, and the JWT of the last `secret-login`. Every call sends
//! the encrypted identity (`{server, secret}`) and, once logged in, `Authorization: Bearer`;
//! an HTTP 401 logs in again and repeats the call once. Errors are [`JobError`]s that say what
//! replication-manager answered and what to do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dbjobs_sdk::JobError;
use serde_json::{json, Value};

use super::crypto::BodyCipher;
use super::tls::{client_config, RepmanVerifier};
use crate::error::{Error, Result};
use crate::settings::HostSettings;

/// replication-manager's API port when `repman_api` names none.
pub const DEFAULT_API_PORT: u16 = 10005;

/// How long a call may take to connect, and in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where replication-manager is and who this server is to it, from the settings.
#[derive(Clone)]
pub struct RepmanConfig {
    /// `host:port` of the API.
    pub api: String,
    /// The API host alone (where streaming tasks connect to `RECEIVER_PORT`).
    pub api_host: String,
    /// `repman_cluster`.
    pub cluster: String,
    /// `repman_server`'s host.
    pub server_host: String,
    /// `repman_server`'s port.
    pub server_port: u16,
    /// The secret (`repman_password`, else the `[client]` password). Never logged.
    pub secret: String,
}

impl std::fmt::Debug for RepmanConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RepmanConfig {{ api: {}, cluster: {}, server: {}:{} }}",
            self.api, self.cluster, self.server_host, self.server_port
        )
    }
}

impl RepmanConfig {
    /// The configuration when `repman_api` is set (`None` when it is empty). A missing
    /// cluster or server name, a malformed address or no secret at all is a configuration
    /// error naming the setting.
    pub fn from_settings(s: &HostSettings, client_password: Option<&str>) -> Result<Option<Self>> {
        let api = s.repman_api.trim();
        if api.is_empty() {
            return Ok(None);
        }
        let (api_host, api_port) = parse_api(api)?;
        let need = |name: &str, v: &str| -> Result<String> {
            if v.trim().is_empty() {
                return Err(Error::new(format!("repman_api is set but {name} is empty"))
                    .help(format!("set {name} in [dbjobs] (see `dbjobs settings`)")));
            }
            Ok(v.trim().to_string())
        };
        let cluster = need("repman_cluster", &s.repman_cluster)?;
        let server = need("repman_server", &s.repman_server)?;
        let (server_host, server_port) = split_host_port(&server).ok_or_else(|| {
            Error::new(format!("repman_server={server:?} is not host:port"))
                .help("set repman_server to this server exactly as replication-manager monitors it, e.g. db1:3306")
        })?;
        let secret = match (s.repman_password.as_str(), client_password) {
            (p, _) if !p.is_empty() => p.to_string(),
            (_, Some(p)) if !p.is_empty() => p.to_string(),
            _ => {
                return Err(Error::new(
                    "repman_api is set but there is no secret: repman_password is empty and [client] has no password",
                )
                .help("set repman_password in [dbjobs] to the password replication-manager holds for this server"))
            }
        };
        Ok(Some(RepmanConfig {
            api: format!("{}:{api_port}", bracket(&api_host)),
            api_host,
            cluster,
            server_host,
            server_port,
            secret,
        }))
    }

    /// `host:port`, the name replication-manager knows this server by.
    pub fn server(&self) -> String {
        format!("{}:{}", self.server_host, self.server_port)
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `https://HOST[:PORT][/]` into host and port.
fn parse_api(api: &str) -> Result<(String, u16)> {
    let bad = || {
        Error::new(format!("repman_api={api:?} is not https://HOST:PORT"))
            .help("set repman_api to replication-manager's API, e.g. https://repman:10005")
    };
    let rest = api.strip_prefix("https://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(bad());
    }
    match split_host_port(rest) {
        Some(hp) => Ok(hp),
        None if !rest.contains(':') || rest.starts_with('[') && rest.ends_with(']') => {
            Ok((rest.trim_matches(['[', ']']).to_string(), DEFAULT_API_PORT))
        }
        None => Err(bad()),
    }
}

/// `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.trim_matches(['[', ']']);
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// What a `receive-task` answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// `RECEIVER_PORT=n`: connect to the API host on port n.
    Port(u16),
    /// `NO_RECEIVER_NEEDED`.
    NotNeeded,
}

/// A live link to replication-manager's API.
pub struct RepmanClient {
    config: RepmanConfig,
    agent: ureq::Agent,
    cipher: BodyCipher,
    verifier: Arc<RepmanVerifier>,
    token: Mutex<Option<String>>,
}

/// An HTTP answer: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, trimmed.
    pub body: String,
}

impl RepmanClient {
    /// A client for `config`, trusting replication-manager's certificate as the settings say
    /// (pins kept in `settings.state_dir`). Nothing is sent yet.
    pub fn new(config: RepmanConfig, settings: &HostSettings) -> Result<Self> {
        let verifier = Arc::new(RepmanVerifier::from_settings(
            &settings.repman_ca_file,
            &settings.repman_cert_sha256,
            &settings.state_dir,
            &config.api,
        )?);
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(client_config(verifier.clone())?))
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .build();
        Ok(RepmanClient {
            cipher: BodyCipher::new(&config.secret),
            config,
            agent,
            verifier,
            token: Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RepmanConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!(
            "https://{}/api/clusters/{}/servers/{}/{}/{path}",
            self.config.api,
            enc(&self.config.cluster),
            enc(&self.config.server_host),
            self.config.server_port
        )
    }

    /// The encrypted identity, with `extra` fields added to the plaintext.
    fn identity(&self, extra: Value) -> String {
        let mut plain = json!({"server": self.config.server(), "secret": self.config.secret});
        if let (Value::Object(p), Value::Object(e)) = (&mut plain, extra) {
            p.extend(e);
        }
        self.cipher.body(&plain)
    }

    /// POST `body` to `path` once, with the token if there is one.
    fn post_once(&self, path: &str, body: &str) -> std::result::Result<Answer, JobError> {
        let mut req = self
            .agent
            .post(&self.url(path))
            .set("Content-Type", "application/json")
            .set("Accept", "application/json");
        if let Some(t) = self
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
        {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let response = match req.send_string(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(self.transport_error(path, &t)),
        };
        let status = response.status();
        let body = response.into_string().map_err(|e| {
            JobError::network(format!(
                "reading replication-manager's answer to {path}: {e}"
            ))
        })?;
        Ok(Answer {
            status,
            body: body.trim().to_string(),
        })
    }

    fn transport_error(&self, path: &str, t: &ureq::Transport) -> JobError {
        if let Some(why) = self.verifier.take_refusal() {
            return JobError::refused(why);
        }
        JobError::network(format!(
            "cannot reach replication-manager at https://{} ({path}): {t}",
            self.config.api
        ))
        .with_hint("check repman_api and that replication-manager's API is up")
    }

    /// POST the identity (plus `extra`) to `path`; an HTTP 401 logs in again and repeats.
    pub fn call(&self, path: &str, extra: Value) -> std::result::Result<Answer, JobError> {
        let body = self.identity(extra);
        let answer = self.post_once(path, &body)?;
        if answer.status != 401 || path == "secret-login" {
            return Ok(answer);
        }
        self.login()?;
        self.post_once(path, &body)
    }

    /// `secret-login`: keep the JWT for the calls that follow.
    pub fn login(&self) -> std::result::Result<(), JobError> {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let a = self.post_once("secret-login", &self.identity(json!({})))?;
        match a.status {
            200 => {
                let token = serde_json::from_str::<Value>(&a.body)
                    .ok()
                    .and_then(|v| v.get("token")?.as_str().map(str::to_string))
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| bad_answer("secret-login", &a, "a JSON object with a token"))?;
                *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token);
                Ok(())
            }
            // replication-manager decrypts the login with the password it holds: a different
            // secret is refused (401) or cannot even be decrypted (500).
            401 | 403 | 500 => Err(JobError::refused(format!(
                "replication-manager refused the secret of {} in cluster {} (HTTP {}: {})",
                self.config.server(),
                self.config.cluster,
                a.status,
                shorten(&a.body)
            ))
            .with_hint("set repman_password in [dbjobs] to the password replication-manager holds for this server (its db-servers-credential); without it the [client] password is used")),
            _ => Err(bad_answer("secret-login", &a, "HTTP 200 with a token")),
        }
    }

    /// Log in unless a token is held.
    pub fn ensure_login(&self) -> std::result::Result<(), JobError> {
        if self
            .token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return Ok(());
        }
        self.login()
    }

    /// `write-log/{task}`: up to 5 lines at `level` (ERROR, WARN, INFO, DEBUG).
    pub fn write_log(
        &self,
        task: &str,
        level: &str,
        lines: &[&str],
    ) -> std::result::Result<(), JobError> {
        let a = self.call(
            &format!("write-log/{}", enc(task)),
            json!({"log": lines.join("\n"), "level": level}),
        )?;
        match a.status {
            200 => Ok(()),
            _ => Err(bad_answer("write-log", &a, "HTTP 200")),
        }
    }

    /// `needs/{task}`: whether replication-manager has a job of `task` for this server (an
    /// answer of `true` consumes it).
    pub fn needs(&self, task: &str) -> std::result::Result<bool, JobError> {
        let a = self.call(&format!("needs/{}", enc(task)), json!({}))?;
        match (a.status, a.body.as_str()) {
            (200, "true") => Ok(true),
            (500, "false") | (200, "false") => Ok(false),
            _ => Err(bad_answer(&format!("needs/{task}"), &a, "true or false")),
        }
    }

    /// `actions/receive-task/{task}`: where a streaming task sends its data.
    pub fn receive_task(&self, task: &str) -> std::result::Result<Receiver, JobError> {
        let path = format!("actions/receive-task/{}", enc(task));
        let a = self.call(&path, json!({}))?;
        if a.status == 200 {
            if a.body == "NO_RECEIVER_NEEDED" {
                return Ok(Receiver::NotNeeded);
            }
            if let Some(port) = a
                .body
                .strip_prefix("RECEIVER_PORT=")
                .and_then(|p| p.trim().parse::<u16>().ok())
                .filter(|p| *p != 0)
            {
                return Ok(Receiver::Port(port));
            }
        }
        Err(bad_answer(
            &path,
            &a,
            "RECEIVER_PORT=<port> or NO_RECEIVER_NEEDED",
        ))
    }

    /// `actions/job-state/{task}/{state}`; `extra` goes into the encrypted body (the
    /// `restore` object of a finished reseed).
    pub fn job_state(
        &self,
        task: &str,
        state: &str,
        extra: Value,
    ) -> std::result::Result<(), JobError> {
        let path = format!("actions/job-state/{}/{state}", enc(task));
        let a = self.call(&path, extra)?;
        match a.status {
            200 => Ok(()),
            _ => Err(bad_answer(&path, &a, "HTTP 200 ok")),
        }
    }

    /// `actions/receive-jobs-check`: the port to send the kept script to.
    pub fn jobs_check_receiver(&self) -> std::result::Result<u16, JobError> {
        match self.receive_named("actions/receive-jobs-check")? {
            Receiver::Port(p) => Ok(p),
            Receiver::NotNeeded => Err(JobError::bad_input(
                "replication-manager answered NO_RECEIVER_NEEDED to receive-jobs-check",
            )),
        }
    }

    fn receive_named(&self, path: &str) -> std::result::Result<Receiver, JobError> {
        let a = self.call(path, json!({}))?;
        match a
            .body
            .strip_prefix("RECEIVER_PORT=")
            .and_then(|p| p.parse().ok())
        {
            Some(p) if a.status == 200 && p != 0 => Ok(Receiver::Port(p)),
            _ => Err(bad_answer(path, &a, "RECEIVER_PORT=<port>")),
        }
    }

    /// `actions/send-jobs-upgrade`: ask replication-manager to connect and send its script.
    pub fn send_jobs_upgrade(&self) -> std::result::Result<(), JobError> {
        let a = self.call("actions/send-jobs-upgrade", json!({}))?;
        match a.status {
            200 => Ok(()),
            _ => Err(bad_answer("actions/send-jobs-upgrade", &a, "HTTP 200")),
        }
    }
}

/// A path segment: replication-manager's names are plain, but a name must not change the path.
fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn shorten(body: &str) -> String {
    let one_line = body.replace(['\n', '\r'], " ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

/// An answer that is not what the contract says.
fn bad_answer(call: &str, a: &Answer, expected: &str) -> JobError {
    JobError::bad_input(format!(
        "replication-manager answered {call} with HTTP {} {:?}, expected {expected}",
        a.status,
        shorten(&a.body)
    ))
    .with_hint("check that repman_cluster and repman_server name this server as replication-manager knows it, and replication-manager's log")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(api: &str, cluster: &str, server: &str, password: &str) -> HostSettings {
        let values = [
            ("repman_api", api),
            ("repman_cluster", cluster),
            ("repman_server", server),
            ("repman_password", password),
        ];
        HostSettings::read(&|n: &str| {
            values
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn reads_the_address_and_the_secret() {
        let c = RepmanConfig::from_settings(
            &settings("https://rm:10006/", "c1", "db1:3306", ""),
            Some("pw"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api, "rm:10006");
        assert_eq!(c.server(), "db1:3306");
        assert_eq!(c.secret, "pw");
        let c = RepmanConfig::from_settings(
            &settings("https://rm", "c1", "db1:3306", "own"),
            Some("pw"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api, "rm:10005");
        assert_eq!(c.secret, "own");
        assert!(!format!("{c:?}").contains("own"));
    }

    #[test]
    fn refuses_incomplete_settings() {
        assert!(RepmanConfig::from_settings(&settings("", "", "", ""), None)
            .unwrap()
            .is_none());
        for (api, cluster, server) in [
            ("http://rm:1", "c", "db:1"),
            ("https://rm:1/x", "c", "db:1"),
            ("https://rm:1", "", "db:1"),
            ("https://rm:1", "c", "db"),
        ] {
            assert!(
                RepmanConfig::from_settings(&settings(api, cluster, server, "p"), None).is_err()
            );
        }
        let e = RepmanConfig::from_settings(&settings("https://rm", "c", "db:1", ""), None)
            .unwrap_err();
        assert!(e.message.contains("secret"), "{e}");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(enc("db-1.x"), "db-1.x");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }
}
