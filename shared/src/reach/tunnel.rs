//! Tunnels to etcd members through the Kubernetes API: one `pods/portforward` WebSocket per
//! connection to a member's pod, so that a workstation with only a kubeconfig reaches every
//! member, each answering for itself.
//!
//! kubeadm's etcd pods run on the host network, so a pod's `127.0.0.1` is its node's: the
//! tunnel carries the member's client port (TLS end to end, verified against the member's
//! certificate exactly as over a direct connection) and, for the certificate-less report, its
//! metrics port. A tunnel opens under the dial timeout and then is an ordinary byte stream: the
//! TLS handshake and every RPC keep their deadlines.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde::Serialize;

use crate::error::{Error, FailureClass, TransportError};
use crate::reach::url::EtcdUrl;

/// How members are reached (`--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Port-forward when the members came from the Kubernetes API and no manifest or
    /// `--endpoints` is in play; direct otherwise.
    #[default]
    Auto,
    /// TCP to each member's client URL.
    Direct,
    /// Through the API server's `pods/portforward` to each member's pod.
    PortForward,
}

/// One member's pod.
#[derive(Debug, Clone)]
pub struct Route {
    /// The pod's name.
    pub pod: String,
    /// The member's name (the pod's node).
    pub name: String,
    /// Its client URL as the pod advertises it.
    pub client_url: String,
    url: EtcdUrl,
    /// Its plain-HTTP metrics port on the pod's loopback, from `--listen-metrics-urls`.
    pub metrics_port: Option<u16>,
    /// Why there is no metrics port, when there is none.
    pub no_metrics: Option<String>,
}

/// The pods to tunnel to and the API client to do it with. The routes are shared by every
/// clone and re-read from the API when a URL has none (a member added meanwhile, whose pod
/// kubelet has just started).
#[derive(Clone)]
pub struct Tunnels {
    client: kube::Client,
    pods: Api<Pod>,
    namespace: String,
    routes: Arc<RwLock<Vec<Route>>>,
    refreshed: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnels").field("namespace", &self.namespace).field("routes", &self.routes()).finish()
    }
}

/// The pod list is read again at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// An open tunnel: the byte stream, and the pod's error message if the far end could not
/// connect (what kubelet writes on the port's error channel).
pub struct Opened {
    /// The stream to the member's port.
    pub stream: tokio::io::DuplexStream,
    /// Resolves with the error kubelet reported, or `None` when the tunnel closed without one.
    pub error: Option<futures::future::BoxFuture<'static, Option<String>>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened")
    }
}

