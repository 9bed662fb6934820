//! Discovery: finds the etcd members to contact and the TLS material to contact them with, and
//! remembers where each fact came from.
//!
//! Precedence, per fact: explicit flags and `ETCDCTL_*` variables, then the node's static pod
//! manifest, then the Kubernetes API (etcd pods, then etcd-labelled nodes). Once connected, the
//! member list from etcd itself is authoritative (see [`crate::reach::cluster`]).

pub mod kubeapi;
pub mod manifest;
pub mod settings;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::reach::tls::{Sourced, TlsFiles};
pub use manifest::Manifest;
use settings::{Endpoint, Log, Settings};

use crate::error::{Error, Result};
use crate::reach::url::{self, EtcdUrl, InitialCluster};

/// The result of discovery.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Port-forward tunnels to the etcd pods, when members are reached through them
    /// (`--transport`).
    #[serde(skip)]
    pub tunnels: Option<crate::reach::tunnel::Tunnels>,
    /// No etcd client certificate was found (where it was looked for), and the command
    /// allowed that ([`Settings::metrics_without_credentials`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_credentials: Option<Vec<String>>,
    /// The endpoints to contact first.
    pub endpoints: Vec<Endpoint>,
    /// True when the source lists every member (the Kubernetes API), so a member without a
    /// discovered endpoint is worth reporting.
    pub endpoints_complete: bool,
    /// Where else the other members may be reached when none of `endpoints` answers: on a node
    /// whose own member is down, the manifest's endpoints are only that member's. Taken from the
    /// data dir's backend (every member's client URLs) and the hosts of `--initial-cluster` at
    /// this node's client port; the API server (kubeadm's admin.conf) is tried after these by
    /// [`crate::reach::cluster::Session::member_list`].
    pub fallback: Vec<Endpoint>,
    /// TLS files.
    pub tls: TlsFiles,
    /// The static pod manifest, when one was read.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    /// Every decision taken, in order (printed with `-v`).
    pub log: Vec<String>,
    /// Server certificate verification is off (`--insecure-skip-tls-verify`).
    pub insecure: bool,
}

/// Phase 1: the static pod manifest, named, or the default one when no endpoints were given.
fn read_manifest(settings: &Settings, log: &mut Log, tried: &mut Vec<String>) -> Result<Option<Manifest>> {
    if settings.api_explicit && settings.manifest.is_some() && settings.endpoints.is_empty() {
        return Err(Error::Usage(
            "--manifest and --kubeconfig/--context name two different ways to find etcd: pass one of them".into(),
        ));
    }
    let manifest = match &settings.manifest {
        Some(path) => {
            log.say(format!("reading static pod manifest {} (--manifest)", path.display()));
            Some(Manifest::load(path)?)
        }
        None if settings.endpoints.is_empty() && settings.api_explicit => {
            log.say("--kubeconfig/--context given: the Kubernetes API, not the default manifest".into());
            None
        }
        None if settings.endpoints.is_empty() => {
            let path = &settings.default_manifest;
            if path.exists() {
                log.say(format!("reading static pod manifest {} (default path)", path.display()));
                Some(Manifest::load(path)?)
            } else {
                log.say(format!("no static pod manifest at {}", path.display()));
                tried.push(format!("no static pod manifest at {}", path.display()));
                None
            }
        }
        None => None,
    };
    if let Some(m) = &manifest {
        log.say(format!(
            "manifest: container {:?}, member name {}, data dir {}{}",
            m.container,
            m.name().unwrap_or("(none)"),
            m.flag("data-dir").unwrap_or("(none)"),
            m.config_file.as_ref().map(|c| format!(", config file {}", c.display())).unwrap_or_default()
        ));
    }
    Ok(manifest)
}

