//! Reading an etcd static pod manifest (kubeadm's `etcd.yaml`, RKE2's etcd static pod) and the
//! etcd flags of its etcd container.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::error::{Error, Result};

/// The etcd settings read from a static pod manifest.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Manifest {
    /// Where the manifest was read from.
    pub path: PathBuf,
    /// The pod's name (`etcd-<node>` for kubeadm).
    pub pod_name: Option<String>,
    /// The etcd container's name.
    pub container: String,
    /// The etcd flags (without leading dashes), last value wins, as etcd's flag parser does.
    /// Values from an etcd `--config-file` fill in flags not given on the command line.
    pub flags: BTreeMap<String, String>,
    /// The config file the flags came from too, when the container uses `--config-file`.
    pub config_file: Option<PathBuf>,
}

impl Manifest {
    /// Reads and parses a manifest file.
    pub fn load(path: &Path) -> Result<Manifest> {
        let text =
            crate::base::fsio::read_bounded_string(path, "static pod manifest", crate::base::fsio::MAX_MANIFEST)?;
        Self::parse(path, &text)
    }

    /// Parses manifest text; `path` is used for messages and to resolve nothing else.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
        let pod: Pod = serde_saphyr::from_str(text)
            .map_err(|e| Error::ManifestParse { path: path.to_path_buf(), reason: first_line(&e.to_string()) })?;
        if pod.metadata.name.is_none() && pod.spec.is_none() {
            return Err(Error::ManifestParse {
                path: path.to_path_buf(),
                reason: "the document has neither metadata.name nor spec".into(),
            });
        }
        let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or(&[]);
        let container = containers
            .iter()
            .find(|c| is_etcd_container(c))
            .ok_or_else(|| Error::ManifestNoEtcd { path: path.to_path_buf() })?;
        let mut argv: Vec<String> = container.command.clone().unwrap_or_default();
        if argv.first().is_some_and(|a| is_etcd_binary(a)) {
            argv.remove(0);
        }
        argv.extend(container.args.clone().unwrap_or_default());
        let mut flags = parse_flags(&argv);
        let mut config_file = None;
        if let Some(cfg) = flags.get("config-file").cloned() {
            let cfg = PathBuf::from(cfg);
            // A config file that is not readable here (for example when the manifest was copied
            // off the node) leaves the command-line flags as they are.
            if let Ok(text) =
                crate::base::fsio::read_bounded_string(&cfg, "etcd config file", crate::base::fsio::MAX_MANIFEST)
            {
                for (k, v) in parse_config_file(&text) {
                    flags.entry(k).or_insert(v);
                }
                config_file = Some(cfg);
            }
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            pod_name: pod.metadata.name.clone(),
            container: container.name.clone(),
            flags,
            config_file,
        })
    }

    /// The value of an etcd flag (name without dashes).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A comma-separated flag as a list.
    pub fn list(&self, name: &str) -> Vec<String> {
        split_list(self.flag(name).unwrap_or(""))
    }

    /// The member name (`--name`).
    pub fn name(&self) -> Option<&str> {
        self.flag("name")
    }

    /// The client URLs to contact: `--advertise-client-urls`, else the non-wildcard
    /// `--listen-client-urls`.
    pub fn client_urls(&self) -> Vec<String> {
        let adv = self.list("advertise-client-urls");
        if !adv.is_empty() {
            return adv;
        }
        self.list("listen-client-urls")
            .into_iter()
            .filter(|u| !u.contains("://0.0.0.0") && !u.contains("://[::]"))
            .collect()
    }

    /// A loopback client URL this node listens on, if any (preferred on the node itself).
    pub fn loopback_client_url(&self) -> Option<String> {
        self.list("listen-client-urls")
            .into_iter()
            .find(|u| u.contains("://127.0.0.1") || u.contains("://localhost") || u.contains("://[::1]"))
    }

    /// `--quota-backend-bytes`, when set.
    pub fn quota_backend_bytes(&self) -> Option<u64> {
        self.flag("quota-backend-bytes").and_then(|v| v.parse().ok())
    }
}

/// etcd's backend quota when `--quota-backend-bytes` is unset or 0 (etcd's
/// `DefaultQuotaBytes`, 2 GiB).
pub const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;

/// The quota a member runs with: `flag` (the command's `--quota-backend-bytes`, with units),
/// else the manifest's, else etcd's default. The one place health and defrag take it from.
pub fn quota(flag: Option<u64>, manifest: Option<&Manifest>) -> u64 {
    flag.or_else(|| manifest.and_then(Manifest::quota_backend_bytes)).filter(|q| *q > 0).unwrap_or(DEFAULT_QUOTA)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// Splits a comma-separated list, trimming and dropping empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(String::from).collect()
}

fn is_etcd_binary(arg: &str) -> bool {
    Path::new(arg).file_name().is_some_and(|n| n == "etcd")
}

fn is_etcd_container(c: &Container) -> bool {
    if c.name == "etcd" {
        return true;
    }
    c.command.as_ref().and_then(|cmd| cmd.first()).is_some_and(|a| is_etcd_binary(a))
}

