//! Snapshot directories in object storage against a real S3 server (`s3s-fs`, SigV4 checked)
//! and real etcd (3.4 or 3.5): `snapshot save --dir s3://…` (multipart upload completed only
//! once the verified snapshot is sent, aborted on failure or signal), metadata, `ls`, retention,
//! `--latest s3://…`, configuration errors, a local and a bucket `--dir` together, and the
//! CronJob with a credentials Secret; `az://` against Azurite (Azure's own emulator, Shared Key
//! checked).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use harness::*;
use serde_json::Value;

const RESTORE: &str = "kubectl-etcd-restore";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// The plugin, on cluster `c` (when given), with the server's credentials (or `env`).
fn run(c: Option<&Cluster>, args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut a: Vec<String> = c.map(Cluster::manifest_args).unwrap_or_default();
    a.extend(args.iter().map(|s| s.to_string()));
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run_plugin(RESTORE, &a.iter().map(String::as_str).collect::<Vec<_>>(), &e)
}

fn spawn(c: &Cluster, args: &[&str], env: &[(String, String)]) -> Running {
    let mut a: Vec<String> = c.manifest_args();
    a.extend(args.iter().map(|s| s.to_string()));
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Running::spawn(plugin_command(RESTORE, &a.iter().map(String::as_str).collect::<Vec<_>>(), &e), "snapshot save")
}

/// Writes about `mib` MiB of values (100 KiB each) into a one-member cluster.
async fn fill(c: &Cluster, mib: usize) {
    let mut client = c.client(0).await;
    let value = vec![b'v'; 100 << 10];
    for i in 0..(mib * 10) {
        client.put(format!("/registry/big/{i:06}"), value.clone(), None).await.unwrap();
    }
}

use crate::backups::count;

