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
        let text = crate::util::read_bounded_string(path, "static pod manifest", crate::util::MAX_MANIFEST)?;
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
            if let Ok(text) = crate::util::read_bounded_string(&cfg, "etcd config file", crate::util::MAX_MANIFEST) {
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
}
