//! Issuing a new member's certificates from the etcd CA, as kubeadm lays them out:
//! `server.crt/.key` and `peer.crt/.key`, server and client auth, SANs for the member's IPs and
//! names plus `localhost` and `127.0.0.1`. CA keys may be RSA (PKCS#1 `RSA PRIVATE KEY`, as
//! kubeadm writes them, or PKCS#8) or ECDSA (PKCS#8 or SEC1).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::Serialize;

use crate::error::{Error, Result};

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        let mut v = vec![0x80 | bytes.len() as u8];
        v.extend(bytes);
        v
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(content.len()));
    v.extend_from_slice(content);
    v
}

/// Wraps a PKCS#1 RSA private key into PKCS#8 (`PrivateKeyInfo` with rsaEncryption).
pub fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let version = [0x02, 0x01, 0x00];
    let alg = der(0x30, &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);
    let key = der(0x04, pkcs1);
    let mut body = version.to_vec();
    body.extend(alg);
    body.extend(key);
    der(0x30, &body)
}

/// Reads a DER element (tag, content, rest).
fn der_read(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let l0 = *b.get(1)? as usize;
    let (len, hdr) = if l0 < 0x80 {
        (l0, 2)
    } else {
        let n = l0 & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, b.get(hdr..end)?, b.get(end..)?))
}

/// Wraps a SEC1 EC private key into PKCS#8, taking the curve from its parameters.
pub fn sec1_to_pkcs8(sec1: &[u8]) -> Option<Vec<u8>> {
    let (_, seq, _) = der_read(sec1)?;
    let (_, _version, rest) = der_read(seq)?;
    let (_, _key, mut rest) = der_read(rest)?;
    let mut curve = None;
    while !rest.is_empty() {
        let (tag, content, r) = der_read(rest)?;
        if tag == 0xa0 {
            curve = Some(content.to_vec());
        }
        rest = r;
    }
    let curve = curve?;
    let ec_oid = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let mut alg = ec_oid.to_vec();
    alg.extend(curve);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend(der(0x30, &alg));
    body.extend(der(0x04, sec1));
    Some(der(0x30, &body))
}

/// Loads a CA private key for signing.
pub fn load_ca_key(path: &Path) -> Result<KeyPair> {
    let text = crate::base::fsio::read_bounded_string(path, "CA key", crate::base::fsio::MAX_PEM)?;
    let bad = |reason: String| Error::Pem { what: "CA key", path: path.to_path_buf(), reason };
    let block = text
        .lines()
        .find(|l| l.starts_with("-----BEGIN "))
        .ok_or_else(|| bad("no PEM block found".into()))?
        .to_string();
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN "))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END "))
        .collect::<Vec<_>>()
        .join("");
    let raw = base64_decode(&b64).ok_or_else(|| bad("invalid base64 in the PEM block".into()))?;
    let pkcs8 = if block.contains("RSA PRIVATE KEY") {
        pkcs1_to_pkcs8(&raw)
    } else if block.contains("EC PRIVATE KEY") {
        sec1_to_pkcs8(&raw).ok_or_else(|| bad("an EC PRIVATE KEY without curve parameters".into()))?
    } else if block.contains("BEGIN PRIVATE KEY") {
        raw
    } else {
        return Err(bad(format!(
            "unsupported PEM block {block}; expected RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY"
        )));
    };
    KeyPair::try_from(pkcs8.as_slice()).map_err(|e| bad(format!("not a usable RSA or ECDSA key: {e}")))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\r' | b'\n' | b'\t' => continue,
            _ => return None,
        };
        buf = (buf << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The etcd CA to sign with when none is given: the manifest's `--trusted-ca-file` (the
/// `--manifest` given, else the node's default one when it exists), else kubeadm's path.
pub fn default_ca(settings: &crate::reach::discovery::settings::Settings) -> Result<PathBuf> {
    let manifest = settings.manifest.clone().or_else(|| Some(settings.default_manifest.clone()).filter(|p| p.exists()));
    match manifest {
        Some(p) => crate::reach::discovery::Manifest::load(&p)?
            .flag("trusted-ca-file")
            .map(PathBuf::from)
            .ok_or_else(|| Error::Usage(format!("manifest {} has no --trusted-ca-file: pass --ca-cert", p.display()))),
        None => Ok(PathBuf::from(crate::reach::layouts::KUBEADM.ca)),
    }
}

/// What `learner certs` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    /// The member's name (CN).
    pub name: String,
    /// The CA certificate that signed them.
    pub ca_cert: PathBuf,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// SANs of both certificates.
    pub sans: Vec<String>,
    /// Not valid after (RFC 3339).
    pub not_after: String,
}

