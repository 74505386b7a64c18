//! TLS on the inbound listener, beside plain TCP on the same port.
//!
//! replication-manager sends a reseed or flashback stream over TLS when its
//! `scheduler-db-servers-receiver-use-ssl` is on, and over plain TCP otherwise; it does not
//! verify the node's certificate. So the listener cannot know in advance which one comes:
//! [`ReceiveTls::accept`] peeks at the first byte the sender wrote. A TLS connection starts
//! with a handshake record (content type 0x16, the ClientHello); a gzip'd dump starts with
//! 0x1f and an xbstream with `X`, so the byte tells them apart. A TLS sender gets the
//! handshake completed (rustls) with the node's certificate; a plain one is read as before.
//!
//! The certificate is the one of the settings `receive_tls_cert`/`receive_tls_key` (PEM files,
//! declared by the host), loaded when the job starts, before anything listens, so a bad one
//! fails the job before replication-manager is told to connect. Without them it is one
//! generated once (rcgen, ECDSA P-256, self-signed) and kept in the host's `state_dir` as
//! `receive-tls.pem` (certificate and key in one 0600 file, so two jobs generating at once
//! cannot leave a certificate with the other's key), made or read when the first TLS sender
//! comes: a node that only ever receives plain streams gets no file.
//!
//! The peer check is not here: the listener refuses a peer the job does not name when it
//! accepts the connection ([`crate::net::OneShotListener::accept_from`]), before any byte of
//! a handshake is read, exactly as a plain one.

use std::io::{self, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use dbjobs_sdk::{Host, JobError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The first byte of a TLS connection: the record type of a handshake message.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The file in `state_dir` holding the generated certificate and its key.
pub const GENERATED_FILE: &str = "receive-tls.pem";

/// The accepted sender's stream: plain TCP or TLS over it, read the same way.
pub enum ReceivedStream {
    /// Plain TCP, as the bash agent's `socat` received it.
    Plain(TcpStream),
    /// TLS, the handshake completed.
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl ReceivedStream {
    /// Whether the sender speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, ReceivedStream::Tls(_))
    }

    /// The TCP connection underneath (for its addresses and timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ReceivedStream::Plain(s) => s,
            ReceivedStream::Tls(s) => &s.sock,
        }
    }
}

impl Read for ReceivedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ReceivedStream::Plain(s) => s.read(buf),
            // A sender that closes without TLS's close_notify ends the stream as a plain one
            // would: the formats received (a gzip member, an xbstream) carry their own end,
            // which the restore checks, so a stream cut short is still refused there.
            ReceivedStream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

/// Where the listener's certificate came from, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificateSource {
    /// `receive_tls_cert` and `receive_tls_key`.
    Configured {
        /// The certificate file.
        cert: PathBuf,
    },
    /// Generated once in `state_dir`.
    Generated {
        /// The file holding it and its key.
        file: PathBuf,
    },
}

/// The inbound listener's TLS side: the server configuration with the node's certificate.
pub struct ReceiveTls {
    source: CertificateSource,
    /// Set at once for a configured certificate, at the first TLS sender for a generated one.
    config: OnceLock<Result<Arc<ServerConfig>, JobError>>,
}

impl ReceiveTls {
    /// The certificate a job presents: from `receive_tls_cert`/`receive_tls_key` when set
    /// (read now), else the one generated in `state_dir` (see [`ReceiveTls::generated_in`]).
    /// Call it when the job starts, before listening.
    pub fn prepare(host: &Host<'_>) -> Result<Self, JobError> {
        let setting = |name: &str| {
            host.setting(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        match (setting("receive_tls_cert"), setting("receive_tls_key")) {
            (Some(cert), Some(key)) => Self::from_files(Path::new(&cert), Path::new(&key)),
            (None, None) => Ok(Self::generated_in(&crate::server::state_dir(host)?)),
            _ => Err(JobError::config(
                "receive_tls_cert and receive_tls_key must be set together",
            )
            .with_hint(
                "set both to PEM files (certificate, private key), or neither to use the certificate dbjobs generates in state_dir",
            )),
        }
    }

    /// The certificate chain in PEM file `cert` and its private key in PEM file `key`.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, JobError> {
        let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
            JobError::config(format!("cannot read the {what} {}: {e}", path.display()))
                .with_hint("receive_tls_cert and receive_tls_key name PEM files readable by dbjobs")
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad("certificate", cert, &e))?;
        if certs.is_empty() {
            return Err(bad("certificate", cert, &"no CERTIFICATE block in it"));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("private key", key, &e))?;
        let config = server_config(certs, key_der)?;
        Ok(ReceiveTls {
            source: CertificateSource::Configured {
                cert: cert.to_path_buf(),
            },
            config: OnceLock::from(Ok(config)),
        })
    }