/// Phase 2: the endpoints, from `--endpoints`, else the manifest, else the Kubernetes API
/// (which may also give port-forward routes and a pod's flags).
async fn find_endpoints(
    settings: &Settings,
    manifest: Option<&Manifest>,
    log: &mut Log,
    tried: &mut Vec<String>,
) -> Result<kubeapi::Found> {
    let endpoints: Vec<Endpoint> = if !settings.endpoints.is_empty() {
        for e in &settings.endpoints {
            EtcdUrl::client(e, settings.endpoints_source)?;
        }
        log.say(format!("endpoints from {}: {}", settings.endpoints_source, settings.endpoints.join(",")));
        settings
            .endpoints
            .iter()
            .map(|u| Endpoint { name: None, url: u.clone(), source: settings.endpoints_source.to_string() })
            .collect()
    } else if let Some(m) = manifest {
        let urls = m.client_urls();
        if urls.is_empty() {
            return Err(Error::InvalidValue {
                what: format!("etcd flags in manifest {}", m.path.display()),
                value: String::new(),
                reason: "neither --advertise-client-urls nor --listen-client-urls is set; pass --endpoints".into(),
            });
        }
        for u in &urls {
            EtcdUrl::client(u, &format!("--advertise-client-urls in manifest {}", m.path.display()))?;
        }
        let source = format!("manifest {}", m.path.display());
        log.say(format!("endpoints from {source}: {}", urls.join(",")));
        urls.into_iter()
            .map(|u| Endpoint { name: m.name().map(String::from), url: u, source: source.clone() })
            .collect()
    } else {
        match kubeapi::discover(settings, log).await {
            Ok(found) => return Ok(found),
            Err(kubeapi::ApiOutcome::Tried(why)) => {
                tried.extend(why);
                tried.insert(0, "no --endpoints flag or ETCDCTL_ENDPOINTS".into());
                return Err(Error::NothingFound { tried: std::mem::take(tried) });
            }
            Err(kubeapi::ApiOutcome::Failed(e)) => return Err(e),
        }
    };
    Ok(kubeapi::Found { endpoints, complete: false, pod_flags: None, tunnels: None })
}

/// Phase 3: how to reach the members: directly, or through port-forward tunnels.
fn choose_transport(
    settings: &Settings,
    has_manifest: bool,
    tunnels: Option<crate::reach::tunnel::Tunnels>,
    log: &mut Log,
) -> Result<Option<crate::reach::tunnel::Tunnels>> {
    use crate::reach::tunnel::Transport;
    Ok(match (settings.transport, tunnels) {
        (Transport::Direct, _) => {
            log.say("transport: direct (--transport direct)".into());
            None
        }
        (_, Some(t)) => {
            log.say(format!(
                "transport: port-forward through the API server to each etcd pod in namespace {} ({})",
                t.namespace(),
                if settings.transport == Transport::PortForward {
                    "--transport port-forward"
                } else {
                    "the members came from the Kubernetes API and no manifest or --endpoints is in play"
                }
            ));
            Some(t)
        }
        (Transport::PortForward, None) => {
            let why = if has_manifest || !settings.endpoints.is_empty() {
                "the members came from a manifest or --endpoints, not from the etcd pods of the Kubernetes API: drop --manifest/--endpoints, or use --transport direct"
            } else {
                "the members came from labelled nodes, not pods (RKE1 and k3s run etcd outside pods): there is no pod to forward to; use --transport direct"
            };
            return Err(Error::Usage(format!("--transport port-forward: {why}")));
        }
        (Transport::Auto, None) => {
            log.say("transport: direct (the members' addresses came from a manifest, --endpoints or nodes)".into());
            None
        }
    })
}

/// Runs discovery: the manifest, the endpoints, the transport, then the TLS material.
pub async fn discover(settings: &Settings) -> Result<Discovery> {
    let mut log = Log::new(settings.verbose);
    let mut tried: Vec<String> = Vec::new();
    let manifest = read_manifest(settings, &mut log, &mut tried)?;
    let found = find_endpoints(settings, manifest.as_ref(), &mut log, &mut tried).await?;
    let (endpoints, endpoints_complete, api_pod_flags) = (found.endpoints, found.complete, found.pod_flags);
    let tunnels = choose_transport(settings, manifest.is_some(), found.tunnels, &mut log)?;

    // 4. TLS material.
    let (tls, no_credentials) =
        match find_tls(settings, manifest.as_ref().or(api_pod_flags.as_ref()), &endpoints, &mut log) {
            Err(Error::NoCredentials { tried, .. }) if settings.metrics_without_credentials && tunnels.is_some() => {
                log.say(format!(
                    "no etcd client certificate ({}): the members' metrics endpoints only, through their pods",
                    tried.join("; ")
                ));
                (TlsFiles::default(), Some(tried))
            }
            Err(e) => return Err(with_tunnel_hint(e, tunnels.is_some())),
            Ok(t) => (t, None),
        };
    if settings.insecure_skip_tls_verify {
        log.say("server certificate verification is OFF (--insecure-skip-tls-verify)".into());
    }

    let fallback = match &manifest {
        Some(m) if settings.endpoints.is_empty() => fallback_endpoints(m, &endpoints, &mut log),
        _ => Vec::new(),
    };

    Ok(Discovery {
        tunnels,
        no_credentials,
        endpoints,
        endpoints_complete,
        fallback,
        tls,
        manifest,
        log: log.lines,
        insecure: settings.insecure_skip_tls_verify,
    })
}