impl Tunnels {
    /// Tunnels through `client` to pods in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Tunnels {
        Tunnels {
            pods: Api::namespaced(client.clone(), namespace),
            client,
            namespace: namespace.to_string(),
            routes: Arc::default(),
            refreshed: Arc::default(),
        }
    }

    /// Routes `url` (a member's client URL as its pod advertises it) to `pod` of member
    /// `name`, whose `--listen-metrics-urls` is `metrics` (if set).
    pub fn add(&self, pod: &str, name: &str, url: &str, metrics: Option<&str>) {
        let Ok(parsed) = EtcdUrl::parse(url) else { return };
        let (metrics_port, no_metrics) = metrics_port(metrics);
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if routes.iter().any(|r| r.pod == pod) {
            return;
        }
        routes.push(Route {
            pod: pod.to_string(),
            name: name.to_string(),
            client_url: url.to_string(),
            url: parsed,
            metrics_port,
            no_metrics,
        });
    }

    /// Every member's pod.
    pub fn routes(&self) -> Vec<Route> {
        self.routes.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The pod and port where the member at `client_url` serves its metrics, if it does on
    /// a port the pod's loopback reaches.
    pub fn metrics_port(&self, client_url: &EtcdUrl) -> Option<(String, u16)> {
        let routes = self.routes();
        let r = routes.iter().find(|r| r.url.same_socket(client_url))?;
        r.metrics_port.map(|port| (r.pod.clone(), port))
    }

    /// [`Tunnels::route`], reading the etcd pods again (within `timeout`, at most once a
    /// second) when `url` has no route yet.
    pub async fn resolve(&self, url: &EtcdUrl, timeout: Duration) -> Option<(String, u16)> {
        if let Some(r) = self.exact(url) {
            return Some(r);
        }
        let due = {
            let mut last = self.refreshed.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= REFRESH_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            let ctx = "to route a port-forward";
            if let Ok(pods) = crate::reach::kube::etcd_pods(&self.client, &self.namespace, ctx, timeout).await {
                for pod in &pods {
                    if let Ok(m) = crate::reach::kube::pod_member(pod) {
                        if let Some(u) = m.urls.first() {
                            self.add(&m.pod, &m.name, u, m.flags.get("listen-metrics-urls").map(String::as_str));
                        }
                    }
                }
            }
        }
        self.route(url)
    }

    fn exact(&self, url: &EtcdUrl) -> Option<(String, u16)> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.iter().find(|r| r.url.same_socket(url)).map(|r| (r.pod.clone(), url.port()))
    }

    /// The namespace of the pods.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod that serves `url`, and the port to forward: the pod whose advertised URL is
    /// `url`, else the one on the same host (another port of the same member: its metrics).
    pub fn route(&self, url: &EtcdUrl) -> Option<(String, u16)> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        let exact = routes.iter().find(|r| r.url.same_socket(url));
        let host = || routes.iter().find(|r| r.url.host == url.host);
        exact.or_else(host).map(|r| (r.pod.clone(), url.port()))
    }

    /// The first pod, for the preflight.
    pub fn first(&self) -> Option<(String, u16)> {
        let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
        routes.first().map(|r| (r.pod.clone(), r.url.port()))
    }

    /// Opens a tunnel to `port` of `pod` within `timeout`. A refusal by the API (RBAC) is an
    /// [`Error::Forbidden`]; anything else a transport failure of the member at `endpoint`.
    pub async fn open(&self, endpoint: &str, pod: &str, port: u16, timeout: Duration) -> Result<Opened, Error> {
        let what = format!("pod {}/{pod} port {port}", self.namespace);
        let mut pf = match tokio::time::timeout(timeout, self.pods.portforward(pod, &[port])).await {
            Err(_) => {
                return Err(Error::Transport(TransportError::new(
                    endpoint,
                    FailureClass::DialTimeout,
                    format!(
                        "the port-forward tunnel to {what} did not open within {} (API server or kubelet slow)",
                        crate::base::units::format_duration(timeout)
                    ),
                )))
            }
            Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
                return Err(Error::Forbidden { what: format!("a port-forward to {what}"), message: s.message.clone() })
            }
            Ok(Err(kube::Error::Api(s))) => {
                return Err(Error::Transport(TransportError::new(
                    endpoint,
                    FailureClass::Network(format!("port-forward: {}", s.reason)),
                    format!("the API server refused the port-forward to {what}: {} ({})", s.message, s.code),
                )))
            }
            Ok(Err(e)) => {
                return Err(Error::Transport(TransportError::new(
                    endpoint,
                    FailureClass::Network("port-forward".into()),
                    format!("no port-forward tunnel to {what}: {e}"),
                )))
            }
            Ok(Ok(pf)) => pf,
        };
        let stream = pf.take_stream(port).ok_or_else(|| Error::Internal("port-forward without its stream".into()))?;
        let error = pf.take_error(port).map(|f| Box::pin(f) as futures::future::BoxFuture<'static, Option<String>>);
        // The forwarder's task runs on; it ends when the stream is dropped or the far end closes.
        drop(pf);
        Ok(Opened { stream, error })
    }
}

/// The port a tunnel can reach of `--listen-metrics-urls`: the first plain-HTTP URL on the
/// loopback or all addresses (kubelet's port-forward dials the pod's localhost).
pub fn metrics_port(flag: Option<&str>) -> (Option<u16>, Option<String>) {
    let Some(flag) = flag.filter(|f| !f.trim().is_empty()) else {
        return (None, Some("the pod has no --listen-metrics-urls".into()));
    };
    if let Some(u) = crate::reach::url::plain_http_urls(flag).into_iter().find(EtcdUrl::is_on_loopback) {
        return (Some(u.port()), None);
    }
    (
        None,
        Some(format!(
            "--listen-metrics-urls={flag} has no plain-http URL on the loopback, which is all a port-forward reaches"
        )),
    )
}

