//! Kubelet emulation — no kubelet can be installed here, so this plays its part for static
//! pods: it starts etcd with the flags of `manifests/etcd.yaml` when the file is there and stops it
//! when the file is moved away (polling every 50 ms, as kubelet's file source does), with
//! kubelet's timing scaled down but never instant, and its pod logs.
//!
//! - **Stopping**: SIGTERM, then SIGKILL after the grace period ([`GRACE`]; a static pod's
//!   default `terminationGracePeriodSeconds` is 30 s).
//! - **Restarting a crashed container**: after a back-off that doubles from [`BACKOFF_START`] up
//!   to [`BACKOFF_MAX`] (kubelet: 10 s doubling up to 5 min), reset once the container has run
//!   for [`BACKOFF_RESET`] (kubelet: 10 min). A manifest that appears again starts a new pod at
//!   once.
//! - **Images**: a manifest's `image:` is "pulled" as the installed etcd binary of that version
//!   (`registry.k8s.io/etcd:3.4.23-0`, `…:3.5.1-0`, see [`crate::bins::binary_for_image`]);
//!   another repository or version cannot be pulled and the pod never starts (a line in the
//!   node's `kubelet.log`, as kubelet's ErrImagePull event).
//! - **A changed manifest** is a new pod: the running container is stopped as above and the new
//!   one started at once.
//! - **Pod logs** in the CRI format kubelet's runtimes write:
//!   `ROOT/var/log/pods/kube-system_etcd-NODE_UID/etcd/RESTART.log`, one line per line of output,
//!   `<RFC 3339 nano time> stdout|stderr F <text>` (`P` for a partial line cut at 16 KiB, as
//!   containerd does). The node's `etcd.log` gets the raw lines too, as before.
//! - **Log rotation**, as kubelet's container log manager does it (`--container-log-max-size`,
//!   `--container-log-max-files`, [`LogPolicy`]): every [`ROTATE_EVERY`] (kubelet: 10 s) the
//!   running container's live `N.log` over the size is renamed `N.log.<YYYYMMDD-hhmmss>` and the
//!   runtime reopens a new `N.log` (CRI `ReopenContainerLog`); rotated parts older than the
//!   newest are gzipped (`.gz`, through a `.tmp`), and past `max_files - 2` rotated parts the
//!   oldest are removed. A container that is not running is never rotated.
//! - **Container status** ([`ContainerStatus`]), as kubelet reports it and serves
//!   `pods/log` from it: the running container's log, the last terminated one's.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a stopped container gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);
/// The first restart back-off after a crash.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
/// The longest restart back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// A container that ran this long resets the back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(20);
/// containerd splits longer lines into partial (`P`) records.
const CRI_MAX_LINE: usize = 16 * 1024;
/// How often the running container's log is checked for rotation (kubelet's
/// `containerLogMonitorInterval`, 10 s; one second here keeps the rotated names, stamped to
/// the second, distinct).
pub const ROTATE_EVERY: Duration = Duration::from_secs(1);

/// kubelet's container log policy: `--container-log-max-size` and `--container-log-max-files`.
#[derive(Debug, Clone, Copy)]
pub struct LogPolicy {
    /// A live log at least this large is rotated (kubelet's default: 10Mi).
    pub max_size: u64,
    /// At most this many files per container, the live one included (kubelet's default: 5).
    pub max_files: usize,
}

impl Default for LogPolicy {
    fn default() -> LogPolicy {
        LogPolicy { max_size: 10 << 20, max_files: 5 }
    }
}

/// The etcd container's status as kubelet keeps it (CRI `ContainerStatus.log_path` and
/// `LastTerminationState`): what `pods/log` serves.
#[derive(Debug, Clone, Default)]
pub struct ContainerStatus {
    /// The live log file of the running container.
    pub running: Option<PathBuf>,
    /// The live log file of the last container that ended.
    pub last_terminated: Option<PathBuf>,
    /// How many times the container was restarted.
    pub restart_count: usize,
}

