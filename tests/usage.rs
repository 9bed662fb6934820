//! `kubectl etcd usage` against real etcd (3.4 or 3.5): keys written as kube-apiserver writes
//! them (protobuf values behind the `k8s\0` magic, JSON for custom resources), every figure
//! checked against a model of the writes that etcdctl confirms key by key (`get --prefix
//! -w json`: versions, mod revisions, values; `--keys-only`: the live keys; `--rev`: the
//! compaction), from a snapshot file, a zstd one, the data dir while etcd runs and the live
//! cluster; then `defrag schedule`'s CronJob, printed, applied to the fake API, and its command
//! run against the cluster.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use harness::fakekube::FakeKube;
use harness::*;
use k8s_openapi::api::batch::v1::CronJob;
use serde_json::{json, Value};

const DEFRAG: &str = "kubectl-etcd-defrag";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_of(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

/// One write: key, value length (`None`: a deletion), revision.
type Op = (String, Option<usize>, i64);

/// kube-apiserver's protobuf envelope: the magic, then the message.
fn proto(len: usize, fill: u8) -> Vec<u8> {
    let mut v = b"k8s\0".to_vec();
    v.resize(len, fill);
    v
}

/// The resource a key counts under, by kube-apiserver's layout (as the test writes them).
fn resource_of(key: &str) -> String {
    let rest = key.strip_prefix("/registry/").unwrap();
    let segs: Vec<&str> = rest.split('/').collect();
    if segs[0].contains('.') {
        format!("{}/{}", segs[0], segs[1])
    } else {
        segs[0].to_string()
    }
}

/// The figures per resource the database must hold after a compaction at `compacted` (0: none):
/// every revision after it, and each key's newest revision at or before it unless that is a
/// deletion. Per resource: (live_keys, live_bytes, revisions, history_bytes, tombstones).
fn model(ops: &[Op], compacted: i64) -> BTreeMap<String, [u64; 5]> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.0).or_default().push(op);
    }
    let mut out: BTreeMap<String, [u64; 5]> = BTreeMap::new();
    for (key, revs) in by_key {
        let newest_old = revs.iter().rfind(|o| o.2 <= compacted).filter(|o| o.1.is_some());
        let kept: Vec<&&Op> =
            revs.iter().filter(|o| o.2 > compacted || newest_old.is_some_and(|n| n.2 == o.2)).collect();
        if kept.is_empty() {
            continue;
        }
        let f = out.entry(resource_of(key)).or_default();
        let bytes = |o: &Op| (o.0.len() + o.1.unwrap_or(0)) as u64;
        for (i, o) in kept.iter().enumerate() {
            f[2] += 1;
            if o.1.is_none() {
                f[4] += 1;
            }
            if i == kept.len() - 1 && o.1.is_some() {
                f[0] += 1;
                f[1] += bytes(o);
            } else {
                f[3] += bytes(o);
            }
        }
    }
    out
}

fn figures(doc: &Value) -> BTreeMap<String, [u64; 5]> {
    doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |f: &str| r[f].as_u64().unwrap();
            (
                r["resource"].as_str().unwrap().to_string(),
                [n("live_keys"), n("live_bytes"), n("revisions"), n("history_bytes"), n("tombstones")],
            )
        })
        .collect()
}

/// Standard base64, as etcdctl's `-w json` writes keys and values.
fn base64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_else(|e| panic!("not base64 ({e}): {s}"))
}

