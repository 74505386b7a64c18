//! When `repman_api` is set: is replication-manager's API reachable, is its certificate the
//! one the settings trust, and does it accept this server's secret?
//!
//! The certificate is looked at in a TLS handshake of doctor's own, with a verifier that
//! notes the certificate's SHA-256 and then asks the one the jobs use
//! ([`RepmanVerifier`]). With neither `repman_ca_file`, `repman_cert_sha256` nor a pin from
//! an earlier contact, a job would pin the first certificate it sees; doctor writes no pin:
//! it says which one would be pinned, and logs in trusting exactly that one.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::node::Node;
use super::report::Check;
use crate::repman::tls::{self, RepmanVerifier};
use crate::repman::{RepmanClient, RepmanConfig};
use crate::settings::HostSettings;

/// How long reaching replication-manager may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The pin of the verifier used on a first contact, which never compares it.
const FIRST_CONTACT_PLACEHOLDER_PIN: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Up to three lines (reachable, certificate, login) when `repman_api` is set; a check that
/// cannot be made because an earlier one failed is not made.
pub fn check(node: &Node<'_>, client_password: Option<&str>) -> Vec<Check> {
    let config = match RepmanConfig::from_settings(&node.host, client_password) {
        Ok(Some(config)) => config,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![Check::fail(
                "repman settings",
                e.message,
                e.help.unwrap_or_else(|| "fix the repman_* settings".into()),
            )]
        }
    };
    let addr = match reachable(&config) {
        Ok(addr) => addr,
        Err(check) => return vec![check],
    };
    let mut checks = vec![Check::ok(
        "repman reachable",
        format!("https://{} answers on {addr}", config.api),
    )];
    let (certificate, trusted) = certificate(node, &config, addr);
    checks.push(certificate);
    if let Some(settings) = trusted {
        checks.push(login(config, &settings));
    }
    checks
}

/// A TCP connection to the API's address.
fn reachable(config: &RepmanConfig) -> Result<SocketAddr, Check> {
    let fail = |why: String| {
        Check::fail(
            "repman reachable",
            format!("cannot reach replication-manager at https://{}: {why}", config.api),
            "check repman_api, that replication-manager's API runs, and that this node may connect to it",
        )
    };
    let addrs: Vec<SocketAddr> = config
        .api
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve it ({e})")))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(_) => return Ok(addr),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(fail(last))
}

/// The check's name.
const CERTIFICATE: &str = "repman certificate";

/// How the certificate is trusted, as the jobs would trust it.
struct Trust {
    verifier: Arc<RepmanVerifier>,
    /// No CA file, no pinned SHA-256, no pin from an earlier contact.
    first_contact: bool,
    /// Where a job keeps the pin of a first contact.
    pin: PathBuf,
}

/// The certificate's verdict, and the settings a login may use (`None`: refused).
fn certificate(
    node: &Node<'_>,
    config: &RepmanConfig,
    addr: SocketAddr,
) -> (Check, Option<HostSettings>) {
    let trust = match trust(&node.host, config) {
        Ok(trust) => trust,
        Err(check) => return (check, None),
    };
    match observe(&trust, config, addr) {
        Ok(seen) => {
            let (check, trusted) = verdict(&node.host, &trust, &seen);
            (check, Some(trusted))
        }
        Err(check) => (check, None),
    }
}

/// The verifier the jobs would use; on a first contact one that only checks the handshake's
/// signatures (its pin is a placeholder never compared): the certificate is only looked at.
fn trust(s: &HostSettings, config: &RepmanConfig) -> Result<Trust, Check> {
    let pin = tls::pin_file(&s.state_dir, &config.api);
    let first_contact = s.repman_ca_file.trim().is_empty()
        && s.repman_cert_sha256.trim().is_empty()
        && !pin.exists();
    let (ca_file, cert_pin) = if first_contact {
        ("", FIRST_CONTACT_PLACEHOLDER_PIN)
    } else {
        (s.repman_ca_file.as_str(), s.repman_cert_sha256.as_str())
    };
    let verifier = RepmanVerifier::from_settings(ca_file, cert_pin, &s.state_dir, &config.api)
        .map_err(|e| {
            let fix = e
                .help
                .unwrap_or_else(|| "fix repman_ca_file or repman_cert_sha256".into());
            Check::fail(CERTIFICATE, e.message, fix)
        })?;
    Ok(Trust {
        verifier: Arc::new(verifier),
        first_contact,
        pin,
    })
}

