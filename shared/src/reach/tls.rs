//! TLS material: loading PEM files (PKCS#1, PKCS#8 and SEC1 keys), building the rustls client
//! configuration, and reading certificates (subject, SANs, expiry) for the health checks.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

use crate::error::{Error, Result};

/// What the certificate says about itself.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject common name (or the whole subject when there is no CN).
    pub subject: String,
    /// Issuer common name.
    pub issuer: String,
    /// Subject alternative names (DNS names and IPs).
    pub sans: Vec<String>,
    /// Not valid after, as Unix seconds.
    pub not_after: i64,
    /// Not valid after, RFC 3339.
    pub not_after_rfc3339: String,
    /// Not valid before, as Unix seconds.
    pub not_before: i64,
}

impl CertInfo {
    /// Parses a DER certificate.
    pub fn from_der(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let cn = |name: &x509_parser::x509::X509Name| {
            name.iter_common_name()
                .next()
                .and_then(|c| c.as_str().ok().map(String::from))
                .unwrap_or_else(|| name.to_string())
        };
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for n in &ext.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => sans.push(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(b) => sans.push(ip_string(b)),
                    _ => {}
                }
            }
        }
        let not_after = cert.validity().not_after.timestamp();
        let not_after_rfc3339 = time::OffsetDateTime::from_unix_timestamp(not_after)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let not_before = cert.validity().not_before.timestamp();
        Some(CertInfo {
            subject: cn(cert.subject()),
            issuer: cn(cert.issuer()),
            sans,
            not_after,
            not_after_rfc3339,
            not_before,
        })
    }

    /// Seconds from now until expiry (negative when expired).
    pub fn seconds_left(&self) -> i64 {
        self.not_after - now_unix()
    }
}

fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => format!("{b:?}"),
    }
}

/// The current time as Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = crate::base::fsio::read_bounded(path, what, crate::base::fsio::MAX_PEM)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Pem { what, path: path.to_path_buf(), reason: format!("not valid PEM: {e}") })?;
    if certs.is_empty() {
        return Err(Error::Pem { what, path: path.to_path_buf(), reason: "no CERTIFICATE block found".into() });
    }
    Ok(certs)
}

/// Reads a private key (PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`).
pub fn load_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>> {
    let bytes = crate::base::fsio::read_bounded(path, what, crate::base::fsio::MAX_PEM)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| Error::Pem {
        what,
        path: path.to_path_buf(),
        reason: format!("no usable private key (PKCS#1, PKCS#8 or SEC1 PEM expected): {e}"),
    })
}

/// The loaded TLS context every connection uses.
#[derive(Debug, Clone)]
pub struct TlsContext {
    /// The rustls configuration (ALPN h2).
    pub config: Arc<ClientConfig>,
    /// The client certificate in use, for the expiry check.
    pub client_cert: Option<CertInfo>,
    /// True when server verification is off.
    pub insecure: bool,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsContext {
    /// Loads the files discovery found. `None` when no TLS is to be used (plain http endpoints).
    pub fn load(files: &TlsFiles, insecure: bool) -> Result<Option<TlsContext>> {
        if files.ca.is_none() && files.cert.is_none() && !insecure {
            return Ok(None);
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Usage(format!("failed to set up TLS: {e}")))?;
        let builder = if insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
        } else {
            let ca = files.ca.as_ref().ok_or_else(|| Error::Usage("no CA certificate: pass --cacert".into()))?;
            let mut roots = RootCertStore::empty();
            for c in load_certs(&ca.path, "CA certificate")? {
                roots.add(c).map_err(|e| Error::Pem {
                    what: "CA certificate",
                    path: ca.path.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
            builder.with_root_certificates(roots)
        };
        let (mut config, client_cert) = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let chain = load_certs(&cert.path, "client certificate")?;
                let info = CertInfo::from_der(&chain[0]);
                let k = load_key(&key.path, "client key")?;
                let config = builder.with_client_auth_cert(chain, k).map_err(|e| Error::Pem {
                    what: "client key",
                    path: key.path.clone(),
                    reason: format!("does not match the client certificate {}: {e}", cert.path.display()),
                })?;
                (config, info)
            }
            _ => (builder.with_no_client_auth(), None),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(TlsContext { config: Arc::new(config), client_cert, insecure }))
    }

    /// The server name to verify for a host (IP addresses are verified against IP SANs).
    pub fn server_name(host: &str) -> Option<ServerName<'static>> {
        ServerName::try_from(host.to_string()).ok()
    }
}

/// Accepts any server certificate: only with `--insecure-skip-tls-verify`.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
/// A file path with where it came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Sourced {
    /// The file.
    pub path: std::path::PathBuf,
    /// Where the path came from.
    pub source: String,
}

/// The TLS files to use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsFiles {
    /// CA bundle to verify the servers.
    pub ca: Option<Sourced>,
    /// Client certificate.
    pub cert: Option<Sourced>,
    /// Client key.
    pub key: Option<Sourced>,
}
