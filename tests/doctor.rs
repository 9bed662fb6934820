//! `kubectl etcd restore doctor` against data dirs real etcd members wrote (3.4 or 3.5, by
//! `E2E_ETCD_VERSION`), damaged the way power loss and bad disks damage them. For each damage,
//! the doctor's verdict is compared with what real etcd does when started on the same copy:
//! "starts" exactly when etcd starts, "damaged" exactly when it refuses.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const RESTORE: &str = "kubectl-etcd-restore";

/// A stopped one-member cluster whose data dir holds `puts` entries of `value_len` bytes and,
/// with a small snapshot count, several `.snap` files (64 MB of entries fill a WAL segment).
async fn written(puts: usize, value_len: usize) -> Cluster {
    let mut c = Cluster::builder(1).flag("snapshot-count", "50").start();
    let mut client = c.client(0).await;
    let value = vec![b'x'; value_len];
    for i in 0..puts {
        client.put(format!("/d/{}", i % 20), value.clone(), None).await.unwrap();
    }
    // A clean shutdown: SIGKILL could cut the last record in half, which is a torn tail.
    c.stop(0);
    c
}

fn copy(c: &Cluster, tag: &str) -> PathBuf {
    let to = c.dir.path().join(format!("copy-{tag}"));
    let st = Command::new("cp").arg("-a").arg(c.nodes[0].data_dir()).arg(&to).status().unwrap();
    assert!(st.success());
    to
}

/// The files of `dir/sub` ending in `.ext`, sorted.
fn files(dir: &Path, sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    files(dir, "member/wal", "wal")
}

