//! Native restore against real etcd (3.4 or 3.5): restored data dirs start as a healthy cluster
//! serving exactly the snapshot's data, as `etcdutl snapshot restore`'s do; the on-node flows
//! (the harness plays kubelet: it starts and stops etcd as the static pod manifest appears and
//! disappears) restore, roll back on failure, and rebuild a cluster from a learner's data dir.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const RESTORE: &str = "kubectl-etcd-restore";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn txn_puts(client: &mut etcd_client::Client, keys: impl Iterator<Item = (String, Vec<u8>)>) {
    let all: Vec<(String, Vec<u8>)> = keys.collect();
    for chunk in all.chunks(100) {
        let size: usize = chunk.iter().map(|(k, v)| k.len() + v.len()).sum();
        let per = if size > 1_000_000 { 5 } else { 100 };
        for sub in chunk.chunks(per) {
            let ops: Vec<etcd_client::TxnOp> =
                sub.iter().map(|(k, v)| etcd_client::TxnOp::put(k.clone(), v.clone(), None)).collect();
            client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    }
}

/// ~50k keys: small ones, some 100 KiB values, some deleted, some overwritten.
async fn realistic_data(c: &Cluster, small: usize, big: usize) {
    let mut client = c.client(0).await;
    txn_puts(
        &mut client,
        (0..small)
            .map(|i| (format!("/registry/pods/ns-{}/pod-{i:06}", i % 50), format!("{{\"spec\":{i}}}").into_bytes())),
    )
    .await;
    txn_puts(
        &mut client,
        (0..big).map(|i| (format!("/registry/secrets/big-{i:04}"), vec![(i % 251) as u8; 100 * 1024])),
    )
    .await;
    for i in (0..small).step_by(97) {
        client.delete(format!("/registry/pods/ns-{}/pod-{i:06}", i % 50), None).await.unwrap();
    }
    txn_puts(
        &mut client,
        (0..small).step_by(13).map(|i| (format!("/registry/pods/ns-{}/pod-{i:06}", i % 50), b"overwritten".to_vec())),
    )
    .await;
}

/// sha256 over every live key and value, read in pages; and the number of keys.
async fn digest(client: &mut etcd_client::Client) -> (String, usize) {
    let mut h = Sha256::new();
    let mut n = 0;
    let mut from = vec![0u8];
    loop {
        let opts = etcd_client::GetOptions::new().with_range(vec![0u8]).with_limit(30).with_serializable();
        let r = client.get(from.clone(), Some(opts)).await.unwrap();
        for kv in r.kvs() {
            h.update(kv.key());
            h.update(kv.value());
            n += 1;
        }
        if !r.more() {
            break;
        }
        let mut last = r.kvs().last().unwrap().key().to_vec();
        last.push(0);
        from = last;
    }
    (h.finalize().iter().map(|b| format!("{b:02x}")).collect(), n)
}

