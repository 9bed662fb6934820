//! Node layouts: the etcd flags of a member and the `manifests/etcd.yaml` kubeadm writes.

use crate::*;

pub(crate) fn member_flags(
    n: &Node,
    initial_cluster: &str,
    state: &str,
    token: &str,
    quota: Option<u64>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let pki = n.pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    let mut f: Vec<(String, String)> = vec![
        ("advertise-client-urls".into(), n.client_url()),
        ("cert-file".into(), p("server.crt")),
        ("client-cert-auth".into(), "true".into()),
        ("data-dir".into(), n.data_dir().display().to_string()),
        ("initial-advertise-peer-urls".into(), n.peer_url()),
        ("initial-cluster".into(), initial_cluster.into()),
        ("initial-cluster-state".into(), state.into()),
        ("initial-cluster-token".into(), token.into()),
        ("key-file".into(), p("server.key")),
        ("listen-client-urls".into(), n.listen_client_urls()),
        ("listen-metrics-urls".into(), format!("http://127.0.0.1:{}", n.metrics_port)),
        ("listen-peer-urls".into(), n.peer_url()),
        ("name".into(), n.name.clone()),
        ("peer-cert-file".into(), p("peer.crt")),
        ("peer-client-cert-auth".into(), "true".into()),
        ("peer-key-file".into(), p("peer.key")),
        ("peer-trusted-ca-file".into(), p("ca.crt")),
        ("snapshot-count".into(), "10000".into()),
        ("trusted-ca-file".into(), p("ca.crt")),
        // Fast elections keep tests short; heartbeat 100ms is etcd's default.
        ("election-timeout".into(), "1000".into()),
        ("heartbeat-interval".into(), "100".into()),
        ("logger".into(), "zap".into()),
        ("log-level".into(), "warn".into()),
    ];
    if let Some(q) = quota {
        f.push(("quota-backend-bytes".into(), q.to_string()));
    }
    f.extend(extra.iter().cloned());
    f
}

/// The image tag of the installed etcd of minor `version` ("3.4" or "3.5"), as kubeadm tags it.
pub fn image_tag(version: &str) -> String {
    match version {
        "3.4" => "3.4.23-0".into(),
        "3.5" => "3.5.1-0".into(),
        // An exact installed version (3.5.0): its own image.
        v => format!("{v}-0"),
    }
}

/// Writes `manifests/etcd.yaml` shaped exactly as kubeadm writes it.
pub(crate) fn write_manifest(n: &Node, version: &str) {
    let mut cmd = String::from("    - etcd\n");
    for (k, v) in &n.flags {
        if k == "logger" || k == "log-level" {
            continue;
        }
        cmd.push_str(&format!("    - --{k}={v}\n"));
    }
    let data = n.data_dir().display().to_string();
    let pki = n.pki_etcd().display().to_string();
    let image = image_tag(version);
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: {client}
  creationTimestamp: null
  labels:
    component: etcd
    tier: control-plane
  name: etcd-{name}
  namespace: kube-system
spec:
  containers:
  - command:
{cmd}    image: registry.k8s.io/etcd:{image}
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /health?exclude=NOSPACE&serializable=true
        port: 2381
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: etcd
    resources:
      requests:
        cpu: 100m
        memory: 100Mi
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 127.0.0.1
        path: /health?serializable=false
        port: 2381
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: {data}
      name: etcd-data
    - mountPath: {pki}
      name: etcd-certs
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: {pki}
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: {data}
      type: DirectoryOrCreate
    name: etcd-data
status: {{}}
"#,
        client = n.client_url(),
        name = n.name,
    );
    std::fs::create_dir_all(n.root.join("manifests")).unwrap();
    std::fs::write(n.manifest(), yaml).unwrap();
}
