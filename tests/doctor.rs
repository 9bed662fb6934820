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

/// A stopped one-member cluster whose data dir holds `segments` WAL segments and, with a small
/// snapshot count, several `.snap` files.
async fn written(segments: usize) -> Cluster {
    let mut c = Cluster::builder(1).flag("snapshot-count", "50").start();
    let mut client = c.client(0).await;
    let value = vec![b'x'; 1024 * 1024];
    // 64 MB per segment, 1 MiB per entry.
    for i in 0..(segments.saturating_sub(1) * 62 + 30) {
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

/// Starts real etcd on `dir` with the node's own flags: true when it serves, false when it
/// exits (refuses to start).
fn etcd_starts(c: &Cluster, dir: &Path) -> (bool, String) {
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
            break false;
        }
        if c.etcdctl(&url, &["endpoint", "status"]).status.success() {
            break true;
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
    let (started, log) = etcd_starts(c, dir);
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
    let c = written(3).await;

    // Sound: healthy, and etcd starts.
    let sound = copy(&c, "sound");
    let d = assert_agrees(&c, &sound, "healthy");
    assert!(d["wal"]["segments"].as_array().unwrap().len() >= 3, "{d:#}");
    assert!(d["wal"]["last_index"].as_u64().unwrap() > 100);
    assert!(d["db"]["valid"] == true && d["db"]["consistent_index"].as_u64().unwrap() > 0, "{d:#}");
    assert_eq!(d["name"], "node-0");

    // Power loss: the last segment ends in a record cut short. etcd repairs it.
    let torn = copy(&c, "torn");
    let last = wal_files(&torn).pop().unwrap();
    let (_, d) = doctor(&torn);
    let used = d["wal"]["segments"].as_array().unwrap().last().unwrap()["used"].as_u64().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    f.set_len(used - 100).unwrap();
    let d = assert_agrees(&c, &torn, "repairable");
    assert!(d["notes"][0].as_str().unwrap().contains("torn record"), "{d:#}");

    // A bad disk: one byte flipped inside a record in the middle of the first segment.
    let flipped = copy(&c, "flipped");
    let first = wal_files(&flipped).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let mid = bytes.len() / 4;
    let at = mid + bytes[mid..].windows(64).position(|w| w.iter().all(|b| *b == b'x')).unwrap() + 10;
    bytes[at] = b'y';
    std::fs::write(&first, &bytes).unwrap();
    let d = assert_agrees(&c, &flipped, "damaged");
    assert!(d["damage"][0].as_str().unwrap().contains("CRC mismatch"), "{d:#}");

    // A lost file: the middle segment removed.
    let gap = copy(&c, "gap");
    std::fs::remove_file(&wal_files(&gap)[1]).unwrap();
    let d = assert_agrees(&c, &gap, "damaged");
    assert!(d["damage"][0].as_str().unwrap().contains("segment is missing"), "{d:#}");

    // The database cut in half.
    let short = copy(&c, "short-db");
    let db = short.join("member/snap/db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(len / 2).unwrap();
    let d = assert_agrees(&c, &short, "damaged");
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

#[test]
fn not_a_data_dir_and_a_wal_from_another_member() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = doctor(dir.path());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("is not an etcd data dir"), "{}", stderr(&o));

    let mut c = Cluster::start(3);
    c.put("/k", "v");
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
}