/// Through port-forward, a missing certificate is a workstation's usual state: say what to bring.
fn with_tunnel_hint(e: Error, tunnelled: bool) -> Error {
    match e {
        Error::NoCredentials { endpoints, mut tried } if tunnelled => {
            tried.push(
                "from a workstation, copy a control-plane node's /etc/kubernetes/pki/etcd and pass --pki-dir DIR (kubectl etcd health works without: it reads the members' metrics)".into(),
            );
            Error::NoCredentials { endpoints, tried }
        }
        e => e,
    }
}

/// The other members' endpoints a node knows without its own member: the data dir's backend
/// first (it has every member's advertised client URLs), then the hosts of `--initial-cluster` at
/// this node's client port (kubeadm runs every member on the same ports). Only endpoints not in
/// `primary`, each once, with its source.
fn fallback_endpoints(m: &Manifest, primary: &[Endpoint], log: &mut Log) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    let add = |out: &mut Vec<Endpoint>, e: Endpoint| {
        if !primary.iter().chain(out.iter()).any(|p| p.url.trim_end_matches('/') == e.url.trim_end_matches('/')) {
            out.push(e);
        }
    };
    if let Some(dir) = m.flag("data-dir") {
        let dir = Path::new(dir);
        let source = format!("members bucket of {}", crate::store::backend::db_path(dir).display());
        match crate::store::backend::data_dir_members(dir) {
            Ok(members) => {
                for mem in members {
                    for u in mem.client_urls {
                        let name = Some(mem.name.clone()).filter(|n| !n.is_empty());
                        add(&mut out, Endpoint { name, url: u, source: source.clone() });
                    }
                }
            }
            Err(e) => log.say(format!("no membership from the data dir: {e}")),
        }
    }
    let own = primary.first().and_then(|e| EtcdUrl::parse(&e.url).ok());
    if let Some(own) = own {
        let source = format!(
            "--initial-cluster host in manifest {} at this node's client port {}",
            m.path.display(),
            own.port()
        );
        for (name, peer) in InitialCluster::lenient(m.flag("initial-cluster").unwrap_or("")).pairs {
            if Some(name.as_str()) == m.name() {
                continue;
            }
            if let Some(host) = url::host(&peer) {
                add(&mut out, Endpoint { name: Some(name), url: own.with_host(&host), source: source.clone() });
            }
        }
    }
    for e in &out {
        log.say(format!("fallback endpoint {} ({}) from {}", e.url, e.name.as_deref().unwrap_or("?"), e.source));
    }
    out
}

