//! `kubectl etcd defrag` against real etcd clusters (3.4 or 3.5, by `E2E_ETCD_VERSION`): the
//! plan and the order (followers first, the leader last, read from the members' own logs), the
//! free-space rule, learners skipped, the safety stop on a frozen member, and the whole NOSPACE
//! recovery with `--compact --disarm`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use harness::*;
use serde_json::Value;

const DEFRAG: &str = "kubectl-etcd-defrag";

fn defrag(c: &Cluster, extra: &[&str]) -> (std::process::Output, Value) {
    let mut args: Vec<String> = c.manifest_args();
    args.extend(["-o".to_string(), "json".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run_plugin(DEFRAG, &a, &[]);
    let doc = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, doc)
}

/// Each node's DB size, from etcd itself.
fn db_sizes(c: &Cluster) -> Vec<u64> {
    (0..c.nodes.len())
        .map(|i| {
            let o = c.etcdctl(&c.nodes[i].client_url(), &["endpoint", "status", "-w", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
            v[0]["Status"]["dbSize"].as_u64().unwrap()
        })
        .collect()
}

/// Writes and then deletes `n` values of 100 KiB, and compacts: the DB keeps its size, with most
/// of it free.
async fn fragment(c: &Cluster, n: usize) {
    let mut client = c.client(0).await;
    let value = vec![b'f'; 100 * 1024];
    for i in 0..n {
        client.put(format!("/frag/{i:05}"), value.clone(), None).await.unwrap();
    }
    let r = client.delete("/frag/", Some(etcd_client::DeleteOptions::new().with_prefix())).await.unwrap();
    let rev = r.header().unwrap().revision();
    client.compact(rev, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
    // bbolt counts freed pages once later write transactions commit: write a little until every
    // member reports most of its DB free.
    let mut n = 0;
    wait_for("the freed pages to show", Duration::from_secs(30), || {
        n += 1;
        c.put("/frag-tick", &n.to_string());
        let o = c.etcdctl(&c.endpoints(), &["endpoint", "status", "-w", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v.as_array()?
            .iter()
            .all(|s| {
                s["Status"]["dbSizeInUse"].as_u64().unwrap_or(u64::MAX) * 2
                    < s["Status"]["dbSize"].as_u64().unwrap_or(0)
            })
            .then_some(())
    });
}

/// When the member's etcd logged the end of its defragmentation (its own clock, its own log).
fn finished_at(c: &Cluster, i: usize) -> String {
    let log = c.nodes[i].log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("\"msg\":\"finished defragment"))
        .unwrap_or_else(|| panic!("node {i} never logged a defragmentation:\n{log}"));
    let v: Value = serde_json::from_str(line).unwrap();
    v["ts"].as_str().map(String::from).unwrap_or_else(|| v["ts"].to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn fragmented_members_shrink_followers_first_and_the_leader_last() {
    let c = Cluster::builder(3).flag("log-level", "info").start();
    fragment(&c, 150).await;
    let leader = c.leader();
    let before = db_sizes(&c);
    assert!(before.iter().all(|s| *s > 10 << 20), "{before:?}");

    // The plan: every member taken, the leader last; nothing changes.
    let (o, plan) = defrag(&c, &["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows = plan["members"].as_array().unwrap();
    assert_eq!(plan["dry_run"], true);
    assert!(rows.iter().all(|m| m["selected"] == true), "{plan:#}");
    assert_eq!(rows[2]["role"], "leader", "{plan:#}");
    assert_eq!(rows[2]["name"], c.nodes[leader].name);
    assert!(rows[0]["free"].as_u64().unwrap() >= rows[1]["free"].as_u64().unwrap(), "most fragmented first");
    let text = run_plugin(DEFRAG, &[&c.manifest_args()[0], &c.manifest_args()[1], "--dry-run"], &[]);
    assert!(
        stdout(&text).contains("3 members to defragment") && stdout(&text).contains("Dry run"),
        "{}",
        stdout(&text)
    );
    assert_eq!(db_sizes(&c), before, "a dry run changes nothing");

    let (o, doc) = defrag(&c, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(doc["defragmented"].as_array().unwrap().len(), 3, "{doc:#}");
    let after = db_sizes(&c);
    for i in 0..3 {
        assert!(after[i] * 2 < before[i], "node {i} did not shrink: {} -> {}", before[i], after[i]);
    }
    // The members' own logs: the leader finished last.
    let leader_done = finished_at(&c, leader);
    for i in (0..3).filter(|i| *i != leader) {
        assert!(finished_at(&c, i) < leader_done, "node {i} finished after the leader");
    }
    assert!(stderr(&o).contains("defragmenting"), "progress on stderr: {}", stderr(&o));
}

#[test]
fn members_below_the_rule_and_learners_are_skipped() {
    let mut c = Cluster::start(3);
    c.add_learner("learner-1", true);
    let (o, doc) = defrag(&c, &["--min-free", "1MiB"]);
    assert_eq!(o.status.code(), Some(0), "nothing to do is success: {}", stderr(&o));
    assert!(doc["defragmented"].as_array().unwrap().is_empty(), "{doc:#}");
    let rows = doc["plan"]["members"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for m in rows.iter().filter(|m| m["role"] != "learner") {
        assert!(m["reason"].as_str().unwrap().starts_with("skipped: only"), "{m:#}");
    }
    let l = rows.iter().find(|m| m["role"] == "learner").unwrap();
    assert_eq!(l["selected"], false);
    assert!(l["reason"].as_str().unwrap().contains("rpc not supported for learner"), "{l:#}");

    // --all takes every voter; the learner stays out.
    let (o, doc) = defrag(&c, &["--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(doc["defragmented"].as_array().unwrap().len(), 3, "{doc:#}");

    // A rule nobody meets, and a bad one.
    let (o, doc) = defrag(&c, &["--min-free", "100%", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(doc["members"].as_array().unwrap().iter().all(|m| m["selected"] == false));
    let (o, _) = defrag(&c, &["--min-free", "lots"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--min-free"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_frozen_between_two_defrags_stops_the_rest() {
    let mut c = Cluster::start(3);
    fragment(&c, 60).await;
    let leader = c.leader();
    let before = db_sizes(&c);
    let mut args = c.manifest_args();
    args.extend(["--wait-between".into(), "5s".into()]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = spawn_plugin(DEFRAG, &a, &[]);
    // The first member is done (its "a → b in t" line); freeze the leader, which comes last.
    let seen = child.wait_stderr(" → ", Duration::from_secs(120));
    c.freeze(leader);
    let out = child.wait(PLUGIN_DEADLINE);
    c.resume(leader);
    let rest = stderr(&out)[seen.len()..].to_string();
    assert_eq!(out.status.code(), Some(1), "{seen}{rest}");
    assert!(rest.contains("error: defrag stopped: "), "{rest}");
    assert!(
        rest.contains("defragmented node-") && rest.contains("left: "),
        "says what was done and what is left: {rest}"
    );
    assert!(rest.contains(&c.nodes[leader].name), "names the frozen member: {rest}");
    let after = wait_for("the leader to answer again", Duration::from_secs(20), || {
        let o = c.etcdctl(&c.nodes[leader].client_url(), &["endpoint", "status", "-w", "json"]);
        o.status.success().then(|| db_sizes(&c))
    });
    assert_eq!(after[leader], before[leader], "the frozen leader was not touched");
    assert_eq!(
        after.iter().zip(&before).filter(|(a, b)| a < b).count(),
        1,
        "exactly one member done: {before:?} -> {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nospace_is_recovered_by_compact_and_disarm() {
    let c = Cluster::builder(3).quota(2 * 1024 * 1024).start();
    let mut client = c.client(0).await;
    // History, as kube-apiserver writes it: the same few keys over and over.
    c.fill_until_nospace("/registry/leases/l", 3, 400).await;
    let o = run_plugin("kubectl-etcd-health", &[&c.manifest_args()[0], &c.manifest_args()[1]], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("kubectl etcd defrag --compact --disarm"), "health names the command: {}", stdout(&o));

    // Without --compact the history stays: disarming is refused, with the reason. (Defragmenting
    // alone gives back the free pages, which may bring a file just under a high threshold: the
    // threshold here is well under what the uncompacted history holds; the default is 90%.)
    let (o, _) = defrag(&c, &["--all", "--disarm", "--disarm-threshold", "50"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("not disarming") && stderr(&o).contains("--compact"), "{}", stderr(&o));

    let (o, doc) = defrag(&c, &["--compact", "--disarm"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(doc["compacted_to"].as_i64().unwrap() > 1, "{doc:#}");
    assert_eq!(doc["write_check"], true, "{doc:#}");
    assert!(!doc["disarmed"].as_array().unwrap().is_empty(), "{doc:#}");
    let alarms = c.etcdctl(&c.endpoints(), &["alarm", "list"]);
    assert!(stdout(&alarms).trim().is_empty(), "alarms left: {}", stdout(&alarms));
    client.put("/registry/after", "ok", None).await.unwrap();
    let o = run_plugin("kubectl-etcd-health", &[&c.manifest_args()[0], &c.manifest_args()[1]], &[]);
    assert_eq!(o.status.code(), Some(0), "health is green again: {}", stdout(&o));
}
