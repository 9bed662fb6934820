//! Clusters: the nodes, the builder for real layouts (kubeadm's asymmetric --initial-cluster,
//! differing ports, data dirs on their own mounts), and process control (freeze, resume, kill,
//! restart, learners).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::layout::{member_flags, write_manifest};
use crate::*;

/// One etcd member: its node layout and process.
pub struct Node {
    /// Member name (also the node name).
    pub name: String,
    /// The node's root: `manifests/`, `pki/`, `data/`, `etcd.log`.
    pub root: PathBuf,
    /// The node's own address: 127.0.0.1, or another loopback address (127.0.0.2, …) for a
    /// node that must look like another machine. Such a node also listens on 127.0.0.1, as
    /// kubeadm's members listen on the loopback beside the node IP.
    pub host: String,
    /// Client port.
    pub client_port: u16,
    /// Peer port.
    pub peer_port: u16,
    /// Plain-HTTP metrics port on 127.0.0.1 (`--listen-metrics-urls`, as kubeadm sets it).
    pub metrics_port: u16,
    /// The running process, if any.
    pub child: Option<Child>,
    /// The etcd flags it runs with (name → value).
    pub flags: Vec<(String, String)>,
    /// Frozen with SIGSTOP.
    pub frozen: bool,
    /// A data dir outside the node root (on a small tmpfs, say).
    pub data_override: Option<PathBuf>,
    /// The network namespace etcd runs in (see [`crate::netns`]); `None`: the test's own.
    pub netns: Option<String>,
    /// The etcd binary it runs, when not the suite's ([`crate::etcd`]).
    pub binary: Option<PathBuf>,
}

impl Node {
    /// A node not started yet, with free ports.
    fn new(name: String, root: PathBuf) -> Node {
        Node {
            name,
            root,
            host: "127.0.0.1".into(),
            client_port: free_port(),
            peer_port: free_port(),
            metrics_port: free_port(),
            child: None,
            flags: Vec::new(),
            frozen: false,
            data_override: None,
            netns: None,
            binary: None,
        }
    }

    /// `https://<host>:<client port>`.
    pub fn client_url(&self) -> String {
        format!("https://{}:{}", self.host, self.client_port)
    }
    /// `https://<host>:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("https://{}:{}", self.host, self.peer_port)
    }
    /// What etcd listens on for clients: the client URL, and the loopback too on a node
    /// with an address of its own (kubeadm: `https://127.0.0.1:2379,https://<node IP>:2379`).
    pub fn listen_client_urls(&self) -> String {
        if self.host == "127.0.0.1" {
            self.client_url()
        } else {
            format!("https://127.0.0.1:{},{}", self.client_port, self.client_url())
        }
    }
    /// The kubeadm-shaped manifest of this node.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifests/etcd.yaml")
    }
    /// The etcd data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.data_override.clone().unwrap_or_else(|| self.root.join("data"))
    }
    /// The node's `pki/etcd` dir.
    pub fn pki_etcd(&self) -> PathBuf {
        self.root.join("pki/etcd")
    }
    /// etcd's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("etcd.log")).unwrap_or_default()
    }
    fn argv(&self) -> Vec<String> {
        self.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect()
    }
    /// The pid of its etcd process, while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }
}

/// The IP SANs of a node's serving certificates: its address, and the loopback it also
/// listens on.
fn node_ips(host: &str) -> Vec<&str> {
    if host == "127.0.0.1" {
        vec![host]
    } else {
        vec![host, "127.0.0.1"]
    }
}

/// How to build a cluster.
#[derive(Debug, Clone)]
pub struct Builder {
    members: usize,
    quota: Option<u64>,
    extra: Vec<(String, String)>,
    node_extra: Vec<(usize, String, String)>,
    server_dns: Vec<String>,
    tmpfs: Option<(usize, u64)>,
    start: bool,
    kubeadm: bool,
    data_is_mount: bool,
    netns: Vec<(String, String)>,
    version: Option<String>,
}