/// The kubeconfig kubeadm leaves on control-plane nodes (`KUBECTL_ETCD_ADMIN_KUBECONFIG`
/// overrides the path, for tests).
pub fn admin_kubeconfig() -> PathBuf {
    std::env::var_os("KUBECTL_ETCD_ADMIN_KUBECONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::reach::layouts::KUBEADM_ADMIN_KUBECONFIG))
}

/// The etcd pods' endpoints through kubeadm's admin.conf, when it is readable and no other
/// kubeconfig was given: the last way to the other members from a node whose member is down.
pub(crate) async fn admin_conf_endpoints(settings: &Settings) -> Vec<Endpoint> {
    let mut log = Log::new(settings.verbose);
    let path = admin_kubeconfig();
    let readable = path.is_file() && std::fs::File::open(&path).is_ok();
    if settings.kubeconfig.is_some() || !readable {
        return Vec::new();
    }
    log.say(format!("trying the etcd pods through {}", path.display()));
    let mut s = settings.clone();
    s.kubeconfig = Some(path.clone());
    match kubeapi::discover(&s, &mut log).await {
        Ok(found) => found.endpoints,
        Err(kubeapi::ApiOutcome::Tried(why)) => {
            log.say(format!("nothing through {}: {}", path.display(), why.join("; ")));
            Vec::new()
        }
        Err(kubeapi::ApiOutcome::Failed(e)) => {
            log.say(format!("nothing through {}: {}", path.display(), e.report()));
            Vec::new()
        }
    }
}

fn sourced(path: PathBuf, source: impl Into<String>) -> Sourced {
    Sourced { path, source: source.into() }
}

/// Finds CA, client certificate and key: flags/env first, then what the manifest (or the etcd
/// pod's command seen through the API) names, then the well-known layouts of kubeadm, RKE1,
/// RKE2 and k3s.
fn find_tls(
    settings: &Settings,
    flags_from: Option<&Manifest>,
    endpoints: &[Endpoint],
    log: &mut Log,
) -> Result<TlsFiles> {
    let mut tls = TlsFiles {
        ca: settings.cacert.clone().map(|p| sourced(p, settings.tls_sources[0].clone())),
        cert: settings.cert.clone().map(|p| sourced(p, settings.tls_sources[1].clone())),
        key: settings.key.clone().map(|p| sourced(p, settings.tls_sources[2].clone())),
    };
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(Error::Usage("--cert and --key must be given together (or ETCDCTL_CERT and ETCDCTL_KEY)".into()));
    }
    let all_http = endpoints.iter().all(|e| e.url.starts_with("http://"));
    if all_http {
        log.say("all endpoints are plain http: no TLS".into());
        return Ok(tls);
    }
    let mut tried = Vec::new();

    if let Some(m) = flags_from {
        from_manifest(m, &mut tls, &mut tried, log);
    }
    if tls.ca.is_none() || tls.cert.is_none() {
        from_layouts(endpoints, &mut tls, &mut tried, log);
    }

    if tls.cert.is_none() {
        if settings.insecure_skip_tls_verify && tls.ca.is_none() {
            return Ok(tls);
        }
        return Err(Error::NoCredentials {
            endpoints: endpoints.iter().map(|e| e.url.clone()).collect::<Vec<_>>().join(","),
            tried,
        });
    }
    if tls.ca.is_none() && !settings.insecure_skip_tls_verify {
        return Err(Error::NoCredentials {
            endpoints: endpoints.iter().map(|e| e.url.clone()).collect::<Vec<_>>().join(","),
            tried: vec!["no CA certificate found to verify the servers".into()],
        });
    }
    for (what, f) in [("CA", &tls.ca), ("client certificate", &tls.cert), ("client key", &tls.key)] {
        if let Some(f) = f {
            log.say(format!("{what}: {} (from {})", f.path.display(), f.source));
        }
    }
    Ok(tls)
}

/// The TLS files a manifest (or an etcd pod's command) names: its CA, and a client pair beside
/// it (kubeadm's healthcheck client, apiserver-etcd-client, k3s/RKE2's client), else its server
/// pair.
fn from_manifest(m: &Manifest, tls: &mut TlsFiles, tried: &mut Vec<String>, log: &mut Log) {
    let origin = format!("manifest {}", m.path.display());
    if tls.ca.is_none() {
        if let Some(ca) = m.flag("trusted-ca-file") {
            tls.ca = Some(sourced(PathBuf::from(ca), format!("--trusted-ca-file in {origin}")));
        }
    }
    if tls.cert.is_none() {
        let ca_dir = m.flag("trusted-ca-file").and_then(|c| Path::new(c).parent().map(Path::to_path_buf));
        let mut candidates: Vec<(PathBuf, PathBuf, String)> = Vec::new();
        if let Some(dir) = &ca_dir {
            candidates.push((
                dir.join("healthcheck-client.crt"),
                dir.join("healthcheck-client.key"),
                "kubeadm healthcheck client beside the CA".into(),
            ));
            if let Some(parent) = dir.parent() {
                candidates.push((
                    parent.join("apiserver-etcd-client.crt"),
                    parent.join("apiserver-etcd-client.key"),
                    "kubeadm apiserver-etcd-client in the CA's parent folder".into(),
                ));
            }
            candidates.push((dir.join("client.crt"), dir.join("client.key"), "k3s/RKE2 client beside the CA".into()));
        }
        if let (Some(c), Some(k)) = (m.flag("cert-file"), m.flag("key-file")) {
            candidates.push((PathBuf::from(c), PathBuf::from(k), format!("the server certificate named in {origin}")));
        }
        pick_pair(tls, &candidates, tried, log);
    }
}

