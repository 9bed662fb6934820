//! Discovery through the Kubernetes API: the etcd static pods (`component=etcd,tier=control-plane`)
//! of kubeadm and RKE2, else the nodes labelled `node-role.kubernetes.io/etcd` (RKE1 runs etcd as
//! a plain container; k3s embeds it).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Node;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::manifest::Manifest;
use super::settings::{Endpoint, Log, Settings};
use crate::error::Error;
use crate::reach::kube::{bracket, cap_body, etcd_pods, list, pod_member, PodMember, NODE_LABEL, POD_SELECTOR};

/// What the API gave.
#[derive(Debug)]
pub(crate) struct Found {
    pub endpoints: Vec<Endpoint>,
    /// True when the list is the whole set of members (pods or nodes were found).
    pub complete: bool,
    /// The etcd flags of the first pod, to find certificate paths on this node.
    pub pod_flags: Option<Manifest>,
    /// Port-forward routes to the pods (none when members came from nodes, not pods).
    pub tunnels: Option<crate::reach::tunnel::Tunnels>,
}

/// Why the API gave nothing.
#[derive(Debug)]
pub(crate) enum ApiOutcome {
    /// It was tried and found nothing; each line says what was tried.
    Tried(Vec<String>),
    /// It failed in a way the user must fix.
    Failed(Error),
}

/// The kubeconfig kubectl would read: `--kubeconfig`/`KUBECONFIG` (a list of files merged as
/// kubectl merges them: the first file to set a value wins), else `~/.kube/config`; `None`
/// when there is none, and what was read.
fn read_kubeconfig(settings: &Settings) -> Result<Option<(Kubeconfig, String)>, ApiOutcome> {
    let read = |path: &std::path::Path| {
        crate::base::fsio::read_bounded(path, "kubeconfig", crate::base::fsio::MAX_KUBECONFIG)
            .map_err(ApiOutcome::Failed)?;
        Kubeconfig::read_from(path).map_err(|e| {
            ApiOutcome::Failed(Error::Kube {
                action: format!("read kubeconfig {}", path.display()),
                source: Box::new(e),
            })
        })
    };
    match &settings.kubeconfig {
        Some(p) => {
            let paths: Vec<PathBuf> = std::env::split_paths(p).filter(|p| !p.as_os_str().is_empty()).collect();
            let mut merged = Kubeconfig::default();
            for path in &paths {
                let kc = read(path)?;
                merged = merged.merge(kc).map_err(|e| {
                    ApiOutcome::Failed(Error::Kube {
                        action: format!("merge kubeconfig {}", path.display()),
                        source: Box::new(e),
                    })
                })?;
            }
            let what = match paths.as_slice() {
                [one] => format!("kubeconfig {}", one.display()),
                [first, rest @ ..] => format!("kubeconfig {} and {} more", first.display(), rest.len()),
                [] => format!("kubeconfig {}", p.display()),
            };
            Ok(Some((merged, what)))
        }
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            let path = home.join(".kube/config");
            if path.is_file() {
                Ok(Some((read(&path)?, format!("kubeconfig {}", path.display()))))
            } else {
                Ok(None)
            }
        }
    }
}

/// The contexts of the kubeconfig kubectl would read (`--kubeconfig`, `KUBECONFIG`'s list,
/// `~/.kube/config`), in the order the files name them.
pub fn contexts(settings: &Settings) -> crate::Result<Vec<String>> {
    match read_kubeconfig(settings) {
        Ok(Some((kc, _))) => Ok(kc.contexts.into_iter().map(|c| c.name).collect()),
        Ok(None) => Err(Error::Usage(
            "no kubeconfig to list contexts from (no --kubeconfig, no KUBECONFIG, no ~/.kube/config): pass --kubeconfig PATH"
                .into(),
        )),
        Err(ApiOutcome::Failed(e)) => Err(e),
        Err(ApiOutcome::Tried(why)) => Err(Error::Usage(why.join("; "))),
    }
}

async fn client(settings: &Settings, log: &mut Log) -> Result<(kube::Client, String), ApiOutcome> {
    let options = KubeConfigOptions { context: settings.context.clone(), cluster: None, user: None };
    let (kubeconfig, what) = match read_kubeconfig(settings)? {
        Some(found) => found,
        None => {
            let path = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".kube/config");
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                let config = kube::Config::incluster().map_err(|e| {
                    ApiOutcome::Failed(Error::Kube {
                        action: "load the in-cluster configuration".into(),
                        source: Box::new(e),
                    })
                })?;
                log.say("Kubernetes API: in-cluster service account".into());
                let c = build_client(config).map_err(|e| {
                    ApiOutcome::Failed(Error::Kube { action: "build a client".into(), source: Box::new(e) })
                })?;
                return Ok((c, "in-cluster config".into()));
            } else {
                return Err(ApiOutcome::Tried(vec![format!(
                    "no kubeconfig for the Kubernetes API (no --kubeconfig, no KUBECONFIG, no {})",
                    path.display()
                )]));
            }
        }
    };
    let context = settings.context.clone().or(kubeconfig.current_context.clone()).unwrap_or_default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.map_err(|e| {
        ApiOutcome::Failed(Error::Kube { action: format!("load context {context:?} from {what}"), source: Box::new(e) })
    })?;
    let server = config.cluster_url.to_string();
    log.say(format!("Kubernetes API: {server} (context {context:?} of {what})"));
    let c = build_client(config)
        .map_err(|e| ApiOutcome::Failed(Error::Kube { action: "build a client".into(), source: Box::new(e) }))?;
    Ok((c, format!("server {server}, context {context:?} of {what}")))
}