/// [`rbac_manifests`] as objects (the Role, then the RoleBinding), for a JSON `List`.
pub fn rbac_objects(namespace: &str, subject: &str) -> Result<Vec<serde_json::Value>, Error> {
    rbac_manifests(namespace, subject)?
        .split("\n---\n")
        .map(|doc| serde_saphyr::from_str(doc).map_err(|e| Error::Internal(format!("the RBAC manifests: {e}"))))
        .collect()
}

/// A minimal Role and RoleBinding for `subject` (`User:NAME`, `Group:NAME` or
/// `ServiceAccount:NS/NAME`) to run `kubectl etcd` from a workstation, as YAML: list the etcd
/// pods, port-forward to them, and read their logs (`doctor logs`, `get` on `pods/log`).
pub fn rbac_manifests(namespace: &str, subject: &str) -> Result<String, Error> {
    let (kind, name) = subject.split_once(':').ok_or_else(|| {
        Error::Usage(format!(
            "--print-rbac {subject:?}: expected User:NAME, Group:NAME or ServiceAccount:NAMESPACE/NAME"
        ))
    })?;
    let subject = match kind {
        "User" | "Group" => format!("  - kind: {kind}\n    apiGroup: rbac.authorization.k8s.io\n    name: {name}\n"),
        "ServiceAccount" => {
            let (ns, sa) = name.split_once('/').ok_or_else(|| {
                Error::Usage(format!("--print-rbac ServiceAccount:{name}: expected ServiceAccount:NAMESPACE/NAME"))
            })?;
            format!("  - kind: ServiceAccount\n    namespace: {ns}\n    name: {sa}\n")
        }
        other => {
            return Err(Error::Usage(format!(
                "--print-rbac: unknown subject kind {other:?}: expected User, Group or ServiceAccount"
            )))
        }
    };
    Ok(format!(
        "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kubectl-etcd
  namespace: {namespace}
rules:
  - apiGroups: [\"\"]
    resources: [\"pods\"]
    verbs: [\"get\", \"list\"]
  - apiGroups: [\"\"]
    resources: [\"pods/portforward\"]
    verbs: [\"create\", \"get\"]
  - apiGroups: [\"\"]
    resources: [\"pods/log\"]
    verbs: [\"get\"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kubectl-etcd
  namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kubectl-etcd
subjects:
{subject}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_port_a_tunnel_reaches() {
        assert_eq!(metrics_port(Some("http://127.0.0.1:2381")), (Some(2381), None));
        assert_eq!(metrics_port(Some("https://10.0.0.1:2381,http://0.0.0.0:2382")).0, Some(2382));
        assert!(metrics_port(Some("http://10.0.0.1:2381")).1.unwrap().contains("loopback"));
        assert!(metrics_port(None).1.unwrap().contains("no --listen-metrics-urls"));
        // The one loopback rule (EtcdUrl::is_on_loopback), also what a scrape on the node uses.
        for (flag, port) in [
            ("http://[::1]:2381", Some(2381)),
            ("http://localhost:2383", Some(2383)),
            ("http://[::]:2384", Some(2384)),
            ("http://127.0.0.2:2385", Some(2385)),
            ("https://127.0.0.1:2381", None),
            ("unix://metrics:2381", None),
        ] {
            assert_eq!(metrics_port(Some(flag)).0, port, "{flag}");
        }
    }

    #[test]
    fn rbac_for_each_kind_of_subject() {
        let y = rbac_manifests("kube-system", "User:alice").unwrap();
        assert!(y.contains("resources: [\"pods/portforward\"]\n    verbs: [\"create\", \"get\"]"), "{y}");
        assert!(y.contains("resources: [\"pods/log\"]\n    verbs: [\"get\"]"), "{y}");
        assert!(y.contains("  - kind: User\n    apiGroup: rbac.authorization.k8s.io\n    name: alice\n"), "{y}");
        let y = rbac_manifests("kube-system", "ServiceAccount:ops/etcd-bot").unwrap();
        assert!(y.contains("  - kind: ServiceAccount\n    namespace: ops\n    name: etcd-bot\n"), "{y}");
        assert!(rbac_manifests("kube-system", "alice").is_err());
        assert!(rbac_manifests("kube-system", "Robot:x").is_err());
        assert!(rbac_manifests("kube-system", "ServiceAccount:x").is_err());
    }
}