/// The well-known layouts ([`crate::reach::layouts`]), for the API route or a bare node: the
/// first whose files exist fills what is still missing.
fn from_layouts(endpoints: &[Endpoint], tls: &mut TlsFiles, tried: &mut Vec<String>, log: &mut Log) {
    let mut layouts: Vec<(PathBuf, PathBuf, PathBuf, String)> = Vec::new();
    for l in crate::reach::layouts::LAYOUTS {
        if !l.per_address() {
            layouts.push((l.ca.into(), l.client_cert.into(), l.client_key.into(), format!("{} layout", l.name)));
            continue;
        }
        for e in endpoints {
            if let Some(host) = url::host(&e.url) {
                let (cert, key) = l.client_pair(&host);
                layouts.push((l.ca.into(), cert.into(), key.into(), format!("{} layout", l.name)));
            }
        }
    }
    for (ca, cert, key, what) in layouts {
        if tls.ca.is_none() && tls.cert.is_none() && ca.exists() && cert.exists() && key.exists() {
            log.say(format!("certificates from the {what}: {}, {}, {}", ca.display(), cert.display(), key.display()));
            tls.ca = Some(sourced(ca, what.clone()));
            tls.cert = Some(sourced(cert, what.clone()));
            tls.key = Some(sourced(key, what));
            break;
        } else if tls.cert.is_none() && tls.ca.is_some() && cert.exists() && key.exists() {
            log.say(format!("client certificate from the {what}: {}", cert.display()));
            tls.cert = Some(sourced(cert, what.clone()));
            tls.key = Some(sourced(key, what));
            break;
        } else {
            tried.push(format!("{what} ({})", cert.display()));
        }
    }
}

fn pick_pair(tls: &mut TlsFiles, candidates: &[(PathBuf, PathBuf, String)], tried: &mut Vec<String>, log: &mut Log) {
    for (cert, key, what) in candidates {
        if cert.is_file() && key.is_file() {
            log.say(format!("client certificate: {what}"));
            tls.cert = Some(sourced(cert.clone(), what.clone()));
            tls.key = Some(sourced(key.clone(), what.clone()));
            return;
        }
        tried.push(format!("{what} ({} not found)", if cert.is_file() { key } else { cert }.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_from_initial_cluster_hosts_at_this_nodes_client_port() {
        // kubeadm's joined node: --initial-cluster lists the members present at join; every
        // member serves clients on the same port, so the other hosts are tried there.
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd-cp-2\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n    - --advertise-client-urls=https://10.0.0.2:2379\n    - --data-dir=/nonexistent/etcd\n    - --initial-cluster=cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380,cp-3=https://[fd00::3]:2380\n    - --name=cp-2\n";
        let m = Manifest::parse(Path::new("/etc/kubernetes/manifests/etcd.yaml"), text).unwrap();
        let primary = vec![Endpoint {
            name: Some("cp-2".into()),
            url: "https://10.0.0.2:2379".into(),
            source: "manifest".into(),
        }];
        let got = fallback_endpoints(&m, &primary, &mut Log::new(false));
        let urls: Vec<&str> = got.iter().map(|e| e.url.as_str()).collect();
        assert_eq!(urls, ["https://10.0.0.1:2379", "https://[fd00::3]:2379"]);
        assert_eq!(got[0].name.as_deref(), Some("cp-1"));
        assert!(
            got[0].source.contains("--initial-cluster host") && got[0].source.contains("client port 2379"),
            "{}",
            got[0].source
        );
    }
}
