//! A stand-in for replication-manager's HTTPS API (PROTOCOL.md §6), for the tests of
//! `write-log` and API mode.
//!
//! replication-manager itself cannot be built or run here (a Go server with a cluster of its
//! own to monitor), so the tests talk to this stand-in, written from the contract and from
//! replication-manager's source where the contract leaves something open. It is real where
//! the agent could get it wrong:
//! - real HTTPS on loopback (rustls), with a self-signed certificate made by the real
//!   `openssl` CLI, which [`RepmanStandin::rotate_certificate`] replaces;
//! - bodies decrypted exactly as replication-manager does: `openssl aes-256-cbc -d -a -nosalt
//!   -K <hex> -iv <hex>` (the CLI without `-A`, so a long single base64 line is silently
//!   truncated, the trap the agent must avoid), then the text up to the last `}` parsed as
//!   JSON;
//! - the answers of §6.2 and §6.3: `secret-login` 200 `{"token":..}` or 401 `Invalid secret`,
//!   `write-log` 200 `{"data":"Message logged","success":true}`, 400 for an unknown task, 500
//!   for a body it cannot decrypt; `needs` 200 `true` (consumed) or 500 `false`;
//!   `receive-task` `RECEIVER_PORT=n` with a real TCP listener behind it, or
//!   `NO_RECEIVER_NEEDED`; `job-state` 200 `ok` or 400 for an unknown state;
//! - for an inbound job (reseed, flashback) it connects to the node's receive port once the
//!   node reports `waiting` and sends the stream (as [`crate::sender`] does for the table);
//! - `receive-jobs-check` and `send-jobs-upgrade` with real TCP both ways.
//!
//! The token check is on every call but `secret-login` (the newest server's rule), and a test
//! can make the next answer of a call anything it wants ([`RepmanStandin::answer_next`]) to
//! play a broken or hostile server.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use md5::Md5;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The tasks replication-manager accepts log lines for (its `write-log` list, §6.2).
pub const KNOWN_TASKS: &[&str] = &[
    "auditlog",
    "errorlog",
    "sqlerrorlog",
    "slowquery",
    "optimize",
    "mariabackup",
    "xtrabackup",
    "reseedxtrabackup",
    "reseedmariabackup",
    "flashbackxtrabackup",
    "flashbackmariabackup",
    "reseedmysqldump",
    "flashbackmysqldump",
    "zfssnapback",
    "stop",
    "restart",
    "start",
    "main",
    "jobs-check",
    "jobs-upgrade",
    "print-defaults",
];

/// Tasks whose data the node streams to replication-manager (`receive-task` gives a port).
const STREAMING_TASKS: &[&str] = &[
    "mariabackup",
    "xtrabackup",
    "errorlog",
    "slowquery",
    "auditlog",
    "sqlerrorlog",
];

/// One `write-log` call as replication-manager decrypted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCall {
    /// The task in the path.
    pub task: String,
    /// `server` of the body.
    pub server: String,
    /// `level` of the body.
    pub level: String,
    /// `log` of the body, split into lines (replication-manager splits on newlines).
    pub lines: Vec<String>,
}

/// One `job-state` report.
#[derive(Clone, Debug, PartialEq)]
pub struct StateReport {
    /// The task.
    pub task: String,
    /// `processing`, `waiting`, `done` or `error`.
    pub state: String,
    /// The decrypted body (identity, and `restore` for a finished reseed).
    pub body: Value,
}

/// What a stream receiver got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    /// The task it was opened for.
    pub task: String,
    /// The bytes received (the file holding them).
    pub file: PathBuf,
    /// How many.
    pub bytes: u64,
}

