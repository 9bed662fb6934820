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
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // One follower gives most of its free space back now (etcd's own defrag, that member
    // alone); a second, smaller fragmentation leaves it a few MiB free, the others ~15 MiB.
    let (less, more) = (followers[0], followers[1]);
    let o = c.etcdctl(&c.nodes[less].client_url(), &["defrag"]);
    assert!(o.status.success(), "{}", stderr(&o));
    fragment(&c, 30).await;
    let before = db_sizes(&c);
    assert!(before[more] > 10 << 20 && before[leader] > 10 << 20, "{before:?}");

    // The plan: every member taken, the most fragmented follower first, the leader last;
    // nothing changes.
    let (o, plan) = defrag(&c, &["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let rows = plan["members"].as_array().unwrap();
    assert_eq!(plan["dry_run"], true);
    assert!(rows.iter().all(|m| m["selected"] == true), "{plan:#}");
    let free = |r: &Value| r["free"].as_u64().unwrap();
    assert!(free(&rows[0]) > 2 * free(&rows[1]), "clearly different fragmentation: {plan:#}");
    assert_eq!(
        [&rows[0]["name"], &rows[1]["name"], &rows[2]["name"]].map(|n| n.as_str().unwrap()),
        [&c.nodes[more].name, &c.nodes[less].name, &c.nodes[leader].name].map(String::as_str),
        "most fragmented follower first, the leader last: {plan:#}"
    );
    assert_eq!(rows[2]["role"], "leader", "{plan:#}");
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

/// `--compact --keep-revisions N` compacts to N revisions before the current one: etcd still
/// serves a read at that revision and refuses one at the revision before it.
#[tokio::test(flavor = "multi_thread")]
async fn compact_keeps_the_revisions_asked_for() {
    let c = Cluster::start(3);
    for i in 0..20 {
        c.put("/kept", &i.to_string());
    }
    let mut client = c.client(0).await;
    let rev = client.get("/kept", None).await.unwrap().header().unwrap().revision();
    let (o, plan) = defrag(&c, &["--compact", "--keep-revisions", "5", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(plan["compact_to"], rev - 5, "{plan:#}");
    let (o, doc) = defrag(&c, &["--compact", "--keep-revisions", "5"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(doc["compacted_to"], rev - 5, "{doc:#}");
    let at = |r: i64| etcd_client::GetOptions::new().with_revision(r);
    let kept = client.get("/kept", Some(at(rev - 5))).await.unwrap();
    assert_eq!(kept.kvs()[0].value_str().unwrap(), "14", "the value at revision {}", rev - 5);
    let gone = client.get("/kept", Some(at(rev - 6))).await.unwrap_err().to_string();
    assert!(gone.contains("compacted"), "revision {} is compacted: {gone}", rev - 6);
}

/// `--move-leader`: before the leader's turn leadership goes to a follower, so the member that
/// led is defragmented as a follower, last; the JSON names the new leader.
#[test]
fn move_leader_hands_leadership_over_before_the_leaders_turn() {
    let c = Cluster::start(3);
    let leader = c.leader();
    let (o, doc) = defrag(&c, &["--all", "--move-leader"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let done = doc["defragmented"].as_array().unwrap();
    assert_eq!(done.len(), 3, "{doc:#}");
    assert_eq!(done[2]["name"], c.nodes[leader].name, "the leader last: {doc:#}");
    assert!(done[..2].iter().all(|d| d.get("moved_leader_to").is_none()), "{doc:#}");
    let now = c.leader();
    assert_ne!(now, leader, "leadership moved: {}", stderr(&o));
    let id_of = |name: &str| {
        doc["plan"]["members"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap()["id"].clone()
    };
    assert_eq!(done[2]["moved_leader_to"], id_of(&c.nodes[now].name), "{doc:#}");
    let line = format!("moved leadership from {} to {}", c.nodes[leader].name, c.nodes[now].name);
    assert!(stderr(&o).contains(&line), "{}", stderr(&o));
}

/// `--disarm` without `--disarm-threshold`: every DB must be below 90 % of the quota. With the
/// quota given so that the largest DB is at 93 % of it the disarm is refused, naming 90 %; at
/// 87 % it goes ahead.
#[tokio::test(flavor = "multi_thread")]
async fn disarm_threshold_defaults_to_ninety_percent() {
    let c = Cluster::start(3);
    // 2 MiB that stays: a page more or less after a defrag is a fraction of a percent.
    let mut client = c.client(0).await;
    for i in 0..20 {
        client.put(format!("/stays/{i:02}"), vec![b's'; 100 * 1024], None).await.unwrap();
    }
    let (o, _) = defrag(&c, &["--all"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let size = *db_sizes(&c).iter().max().unwrap();
    assert!(size > 2 << 20, "{size}");
    for (percent, refused) in [(93.0, true), (87.0, false)] {
        let quota = ((size as f64) * 100.0 / percent) as u64;
        let (o, doc) = defrag(&c, &["--all", "--disarm", "--quota-backend-bytes", &quota.to_string()]);
        let err = stderr(&o);
        if refused {
            assert_eq!(o.status.code(), Some(1), "at {percent}%: {err}");
            assert!(err.contains("not disarming") && err.contains("is not below 90% of the quota"), "{err}");
        } else {
            assert_eq!(o.status.code(), Some(0), "at {percent}%: {err}");
            assert_eq!(doc["write_check"], true, "{doc:#}");
        }
    }
}