impl Builder {
    /// `--quota-backend-bytes` for every member.
    pub fn quota(mut self, bytes: u64) -> Self {
        self.quota = Some(bytes);
        self
    }
    /// An extra etcd flag for every member.
    pub fn flag(mut self, k: &str, v: &str) -> Self {
        self.extra.push((k.into(), v.into()));
        self
    }
    /// An extra etcd flag for node `i` only (in its manifest too).
    pub fn node_flag(mut self, i: usize, k: &str, v: &str) -> Self {
        self.node_extra.push((i, k.into(), v.into()));
        self
    }
    /// DNS SANs of the serving certificates besides the node name (default `localhost`).
    pub fn server_dns(mut self, names: &[&str]) -> Self {
        self.server_dns = names.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Puts node `i`'s data dir on its own tmpfs of `mib` MiB (for disk-full tests; needs root).
    pub fn tmpfs_data(mut self, i: usize, mib: u64) -> Self {
        self.tmpfs = Some((i, mib));
        self
    }
    /// Makes node `i`'s data dir itself a tmpfs mount point of `mib` MiB (etcd's guidance: a
    /// disk of its own; needs root).
    pub fn data_dir_is_a_mount(mut self, i: usize, mib: u64) -> Self {
        self.tmpfs = Some((i, mib));
        self.data_is_mount = true;
        self
    }
    /// Writes the manifests as kubeadm leaves them on a grown cluster: the first control-plane
    /// node's `--initial-cluster` lists only itself (`new`), each joined node's lists the members
    /// present when it joined (`existing`). etcd reads those flags only to bootstrap, so the
    /// members still start together from the full list; what the plugins read is kubeadm's shape.
    pub fn kubeadm_manifests(mut self) -> Self {
        self.kubeadm = true;
        self
    }
    /// Runs node `i` in network namespace `placement[i].0` with address `placement[i].1` (its
    /// URLs and certificates): see [`crate::netns::Net::placement`].
    pub fn netns(mut self, placement: Vec<(String, String)>) -> Self {
        self.netns = placement;
        self
    }
    /// Runs the installed etcd of this minor ("3.4" or "3.5"), or this exact installed version
    /// ("3.5.0"), whatever `E2E_ETCD_VERSION` says
    /// (the manifests name its image): for upgrades.
    pub fn etcd_version(mut self, v: &str) -> Self {
        self.version = Some(v.to_string());
        self
    }
    /// Lays the nodes out (ports, PKI, manifests) without starting anything: for restores.
    pub fn planned(mut self) -> Cluster {
        self.start = false;
        Cluster::start_with(self)
    }
    /// Starts the cluster and waits until every member is healthy.
    pub fn start(self) -> Cluster {
        Cluster::start_with(self)
    }
}

/// A running cluster. Dropping it kills every process (also when a test panics) and removes
/// its directory.
pub struct Cluster {
    /// The directory holding every node.
    pub dir: tempfile::TempDir,
    /// The members (index = node number).
    pub nodes: Vec<Node>,
    /// The PKI shared by the nodes.
    pub pki: Pki,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Kubelet emulations running for some nodes.
    pub kubelets: Vec<Kubelet>,
    /// The etcd minor it runs ("3.4" or "3.5").
    pub version: String,
}

impl Cluster {
    /// A builder for `n` members.
    pub fn builder(n: usize) -> Builder {
        Builder {
            members: n,
            quota: None,
            extra: Vec::new(),
            node_extra: Vec::new(),
            server_dns: vec!["localhost".into()],
            tmpfs: None,
            start: true,
            kubeadm: false,
            data_is_mount: false,
            netns: Vec::new(),
            version: None,
        }
    }

    /// Starts `n` members and waits until they are healthy.
    pub fn start(n: usize) -> Cluster {
        Self::builder(n).start()
    }

