//! A small fake Kubernetes API server for discovery tests.
//!
//! No Kubernetes API server can be installed on this machine, so the tests serve the two lists
//! discovery reads — `GET /api/v1/namespaces/{ns}/pods?labelSelector=…` and
//! `GET /api/v1/nodes?labelSelector=…` — from this in-process HTTP server, with objects shaped
//! exactly like a real cluster's (kubeadm's etcd pod with its annotations; RKE1/k3s nodes with
//! the `node-role.kubernetes.io/etcd` label). It filters by the equality label selector as the
//! API server does, and records every request so tests can check what was asked.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// A running fake API server.
pub struct FakeKube {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Requests seen (`METHOD path?query`).
    pub requests: Arc<Mutex<Vec<String>>>,
}

fn matches(labels: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let term = term.trim();
        if let Some((k, v)) = term.split_once('=') {
            labels.get(k.trim_end_matches('=')).and_then(|x| x.as_str()) == Some(v)
        } else {
            labels.get(term).is_some()
        }
    })
}

fn decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

impl FakeKube {
    /// Serves `pods` (in their namespaces) and `nodes` until the test process ends.
    pub fn start(pods: Vec<Value>, nodes: Vec<Value>) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                seen.lock().unwrap().push(format!("{} {}", line.split_whitespace().next().unwrap_or(""), target));
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let selector =
                    query.split('&').find_map(|kv| kv.strip_prefix("labelSelector=")).map(decode).unwrap_or_default();
                let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
                let body = match parts.as_slice() {
                    ["api", "v1", "namespaces", ns, "pods"] => {
                        let items: Vec<Value> = pods
                            .iter()
                            .filter(|p| p["metadata"]["namespace"].as_str() == Some(ns))
                            .filter(|p| matches(&p["metadata"]["labels"], &selector))
                            .cloned()
                            .collect();
                        Some(
                            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "12345"}, "items": items}),
                        )
                    }
                    ["api", "v1", "nodes"] => {
                        let items: Vec<Value> =
                            nodes.iter().filter(|n| matches(&n["metadata"]["labels"], &selector)).cloned().collect();
                        Some(
                            json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": "12345"}, "items": items}),
                        )
                    }
                    _ => None,
                };
                let (status, body) = match body {
                    Some(b) => ("200 OK", b.to_string()),
                    None => (
                        "404 Not Found",
                        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404}).to_string(),
                    ),
                };
                let _ = write!(stream, "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        FakeKube { url, requests }
    }

    /// Writes a kubeconfig for this server into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: {}\n  name: fake\ncontexts:\n- context:\n    cluster: fake\n    user: admin\n  name: fake-admin@fake\ncurrent-context: fake-admin@fake\nusers:\n- name: admin\n  user:\n    token: test-token\n",
            self.url
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A kubeadm etcd static pod as the API server returns it (mirror pod), for a node whose etcd
/// flags are `flags`. `annotate` adds kubeadm's advertise-client-urls annotation.
pub fn kubeadm_pod(node: &str, flags: &[(String, String)], client_url: &str, annotate: bool, pod_ip: &str) -> Value {
    let mut command = vec!["etcd".to_string()];
    command.extend(flags.iter().filter(|(k, _)| k != "logger" && k != "log-level").map(|(k, v)| format!("--{k}={v}")));
    let mut annotations = json!({
        "kubernetes.io/config.hash": "a1b2c3d4e5f6",
        "kubernetes.io/config.mirror": "a1b2c3d4e5f6",
        "kubernetes.io/config.seen": "2026-11-20T10:00:00.000000000Z",
        "kubernetes.io/config.source": "file"
    });
    if annotate {
        annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] = json!(client_url);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("etcd-{node}"),
            "namespace": "kube-system",
            "uid": "6f1c8f3e-0000-4000-8000-000000000000",
            "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": "00000000-0000-4000-8000-000000000001", "controller": true}]
        },
        "spec": {
            "containers": [{
                "name": "etcd",
                "image": "registry.k8s.io/etcd:3.5.15-0",
                "command": command,
                "imagePullPolicy": "IfNotPresent",
                "resources": {"requests": {"cpu": "100m", "memory": "100Mi"}}
            }],
            "hostNetwork": true,
            "nodeName": node,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical"
        },
        "status": {"phase": "Running", "podIP": pod_ip, "hostIP": pod_ip, "podIPs": [{"ip": pod_ip}]}
    })
}

/// The mirror pods of a cluster's members, as the API server lists them: kubeadm's pods (with
/// its advertise-client-urls annotation when `annotate`; without `--advertise-client-urls` in the
/// command unless `with_flag`).
pub fn cluster_pods(c: &crate::Cluster, annotate: bool, with_flag: bool) -> Vec<Value> {
    c.nodes
        .iter()
        .map(|n| {
            let flags: Vec<(String, String)> =
                n.flags.iter().filter(|(k, _)| with_flag || k != "advertise-client-urls").cloned().collect();
            kubeadm_pod(&n.name, &flags, &n.client_url(), annotate, "127.0.0.1")
        })
        .collect()
}

/// A node as RKE1 or k3s labels its etcd nodes.
pub fn etcd_node(name: &str, internal_ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/etcd": "true",
                "node-role.kubernetes.io/controlplane": "true"
            }
        },
        "status": {"addresses": [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name}]}
    })
}
