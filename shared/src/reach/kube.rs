//! Reading the Kubernetes API, bounded: lists of etcd pods (at most
//! [`crate::limits::MAX_LIST_ITEMS`], bodies at most [`crate::limits::MAX_API_BODY`]) and the
//! member each etcd pod runs. Used by discovery and by the port-forward tunnels.

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

use crate::error::Error;
use crate::reach::discovery::manifest::{parse_flags, split_list};

/// The label selector of control-plane etcd pods.
pub const POD_SELECTOR: &str = "component=etcd,tier=control-plane";
/// The label of etcd nodes in RKE1 and k3s.
pub const NODE_LABEL: &str = "node-role.kubernetes.io/etcd";
/// kubeadm's annotation holding a member's client URL.
pub const ADVERTISE_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

/// A response whose body reads at most [`crate::limits::MAX_API_BODY`] bytes.
pub(crate) fn cap_body<B>(r: http::Response<B>) -> http::Response<http_body_util::Limited<B>> {
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
pub(crate) fn forbidden(e: Error, what: String) -> Error {
    let Error::Kube { action, source } = e else { return e };
    match source.downcast::<kube::Error>() {
        Ok(k) => match *k {
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden { what, message: s.message.clone() },
            k => Error::Kube { action, source: Box::new(k) },
        },
        Err(source) => Error::Kube { action, source },
    }
}

/// What `pods/log` gave for one container.
#[derive(Debug)]
pub(crate) enum PodLog {
    /// The log as kubelet serves it (CRI lines unwrapped); `cut` when it filled
    /// [`crate::limits::MAX_POD_LOG`].
    Text { body: Vec<u8>, cut: bool },
    /// kubelet has no such container: its 400 as the API server passes it on (`previous
    /// terminated container "etcd" in pod "P" not found`, `… is waiting to start: …`).
    NoContainer(String),
}

/// `GET pods/{pod}/log?container=…&previous=…&sinceSeconds=…&limitBytes=…` in `ns`, as
/// `kubectl logs` asks it, within `timeout`: at most [`crate::limits::MAX_POD_LOG`] bytes asked
/// and read.
pub(crate) async fn pod_log(
    client: &kube::Client,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
    since: Option<std::time::Duration>,
    timeout: std::time::Duration,
) -> crate::Result<PodLog> {
    use futures::AsyncReadExt;
    let what = format!("the log of pod {ns}/{pod} container {container}{}", if previous { " (previous)" } else { "" });
    let action = format!("read {what}");
    let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), ns);
    let lp = kube::api::LogParams {
        container: Some(container.to_string()),
        previous,
        // sinceSeconds must be at least 1 (the API server's PodLogOptions validation).
        since_seconds: since.map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1) as i64),
        limit_bytes: Some(crate::limits::MAX_POD_LOG as i64),
        ..Default::default()
    };
    let read = async {
        let stream = api.log_stream(pod, &lp).await?;
        let mut body = Vec::new();
        let limit = crate::limits::MAX_POD_LOG as u64;
        stream.take(limit).read_to_end(&mut body).await.map_err(kube::Error::ReadEvents)?;
        Ok::<_, kube::Error>(body)
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(Error::Kube { action, source: "timed out".into() }),
        Ok(Ok(body)) => {
            let cut = body.len() >= crate::limits::MAX_POD_LOG;
            Ok(PodLog::Text { body, cut })
        }
        Ok(Err(kube::Error::Api(s))) if s.code == 400 => Ok(PodLog::NoContainer(s.message.clone())),
        Ok(Err(e)) => Err(forbidden(api_error(&action, e), format!("reading {what}"))),
    }
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

/// An IP address as a URL host: IPv6 in brackets.
pub(crate) fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}
