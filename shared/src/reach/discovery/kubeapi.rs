//! Discovery through the Kubernetes API: the etcd static pods (`component=etcd,tier=control-plane`)
//! of kubeadm and RKE2, else the nodes labelled `node-role.kubernetes.io/etcd` (RKE1 runs etcd as
//! a plain container; k3s embeds it).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::manifest::{parse_flags, split_list, Manifest};
use super::{Endpoint, Log, Settings};
use crate::error::Error;

/// The label selector of control-plane etcd pods.
pub const POD_SELECTOR: &str = "component=etcd,tier=control-plane";
/// The label of etcd nodes in RKE1 and k3s.
pub const NODE_LABEL: &str = "node-role.kubernetes.io/etcd";
/// kubeadm's annotation holding a member's client URL.
pub const ADVERTISE_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

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

async fn client(settings: &Settings, log: &mut Log) -> Result<(kube::Client, String), ApiOutcome> {
    let options = KubeConfigOptions { context: settings.context.clone(), cluster: None, user: None };
    let (kubeconfig, what) = match &settings.kubeconfig {
        Some(p) => {
            let paths: Vec<PathBuf> = std::env::split_paths(p).filter(|p| !p.as_os_str().is_empty()).collect();
            let mut merged = Kubeconfig::default();
            for path in &paths {
                crate::base::fsio::read_bounded(path, "kubeconfig", crate::base::fsio::MAX_KUBECONFIG)
                    .map_err(ApiOutcome::Failed)?;
                let kc = Kubeconfig::read_from(path).map_err(|e| {
                    ApiOutcome::Failed(Error::Kube {
                        action: format!("read kubeconfig {}", path.display()),
                        source: Box::new(e),
                    })
                })?;
                merged = merged.merge(kc).map_err(|e| {
                    ApiOutcome::Failed(Error::Kube {
                        action: format!("merge kubeconfig {}", path.display()),
                        source: Box::new(e),
                    })
                })?;
            }
            (merged, format!("kubeconfig {}", p.display()))
        }
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            let path = home.join(".kube/config");
            if path.is_file() {
                crate::base::fsio::read_bounded(&path, "kubeconfig", crate::base::fsio::MAX_KUBECONFIG)
                    .map_err(ApiOutcome::Failed)?;
                let kc = Kubeconfig::read_from(&path).map_err(|e| {
                    ApiOutcome::Failed(Error::Kube {
                        action: format!("read kubeconfig {}", path.display()),
                        source: Box::new(e),
                    })
                })?;
                (kc, format!("kubeconfig {}", path.display()))
            } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
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

/// A response whose body reads at most [`crate::limits::MAX_API_BODY`] bytes.
fn cap_body<B>(r: http::Response<B>) -> http::Response<http_body_util::Limited<B>> {
    r.map(|b| http_body_util::Limited::new(b, crate::limits::MAX_API_BODY))
}

/// A Kubernetes API failure to `action`: the body cap, or anything else.
pub(crate) fn api_error(action: &str, e: kube::Error) -> Error {
    if crate::limits::is_body_cap(&e) {
        return crate::limits::api_body_too_large(action);
    }
    Error::Kube { action: action.to_string(), source: Box::new(e) }
}

/// The items of a list, at most [`crate::limits::MAX_LIST_ITEMS`] of them decoded; the ones
/// past it are only counted.
struct Capped<K> {
    kept: Vec<K>,
    total: usize,
}

impl<'de, K: serde::Deserialize<'de>> serde::Deserialize<'de> for Capped<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items<K>(std::marker::PhantomData<K>);
        impl<'de, K: serde::Deserialize<'de>> serde::de::Visitor<'de> for Items<K> {
            type Value = Capped<K>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of items")
            }
            fn visit_unit<E>(self) -> Result<Capped<K>, E> {
                Ok(Capped { kept: Vec::new(), total: 0 })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<K>, A::Error> {
                let mut c = Capped { kept: Vec::new(), total: 0 };
                while c.total < crate::limits::MAX_LIST_ITEMS {
                    match seq.next_element()? {
                        Some(k) => c.kept.push(k),
                        None => return Ok(c),
                    }
                    c.total += 1;
                }
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    c.total += 1;
                }
                Ok(c)
            }
        }
        d.deserialize_any(Items(std::marker::PhantomData))
    }
}

/// A list as the API returns it: its items (capped) and whether more pages follow.
#[derive(serde::Deserialize)]
struct BoundedList<K> {
    items: Option<Capped<K>>,
    metadata: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>,
}