    fn start_with(b: Builder) -> Cluster {
        let dir = tempfile::Builder::new().prefix("kubectl-etcd-e2e-").tempdir().unwrap();
        let pki = Pki::new(&dir.path().join("ca"));
        let token = format!("kubectl-etcd-test-{}", std::process::id());
        let version = b.version.clone().unwrap_or_else(|| etcd().version.clone());
        let mut nodes: Vec<Node> = (0..b.members)
            .map(|i| {
                let name = format!("node-{i}");
                let root = dir.path().join(&name);
                Node::new(name, root)
            })
            .collect();
        if let Some((i, mib)) = b.tmpfs {
            let mnt = nodes[i].root.join("varlib");
            std::fs::create_dir_all(&mnt).unwrap();
            let st = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(&mnt)
                .status()
                .unwrap();
            assert!(st.success(), "mounting a tmpfs needs root");
            nodes[i].data_override = Some(if b.data_is_mount { mnt } else { mnt.join("etcd") });
        }
        for (n, (ns, host)) in nodes.iter_mut().zip(&b.netns) {
            n.netns = Some(ns.clone());
            n.host = host.clone();
        }
        let initial: Vec<String> = nodes.iter().map(|n| format!("{}={}", n.name, n.peer_url())).collect();
        for (i, n) in nodes.iter_mut().enumerate() {
            let dns: Vec<&str> = b.server_dns.iter().map(String::as_str).collect();
            pki.write_node(&n.root.join("pki"), &n.name, &node_ips(&n.host), &dns);
            let mut extra = b.extra.clone();
            extra.extend(b.node_extra.iter().filter(|(j, _, _)| *j == i).map(|(_, k, v)| (k.clone(), v.clone())));
            n.flags = member_flags(n, &initial.join(","), "new", &token, b.quota, &extra);
            write_manifest(n, &version);
        }
        if b.kubeadm {
            for (i, n) in nodes.iter().enumerate() {
                let state = if i == 0 { "new" } else { "existing" };
                let shaped = Node {
                    flags: n
                        .flags
                        .iter()
                        .map(|(k, v)| match k.as_str() {
                            "initial-cluster" => (k.clone(), initial[..=i].join(",")),
                            "initial-cluster-state" => (k.clone(), state.to_string()),
                            _ => (k.clone(), v.clone()),
                        })
                        .collect(),
                    child: None,
                    name: n.name.clone(),
                    host: n.host.clone(),
                    root: n.root.clone(),
                    data_override: n.data_override.clone(),
                    netns: n.netns.clone(),
                    binary: n.binary.clone(),
                    ..*n
                };
                write_manifest(&shaped, &version);
            }
        }
        let mut c = Cluster { dir, nodes, pki, token, kubelets: Vec::new(), version };
        if !b.start {
            return c;
        }
        c.start_all();
        c
    }

    /// Starts every node (planned ones, or restored data dirs) and waits until each answers.
    pub fn start_all(&mut self) {
        let c = self;
        for i in 0..c.nodes.len() {
            c.spawn(i);
        }
        for i in 0..c.nodes.len() {
            c.wait_healthy(i);
        }
    }

    fn spawn(&mut self, i: usize) {
        // The node's own binary (a member of another version), else the cluster's version's.
        let by_version =
            crate::bins::binary_for_image(&format!("registry.k8s.io/etcd:{}", crate::layout::image_tag(&self.version)))
                .unwrap_or_else(|_| etcd().etcd.clone());
        let n = &mut self.nodes[i];
        let bin = n.binary.clone().unwrap_or(by_version);
        n.child = Some(spawn_etcd_bin(&bin, &n.root, n.netns.as_deref(), &n.argv()));
        n.frozen = false;
    }

