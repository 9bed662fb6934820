//! Discovery: finds the etcd members to contact and the TLS material to contact them with, and
//! remembers where each fact came from.
//!
//! Precedence, per fact: explicit flags and `ETCDCTL_*` variables, then the node's static pod
//! manifest, then the Kubernetes API (etcd pods, then etcd-labelled nodes). Once connected, the
//! member list from etcd itself is authoritative (see [`crate::reach::cluster`]).

pub mod kubeapi;
pub mod manifest;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use manifest::Manifest;

use crate::error::{Error, Result};
use crate::reach::url::{self, EtcdUrl, InitialCluster};

/// kubeadm's etcd static pod manifest.
pub const DEFAULT_MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";

/// What the user asked for (flags, environment); built by [`crate::cli::args::CommonArgs::settings`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--kubeconfig` / `KUBECONFIG` (may be a colon-separated list).
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--kubeconfig` or `--context` was given as a flag: the Kubernetes API is the way to find
    /// etcd, not the node's default manifest.
    pub api_explicit: bool,
    /// `-n/--namespace`.
    pub namespace: String,
    /// `--manifest`.
    pub manifest: Option<PathBuf>,
    /// `--endpoints` / `ETCDCTL_ENDPOINTS`.
    pub endpoints: Vec<String>,
    /// Which of the two gave the endpoints.
    pub endpoints_source: &'static str,
    /// `--cacert` / `ETCDCTL_CACERT`.
    pub cacert: Option<PathBuf>,
    /// `--cert` / `ETCDCTL_CERT`.
    pub cert: Option<PathBuf>,
    /// `--key` / `ETCDCTL_KEY`.
    pub key: Option<PathBuf>,
    /// `--dial-timeout`.
    pub dial_timeout: Duration,
    /// `--command-timeout`.
    pub command_timeout: Duration,
    /// Whether `--command-timeout` was given explicitly (long operations have no deadline
    /// otherwise).
    pub command_timeout_explicit: bool,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// `-v`.
    pub verbose: bool,
    /// The manifest used when none is named and no endpoints are given.
    pub default_manifest: PathBuf,
    /// `--transport`.
    pub transport: crate::reach::tunnel::Transport,
    /// The command can do without etcd client certificates when members are reached through
    /// port-forward: `health` then reads the members' metrics endpoints only.
    pub metrics_without_credentials: bool,
    /// `--pki-dir`: a copy of a node's `/etc/kubernetes/pki/etcd` (its CA and healthcheck
    /// client pair), for the certificate flags not given.
    pub pki_dir: Option<PathBuf>,
}

impl Settings {
    /// Settings with defaults and nothing given (for tests and library users).
    pub fn new() -> Settings {
        Settings {
            kubeconfig: None,
            context: None,
            api_explicit: false,
            namespace: "kube-system".into(),
            manifest: None,
            endpoints: Vec::new(),
            endpoints_source: "flag --endpoints",
            cacert: None,
            cert: None,
            key: None,
            dial_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            command_timeout_explicit: false,
            insecure_skip_tls_verify: false,
            verbose: false,
            default_manifest: PathBuf::from(DEFAULT_MANIFEST),
            transport: crate::reach::tunnel::Transport::Auto,
            pki_dir: None,
            metrics_without_credentials: false,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

/// One endpoint to contact, with where it was found.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Endpoint {
    /// The member name the source gives for it, if any.
    pub name: Option<String>,
    /// The client URL.
    pub url: String,
    /// Where it came from (for example `manifest /etc/kubernetes/manifests/etcd.yaml`).
    pub source: String,
}

/// A file path with where it came from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Sourced {
    /// The file.
    pub path: PathBuf,
    /// Where the path came from.
    pub source: String,
}

/// The TLS files to use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsFiles {
    /// CA bundle to verify the servers.
    pub ca: Option<Sourced>,
    /// Client certificate.
    pub cert: Option<Sourced>,
    /// Client key.
    pub key: Option<Sourced>,
}

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

/// Collects decisions and prints them with `-v`.
#[derive(Debug)]
pub(crate) struct Log {
    verbose: bool,
    lines: Vec<String>,
}

impl Log {
    pub(crate) fn new(verbose: bool) -> Log {
        Log { verbose, lines: Vec::new() }
    }
    pub(crate) fn say(&mut self, line: String) {
        if self.verbose {
            crate::base::progress::message(&format!("discovery: {line}"));
        }
        self.lines.push(line);
    }
}

/// Runs discovery.
pub async fn discover(settings: &Settings) -> Result<Discovery> {
    let mut log = Log::new(settings.verbose);
    let mut tried: Vec<String> = Vec::new();

    // 1. The static pod manifest: named, or the default one when no endpoints were given.
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

    // 2. Endpoints.
    let mut endpoints_complete = false;
    let mut api_pod_flags: Option<manifest::Manifest> = None;
    let mut tunnels: Option<crate::reach::tunnel::Tunnels> = None;
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
    } else if let Some(m) = &manifest {
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
        match kubeapi::discover(settings, &mut log).await {
            Ok(found) => {
                endpoints_complete = found.complete;
                api_pod_flags = found.pod_flags;
                tunnels = found.tunnels;
                found.endpoints
            }
            Err(kubeapi::ApiOutcome::Tried(why)) => {
                tried.extend(why);
                tried.insert(0, "no --endpoints flag or ETCDCTL_ENDPOINTS".into());
                return Err(Error::NothingFound { tried });
            }
            Err(kubeapi::ApiOutcome::Failed(e)) => return Err(e),
        }
    };

    // 3. How to reach them.
    use crate::reach::tunnel::Transport;
    let tunnels = match (settings.transport, tunnels) {
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
            let why = if manifest.is_some() || !settings.endpoints.is_empty() {
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
    };

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
        .unwrap_or_else(|| PathBuf::from("/etc/kubernetes/admin.conf"))
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
    let env_or_flag = |var: &str, flag: &str| {
        if std::env::var_os(var).is_some() && !std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}=")))
        {
            format!("env {var}")
        } else {
            format!("flag {flag}")
        }
    };
    let mut tls = TlsFiles {
        ca: settings.cacert.clone().map(|p| sourced(p, env_or_flag("ETCDCTL_CACERT", "--cacert"))),
        cert: settings.cert.clone().map(|p| sourced(p, env_or_flag("ETCDCTL_CERT", "--cert"))),
        key: settings.key.clone().map(|p| sourced(p, env_or_flag("ETCDCTL_KEY", "--key"))),
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
                candidates.push((
                    dir.join("client.crt"),
                    dir.join("client.key"),
                    "k3s/RKE2 client beside the CA".into(),
                ));
            }
            if let (Some(c), Some(k)) = (m.flag("cert-file"), m.flag("key-file")) {
                candidates.push((
                    PathBuf::from(c),
                    PathBuf::from(k),
                    format!("the server certificate named in {origin}"),
                ));
            }
            pick_pair(&mut tls, &candidates, &mut tried, log);
        }
    }

    // Well-known layouts, for the API route or a bare node.
    if tls.ca.is_none() || tls.cert.is_none() {
        let mut layouts: Vec<(PathBuf, PathBuf, PathBuf, String)> = vec![(
            "/etc/kubernetes/pki/etcd/ca.crt".into(),
            "/etc/kubernetes/pki/etcd/healthcheck-client.crt".into(),
            "/etc/kubernetes/pki/etcd/healthcheck-client.key".into(),
            "kubeadm layout".into(),
        )];
        for dist in ["rke2", "k3s"] {
            let dir = PathBuf::from(format!("/var/lib/rancher/{dist}/server/tls/etcd"));
            layouts.push((
                dir.join("server-ca.crt"),
                dir.join("client.crt"),
                dir.join("client.key"),
                format!("{dist} layout"),
            ));
        }
        for e in endpoints {
            if let Some(host) = url::host(&e.url) {
                let ip = host.replace(['.', ':'], "-");
                layouts.push((
                    "/etc/kubernetes/ssl/kube-ca.pem".into(),
                    format!("/etc/kubernetes/ssl/kube-etcd-{ip}.pem").into(),
                    format!("/etc/kubernetes/ssl/kube-etcd-{ip}-key.pem").into(),
                    "RKE1 layout".into(),
                ));
            }
        }
        for (ca, cert, key, what) in layouts {
            if tls.ca.is_none() && tls.cert.is_none() && ca.exists() && cert.exists() && key.exists() {
                log.say(format!(
                    "certificates from the {what}: {}, {}, {}",
                    ca.display(),
                    cert.display(),
                    key.display()
                ));
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