/// The mutable state of the stand-in, shared with its connection threads.
#[derive(Default)]
struct State {
    tokens: Vec<String>,
    needs: BTreeMap<String, u32>,
    logs: Vec<LogCall>,
    states: Vec<StateReport>,
    streams: Vec<Stream>,
    /// Calls answered, by path tail (`needs/optimize`, `write-log/mariabackup`, ...), with status.
    calls: Vec<(String, u16)>,
    overrides: HashMap<String, VecDeque<(u16, String)>>,
    /// For inbound tasks: what to send once the node reports waiting, and to which port.
    inbound: HashMap<String, (Vec<u8>, u16)>,
    /// The script `send-jobs-upgrade` sends, and the node's receive port.
    upgrade: Option<(Vec<u8>, u16)>,
    /// The last script received by `receive-jobs-check`.
    checked_script: Option<Vec<u8>>,
    /// Whether write-log answers at all (false: the connection is closed unanswered).
    write_log_down: bool,
    /// Tasks accepted by write-log beyond replication-manager's own list.
    extra_tasks: Vec<String>,
    senders: Vec<JoinHandle<()>>,
}

/// The stand-in server. Dropping it stops it.
pub struct RepmanStandin {
    port: u16,
    dir: tempfile::TempDir,
    secret: String,
    cluster: String,
    server: String,
    tls: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    cert_serial: u32,
}

impl RepmanStandin {
    /// Start on `127.0.0.1:<free port>` for the server `server` (`host:port`, as
    /// replication-manager monitors it) of cluster `cluster`, whose secret is `secret`.
    ///
    /// # Panics
    /// When `openssl` is missing (install the openssl package) or nothing can be bound.
    pub fn start(cluster: &str, server: &str, secret: &str) -> RepmanStandin {
        let dir = tempfile::tempdir().expect("a temporary directory for the stand-in");
        let config = server_config(dir.path(), 0);
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the stand-in");
        let port = listener.local_addr().expect("bound address").port();
        let tls = Arc::new(Mutex::new(Arc::new(config)));
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let ctx = Context {
            secret: secret.to_string(),
            cluster: cluster.to_string(),
            server: server.to_string(),
            dir: dir.path().to_path_buf(),
            state: state.clone(),
        };
        let thread = {
            let (tls, stop) = (tls.clone(), stop.clone());
            std::thread::spawn(move || accept_loop(listener, tls, stop, Arc::new(ctx)))
        };
        RepmanStandin {
            port,
            dir,
            secret: secret.to_string(),
            cluster: cluster.to_string(),
            server: server.to_string(),
            tls,
            state,
            stop,
            thread: Some(thread),
            cert_serial: 0,
        }
    }