/// Four saves to a bucket with `--keep 2`: two objects stay, with their metadata, listed
/// without a download; another prefix's objects and an object this tool did not write are
/// never counted or deleted; `ls --verify` downloads and checks; `apply --latest s3://…`
/// restores the newest one into a data dir that real etcd boots, and `restore node --latest
/// s3://…` brings the node's member back at it.
#[tokio::test(flavor = "multi_thread")]
async fn bucket_saves_keep_list_and_restore_latest() {
    let mut c = Cluster::start(1);
    let s3 = S3::start();
    s3.create_bucket("backups");
    let env = s3.env();
    let url = "s3://backups/etcd/cp-1";
    // Not ours: another prefix's, and one of our names that no metadata vouches for.
    let theirs = s3.root.join("backups/etcd/cp-1");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("other-20200101T000000Z-1.db"), b"x").unwrap();
    std::fs::write(theirs.join("etcd-snapshot-20200101T000000Z-2.db"), b"y").unwrap();
    let mut saved = Vec::new();
    for i in 0..4 {
        c.put(&format!("/registry/n/{i}"), "x");
        // The third compressed: the object is the compressed file, its metadata says so.
        let zstd: &[&str] = if i == 2 { &["--compress", "zstd"] } else { &[] };
        let o = tokio::task::block_in_place(|| {
            run(Some(&c), &[&["snapshot", "save", "--dir", url, "--keep", "2", "-o", "json"], zstd].concat(), &env)
        });
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let doc = json(&o);
        let path = doc["path"].as_str().unwrap().to_string();
        assert!(path.starts_with("s3://backups/etcd/cp-1/etcd-snapshot-"), "{doc:#}");
        assert!(stderr(&o).contains("warning: AWS_ENDPOINT_URL is plain http://"), "{}", stderr(&o));
        assert!(stderr(&o).contains("uploading etcd-snapshot-"), "{}", stderr(&o));
        saved.push(doc);
    }
    assert!(saved[2]["path"].as_str().unwrap().ends_with(".db.zst"), "{:#}", saved[2]);
    let name = |d: &Value| d["path"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let mut want = vec![
        name(&saved[2]),
        name(&saved[3]),
        "etcd-snapshot-20200101T000000Z-2.db".to_string(),
        "other-20200101T000000Z-1.db".to_string(),
    ];
    want.sort();
    assert_eq!(s3.objects("backups", "etcd/cp-1"), want, "kept 2 of ours, never the others");
    assert_eq!(s3.open_uploads(), Vec::<String>::new());
    let removed: Vec<&str> =
        saved[3]["retention"]["removed"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(removed, [name(&saved[1])]);

    // ls: from the listing and the metadata, no download.
    let o = tokio::task::block_in_place(|| run(None, &["snapshot", "ls", url, "-o", "json"], &env));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let items = json(&o)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 4, "{items:#?}");
    let newest = &items[0];
    assert_eq!(newest["name"], name(&saved[3]).as_str());
    let m = &newest["metadata"];
    assert_eq!(m["sha256"], saved[3]["sha256"]);
    assert_eq!(m["revision"], saved[3]["revision"]);
    assert_eq!(m["member_name"], saved[3]["member"]);
    assert_eq!(m["member_id"], saved[3]["member_id"]);
    assert_eq!(m["cluster_id"], saved[3]["cluster_id"]);
    assert!(m["etcd_version"].as_str().unwrap().starts_with(&etcd().version), "{m:#}");
    assert_eq!((m["compression"].as_str(), m["verified"].as_bool()), (Some("none"), Some(true)));
    assert_eq!(items[1]["metadata"]["compression"], "zstd", "{:#}", items[1]);
    assert_eq!(items[1]["metadata"]["sha256"], saved[2]["sha256"], "{:#}", items[1]);
    assert_eq!(items[2]["name"], "etcd-snapshot-20200101T000000Z-2.db");
    assert!(items[2].get("metadata").is_none(), "{:#}", items[2]);
    let table = stdout(&tokio::task::block_in_place(|| run(None, &["snapshot", "ls", url], &env)));
    assert!(table.contains("valid at upload") && table.contains("not written by kubectl-etcd"), "{table}");

    // ls --verify: downloaded and checked; the planted ones carry no trailer.
    let o = tokio::task::block_in_place(|| run(None, &["snapshot", "ls", url, "--verify", "-o", "json"], &env));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let verdicts: Vec<String> = json(&o)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sha256_trailer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(verdicts, ["valid", "valid", "absent", "absent"]);

    // prune --dry-run counts only ours.
    let o = tokio::task::block_in_place(|| {
        run(None, &["snapshot", "prune", url, "--keep", "1", "--dry-run", "-o", "json"], &env)
    });
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = json(&o);
    assert_eq!(p["removed"].as_array().unwrap().len(), 1, "{p:#}");
    assert_eq!(p["unverified"][0]["name"], "etcd-snapshot-20200101T000000Z-2.db", "{p:#}");
    assert_eq!(s3.objects("backups", "etcd/cp-1").len(), 4);

    // apply --latest s3://…: the newest, downloaded beside the data dir, verified, restored;
    // real etcd boots it.
    let want = count(&c, 0, "/registry/").await;
    c.put("/registry/later", "x");
    let (mut target, o) = tokio::task::block_in_place(|| apply_latest(url, &env));
    let n = &target.nodes[0];
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let used = format!("using {}", saved[3]["path"].as_str().unwrap());
    assert!(stderr(&o).contains(&used), "{}", stderr(&o));
    // Nothing named was left beside the data dir.
    let beside: Vec<_> = std::fs::read_dir(n.data_dir().parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.contains("download"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    tokio::task::block_in_place(|| target.start_all());
    assert_eq!(count(&target, 0, "/registry/").await, want);
    assert_eq!(count(&target, 0, "/registry/later").await, 0);

    // restore node --latest s3://…, on the node under the kubelet emulation: the member comes
    // back as it was at the newest object (the later write is gone).
    c.kubelet(0);
    let manifest = c.nodes[0].manifest();
    let o = tokio::task::block_in_place(|| {
        run(None, &["node", "--latest", url, "--manifest", s(&manifest), "--yes", "--timeout", "60s"], &env)
    });
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains(&used), "node --latest: {}", stderr(&o));
    assert_eq!(count(&c, 0, "/registry/").await, want);
    assert_eq!(count(&c, 0, "/registry/later").await, 0);
}

/// A wrong secret, a bucket that does not exist, an endpoint that does not answer: one line
/// naming the URL, never the secret, exit 3 (configuration) or 4 (transport); nothing is
/// streamed from etcd for a bucket that cannot be written.
#[test]
fn store_errors_are_one_line_without_the_secret() {
    let c = Cluster::start(1);
    let s3 = S3::start();
    s3.create_bucket("backups");
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        s3.env().into_iter().map(|(a, b)| if a == k { (a, v.to_string()) } else { (a, b) }).collect()
    };
    let wrong = "not-the-secret-0123456789";
    let cases = [
        ("s3://backups/p", with("AWS_SECRET_ACCESS_KEY", wrong), 3, "rejected the credentials"),
        // s3s-fs answers an unknown key with AccessDenied, as MinIO does.
        ("s3://backups/p", with("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN"), 3, "access denied"),
        ("s3://missing/p", s3.env(), 3, "the bucket does not exist"),
        (
            "s3://backups/p",
            with("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{}", free_port())),
            4,
            "does not answer",
        ),
    ];
    for (url, env, code, words) in cases {
        let o = run(Some(&c), &["snapshot", "save", "--dir", url], &env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{url}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with("warning:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(url) && lines[0].contains(words), "{err}");
        for (_, v) in &env {
            if v.starts_with("secret-") || v == wrong {
                assert!(!err.contains(v.as_str()) && !stdout(&o).contains(v.as_str()), "secret printed: {err}");
            }
        }
        assert!(!err.contains("snapshot stream"), "{err}");
    }
    assert_eq!(s3.objects("backups", "p"), Vec::<String>::new());
}

/// `restore apply --latest URL` into a planned one-member cluster's data dir (not started):
/// the cluster and the plugin's output.
fn apply_latest(url: &str, env: &[(String, String)]) -> (Cluster, std::process::Output) {
    let target = Cluster::builder(1).planned();
    let n = &target.nodes[0];
    let (peers, data_dir) = (format!("{}={}", n.name, n.peer_url()), n.data_dir());
    let args = ["apply", "--latest", url, "--data-dir", s(&data_dir), "--name", &n.name];
    let o =
        run(None, &[&args[..], &["--initial-cluster", &peers, "--initial-cluster-token", &target.token]].concat(), env);
    (target, o)
}

/// Starts a save of a ~40 MiB snapshot to the bucket and freezes the server (SIGSTOP) once
/// it has stored the first part: the upload is then certainly under way.
fn upload_frozen_mid_way(c: &Cluster, s3: &S3) -> Running {
    let mut p = spawn(c, &["snapshot", "save", "--dir", "s3://backups/etcd"], &s3.env());
    p.wait_stderr("uploading", Duration::from_secs(120));
    let pid = wait_for("the server to store a part", Duration::from_secs(60), || {
        let parts = s3.open_uploads().iter().any(|n| n.contains(".part-"));
        parts.then(|| s3_pid(s3))
    });
    unsafe_signal(pid, libc::SIGSTOP);
    p
}

fn s3_pid(s3: &S3) -> i32 {
    // The server listens on the endpoint's port: find its process by the port in its argv.
    let port = s3.endpoint.rsplit(':').next().unwrap().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        let argv: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if argv.first().is_some_and(|a| a.ends_with("s3s-fs"))
            && argv.windows(2).any(|w| w[0] == "--port" && w[1] == port)
        {
            return e.file_name().to_string_lossy().parse().unwrap();
        }
    }
    panic!("no s3s-fs on port {port}")
}