fn save(c: &Cluster, file: &Path) {
    let mut a = c.manifest_args();
    a.extend(["snapshot".into(), "save".into(), s(file).into()]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run_plugin(RESTORE, &a, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn status_revision(file: &Path) -> i64 {
    let o = run_plugin(RESTORE, &["snapshot", "status", s(file), "-o", "json"], &[]);
    serde_json::from_slice::<Value>(&o.stdout).unwrap()["revision"].as_i64().unwrap()
}

fn apply(file: &Path, target: &Cluster, i: usize, extra: &[&str]) -> std::process::Output {
    let initial: Vec<String> = target.nodes.iter().map(|n| format!("{}={}", n.name, n.peer_url())).collect();
    let n = &target.nodes[i];
    let data = n.data_dir();
    let initial = initial.join(",");
    let peer = n.peer_url();
    let mut a = vec![
        "apply",
        s(file),
        "--data-dir",
        s(&data),
        "--name",
        &n.name,
        "--initial-cluster",
        &initial,
        "--initial-advertise-peer-urls",
        &peer,
        "--initial-cluster-token",
        &target.token,
        "-o",
        "json",
    ];
    a.extend(extra);
    run_plugin(RESTORE, &a, &[("PATH", &path_with_etcd())])
}

/// PATH with the selected etcd version's etcdutl/etcdctl first (for --engine etcdutl).
fn path_with_etcd() -> String {
    let dir = etcd().etcd.parent().unwrap().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

async fn hashkv(c: &Cluster, i: usize, rev: i64) -> u32 {
    let mut client = c.client(i).await;
    client.hash_kv(rev).await.unwrap().hash()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_member_restore_serves_the_snapshots_data() {
    let src = Cluster::start(3);
    realistic_data(&src, 50_000, 200).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&src, &snap));
    let rev = tokio::task::block_in_place(|| status_revision(&snap));
    let (src_digest, src_keys) = digest(&mut src.client(0).await).await;
    let src_hash = hashkv(&src, 0, rev).await;

    let mut dst = Cluster::builder(3).planned();
    for i in 0..3 {
        let o = tokio::task::block_in_place(|| apply(&snap, &dst, i, &[]));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(doc["revision"], rev);
        assert_eq!(doc["members"].as_array().unwrap().len(), 3);
    }
    tokio::task::block_in_place(|| dst.start_all());
    let h = tokio::task::block_in_place(|| {
        run_plugin("kubectl-etcd-health", &["--manifest", s(&dst.nodes[0].manifest()), "-o", "json"], &[])
    });
    assert_eq!(h.status.code(), Some(0), "{}\n{}", stdout(&h), stderr(&h));
    for i in 0..3 {
        let (d, n) = digest(&mut dst.client(i).await).await;
        assert_eq!(n, src_keys);
        assert_eq!(d, src_digest, "member {i} serves other data");
        assert_eq!(hashkv(&dst, i, rev).await, src_hash, "HashKV of member {i} at revision {rev}");
    }
    // The member list is the new cluster's.
    let list = tokio::task::block_in_place(|| dst.member_list());
    let mut names: Vec<&str> = list.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["node-0", "node-1", "node-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_member_restore_matches_etcdutls() {
    let src = Cluster::start(1);
    realistic_data(&src, 5_000, 20).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&src, &snap));
    let rev = tokio::task::block_in_place(|| status_revision(&snap));
    let mut ours = Cluster::builder(1).planned();
    let mut theirs = Cluster::builder(1).planned();
    let o = tokio::task::block_in_place(|| apply(&snap, &ours, 0, &[]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tokio::task::block_in_place(|| apply(&snap, &theirs, 0, &["--engine", "etcdutl"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    tokio::task::block_in_place(|| {
        ours.start_all();
        theirs.start_all();
    });
    let (a, na) = digest(&mut ours.client(0).await).await;
    let (b, nb) = digest(&mut theirs.client(0).await).await;
    assert_eq!((a.clone(), na), (b, nb), "native and etcdutl restores serve different data");
    assert_eq!(digest(&mut src.client(0).await).await.0, a);
    assert_eq!(hashkv(&ours, 0, rev).await, hashkv(&theirs, 0, rev).await);
    assert_eq!(hashkv(&ours, 0, rev).await, hashkv(&src, 0, rev).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn bumped_revision_and_compacted_watches() {
    let src = Cluster::start(1);
    realistic_data(&src, 1_000, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&src, &snap));
    let rev = tokio::task::block_in_place(|| status_revision(&snap));
    let mut dst = Cluster::builder(1).planned();
    let o = tokio::task::block_in_place(|| apply(&snap, &dst, 0, &["--bump-revision", "1000000", "--mark-compacted"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap()["bumped_to"], rev + 1_000_000);
    tokio::task::block_in_place(|| dst.start_all());
    let mut client = dst.client(0).await;
    let r = client.put("/after", "x", None).await.unwrap();
    let new_rev = r.header().unwrap().revision();
    assert!(new_rev > rev + 1_000_000, "revision {new_rev} not bumped past {}", rev + 1_000_000);
    // A watch from an old revision is told it was compacted.
    let mut stream = client
        .watch("/registry", Some(etcd_client::WatchOptions::new().with_prefix().with_start_revision(rev - 10)))
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap();
    let resp = if resp.created() && !resp.canceled() {
        tokio::time::timeout(Duration::from_secs(10), stream.message()).await.unwrap().unwrap().unwrap()
    } else {
        resp
    };
    assert!(resp.canceled(), "{resp:?}");
    assert!(resp.compact_revision() >= rev, "{resp:?}");
    // The data is intact.
    assert_eq!(digest(&mut dst.client(0).await).await.1, digest(&mut src.client(0).await).await.1 + 1);
}

#[test]
fn corrupt_or_truncated_snapshots_are_refused_before_anything_changes() {
    let mut c = Cluster::start(1);
    c.put("/k", "v");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    save(&c, &snap);
    let bytes = std::fs::read(&snap).unwrap();
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let flipped = dir.path().join("flipped.db");
    let mut f = bytes.clone();
    f[4096 * 2 + 40] ^= 0xff;
    std::fs::write(&flipped, &f).unwrap();
    let target = Cluster::builder(1).planned();
    for bad in [&truncated, &flipped] {
        let o = apply(bad, &target, 0, &[]);
        assert_eq!(o.status.code(), Some(if bad == &truncated { 2 } else { 1 }), "{}", stderr(&o));
        assert!(!target.nodes[0].data_dir().exists(), "nothing may be written");
    }
    // On the node: the manifest stays, the data dir stays, etcd keeps running.
    c.kubelet(0);
    for bad in [&truncated, &flipped] {
        let o = run_plugin(RESTORE, &["node", s(bad), "--manifest", s(&c.nodes[0].manifest()), "--yes"], &[]);
        assert_ne!(o.status.code(), Some(0));
        assert!(c.nodes[0].manifest().exists());
        let backups = std::fs::read_dir(c.nodes[0].root.clone())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".bak-"))
            .count();
        assert_eq!(backups, 0);
    }
    let st = c.etcdctl(&c.nodes[0].client_url(), &["get", "/k"]);
    assert!(String::from_utf8_lossy(&st.stdout).contains('v'));
}

fn node_restore(c: &Cluster, i: usize, snap: &Path, extra: &[&str]) -> std::process::Output {
    let m = c.nodes[i].manifest();
    let mut a = vec!["node", s(snap), "--manifest", s(&m), "--yes", "--timeout", "60s"];
    a.extend(extra);
    run_plugin(RESTORE, &a, &[])
}

fn backups(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.to_string_lossy().contains(".bak-"))
        .collect()
}

fn wait_restored_healthy(c: &Cluster) -> Value {
    let h = wait_for("the restored cluster to be healthy", Duration::from_secs(30), || {
        let h = run_plugin("kubectl-etcd-health", &["--manifest", s(&c.nodes[0].manifest()), "-o", "json"], &[]);
        (h.status.code() == Some(0)).then_some(h)
    });
    serde_json::from_slice(&h.stdout).unwrap()
}

/// kubeadm's layout: node-0's manifest lists only itself in --initial-cluster, node-1's lists
/// node-0 and node-1. Every node restores the snapshot's three members, and a second restore
/// from the same file after one manifest lost its token line still ends in one cluster.
#[tokio::test(flavor = "multi_thread")]
async fn node_restore_on_every_member_brings_the_cluster_back() {
    let mut c = Cluster::builder(3).kubeadm_manifests().start();
    realistic_data(&c, 2_000, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&c, &snap));
    let (want, _) = digest(&mut c.client(0).await).await;
    c.put("/written-after-the-snapshot", "x");
    let everyone: String = c.nodes.iter().map(|n| format!("{}={}", n.name, n.peer_url())).collect::<Vec<_>>().join(",");

    // The plan, from the first node's manifest, while the cluster still has a quorum.
    let o = node_restore(&c, 0, &snap, &["--dry-run", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: std::collections::BTreeSet<&str> = plan["initial_cluster"].as_str().unwrap().split(',').collect();
    assert_eq!(got, everyone.split(',').collect(), "{plan:#}");
    assert_eq!(plan["manifest_initial_cluster"], format!("node-0={}", c.nodes[0].peer_url()));
    let warnings = plan["warnings"].as_array().unwrap();
    assert!(warnings[0].as_str().unwrap().contains("still has a quorum (3/3 voters in quorum, 2 needed)"), "{plan:#}");
    assert!(
        warnings.iter().any(|w| w.as_str().unwrap().contains("differs from the snapshot's membership")),
        "{plan:#}"
    );
    let o = node_restore(&c, 0, &snap, &["--dry-run"]);
    assert!(stdout(&o).starts_with("WARNING: the live cluster"), "{}", stdout(&o));

    for i in 0..3 {
        c.kubelet(i);
    }
    for i in 0..3 {
        let o = tokio::task::block_in_place(|| node_restore(&c, i, &snap, &[]));
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("Restored member"), "{}", stdout(&o));
        // The next steps name only the nodes not restored yet: none after the last one.
        for done in 0..i {
            let step = format!("on {}: kubectl etcd restore node", c.nodes[done].name);
            assert!(!stdout(&o).contains(&step), "node-{done} is restored already:\n{}", stdout(&o));
        }
        if i == 2 {
            assert!(stdout(&o).contains("every member runs the restored cluster"), "{}", stdout(&o));
        }
        assert_eq!(backups(&c.nodes[i].root).len(), 1, "the old data dir is kept aside");
        let kept: Vec<PathBuf> = std::fs::read_dir(&c.nodes[i].root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("etcd.yaml.bak-"))
            .collect();
        assert_eq!(kept.len(), 1, "the original manifest is kept beside the manifests folder");
        assert!(std::fs::read_to_string(&kept[0]).unwrap().contains("--initial-cluster-state"), "a manifest");
        let m = kubectl_etcd::reach::discovery::Manifest::load(&c.nodes[i].manifest()).unwrap();
        let ic: std::collections::BTreeSet<&str> = m.flag("initial-cluster").unwrap().split(',').collect();
        assert_eq!(ic, everyone.split(',').collect(), "node-{i}'s manifest now lists the restored membership");
    }
    let doc = tokio::task::block_in_place(|| wait_restored_healthy(&c));
    assert_eq!(doc["members"].as_array().unwrap().len(), 3);
    let first_cluster = doc["cluster_id"].as_str().unwrap().to_string();
    for i in 0..3 {
        assert_eq!(digest(&mut c.client(i).await).await.0, want, "member {i}");
    }

    // Later, node-2's manifest loses its token line (kubeadm regenerated it); restore again.
    let text = std::fs::read_to_string(c.nodes[2].manifest()).unwrap();
    let without: String =
        text.lines().filter(|l| !l.contains("--initial-cluster-token=")).map(|l| format!("{l}\n")).collect();
    std::fs::write(c.nodes[2].manifest(), without).unwrap();
    for i in 0..3 {
        let o = tokio::task::block_in_place(|| node_restore(&c, i, &snap, &[]));
        assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    }
    let doc = tokio::task::block_in_place(|| wait_restored_healthy(&c));
    assert_eq!(doc["members"].as_array().unwrap().len(), 3, "{doc:#}");
    // A new cluster, not one whose IDs the members of the first restore already used.
    assert_ne!(doc["cluster_id"].as_str().unwrap(), first_cluster, "{doc:#}");
    let clusters: std::collections::BTreeSet<String> = (0..3)
        .map(|i| {
            let o = c.etcdctl(&c.nodes[i].client_url(), &["endpoint", "status", "-w", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            v[0]["Status"]["header"]["cluster_id"].to_string()
        })
        .collect();
    assert_eq!(clusters.len(), 1, "one cluster: {clusters:?}");
    for n in &c.nodes {
        let text = std::fs::read_to_string(n.manifest()).unwrap();
        assert_eq!(text.matches("--initial-cluster-token=").count(), 1, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn single_member_node_restore_when_the_others_are_lost() {
    let mut c = Cluster::start(3);
    realistic_data(&c, 500, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&c, &snap));
    let (want, _) = digest(&mut c.client(0).await).await;
    tokio::task::block_in_place(|| {
        c.kill(1);
        c.kill(2);
    });
    c.kubelet(0);
    let o = tokio::task::block_in_place(|| node_restore(&c, 0, &snap, &["--single-member"]));
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("add it back as a learner: kubectl etcd learner add"), "{}", stdout(&o));
    let manifest = std::fs::read_to_string(c.nodes[0].manifest()).unwrap();
    assert!(manifest.contains(&format!("--initial-cluster=node-0={}\n", c.nodes[0].peer_url())), "{manifest}");
    let h = run_plugin("kubectl-etcd-health", &["--manifest", s(&c.nodes[0].manifest()), "-o", "json"], &[]);
    assert_eq!(h.status.code(), Some(0), "{}", stdout(&h));
    assert_eq!(serde_json::from_slice::<Value>(&h.stdout).unwrap()["members"].as_array().unwrap().len(), 1);
    assert_eq!(digest(&mut c.client(0).await).await.0, want);
}

/// The restore runs out of disk midway (node-0's data dir is on a small tmpfs): the old data
/// dir and the manifest go back, and etcd runs again on the old data.
#[tokio::test(flavor = "multi_thread")]
async fn failure_midway_rolls_back() {
    let big = Cluster::start(1);
    let mut client = big.client(0).await;
    txn_puts(&mut client, (0..800).map(|i| (format!("/big/{i:04}"), vec![7u8; 100 * 1024]))).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("big.db");
    tokio::task::block_in_place(|| save(&big, &snap));
    drop(big);

    let mut c = Cluster::builder(1).tmpfs_data(0, 128).start();
    c.put("/old", "still here");
    let starts = c.kubelet(0);
    let manifest_before = std::fs::read_to_string(c.nodes[0].manifest()).unwrap();
    // (another cluster's snapshot, whose membership is not this node's: restored alone)
    let o = tokio::task::block_in_place(|| node_restore(&c, 0, &snap, &["--single-member"]));
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("rolled back: the old data dir and manifest are back in place"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(std::fs::read_to_string(c.nodes[0].manifest()).unwrap(), manifest_before);
    let varlib = c.nodes[0].root.join("varlib");
    assert!(backups(&varlib).is_empty(), "the data dir is back under its own name");
    tokio::task::block_in_place(|| {
        wait_for("etcd to run again on the old data", Duration::from_secs(30), || {
            let out = c.etcdctl(&c.nodes[0].client_url(), &["get", "/old", "--print-value-only"]);
            (String::from_utf8_lossy(&out.stdout).trim() == "still here").then_some(())
        })
    });
    assert!(starts.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

/// The RKE cross-datacenter drill: three voters and a learner; the voters are lost; the
/// learner's data dir becomes a one-member cluster with the data it had.
#[tokio::test(flavor = "multi_thread")]
async fn from_data_dir_rebuilds_a_cluster_from_a_learner() {
    let mut c = Cluster::start(3);
    realistic_data(&c, 3_000, 3).await;
    let (want, keys) = digest(&mut c.client(0).await).await;
    let l = tokio::task::block_in_place(|| c.add_learner("dr-site", true));
    // Wait until the learner has applied everything the leader has.
    tokio::task::block_in_place(|| {
        wait_for("the learner to catch up", Duration::from_secs(30), || {
            let out = c.etcdctl(&c.endpoints(), &["endpoint", "status", "-w", "json"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let leader_applied =
                v.as_array()?.iter().map(|s| s["Status"]["raftAppliedIndex"].as_u64().unwrap_or(0)).max()?;
            let out = c.etcdctl(&c.nodes[l].client_url(), &["endpoint", "status", "-w", "json"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (v[0]["Status"]["raftAppliedIndex"].as_u64()? >= leader_applied).then_some(())
        });
        for i in 0..3 {
            c.kill(i);
        }
    });
    c.kubelet(l);
    let data = c.nodes[l].data_dir();
    let o = tokio::task::block_in_place(|| {
        run_plugin(
            RESTORE,
            &["from-data-dir", s(&data), "--manifest", s(&c.nodes[l].manifest()), "--yes", "--timeout", "60s"],
            &[],
        )
    });
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let h = run_plugin("kubectl-etcd-health", &["--manifest", s(&c.nodes[l].manifest()), "-o", "json"], &[]);
    assert_eq!(h.status.code(), Some(0), "{}", stdout(&h));
    let doc: Value = serde_json::from_slice(&h.stdout).unwrap();
    assert_eq!(doc["members"].as_array().unwrap().len(), 1);
    assert_eq!(doc["members"][0]["is_learner"], false);
    let (got, n) = digest(&mut c.client(l).await).await;
    assert_eq!(n, keys);
    assert_eq!(got, want);
    assert_eq!(backups(&c.nodes[l].root).len(), 1, "the learner's data dir is kept aside");
}

/// `from-data-dir` with another cluster's data dir, on a node whose cluster still has a quorum:
/// refused before anything is planned, naming both reasons.
#[test]
fn from_data_dir_refuses_a_foreign_data_dir_and_a_live_quorum() {
    let c = Cluster::start(1);
    let mut other = Cluster::start(1);
    other.kill(0);
    let foreign = other.nodes[0].data_dir();
    let o =
        run_plugin(RESTORE, &["from-data-dir", s(&foreign), "--manifest", s(&c.nodes[0].manifest()), "--dry-run"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("belongs to cluster") && err.contains("but this node's cluster is"), "{err}");
    assert!(err.contains("still has a quorum (1/1 voters in quorum"), "{err}");
    assert!(err.contains("pass --force"), "{err}");
    assert!(stdout(&o).is_empty());
    // Without a manifest, the dry run's plan as JSON.
    let new_dir = other.dir.path().join("rebuilt");
    let o = run_plugin(
        RESTORE,
        &[
            "from-data-dir",
            s(&foreign),
            "--data-dir",
            s(&new_dir),
            "--name",
            "dr",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2390",
            "--dry-run",
            "-o",
            "json",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("not JSON: {}", stdout(&o)));
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["initial_cluster"], "dr=https://127.0.0.1:2390");
    assert!(!new_dir.exists());
}

/// `from-data-dir` on the data dir of a running etcd, whose database bbolt holds locked:
/// refused (exit 1) naming the etcd's pid, nothing written, the member still serving; with
/// `--force` the copy goes ahead and says so.
#[test]
fn from_data_dir_refuses_a_database_a_running_etcd_holds() {
    let c = Cluster::start(1);
    let data = c.nodes[0].data_dir();
    let pid = c.nodes[0].pid().unwrap();
    let new_dir = c.dir.path().join("rebuilt");
    let run = |extra: &[&str]| {
        let mut args =
            vec!["from-data-dir", s(&data), "--data-dir", s(&new_dir), "--name", "dr", "--initial-advertise-peer-urls"];
        args.extend(["https://127.0.0.1:2390", "--yes"]);
        args.extend(extra);
        run_plugin(RESTORE, &args, &[])
    };
    let o = run(&[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}\n{err}", stdout(&o));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("member/snap/db is locked by a running etcd: pid {pid} (etcd)")), "{err}");
    assert!(err.contains("pass --force"), "{err}");
    assert!(!new_dir.exists(), "nothing written");
    c.put("/still-serving", "yes");
    // --force: the copy is made, and the output says the database was in use.
    let o = run(&["--force"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{}\n{err}", stdout(&o));
    assert!(err.contains(&format!("pid {pid} (etcd)")) && err.contains("going on (--force)"), "{err}");
    assert!(new_dir.join("member/snap/db").is_file());
}

/// A data dir on its own mount (and one behind a symbolic link): `apply` restores into it,
/// `restore node` moves its `member/` aside inside it; the mount and the link stay.
#[tokio::test(flavor = "multi_thread")]
async fn data_dir_on_its_own_mount_or_behind_a_link() {
    let mut c = Cluster::builder(1).data_dir_is_a_mount(0, 256).start();
    c.put("/before", "1");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&c, &snap));
    let (want, _) = digest(&mut c.client(0).await).await;
    c.put("/after-the-snapshot", "2");
    let mount = c.nodes[0].data_dir();
    let is_mount = |p: &Path| {
        std::fs::read_to_string("/proc/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(p.to_str().unwrap()))
    };
    assert!(is_mount(&mount));
    c.kubelet(0);
    let o = tokio::task::block_in_place(|| node_restore(&c, 0, &snap, &["--single-member"]));
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(is_mount(&mount), "the mount point stays mounted");
    let aside: Vec<String> =
        std::fs::read_dir(&mount).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(aside.iter().any(|n| n.starts_with("member.bak-")), "the old member/ is kept inside: {aside:?}");
    tokio::task::block_in_place(|| {
        wait_for("the restored member to serve", Duration::from_secs(30), || {
            let h = run_plugin("kubectl-etcd-health", &["--manifest", s(&c.nodes[0].manifest())], &[]);
            (h.status.code() == Some(0)).then_some(())
        })
    });
    assert_eq!(digest(&mut c.client(0).await).await.0, want);

    // apply into a fresh mount point, and through a symbolic link to an empty directory.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir(mnt.join("lost+found")).unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let peer = "https://127.0.0.1:2380";
    for target in [&mnt, &link] {
        let o = run_plugin(
            RESTORE,
            &["apply", s(&snap), "--data-dir", s(target), "--name", "m", "--initial-cluster", &format!("m={peer}")],
            &[],
        );
        assert_eq!(o.status.code(), Some(0), "{}: {}", target.display(), stderr(&o));
        assert!(target.join("member/snap/db").is_file() && target.join("member/wal").is_dir());
    }
    assert!(is_mount(&mnt) && std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(real.join("member/snap/db").is_file(), "written through the link");
    let _ = std::process::Command::new("umount").arg("-l").arg(&mnt).status();
}

/// Starts `restore node SNAP --single-member --yes` in the background.
fn spawn_single_member_restore(snap: &Path, manifest: &Path, home: &Path) -> Running {
    let args = ["node", s(snap), "--manifest", s(manifest), "--yes", "--single-member", "--timeout", "60s"];
    spawn_plugin(RESTORE, &args, &[("HOME", s(home))])
}

/// The manifest backups `restore node` writes beside the manifests folder.
fn manifest_backups(root: &Path) -> usize {
    std::fs::read_dir(root)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("etcd.yaml.bak-"))
        .count()
}

/// SIGINT or SIGTERM during `restore node` (the harness plays kubelet), sent at the two stages
/// that matter, seen from outside rather than guessed with sleeps: once etcd is being stopped
/// (the manifest moved out) the node rolls back to its old data; once the restored manifest's
/// backup is written (past the point of no return) the restore finishes. Either way the member
/// runs again and no temporary directory is left behind.
#[tokio::test(flavor = "multi_thread")]
async fn signals_during_node_restore_roll_back_or_finish() {
    let mut c = Cluster::start(1);
    let mut client = c.client(0).await;
    txn_puts(&mut client, (0..300).map(|i| (format!("/bulk/{i:04}"), vec![3u8; 100 * 1024]))).await;
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&c, &snap));
    c.kubelet(0);
    let manifest = c.nodes[0].manifest();
    let root = c.nodes[0].root.clone();
    let rounds = [(false, libc::SIGINT), (false, libc::SIGTERM), (true, libc::SIGINT), (true, libc::SIGTERM)];
    for (i, (late, sig)) in rounds.into_iter().enumerate() {
        let marker = format!("/written-after-the-snapshot-{i}");
        c.put(&marker, "x");
        let backups_before = manifest_backups(&root);
        let child = spawn_single_member_restore(&snap, &manifest, dir.path());
        tokio::task::block_in_place(|| {
            if late {
                wait_for("the restored manifest's backup", Duration::from_secs(60), || {
                    (manifest_backups(&root) > backups_before).then_some(())
                })
            } else {
                wait_for("the manifest to be moved out", Duration::from_secs(60), || (!manifest.exists()).then_some(()))
            }
        });
        child.signal(sig);
        let out = tokio::task::block_in_place(|| child.wait(PLUGIN_DEADLINE));
        let err = stderr(&out);
        if late {
            assert_eq!(out.status.code(), Some(0), "round {i}: past the point of no return it finishes: {err}");
        } else {
            // Rolled back and ended by the signal: 128 + its number, as a shell reports it.
            assert_eq!(out.status.code(), Some(128 + sig), "round {i}: before it, it rolls back: {err}");
            assert!(err.contains("interrupted by SIG"), "round {i}: {err}");
        }
        assert!(manifest.is_file(), "the manifest is in place: {err}");
        // The member runs again: on the old data (the marker is there) or on the snapshot's.
        let restored = tokio::task::block_in_place(|| {
            wait_for("etcd to run on the node again", Duration::from_secs(30), || {
                let o = c.etcdctl(&c.nodes[0].client_url(), &["get", &marker, "--print-value-only"]);
                o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().is_empty())
            })
        });
        assert_eq!(restored, late, "round {i}: restored only past the point of no return: {err}");
        let leftovers: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".restore-") || n.contains(".kubectl-etcd-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A node whose data dir is gone (a replaced disk, etcd stopped): the restore says there was
/// no old data rather than naming a backup that does not exist, and the member comes back.
#[tokio::test(flavor = "multi_thread")]
async fn node_restore_onto_a_missing_data_dir() {
    let mut c = Cluster::start(1);
    c.put("/k", "v");
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap.db");
    tokio::task::block_in_place(|| save(&c, &snap));
    tokio::task::block_in_place(|| c.kill(0));
    let data = c.nodes[0].data_dir();
    std::fs::rename(&data, dir.path().join("the-lost-disk")).unwrap();
    let manifest = c.nodes[0].manifest();
    let child = spawn_single_member_restore(&snap, &manifest, dir.path());
    // kubelet takes over once the manifest is out, so that it starts etcd only on the restore.
    tokio::task::block_in_place(|| {
        wait_for("the manifest to be moved out", Duration::from_secs(20), || (!manifest.exists()).then_some(()))
    });
    c.kubelet(0);
    let o = tokio::task::block_in_place(|| child.wait(PLUGIN_DEADLINE));
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(&format!("there was no old data in {}", data.display())), "{}", stdout(&o));
    assert!(!stdout(&o).contains(".bak-"), "{}", stdout(&o));
    let got = c.etcdctl(&c.nodes[0].client_url(), &["get", "/k", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "v");
}
