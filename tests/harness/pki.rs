//! Certificates for test clusters, laid out as kubeadm lays them out: an RSA CA whose key is
//! stored PKCS#1 (`RSA PRIVATE KEY`, as kubeadm writes `ca.key`), and per node
//! `pki/etcd/{ca,server,peer,healthcheck-client}.{crt,key}` and `pki/apiserver-etcd-client.*`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey;

/// A CA that signs test certificates.
pub struct Pki {
    /// `ca.crt` PEM.
    pub ca_pem: String,
    /// `ca.key` PEM, PKCS#1.
    pub ca_key_pkcs1_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn rsa_ca_key() -> &'static (String, String) {
    // RSA key generation is slow; one CA key per test process, each cluster its own CA cert.
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = rand::thread_rng();
        let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let pkcs1 = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
        let pkcs8 = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
        (pkcs1, pkcs8)
    })
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// Server and client auth (etcd serving and peer certificates).
    ServerClient,
    /// Client auth only.
    Client,
}

impl Pki {
    /// A new CA named `etcd-ca` (as kubeadm names it); writes `ca.crt`/`ca.key` into `dir`.
    pub fn new(dir: &Path) -> Pki {
        let (pkcs1, pkcs8) = rsa_ca_key();
        let key = KeyPair::from_pkcs8_pem_and_sign_algo(pkcs8, &rcgen::PKCS_RSA_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "etcd-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        // A distinct serial per CA so that two clusters' CAs are told apart.
        params.serial_number = Some(rcgen::SerialNumber::from(rand::random::<u64>().to_be_bytes().to_vec()));
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        write(&dir.join("ca.crt"), &ca_pem, 0o644);
        write(&dir.join("ca.key"), pkcs1, 0o600);
        let issuer = Issuer::new(params, key);
        Pki { ca_pem, ca_key_pkcs1_pem: pkcs1.clone(), issuer }
    }

    /// A CA unrelated to every other (own ECDSA key, other name): for "unknown authority" tests.
    pub fn foreign(dir: &Path) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "some-other-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        write(&dir.join("ca.crt"), &ca_pem, 0o644);
        write(&dir.join("ca.key"), &key.serialize_pem(), 0o600);
        let issuer = Issuer::new(params, key);
        Pki { ca_pem, ca_key_pkcs1_pem: String::new(), issuer }
    }

    /// Issues a leaf certificate; returns (cert PEM, key PEM).
    pub fn issue(
        &self,
        cn: &str,
        org: Option<&str>,
        ips: &[&str],
        dns: &[&str],
        usage: Usage,
        expired: bool,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        if let Some(o) = org {
            dn.push(DnType::OrganizationName, o);
        }
        params.distinguished_name = dn;
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(ip.parse().unwrap()));
        }
        for d in dns {
            params.subject_alt_names.push(SanType::DnsName((*d).try_into().unwrap()));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = match usage {
            Usage::ServerClient => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        let now = time::OffsetDateTime::now_utc();
        if expired {
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        } else {
            params.not_before = now - time::Duration::hours(1);
            params.not_after = now + time::Duration::days(365);
        }
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes a certificate pair as `<dir>/<base>.crt` and `<dir>/<base>.key` (0600).
    pub fn write_pair(dir: &Path, base: &str, pair: &(String, String)) {
        write(&dir.join(format!("{base}.crt")), &pair.0, 0o644);
        write(&dir.join(format!("{base}.key")), &pair.1, 0o600);
    }

    /// Writes a node's kubeadm tree under `pki` (`pki/etcd/…` and `pki/apiserver-etcd-client.*`).
    pub fn write_node(&self, pki: &Path, name: &str, ips: &[&str], dns: &[&str]) {
        let etcd = pki.join("etcd");
        write(&etcd.join("ca.crt"), &self.ca_pem, 0o644);
        write(&etcd.join("ca.key"), &self.ca_key_pkcs1_pem, 0o600);
        let mut names: Vec<&str> = dns.to_vec();
        names.push(name);
        Self::write_pair(&etcd, "server", &self.issue(name, None, ips, &names, Usage::ServerClient, false));
        Self::write_pair(&etcd, "peer", &self.issue(name, None, ips, &names, Usage::ServerClient, false));
        Self::write_pair(
            &etcd,
            "healthcheck-client",
            &self.issue("kube-etcd-healthcheck-client", None, &[], &[], Usage::Client, false),
        );
        Self::write_pair(
            pki,
            "apiserver-etcd-client",
            &self.issue("kube-apiserver-etcd-client", Some("system:masters"), &[], &[], Usage::Client, false),
        );
    }
}