fn unsafe_signal(pid: i32, sig: i32) {
    let st = std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(st.success());
}

/// The server killed mid-upload (and back a moment later): the save fails with a transport
/// error, the multipart upload is aborted once the server answers again, and no object stands
/// under the final name.
#[tokio::test(flavor = "multi_thread")]
async fn server_killed_mid_upload_leaves_nothing() {
    let c = Cluster::start(1);
    fill(&c, 40).await;
    let mut s3 = S3::start();
    s3.create_bucket("backups");
    let mut p = tokio::task::block_in_place(|| upload_frozen_mid_way(&c, &s3));
    s3.kill();
    tokio::task::block_in_place(|| p.wait_stderr("retrying to abort the multipart upload", Duration::from_secs(120)));
    s3.restart();
    let o = tokio::task::block_in_place(|| p.wait(Duration::from_secs(120)));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("the multipart upload was aborted: no object was written"), "{err}");
    assert_eq!(s3.objects("backups", "etcd"), Vec::<String>::new(), "{err}");
    assert_eq!(s3.open_uploads(), Vec::<String>::new(), "{err}");
}

/// The member killed while it sends a snapshot bound for a bucket: the save fails as a
/// transport error, and neither an object, an open upload nor the private copy is left.
#[tokio::test(flavor = "multi_thread")]
async fn member_killed_mid_stream_leaves_no_object() {
    let mut c = Cluster::start(1);
    // ~120 MiB, so the stream lasts long enough to be cut.
    fill(&c, 120).await;
    let s3 = S3::start();
    s3.create_bucket("backups");
    // The private copy of a bucket-only save goes under TMPDIR: watch it grow there.
    let tmp = tempfile::tempdir().unwrap();
    let mut env = s3.env();
    env.push(("TMPDIR".into(), s(tmp.path()).into()));
    let p = spawn(&c, &["snapshot", "save", "--dir", "s3://backups/etcd"], &env);
    tokio::task::block_in_place(|| {
        wait_for("the snapshot stream to start", Duration::from_secs(60), || {
            walk(tmp.path())
                .iter()
                .any(|f| f.to_string_lossy().ends_with(".part") && f.metadata().is_ok_and(|m| m.len() > 0))
                .then_some(())
        })
    });
    c.kill(0);
    let o = tokio::task::block_in_place(|| p.wait(Duration::from_secs(120)));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("stopped sending") || err.contains("truncated"), "{err}");
    assert_eq!(s3.objects("backups", "etcd"), Vec::<String>::new(), "{err}");
    assert_eq!(s3.open_uploads(), Vec::<String>::new(), "{err}");
    let left: Vec<_> = walk(tmp.path());
    assert!(left.is_empty(), "{left:?}");
}

