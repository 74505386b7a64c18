//! How dbjobs trusts replication-manager's HTTPS certificate.
//!
//! replication-manager serves a self-signed certificate by default, so the usual web PKI
//! cannot vouch for it. One of three rules applies, in this order:
//! 1. `repman_ca_file` (PEM): the certificate is verified against it the usual way (chain,
//!    validity, host name), or it is one of the certificates in that file (a self-signed one
//!    exported from replication-manager);
//! 2. `repman_cert_sha256`: the certificate's SHA-256 must be that one (a pin);
//! 3. neither: trust on first use. The SHA-256 seen on first contact is written to a pin file
//!    in `state_dir`, and any later different certificate is refused with an error that says
//!    how to re-pin.
//!
//! The handshake signatures are verified with rustls' own algorithms in every case: a pin
//! only replaces the question "who vouches for this key", never the proof that the peer
//! holds it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Which rule decides whether a certificate is replication-manager's.
#[derive(Debug)]
enum Trust {
    /// Verified against these roots; a presented certificate equal to one of them is accepted
    /// as is (a self-signed certificate used as its own CA).
    CaFile {
        file: PathBuf,
        certs: Vec<CertificateDer<'static>>,
        webpki: Option<Arc<WebPkiServerVerifier>>,
    },
    /// The SHA-256 of the certificate, from `repman_cert_sha256`.
    Pinned(String),
    /// The pin file in the state directory; written on first contact.
    FirstUse(PathBuf),
}

/// The certificate verifier given to rustls. It remembers why it refused the last
/// certificate, so the caller can show that instead of rustls' generic error.
#[derive(Debug)]
pub struct RepmanVerifier {
    trust: Trust,
    provider: Arc<CryptoProvider>,
    refusal: Mutex<Option<String>>,
}

/// The crypto provider of every TLS connection to replication-manager (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a DER certificate, lowercase hex (what `openssl x509 -fingerprint -sha256`
/// prints, without the colons).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The pin file for `api` (`host:port`) in `state_dir`.
pub fn pin_file(state_dir: &Path, host_port: &str) -> PathBuf {
    let safe: String = host_port
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join(format!("repman-cert-{safe}.sha256"))
}

impl RepmanVerifier {
    /// The verifier the settings ask for: `ca_file` if set, else `pin` if set, else trust on
    /// first use with the pin kept in `state_dir` for `host_port`.
    pub fn from_settings(
        ca_file: &str,
        pin: &str,
        state_dir: &Path,
        host_port: &str,
    ) -> Result<Self> {
        let provider = provider();
        let trust = if !ca_file.trim().is_empty() {
            ca_trust(Path::new(ca_file.trim()), &provider)?
        } else if !pin.trim().is_empty() {
            Trust::Pinned(normalize_pin(pin)?)
        } else {
            Trust::FirstUse(pin_file(state_dir, host_port))
        };
        Ok(RepmanVerifier {
            trust,
            provider,
            refusal: Mutex::new(None),
        })
    }