fn doctor(dir: &Path) -> (std::process::Output, Value) {
    let o = run_plugin(RESTORE, &["doctor", dir.to_str().unwrap(), "-o", "json"], &[]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

/// Starts real etcd on `dir` with the node's own flags: its `endpoint status` (JSON) when it
/// serves, `None` when it exits (refuses to start); and its log.
fn etcd_status(c: &Cluster, dir: &Path) -> (Option<Value>, String) {
    let root = dir.with_extension("run");
    let argv: Vec<String> = c.nodes[0]
        .flags
        .iter()
        .map(|(k, v)| if k == "data-dir" { format!("--data-dir={}", dir.display()) } else { format!("--{k}={v}") })
        .collect();
    let mut child = spawn_etcd(&root, &argv);
    let start = Instant::now();
    let url = c.nodes[0].client_url();
    let result = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break None;
        }
        let o = c.etcdctl(&url, &["endpoint", "status", "-w", "json"]);
        if o.status.success() {
            break Some(serde_json::from_slice(&o.stdout).unwrap());
        }
        assert!(start.elapsed() < Duration::from_secs(30), "etcd neither served nor exited on {}", dir.display());
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = child.kill();
    let _ = child.wait();
    (result, std::fs::read_to_string(root.join("etcd.log")).unwrap_or_default())
}

fn assert_agrees(c: &Cluster, dir: &Path, want: &str) -> Value {
    let (o, d) = doctor(dir);
    assert_eq!(d["verdict"], want, "{}\n{d:#}", stderr(&o));
    assert_eq!(o.status.code(), Some(if want == "damaged" { 1 } else { 0 }), "{}", stderr(&o));
    let (status, log) = etcd_status(c, dir);
    let started = status.is_some();
    assert_eq!(
        started,
        want != "damaged",
        "doctor says {want}, etcd {}:\n{}",
        if started { "started" } else { "refused" },
        log
    );
    d
}

#[tokio::test(flavor = "multi_thread")]
async fn verdicts_match_what_etcd_does() {
    // A few megabytes, copied once per case.
    let c = written(200, 4096).await;

    // Sound: healthy, and etcd starts.
    let sound = copy(&c, "sound");
    let d = assert_agrees(&c, &sound, "healthy");
    assert!(d["wal"]["last_index"].as_u64().unwrap() > 100);
    assert!(d["db"]["valid"] == true && d["db"]["consistent_index"].as_u64().unwrap() > 0, "{d:#}");
    assert_eq!(d["name"], "node-0");

    // Power loss: a record being appended was half written (its last sectors still the zeros
    // etcd preallocates). etcd repairs it; nothing it had acknowledged is lost. (Cutting a
    // record it had applied leaves the database ahead of the WAL instead: damage, as
    // `a_wal_behind_its_database_panics_on_rejoining` shows.)
    let torn = copy(&c, "torn");
    let last = wal_files(&torn).pop().unwrap();
    let frames = wal_frames(&last);
    let end = frames.last().unwrap().1;
    // An entry of 4 KiB (the largest frame), half of it written after the last record.
    let (at, to) = frames.into_iter().max_by_key(|(a, b)| b - a).unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let record = bytes[at..to].to_vec();
    bytes.resize(bytes.len().max(end + record.len()), 0);
    bytes[end..end + record.len() / 2].copy_from_slice(&record[..record.len() / 2]);
    std::fs::write(&last, &bytes).unwrap();
    let d = assert_agrees(&c, &torn, "repairable");
    assert!(d["notes"][0].as_str().unwrap().contains("torn record"), "{d:#}");

    // A bad disk: one byte flipped inside an entry's value in the middle of the segment.
    let flipped = copy(&c, "flipped");
    let first = wal_files(&flipped).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let frames = wal_frames(&first);
    let (at, to) = frames[frames.len() / 2..].iter().copied().max_by_key(|(a, b)| b - a).unwrap();
    assert_eq!(bytes[(at + to) / 2], b'x');
    bytes[(at + to) / 2] = b'y';
    std::fs::write(&first, &bytes).unwrap();
    let d = assert_agrees(&c, &flipped, "damaged");
    assert!(d["damage"][0].as_str().unwrap().contains("CRC mismatch"), "{d:#}");

    // The database cut in half.
    let short = copy(&c, "short-db");
    let db = short.join("member/snap/db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(len / 2).unwrap();
    let d = assert_agrees(&c, &short, "damaged");
    assert!(d["damage"].to_string().contains("member/snap/db is damaged"), "{d:#}");

    // A bad sector: the page holding the database's root (as both meta pages name it) zeroed.
    let zeroed = copy(&c, "zeroed-db-page");
    let db = zeroed.join("member/snap/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
    let page = u32_at(&bytes, 16 + 8);
    for meta in [0, page] {
        let root = u64_at(&bytes, meta + 16 + 16);
        bytes[root * page..(root + 1) * page].fill(0);
    }
    std::fs::write(&db, &bytes).unwrap();
    let d = assert_agrees(&c, &zeroed, "damaged");
    assert!(d["damage"].to_string().contains("member/snap/db is damaged"), "{d:#}");

    // The newest .snap deleted: etcd loads an older one the WAL has a marker for.
    let nosnap = copy(&c, "no-newest-snap");
    let mut snaps = files(&nosnap, "member/snap", "snap");
    assert!(snaps.len() >= 2, "{snaps:?}");
    std::fs::remove_file(snaps.pop().unwrap()).unwrap();
    let d = assert_agrees(&c, &nosnap, "healthy");
    let older = snaps.pop().unwrap();
    assert_eq!(d["loads_snap"], older.file_name().unwrap().to_str().unwrap(), "{d:#}");
}

/// A lost file: the middle one of three WAL segments (64 MB each: 1 MiB entries) removed, in
/// the data dir itself (no copy).
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_segment_is_damage() {
    let c = written(2 * 62 + 30, 1024 * 1024).await;
    let dir = c.nodes[0].data_dir();
    let segments = wal_files(&dir);
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(&segments[1]).unwrap();
    let d = assert_agrees(&c, &dir, "damaged");
    assert!(d["damage"][0].as_str().unwrap().contains("segment is missing"), "{d:#}");
}

#[test]
fn not_a_data_dir_and_a_wal_from_another_member() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = doctor(dir.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not an etcd data dir"), "{}", stderr(&o));

    let mut c = Cluster::start(3);
    c.put("/k", "v");
    let members = c.member_list();
    let node1 = members.as_array().unwrap().iter().find(|m| m["name"] == "node-1").unwrap()["ID"].as_u64().unwrap();
    c.stop(0);
    c.stop(1);
    let mixed = c.dir.path().join("mixed");
    assert!(Command::new("cp").arg("-a").arg(c.nodes[0].data_dir()).arg(&mixed).status().unwrap().success());
    std::fs::remove_dir_all(mixed.join("member/wal")).unwrap();
    let from = c.nodes[1].data_dir().join("member/wal");
    assert!(Command::new("cp").arg("-a").arg(&from).arg(mixed.join("member/wal")).status().unwrap().success());
    let manifest = c.nodes[0].manifest();
    let o = run_plugin(
        RESTORE,
        &["doctor", mixed.to_str().unwrap(), "--manifest", manifest.to_str().unwrap(), "-o", "json"],
        &[],
    );
    let d: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(d["verdict"], "damaged", "{d:#}");
    assert_eq!(o.status.code(), Some(1));
    assert!(d["damage"].to_string().contains("WAL belongs to member node-1"), "{d:#}");
    // The cluster has no quorum (two of three down): the way back is the survivor's restore.
    assert!(d["next_steps"].to_string().contains("restore from-data-dir"), "{d:#}");
    let text = run_plugin(RESTORE, &["doctor", mixed.to_str().unwrap(), "--manifest", manifest.to_str().unwrap()], &[]);
    assert!(stdout(&text).starts_with(&format!("Data dir {}: DAMAGED", mixed.display())), "{}", stdout(&text));
    // Real etcd does start on it, and that is the damage: it runs as node-1, the member the WAL
    // came from, with node-0's name and URLs (and publishes them over node-1's entry).
    let (status, log) = etcd_status(&c, &mixed);
    let status = status.unwrap_or_else(|| panic!("{log}"));
    assert_eq!(status[0]["Status"]["header"]["member_id"], node1, "{status:#}");
}

/// The command a printed step ends with (`…: mv …` or `…: kubectl etcd …`).
fn step_command(step: &str) -> &str {
    [": mv ", ": kubectl etcd "]
        .iter()
        .find_map(|p| step.find(p).map(|i| &step[i + 2..]))
        .unwrap_or_else(|| panic!("no command in step {step:?}"))
}

/// A member of a three-member kubeadm-shaped cluster whose WAL is damaged crash-loops under
/// kubelet; the doctor's steps, run exactly as printed (the shell for `mv`, the plugins for
/// `kubectl etcd …`, on the node: the moved-aside manifest and kubeadm's admin.conf are all
/// they have), bring it back as a voter holding every key, with the damaged dir kept aside.
#[tokio::test(flavor = "multi_thread")]
async fn the_printed_replace_steps_bring_the_member_back() {
    use harness::fakekube::{cluster_pods, FakeKube};
    let mut c = Cluster::builder(3).kubeadm_manifests().start();
    let value = "x".repeat(1024);
    let mut client = c.client(0).await;
    for i in 0..300 {
        client.put(format!("/k/{i:03}"), value.clone(), None).await.unwrap();
    }
    let kube = FakeKube::start(cluster_pods(&c, true, true), vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    let env = [("KUBECTL_ETCD_ADMIN_KUBECONFIG", kc.to_str().unwrap())];

    // node-1 (joined second: its manifest lists node-0 and itself) loses a byte in the middle of
    // its first WAL segment; kubelet keeps restarting it and it keeps refusing.
    c.stop(1);
    let data = c.nodes[1].data_dir();
    let first = wal_files(&data).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.windows(64).position(|w| w.iter().all(|b| *b == b'x')).unwrap() + 10;
    bytes[at] = b'y';
    std::fs::write(&first, &bytes).unwrap();
    let starts = c.kubelet(1);
    wait_for("kubelet to restart the damaged member", Duration::from_secs(20), || {
        (starts.load(std::sync::atomic::Ordering::SeqCst) >= 2).then_some(())
    });

    let manifest = c.nodes[1].manifest();
    let o = run_plugin(RESTORE, &["doctor", "--manifest", manifest.to_str().unwrap(), "-o", "json"], &env);
    let d: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(d["verdict"], "damaged", "{d:#}");
    let steps: Vec<String> = d["next_steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().into()).collect();
    assert_eq!(steps.len(), 4, "{steps:#?}");

    for step in &steps {
        let cmd = step_command(step);
        if let Some(rest) = cmd.strip_prefix("kubectl etcd ") {
            let mut words = rest.split_whitespace();
            let plugin = format!("kubectl-etcd-{}", words.next().unwrap());
            let args: Vec<&str> = words.collect();
            let o = run_plugin(&plugin, &args, &env);
            assert_eq!(o.status.code(), Some(0), "{cmd}\nstdout: {}\nstderr: {}", stdout(&o), stderr(&o));
        } else {
            let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
            assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }

    // node-1 is a voter again, under a new ID, and serves every key from its own copy.
    let members = c.member_list();
    let m = members.as_array().unwrap().iter().find(|m| m["name"] == "node-1").unwrap_or_else(|| panic!("{members:#}"));
    assert_ne!(m["isLearner"], true, "{members:#}");
    assert_eq!(members.as_array().unwrap().len(), 3, "{members:#}");
    let o = c
        .etcdctl(&c.nodes[1].client_url(), &["get", "/k/", "--prefix", "--keys-only", "--consistency=s", "-w", "json"]);
    let count: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(count["count"], 300, "{count:#}");
    // The damaged data dir is kept aside, whole; the manifest is back in place.
    let parent = data.parent().unwrap();
    let aside: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(parent.join(&aside[0]).join("member/wal").join(first.file_name().unwrap())).unwrap(),
        bytes
    );
    assert!(manifest.exists());
}

// What etcd does with a data dir when it rejoins its live cluster. Each test builds the damage
// from a member of a small live cluster (a few kilobytes of keys: one WAL segment per member),
// asks the doctor, then starts real etcd on the same dir beside the cluster and checks that it
// does what the verdict says.

/// An etcd process started by a test; killed when dropped (also when the test fails).
struct Started {
    child: std::process::Child,
    log: PathBuf,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Started {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// A three-member cluster holding a few keys.
fn small_cluster() -> Cluster {
    let c = Cluster::start(3);
    for i in 0..30 {
        c.put(&format!("/k/{i:02}"), "value");
    }
    c
}

/// A small cluster with node-2 stopped cleanly, and node-2's data dir.
fn stopped_member() -> (Cluster, PathBuf) {
    let mut c = small_cluster();
    c.stop(2);
    let dir = c.nodes[2].data_dir();
    (c, dir)
}

/// Node `i`'s etcd flags for starting it again on its own data dir, as a member of the
/// running cluster.
fn rejoin_argv(c: &Cluster, i: usize) -> Vec<String> {
    c.nodes[i]
        .flags
        .iter()
        .map(|(k, v)| match k.as_str() {
            "initial-cluster-state" => format!("--{k}=existing"),
            _ => format!("--{k}={v}"),
        })
        .collect()
}

/// Starts etcd on node `i`'s data dir again (its log in `<node>/rejoin/etcd.log`).
fn rejoin(c: &Cluster, i: usize) -> Started {
    let root = c.nodes[i].root.join("rejoin");
    Started { child: spawn_etcd(&root, &rejoin_argv(c, i)), log: root.join("etcd.log") }
}

/// Polls until the log of `started` holds one of `signs` (what etcd says when it refuses), then
/// until it has exited. Returns the log.
fn refuses(started: &mut Started, signs: &[&str]) -> String {
    let log = wait_for(&format!("etcd to log one of {signs:?}"), Duration::from_secs(60), || {
        Some(started.log()).filter(|l| signs.iter().any(|s| l.contains(s)))
    });
    wait_for("etcd to exit", Duration::from_secs(30), || started.exited().then_some(()));
    log
}

/// Polls, for `secs`, that the etcd started on a dir never takes a write through its own
/// endpoint (it may exit meanwhile: that takes none either). Returns whether it exited.
fn takes_no_writes(c: &Cluster, i: usize, started: &mut Started, secs: u64) -> bool {
    let url = c.nodes[i].client_url();
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if started.exited() {
            return true;
        }
        let o = c.etcdctl(&url, &["put", "/doctor/probe", "x", "--command-timeout=1s"]);
        assert!(!o.status.success(), "etcd took a write on a dir the doctor calls damaged:\n{}", started.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    started.exited()
}

fn doctor_with(dir: &Path, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args = vec!["doctor", dir.to_str().unwrap(), "-o", "json"];
    args.extend_from_slice(extra);
    let o = run_plugin(RESTORE, &args, &[]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    (o, v)
}

/// The live cluster's endpoints and client certificate, as flags.
fn live_args(c: &Cluster) -> Vec<String> {
    let pki = c.nodes[0].pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    vec![
        "--endpoints".into(),
        c.nodes[0].client_url(),
        "--cacert".into(),
        p("ca.crt"),
        "--cert".into(),
        p("healthcheck-client.crt"),
        "--key".into(),
        p("healthcheck-client.key"),
    ]
}

fn assert_damaged(o: &std::process::Output, d: &Value, sign: &str) {
    assert_eq!(d["verdict"], "damaged", "{d:#}");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    assert!(d["damage"].to_string().contains(sign), "{d:#}");
    // The existing replace steps (nothing is known of the cluster: the others may have quorum).
    assert!(d["next_steps"].to_string().contains("kubectl etcd learner remove"), "{d:#}");
}

/// The raft message etcd panics with when its leader's commit index runs past its log.
const TOCOMMIT: &str = "is out of range [lastIndex(";

/// (a) A WAL cut at a record boundary behind what the database applied: etcd reads a clean
/// WAL and starts, then panics on the leader's first heartbeat.
#[test]
fn a_wal_behind_its_database_panics_on_rejoining() {
    let (c, dir) = stopped_member();
    let seg = wal_files(&dir).pop().unwrap();
    let frames = wal_frames(&seg);
    let cut = frames[frames.len() - 12].0;
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut as u64).unwrap();
    let (o, d) = doctor(&dir);
    let (ci, last) = (d["db"]["consistent_index"].as_u64().unwrap(), d["wal"]["last_index"].as_u64().unwrap());
    assert!(ci > last, "the cut left the WAL at {last}, the database at {ci}: {d:#}");
    assert_damaged(&o, &d, &format!("consistent index {ci}, last WAL entry {last}"));

    let mut etcd = rejoin(&c, 2);
    let log = refuses(&mut etcd, &[TOCOMMIT]);
    assert!(log.contains(&format!("{TOCOMMIT}{last})]")), "{log}");
    // `doctor logs` on that log, raw and framed as a CRI pod log: the raft log behind the
    // cluster's commit, and how etcd ended.
    for log in [etcd.log.clone(), harness::kubelet::cri_copy(&etcd.log)] {
        let o = run_plugin("kubectl-etcd-doctor", &["logs", "--log-file", log.to_str().unwrap(), "-o", "json"], &[]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        assert_eq!(o.status.code(), Some(1), "{v:#}");
        let f = v["findings"].as_array().unwrap().iter().find(|f| f["id"] == "raft-log-behind");
        assert!(f.is_some_and(|f| f["next"].as_str().unwrap().contains("kubectl etcd learner remove")), "{v:#}");
        let ended = v["containers"].as_array().unwrap().last().unwrap()["ended"].as_str().unwrap().to_string();
        assert!(ended.starts_with("crashed: the raft log is behind"), "{v:#}");
    }
}

/// (b) One record's length field zeroed in the middle of the segment: etcd stops reading there
/// (a zero length is where its preallocated space begins), zeroes the rest, and starts on what
/// is left — then panics or takes no writes.
#[test]
fn a_zeroed_length_mid_segment_is_damage() {
    let (c, dir) = stopped_member();
    let seg = wal_files(&dir).pop().unwrap();
    let frames = wal_frames(&seg);
    let (at, _) = frames[frames.len() / 2];
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at..at + 8].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let (o, d) = doctor(&dir);
    assert_damaged(&o, &d, &format!("a zero length) at byte {at}, yet records follow it"));

    let mut etcd = rejoin(&c, 2);
    if !takes_no_writes(&c, 2, &mut etcd, 15) {
        // It stays up and takes no writes: health must not call it healthy nor count it.
        let o = run_plugin(
            "kubectl-etcd-health",
            &["--manifest", c.nodes[0].manifest().to_str().unwrap(), "-o", "json"],
            &[],
        );
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        let row = doc["members"].as_array().unwrap().iter().find(|m| m["name"] == c.nodes[2].name).unwrap();
        eprintln!("health of the member that takes no writes: {row:#}");
        assert_eq!((row["health"].as_str(), row["in_quorum"].as_bool()), (Some("unhealthy"), Some(false)), "{row:#}");
        assert_eq!(o.status.code(), Some(1), "{doc:#}");
        return;
    }
    assert!(etcd.log().contains(TOCOMMIT), "{}", etcd.log());
}

/// (c) Segments beyond any etcd writes: etcd opens every one after its snapshot at once and
/// runs out of file descriptors (under the 1024 a process gets by default; the issue saw
/// 20,001 segments against a limit of 20,000).
#[test]
fn too_many_segments_to_open_is_damage() {
    let (c, dir) = stopped_member();
    let last = wal_files(&dir).pop().unwrap();
    let name = last.file_name().unwrap().to_str().unwrap();
    let seq = u64::from_str_radix(&name[..16], 16).unwrap();
    let (o, d) = doctor(&dir);
    assert_eq!(d["verdict"], "healthy", "{d:#}\n{}", stderr(&o));
    let index = d["wal"]["last_index"].as_u64().unwrap() + 1;
    for k in 1..=1100u64 {
        std::fs::File::create(dir.join(format!("member/wal/{:016x}-{index:016x}.wal", seq + k))).unwrap();
    }
    let (o, d) = doctor(&dir);
    assert_damaged(&o, &d, "etcd would open 1101 WAL segments");

    let root = c.nodes[2].root.join("rejoin");
    std::fs::create_dir_all(&root).unwrap();
    let log = root.join("etcd.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 1024 && exec \"$0\" \"$@\"")
        .arg(&etcd().etcd)
        .args(rejoin_argv(&c, 2))
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut etcd = Started { child, log };
    refuses(&mut etcd, &["too many open files"]);
}

/// (d) A FIFO where the database belongs: the doctor answers at once (it never opens a
/// non-regular file blocking), and etcd never serves on it.
#[test]
fn a_fifo_for_the_database_is_damage_and_never_hangs_the_doctor() {
    let (c, dir) = stopped_member();
    let db = dir.join("member/snap/db");
    std::fs::remove_file(&db).unwrap();
    assert!(Command::new("mkfifo").arg(&db).status().unwrap().success());
    // Killed, and the test failed, if it is still running after 20 s.
    let o = spawn_plugin(RESTORE, &["doctor", dir.to_str().unwrap(), "-o", "json"], &[]).wait(Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_damaged(&o, &d, "member/snap/db is damaged: it is a FIFO, not a regular file");

    let mut etcd = rejoin(&c, 2);
    takes_no_writes(&c, 2, &mut etcd, 10);
}

/// What peers and a removed member log when it comes back: the peers reject its streams (3.5
/// and 3.4 with zap: "rejected stream from remote peer because it was removed"; 3.4's older
/// logger: "rejected the stream from peer … since it was removed"), and it stops itself ("the
/// member has been permanently removed from the cluster").
const REMOVED_SIGNS: &[&str] =
    &["because it was removed", "since it was removed", "permanently removed from the cluster"];

/// Removes a member through node-0, retrying while etcd refuses membership changes for the
/// first seconds after its members connected ("unhealthy cluster").
fn member_remove(c: &Cluster, id: u64) {
    wait_for("etcd to accept member remove", Duration::from_secs(20), || {
        let o = c.etcdctl(&c.nodes[0].client_url(), &["member", "remove", &format!("{id:x}")]);
        assert!(o.status.success() || stderr(&o).contains("unhealthy cluster"), "{}", stderr(&o));
        o.status.success().then_some(())
    });
}

/// The IDs of the live members, by name.
fn member_ids(c: &Cluster) -> std::collections::BTreeMap<String, u64> {
    let list = c.member_list();
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["ID"].as_u64().unwrap()))
        .collect()
}

/// Runs a printed `…: mv …` step through the shell.
fn run_mv(step: &str) {
    let cmd = step_command(step);
    assert!(cmd.starts_with("mv "), "{step}");
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
}

/// A removed member's data dir is "removed" (never "damaged", never the remove-and-add-back
/// steps): known from its own WAL when it was removed while running, from the live member list
/// when it was removed while stopped. Real etcd started on either is rejected by its peers.
#[test]
fn a_removed_member_is_removed_not_damaged() {
    let mut c = small_cluster();
    let ids = member_ids(&c);
    let data = |i: usize| c.nodes[i].data_dir();
    let (dir1, dir2) = (data(1), data(2));

    // node-1 removed while stopped (the other two keep the quorum): its data dir knows nothing
    // of it; the live list does.
    c.stop(1);
    member_remove(&c, ids["node-1"]);
    let (_, d) = doctor(&dir1);
    assert_eq!(d["verdict"], "healthy", "offline, the dir alone looks sound: {d:#}");
    let live = live_args(&c);
    let live: Vec<&str> = live.iter().map(String::as_str).collect();
    let (o, d) = doctor_with(&dir1, &live);
    assert_eq!(d["verdict"], "removed", "{d:#}\n{}", stderr(&o));
    assert!(d["damage"][0].as_str().unwrap().contains("not in its live cluster's member list"), "{d:#}");

    let mut etcd = rejoin(&c, 1);
    refuses(&mut etcd, REMOVED_SIGNS);
    drop(etcd);

    // The printed step moves the dir aside, whole.
    run_mv(d["next_steps"][1].as_str().unwrap());
    assert!(!dir1.exists());
    let parent = std::fs::read_dir(dir1.parent().unwrap()).unwrap();
    let moved: Vec<PathBuf> =
        parent.map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(".removed-")).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(!wal_files(&moved[0]).is_empty());

    // node-2 removed while it runs (node-0 stays, alone): it records its own removal and
    // stops by itself; the doctor, offline, reads that from its WAL and database.
    member_remove(&c, ids["node-2"]);
    let mut gone = c.nodes[2].child.take().unwrap();
    wait_for("the removed member to stop", Duration::from_secs(30), || gone.try_wait().unwrap());
    let (o, d) = doctor(&dir2);
    assert_eq!(d["verdict"], "removed", "{d:#}");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(d["damage"][0].as_str().unwrap().contains("it was removed from its cluster"), "{d:#}");
    let steps: Vec<&str> = d["next_steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert_eq!(steps.len(), 2, "{steps:#?}");
    assert_eq!(steps[0], "stop etcd on this node");
    let aside = format!("mv {0} {0}.removed-$(date +%Y%m%d%H%M%S)", dir2.display());
    assert!(steps[1].ends_with(&aside), "{}", steps[1]);
    assert!(!d["next_steps"].to_string().contains("learner"), "{d:#}");
    let text = run_plugin(RESTORE, &["doctor", dir2.to_str().unwrap()], &[]);
    assert!(stdout(&text).starts_with(&format!("Data dir {}: REMOVED", dir2.display())), "{}", stdout(&text));

    let mut etcd = rejoin(&c, 2);
    refuses(&mut etcd, REMOVED_SIGNS);
    drop(etcd);
}

/// A joiner whose first start failed (it could not reach its cluster) leaves a data dir without
/// a WAL: "never started"; started again with the right flags, etcd joins afresh on it.
#[test]
fn a_joiner_that_never_started_joins_afresh() {
    let mut c = Cluster::start(1);
    c.put("/k", "v");
    let i = c.add_learner("node-1", false);
    let dir = c.nodes[i].data_dir();
    // The first start names a peer URL nobody listens on: etcd cannot fetch the cluster and exits.
    let wrong = format!("https://127.0.0.1:{}", free_port());
    let argv: Vec<String> = c.nodes[i]
        .flags
        .iter()
        .map(|(k, v)| match k.as_str() {
            "initial-cluster" => format!("--{k}={}", v.replace(&c.nodes[0].peer_url(), &wrong)),
            _ => format!("--{k}={v}"),
        })
        .collect();
    let root = c.nodes[i].root.join("first-start");
    let mut first = Started { child: spawn_etcd(&root, &argv), log: root.join("etcd.log") };
    wait_for("the first start to fail", Duration::from_secs(60), || first.exited().then_some(()));
    assert!(dir.join("member").is_dir(), "{}", first.log());
    assert!(wal_files_or_none(&dir).is_empty(), "{}", first.log());

    let (o, d) = doctor(&dir);
    assert_eq!(d["verdict"], "never_started", "{d:#}\n{}", stderr(&o));
    assert_eq!(o.status.code(), Some(0));
    assert!(d["next_steps"][0].as_str().unwrap().contains("--initial-cluster-state=existing"), "{d:#}");
    assert!(d["next_steps"][1].as_str().unwrap().contains("its log"), "{d:#}");
    // With the live cluster: it names the unstarted member etcd joins as.
    let manifest = c.nodes[i].manifest();
    let mut args = vec!["--manifest", manifest.to_str().unwrap()];
    let live = live_args(&c);
    args.extend(live.iter().map(String::as_str));
    let (_, d) = doctor_with(&dir, &args);
    assert_eq!(d["verdict"], "never_started", "{d:#}");
    let ids = c.member_list();
    let unstarted = ids.as_array().unwrap().iter().find(|m| m["name"].as_str().unwrap_or("").is_empty()).unwrap()["ID"]
        .as_u64()
        .unwrap();
    assert!(d["notes"].to_string().contains(&format!("unstarted member {unstarted:016x}")), "{d:#}");

    // etcd does join afresh on it.
    c.start_node(i);
    assert!(member_ids(&c).contains_key("node-1"));
}

fn wal_files_or_none(dir: &Path) -> Vec<PathBuf> {
    if dir.join("member/wal").is_dir() {
        wal_files(dir)
    } else {
        Vec::new()
    }
}

/// Every file and directory under `dir`: path, size, mtime and, for files, a SHA-256.
fn tree(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime, Vec<u8>)> {
    use sha2::Digest;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let hash = if md.is_file() { sha2::Sha256::digest(std::fs::read(&p).unwrap()).to_vec() } else { Vec::new() };
        if md.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
        out.push((p, md.len(), md.modified().unwrap(), hash));
    }
    out.sort();
    out
}

/// The doctor reads and never writes: on a dir etcd would repair (a torn tail), the tree's
/// listing, sizes, mtimes and hashes are the same after it ran (text and JSON) as before.
#[test]
fn the_doctor_changes_nothing() {
    let mut c = Cluster::start(1);
    for i in 0..30 {
        c.put(&format!("/k/{i:02}"), "value");
    }
    c.stop(0);
    let dir = c.nodes[0].data_dir();
    let seg = wal_files(&dir).pop().unwrap();
    let (at, end) = *wal_frames(&seg).last().unwrap();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len((at + end) as u64 / 2 + 1).unwrap();
    let before = tree(&dir);
    let (_, d) = doctor(&dir);
    assert_eq!(d["verdict"], "repairable", "{d:#}");
    run_plugin(RESTORE, &["doctor", dir.to_str().unwrap()], &[]);
    assert_eq!(tree(&dir), before);
}