/// Plays kubelet for one node (see the module doc).
pub struct Kubelet {
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
    /// How many times it started etcd.
    pub starts: Arc<AtomicUsize>,
    /// The node it plays kubelet for.
    pub node: String,
    /// Its etcd container's status.
    pub status: Arc<Mutex<ContainerStatus>>,
}

impl Kubelet {
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn manifest_argv(path: &Path) -> Option<Vec<String>> {
    let m = kubectl_etcd::reach::discovery::Manifest::load(path).ok()?;
    let mut argv: Vec<String> = m.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    argv.push("--logger=zap".into());
    argv.push("--log-level=warn".into());
    Some(argv)
}

/// The etcd container's image in a manifest's text.
fn manifest_image(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text)
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("image:"))
        .map(|i| i.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
}

/// The pod log directory of node `root`'s etcd static pod (kubelet's `--pod-log-dir` layout
/// under `ROOT/var/log/pods`).
pub fn pod_log_dir(root: &Path, node: &str) -> PathBuf {
    // A static pod's UID is a hash of its manifest; any stable hex string stands for it here.
    let uid = format!("{:032x}", fnv(root.display().to_string().as_bytes()));
    root.join("var/log/pods").join(format!("kube-system_etcd-{node}_{uid}")).join("etcd")
}

fn fnv(bytes: &[u8]) -> u128 {
    bytes.iter().fold(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d_u128, |h, b| {
        (h ^ u128::from(*b)).wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b)
    })
}

/// Now as RFC 3339 with nanoseconds, as CRI log lines carry it.
fn cri_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// One line of container output (`\n` included or not) as the runtime writes it to the CRI
/// log: `<now> <stream> F <text>`, cut into `P` fragments of 16 KiB.
fn cri_frame(line: &[u8], stream: &str) -> Vec<u8> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let chunks: Vec<&[u8]> = if text.is_empty() { vec![&[][..]] } else { text.chunks(CRI_MAX_LINE).collect() };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let tag = if i + 1 == chunks.len() { "F" } else { "P" };
        out.extend_from_slice(format!("{} {stream} {tag} ", cri_now()).as_bytes());
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
    out
}

/// A copy of `raw` (a member's own log, as etcd wrote it to stderr) framed line by line as the
/// runtime frames container output in a CRI pod log ([`cri_frame`]): `<raw>.cri`. The lines
/// are etcd's; the frame's times are the copy's.
pub fn cri_copy(raw: &Path) -> PathBuf {
    let text = std::fs::read(raw).unwrap();
    let out: Vec<u8> = text.split_inclusive(|b| *b == b'\n').flat_map(|l| cri_frame(l, "stderr")).collect();
    let path = raw.with_extension("cri");
    std::fs::write(&path, out).unwrap();
    path
}

/// A copy of `raw` framed line by line as Docker's json-file log driver writes container
/// output (`/var/lib/docker/containers/ID/ID-json.log`, where RKE1 runs etcd): `<raw>.docker`.
/// No Docker daemon runs here; this is the driver's framing, from its source
/// (`daemon/logger/jsonfilelog`): one JSON object per line, `{"log":…,"stream":…,"time":…}`, the
/// text escaped as Go's encoder does for HTML (`<`, `>`, `&` as `\u003c`, …), a line over 16 KiB
/// cut into entries of which only the last ends in `\n`. The lines are etcd's; the times are
/// the copy's.
pub fn docker_copy(raw: &Path) -> PathBuf {
    let text = std::fs::read(raw).unwrap();
    let mut out = Vec::new();
    for line in text.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let chunks: Vec<&[u8]> = if body.is_empty() { vec![&[][..]] } else { body.chunks(CRI_MAX_LINE).collect() };
        for (i, chunk) in chunks.iter().enumerate() {
            let mut log = String::from_utf8_lossy(chunk).into_owned();
            if i + 1 == chunks.len() {
                log.push('\n');
            }
            let entry = serde_json::json!({ "log": log, "stream": "stderr", "time": cri_now() });
            // serde_json orders keys by name: log, stream, time, Docker's own order.
            let json = entry.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
            out.extend_from_slice(json.as_bytes());
            out.push(b'\n');
        }
    }
    let path = raw.with_extension("docker");
    std::fs::write(&path, out).unwrap();
    path
}