/// Every file under `dir`, at any depth.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    // A directory may go while it is walked (the save removes its own).
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// SIGINT mid-upload: the upload is aborted before the process exits; nothing is written.
#[tokio::test(flavor = "multi_thread")]
async fn sigint_mid_upload_aborts_it() {
    let c = Cluster::start(1);
    fill(&c, 40).await;
    let s3 = S3::start();
    s3.create_bucket("backups");
    let p = tokio::task::block_in_place(|| upload_frozen_mid_way(&c, &s3));
    unsafe_signal(p.pid(), libc::SIGINT);
    unsafe_signal(s3_pid(&s3), libc::SIGCONT);
    let o = tokio::task::block_in_place(|| p.wait(Duration::from_secs(120)));
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("interrupted by SIGINT") && err.contains("aborted"), "{err}");
    assert_eq!(s3.objects("backups", "etcd"), Vec::<String>::new(), "{err}");
    assert_eq!(s3.open_uploads(), Vec::<String>::new(), "{err}");
}

/// The same guarantees against Azure Blob Storage's own emulator (Azurite, every request's
/// Shared Key checked), through `az://`: two saves with `--keep 1` leave one blob, whose
/// metadata `ls` reads without a download; `ls --verify` downloads and checks it; `apply
/// --latest az://…` restores it into a data dir real etcd boots. A wrong key and a container
/// that does not exist: one line naming the URL, never the key, exit 3.
#[tokio::test(flavor = "multi_thread")]
async fn azure_container_saves_list_and_restore_latest() {
    let c = Cluster::start(1);
    let az = Azurite::start();
    az.create_container("backups");
    let env = az.env();
    let url = "az://backups/etcd";
    let mut saved = Vec::new();
    for i in 0..2 {
        c.put(&format!("/registry/az/{i}"), "x");
        let o = tokio::task::block_in_place(|| {
            run(Some(&c), &["snapshot", "save", "--dir", url, "--keep", "1", "-o", "json"], &env)
        });
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        saved.push(json(&o));
    }
    let path = saved[1]["path"].as_str().unwrap();
    assert!(path.starts_with("az://backups/etcd/etcd-snapshot-"), "{:#}", saved[1]);
    assert_eq!(saved[1]["retention"]["removed"].as_array().unwrap().len(), 1, "{:#}", saved[1]);

    // ls: from the listing and the blob's metadata.
    let o = tokio::task::block_in_place(|| run(None, &["snapshot", "ls", url, "-o", "json"], &env));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let items = json(&o)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["name"], path.rsplit('/').next().unwrap());
    let m = &items[0]["metadata"];
    assert_eq!((&m["sha256"], &m["revision"]), (&saved[1]["sha256"], &saved[1]["revision"]), "{m:#}");
    assert_eq!((m["compression"].as_str(), m["verified"].as_bool()), (Some("none"), Some(true)), "{m:#}");

    // ls --verify: downloaded and checked.
    let o = tokio::task::block_in_place(|| run(None, &["snapshot", "ls", url, "--verify", "-o", "json"], &env));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(json(&o)["items"][0]["sha256_trailer"], "valid");

    // apply --latest az://…: real etcd boots what it restored.
    let want = count(&c, 0, "/registry/").await;
    let (mut target, o) = tokio::task::block_in_place(|| apply_latest(url, &env));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("using {path}")), "{}", stderr(&o));
    tokio::task::block_in_place(|| target.start_all());
    assert_eq!(count(&target, 0, "/registry/").await, want);

    // A wrong key, then a container that does not exist.
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let bad: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.clone(), if k == "AZURE_STORAGE_ACCOUNT_KEY" { wrong.to_string() } else { v.clone() }))
        .collect();
    for (u, e) in [(url, &bad), ("az://nope/etcd", &env)] {
        let o = tokio::task::block_in_place(|| run(Some(&c), &["snapshot", "save", "--dir", u], e));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{u}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(u), "{err}");
        assert!(!err.contains(&az.key) && !err.contains(wrong), "{err}");
    }
}