    /// `https://127.0.0.1:<port>`, the value of the setting `repman_api`.
    pub fn api(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The settings dbjobs needs to talk to this stand-in (`repman_api`, `repman_cluster`,
    /// `repman_server`, `repman_password`).
    pub fn settings(&self) -> Vec<(String, String)> {
        vec![
            ("repman_api".into(), self.api()),
            ("repman_cluster".into(), self.cluster.clone()),
            ("repman_server".into(), self.server.clone()),
            ("repman_password".into(), self.secret.clone()),
        ]
    }

    /// The PEM file of the certificate served now.
    pub fn cert_file(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("cert{}.crt", self.cert_serial))
    }

    /// Serve a new self-signed certificate from now on (replication-manager reinstalled, or
    /// a man in the middle).
    pub fn rotate_certificate(&mut self) {
        self.cert_serial += 1;
        let config = server_config(self.dir.path(), self.cert_serial);
        *self.tls.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a job of `task`: the next `needs/{task}` answers `true`.
    pub fn need(&self, task: &str) {
        *self.lock().needs.entry(task.to_string()).or_default() += 1;
    }

    /// Queue an inbound job of `task` whose stream is `bytes`, sent to `127.0.0.1:node_port`
    /// once the node reports `waiting`.
    pub fn need_inbound(&self, task: &str, bytes: Vec<u8>, node_port: u16) {
        self.lock()
            .inbound
            .insert(task.to_string(), (bytes, node_port));
        self.need(task);
    }

    /// Queue `jobs-upgrade`: `send-jobs-upgrade` then connects to `127.0.0.1:node_port` and
    /// sends `script`.
    pub fn need_upgrade(&self, script: Vec<u8>, node_port: u16) {
        self.lock().upgrade = Some((script, node_port));
        self.need("jobs-upgrade");
    }

    /// Answer the next call whose path ends with `path_tail` (e.g. `needs/optimize`,
    /// `secret-login`) with `status` and `body`, whatever it asked.
    pub fn answer_next(&self, path_tail: &str, status: u16, body: &str) {
        self.lock()
            .overrides
            .entry(path_tail.to_string())
            .or_default()
            .push_back((status, body.to_string()));
    }

    /// Accept `write-log` lines for `task` too (a test plugin's task, e.g. `example`), which
    /// replication-manager itself would refuse with 400.
    pub fn know_task(&self, task: &str) {
        self.lock().extra_tasks.push(task.to_string());
    }

    /// Make `write-log` close every connection unanswered (the endpoint is down).
    pub fn write_log_down(&self, down: bool) {
        self.lock().write_log_down = down;
    }

    /// Forget every token handed out: the next call with one gets 401.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Every `write-log` call received, in order.
    pub fn logs(&self) -> Vec<LogCall> {
        self.lock().logs.clone()
    }

    /// Every line received by `write-log` for `task`, in order.
    pub fn log_lines(&self, task: &str) -> Vec<String> {
        self.lock()
            .logs
            .iter()
            .filter(|c| c.task == task)
            .flat_map(|c| c.lines.clone())
            .collect()
    }

    /// Every `job-state` report, in order.
    pub fn states(&self) -> Vec<StateReport> {
        self.lock().states.clone()
    }

    /// The states reported for `task`, in order.
    pub fn states_of(&self, task: &str) -> Vec<String> {
        self.lock()
            .states
            .iter()
            .filter(|s| s.task == task)
            .map(|s| s.state.clone())
            .collect()
    }

    /// Every call answered: path tail and status.
    pub fn calls(&self) -> Vec<(String, u16)> {
        self.lock().calls.clone()
    }

    /// The streams received so far (complete ones: the sender closed).
    pub fn streams(&self) -> Vec<Stream> {
        self.lock().streams.clone()
    }

    /// The script the node sent back on `jobs-check`.
    pub fn checked_script(&self) -> Option<Vec<u8>> {
        self.lock().checked_script.clone()
    }

    /// Wait up to `timeout` for the senders started for inbound jobs and upgrades to finish.
    pub fn join_senders(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.lock().senders.iter().all(|h| h.is_finished());
            if done || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RepmanStandin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Make a self-signed certificate for 127.0.0.1 with the real openssl CLI, and the server
/// configuration serving it.
fn server_config(dir: &Path, serial: u32) -> rustls::ServerConfig {
    let (cert, key) = crate::fixtures::self_signed_certificate(
        dir,
        &format!("cert{serial}"),
        "replication-manager-standin",
    );
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .expect("read the certificate")
        .collect::<Result<_, _>>()
        .expect("parse the certificate");
    let key = PrivateKeyDer::from_pem_file(&key).expect("parse the key");
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a usable certificate")
}

/// What the connection threads need.
struct Context {
    secret: String,
    cluster: String,
    server: String,
    dir: PathBuf,
    state: Arc<Mutex<State>>,
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn accept_loop(
    listener: TcpListener,
    tls: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    stop: Arc<AtomicBool>,
    ctx: Arc<Context>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(tcp) = conn else { continue };
        let config = tls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(30)));
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            serve_one(&mut tls, &ctx);
        });
    }
}

/// One HTTP/1.1 request, one answer, then the connection is closed.
fn serve_one(stream: &mut impl ReadWrite, ctx: &Context) {
    let Some((path, bearer, body)) = read_request(stream) else {
        return;
    };
    let Some(tail) = route(&path, ctx) else {
        respond(stream, 404, "Not found");
        return;
    };
    if tail.starts_with("write-log/") && ctx.lock().write_log_down {
        return; // closed unanswered
    }
    let overridden = ctx
        .lock()
        .overrides
        .get_mut(&tail)
        .and_then(VecDeque::pop_front);
    let (status, answer) = match overridden {
        Some(a) => a,
        None => handle(&tail, bearer.as_deref(), &body, ctx),
    };
    ctx.lock().calls.push((tail, status));
    respond(stream, status, &answer);
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Request line, the bearer token and the body (by Content-Length).
fn read_request(stream: &mut impl ReadWrite) -> Option<(String, Option<String>, Vec<u8>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let (mut length, mut bearer) = (0usize, None);
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => bearer = value.trim().strip_prefix("Bearer ").map(str::to_string),
            _ => {}
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, bearer, body))
}

