//! `kubectl etcd restore snapshot save|status|verify` against real etcd (3.4 or 3.5), compared
//! with etcd's own `etcdutl`/`etcdctl snapshot status` on the same files.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::*;
use serde_json::Value;

const RESTORE: &str = "kubectl-etcd-restore";

/// Writes `n` keys (values of `size` bytes) through transactions of `batch` puts.
async fn fill(c: &Cluster, prefix: &str, n: usize, size: usize, batch: usize) {
    let mut client = c.client(0).await;
    let value = vec![b'v'; size];
    let mut i = 0;
    while i < n {
        let ops: Vec<etcd_client::TxnOp> = (i..(i + batch).min(n))
            .map(|k| etcd_client::TxnOp::put(format!("{prefix}{k:08}"), value.clone(), None))
            .collect();
        client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        i += batch;
    }
}

/// etcd's own status of a file: `etcdutl snapshot status` (3.5) or `etcdctl snapshot status`
/// (3.4), as JSON.
fn etcd_status(file: &Path) -> Value {
    let e = etcd();
    let out = match &e.etcdutl {
        Some(u) => std::process::Command::new(u).args(["snapshot", "status", "-w", "json"]).arg(file).output().unwrap(),
        None => std::process::Command::new(&e.etcdctl)
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(file)
            .output()
            .unwrap(),
    };
    assert!(out.status.success(), "etcd's snapshot status failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ours(args: &[&str]) -> (std::process::Output, Value) {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    let o = run_plugin(RESTORE, &a, &[]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_same_status(file: &Path) {
    let (o, mine) = ours(&["snapshot", "status", s(file)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let theirs = etcd_status(file);
    assert_eq!(mine["hash_u32"], theirs["hash"], "hash of {}", file.display());
    assert_eq!(mine["revision"], theirs["revision"]);
    assert_eq!(mine["total_keys"], theirs["totalKey"]);
    assert_eq!(mine["total_size"], theirs["totalSize"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn save_from_a_three_member_cluster_agrees_with_etcd() {
    let c = Cluster::start(3);
    fill(&c, "/registry/configmaps/default/cm-", 50_000, 64, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let leader = c.leader();
    let args: Vec<String> =
        c.manifest_args().into_iter().chain(["snapshot".into(), "save".into(), s(&file).into()]).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let (o, saved) = tokio::task::block_in_place(|| ours(&a));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(file.is_file());
    assert!(!dir.path().join("backup.db.part").exists());
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    // The leader is spared when a healthy follower can serve.
    assert_ne!(saved["member"], c.nodes[leader].name.as_str(), "{saved:#}");
    assert_eq!(saved["size"].as_u64().unwrap(), std::fs::metadata(&file).unwrap().len());
    assert_eq!(saved["sha256"].as_str().unwrap().len(), 64);
    tokio::task::block_in_place(|| assert_same_status(&file));
    let (_, st) = tokio::task::block_in_place(|| ours(&["snapshot", "status", s(&file)]));
    assert_eq!(st["sha256_trailer"], "valid");
    assert_eq!(st["revision"], saved["revision"]);
    let (_, quick) = tokio::task::block_in_place(|| ours(&["snapshot", "status", "--skip-hash-check", s(&file)]));
    assert_eq!(quick["sha256_trailer"], "unchecked");
    assert_eq!(quick["hash"], st["hash"]);
    assert!(st["total_keys"].as_u64().unwrap() >= 50_000);
    // An existing file is not overwritten without --overwrite.
    let (o, _) = tokio::task::block_in_place(|| ours(&a));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists: pass --overwrite"), "{}", stderr(&o));
}

/// Starts `snapshot save FILE EXTRA…` through node-0's manifest in the background, and waits
/// until its `.part` has bytes.
fn spawn_save_and_wait_for_bytes(c: &Cluster, file: &Path, extra: &[&str]) -> Running {
    let mut args = c.manifest_args();
    args.extend(["snapshot", "save", s(file)].map(String::from));
    args.extend(extra.iter().map(|a| a.to_string()));
    let child = spawn_plugin(RESTORE, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let mut part = file.as_os_str().to_os_string();
    part.push(".part");
    wait_for("the snapshot stream to start", Duration::from_secs(20), || {
        std::fs::metadata(&part).ok().filter(|m| m.len() > 0).map(|_| ())
    });
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn member_killed_mid_stream_leaves_no_file_and_no_part() {
    let mut c = Cluster::start(3);
    // ~120 MB, so the stream lasts long enough to be cut.
    fill(&c, "/big/", 1200, 100 * 1024, 10).await;
    let victim = (c.leader() + 1) % 3;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.db");
    let part = dir.path().join("cut.db.part");
    // As soon as bytes arrive, kill the member that sends them.
    let child = spawn_save_and_wait_for_bytes(&c, &file, &["--member", &c.nodes[victim].name]);
    c.kill(victim);
    let out = child.wait(PLUGIN_DEADLINE);
    assert_eq!(out.status.code(), Some(4), "a transport failure: {}\n{}", stdout(&out), stderr(&out));
    assert!(!file.exists(), "no snapshot file may appear");
    assert!(!part.exists(), "the .part file must be removed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Says what happened and what to do (not etcd's raw words twice).
    assert!(
        err.contains("stopped sending") || err.contains("connection refused") || err.contains("truncated"),
        "{err}"
    );
}

fn copy_db(c: &Cluster, i: usize, to: &Path) -> PathBuf {
    let src = c.nodes[i].data_dir().join("member/snap/db");
    let dst = to.join("db");
    std::fs::copy(&src, &dst).unwrap();
    dst
}

#[tokio::test(flavor = "multi_thread")]
async fn status_of_a_data_dir_copy_matches_etcd() {
    let c = Cluster::start(1);
    fill(&c, "/k/", 3_000, 200, 100).await;
    let mut client = c.client(0).await;
    client.delete("/k/00000007", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = copy_db(&c, 0, dir.path());
    tokio::task::block_in_place(|| assert_same_status(&db));
    let (_, st) = tokio::task::block_in_place(|| ours(&["snapshot", "status", s(&db)]));
    assert_eq!(st["sha256_trailer"], "absent");
}

fn small_snapshot(c: &Cluster, dir: &Path) -> PathBuf {
    let file = dir.join("small.db");
    let out = c.etcdctl(&c.nodes[0].client_url(), &["snapshot", "save", s(&file)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    file
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_catches_flipped_bytes_and_truncation() {
    let c = Cluster::start(1);
    fill(&c, "/v/", 2_000, 300, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = tokio::task::block_in_place(|| small_snapshot(&c, dir.path()));

    let (o, v) = tokio::task::block_in_place(|| ours(&["snapshot", "verify", s(&snap)]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(v["sha256_trailer"], "valid");

    // One flipped byte in the database: the trailer no longer matches.
    let mut bytes = std::fs::read(&snap).unwrap();
    let flipped = dir.path().join("flipped.db");
    bytes[4096 * 3 + 100] ^= 0x01;
    std::fs::write(&flipped, &bytes).unwrap();
    let o = run_plugin(RESTORE, &["snapshot", "verify", s(&flipped)], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim_end(),
        format!("error: {}: sha256 mismatch: snapshot is corrupt or truncated", flipped.display())
    );

    // Truncated.
    let truncated = dir.path().join("truncated.db");
    let full = std::fs::read(&snap).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let o = run_plugin(RESTORE, &["snapshot", "verify", s(&truncated)], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("truncated"), "{err}");

    // A data-dir copy (no trailer) with a page header damaged: the walk names the page.
    let db = copy_db(&c, 0, dir.path());
    let mut bytes = std::fs::read(&db).unwrap();
    // The root bucket's page (from the meta page with the higher txid) gets page type 0x20.
    let ps = 4096;
    let meta = |p: usize| {
        let at = p * ps + 16;
        let u64at = |o: usize| u64::from_le_bytes(bytes[at + o..at + o + 8].try_into().unwrap());
        (u64at(48), u64at(16))
    };
    let page = if meta(0).0 > meta(1).0 { meta(0).1 } else { meta(1).1 } as usize;
    bytes[page * ps + 8] = 0x20;
    let bad = dir.path().join("badpage.db");
    std::fs::write(&bad, &bytes).unwrap();
    let o = run_plugin(RESTORE, &["snapshot", "verify", s(&bad)], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("page {page}: invalid page type 0x20")), "{}", stderr(&o));
}

#[test]
fn bad_input_gets_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let random = dir.path().join("random.db");
    let noise: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&random, &noise).unwrap();
    let missing = dir.path().join("missing.db");
    let cases: Vec<(&Path, i32, String)> = vec![
        (&empty, 1, format!("error: {}: the file is empty", empty.display())),
        (&random, 1, format!("error: {}: no valid meta page (page 0: invalid magic", random.display())),
        (
            dir.path(),
            2,
            format!("error: failed to read snapshot {}: Is a directory (os error 21)", dir.path().display()),
        ),
        (
            &missing,
            2,
            format!("error: failed to read snapshot {}: No such file or directory (os error 2)", missing.display()),
        ),
    ];
    for cmd in ["status", "verify"] {
        for (path, code, want) in &cases {
            let o = run_plugin(RESTORE, &["snapshot", cmd, s(path)], &[]);
            assert_eq!(o.status.code(), Some(*code), "{cmd} {}: {}", path.display(), stderr(&o));
            assert!(stderr(&o).starts_with(want.as_str()), "{cmd}: {} does not start with {want}", stderr(&o));
            assert_eq!(stderr(&o).trim_end().lines().count(), 1);
        }
    }
}

/// A bounded fuzz run: thousands of mutations of a real snapshot (flipped bytes, overwritten
/// header fields, truncations) through the reader; none may panic.
#[tokio::test(flavor = "multi_thread")]
async fn reader_survives_mutated_snapshots() {
    let c = Cluster::start(1);
    fill(&c, "/f/", 500, 100, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = tokio::task::block_in_place(|| small_snapshot(&c, dir.path()));
    let base = std::fs::read(&snap).unwrap();
    let target = dir.path().join("mutant.db");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut ok, mut err) = (0, 0);
    let mut truncations_missed = Vec::new();
    for round in 0..3000 {
        let mut m = base.clone();
        // Drop the trailer so that the structural walk, not the hash, meets the damage.
        m.truncate(m.len() - 32);
        match round % 4 {
            0 => {
                let at = (next() as usize) % m.len();
                m[at] ^= 1 << (next() % 8);
            }
            1 => {
                // Damage a page header field (id, flags, count, overflow) of a random page.
                let page = (next() as usize) % (m.len() / 4096);
                let at = page * 4096 + (next() as usize % 16);
                m[at] = next() as u8;
            }
            2 => {
                // Damage an element of a random page.
                let page = (next() as usize) % (m.len() / 4096);
                let at = page * 4096 + 16 + (next() as usize % 64);
                m[at] = next() as u8;
            }
            _ => {
                let len = (next() as usize) % m.len();
                m.truncate(len);
            }
        }
        std::fs::write(&target, &m).unwrap();
        let verified = kubectl_etcd::store::snapfile::verify(&target);
        match &verified {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        // A file cut anywhere short of its last page is damage, always: both readers say so.
        if round % 4 == 3 && m.len() < base.len() - 32 {
            let status = kubectl_etcd::store::snapfile::status(&target);
            if verified.is_ok() || status.is_ok() {
                truncations_missed.push(m.len());
            }
        } else {
            // It must not panic (a panic fails the test); its verdict on a flipped value byte
            // may rightly be "sound".
            let _ = kubectl_etcd::store::snapfile::status(&target);
        }
    }
    assert_eq!(truncations_missed, Vec::<usize>::new(), "truncated files passed (of {} bytes)", base.len() - 32);
    assert!(err > 1000, "most mutations must be caught: {ok} passed, {err} failed");
}

/// Two saves to one path at once (a scheduled backup overlapping a manual one): at most one
/// succeeds, and the file under the final name verifies. A save while another holds the `.part`
/// is refused at once; a `.part` left by a killed save is taken over.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_saves_to_one_path_never_publish_a_corrupt_file() {
    let c = Cluster::start(3);
    fill(&c, "/big/", 400, 100 * 1024, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shared.db");
    let spawn = |member: &str| {
        let mut args = c.manifest_args();
        args.extend(["snapshot", "save", s(&file), "--member", member].map(String::from));
        spawn_plugin(RESTORE, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
    };
    for _round in 0..3 {
        let _ = std::fs::remove_file(&file);
        let a = spawn("node-1");
        let b = spawn("node-2");
        let (a, b) = (a.wait(PLUGIN_DEADLINE), b.wait(PLUGIN_DEADLINE));
        let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
        assert!(ok <= 1, "both saves claimed success");
        assert_eq!(ok, 1, "one save must succeed: {}\n{}", stderr(&a), stderr(&b));
        let loser = if a.status.success() { &b } else { &a };
        let err = String::from_utf8_lossy(&loser.stderr);
        assert!(err.contains("another snapshot save is writing") || err.contains("already exists"), "{err}");
        let (o, _) = tokio::task::block_in_place(|| ours(&["snapshot", "verify", s(&file)]));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!dir.path().join("shared.db.part").exists());
    }
    // Deterministic: a held lock is refused at once, with the path.
    let part = dir.path().join("held.db.part");
    let held = std::fs::File::create(&part).unwrap();
    held.try_lock().unwrap();
    let target = dir.path().join("held.db");
    let (o, _) = tokio::task::block_in_place(|| {
        ours(&[&c.manifest_args()[0], &c.manifest_args()[1], "snapshot", "save", s(&target)])
    });
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("another snapshot save is writing {}", part.display())), "{}", stderr(&o));
    assert!(!target.exists() && part.exists(), "the other writer's .part is left alone");
    // Released (its writer was killed): taken over, and the save succeeds.
    drop(held);
    let (o, _) = tokio::task::block_in_place(|| {
        ours(&[&c.manifest_args()[0], &c.manifest_args()[1], "snapshot", "save", s(&target)])
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(target.is_file() && !part.exists());
}

#[test]
fn save_never_replaces_a_device_or_a_link() {
    let c = Cluster::start(1);
    let m = c.manifest_args();
    let o = run_plugin(RESTORE, &[&m[0], &m[1], "snapshot", "save", "/dev/null", "--overwrite"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/dev/null is a character device: refusing to replace it"), "{}", stderr(&o));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null is still a device");
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    let o = run_plugin(RESTORE, &[&m[0], &m[1], "snapshot", "save", s(&link), "--overwrite"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a symbolic link"), "{}", stderr(&o));
}

/// `/dev/zero` and a FIFO as each input file: refused at once, naming the file and why, with
/// no unbounded read and no hang.
#[test]
fn endless_or_blocking_input_files_are_refused_at_once() {
    let c = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let pki = c.nodes[0].pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    let (ca, cert, key) = (p("ca.crt"), p("healthcheck-client.crt"), p("healthcheck-client.key"));
    let url = c.nodes[0].client_url();
    for bad in ["/dev/zero", s(&fifo)] {
        let kind = if bad == "/dev/zero" { "a character device" } else { "a FIFO" };
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (vec!["--endpoints", &url, "--cacert", bad, "--cert", &cert, "--key", &key], "CA"),
            (vec!["--endpoints", &url, "--cacert", &ca, "--cert", &cert, "--key", bad], "key"),
            (vec!["--manifest", bad], "static pod manifest"),
            (vec!["--kubeconfig", bad], "kubeconfig"),
        ];
        for (args, what) in cases {
            let start = std::time::Instant::now();
            let o = run_plugin("kubectl-etcd-health", &args, &[]);
            assert!(start.elapsed() < Duration::from_secs(5), "{args:?} took {:?}", start.elapsed());
            let err = stderr(&o);
            // Files discovery reads (credentials, manifest, kubeconfig): configuration, exit 3.
            assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
            assert!(err.contains(bad) && err.contains(kind) && err.contains(what), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}

/// SIGTERM and SIGHUP during a save, like SIGINT: exit 143 and 129 (128 + the signal, as a
/// shell reports it), no snapshot, no `.part` left.
#[tokio::test(flavor = "multi_thread")]
async fn signals_during_save_leave_no_part() {
    let c = Cluster::start(1);
    fill(&c, "/big/", 1200, 100 * 1024, 10).await;
    let dir = tempfile::tempdir().unwrap();
    for (sig, code) in [("-TERM", 143), ("-HUP", 129)] {
        let file = dir.path().join("sig.db");
        let part = dir.path().join("sig.db.part");
        let child = spawn_save_and_wait_for_bytes(&c, &file, &[]);
        std::process::Command::new("kill").arg(sig).arg(child.pid().to_string()).status().unwrap();
        let out = child.wait(PLUGIN_DEADLINE);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{sig}: {err}");
        assert!(err.contains("interrupted by SIG") && err.contains("no snapshot written"), "{err}");
        assert!(!file.exists() && !part.exists(), "{sig}: nothing left behind");
    }
}