/// `GET` the `K`s labelled `selector` (in `namespace`, or cluster-wide), asking for at most
/// [`crate::limits::MAX_LIST_ITEMS`] (a real API server pages past it, as for kubectl's
/// `--chunk-size`) and taking no more: a longer list is an error naming the bound. `action`
/// says what is listed, for errors (`list etcd pods in namespace kube-system (…)`).
pub(crate) async fn list<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
    action: &str,
) -> crate::Result<Vec<K>>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    let lp = ListParams::default().labels(selector).limit(crate::limits::MAX_LIST_ITEMS as u32);
    let req = kube::core::Request::new(K::url_path(&(), namespace))
        .list(&lp)
        .map_err(|e| Error::Kube { action: action.to_string(), source: Box::new(e) })?;
    let got: BoundedList<K> = client.request(req).await.map_err(|e| api_error(action, e))?;
    let more = got.metadata.and_then(|m| m.continue_).is_some_and(|c| !c.is_empty());
    let items = got.items.unwrap_or(Capped { kept: Vec::new(), total: 0 });
    if items.total > crate::limits::MAX_LIST_ITEMS || more {
        return Err(crate::limits::api_list_too_long(action, items.total));
    }
    Ok(items.kept)
}

/// [`list`] of the etcd pods in `ns` within `timeout`.
pub(crate) async fn etcd_pods(
    client: &kube::Client,
    ns: &str,
    ctx: &str,
    timeout: std::time::Duration,
) -> crate::Result<Vec<Pod>> {
    let action = format!("list etcd pods in namespace {ns} ({ctx})");
    let listed = tokio::time::timeout(timeout, list(client, Some(ns), POD_SELECTOR, &action))
        .await
        .map_err(|_| Error::Kube { action: action.clone(), source: "timed out".into() })?;
    listed.map_err(|e| forbidden(e, format!("listing the etcd pods in namespace {ns} ({ctx})")))
}

/// RBAC's refusal of `what` as [`Error::Forbidden`], which says what to grant; any other
/// error as it is.
fn forbidden(e: Error, what: String) -> Error {
    let Error::Kube { action, source } = e else { return e };
    match source.downcast::<kube::Error>() {
        Ok(k) => match *k {
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden { what, message: s.message.clone() },
            k => Error::Kube { action, source: Box::new(k) },
        },
        Err(source) => Error::Kube { action, source },
    }
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

/// A member as its etcd pod describes it.
#[derive(Debug)]
pub(crate) struct PodMember {
    /// The pod's name.
    pub pod: String,
    /// The member's name: the pod's node.
    pub name: String,
    /// Its client URLs.
    pub urls: Vec<String>,
    /// Where the URLs came from.
    pub how: String,
    /// The etcd flags of its command.
    pub flags: std::collections::BTreeMap<String, String>,
    /// The etcd container's name.
    pub container: String,
}

/// The member an etcd pod runs: its node, its client URLs (kubeadm's annotation, else
/// `--advertise-client-urls`, else the pod IP) and its flags; the pod's name when it names no
/// URL at all.
pub(crate) fn pod_member(pod: &Pod) -> Result<PodMember, String> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_else(|| pod_name.trim_start_matches("etcd-").to_string());
    let container =
        pod.spec.as_ref().and_then(|s| s.containers.iter().find(|c| c.name == "etcd").or(s.containers.first()));
    let mut argv = container.and_then(|c| c.command.clone()).unwrap_or_default();
    argv.extend(container.and_then(|c| c.args.clone()).unwrap_or_default());
    let flags = parse_flags(&argv);
    let annotation = pod.metadata.annotations.as_ref().and_then(|a| a.get(ADVERTISE_ANNOTATION)).cloned();
    let (urls, how) = if let Some(a) = annotation.filter(|a| !a.trim().is_empty()) {
        (split_list(&a), format!("annotation {ADVERTISE_ANNOTATION}"))
    } else if let Some(f) = flags.get("advertise-client-urls").filter(|f| !f.is_empty()) {
        (split_list(f), "--advertise-client-urls in the pod's command".to_string())
    } else if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
        (vec![format!("https://{}:2379", bracket(&ip))], "pod IP".to_string())
    } else {
        return Err(pod_name);
    };
    let container = container.map(|c| c.name.clone()).unwrap_or_default();
    Ok(PodMember { pod: pod_name, name, urls, how, flags, container })
}

fn api_failed(action: String, why: &str) -> ApiOutcome {
    ApiOutcome::Failed(Error::Kube { action, source: why.to_string().into() })
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}