fn respond(stream: &mut impl ReadWrite, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
}

/// The part after `/api/clusters/{cluster}/servers/{host}/{port}/`, when cluster and server
/// are this stand-in's.
fn route(path: &str, ctx: &Context) -> Option<String> {
    let (host, port) = ctx.server.rsplit_once(':')?;
    let prefix = format!("/api/clusters/{}/servers/{host}/{port}/", ctx.cluster);
    path.strip_prefix(&prefix).map(str::to_string)
}

/// The answer replication-manager gives to `tail`.
fn handle(tail: &str, bearer: Option<&str>, body: &[u8], ctx: &Context) -> (u16, String) {
    let Some(plain) = decrypt_body(body, &ctx.secret) else {
        return (500, "Error decoding data".into());
    };
    let secret_ok =
        plain["secret"] == ctx.secret.as_str() && plain["server"] == ctx.server.as_str();
    if tail == "secret-login" {
        if !secret_ok {
            return (401, "Invalid secret".into());
        }
        let token = format!("jwt-{}", ctx.lock().tokens.len() + 1);
        ctx.lock().tokens.push(token.clone());
        return (200, json!({ "token": token }).to_string());
    }
    let token_ok = bearer.is_some_and(|b| ctx.lock().tokens.iter().any(|t| t == b));
    if !token_ok {
        return (401, "Invalid token".into());
    }
    let parts: Vec<&str> = tail.split('/').collect();
    match parts.as_slice() {
        ["write-log", task] => write_log(task, &plain, ctx),
        _ if !secret_ok => (500, "500 -No valid server!".into()),
        ["needs", task] => needs(task, ctx),
        ["actions", "receive-task", task] => receive_task(task, ctx),
        ["actions", "job-state", task, state] => job_state(task, state, plain, ctx),
        ["actions", "receive-jobs-check"] => {
            let port = receiver(ctx, "jobs-check", true);
            (200, format!("RECEIVER_PORT={port}"))
        }
        ["actions", "send-jobs-upgrade"] => send_upgrade(ctx),
        _ => (404, "Not found".into()),
    }
}

fn write_log(task: &str, plain: &Value, ctx: &Context) -> (u16, String) {
    if !KNOWN_TASKS.contains(&task) && !ctx.lock().extra_tasks.iter().any(|t| t == task) {
        return (400, format!("Unknown task {task}"));
    }
    let text = plain["log"].as_str().unwrap_or_default();
    // replication-manager also turns a literal backslash-n into a line break.
    let lines = text
        .replace("\\n", "\n")
        .split('\n')
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    ctx.lock().logs.push(LogCall {
        task: task.to_string(),
        server: plain["server"].as_str().unwrap_or_default().to_string(),
        level: plain["level"].as_str().unwrap_or_default().to_string(),
        lines,
    });
    (200, r#"{"data":"Message logged","success":true}"#.into())
}

fn needs(task: &str, ctx: &Context) -> (u16, String) {
    let mut st = ctx.lock();
    match st.needs.get_mut(task) {
        Some(n) if *n > 0 => {
            *n -= 1;
            (200, "true".into())
        }
        _ => (500, "false".into()),
    }
}

fn receive_task(task: &str, ctx: &Context) -> (u16, String) {
    if !STREAMING_TASKS.contains(&task) {
        return (200, "NO_RECEIVER_NEEDED".into());
    }
    let port = receiver(ctx, task, false);
    (200, format!("RECEIVER_PORT={port}"))
}

fn job_state(task: &str, state: &str, body: Value, ctx: &Context) -> (u16, String) {
    if !["processing", "waiting", "done", "error"].contains(&state) {
        return (400, format!("Unknown state {state}"));
    }
    let mut st = ctx.lock();
    st.states.push(StateReport {
        task: task.to_string(),
        state: state.to_string(),
        body,
    });
    if state == "waiting" {
        if let Some((bytes, port)) = st.inbound.remove(task) {
            st.senders
                .push(std::thread::spawn(move || send_stream(port, &bytes)));
        }
    }
    (200, "ok".into())
}

fn send_upgrade(ctx: &Context) -> (u16, String) {
    let mut st = ctx.lock();
    let Some((script, port)) = st.upgrade.take() else {
        return (500, "No upgrade".into());
    };
    st.senders.push(std::thread::spawn(move || {
        // The node listens before it asks; give it a moment to be sure it accepts.
        send_stream(port, &script)
    }));
    (200, "ok".into())
}

/// Connect to the node's receive port from 127.0.0.1 (retrying for a few seconds while it
/// binds) and send `bytes`, then close.
fn send_stream(port: u16, bytes: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match crate::sender::send_to(port, IpAddr::from([127, 0, 0, 1]), bytes) {
            Ok(_) => return,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("the stand-in could not send to 127.0.0.1:{port}: {e}"),
        }
    }
}

