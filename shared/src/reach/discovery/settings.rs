//! What discovery starts from (the user's flags and environment) and what it records: the
//! endpoints it found, each with its source, and the log of its decisions (`-v`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// kubeadm's etcd static pod manifest.
pub const DEFAULT_MANIFEST: &str = match crate::reach::layouts::KUBEADM.manifest {
    Some(m) => m,
    None => "",
};

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
    /// Where `cacert`, `cert` and `key` came from, for messages (`flag --cacert`, `env
    /// ETCDCTL_CACERT`, `--pki-dir`), decided where the command line is parsed.
    pub tls_sources: [String; 3],
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
            tls_sources: ["flag --cacert".into(), "flag --cert".into(), "flag --key".into()],
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

/// Collects decisions and prints them with `-v`.
#[derive(Debug)]
pub(crate) struct Log {
    verbose: bool,
    pub(crate) lines: Vec<String>,
}

impl Log {
    pub(crate) fn new(verbose: bool) -> Log {
        Log { verbose, lines: Vec::new() }
    }
    pub(crate) fn say(&mut self, line: String) {
        if self.verbose {
            crate::base::messages::message(&format!("discovery: {line}"));
        }
        self.lines.push(line);
    }
}