/// Issues `server` and `peer` certificates for member `name` into `out`.
pub fn issue(name: &str, ips: &[IpAddr], dns: &[String], ca_cert: &Path, ca_key: &Path, out: &Path) -> Result<Issued> {
    let files: Vec<PathBuf> =
        ["server.crt", "server.key", "peer.crt", "peer.key"].iter().map(|f| out.join(f)).collect();
    if let Some(existing) = files.iter().find(|f| f.exists()) {
        return Err(Error::Refused(format!(
            "{} already exists: refusing to overwrite certificates; choose another --out",
            existing.display()
        )));
    }
    let ca_pem = crate::base::fsio::read_bounded_string(ca_cert, "CA certificate", crate::base::fsio::MAX_PEM)?;
    let key = load_ca_key(ca_key)?;
    let ca_der = ca_der(&ca_pem, ca_cert)?;
    // The key must be the CA certificate's: certificates signed by another key would fail
    // every handshake.
    {
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).map_err(|e| Error::Pem {
            what: "CA certificate",
            path: ca_cert.to_path_buf(),
            reason: e.to_string(),
        })?;
        if ca.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice() {
            return Err(Error::Usage(format!(
                "CA key {} does not belong to CA certificate {} (their public keys differ): pass the key of that CA (kubeadm: /etc/kubernetes/pki/etcd/ca.key beside ca.crt)",
                ca_key.display(),
                ca_cert.display()
            )));
        }
    }
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, key).map_err(|e| Error::Pem {
        what: "CA certificate",
        path: ca_cert.to_path_buf(),
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(out).map_err(|source| Error::Io { action: format!("create {}", out.display()), source })?;

    let mut all_ips: Vec<IpAddr> = ips.to_vec();
    for extra in ["127.0.0.1", "::1"] {
        let ip: IpAddr = extra.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if !all_ips.contains(&ip) {
            all_ips.push(ip);
        }
    }
    let mut all_dns: Vec<String> = vec![name.to_string(), "localhost".to_string()];
    for d in dns {
        if !all_dns.contains(d) {
            all_dns.push(d.clone());
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let not_after = now + time::Duration::days(365);
    let mut sans = Vec::new();
    for kind in ["server", "peer"] {
        let leaf = KeyPair::generate().map_err(|e| Error::Usage(format!("failed to generate a key: {e}")))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| Error::Usage(e.to_string()))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.subject_alt_names.clear();
        for d in &all_dns {
            let ia5 = d.clone().try_into().map_err(|_| Error::Usage(format!("invalid DNS name {d:?}")))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        for ip in &all_ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = not_after;
        let cert = params
            .signed_by(&leaf, &issuer)
            .map_err(|e| Error::Usage(format!("failed to sign the {kind} certificate: {e}")))?;
        verify_signed_by(cert.der(), &ca_der).map_err(|reason| {
            Error::Refused(format!(
                "the issued {kind} certificate does not verify against {}: {reason}; nothing was written",
                ca_cert.display()
            ))
        })?;
        crate::base::fsio::write_new(&out.join(format!("{kind}.key")), leaf.serialize_pem().as_bytes(), 0o600)?;
        crate::base::fsio::write_new(&out.join(format!("{kind}.crt")), cert.pem().as_bytes(), 0o644)?;
        if sans.is_empty() {
            sans = all_dns.iter().cloned().chain(all_ips.iter().map(|i| i.to_string())).collect();
        }
    }
    Ok(Issued {
        name: name.to_string(),
        ca_cert: ca_cert.to_path_buf(),
        files,
        sans,
        not_after: not_after.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}

/// The DER of the first certificate of a PEM text.
fn ca_der(pem: &str, path: &Path) -> Result<Vec<u8>> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| Error::Pem {
        what: "CA certificate",
        path: path.to_path_buf(),
        reason: format!("not valid PEM: {e}"),
    })?;
    Ok(p.contents)
}

/// Checks a certificate's signature with the CA's public key.
fn verify_signed_by(cert: &[u8], ca: &[u8]) -> std::result::Result<(), String> {
    let (_, ca) = x509_parser::parse_x509_certificate(ca).map_err(|e| e.to_string())?;
    let (_, leaf) = x509_parser::parse_x509_certificate(cert).map_err(|e| e.to_string())?;
    if leaf.issuer() != ca.subject() {
        return Err("its issuer is not the CA's subject".into());
    }
    leaf.verify_signature(Some(ca.public_key())).map_err(|e| format!("signature: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
        assert!(base64_decode("a$").is_none());
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_len(5), vec![5]);
        assert_eq!(der_len(300), vec![0x82, 0x01, 0x2c]);
        let w = pkcs1_to_pkcs8(&[1, 2, 3]);
        assert_eq!(w[0], 0x30);
        assert_eq!(der_read(&w).unwrap().1.len(), w.len() - 2);
    }
}
