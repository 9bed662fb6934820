//! `kubectl etcd learner` against real etcd clusters (3.4 or 3.5): add, promote, remove,
//! replace, certs, and every refusal.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const LEARNER: &str = "kubectl-etcd-learner";

fn learner(c: &Cluster, args: &[&str]) -> std::process::Output {
    learner_via(c, 0, args)
}

/// Runs the learner plugin through node `seed`'s manifest.
fn learner_via(c: &Cluster, seed: usize, args: &[&str]) -> std::process::Output {
    let mut a: Vec<String> = vec!["--manifest".into(), c.nodes[seed].manifest().display().to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_plugin(LEARNER, &a, &[])
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

fn voters_and_learners(c: &Cluster) -> (Vec<String>, Vec<String>) {
    let list = c.member_list();
    let mut v = Vec::new();
    let mut l = Vec::new();
    for m in list.as_array().unwrap() {
        let name = m["name"].as_str().unwrap_or("").to_string();
        if m["isLearner"].as_bool().unwrap_or(false) {
            l.push(name);
        } else {
            v.push(name);
        }
    }
    v.sort();
    l.sort();
    (v, l)
}

#[test]
fn add_start_with_printed_flags_then_promote() {
    let mut c = Cluster::start(3);
    let i = c.new_node("node-3", true);
    let peer = c.nodes[i].peer_url();
    let o = learner(&c, &["add", "node-3", "--peer-urls", &peer, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let added = json(&o);
    assert_eq!(added["id"].as_str().unwrap().len(), 16);
    let s = &added["settings"];
    assert_eq!(s["name"], "node-3");
    assert_eq!(s["initial_cluster_state"], "existing");
    assert_eq!(s["initial_advertise_peer_urls"], peer.as_str());
    let initial = s["initial_cluster"].as_str().unwrap();
    for n in &c.nodes {
        assert!(initial.contains(&format!("{}={}", n.name, n.peer_url())), "{initial}");
    }
    // Re-running the same add is idempotent.
    let again = learner(&c, &["add", "node-3", "--peer-urls", &peer, "-o", "json"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(json(&again)["already_existed"], true);
    assert_eq!(json(&again)["id"], added["id"]);

    c.join(i, initial);
    let o = learner(&c, &["promote", "node-3", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = json(&o);
    eprintln!(
        "promote: waited {}, {} attempts, sync-to-promote {}",
        p["waited_ms"], p["attempts"], p["since_in_sync_ms"]
    );
    let (voters, learners) = voters_and_learners(&c);
    assert_eq!(voters, ["node-0", "node-1", "node-2", "node-3"]);
    assert!(learners.is_empty());
    // Promoting a voter is refused clearly.
    let o = learner(&c, &["promote", "node-3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already a voting member"), "{}", stderr(&o));
}

#[test]
fn add_with_promote_carries_the_promotion_in_one_json_document() {
    let mut c = Cluster::start(3);
    let i = c.new_node("node-3", true);
    let peer = c.nodes[i].peer_url();
    let initial: Vec<String> = c.nodes.iter().map(|n| format!("{}={}", n.name, n.peer_url())).collect();
    let mut args = c.manifest_args();
    args.extend(
        ["add", "node-3", "--peer-urls", &peer, "--promote", "--timeout", "60s", "-o", "json"].map(String::from),
    );
    let mut child = spawn_plugin(LEARNER, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    // The learner is added, and the promote waits for it to start.
    child.wait_stderr("has not started yet: waiting for it", Duration::from_secs(60));
    c.join(i, &initial.join(","));
    let out = child.wait(PLUGIN_DEADLINE);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // One document on stdout: the add, with the promotion that followed it.
    let doc = json(&out);
    assert_eq!(doc["kind"], "Added", "{doc}");
    assert_eq!(doc["settings"]["name"], "node-3");
    assert_eq!(doc["promoted"]["member"]["name"], "node-3", "{doc}");
    assert!(doc["promoted"]["attempts"].as_u64().unwrap() >= 1, "{doc}");
    let (voters, learners) = voters_and_learners(&c);
    assert!(voters.contains(&"node-3".to_string()) && learners.is_empty(), "{voters:?} {learners:?}");
}

#[test]
fn promote_waits_for_a_learner_that_has_not_started() {
    let mut c = Cluster::start(3);
    let i = c.new_node("late", true);
    let peer = c.nodes[i].peer_url();
    let o = learner(&c, &["add", "late", "--peer-urls", &peer, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let initial = json(&o)["settings"]["initial_cluster"].as_str().unwrap().to_string();
    let id = json(&o)["id"].as_str().unwrap().to_string();
    // etcd knows no name until the member starts: a name no member has is a usage error at once
    // (a misspelled name must never wait ten minutes for some unstarted learner)...
    for key in ["late", "nosuch"] {
        let o = learner(&c, &["promote", key, "--no-wait"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(&format!("no member named or with ID \"{key}\"")), "{}", stderr(&o));
    }
    // ... by its peer URL, or with no name at all (the cluster's only learner), it is found.
    for args in [&["promote", peer.as_str(), "--no-wait"][..], &["promote", "--no-wait"][..]] {
        let o = learner(&c, args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("has never started"), "{}", stderr(&o));
    }
    // Trying once says it never started, with the start settings.
    let o = learner(&c, &["promote", &id, "--no-wait"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("has never started, so it can never catch up"), "{err}");
    assert!(err.contains("--initial-cluster-state=existing"), "{err}");
    // A waiting promote reports it, and succeeds once the member starts.
    let mut args = c.manifest_args();
    args.extend(["promote".into(), id.clone(), "--timeout".into(), "60s".into()]);
    let mut child = spawn_plugin(LEARNER, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    // It has seen the learner unstarted and says it waits, before the member starts.
    child.wait_stderr("has not started yet: waiting for it", Duration::from_secs(60));
    c.join(i, &initial);
    let out = child.wait(PLUGIN_DEADLINE);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (voters, _) = voters_and_learners(&c);
    assert!(voters.contains(&"late".to_string()));
}

#[test]
fn refusals_name_what_is_wrong() {
    let mut c = Cluster::start(3);
    let first = c.add_learner("first", false);
    let first_peer = c.nodes[first].peer_url();
    // A second learner is refused, naming the first and how to remove it.
    let o = learner(&c, &["add", "second", "--peer-urls", "https://127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("already has a learner") && err.contains(&first_peer) && err.contains("never started"),
        "{err}"
    );
    assert!(err.contains("kubectl etcd learner remove"), "{err}");
    // A peer URL in use, a name in use.
    let o = learner(&c, &["add", "x", "--peer-urls", &c.nodes[1].peer_url()]);
    assert_eq!(o.status.code(), Some(1));
    // (the learner check comes first: remove it, then check the others)
    let list = c.member_list();
    let lid = list.as_array().unwrap().iter().find(|m| m["isLearner"] == true).unwrap()["ID"].as_u64().unwrap();
    let o = learner(&c, &["remove", &format!("{lid:016x}")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = learner(&c, &["add", "x", "--peer-urls", &c.nodes[1].peer_url()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("peer URL {} is already used by member", c.nodes[1].peer_url())),
        "{}",
        stderr(&o)
    );
    let o = learner(&c, &["add", "node-1", "--peer-urls", "https://127.0.0.1:2"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("a member named \"node-1\" already exists"), "{}", stderr(&o));
    // Peer URLs that could never work are usage errors (exit 2, one line) before any change.
    let client = c.nodes[0].client_url();
    for (url, why) in [
        ("http://127.0.0.1:2390", "the cluster's peers use https://, so a http:// member could never join"),
        ("https://127.0.0.1", "no port; expected a URL such as https://10.0.0.4:2380"),
        (client.as_str(), "it is a client URL of member"),
    ] {
        let o = learner(&c, &["add", "y", "--peer-urls", url]);
        assert_eq!(o.status.code(), Some(2), "{url}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{url}: {}", stderr(&o));
    }
    assert!(!c.member_list().as_array().unwrap().iter().any(|m| m["name"] == "y" || m["isLearner"] == true));
    // Unknown member.
    let o = learner(&c, &["promote", "0123456789abcdef"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no member named or with ID \"0123456789abcdef\"; members are: node-"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn add_to_a_degraded_cluster_needs_force() {
    // etcd itself refuses membership changes with a voter down unless it runs with
    // --strict-reconfig-check=false; this cluster does, so --force can be seen to work.
    let mut c = Cluster::builder(3).flag("strict-reconfig-check", "false").start();
    let leader = c.leader();
    let victim = if leader == 2 { 1 } else { 2 };
    c.kill(victim);
    let o = learner(&c, &["add", "extra", "--peer-urls", "https://127.0.0.1:3"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("refusing to add a member to a degraded cluster") && err.contains(&c.nodes[victim].name),
        "{err}"
    );
    assert!(err.contains("connection refused") && err.contains("--force"), "{err}");
    let o = learner(&c, &["add", "extra", "--peer-urls", "https://127.0.0.1:3", "--force", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!json(&o)["forced"].as_array().unwrap().is_empty());
    let (_, learners) = voters_and_learners(&c);
    assert_eq!(learners.len(), 1);
}

#[test]
fn forced_add_is_still_refused_by_etcds_strict_reconfig_check() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let victim = if leader == 2 { 1 } else { 2 };
    c.kill(victim);
    let o = learner(&c, &["add", "extra", "--peer-urls", "https://127.0.0.1:3", "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("etcd refused the member add") && err.contains("--strict-reconfig-check"), "{err}");
    let (_, learners) = voters_and_learners(&c);
    assert!(learners.is_empty());
}

#[test]
fn remove_keeps_quorum_and_spares_the_leader() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    // One follower down: removing the other follower would leave 1 of 2 answering.
    c.kill(others[0]);
    let o = learner_via(&c, leader, &["remove", &c.nodes[others[1]].name.clone()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("need 2 in quorum; 1 is (not in quorum: "), "{}", stderr(&o));
    c.restart(others[0]);
    // The leader is not removed without --move-leader.
    let lname = c.nodes[leader].name.clone();
    let o = learner_via(&c, others[1], &["remove", &lname]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("it is the leader") && stderr(&o).contains("--move-leader"), "{}", stderr(&o));
    let before = c.member_list();
    let o = learner_via(&c, others[1], &["remove", &lname, "--move-leader", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("move leadership from"), "{}", stdout(&o));
    assert_eq!(c.member_list(), before, "--dry-run changes nothing");
    let o = learner_via(&c, others[1], &["remove", &lname, "--move-leader", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json(&o);
    assert!(r["moved_leader_to"].is_string());
    assert!(r["next_steps"][1].as_str().unwrap().contains("move its data dir aside"));
    let (voters, _) = voters_and_learners(&c);
    assert_eq!(voters.len(), 2);
    assert!(!voters.contains(&lname));
}

#[test]
fn dry_run_changes_nothing() {
    let c = Cluster::start(3);
    let before = c.member_list();
    // A follower: removing the leader is refused even in a dry run.
    let follower = c.nodes[(c.leader() + 1) % 3].name.clone();
    for args in [
        vec!["add", "n", "--peer-urls", "https://127.0.0.1:4", "--dry-run"],
        vec!["remove", &follower, "--dry-run"],
        vec!["replace", &follower, "--name", "n", "--peer-urls", "https://127.0.0.1:4", "--dry-run"],
    ] {
        let o = learner(&c, &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Dry run"), "{}", stdout(&o));
        assert_eq!(c.member_list(), before, "{args:?}");
        // Every dry run's plan as JSON too.
        let mut a = args.clone();
        a.extend(["-o", "json"]);
        let o = learner(&c, &a);
        assert_eq!(o.status.code(), Some(0), "{a:?}: {}", stderr(&o));
        assert_eq!(json(&o)["dry_run"], true, "{a:?}");
        assert_eq!(c.member_list(), before, "{a:?}");
    }
    let o = learner(&c, &["add", "n", "--peer-urls", "https://127.0.0.1:4", "--dry-run", "--print-manifest"]);
    let out = stdout(&o);
    assert!(
        out.contains("- --name=n\n")
            && out.contains("- --initial-cluster-state=existing")
            && out.contains("name: etcd-n"),
        "{out}"
    );
    // The new node's own certificates: the command that issues them, with its name and address.
    assert!(out.contains("kubectl etcd learner certs n --ip 127.0.0.1 --out /etc/kubernetes/pki/etcd"), "{out}");
    // One state flag; the new member listens for peers where its peer URL says.
    assert_eq!(out.matches("--initial-cluster-state=").count(), 2, "the flags list and the manifest, once each: {out}");
    let manifest = out.split("# Static pod manifest").nth(1).unwrap();
    assert_eq!(manifest.matches("--initial-cluster-state=").count(), 1, "{manifest}");
    assert!(manifest.contains("- --listen-peer-urls=https://127.0.0.1:4\n"), "{manifest}");
    assert!(manifest.contains("- --initial-advertise-peer-urls=https://127.0.0.1:4\n"), "{manifest}");
    // --write-manifest: a dry run writes nothing; an existing file is refused before the
    // cluster changes (no learner is left behind that nothing would start).
    let target = c.dir.path().join("new-etcd.yaml");
    let o = learner(
        &c,
        &["add", "n", "--peer-urls", "https://127.0.0.1:4", "--dry-run", "--write-manifest", target.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("Would write the new member's static pod manifest to {}", target.display())),
        "{}",
        stdout(&o)
    );
    assert!(!target.exists());
    std::fs::write(&target, "kept").unwrap();
    let o =
        learner(&c, &["add", "n", "--peer-urls", "https://127.0.0.1:4", "--write-manifest", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists: move it aside first"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "kept");
    assert_eq!(c.member_list(), before);
    // Written: whole (a manifest that parses, the new member's flags), mode 0600, nothing
    // else left in its folder (the hidden .part was renamed).
    let fresh = c.dir.path().join("manifests-new");
    std::fs::create_dir(&fresh).unwrap();
    let target = fresh.join("etcd.yaml");
    let o =
        learner(&c, &["add", "n", "--peer-urls", "https://127.0.0.1:4", "--write-manifest", target.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    let m = kubectl_etcd::reach::discovery::Manifest::load(&target).unwrap();
    assert_eq!((m.name(), m.flag("initial-cluster-state")), (Some("n"), Some("existing")));
    let names: Vec<String> =
        std::fs::read_dir(&fresh).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["etcd.yaml"]);
}

/// A writer keeps putting keys during the replace; it may fail only briefly (one election).
#[tokio::test(flavor = "multi_thread")]
async fn replace_end_to_end_without_losing_quorum() {
    let mut c = Cluster::start(3);
    let old = (c.leader() + 1) % 3;
    let old_name = c.nodes[old].name.clone();
    let stay = (0..3).filter(|i| *i != old).collect::<Vec<_>>();
    let i = c.new_node("node-new", true);
    let peer = c.nodes[i].peer_url();

    // Background writer on the members that stay.
    let stop = Arc::new(AtomicBool::new(false));
    let longest = Arc::new(Mutex::new(Duration::ZERO));
    let mut client = c.client(stay[0]).await;
    let (stop2, longest2) = (stop.clone(), longest.clone());
    let writer = tokio::spawn(async move {
        let mut failing_since: Option<Instant> = None;
        let mut n = 0u64;
        while !stop2.load(Ordering::Relaxed) {
            let r = tokio::time::timeout(Duration::from_secs(2), client.put(format!("/w/{n}"), "x", None)).await;
            n += 1;
            match r {
                Ok(Ok(_)) => {
                    if let Some(t) = failing_since.take() {
                        let mut l = longest2.lock().unwrap();
                        *l = (*l).max(t.elapsed());
                    }
                }
                _ => {
                    failing_since.get_or_insert_with(Instant::now);
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A run of failures still going when the writer stops counts too.
        if let Some(t) = failing_since {
            let mut l = longest2.lock().unwrap();
            *l = (*l).max(t.elapsed());
        }
        n
    });

    let mut args = c.manifest_args();
    args[1] = c.nodes[stay[0]].manifest().display().to_string();
    args.extend([
        "replace".into(),
        old_name.clone(),
        "--name".into(),
        "node-new".into(),
        "--peer-urls".into(),
        peer.clone(),
        "--timeout".into(),
        "60s".into(),
    ]);
    let child = spawn_plugin(LEARNER, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    // Start the new member as soon as the learner is in the member list.
    let initial = tokio::task::block_in_place(|| {
        wait_for("the learner to be added", Duration::from_secs(30), || {
            let list = c.member_list();
            list.as_array()
                .unwrap()
                .iter()
                .any(|m| m["peerURLs"][0] == peer.as_str())
                .then(|| c.initial_cluster_for("node-new", &peer))
        })
    });
    tokio::task::block_in_place(|| c.join(i, &initial));
    let out = tokio::task::block_in_place(|| child.wait(PLUGIN_DEADLINE));
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let (voters, learners) = tokio::task::block_in_place(|| voters_and_learners(&c));
    assert!(voters.contains(&"node-new".to_string()), "{voters:?}");
    assert!(!voters.contains(&old_name), "{voters:?}");
    assert!(learners.is_empty());
    let longest = *longest.lock().unwrap();
    eprintln!("{writes} writes; longest failure window {longest:?}");
    assert!(longest < Duration::from_secs(3), "writes failed for {longest:?}: longer than an election");
    c.kill(old);
}

#[test]
fn issued_certificates_start_a_member_that_joins_over_mtls() {
    let mut c = Cluster::start(3);
    let i = c.new_node("node-certs", false);
    let out = c.nodes[i].pki_etcd();
    let o = learner(
        &c,
        &[
            "certs",
            "node-certs",
            "--ip",
            "127.0.0.1",
            "--dns",
            "etcd-3.example",
            "--out",
            out.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let issued = json(&o);
    assert!(issued["sans"].as_array().unwrap().iter().any(|s| s == "localhost"));
    for f in ["server.key", "peer.key"] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    // A CA key that is not the CA certificate's: refused before anything is written.
    let other = tempfile::tempdir().unwrap();
    Pki::foreign(other.path());
    let wrong = other.path().join("ca.key");
    let elsewhere = other.path().join("out");
    let ca = c.nodes[0].pki_etcd().join("ca.crt");
    let o = learner(
        &c,
        &[
            "certs",
            "x",
            "--ip",
            "127.0.0.1",
            "--ca-cert",
            ca.to_str().unwrap(),
            "--ca-key",
            wrong.to_str().unwrap(),
            "--out",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not belong to CA certificate"), "{}", stderr(&o));
    assert!(!elsewhere.join("server.crt").exists() && !elsewhere.join("server.key").exists());
    // Never overwrites.
    let o = learner(&c, &["certs", "node-certs", "--ip", "127.0.0.1", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists: refusing to overwrite"), "{}", stderr(&o));
    // The member starts with them, joins over peer mTLS, and serves clients over mTLS.
    let peer = c.nodes[i].peer_url();
    let o = learner(&c, &["add", "node-certs", "--peer-urls", &peer, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let initial = json(&o)["settings"]["initial_cluster"].as_str().unwrap().to_string();
    c.join(i, &initial);
    let o = learner(&c, &["promote", "node-certs"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let st = c.etcdctl(&c.nodes[i].client_url(), &["endpoint", "health"]);
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
}

#[test]
fn status_shows_learner_progress() {
    let mut c = Cluster::start(3);
    let l = c.add_learner("watcher", true);
    let name = c.nodes[l].name.clone();
    let doc = wait_for("the learner to be promotable", Duration::from_secs(20), || {
        let o = learner(&c, &["status", "-o", "json"]);
        let v = json(&o);
        (v["items"][0]["promotable"] == true).then_some(v)
    });
    // A list result is a versioned document with its rows under items.
    assert_eq!((doc["apiVersion"].as_str(), doc["kind"].as_str()), (Some("kubectl-etcd/v1"), Some("Learners")));
    let row = &doc["items"][0];
    assert_eq!(row["member"]["name"], name.as_str());
    assert_eq!(row["started"], true);
    assert!(row["percent"].as_f64().unwrap() >= 90.0);
    let o = learner(&c, &["status"]);
    let out = stdout(&o);
    assert!(out.starts_with("NAME"), "{out}");
    assert!(out.contains(&name), "{out}");
    let o = learner(&c, &["status", "node-0"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is already a voting member"), "{}", stderr(&o));
}

/// The cluster goes away while `replace` waits for the new member: a transport failure, exit 4,
/// naming the members it could not reach and what was done so far.
#[test]
fn transport_failure_mid_replace_exits_4_and_names_the_members() {
    let mut c = Cluster::start(3);
    let follower = c.nodes[(c.leader() + 1) % 3].name.clone();
    let mut a: Vec<String> = vec!["--manifest".into(), c.nodes[0].manifest().display().to_string()];
    a.extend(
        ["replace", &follower, "--name", "never", "--peer-urls", "https://127.0.0.1:5", "--timeout", "60s"]
            .map(String::from),
    );
    let child = spawn_plugin(
        LEARNER,
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &[("KUBECTL_ETCD_ADMIN_KUBECONFIG", "/nonexistent")],
    );
    wait_for("the new learner to be added", Duration::from_secs(20), || {
        c.member_list().as_array()?.iter().any(|m| m["isLearner"] == true).then_some(())
    });
    for i in 0..3 {
        c.kill(i);
    }
    let out = child.wait(PLUGIN_DEADLINE);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("replace stopped: failed to reach any etcd member"), "{err}");
    assert!(c.nodes.iter().take(3).all(|n| err.contains(&n.client_url())), "every member named: {err}");
    assert!(err.contains("done so far: added learner never"), "{err}");
}

/// A started learner stops answering while `promote` waits for it to catch up: the wait ends
/// well before --timeout, naming the learner and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn promote_notices_a_learner_that_stopped_answering() {
    let mut c = tokio::task::block_in_place(|| Cluster::start(3));
    let l = tokio::task::block_in_place(|| c.add_learner("flaky", true));
    c.freeze(l);
    // The cluster moves on: the frozen learner falls below etcd's 90 % and cannot be promoted.
    let mut client = c.client(0).await;
    for i in 0..200 {
        client.put(format!("/moving-on/{i}"), "x", None).await.unwrap();
    }
    let start = std::time::Instant::now();
    let o = tokio::task::block_in_place(|| {
        learner(&c, &["promote", "flaky", "--timeout", "120s", "--command-timeout", "1s"])
    });
    let took = start.elapsed();
    c.resume(l);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("named flaky") && err.contains("stopped answering"), "{err}");
    assert!(err.contains("kubectl etcd learner remove"), "{err}");
    assert!(took < Duration::from_secs(60), "noticed after {took:?}, not at the 120 s timeout");
}

/// Completion of a member argument asks the cluster the typed flags point at, as the command
/// would: names (described with role and ID) and IDs; through the dispatcher's `member` noun too.
#[test]
fn member_arguments_complete_from_the_cluster() {
    let c = Cluster::start(3);
    let m = c.nodes[1].manifest().display().to_string();
    let o = run_plugin(LEARNER, &["__complete", "promote", "--manifest", &m, ""], &[]);
    let out = stdout(&o);
    let ids: Vec<String> =
        c.member_list().as_array().unwrap().iter().map(|m| format!("{:016x}", m["ID"].as_u64().unwrap())).collect();
    for n in &c.nodes {
        assert!(out.lines().any(|l| l.starts_with(&format!("{}\tvoter ", n.name))), "{}: {out}", n.name);
    }
    for id in &ids {
        assert!(out.lines().any(|l| l.starts_with(&format!("{id}\tvoter "))), "{id}: {out}");
    }
    assert!(out.ends_with("\n:4\n"), "{out}");
    // The typed prefix filters; the flags may come first.
    let o = run_plugin("kubectl-etcd", &["__complete", "--manifest", &m, "member", "remove", "node-2"], &[]);
    let list = c.member_list();
    let node2 = list.as_array().unwrap().iter().find(|m| m["name"] == "node-2").unwrap();
    let id2 = format!("{:016x}", node2["ID"].as_u64().unwrap());
    assert_eq!(stdout(&o), format!("node-2\tvoter {id2}\n:4\n"), "{}", stderr(&o));
    // Out of reach: nothing offered, at once rather than at a long deadline.
    let start = Instant::now();
    let o = run_plugin(LEARNER, &["__complete", "--endpoints", "https://127.0.0.1:1", "promote", ""], &[]);
    assert_eq!(stdout(&o), ":4\n", "{}", stderr(&o));
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
}

/// etcd refuses to promote a learner below 90 % of the leader's log ("can only promote a
/// learner member which is in sync with leader"): promote retries until etcd takes it, draws the
/// learner's progress on a terminal (a pseudo-terminal from script(1) here), and reports its
/// attempts.
#[tokio::test(flavor = "multi_thread")]
async fn promote_retries_while_etcd_says_not_in_sync_and_shows_progress() {
    let mut c = tokio::task::block_in_place(|| Cluster::start(3));
    let l = tokio::task::block_in_place(|| c.add_learner("behind", true));
    c.freeze(l);
    let mut client = c.client(0).await;
    for i in 0..200 {
        client.put(format!("/moving-on/{i}"), "x", None).await.unwrap();
    }
    let mut args = c.manifest_args();
    args.extend(["promote", "behind", "--timeout", "60s", "--command-timeout", "1s", "-o", "json"].map(String::from));
    let pc = plugin_command(LEARNER, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let quote = |a: &std::ffi::OsStr| format!("'{}'", a.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(pc.get_program()).chain(pc.get_args()).map(quote).collect();
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &line.join(" "), "/dev/null"]);
    for (k, v) in pc.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let child = Running::spawn(cmd, "learner promote on a terminal");
    // Two samples of the frozen learner, so at least one promote etcd refused between them;
    // then it runs again and catches up.
    wait_for("two progress draws", Duration::from_secs(8), || {
        (child.stdout_now().matches("eta ").count() >= 2).then_some(())
    });
    c.resume(l);
    let out = child.wait(PLUGIN_DEADLINE);
    // indicatif clears the line before each draw (`\r`, `ESC[2K`).
    let text = strip_ansi(&stdout(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    let bar =
        |t: &str| t.split(['\r', '\n']).filter(|d| d.starts_with('[') && d.contains("%  ")).map(String::from).collect();
    let draws: Vec<String> = bar(&text);
    let percent = |d: &str| d.split(']').nth(1).unwrap().trim().split('%').next().unwrap().parse::<f64>().unwrap();
    assert!(draws.iter().any(|d| percent(d) < 90.0), "a draw below etcd's 90 %: {draws:?}");
    let json = text[text.find('{').unwrap_or_else(|| panic!("no JSON: {text}"))..].replace("\r\n", "\n");
    let doc: Value = serde_json::Deserializer::from_str(&json).into_iter().next().unwrap().unwrap();
    assert!(doc["attempts"].as_u64().unwrap() >= 2, "retried after etcd's refusal: {doc:#}");
    let (voters, _) = voters_and_learners(&c);
    assert!(voters.contains(&"behind".to_string()), "{voters:?}");
}

/// Issue 25: the steps after `learner remove` name the removed member's real data dir when the
/// plugin runs with that member's own manifest (on its node), never kubeadm's `/var/lib/etcd`,
/// which this member does not use; from another node's manifest the dir is not known, and the
/// step says how to find it rather than guess.
#[test]
fn remove_names_the_removed_members_real_data_dir() {
    let c = Cluster::start(3);
    let f = (c.leader() + 1) % 3;
    let other = (f + 1) % 3;
    let name = c.nodes[f].name.clone();
    let data = c.nodes[f].data_dir().display().to_string();
    let aside = format!("mv {data} {data}.removed-$(date +%Y%m%d%H%M%S)");
    // From another node: a placeholder and where to look, no guessed path.
    let o = learner_via(&c, other, &["remove", &name, "--dry-run", "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let step = json(&o)["next_steps"][1].as_str().unwrap().to_string();
    assert!(step.contains("mv DATA_DIR DATA_DIR.removed-") && step.contains("its etcd's --data-dir"), "{step}");
    assert!(!step.contains(&data), "{step}");
    // On its own node: its data dir, by its manifest's --data-dir.
    let o = learner_via(&c, f, &["remove", &name, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = json(&o);
    let step = r["next_steps"][1].as_str().unwrap();
    assert!(step.ends_with(&aside), "{step}");
    assert!(!r["next_steps"].to_string().contains("/var/lib/etcd"), "{r:#}");
    let (voters, _) = voters_and_learners(&c);
    assert!(!voters.contains(&name), "{voters:?}");
}