    /// The certificate generated once in `state_dir` ([`GENERATED_FILE`]), read (or generated,
    /// when it is not there yet) when the first TLS sender comes. When two jobs generate at
    /// once, the first one stored wins and both use it.
    pub fn generated_in(state_dir: &Path) -> Self {
        ReceiveTls {
            source: CertificateSource::Generated {
                file: state_dir.join(GENERATED_FILE),
            },
            config: OnceLock::new(),
        }
    }

    /// Where the certificate came from.
    pub fn source(&self) -> &CertificateSource {
        &self.source
    }

    /// Look at the first byte of an accepted connection: a TLS sender gets the handshake
    /// completed, anything else is read as plain TCP. The connection's read timeout bounds
    /// the wait for that byte and the handshake. A failed handshake is a network error, the
    /// server untouched.
    pub fn accept(&self, stream: TcpStream) -> Result<ReceivedStream, JobError> {
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "the sender".into());
        let mut first = [0u8; 1];
        let n = loop {
            match stream.peek(&mut first) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        }
        .map_err(|e| JobError::network(format!("reading the first byte from {peer}: {e}")))?;
        if n == 0 || first[0] != TLS_HANDSHAKE_RECORD {
            return Ok(ReceivedStream::Plain(stream));
        }
        let config = self.server_config()?;
        handshake(config, stream)
            .map_err(|e| JobError::network(format!("TLS handshake with {peer} failed: {e}")))
    }

    /// The server configuration; the generated certificate is made or read on first use.
    fn server_config(&self) -> Result<Arc<ServerConfig>, JobError> {
        self.config
            .get_or_init(|| match &self.source {
                CertificateSource::Generated { file } => load_generated(file),
                CertificateSource::Configured { .. } => unreachable!("loaded when made"),
            })
            .clone()
    }
}

/// Complete the handshake of a sender whose first byte said TLS.
fn handshake(config: Arc<ServerConfig>, mut stream: TcpStream) -> io::Result<ReceivedStream> {
    let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream)?;
    }
    Ok(ReceivedStream::Tls(Box::new(StreamOwned::new(
        conn, stream,
    ))))
}

/// rustls' server side with `certs` and `key`: ring, TLS 1.2 and 1.3, no client certificate
/// (the sender is checked by its address), and no session tickets: the node never writes
/// after the handshake, so a sender that closes without reading leaves nothing unread, which
/// would make its kernel reset the connection and lose the end of the stream here.
fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, JobError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| JobError::internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            JobError::config(format!(
                "the listener's certificate and key do not fit together: {e}"
            ))
            .with_hint("check that receive_tls_key is the private key of receive_tls_cert")
        })?;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The generated certificate in `file`, generated first when it is not there.
fn load_generated(file: &Path) -> Result<Arc<ServerConfig>, JobError> {
    if !file.exists() {
        generate(file)?;
    }
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| damaged(file, &e))?;
    let key = PrivateKeyDer::from_pem_file(file).map_err(|e| damaged(file, &e))?;
    server_config(certs, key)
}