/// A client for the Kubernetes API from `--kubeconfig`/`KUBECONFIG`/`~/.kube/config`
/// (`--context`), or the in-cluster service account; and what it talks to.
pub async fn kube_client(settings: &Settings) -> crate::Result<(kube::Client, String)> {
    let mut log = Log::new(settings.verbose);
    client(settings, &mut log).await.map_err(|o| match o {
        ApiOutcome::Failed(e) => e,
        ApiOutcome::Tried(why) => Error::Usage(format!("{}: pass --kubeconfig PATH", why.join("; "))),
    })
}

/// kube's client stack (base URI, authentication, extra headers, rustls) over connections with
/// TCP_NODELAY: a port-forward tunnel carries TLS handshakes and small HTTP/2 frames, and
/// Nagle's algorithm would hold each second small write until the API server's delayed ACK
/// (40 ms on Linux), several times per connection. With a proxy configured, kube's own builder.
/// Either way every response body is read through a cap of [`crate::limits::MAX_API_BODY`]
/// bytes: an endless or oversized answer fails instead of growing the process.
fn build_client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    use kube::client::ConfigExt;
    if config.proxy_url.is_some() {
        let capped = tower::util::MapResponseLayer::new(cap_body::<Box<kube::client::DynBody>>);
        return Ok(kube::client::ClientBuilder::try_from(config)?.with_layer(&capped).build());
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = config.rustls_https_connector_with_connector(http)?;
    let client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
        .map_response(cap_body)
        .service(client);
    Ok(kube::Client::new(service, config.default_namespace))
}

pub(crate) async fn discover(settings: &Settings, log: &mut Log) -> Result<Found, ApiOutcome> {
    let (client, ctx) = client(settings, log).await?;
    let timeout = settings.dial_timeout + settings.command_timeout;
    let ns = settings.namespace.as_str();
    let pods = etcd_pods(&client, ns, &ctx, timeout).await.map_err(ApiOutcome::Failed)?;
    let mut tried = Vec::new();
    if !pods.is_empty() {
        let source = format!("Kubernetes API pods -n {ns} -l {POD_SELECTOR}");
        let mut endpoints = Vec::new();
        let mut pod_flags = None;
        let tunnels = crate::reach::tunnel::Tunnels::new(client.clone(), ns);
        for pod in &pods {
            let m = match pod_member(pod) {
                Ok(m) => m,
                Err(pod_name) => {
                    log.say(format!(
                        "pod {pod_name}: no annotation, no --advertise-client-urls and no pod IP; skipped"
                    ));
                    continue;
                }
            };
            let PodMember { pod: pod_name, name, urls, how, flags, container } = m;
            log.say(format!("pod {pod_name}: member {name} at {} (from {how})", urls.join(",")));
            if let Some(u) = urls.into_iter().next() {
                tunnels.add(&pod_name, &name, &u, flags.get("listen-metrics-urls").map(String::as_str));
                endpoints.push(Endpoint { name: Some(name), url: u, source: format!("{source} ({how})") });
            }
            if pod_flags.is_none() && !flags.is_empty() {
                pod_flags = Some(Manifest {
                    path: PathBuf::from(format!("pod {ns}/{pod_name}")),
                    pod_name: Some(pod_name.clone()),
                    container,
                    flags,
                    config_file: None,
                });
            }
        }
        if !endpoints.is_empty() {
            return Ok(Found { endpoints, complete: true, pod_flags, tunnels: Some(tunnels) });
        }
        tried.push(format!("etcd pods in namespace {ns} have no client URL"));
    } else {
        log.say(format!("no pods labelled {POD_SELECTOR} in namespace {ns}"));
        tried.push(format!("no pods labelled {POD_SELECTOR} in namespace {ns} ({ctx})"));
    }

    let action = format!("list nodes labelled {NODE_LABEL} ({ctx})");
    let nodes: Vec<Node> = tokio::time::timeout(timeout, list(&client, None, NODE_LABEL, &action))
        .await
        .map_err(|_| api_failed(action.clone(), "timed out"))?
        .map_err(ApiOutcome::Failed)?;
    let mut endpoints = Vec::new();
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let ip = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP").map(|a| a.address.clone()));
        match ip {
            Some(ip) => {
                let url = format!("https://{}:2379", bracket(&ip));
                log.say(format!("node {name} (label {NODE_LABEL}): {url}"));
                endpoints.push(Endpoint {
                    name: Some(name),
                    url,
                    source: format!("Kubernetes API nodes -l {NODE_LABEL} (InternalIP)"),
                });
            }
            None => log.say(format!("node {name} has no InternalIP; skipped")),
        }
    }
    if endpoints.is_empty() {
        tried.push(format!("no nodes labelled {NODE_LABEL} with an InternalIP ({ctx})"));
        if nodes.is_empty() {
            tried.push(
                "etcd is not visible from this cluster's API: managed control planes (EKS, GKE, AKS) run it out of reach; on a self-managed cluster, run on a control-plane node or pass --endpoints".into(),
            );
        }
        return Err(ApiOutcome::Tried(tried));
    }
    Ok(Found { endpoints, complete: true, pod_flags: None, tunnels: None })
}

fn api_failed(action: String, why: &str) -> ApiOutcome {
    ApiOutcome::Failed(Error::Kube { action, source: why.to_string().into() })
}