/// Copies one output stream of the container into the raw log and the CRI log.
fn tee(
    stream: impl std::io::Read + Send + 'static,
    name: &'static str,
    raw: Arc<Mutex<std::fs::File>>,
    cri: Arc<Mutex<std::fs::File>>,
) {
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(stream);
        let mut line = Vec::new();
        while r.read_until(b'\n', &mut line).map(|n| n > 0).unwrap_or(false) {
            let _ = raw.lock().unwrap().write_all(&line);
            let _ = cri.lock().unwrap().write_all(&cri_frame(&line, name));
            line.clear();
        }
    });
}

/// The running container's CRI log: its path and the file the runtime writes (swapped on a
/// reopen after rotation).
struct LiveLog {
    path: PathBuf,
    file: Arc<Mutex<std::fs::File>>,
}

/// Starts the container: etcd with `argv`, its output into `root/etcd.log` and the CRI log of
/// restart number `restart`.
fn start(root: &Path, node: &str, bin: &Path, argv: &[String], restart: usize) -> (Child, LiveLog) {
    let dir = pod_log_dir(root, node);
    std::fs::create_dir_all(&dir).unwrap();
    let open =
        |p: PathBuf| Arc::new(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap()));
    let raw = open(root.join("etcd.log"));
    let path = dir.join(format!("{restart}.log"));
    let cri = open(path.clone());
    let live = LiveLog { path, file: cri.clone() };
    let mut cmd = crate::process::etcd_command_with(bin, None, argv);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    tee(child.stdout.take().unwrap(), "stdout", raw.clone(), cri.clone());
    tee(child.stderr.take().unwrap(), "stderr", raw, cri);
    (child, live)
}

/// Gzips `path` to `path.gz` through `path.gz.tmp`, then removes it (kubelet's `compressLog`).
fn compress(path: &Path) -> std::io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
    let mut w = flate2::write::GzEncoder::new(std::fs::File::create(&tmp)?, flate2::Compression::default());
    std::io::copy(&mut std::fs::File::open(path)?, &mut w)?;
    w.finish()?.sync_all()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(path)
}

/// One rotation check of the running container's log, as kubelet's container log manager does
/// it (`rotateLog`): nothing below the size; else drop unused parts (`.tmp`, or a part whose
/// `.gz` exists), keep at most `max_files - 2` rotated parts (the oldest removed), gzip the
/// uncompressed ones, and rename the live log `N.log.<stamp>` and reopen a new one.
fn rotate(live: &LiveLog, policy: LogPolicy) -> std::io::Result<bool> {
    if std::fs::metadata(&live.path)?.len() < policy.max_size {
        return Ok(false);
    }
    let dir = live.path.parent().unwrap();
    let prefix = format!("{}.", live.path.file_name().unwrap().to_string_lossy());
    let mut parts: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let names = parts.clone();
    parts.retain(|n| {
        let unused = n.ends_with(".tmp") || (!n.ends_with(".gz") && names.contains(&format!("{n}.gz")));
        if unused {
            let _ = std::fs::remove_file(dir.join(n));
        }
        !unused
    });
    parts.sort();
    let excess = parts.len().saturating_sub(policy.max_files.saturating_sub(2));
    for n in parts.drain(..excess) {
        std::fs::remove_file(dir.join(n))?;
    }
    for n in parts.iter().filter(|n| !n.ends_with(".gz")) {
        compress(&dir.join(n))?;
    }
    let t = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let mut file = live.file.lock().unwrap();
    std::fs::rename(&live.path, format!("{}.{stamp}", live.path.display()))?;
    // The runtime's ReopenContainerLog: a new live file under the same name.
    *file = std::fs::OpenOptions::new().create(true).append(true).open(&live.path)?;
    Ok(true)
}