/// The certificate's SHA-256 after a handshake the verifier accepted.
fn observe(trust: &Trust, config: &RepmanConfig, addr: SocketAddr) -> Result<String, Check> {
    let observer = Arc::new(Observer {
        verifier: trust.verifier.clone(),
        judges: !trust.first_contact,
        seen: Mutex::new(None),
    });
    let shaken = handshake(&config.api_host, addr, observer.clone());
    if let Some(why) = trust
        .verifier
        .take_refusal()
        .filter(|_| !trust.first_contact)
    {
        let fix = "once you know the certificate is replication-manager's, re-pin or fix repman_ca_file as the message says";
        return Err(Check::fail(CERTIFICATE, why, fix));
    }
    let seen = observer
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match (shaken, seen) {
        (Ok(()), Some(seen)) => Ok(seen),
        (Err(why), _) => Err(Check::fail(
            CERTIFICATE,
            format!("no TLS handshake with https://{}: {why}", config.api),
            "check that repman_api is replication-manager's HTTPS API (port 10005 by default)",
        )),
        (Ok(()), None) => Err(Check::fail(
            CERTIFICATE,
            format!("https://{} presented no certificate", config.api),
            "check repman_api",
        )),
    }
}

/// Why the certificate `seen` is trusted, and the settings a login uses: on a first contact
/// they pin exactly `seen`, without the pin file a job would write.
fn verdict(s: &HostSettings, trust: &Trust, seen: &str) -> (Check, HostSettings) {
    let mut trusted = s.clone();
    let check = if !s.repman_ca_file.trim().is_empty() {
        let file = s.repman_ca_file.trim();
        Check::ok(
            CERTIFICATE,
            format!("SHA-256 {seen}, verified against repman_ca_file {file}"),
        )
    } else if !s.repman_cert_sha256.trim().is_empty() {
        Check::ok(
            CERTIFICATE,
            format!("SHA-256 {seen}, as pinned by repman_cert_sha256"),
        )
    } else if !trust.first_contact {
        let pin = trust.pin.display();
        Check::ok(
            CERTIFICATE,
            format!("SHA-256 {seen}, as pinned on first contact in {pin}"),
        )
    } else {
        trusted.repman_cert_sha256 = seen.to_string();
        Check::warn(
            CERTIFICATE,
            format!("SHA-256 {seen}, not pinned yet: the first job trusts and pins it in {}", trust.pin.display()),
            format!("compare it with replication-manager's certificate, then set repman_cert_sha256={seen} (or repman_ca_file) so it is verified rather than trusted on first use"),
        )
    };
    (check, trusted)
}

/// `secret-login` with this server's identity.
fn login(config: RepmanConfig, settings: &HostSettings) -> Check {
    let name = "repman login";
    let (server, cluster) = (config.server(), config.cluster.clone());
    let client = match RepmanClient::new(config, settings) {
        Ok(client) => client,
        Err(e) => {
            let fix = e.help.unwrap_or_else(|| "fix the repman_* settings".into());
            return Check::fail(name, e.message, fix);
        }
    };
    match client.login() {
        Ok(()) => Check::ok(
            name,
            format!("secret-login accepted for {server} in cluster {cluster}"),
        ),
        Err(e) => Check::fail(
            name,
            e.message,
            e.hint.unwrap_or_else(|| {
                "check repman_server, repman_cluster and repman_password".into()
            }),
        ),
    }
}

/// A TLS handshake with the API, and nothing else.
fn handshake(host: &str, addr: SocketAddr, observer: Arc<Observer>) -> Result<(), String> {
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(observer)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host:?}: {e}"))?;
    let mut tls =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut socket = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket
        .set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).map_err(|e| e.to_string())?;
    }
    tls.send_close_notify();
    let _ = tls.complete_io(&mut socket);
    Ok(())
}

/// Notes the certificate's SHA-256, then lets the jobs' verifier judge it, except on a first
/// contact, where the certificate is only looked at; the handshake's signatures are always
/// checked by the jobs' verifier.
#[derive(Debug)]
struct Observer {
    verifier: Arc<RepmanVerifier>,
    judges: bool,
    seen: Mutex<Option<String>>,
}

impl ServerCertVerifier for Observer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = tls::fingerprint(end_entity.as_ref());
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        if !self.judges {
            return Ok(ServerCertVerified::assertion());
        }
        self.verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}