/// Parses `--flag=value`, `--flag value` and `-flag value` forms into a map (last one wins).
/// A flag followed by another flag or by nothing is boolean `true`.
pub fn parse_flags(argv: &[String]) -> BTreeMap<String, String> {
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = argv[i].trim();
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            continue;
        };
        if let Some((k, v)) = body.split_once('=') {
            flags.insert(k.to_string(), v.to_string());
        } else if i < argv.len() && !argv[i].starts_with('-') {
            flags.insert(body.to_string(), argv[i].clone());
            i += 1;
        } else {
            flags.insert(body.to_string(), "true".to_string());
        }
    }
    flags
}

/// Reads an etcd YAML config file (`--config-file`, as RKE2 uses) into flag names.
/// Nested `client-transport-security` and `peer-transport-security` map to the flags etcd
/// derives from them (`cert-file`, `peer-cert-file`, ...).
pub fn parse_config_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(text) else {
        return out;
    };
    let Some(map) = value.as_object() else {
        return out;
    };
    for (k, v) in map {
        match (k.as_str(), v) {
            ("client-transport-security", serde_json::Value::Object(m)) => {
                for (sk, sv) in m {
                    if let Some(s) = scalar(sv) {
                        out.insert(sk.clone(), s);
                    }
                }
            }
            ("peer-transport-security", serde_json::Value::Object(m)) => {
                for (sk, sv) in m {
                    if let Some(s) = scalar(sv) {
                        out.insert(format!("peer-{sk}"), s);
                    }
                }
            }
            (_, v) => {
                if let Some(s) = scalar(v) {
                    out.insert(k.clone(), s);
                }
            }
        }
    }
    out
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

// Rewriting: both keep every line but the flags they set, and the manifest's formatting.

/// The flags a new member's manifest gets (`kubectl etcd learner add` prints them).
#[derive(Debug, Clone, Copy)]
pub struct NewMemberFlags<'a> {
    /// `--name`.
    pub name: &'a str,
    /// `--initial-cluster`.
    pub initial_cluster: &'a str,
    /// `--initial-advertise-peer-urls` (also its `--listen-peer-urls`).
    pub initial_advertise_peer_urls: &'a str,
}