    /// Polls until member `i` answers `etcdctl endpoint health` (learners: `endpoint status`).
    pub fn wait_healthy(&mut self, i: usize) {
        let start = Instant::now();
        loop {
            if let Some(Ok(Some(st))) = self.nodes[i].child.as_mut().map(|c| c.try_wait()) {
                panic!("etcd {} exited ({st}) while starting; its log:\n{}", self.nodes[i].name, self.nodes[i].log());
            }
            let n = &self.nodes[i];
            let out = self.etcdctl(&n.client_url(), &["endpoint", "status"]);
            if out.status.success() {
                return;
            }
            if start.elapsed() > Duration::from_secs(30) {
                panic!("member {} did not become healthy in 30s; its log:\n{}", n.name, n.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index of the current leader (asked with etcdctl).
    pub fn leader(&self) -> usize {
        wait_for("a leader", Duration::from_secs(10), || {
            let out = self.etcdctl(&self.endpoints(), &["endpoint", "status", "-w", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            let arr = v.as_array()?;
            let leader = arr.iter().find_map(|s| s["Status"]["leader"].as_u64())?;
            let ep = arr.iter().find(|s| s["Status"]["header"]["member_id"].as_u64() == Some(leader))?["Endpoint"]
                .as_str()?
                .to_string();
            self.nodes.iter().position(|n| n.client_url() == ep)
        })
    }

    /// Runs the real etcdctl against `endpoints` with this cluster's client certificate.
    pub fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Output {
        let pki = self.nodes[0].pki_etcd();
        Command::new(&etcd().etcdctl)
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", pki.join("ca.crt").display()))
            .arg(format!("--cert={}", pki.join("healthcheck-client.crt").display()))
            .arg(format!("--key={}", pki.join("healthcheck-client.key").display()))
            .arg("--dial-timeout=2s")
            .arg("--command-timeout=5s")
            .args(args)
            .output()
            .unwrap()
    }

    /// Every client URL, comma-separated.
    pub fn endpoints(&self) -> String {
        self.nodes.iter().map(|n| n.client_url()).collect::<Vec<_>>().join(",")
    }

    /// Freezes member `i` (SIGSTOP): it keeps its sockets but answers nothing.
    pub fn freeze(&mut self, i: usize) {
        signal(self.nodes[i].pid().unwrap(), libc::SIGSTOP);
        self.nodes[i].frozen = true;
    }

    /// Resumes a frozen member (SIGCONT).
    pub fn resume(&mut self, i: usize) {
        signal(self.nodes[i].pid().unwrap(), libc::SIGCONT);
        self.nodes[i].frozen = false;
    }

    /// Stops node `i` the way a clean shutdown does (SIGTERM: etcd syncs and closes its WAL),
    /// and waits for it to exit.
    pub fn stop(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if let Some(mut c) = n.child.take() {
            if n.frozen {
                signal(c.id() as i32, libc::SIGCONT);
            }
            signal(c.id() as i32, libc::SIGTERM);
            let _ = c.wait();
        }
        n.frozen = false;
    }

    /// Kills member `i` (SIGKILL) and waits until its client port is closed.
    pub fn kill(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if let Some(mut c) = n.child.take() {
            if n.frozen {
                signal(c.id() as i32, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        n.frozen = false;
        let port = n.client_port;
        wait_for("the client port to close", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        });
    }

    /// Starts a killed member again on its data dir and waits for it.
    pub fn restart(&mut self, i: usize) {
        let state = &mut self.nodes[i].flags;
        for (k, v) in state.iter_mut() {
            if k == "initial-cluster-state" {
                *v = "existing".into();
            }
        }
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// Prepares a node that is not a member yet: ports, PKI (unless `pki` is false: the test
    /// supplies `pki/etcd/{server,peer}.*` itself), manifest dir. Returns its index.
    pub fn new_node(&mut self, name: &str, pki: bool) -> usize {
        self.new_node_on(name, pki, "127.0.0.1")
    }

    /// [`Cluster::new_node`] for a node whose address is `host` (another loopback address:
    /// another machine, as far as URLs and certificates go).
    pub fn new_node_on(&mut self, name: &str, pki: bool, host: &str) -> usize {
        let root = self.dir.path().join(name);
        let mut node = Node::new(name.to_string(), root);
        node.host = host.to_string();
        if pki {
            self.pki.write_node(&node.root.join("pki"), name, &node_ips(host), &["localhost"]);
        } else {
            let etcd = node.root.join("pki/etcd");
            std::fs::create_dir_all(&etcd).unwrap();
            std::fs::write(etcd.join("ca.crt"), &self.pki.ca_pem).unwrap();
        }
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Starts node `i` as a member joining the existing cluster with `initial_cluster` (as
    /// printed by `member add`), and waits until it answers.
    pub fn join(&mut self, i: usize, initial_cluster: &str) {
        let flags = member_flags(&self.nodes[i], initial_cluster, "existing", &self.token, None, &[]);
        self.nodes[i].flags = flags;
        write_manifest(&self.nodes[i], &self.version);
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// Sets node `i`'s flags as a member joining with `initial_cluster` (state `existing`), with
    /// `extra` flags after them, and writes its manifest; starts nothing (see
    /// [`Cluster::spawn_node`], or hand it to [`Cluster::kubelet`]).
    pub fn plan_joiner(&mut self, i: usize, initial_cluster: &str, extra: &[(String, String)]) {
        let flags = member_flags(&self.nodes[i], initial_cluster, "existing", &self.token, None, extra);
        self.nodes[i].flags = flags;
        write_manifest(&self.nodes[i], &etcd().version);
    }

    /// Starts node `i`'s etcd with its flags without waiting for it (it may exit at once; its
    /// log is `etcd.log` in its root).
    pub fn spawn_node(&mut self, i: usize) {
        self.spawn(i);
    }

    /// The member list as etcdctl prints it (JSON), with IDs as numbers.
    pub fn member_list(&self) -> serde_json::Value {
        let eps: Vec<String> =
            self.nodes.iter().filter(|n| n.child.is_some() && !n.frozen).map(|n| n.client_url()).collect();
        let out = self.etcdctl(&eps.join(","), &["member", "list", "-w", "json"]);
        assert!(out.status.success(), "member list: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["members"].clone()
    }

    /// `--initial-cluster` for a member being added, from the current member list (as
    /// etcdctl member add computes it): `new_name` for the member whose peer URL is `new_peer`.
    pub fn initial_cluster_for(&self, new_name: &str, new_peer: &str) -> String {
        let members = self.member_list();
        let mut parts = Vec::new();
        for m in members.as_array().unwrap() {
            for u in m["peerURLs"].as_array().unwrap() {
                let u = u.as_str().unwrap();
                let name = if u == new_peer { new_name } else { m["name"].as_str().unwrap_or("") };
                parts.push(format!("{name}={u}"));
            }
        }
        parts.join(",")
    }

    /// Adds a learner with `etcdctl member add --learner`, then starts its process; returns its
    /// index. With `start = false` the member is added but never started.
    pub fn add_learner(&mut self, name: &str, start: bool) -> usize {
        let root = self.dir.path().join(name);
        let mut node = Node::new(name.to_string(), root);
        // etcd refuses membership changes ("etcdserver: unhealthy cluster") until its members
        // have been connected for 5 s; poll through that.
        let eps = self.endpoints();
        let peer = format!("--peer-urls={}", node.peer_url());
        let out = wait_for("etcd to accept member add", Duration::from_secs(20), || {
            let out = self.etcdctl(&eps, &["member", "add", name, "--learner", &peer]);
            if out.status.success() {
                return Some(out);
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("unhealthy cluster"), "member add --learner failed: {err}");
            None
        });
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let initial = text
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER="))
            .map(|v| v.trim_matches('"').to_string())
            .expect("etcdctl printed ETCD_INITIAL_CLUSTER");
        self.pki.write_node(&node.root.join("pki"), name, &["127.0.0.1"], &["localhost"]);
        node.flags = member_flags(&node, &initial, "existing", &self.token, None, &[]);
        write_manifest(&node, &self.version);
        self.nodes.push(node);
        let i = self.nodes.len() - 1;
        if start {
            self.spawn(i);
            self.wait_healthy(i);
        }
        i
    }

    /// Starts node `i` (stopped, or added earlier) without waiting for it to answer: for a
    /// member the harness's etcdctl cannot check (an expired serving certificate, say).
    pub fn spawn_unchecked(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Starts the process of a member added earlier (for example a learner added unstarted).
    pub fn start_node(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i);
    }

    /// Puts `n` keys under `prefix` (through etcdctl's txn-free put, batched in one process).
    pub fn put(&self, key: &str, value: &str) {
        let out = self.etcdctl(&self.endpoints(), &["put", key, value]);
        assert!(out.status.success(), "put failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Cluster {
    /// Hands node `i` to a kubelet emulation (adopting its running process, if any), with
    /// kubelet's default log policy.
    pub fn kubelet(&mut self, i: usize) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        self.kubelet_with(i, crate::kubelet::LogPolicy::default())
    }

    /// [`Cluster::kubelet`] with a log rotation policy (`--container-log-max-size`/`-files`).
    pub fn kubelet_with(
        &mut self,
        i: usize,
        policy: crate::kubelet::LogPolicy,
    ) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        let child = self.nodes[i].child.take();
        let stop = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        let status = Arc::new(std::sync::Mutex::new(crate::kubelet::ContainerStatus::default()));
        let node = crate::kubelet::KubeletNode {
            manifest: self.nodes[i].manifest(),
            root: self.nodes[i].root.clone(),
            node: self.nodes[i].name.clone(),
            policy,
            stop: stop.clone(),
            starts: starts.clone(),
            status: status.clone(),
        };
        let thread = std::thread::spawn(move || crate::kubelet::run(child, node));
        self.kubelets.push(Kubelet {
            stop,
            thread: Some(thread),
            starts: starts.clone(),
            node: self.nodes[i].name.clone(),
            status,
        });
        starts
    }

    /// The etcd container status of node `i`'s kubelet emulation (what `pods/log` serves).
    pub fn container_status(&self, i: usize) -> std::sync::Arc<std::sync::Mutex<crate::kubelet::ContainerStatus>> {
        let name = &self.nodes[i].name;
        self.kubelets.iter().find(|k| &k.node == name).map(|k| k.status.clone()).expect("no kubelet for that node")
    }

    /// An etcd client pinned to member `i`, over mTLS with the node's healthcheck client
    /// certificate (dialed through the core crate's dialer).
    pub async fn client(&self, i: usize) -> etcd_client::Client {
        let pki = self.nodes[0].pki_etcd();
        let files = kubectl_etcd::reach::tls::TlsFiles {
            ca: Some(kubectl_etcd::reach::tls::Sourced { path: pki.join("ca.crt"), source: "test".into() }),
            cert: Some(kubectl_etcd::reach::tls::Sourced {
                path: pki.join("healthcheck-client.crt"),
                source: "test".into(),
            }),
            key: Some(kubectl_etcd::reach::tls::Sourced {
                path: pki.join("healthcheck-client.key"),
                source: "test".into(),
            }),
        };
        let tls = kubectl_etcd::reach::tls::TlsContext::load(&files, false).unwrap();
        let dialer = kubectl_etcd::reach::conn::Dialer::new(tls, Duration::from_secs(2));
        dialer.client(&self.nodes[i].client_url()).await.unwrap()
    }

    /// Puts 100 KiB values under `keys` distinct keys (rewriting them, as kube-apiserver
    /// rewrites its objects) until etcd answers "database space exceeded"; panics if the quota
    /// is never reached within `max` puts.
    pub async fn fill_until_nospace(&self, prefix: &str, keys: usize, max: usize) {
        let mut client = self.client(0).await;
        let value = vec![b'x'; 100 * 1024];
        for i in 0..max {
            if let Err(e) = client.put(format!("{prefix}{}", i % keys), value.clone(), None).await {
                assert!(e.to_string().contains("database space exceeded"), "{e}");
                return;
            }
        }
        panic!("the quota was never reached in {max} puts");
    }

    /// Common flags for a plugin to reach this cluster through its node-0 manifest.
    pub fn manifest_args(&self) -> Vec<String> {
        vec!["--manifest".into(), self.nodes[0].manifest().display().to_string()]
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for k in self.kubelets.drain(..) {
            k.stop();
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                signal(c.id() as i32, libc::SIGCONT);
                let _ = c.kill();
                let _ = c.wait();
            }
            if n.data_override.is_some() {
                let _ = Command::new("umount").arg("-l").arg(n.root.join("varlib")).status();
            }
        }
        if std::thread::panicking() || std::env::var_os("KEEP_TEST_DIRS").is_some() {
            // Keep what a failed test needs for a look — logs, manifests, certificates, small
            // files — but not its databases and WAL segments (a failed run must not leave
            // gigabytes in /tmp); KEEP_TEST_DIRS=all keeps everything.
            let path = self.dir.path().to_path_buf();
            let dropped = if std::env::var_os("KEEP_TEST_DIRS").is_some_and(|v| v == "all") {
                0
            } else {
                drop_large_files(&path, KEPT_FILE_MAX)
            };
            eprintln!("test cluster kept at {} ({dropped} files over {KEPT_FILE_MAX} bytes removed)", path.display());
            std::mem::forget(std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()));
        }
    }
}

/// The largest file kept of a failed test's cluster (logs are kept whatever their size).
const KEPT_FILE_MAX: u64 = 1 << 20;

/// Removes the regular files under `dir` larger than `max` bytes, logs excepted; returns how many.
fn drop_large_files(dir: &Path, max: u64) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    for e in rd.flatten() {
        let Ok(md) = std::fs::symlink_metadata(e.path()) else { continue };
        if md.is_dir() {
            n += drop_large_files(&e.path(), max);
        } else if md.is_file() && md.len() > max && !e.file_name().to_string_lossy().ends_with(".log") {
            n += usize::from(std::fs::remove_file(e.path()).is_ok());
        }
    }
    n
}