    /// Why the last certificate was refused, if it was (taken: asked once per failure).
    pub fn take_refusal(&self) -> Option<String> {
        self.refusal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn refuse(&self, why: String) -> rustls::Error {
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
        rustls::Error::General(why)
    }

    /// Accept or refuse `seen` (hex SHA-256) under trust on first use.
    fn first_use(&self, file: &Path, seen: &str) -> std::result::Result<(), String> {
        match std::fs::read_to_string(file) {
            Ok(text) if text.trim().eq_ignore_ascii_case(seen) => Ok(()),
            Ok(text) => Err(format!(
                "replication-manager's certificate changed: it was pinned with SHA-256 {} in {} on first contact, and is now {seen}; refusing to talk to it. If replication-manager's certificate was replaced on purpose, re-pin: delete {} (the next contact pins the new one) or set repman_cert_sha256={seen} in [dbjobs]; otherwise someone may be intercepting the connection",
                text.trim(),
                file.display(),
                file.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_pin(file, seen).map_err(|e| {
                    format!("cannot pin replication-manager's certificate in {}: {e}; set repman_cert_sha256={seen} or make state_dir writable", file.display())
                })?;
                log::warn!(
                    "replication-manager's certificate pinned on first contact: SHA-256 {seen} (in {}); set repman_ca_file or repman_cert_sha256 to verify it instead",
                    file.display()
                );
                Ok(())
            }
            Err(e) => Err(format!("cannot read the pin file {}: {e}", file.display())),
        }
    }
}

fn ca_trust(file: &Path, provider: &Arc<CryptoProvider>) -> Result<Trust> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::new(format!("cannot read repman_ca_file {}: {e}", file.display()))
                .help("point repman_ca_file to a PEM file holding replication-manager's CA or certificate")
        })?;
    if certs.is_empty() {
        return Err(Error::new(format!(
            "repman_ca_file {} holds no PEM certificate",
            file.display()
        )));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in &certs {
        // A certificate webpki cannot use as an anchor is still accepted by equality.
        let _ = roots.add(c.clone());
    }
    // No usable anchor at all (rustls refuses an empty store): the equality rule alone.
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .ok();
    Ok(Trust::CaFile {
        file: file.to_path_buf(),
        certs,
        webpki,
    })
}

fn normalize_pin(pin: &str) -> Result<String> {
    let hex: String = pin
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::new(format!(
            "repman_cert_sha256={pin:?} is not a SHA-256 in hex (64 hex digits, colons allowed)"
        ))
        .help("openssl s_client -connect HOST:PORT </dev/null | openssl x509 -noout -fingerprint -sha256"));
    }
    Ok(hex)
}

/// Write the pin (0600, in a 0700 state directory created if missing).
fn write_pin(file: &Path, hex: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(format!("{hex}\n").as_bytes())
}

impl ServerCertVerifier for RepmanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity.as_ref());
        match &self.trust {
            Trust::CaFile {
                file,
                certs,
                webpki,
            } => {
                if certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
                    return Ok(ServerCertVerified::assertion());
                }
                let verified = match webpki {
                    Some(w) => w
                        .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                        .map_err(|e| e.to_string()),
                    None => Err("the file holds no usable CA".to_string()),
                };
                verified.map_err(|e| {
                        self.refuse(format!(
                            "replication-manager's certificate (SHA-256 {seen}) does not verify against repman_ca_file {}: {e}",
                            file.display()
                        ))
                    })
            }
            Trust::Pinned(pin) if *pin == seen => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(pin) => Err(self.refuse(format!(
                "replication-manager's certificate has SHA-256 {seen}, not the pinned repman_cert_sha256 {pin}; if its certificate was replaced on purpose, set repman_cert_sha256={seen} in [dbjobs]"
            ))),
            Trust::FirstUse(file) => self
                .first_use(file, &seen)
                .map(|()| ServerCertVerified::assertion())
                .map_err(|why| self.refuse(why)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls client configuration that uses `verifier`.
pub fn client_config(verifier: Arc<RepmanVerifier>) -> Result<rustls::ClientConfig> {
    Ok(
        rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::new(format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_normalised() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_pin(&colons).unwrap(), "ab".repeat(32));
        assert!(normalize_pin("abc").is_err());
    }

    #[test]
    fn first_use_pins_then_refuses_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let v = RepmanVerifier::from_settings("", "", dir.path(), "127.0.0.1:10005").unwrap();
        let file = pin_file(dir.path(), "127.0.0.1:10005");
        v.first_use(&file, &"a".repeat(64)).unwrap();
        v.first_use(&file, &"a".repeat(64)).unwrap();
        let err = v.first_use(&file, &"b".repeat(64)).unwrap_err();
        assert!(err.contains("changed"), "{err}");
        assert!(err.contains(&format!("delete {}", file.display())), "{err}");
        assert!(
            err.contains(&format!("repman_cert_sha256={}", "b".repeat(64))),
            "{err}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
