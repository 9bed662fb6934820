//! `kubectl etcd upgrade` against real etcd clusters: `check`'s verdicts (ready; a skipped
//! minor; a floor; a member down; an alarm; a removed flag; a learner mid-join), and `upgrade
//! node` rolling a kubeadm-shaped 3.4.23 cluster to 3.5.1 under the kubelet emulation with a
//! writer running, and rolling back when the image cannot be pulled.

#![allow(clippy::unwrap_used)]

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
