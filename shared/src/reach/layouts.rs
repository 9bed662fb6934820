//! Where each Kubernetes distribution keeps etcd's files on a control-plane node: the one table
//! that discovery, `learner certs` and `snapshot schedule` read. Each entry with its source.

/// One distribution's layout.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// How messages name it (`kubeadm layout`).
    pub name: &'static str,
    /// The etcd static pod manifest, where etcd runs as one.
    pub manifest: Option<&'static str>,
    /// The folder of etcd's certificates and keys.
    pub pki_dir: &'static str,
    /// The etcd CA certificate.
    pub ca: &'static str,
    /// A client certificate and key etcd accepts (for RKE1, `{ip}` is the node's address with
    /// `.` and `:` as `-`).
    pub client_cert: &'static str,
    /// The key of [`Layout::client_cert`].
    pub client_key: &'static str,
    /// etcd's data dir.
    pub data_dir: &'static str,
    /// Where the layout is documented.
    pub source: &'static str,
}

/// kubeadm: a static pod, certificates under `/etc/kubernetes/pki/etcd`.
pub const KUBEADM: Layout = Layout {
    name: "kubeadm",
    manifest: Some("/etc/kubernetes/manifests/etcd.yaml"),
    pki_dir: "/etc/kubernetes/pki/etcd",
    ca: "/etc/kubernetes/pki/etcd/ca.crt",
    client_cert: "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
    client_key: "/etc/kubernetes/pki/etcd/healthcheck-client.key",
    data_dir: "/var/lib/etcd",
    source: "https://kubernetes.io/docs/setup/best-practices/certificates/ (kubeadm's constants.go: EtcdCACertName, EtcdHealthcheckClientCertName, DefaultEtcdDataDir)",
};

/// RKE2: a static pod written by the rke2 agent, certificates under its server's tls folder.
pub const RKE2: Layout = Layout {
    name: "rke2",
    manifest: Some("/var/lib/rancher/rke2/agent/pod-manifests/etcd.yaml"),
    pki_dir: "/var/lib/rancher/rke2/server/tls/etcd",
    ca: "/var/lib/rancher/rke2/server/tls/etcd/server-ca.crt",
    client_cert: "/var/lib/rancher/rke2/server/tls/etcd/client.crt",
    client_key: "/var/lib/rancher/rke2/server/tls/etcd/client.key",
    data_dir: "/var/lib/rancher/rke2/server/db/etcd",
    source: "https://docs.rke2.io/datastore/backup_restore and https://docs.rke2.io/security/certificates",
};

/// k3s: etcd embedded in the k3s server process (no manifest).
pub const K3S: Layout = Layout {
    name: "k3s",
    manifest: None,
    pki_dir: "/var/lib/rancher/k3s/server/tls/etcd",
    ca: "/var/lib/rancher/k3s/server/tls/etcd/server-ca.crt",
    client_cert: "/var/lib/rancher/k3s/server/tls/etcd/client.crt",
    client_key: "/var/lib/rancher/k3s/server/tls/etcd/client.key",
    data_dir: "/var/lib/rancher/k3s/server/db/etcd",
    source: "https://docs.k3s.io/datastore/ha-embedded and https://docs.k3s.io/cli/certificate",
};

/// RKE1: etcd as a plain container, one certificate per node named after its address.
pub const RKE1: Layout = Layout {
    name: "RKE1",
    manifest: None,
    pki_dir: "/etc/kubernetes/ssl",
    ca: "/etc/kubernetes/ssl/kube-ca.pem",
    client_cert: "/etc/kubernetes/ssl/kube-etcd-{ip}.pem",
    client_key: "/etc/kubernetes/ssl/kube-etcd-{ip}-key.pem",
    data_dir: "/var/lib/etcd",
    source: "https://rke.docs.rancher.com/cert-mgmt",
};

/// Every layout, in the order discovery tries them.
pub const LAYOUTS: &[Layout] = &[KUBEADM, RKE2, K3S, RKE1];

/// kubeadm's admin kubeconfig on control-plane nodes.
pub const KUBEADM_ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.conf";

impl Layout {
    /// Whether its certificate names depend on the node's address (`{ip}`).
    pub fn per_address(&self) -> bool {
        self.client_cert.contains("{ip}")
    }

    /// The client certificate and key for a member at `host` (an IP or name).
    pub fn client_pair(&self, host: &str) -> (String, String) {
        let ip = host.replace(['.', ':'], "-");
        (self.client_cert.replace("{ip}", &ip), self.client_key.replace("{ip}", &ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_has_a_source_and_absolute_paths() {
        for l in LAYOUTS {
            assert!(l.source.starts_with("https://"), "{}", l.name);
            for p in [l.pki_dir, l.ca, l.client_cert, l.client_key, l.data_dir].into_iter().chain(l.manifest) {
                assert!(p.starts_with('/'), "{}: {p}", l.name);
            }
            assert!(l.ca.starts_with(l.pki_dir) && l.client_cert.starts_with(l.pki_dir), "{}", l.name);
        }
        assert_eq!(
            RKE1.client_pair("10.0.0.5"),
            (
                "/etc/kubernetes/ssl/kube-etcd-10-0-0-5.pem".into(),
                "/etc/kubernetes/ssl/kube-etcd-10-0-0-5-key.pem".into()
            )
        );
    }
}
