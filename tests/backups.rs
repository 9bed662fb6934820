//! Snapshot directories and scheduled backups against real etcd (3.4 or 3.5): `snapshot save
//! --dir --keep`, `ls`, `prune`, `--latest DIR`, and `snapshot schedule`'s CronJob, whose
//! container command is run as the pod would run it, and applied to the fake API server.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use harness::fakekube::FakeKube;
use harness::*;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use serde_json::{json, Value};

const RESTORE: &str = "kubectl-etcd-restore";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn restore(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut a: Vec<String> = c.manifest_args();
    a.extend(args.iter().map(|s| s.to_string()));
    run_plugin(RESTORE, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The names `snapshot ls DIR -o json` lists, newest first, with their trailer verdicts.
fn ls(dir: &Path) -> Vec<(String, String)> {
    let o = run_plugin(RESTORE, &["snapshot", "ls", s(dir), "-o", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(doc["kind"], "SnapshotList", "{doc:#}");
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["sha256_trailer"].as_str().unwrap().to_string()))
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A real snapshot's bytes, to plant copies under other names.
fn a_snapshot(c: &Cluster, dir: &Path) -> Vec<u8> {
    let f = dir.join("seed.db");
    let o = restore(c, &["snapshot", "save", s(&f)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let b = std::fs::read(&f).unwrap();
    std::fs::remove_file(&f).unwrap();
    b
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_the_newest_verified_and_touches_nothing_else() {
    let mut c = Cluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let seed = tokio::task::block_in_place(|| a_snapshot(&c, d));
    // Not ours or not verified: never deleted, never counted.
    let mut damaged = seed.clone();
    damaged[5000] ^= 0xff;
    let foreign = [
        ("notes.txt", b"keep me".to_vec()),
        ("etcd-snapshot-20200101T000000Z-1.db", damaged),
        ("other-20200101T000000Z-2.db", seed.clone()),
        ("etcd-snapshot-old.db", seed.clone()),
        ("etcd-snapshot-20200102T000000Z-3.db.part", seed.clone()),
    ];
    for (n, b) in &foreign {
        std::fs::write(d.join(n), b).unwrap();
    }
    let mut saved = Vec::new();
    for i in 0..3 {
        c.put(&format!("/registry/round/{i}"), "x");
        let o = tokio::task::block_in_place(|| {
            restore(&c, &["snapshot", "save", "--dir", s(d), "--keep", "2", "-o", "json"])
        });
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc = json(&o);
        let name = Path::new(doc["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("etcd-snapshot-") && name.ends_with(&format!("-{}.db", doc["revision"])), "{name}");
        let r = &doc["retention"];
        assert_eq!(r["kept"].as_array().unwrap().len(), (i + 1).min(2), "{doc:#}");
        assert_eq!(r["removed"].as_array().unwrap().len(), usize::from(i == 2), "{doc:#}");
        assert_eq!(r["unverified"][0]["name"], "etcd-snapshot-20200101T000000Z-1.db", "{doc:#}");
        saved.push(name);
    }
    // Exactly the two newest of ours, and everything that was not ours.
    let mut want: Vec<String> = foreign.iter().map(|(n, _)| n.to_string()).collect();
    want.extend(saved[1..].iter().cloned());
    want.sort();
    assert_eq!(names_in(d), want);
    // ls: ours only (any prefix), newest first, with the trailer verdict.
    let listed = tokio::task::block_in_place(|| ls(d));
    assert_eq!(
        listed,
        vec![
            (saved[2].clone(), "valid".to_string()),
            (saved[1].clone(), "valid".to_string()),
            ("other-20200101T000000Z-2.db".to_string(), "valid".to_string()),
            ("etcd-snapshot-20200101T000000Z-1.db".to_string(), "mismatch".to_string()),
        ]
    );
    let table = stdout(&run_plugin(RESTORE, &["snapshot", "ls", s(d)], &[]));
    assert!(table.starts_with("NAME") && table.contains("MISMATCH"), "{table}");

    // prune: the same rule; a dry run deletes nothing; --keep 0 is refused.
    let o = run_plugin(RESTORE, &["snapshot", "prune", s(d), "--keep", "1", "--dry-run", "-o", "json"], &[]);
    assert_eq!(json(&o)["removed"][0]["name"], saved[1].as_str(), "{}", stdout(&o));
    assert_eq!(names_in(d), want);
    let o = run_plugin(RESTORE, &["snapshot", "prune", s(d), "--keep", "0"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("keep at least 1"), "{}", stderr(&o));
    let o = run_plugin(RESTORE, &["snapshot", "prune", s(d), "--keep", "1"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("Deleted 1 older one(s): {}", saved[1])), "{}", stdout(&o));
    want.retain(|n| n != &saved[1]);
    assert_eq!(names_in(d), want);

    // --latest DIR restores the newest snapshot that verifies, skipping a newer damaged one.
    let mut newer = std::fs::read(d.join(&saved[2])).unwrap();
    newer[6000] ^= 0xff;
    std::fs::write(d.join("etcd-snapshot-29990101T000000Z-999.db"), newer).unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("restored");
    let o = run_plugin(
        RESTORE,
        &[
            "apply",
            "--latest",
            s(d),
            "--data-dir",
            s(&data_dir),
            "--name",
            "solo",
            "--initial-cluster",
            "solo=https://127.0.0.1:2380",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("skipped etcd-snapshot-29990101T000000Z-999.db"), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("using {}", d.join(&saved[2]).display())), "{}", stderr(&o));
    let st = run_plugin(RESTORE, &["snapshot", "status", s(&data_dir.join("member/snap/db")), "-o", "json"], &[]);
    let rev: i64 = saved[2].rsplit('-').next().unwrap().trim_end_matches(".db").parse().unwrap();
    assert_eq!(json(&st)["revision"], rev, "{}", stdout(&st));
    std::fs::remove_file(d.join("etcd-snapshot-29990101T000000Z-999.db")).unwrap();

    // A save that fails midway (its member killed while it streams) leaves the directory as it
    // was: no new file, no .part, nothing pruned.
    let before = names_in(d);
    {
        let mut client = c.client(0).await;
        let value = vec![b'v'; 100 * 1024];
        for chunk in 0..120 {
            let ops: Vec<etcd_client::TxnOp> = (0..10)
                .map(|k| etcd_client::TxnOp::put(format!("/big/{chunk:04}{k:02}"), value.clone(), None))
                .collect();
            client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    }
    let victim = (c.leader() + 1) % 3;
    let mut args = c.manifest_args();
    args.extend(
        ["snapshot", "save", "--dir", s(d), "--keep", "1", "--member", &c.nodes[victim].name].map(String::from),
    );
    let child = spawn_plugin(RESTORE, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    wait_for("the save's .part to grow", Duration::from_secs(20), || {
        std::fs::read_dir(d).unwrap().flatten().find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !before.contains(&n) && n.ends_with(".part") && e.metadata().map(|m| m.len() > 0).unwrap_or(false)
        })
    });
    c.kill(victim);
    let out = child.wait(PLUGIN_DEADLINE);
    // A transport failure (exit 4) that says the member stopped sending: not a crash, not a hang.
    assert_eq!(out.status.code(), Some(4), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("the member stopped sending after"), "{}", stderr(&out));
    assert_eq!(names_in(d), before, "{}", stderr(&out));
}

/// `schedule -o yaml` parsed back with k8s-openapi: the objects and the fields a safe backup
/// CronJob needs; then its container's command, run verbatim on this machine where every
/// hostPath is the path it is mounted at (the node's manifest and PKI, the backup dir),
/// produces and prunes verified snapshots; `--apply` against the API creates exactly those
/// objects and updates them on a second run.
#[test]
fn scheduled_backup_objects_and_their_command() {
    let c = Cluster::start(3);
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("etcd-backups");
    let manifest = c.nodes[0].manifest();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "--manifest".into(),
            manifest.display().to_string(),
            "snapshot".into(),
            "schedule".into(),
            "--schedule".into(),
            "0 */6 * * *".into(),
            "--keep".into(),
            "2".into(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let a = args(&[]);
    let o = run_plugin(RESTORE, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let docs: Vec<Value> = yaml_docs(&o);
    assert_eq!(docs.len(), 2, "{}", stdout(&o));
    let sa: ServiceAccount = serde_json::from_value(docs[0].clone()).unwrap();
    let cj: CronJob = serde_json::from_value(docs[1].clone()).unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(sa.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = cj.spec.as_ref().unwrap();
    assert_eq!(spec.schedule, "0 */6 * * *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert!(spec.starting_deadline_seconds.is_some());
    assert!(spec.successful_jobs_history_limit.is_some() && spec.failed_jobs_history_limit.is_some());
    let job = spec.job_template.spec.as_ref().unwrap();
    assert!(job.backoff_limit.is_some());
    // The deadline grows with the database: ten minutes plus the largest DB at 5 MiB/s.
    let largest = c
        .nodes
        .iter()
        .map(|n| {
            let o = c.etcdctl(&n.client_url(), &["endpoint", "status", "-w", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            v[0]["Status"]["dbSize"].as_u64().unwrap()
        })
        .max()
        .unwrap();
    assert_eq!(job.active_deadline_seconds, Some(600 + (largest / (5 << 20)) as i64), "{job:?}");
    let pod = job.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.automount_service_account_token, Some(false));
    assert_eq!(pod.service_account_name.as_deref(), Some("etcd-backup"));
    let terms = &pod.affinity.as_ref().unwrap().node_affinity.as_ref().unwrap();
    let terms = &terms.required_during_scheduling_ignored_during_execution.as_ref().unwrap().node_selector_terms;
    assert!(terms
        .iter()
        .any(|t| t.match_expressions.as_ref().unwrap()[0].key == "node-role.kubernetes.io/control-plane"
            && t.match_expressions.as_ref().unwrap()[0].operator == "Exists"));
    let tolerated: Vec<&str> = pod.tolerations.as_ref().unwrap().iter().filter_map(|t| t.key.as_deref()).collect();
    for taint in ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"] {
        assert!(tolerated.contains(&taint), "{tolerated:?}");
    }
    // The older `master` label is an alternative node selector term.
    assert!(terms.iter().any(|t| t.match_expressions.as_ref().unwrap()[0].key == "node-role.kubernetes.io/master"));
    let container = &pod.containers[0];
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    // Root (the node's key files are 0600 root), and no capability beyond that.
    assert_eq!(sc.run_as_user, Some(0));
    assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
    let limits = container.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert!(limits.contains_key("memory"), "{limits:?}");
    // Every hostPath is mounted at its own path; all but the backup dir read-only.
    let volumes = pod.volumes.as_ref().unwrap();
    let mounts = container.volume_mounts.as_ref().unwrap();
    for m in mounts {
        let v = volumes.iter().find(|v| v.name == m.name).unwrap();
        let hp = v.host_path.as_ref().unwrap();
        assert_eq!(hp.path, m.mount_path, "{m:?}");
        let is_dir = Path::new(&m.mount_path) == dir;
        assert_eq!(m.read_only, Some(!is_dir), "{m:?}");
        // The backup dir is made on a node that lacks it; the rest must exist.
        if is_dir {
            assert_eq!(hp.type_.as_deref(), Some("DirectoryOrCreate"), "{hp:?}");
        }
    }
    // What the command reads is inside the mounts: the manifest and the files it names.
    let mounted = |p: &Path| mounts.iter().any(|m| p.starts_with(&m.mount_path));
    assert!(mounted(&manifest));
    let text = std::fs::read_to_string(&manifest).unwrap();
    for flag in ["--trusted-ca-file=", "--cert-file=", "--key-file="] {
        let path = text.split(flag).nth(1).unwrap().split(['\n', '"', ' ']).next().unwrap();
        assert!(mounted(Path::new(path)), "{flag}{path} is not mounted");
    }
    // The command, as the pod runs it (the image's binary here: the one under test).
    let command = container.command.as_ref().unwrap();
    assert_eq!(&command[..3], ["kubectl-etcd-restore", "snapshot", "save"]);
    let run = || {
        let o = std::process::Command::new(bin(RESTORE))
            .args(&command[1..])
            .env_remove("KUBECONFIG")
            .env("HOME", backups.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    };
    assert!(!dir.exists());
    std::fs::create_dir(&dir).unwrap(); // the volume's DirectoryOrCreate
    for i in 0..3 {
        c.put(&format!("/registry/scheduled/{i}"), "x");
        run();
    }
    let listed = ls(&dir);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|(_, t)| t == "valid"), "{listed:?}");
    for (n, _) in &listed {
        let v = run_plugin(RESTORE, &["snapshot", "verify", s(&dir.join(n))], &[]);
        assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    }

    // --compress zstd reaches the command, which then writes compressed snapshots that the
    // same retention counts.
    let z = args(&["--compress", "zstd", "-o", "json"]);
    let o = run_plugin(RESTORE, &z.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list = json(&o);
    // -o json is one document: a v1 List of the two objects, as kubectl apply -f takes it.
    assert_eq!((list["apiVersion"].as_str(), list["kind"].as_str()), (Some("v1"), Some("List")), "{list:#}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list:#}");
    let zcmd: Vec<String> = list["items"][1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        ["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(zcmd[zcmd.len() - 2..], ["--compress", "zstd"], "{zcmd:?}");
    c.put("/registry/scheduled/zstd", "x");
    let o = std::process::Command::new(bin(RESTORE)).args(&zcmd[1..]).env_remove("KUBECONFIG").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = ls(&dir);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].0.ends_with(".db.zst") && listed[0].1 == "valid", "{listed:?}");

    // A bad schedule is refused with what is wrong.
    let mut bad = args(&[]);
    bad[5] = "0 */6 * *".into();
    let o = run_plugin(RESTORE, &bad.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("4 field(s)"), "{}", stderr(&o));
    bad[5] = "61 * * * *".into();
    let o = run_plugin(RESTORE, &bad.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(stderr(&o).contains("minute: \"61\" is not in 0-59"), "{}", stderr(&o));

    // --apply (and --every-node) through the API: created, then updated in place.
    let nodes = (0..3)
        .map(|i| {
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": format!("cp-{i}"),
                "labels": {"kubernetes.io/hostname": format!("cp-{i}"), "node-role.kubernetes.io/control-plane": ""}}})
        })
        .chain(std::iter::once(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1",
            "labels": {"kubernetes.io/hostname": "worker-1"}}})))
        .collect();
    let kube = FakeKube::start(vec![], nodes);
    let kc = kube.kubeconfig(backups.path());
    let apply = args(&["--apply", "--every-node", "--kubeconfig", s(&kc)]);
    // --manifest and --kubeconfig together name two ways to etcd: the manifest here is where
    // the pod finds it on the node, the kubeconfig where the objects go.
    let o = run_plugin(RESTORE, &apply.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "serviceaccount/etcd-backup created\ncronjob.batch/etcd-backup-cp-0 created\ncronjob.batch/etcd-backup-cp-1 created\ncronjob.batch/etcd-backup-cp-2 created\n"
    );
    let o = run_plugin(RESTORE, &apply.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).lines().all(|l| l.ends_with(" configured")), "{}", stdout(&o));
    let objects = kube.objects.lock().unwrap().clone();
    assert_eq!(objects.len(), 4, "{:?}", objects.keys());
    let cj = &objects["apis/batch/v1/namespaces/kube-system/cronjobs/etcd-backup-cp-1"];
    assert_eq!(cj["metadata"]["resourceVersion"], "2");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["kubernetes.io/hostname"], "cp-1");
    let cmd: Vec<&str> =
        pod["containers"][0]["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(cmd.windows(2).any(|w| w == ["--name-prefix", "etcd-snapshot-cp-1"]), "{cmd:?}");
}

/// Keys under a prefix, as the member serves them.
pub(crate) async fn count(c: &Cluster, i: usize, prefix: &str) -> i64 {
    let mut client = c.client(i).await;
    let opts = etcd_client::GetOptions::new().with_prefix().with_count_only();
    client.get(prefix, Some(opts)).await.unwrap().count()
}

/// `--compress zstd`: the file is one zstd frame, smaller than the snapshot, and every reader
/// takes it as the snapshot it holds: `status` gives the uncompressed file's figures, `verify`
/// and `ls` check the trailer of the decompressed stream, retention counts compressed and plain
/// alike and never a damaged one, and `apply --latest` and `restore node` restore it into data
/// dirs that real etcd boots and serves.
#[tokio::test(flavor = "multi_thread")]
async fn compressed_snapshots_round_trip_and_boot_etcd() {
    let mut c = Cluster::start(1);
    {
        let mut client = c.client(0).await;
        for chunk in 0..20 {
            let ops: Vec<etcd_client::TxnOp> = (0..50)
                .map(|k| etcd_client::TxnOp::put(format!("/registry/pods/p{chunk:02}{k:02}"), vec![b'p'; 2000], None))
                .collect();
            client.txn(etcd_client::Txn::new().and_then(ops)).await.unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("backups");
    std::fs::create_dir(&d).unwrap();
    let plain = dir.path().join("plain.db");
    // The same revision twice: plain, then compressed into the directory.
    let o = tokio::task::block_in_place(|| restore(&c, &["snapshot", "save", s(&plain)]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tokio::task::block_in_place(|| {
        restore(&c, &["snapshot", "save", "--dir", s(&d), "--keep", "2", "--compress", "zstd", "-o", "json"])
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let saved = json(&o);
    let zst = std::path::PathBuf::from(saved["path"].as_str().unwrap());
    let plain_size = std::fs::metadata(&plain).unwrap().len();
    assert!(zst.to_string_lossy().ends_with(&format!("-{}.db.zst", saved["revision"])), "{saved:#}");
    assert_eq!(saved["compression"], "zstd");
    assert_eq!(saved["size"], plain_size, "{saved:#}");
    let on_disk = std::fs::metadata(&zst).unwrap().len();
    assert_eq!(saved["file_size"], on_disk);
    assert!(on_disk * 4 < plain_size, "{on_disk} of {plain_size} bytes");
    assert_eq!(&std::fs::read(&zst).unwrap()[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not a zstd frame");
    // Nothing but the snapshot is left: no .part, no .part.zst.
    assert_eq!(names_in(&d), vec![zst.file_name().unwrap().to_string_lossy().into_owned()]);

    // status: the uncompressed file's figures.
    let status = |f: &Path| {
        let o = run_plugin(RESTORE, &["snapshot", "status", s(f), "-o", "json"], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        json(&o)
    };
    let (a, b) = (status(&plain), status(&zst));
    // Two saves at one revision differ in the meta bucket (the health probe's proposal moves
    // the consistent index): the hash is compared with the zstd file's own content, decompressed.
    let unpacked = dir.path().join("unpacked.db");
    let frame = std::fs::read(&zst).unwrap();
    std::fs::write(&unpacked, zstd::decode_all(&frame[..]).unwrap()).unwrap();
    let u = status(&unpacked);
    for k in ["hash", "revision", "total_keys", "total_size", "sha256_trailer", "buckets"] {
        assert_eq!(u[k], b[k], "{k}: {u:#} {b:#}");
    }
    for k in ["revision", "total_keys", "total_size", "sha256_trailer", "buckets"] {
        assert_eq!(a[k], b[k], "{k}: {a:#} {b:#}");
    }
    assert_eq!(b["sha256_trailer"], "valid");
    assert_eq!((b["compression"].as_str(), b["snapshot_size"].as_u64()), (Some("zstd"), Some(plain_size)));
    assert_eq!((a["compression"].as_str(), b["file_size"].as_u64()), (Some("none"), Some(on_disk)));
    let o = run_plugin(RESTORE, &["snapshot", "verify", s(&zst)], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok: zstd, sha256 trailer valid"), "{}", stdout(&o));

    // Beside a snapshot on a read-only volume nothing can be written: it is decompressed into
    // $TMPDIR instead, into a nameless file, so nothing is left there; a $TMPDIR too small for
    // the uncompressed size is named, with what to do.
    assert!(plain_size > 1 << 20, "{plain_size}");
    let ro = Tmpfs::mount(&dir.path().join("ro"), 16);
    let roz = ro.path.join("ro.db.zst");
    std::fs::copy(&zst, &roz).unwrap();
    let st = std::process::Command::new("mount").args(["-o", "remount,ro"]).arg(&ro.path).status().unwrap();
    assert!(st.success());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let o = run_plugin(RESTORE, &["snapshot", "status", s(&roz), "-o", "json"], &[("TMPDIR", s(&tmp))]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["hash"], b["hash"], "the same file read through $TMPDIR");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "nothing left in $TMPDIR");
    let tiny = Tmpfs::mount(&dir.path().join("tiny"), 1);
    let o = run_plugin(RESTORE, &["snapshot", "verify", s(&roz)], &[("TMPDIR", s(&tiny.path))]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!("into {} (it needs the uncompressed size free; set TMPDIR elsewhere)", tiny.path.display());
    assert!(err.contains(&want) && err.contains("No space left on device"), "{err}");
    assert_eq!(std::fs::read_dir(&tiny.path).unwrap().count(), 0, "nothing left in the full $TMPDIR");
    drop((ro, tiny));

    // Retention over both kinds; a damaged compressed file is never counted nor deleted.
    let bytes = std::fs::read(&zst).unwrap();
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    std::fs::write(d.join("etcd-snapshot-20200101T000000Z-1.db.zst"), &damaged).unwrap();
    std::fs::write(d.join("etcd-snapshot-20200101T000000Z-2.db.zst"), &bytes[..bytes.len() / 2]).unwrap();
    for bad in ["etcd-snapshot-20200101T000000Z-1.db.zst", "etcd-snapshot-20200101T000000Z-2.db.zst"] {
        let o = run_plugin(RESTORE, &["snapshot", "verify", s(&d.join(bad))], &[]);
        assert_ne!(o.status.code(), Some(0), "{bad}: {}", stdout(&o));
        let e = stderr(&o);
        assert!(e.contains("damaged or truncated") || e.contains("sha256 mismatch"), "{bad}: {e}");
    }
    let mut names = vec![zst.file_name().unwrap().to_string_lossy().into_owned()];
    let mut newest_sha256 = String::new();
    for (i, compress) in ["none", "zstd"].iter().enumerate() {
        c.put(&format!("/registry/after/{i}"), "x");
        let o = tokio::task::block_in_place(|| {
            restore(&c, &["snapshot", "save", "--dir", s(&d), "--keep", "2", "--compress", compress, "-o", "json"])
        });
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc = json(&o);
        let unverified: Vec<&str> =
            doc["retention"]["unverified"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(unverified, ["etcd-snapshot-20200101T000000Z-2.db.zst", "etcd-snapshot-20200101T000000Z-1.db.zst"]);
        names.push(Path::new(doc["path"].as_str().unwrap()).file_name().unwrap().to_string_lossy().into_owned());
        newest_sha256 = doc["sha256"].as_str().unwrap().to_string();
    }
    assert!(names[1].ends_with(".db") && names[2].ends_with(".db.zst"), "{names:?}");
    let listed = tokio::task::block_in_place(|| ls(&d));
    assert_eq!(
        listed,
        vec![
            (names[2].clone(), "valid".to_string()),
            (names[1].clone(), "valid".to_string()),
            ("etcd-snapshot-20200101T000000Z-2.db.zst".to_string(), "mismatch".to_string()),
            ("etcd-snapshot-20200101T000000Z-1.db.zst".to_string(), "mismatch".to_string()),
        ],
        "the first save is pruned, the damaged ones kept"
    );
    let wide = stdout(&run_plugin(RESTORE, &["snapshot", "ls", s(&d), "-o", "wide"], &[]));
    assert!(wide.contains("COMPRESSION") && wide.contains("zstd") && wide.contains("none"), "{wide}");

    // etcdutl cannot read zstd: --engine etcdutl is refused up front, with the way out.
    let o = run_plugin(
        RESTORE,
        &[
            "apply",
            s(&d.join(&names[2])),
            "--engine",
            "etcdutl",
            "--data-dir",
            s(&dir.path().join("x")),
            "--name",
            "m",
            "--initial-cluster",
            "m=https://127.0.0.1:2380",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("zstd-compressed and etcdutl reads only uncompressed"), "{}", stderr(&o));
    assert!(!dir.path().join("x").exists());

    // apply --latest: the newest verified snapshot is the compressed one; real etcd boots it.
    let want = count(&c, 0, "/registry/").await;
    c.put("/registry/later", "x");
    let mut target = Cluster::builder(1).planned();
    let n = &target.nodes[0];
    let o = tokio::task::block_in_place(|| {
        run_plugin(
            RESTORE,
            &[
                "apply",
                "--latest",
                s(&d),
                "--data-dir",
                s(&n.data_dir()),
                "--name",
                &n.name,
                "--initial-cluster",
                &format!("{}={}", n.name, n.peer_url()),
                "--initial-cluster-token",
                &target.token,
                "-o",
                "json",
            ],
            &[],
        )
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let newest = d.join(&names[2]);
    assert!(stderr(&o).contains(&format!("using {}", newest.display())), "{}", stderr(&o));
    tokio::task::block_in_place(|| target.start_all());
    assert_eq!(count(&target, 0, "/registry/").await, want);
    // Nothing decompressed is left in the directory.
    assert_eq!(names_in(&d).len(), 4, "{:?}", names_in(&d));

    // restore node --latest DIR, on the node: the newest verified snapshot (the compressed
    // one); the member comes back as it was at the snapshot, under the token derived from the
    // trailer of the decompressed stream (the same as for a plain copy of that snapshot).
    c.kubelet(0);
    let o = tokio::task::block_in_place(|| {
        run_plugin(
            RESTORE,
            &["node", "--latest", s(&d), "--manifest", s(&c.nodes[0].manifest()), "--yes", "--timeout", "60s"],
            &[],
        )
    });
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&format!("using {}", newest.display())), "node --latest: {}", stderr(&o));
    assert_eq!(count(&c, 0, "/registry/").await, want);
    assert_eq!(count(&c, 0, "/registry/later").await, 0);
    let manifest = std::fs::read_to_string(c.nodes[0].manifest()).unwrap();
    let tag = &newest_sha256[..8];
    assert!(manifest.contains(&format!("--initial-cluster-token=kubectl-etcd-restored-{tag}")), "{manifest}");
}