/// etcdctl's view of the live keys under /registry: key → (version, mod_revision, value length).
fn etcdctl_live(c: &Cluster) -> BTreeMap<String, (i64, i64, usize)> {
    let o = c.etcdctl(&c.endpoints(), &["get", "/registry/", "--prefix", "-w", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let b64 = |s: &Value| base64(s.as_str().unwrap());
    v["kvs"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            let key = String::from_utf8(b64(&kv["key"])).unwrap();
            (key, (kv["version"].as_i64().unwrap(), kv["mod_revision"].as_i64().unwrap(), b64(&kv["value"]).len()))
        })
        .collect()
}

/// The model's live keys against etcdctl's: the same keys, versions, mod revisions and sizes;
/// `--keys-only` lists the same keys.
fn check_against_etcdctl(c: &Cluster, ops: &[Op]) {
    let mut want: BTreeMap<String, (i64, i64, usize)> = BTreeMap::new();
    for (key, len, rev) in ops {
        match len {
            Some(l) => {
                let version = want.get(key).map_or(0, |w| w.0) + 1;
                want.insert(key.clone(), (version, *rev, *l));
            }
            None => {
                want.remove(key);
            }
        }
    }
    assert_eq!(etcdctl_live(c), want);
    let o = c.etcdctl(&c.endpoints(), &["get", "/registry/", "--prefix", "--keys-only"]);
    let keys: Vec<String> = stdout(&o).lines().filter(|l| !l.is_empty()).map(String::from).collect();
    assert_eq!(keys, want.keys().cloned().collect::<Vec<_>>());
}

/// Writes kube-apiserver's kinds of keys and records every revision.
async fn write_cluster(c: &Cluster) -> Vec<Op> {
    let mut client = c.client(0).await;
    let mut ops: Vec<Op> = Vec::new();
    let put = async |client: &mut etcd_client::Client, ops: &mut Vec<Op>, key: String, value: Vec<u8>| {
        let r = client.put(key.clone(), value.clone(), None).await.unwrap();
        ops.push((key, Some(value.len()), r.header().unwrap().revision()));
    };
    for i in 0..12 {
        for round in 0..2u8 {
            put(&mut client, &mut ops, format!("/registry/pods/team-a/web-{i}"), proto(400, b'a' + round)).await;
        }
    }
    for i in 0..6 {
        put(&mut client, &mut ops, format!("/registry/configmaps/team-b/cm-{i}"), proto(200, b'c')).await;
    }
    // An event storm: five events rewritten many times (their count going up).
    for round in 0..40u8 {
        for i in 0..5 {
            put(&mut client, &mut ops, format!("/registry/events/team-a/web.{i}"), proto(8000, round)).await;
        }
    }
    // Node leases renewed.
    for round in 0..40u8 {
        for i in 0..3 {
            put(&mut client, &mut ops, format!("/registry/leases/kube-node-lease/node-{i}"), proto(3000, round)).await;
        }
    }
    // A large custom resource definition (JSON) and a custom resource.
    let big = format!("{{\"kind\":\"CustomResourceDefinition\",\"spec\":\"{}\"}}", "x".repeat(1_150_000));
    put(
        &mut client,
        &mut ops,
        "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com".into(),
        big.into_bytes(),
    )
    .await;
    put(&mut client, &mut ops, "/registry/example.com/widgets/team-a/w1".into(), b"{\"kind\":\"Widget\"}".to_vec())
        .await;
    // Secrets created, then deleted.
    for i in 0..4 {
        put(&mut client, &mut ops, format!("/registry/secrets/team-b/s-{i}"), proto(300, b's')).await;
    }
    for i in 0..4 {
        let key = format!("/registry/secrets/team-b/s-{i}");
        let r = client.delete(key.clone(), None).await.unwrap();
        ops.push((key, None, r.header().unwrap().revision()));
    }
    ops
}

fn usage(c: &Cluster, args: &[&str]) -> Value {
    let mut a = c.manifest_args();
    a.extend(args.iter().map(|s| s.to_string()));
    a.extend(["-o".to_string(), "json".to_string(), "--top".to_string(), "3".to_string()]);
    let o = run_plugin(DEFRAG, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = json_of(&o);
    assert_eq!(doc["kind"], "Usage", "{doc:#}");
    doc
}

fn finding_ids(doc: &Value) -> Vec<String> {
    doc["findings"].as_array().unwrap().iter().map(|f| f["id"].as_str().unwrap().to_string()).collect()
}

/// Every figure of a file, a zstd file, the data dir while etcd runs and the live cluster
/// equals the model that etcdctl confirms; before and after a compaction; the largest and
/// most rewritten keys, and the findings with their next steps.
#[tokio::test(flavor = "multi_thread")]
async fn usage_per_resource_matches_etcdctl() {
    let c = Cluster::start(1);
    let ops = write_cluster(&c).await;
    let current = ops.last().unwrap().2;
    tokio::task::block_in_place(|| {
        check_against_etcdctl(&c, &ops);
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("etcd.db");
        let o = c.etcdctl(&c.endpoints(), &["snapshot", "save", s(&plain)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let want = model(&ops, 0);
        let from_file = usage(&c, &["usage", s(&plain)]);
        assert_eq!(figures(&from_file), want, "{from_file:#}");
        assert_eq!(from_file["revision"], current);
        assert_eq!(from_file["compacted_revision"], 0);
        let total: u64 = want.values().map(|f| f[2]).sum();
        assert_eq!(from_file["totals"]["revisions"], total);
        // The largest: the CRD, then the custom resource is not among them; most rewritten:
        // the events, 40 versions each, all kept.
        assert_eq!(
            from_file["largest"][0]["key"],
            "/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"
        );
        assert_eq!(from_file["largest"].as_array().unwrap().len(), 3);
        let rewritten = from_file["most_rewritten"].as_array().unwrap();
        assert_eq!(rewritten.len(), 3);
        for r in rewritten {
            assert!(r["key"].as_str().unwrap().starts_with("/registry/events/team-a/web."), "{r}");
            assert_eq!((r["version"].as_i64(), r["versions"].as_u64()), (Some(40), Some(40)), "{r}");
        }
        let ids = finding_ids(&from_file);
        for id in ["history", "event-storm", "lease-storm", "large-objects"] {
            assert!(ids.contains(&id.to_string()), "{id} missing: {from_file:#}");
        }
        for f in from_file["findings"].as_array().unwrap() {
            assert!(!f["next"].as_str().unwrap().is_empty(), "{f}");
        }
        let storm = from_file["findings"].as_array().unwrap().iter().find(|f| f["id"] == "event-storm").unwrap();
        assert!(storm["message"].as_str().unwrap().contains("200 revisions kept for 5 live key(s)"), "{storm}");

        // zstd, the data dir with etcd running, and the live cluster: the same figures.
        let z = dir.path().join("etcd.db.zst");
        let mut a = c.manifest_args();
        a.extend(["snapshot", "save", s(&z), "--compress", "zstd"].map(String::from));
        let o = run_plugin("kubectl-etcd-restore", &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let zdoc = usage(&c, &["usage", s(&z)]);
        assert_eq!(zdoc["source"]["compression"], "zstd");
        let data = usage(&c, &["usage", s(&c.nodes[0].data_dir())]);
        assert!(c.nodes[0].pid().is_some(), "etcd runs while its data dir is read");
        assert_eq!(data["source"]["kind"], "data-dir");
        let mut a = c.manifest_args();
        a.extend(["usage", "-o", "json", "--top", "3"].map(String::from));
        let o = run_plugin(DEFRAG, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("streamed into a nameless temporary file"), "{}", stderr(&o));
        let live = json_of(&o);
        assert_eq!(live["source"]["kind"], "member");
        for doc in [&zdoc, &data, &live] {
            assert_eq!(figures(doc), want, "{doc:#}");
            assert_eq!(doc["largest"], from_file["largest"]);
            assert_eq!(doc["most_rewritten"], from_file["most_rewritten"]);
        }
        // --by namespace: the namespaces' rows add up to the same totals.
        let by_ns = usage(&c, &["usage", s(&plain), "--by", "namespace"]);
        let ns: BTreeMap<String, u64> = by_ns["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["namespace"].as_str().unwrap().to_string(), n["revisions"].as_u64().unwrap()))
            .collect();
        assert_eq!(ns["team-a"], want["pods"][2] + want["events"][2] + 1, "{by_ns:#}");
        assert_eq!(ns["team-b"], want["configmaps"][2] + want["secrets"][2], "{by_ns:#}");
        assert_eq!(ns[""], 1, "the CRD is cluster-scoped: {by_ns:#}");
        // The table fits 120 columns.
        let o = run_plugin(DEFRAG, &["usage", s(&plain)], &[]);
        assert!(stdout(&o).lines().all(|l| l.chars().count() <= 120), "{}", stdout(&o));
        assert!(stdout(&o).contains("next: "), "{}", stdout(&o));

        // Compacted in the middle of the event storm: what etcd keeps changes, and so do the figures.
        let mid = ops.iter().find(|o| o.0 == "/registry/events/team-a/web.0").map(|o| o.2).unwrap() + 100;
        let o = c.etcdctl(&c.endpoints(), &["compact", &mid.to_string(), "--physical"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = c.etcdctl(&c.endpoints(), &["get", "/registry/pods/team-a/web-0", "--rev", &(mid - 1).to_string()]);
        assert!(String::from_utf8_lossy(&o.stderr).contains("compacted"), "etcd says the revision is compacted");
        check_against_etcdctl(&c, &ops);
        let after = usage(&c, &["usage", s(&c.nodes[0].data_dir())]);
        let want = model(&ops, mid);
        assert_eq!(figures(&after), want, "{after:#}");
        assert_eq!(after["compacted_revision"], mid);
        assert!(want["events"][2] < 200 && want["secrets"][4] == 4, "{want:?}");
    });
}

/// A file that is not an etcd database, a truncated one, a missing one: one line, the
/// documented exit code (1 not readable, 2 a path that cannot be read).
#[test]
fn bad_input_is_one_line_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, vec![b'x'; 20000]).unwrap();
    let o = run_plugin(DEFRAG, &["usage", s(&text)], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a bbolt/etcd database"), "{}", stderr(&o));
    let o = run_plugin(DEFRAG, &["usage", s(&dir.path().join("missing.db"))], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run_plugin(DEFRAG, &["usage", s(dir.path())], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("without member/snap/db"), "{}", stderr(&o));
}

/// A truncated snapshot of a real database.
#[test]
fn a_truncated_snapshot_is_refused() {
    let c = Cluster::start(1);
    for i in 0..300 {
        c.put(&format!("/registry/configmaps/ns/cm-{i}"), &"v".repeat(500));
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("etcd.db");
    assert!(c.etcdctl(&c.endpoints(), &["snapshot", "save", s(&f)]).status.success());
    let full = std::fs::read(&f).unwrap();
    std::fs::write(&f, &full[..full.len() / 2]).unwrap();
    let o = run_plugin(DEFRAG, &["usage", s(&f)], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
}

/// `defrag schedule`: the CronJob (no API rights, control-plane nodes, host network, read-only
/// PKI, limits), printed and applied to the fake API, and its command run against real etcd,
/// where it defragments only the members its rule takes.
#[test]
fn scheduled_defrag_objects_and_their_command() {
    let c = Cluster::start(3);
    let manifest = c.nodes[0].manifest();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "--manifest".into(),
            manifest.display().to_string(),
            "schedule".into(),
            "--schedule".into(),
            "0 3 * * *".into(),
            "--min-free".into(),
            "10%".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let a = args(&[]);
    let o = run_plugin(DEFRAG, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let docs: Vec<Value> = yaml_docs(&o);
    assert_eq!(docs.len(), 2, "{}", stdout(&o));
    let cj: CronJob = serde_json::from_value(docs[1].clone()).unwrap();
    assert_eq!(cj.metadata.name.as_deref(), Some("etcd-defrag"));
    let spec = cj.spec.as_ref().unwrap();
    assert_eq!(spec.schedule, "0 3 * * *");
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = spec.job_template.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!((pod.host_network, pod.automount_service_account_token), (Some(true), Some(false)));
    let container = &pod.containers[0];
    assert!(container.resources.as_ref().unwrap().limits.as_ref().unwrap().contains_key("memory"));
    // Read-only mounts only (nothing to write on the node), each at its own path.
    let mounts = container.volume_mounts.as_ref().unwrap();
    assert!(mounts.iter().all(|m| m.read_only == Some(true)), "{mounts:?}");
    let mounted = |p: &Path| mounts.iter().any(|m| p.starts_with(&m.mount_path));
    let text = std::fs::read_to_string(&manifest).unwrap();
    for flag in ["--trusted-ca-file=", "--cert-file=", "--key-file="] {
        let path = text.split(flag).nth(1).unwrap().split(['\n', '"', ' ']).next().unwrap();
        assert!(mounted(Path::new(path)), "{flag}{path} is not mounted");
    }
    let command = container.command.as_ref().unwrap();
    assert_eq!(command[0], "kubectl-etcd-defrag");
    assert!(command.windows(2).any(|w| w == ["--min-free", "10%"]), "{command:?}");

    // The command as the pod runs it: nothing free → nothing done; after churn, only the
    // members its rule takes.
    let run = |cmd: &[String]| {
        let mut a = cmd[1..].to_vec();
        a.extend(["-o".to_string(), "json".to_string()]);
        let o = std::process::Command::new(bin(DEFRAG)).args(&a).env_remove("KUBECONFIG").output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let first = run(command);
    let done = |d: &Value| d["defragmented"].as_array().map_or(0, Vec::len);
    let selected =
        |d: &Value| d["plan"]["members"].as_array().unwrap().iter().filter(|m| m["selected"] == true).count();
    assert_eq!(done(&first), selected(&first), "{first:#}");
    for i in 0..200 {
        c.put(&format!("/registry/configmaps/churn/cm-{}", i % 10), &"v".repeat(20_000));
    }
    // With --compact in the job, the history goes and every member then has room to return.
    let a = args(&["--compact", "-o", "json"]);
    let o = run_plugin(DEFRAG, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let list = json_of(&o);
    let cmd: Vec<String> = list["items"][1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        ["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cmd.last().map(String::as_str), Some("--compact"), "{cmd:?}");
    let second = run(&cmd);
    assert!(second["compacted_to"].as_i64().is_some(), "{second:#}");
    assert_eq!(done(&second), 3, "every member had over 10% free after the churn: {second:#}");

    // --apply: created, then configured.
    let nodes = vec![json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-0",
        "labels": {"node-role.kubernetes.io/control-plane": ""}}})];
    let kube = FakeKube::start(vec![], nodes);
    let home = tempfile::tempdir().unwrap();
    let kc = kube.kubeconfig(home.path());
    let apply = args(&["--apply", "--kubeconfig", s(&kc)]);
    let o = run_plugin(DEFRAG, &apply.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "serviceaccount/etcd-defrag created\ncronjob.batch/etcd-defrag created\n");
    let o = run_plugin(DEFRAG, &apply.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert!(stdout(&o).lines().all(|l| l.ends_with(" configured")), "{}", stdout(&o));
    let objects = kube.objects.lock().unwrap().clone();
    let cj = &objects["apis/batch/v1/namespaces/kube-system/cronjobs/etcd-defrag"];
    assert_eq!(cj["metadata"]["labels"]["app.kubernetes.io/component"], "etcd-defrag");
    let cmd = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(cmd[0], "kubectl-etcd-defrag");
}