/// Derives the new member's static pod manifest from this node's: `--name`,
/// `--initial-cluster`, `--initial-cluster-state=existing` and `--initial-advertise-peer-urls`
/// set; this node's address replaced by the new member's in every URL; the pod renamed.
/// Formatting and every other line are kept as they are.
pub fn for_new_member(text: &str, old_name: &str, old_host: &str, new_host: &str, s: &NewMemberFlags) -> String {
    let mut out = Vec::new();
    // Insert the state flag after --initial-cluster only when the manifest has none of its own
    // (kubeadm's first node has none; joined nodes' manifests do).
    let mut saw_state = text.lines().any(|l| l.trim_start().starts_with("- --initial-cluster-state="));
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let flag = trimmed.strip_prefix("- --").and_then(|f| f.split_once('='));
        let new_line = match flag {
            Some(("name", _)) => format!("{indent}- --name={}", s.name),
            Some(("initial-cluster", _)) => format!("{indent}- --initial-cluster={}", s.initial_cluster),
            Some(("initial-cluster-state", _)) => {
                saw_state = true;
                format!("{indent}- --initial-cluster-state=existing")
            }
            Some(("initial-advertise-peer-urls", _)) => {
                format!("{indent}- --initial-advertise-peer-urls={}", s.initial_advertise_peer_urls)
            }
            // The new member listens for peers where it advertises them: its own host and port.
            Some(("listen-peer-urls", _)) => format!("{indent}- --listen-peer-urls={}", s.initial_advertise_peer_urls),
            Some((k @ ("advertise-client-urls" | "listen-client-urls" | "listen-metrics-urls"), v)) => {
                format!("{indent}- --{k}={}", replace_host(v, old_host, new_host))
            }
            _ if trimmed.starts_with("kubeadm.kubernetes.io/etcd.advertise-client-urls:") => {
                replace_host(line, old_host, new_host)
            }
            _ if !old_name.is_empty() && trimmed == format!("name: etcd-{old_name}") => {
                format!("{indent}name: etcd-{}", s.name)
            }
            _ => line.to_string(),
        };
        out.push(new_line);
        if !saw_state && flag.is_some_and(|(k, _)| k == "initial-cluster") {
            saw_state = true;
            out.push(format!("{indent}- --initial-cluster-state=existing"));
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn replace_host(v: &str, old: &str, new: &str) -> String {
    if old.is_empty() || old == new {
        return v.to_string();
    }
    v.replace(&format!("//{old}:"), &format!("//{new}:"))
}

/// Rewrites the manifest's `--initial-cluster-token` (added when missing) and, when given,
/// `--initial-cluster` (with `--initial-cluster-state=new`) to describe the restored cluster.
pub fn for_restored_cluster(text: &str, token: &str, initial_cluster: Option<&str>) -> String {
    let mut out: Vec<String> = Vec::new();
    // The flag is replaced where it stands, and inserted after --initial-cluster only when the
    // manifest has none: one token line, however often a node is restored.
    let mut saw_token = text.lines().any(|l| l.trim_start().starts_with("- --initial-cluster-token="));
    let mut kept_token = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("- --initial-cluster-token=") {
            if !kept_token {
                out.push(format!("{indent}- --initial-cluster-token={token}"));
            }
            kept_token = true;
        } else if let (Some(ic), true) = (initial_cluster, trimmed.starts_with("- --initial-cluster=")) {
            out.push(format!("{indent}- --initial-cluster={ic}"));
        } else if initial_cluster.is_some() && trimmed.starts_with("- --initial-cluster-state=") {
            out.push(format!("{indent}- --initial-cluster-state=new"));
        } else {
            out.push(line.to_string());
        }
        if !saw_token && trimmed.starts_with("- --initial-cluster=") {
            saw_token = true;
            out.push(format!("{indent}- --initial-cluster-token={token}"));
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_forms() {
        let argv: Vec<String> =
            ["--name=a", "--data-dir", "/var/lib/etcd", "--client-cert-auth", "--snapshot-count=10000"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let f = parse_flags(&argv);
        assert_eq!(f["name"], "a");
        assert_eq!(f["data-dir"], "/var/lib/etcd");
        assert_eq!(f["client-cert-auth"], "true");
        assert_eq!(f["snapshot-count"], "10000");
    }

    #[test]
    fn config_file_mapping() {
        let f = parse_config_file(
            "name: node1\nadvertise-client-urls: https://10.0.0.1:2379\nclient-transport-security:\n  cert-file: /tls/server-client.crt\n  key-file: /tls/server-client.key\n  trusted-ca-file: /tls/server-ca.crt\n  client-cert-auth: true\npeer-transport-security:\n  cert-file: /tls/peer.crt\n",
        );
        assert_eq!(f["name"], "node1");
        assert_eq!(f["trusted-ca-file"], "/tls/server-ca.crt");
        assert_eq!(f["peer-cert-file"], "/tls/peer.crt");
        assert_eq!(f["client-cert-auth"], "true");
    }

    #[test]
    fn restored_cluster_rewrite() {
        let text = "spec:\n  containers:\n  - command:\n    - etcd\n    - --initial-cluster=a=https://1:2380,b=https://2:2380\n    - --initial-cluster-state=existing\n    - --name=a\n";
        let out = for_restored_cluster(text, "tok-restored-1234", Some("a=https://1:2380"));
        assert!(out.contains("    - --initial-cluster=a=https://1:2380\n"));
        assert!(out.contains("    - --initial-cluster-token=tok-restored-1234\n"));
        assert!(out.contains("    - --initial-cluster-state=new\n"));
        assert!(out.contains("    - --name=a\n"));
        // Restoring again replaces the token; it never adds a second line.
        let again = for_restored_cluster(&out, "tok-restored-5678", Some("a=https://1:2380"));
        assert_eq!(again.matches("--initial-cluster-token=").count(), 1, "{again}");
        assert!(again.contains("--initial-cluster-token=tok-restored-5678\n"));
        let kubeadm_order = "    - --initial-cluster=a=https://1:2380\n    - --initial-cluster-state=new\n    - --initial-cluster-token=old\n";
        let out = for_restored_cluster(kubeadm_order, "t2", Some("a=https://1:2380,b=https://2:2380"));
        assert_eq!(out.matches("--initial-cluster-token=").count(), 1, "{out}");
    }

    #[test]
    fn new_member_rewrite() {
        let text = "metadata:\n  annotations:\n    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.0.1:2379\n  name: etcd-cp-1\nspec:\n  containers:\n  - command:\n    - etcd\n    - --advertise-client-urls=https://10.0.0.1:2379\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n    - --initial-cluster=cp-1=https://10.0.0.1:2380\n    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.1:2379\n    - --listen-peer-urls=https://10.0.0.1:2380\n    - --name=cp-1\n";
        let flags = NewMemberFlags {
            name: "cp-4",
            initial_cluster: "cp-1=https://10.0.0.1:2380,cp-4=https://10.0.0.4:2380",
            initial_advertise_peer_urls: "https://10.0.0.4:2380",
        };
        let out = for_new_member(text, "cp-1", "10.0.0.1", "10.0.0.4", &flags);
        assert!(out.contains("etcd.advertise-client-urls: https://10.0.0.4:2379\n"), "{out}");
        assert!(out.contains("  name: etcd-cp-4\n"));
        assert!(out.contains("    - --initial-cluster-state=existing\n"), "{out}");
        assert!(out.contains("    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.0.4:2379\n"), "{out}");
        assert!(out.contains("    - --listen-peer-urls=https://10.0.0.4:2380\n"));
        assert!(out.contains("    - --name=cp-4\n"));
        assert_eq!(out.matches("10.0.0.1").count(), 1, "only the old member in --initial-cluster: {out}");
    }
}