/// Generate a self-signed certificate into `file`, unless another job stored one first: the
/// PEM is written to a private temporary file and hard-linked into place, which fails when
/// the file exists.
fn generate(file: &Path) -> Result<(), JobError> {
    let state_dir = file.parent().unwrap_or(Path::new("."));
    crate::private::create_private_dir(state_dir)?;
    let names = vec![host_name(), "localhost".to_string()];
    let cert = rcgen::generate_simple_self_signed(names).map_err(|e| {
        JobError::internal(format!("cannot generate the listener's certificate: {e}"))
    })?;
    let pem = format!("{}{}", cert.cert.pem(), cert.key_pair.serialize_pem());
    let tmp = state_dir.join(format!(
        ".{GENERATED_FILE}.{}",
        crate::private::random_hex(8)?
    ));
    crate::private::write_private_file(&tmp, pem.as_bytes())?;
    let linked = std::fs::hard_link(&tmp, file);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(JobError::io(format!(
            "cannot store the listener's certificate as {}: {e}",
            file.display()
        ))),
    }
}

fn damaged(file: &Path, e: &dyn std::fmt::Display) -> JobError {
    JobError::config(format!(
        "the generated certificate {} cannot be read: {e}",
        file.display()
    ))
    .with_hint("remove the file: dbjobs generates a new one for the next inbound job")
}

/// This node's host name, the certificate's name (replication-manager does not check it;
/// a person looking at the certificate sees which node it is).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => name.to_string(),
        _ => "dbjobs".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::os::unix::fs::PermissionsExt;

    /// A client that trusts `cert` (the generated one is self-signed) and sends `data`.
    fn tls_send(port: u16, cert: CertificateDer<'static>, data: &'static [u8]) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        tls.write_all(data).unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
    }

    fn receive(tls: &ReceiveTls, listener: &TcpListener) -> (bool, Vec<u8>) {
        let (stream, _) = listener.accept().unwrap();
        let mut received = tls.accept(stream).unwrap();
        let mut got = Vec::new();
        received.read_to_end(&mut got).unwrap();
        (received.is_tls(), got)
    }

    #[test]
    fn tls_and_plain_senders_on_one_port() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let tls = ReceiveTls::generated_in(&state);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();

        let sender = std::thread::spawn(move || {
            TcpStream::connect(("127.0.0.1", port))
                .unwrap()
                .write_all(b"XBSTCK01 plain")
                .unwrap()
        });
        let plain = receive(&tls, &listener);
        assert_eq!(plain, (false, b"XBSTCK01 plain".to_vec()));
        sender.join().unwrap();
        assert!(!state.exists(), "no certificate is made for a plain sender");

        // The certificate is made for the first TLS sender; a client trusting it gets in.
        tls.server_config().unwrap();
        let file = state.join(GENERATED_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let cert = CertificateDer::pem_file_iter(&file)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let data = b"\x1f\x8b secret over tls";
        let sender = std::thread::spawn(move || tls_send(port, cert, data));
        assert_eq!(receive(&tls, &listener), (true, data.to_vec()));
        sender.join().unwrap();
    }

    #[test]
    fn the_generated_certificate_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        ReceiveTls::generated_in(dir.path())
            .server_config()
            .unwrap();
        let first = std::fs::read(dir.path().join(GENERATED_FILE)).unwrap();
        let again = ReceiveTls::generated_in(dir.path());
        again.server_config().unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(GENERATED_FILE)).unwrap(),
            first
        );
        assert!(matches!(
            again.source(),
            CertificateSource::Generated { .. }
        ));
        // Only the one file: no temporary left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn configured_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let other_key = dir.path().join("other.pem");
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, a.key_pair.serialize_pem()).unwrap();
        std::fs::write(&other_key, b.key_pair.serialize_pem()).unwrap();
        let ok = ReceiveTls::from_files(&cert, &key).unwrap();
        assert_eq!(
            ok.source(),
            &CertificateSource::Configured { cert: cert.clone() }
        );
        let err = ReceiveTls::from_files(&cert, &other_key).err().unwrap();
        assert!(err.message.contains("do not fit together"), "{err}");
        let err = ReceiveTls::from_files(&dir.path().join("missing.pem"), &key)
            .err()
            .unwrap();
        assert!(err.message.contains("cannot read the certificate"), "{err}");
        let err = ReceiveTls::from_files(&key, &key).err().unwrap();
        assert!(err.message.contains("no CERTIFICATE"), "{err}");
    }
}