/// A local directory and a bucket together, each with its own --keep: the same verified
/// snapshot in both, each pruned on its own.
#[test]
fn local_and_bucket_dirs_together() {
    let c = Cluster::start(1);
    let s3 = S3::start();
    s3.create_bucket("backups");
    let dir = tempfile::tempdir().unwrap();
    let url = "s3://backups/both";
    let mut docs = Vec::new();
    for i in 0..3 {
        c.put(&format!("/registry/both/{i}"), "x");
        let o = run(
            Some(&c),
            &["snapshot", "save", "--dir", s(dir.path()), "--keep", "1", "--dir", url, "--keep", "2", "-o", "json"],
            &s3.env(),
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        docs.push(json(&o));
    }
    let last = &docs[2];
    let local = Path::new(last["path"].as_str().unwrap());
    assert_eq!(local.parent().unwrap(), dir.path());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [local.file_name().unwrap().to_string_lossy().into_owned()]);
    let copy = &last["copies"][0];
    let name = local.file_name().unwrap().to_str().unwrap();
    assert_eq!(copy["location"], format!("{url}/{name}").as_str(), "{last:#}");
    assert_eq!(copy["retention"]["kept"].as_array().unwrap().len(), 2, "{last:#}");
    assert_eq!(s3.objects("backups", "both").len(), 2);
    assert_eq!(std::fs::read(s3.root.join("backups/both").join(name)).unwrap(), std::fs::read(local).unwrap());
    // --keep given twice for three --dir is refused before anything is saved.
    let o = run(
        Some(&c),
        &[
            "snapshot",
            "save",
            "--dir",
            s(dir.path()),
            "--dir",
            url,
            "--dir",
            "s3://backups/x",
            "--keep",
            "1",
            "--keep",
            "2",
        ],
        &s3.env(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `schedule --dir s3://… --credentials-secret NAME`: the container takes the Secret's keys as
/// its environment and the CronJob holds no credential (even with them in the environment of
/// the command that rendered it); its command, run verbatim with the Secret's keys as
/// environment, saves into the local directory and the bucket.
#[test]
fn schedule_with_a_credentials_secret() {
    use k8s_openapi::api::batch::v1::CronJob;
    let c = Cluster::start(1);
    let s3 = S3::start();
    s3.create_bucket("backups");
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("etcd-backups");
    let manifest = c.nodes[0].manifest();
    let args = [
        "--manifest",
        s(&manifest),
        "snapshot",
        "schedule",
        "--schedule",
        "@daily",
        "--keep",
        "3",
        "--dir",
        s(&dir),
        "--dir",
        "s3://backups/etcd/scheduled",
        "--credentials-secret",
        "etcd-backup-s3",
    ];
    let o = run(None, &args, &s3.env());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for (_, v) in s3.env() {
        if v.starts_with("secret-") || v.starts_with("AKIA") {
            assert!(!text.contains(&v), "a credential in the CronJob:\n{text}");
        }
    }
    let docs: Vec<Value> = yaml_docs(&o);
    let cj: CronJob = serde_json::from_value(docs[1].clone()).unwrap();
    let pod = cj.spec.unwrap().job_template.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    let from = container.env_from.as_ref().unwrap();
    assert_eq!(from.len(), 1);
    assert_eq!(from[0].secret_ref.as_ref().unwrap().name, "etcd-backup-s3");
    assert!(container.env.as_ref().is_none_or(|e| e.is_empty()), "{:?}", container.env);
    let cmd = container.command.clone().unwrap();
    let pos = cmd.iter().position(|a| a == "s3://backups/etcd/scheduled").unwrap();
    assert_eq!(cmd[pos - 1], "--dir");
    // The command, as the pod runs it, with the Secret's keys as its environment.
    std::fs::create_dir(&dir).unwrap();
    let env = s3.env();
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = run_plugin(RESTORE, &cmd[1..].iter().map(String::as_str).collect::<Vec<_>>(), &e);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(s3.objects("backups", "etcd/scheduled").len(), 1);
    // A bad Secret name is refused.
    let mut bad = args.to_vec();
    *bad.last_mut().unwrap() = "Not_A_Name";
    let o = run(None, &bad, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// `AWS_PROFILE` and the shared files, with no AWS key in the environment: the profile's keys
/// (credentials file), region and endpoint (a config file named by `AWS_CONFIG_FILE`) reach the
/// real server, `-v` says where each came from without a secret; keys in the environment win
/// over the profile's (wrong ones are then rejected); a profile that does not exist is one line
/// naming it, exit 3, before anything is streamed.
#[test]
fn credentials_from_a_profile_in_the_shared_files() {
    let c = Cluster::start(1);
    let s3 = S3::start();
    s3.create_bucket("backups");
    let home = tempfile::Builder::new().prefix("kubectl-etcd-e2e-aws-").tempdir().unwrap();
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = AKIAWRONGDEFAULT\naws_secret_access_key = not-this-one\n\n[backup]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            s3.access_key, s3.secret_key
        ),
    )
    .unwrap();
    let config = home.path().join("aws-config");
    std::fs::write(&config, format!("[profile backup]\nregion = us-east-1\nendpoint_url = {}\n", s3.endpoint)).unwrap();
    let env = |profile: &str| -> Vec<(String, String)> {
        vec![
            ("HOME".into(), s(home.path()).into()),
            ("AWS_CONFIG_FILE".into(), s(&config).into()),
            ("AWS_PROFILE".into(), profile.into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    };
    let url = "s3://backups/prof";
    let o = run(Some(&c), &["snapshot", "save", "--dir", url, "-v", "-o", "json"], &env("backup"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(s3.objects("backups", "prof").len(), 1, "{err}");
    let creds = home.path().join(".aws/credentials");
    assert!(err.contains(&format!("credentials from profile backup in {}", creds.display())), "{err}");
    assert!(err.contains(&format!("endpoint {} from profile backup in {}", s3.endpoint, config.display())), "{err}");
    assert!(err.contains("endpoint_url of profile backup") && err.contains("is plain http://"), "{err}");
    assert!(!err.contains(&s3.secret_key) && !stdout(&o).contains(&s3.secret_key), "secret printed: {err}");

    // Keys in the environment take precedence over the profile's.
    let mut with_env = env("backup");
    with_env.push(("AWS_ACCESS_KEY_ID".into(), s3.access_key.clone()));
    with_env.push(("AWS_SECRET_ACCESS_KEY".into(), "secret-from-env-wrong".into()));
    let o = run(Some(&c), &["snapshot", "save", "--dir", url], &with_env);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("rejected the credentials"), "{}", stderr(&o));

    // A profile that does not exist.
    let o = run(Some(&c), &["snapshot", "save", "--dir", url], &env("nope"));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains(url) && lines[0].contains("AWS_PROFILE=nope: no such profile"), "{err}");
    assert!(!err.contains(&s3.secret_key), "{err}");
    assert_eq!(s3.objects("backups", "prof").len(), 1);
}