/// Open a one-connection listener for `task` on 127.0.0.1; what arrives is recorded as a
/// [`Stream`] (or, for `jobs-check`, as the checked script).
fn receiver(ctx: &Context, task: &str, script: bool) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind a stand-in receiver");
    let port = listener.local_addr().expect("bound").port();
    let file = ctx.dir.join(format!("{task}-{port}.bin"));
    let state = ctx.state.clone();
    let task = task.to_string();
    std::thread::spawn(move || {
        let _ = listener.set_nonblocking(false);
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut bytes = Vec::new();
        if conn.read_to_end(&mut bytes).is_err() {
            return;
        }
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        if script {
            st.checked_script = Some(bytes);
            return;
        }
        let _ = std::fs::write(&file, &bytes);
        st.streams.push(Stream {
            task,
            file,
            bytes: bytes.len() as u64,
        });
    });
    port
}

/// `{"data":"<base64>"}` decrypted the way replication-manager does: the openssl CLI, then
/// the text up to the last `}` as JSON. `None` when any step fails.
fn decrypt_body(body: &[u8], secret: &str) -> Option<Value> {
    let outer: Value = serde_json::from_slice(body).ok()?;
    let data = outer.get("data")?.as_str()?;
    let plain = openssl_decrypt(data, secret)?;
    let end = plain.iter().rposition(|b| *b == b'}')?;
    let start = plain.iter().position(|b| *b == b'{')?;
    serde_json::from_slice(&plain[start..=end]).ok()
}

/// `openssl aes-256-cbc -d -a -nosalt -K <sha256> -iv <md5>` on `data` + newline.
fn openssl_decrypt(data: &str, secret: &str) -> Option<Vec<u8>> {
    let key: String = Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let iv: String = Md5::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut child = Command::new("openssl")
        .args(["aes-256-cbc", "-d", "-a", "-nosalt", "-K", &key, "-iv", &iv])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = format!("{data}\n");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    out.status.success().then_some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The truncation trap is real: openssl without -A drops a long single base64 line.
    #[test]
    fn openssl_truncates_one_long_line_but_reads_wrapped_base64() {
        let secret = "s3cret";
        let plain = format!("{{\"log\":\"{}\"}}", "x".repeat(3000));
        let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let iv: [u8; 16] = Md5::digest(secret.as_bytes()).into();
        let sealed = encrypt_with_openssl(&plain, &key, &iv);
        let one_line: String = sealed.split_whitespace().collect();
        let wrapped = sealed;
        assert_eq!(
            openssl_decrypt(&wrapped, secret).as_deref(),
            Some(plain.as_bytes())
        );
        assert_ne!(
            openssl_decrypt(&one_line, secret).as_deref(),
            Some(plain.as_bytes())
        );
    }

    fn encrypt_with_openssl(plain: &str, key: &[u8], iv: &[u8]) -> String {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut child = Command::new("openssl")
            .args([
                "aes-256-cbc",
                "-e",
                "-a",
                "-nosalt",
                "-K",
                &hex(key),
                "-iv",
                &hex(iv),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(plain.as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    }
}