/// Stops the container as kubelet does: SIGTERM, SIGKILL after [`GRACE`].
fn terminate(mut c: Child) {
    crate::process::signal(c.id() as i32, libc::SIGCONT);
    crate::process::signal(c.id() as i32, libc::SIGTERM);
    let start = Instant::now();
    while start.elapsed() < GRACE {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// What the emulation is handed for one node.
pub(crate) struct KubeletNode {
    pub manifest: PathBuf,
    pub root: PathBuf,
    pub node: String,
    pub policy: LogPolicy,
    pub stop: Arc<AtomicBool>,
    pub starts: Arc<AtomicUsize>,
    pub status: Arc<Mutex<ContainerStatus>>,
}

/// Runs the emulation for one node until `stop`; `child` is a running etcd to adopt (its
/// output is not the emulation's: it has no pod log).
pub(crate) fn run(mut child: Option<Child>, n: KubeletNode) {
    let KubeletNode { manifest, root, node, policy, stop, starts, status } = n;
    let mut backoff = BACKOFF_START;
    let mut started_at = Instant::now();
    let mut restart_at: Option<Instant> = None;
    let mut restarts = 0usize;
    let mut live: Option<LiveLog> = None;
    let mut rotated_at = Instant::now();
    // The container ended: its log is the last terminated one's.
    let ended = |live: &mut Option<LiveLog>| {
        let mut st = status.lock().unwrap();
        st.running = None;
        if let Some(l) = live.take() {
            st.last_terminated = Some(l.path);
        }
    };
    // The manifest the running pod was made from: a changed manifest is a new pod (kubelet
    // hashes a static pod's manifest), so the old container stops and the new one starts.
    let mut spec: Option<Vec<u8>> = child.as_ref().and_then(|_| std::fs::read(&manifest).ok());
    let mut pull_error: Option<Vec<u8>> = None;
    while !stop.load(Ordering::SeqCst) {
        let current = std::fs::read(&manifest).ok();
        if let (Some(cur), Some(old)) = (&current, &spec) {
            if cur != old {
                if let Some(c) = child.take() {
                    terminate(c);
                    ended(&mut live);
                }
                spec = None;
                restart_at = None;
                backoff = BACKOFF_START;
            }
        }
        if let Some(c) = child.as_mut() {
            if let Ok(Some(_)) = c.try_wait() {
                // It crashed: restart it after the back-off.
                child = None;
                ended(&mut live);
                if started_at.elapsed() >= BACKOFF_RESET {
                    backoff = BACKOFF_START;
                }
                restart_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            } else if rotated_at.elapsed() >= ROTATE_EVERY {
                // Only a running container's log is rotated.
                rotated_at = Instant::now();
                if let Some(l) = &live {
                    let _ = rotate(l, policy);
                }
            }
        }
        match (manifest.exists(), child.is_some()) {
            (true, false) if restart_at.is_none_or(|t| Instant::now() >= t) => {
                let image = current.as_deref().and_then(manifest_image).unwrap_or_default();
                match crate::bins::binary_for_image(&image) {
                    Err(why) => {
                        // ErrImagePull: the pod never starts; said once per manifest.
                        if pull_error != current {
                            let _ = std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(root.join("kubelet.log"))
                                .and_then(|mut f| writeln!(f, "{} ErrImagePull: {why}", cri_now()));
                            pull_error = current.clone();
                        }
                    }
                    Ok(bin) => {
                        if let Some(argv) = manifest_argv(&manifest) {
                            let (c, l) = start(&root, &node, &bin, &argv, restarts);
                            {
                                let mut st = status.lock().unwrap();
                                st.running = Some(l.path.clone());
                                st.restart_count = restarts;
                            }
                            child = Some(c);
                            live = Some(l);
                            spec = current.clone();
                            restarts += 1;
                            started_at = Instant::now();
                            rotated_at = Instant::now();
                            restart_at = None;
                            starts.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
            (false, true) => {
                // The pod is gone: the next manifest is a new pod, started at once.
                if let Some(c) = child.take() {
                    terminate(c);
                    ended(&mut live);
                }
                spec = None;
                restart_at = None;
                backoff = BACKOFF_START;
            }
            (false, false) => {
                restart_at = None;
                backoff = BACKOFF_START;
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(c) = child.take() {
        terminate(c);
        ended(&mut live);
    }
}
