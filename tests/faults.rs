//! Network faults on real etcd (3.4 or 3.5, by `E2E_ETCD_VERSION`): a member that answers
//! clients is not thereby part of a working quorum. Each test runs its own members in network
//! namespaces of their own (`harness::netns`, needs root) and checks what health, snapshot save,
//! learner remove and defrag say and do while
//!   (i)   a follower F is cut off from both peers, both ways (it answers clients, with no leader),
//!   (ii)  the leader's frames to F are silently lost (F has no leader; the others keep quorum),
//!   (iii) the leader was just killed (an election is under way),
//!   (iv)  every voter is down and only a learner is alive.
//!
//! Elections are kept short (`--heartbeat-interval 100 --election-timeout 1000` in every member's
//! manifest, which the plugins read).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;

const HEALTH: &str = "kubectl-etcd-health";
const RESTORE: &str = "kubectl-etcd-restore";
const LEARNER: &str = "kubectl-etcd-learner";
const DEFRAG: &str = "kubectl-etcd-defrag";

/// The `--command-timeout` of every plugin run: a member out of quorum costs one (its
/// linearizable read never completes).
const DEADLINE: Duration = Duration::from_secs(3);

/// The `--command-timeout` of health while an election is under way: it must find the new leader
/// inside it, and an election takes up to two election timeouts (randomized) after the leader
/// is missed.
const ELECTION_DEADLINE: Duration = Duration::from_secs(5);

/// What an answering member cut off from its quorum may be said to be, one of these in its
/// `errors`.
const NOT_IN_QUORUM: [&str; 3] = ["no leader", "cut off", "not in quorum"];

/// Three voters in network namespaces of their own: the leader when they started, the follower
/// F the faults are about and the other follower. `c` drops before `net`: etcd before its network.
struct Faulty {
    c: Cluster,
    net: Net,
    leader: usize,
    f: usize,
    other: usize,
}

impl Faulty {
    fn start() -> Faulty {
        let net = Net::new(3);
        let c = Cluster::builder(3).netns(net.placement()).start();
        let leader = c.leader();
        Faulty { c, net, leader, f: (leader + 1) % 3, other: (leader + 2) % 3 }
    }

    fn name(&self, i: usize) -> String {
        self.c.nodes[i].name.clone()
    }

    /// The client URLs of the leader and the other follower.
    fn majority(&self) -> String {
        format!("{},{}", self.c.nodes[self.leader].client_url(), self.c.nodes[self.other].client_url())
    }

    /// Waits until member `i` reports no leader in its own status.
    fn wait_leaderless(&self, i: usize) {
        let url = self.c.nodes[i].client_url();
        wait_for(&format!("{} to lose its leader", self.name(i)), Duration::from_secs(15), || {
            let o = self.c.etcdctl(&url, &["endpoint", "status", "-w", "json"]);
            let v: Value = serde_json::from_slice(&o.stdout).ok()?;
            // etcdctl leaves `leader` out when it is 0.
            let st = v[0]["Status"].as_object()?;
            (st.get("leader").and_then(Value::as_u64).unwrap_or(0) == 0).then_some(())
        });
    }

    /// State (i): F cut off from both peers, both ways, until it knows no leader; then `keys`
    /// writes on the majority side, so F falls behind.
    fn cut_off_f(&self, keys: usize) {
        self.net.cut_off(self.f);
        self.wait_leaderless(self.f);
        self.put_on_majority(keys);
    }

    fn put_on_majority(&self, keys: usize) {
        for k in 0..keys {
            let o = self.c.etcdctl(&self.majority(), &["put", &format!("/registry/after-cut/{k}"), "v"]);
            assert!(o.status.success(), "a write on the majority side failed: {}", stderr(&o));
        }
    }

    /// The majority's current revision (a linearizable read through the leader).
    fn majority_revision(&self) -> i64 {
        let o = self.c.etcdctl(&self.c.nodes[self.leader].client_url(), &["get", "/", "--prefix", "-w", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["header"]["revision"].as_i64().unwrap()
    }

    /// The member list as the majority sees it.
    fn member_list(&self) -> Value {
        let o = self.c.etcdctl(&self.majority(), &["member", "list", "-w", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut v = serde_json::from_slice::<Value>(&o.stdout).unwrap()["members"].clone();
        v.as_array_mut().unwrap().sort_by_key(|m| m["ID"].as_u64());
        v
    }
}

/// Runs `plugin` through node `seed`'s manifest with `args` and a `--command-timeout` of
/// [`DEADLINE`]; stdout as JSON (null if it is not).
fn run(c: &Cluster, plugin: &str, seed: usize, args: &[&str]) -> (Output, Value, Duration) {
    run_within(c, plugin, seed, DEADLINE, args)
}

/// [`run`] with a `--command-timeout` of `deadline`.
fn run_within(c: &Cluster, plugin: &str, seed: usize, deadline: Duration, args: &[&str]) -> (Output, Value, Duration) {
    let manifest = c.nodes[seed].manifest().display().to_string();
    let timeout = format!("{}s", deadline.as_secs());
    let mut a = vec!["--manifest", manifest.as_str(), "--command-timeout", timeout.as_str()];
    a.extend(args);
    timed(plugin, &a)
}

fn timed(plugin: &str, args: &[&str]) -> (Output, Value, Duration) {
    let start = Instant::now();
    let o = run_plugin(plugin, args, &[]);
    let took = start.elapsed();
    let v = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    (o, v, took)
}

/// `health -o json --command-timeout DEADLINE` through node `seed`'s manifest.
fn health(c: &Cluster, seed: usize, deadline: Duration) -> (Output, Value, Duration) {
    let r = run_within(c, HEALTH, seed, deadline, &["-o", "json"]);
    assert!(r.1.is_object(), "health printed no report: {}\n{}", stdout(&r.0), stderr(&r.0));
    r
}

/// `health -o json --command-timeout` of [`DEADLINE`] against `endpoints` only (no manifest).
fn health_at(c: &Cluster, endpoints: &str) -> (Output, Value, Duration) {
    let pki = c.nodes[0].pki_etcd();
    let p = |f: &str| pki.join(f).display().to_string();
    let (ca, cert, key) = (p("ca.crt"), p("healthcheck-client.crt"), p("healthcheck-client.key"));
    let timeout = format!("{}s", DEADLINE.as_secs());
    let args = [
        "--endpoints",
        endpoints,
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--command-timeout",
        &timeout,
        "-o",
        "json",
    ];
    let r = timed(HEALTH, &args);
    assert!(r.1.is_object(), "health printed no report: {}\n{}", stdout(&r.0), stderr(&r.0));
    r
}

fn member<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["name"] == name))
        .unwrap_or_else(|| panic!("{name} missing: {doc:#}"))
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("check {name} missing: {doc:#}"))
}

/// Health of a healthy cluster: exit 0, every voter in quorum. Returns how long it took: the
/// start-up allowance of the runs under a fault (process start, discovery, TLS handshakes).
fn healthy_baseline(c: &Cluster, seed: usize) -> Duration {
    let (o, doc, took) = health(c, seed, DEADLINE);
    assert_eq!(o.status.code(), Some(0), "{doc:#}\n{}", stderr(&o));
    for n in &c.nodes {
        assert_eq!(member(&doc, &n.name)["in_quorum"], true, "{doc:#}");
    }
    took
}

/// A run under a fault must end within one deadline plus the allowance measured on the healthy
/// cluster (doubled, plus half a second: the machine's two cores are shared).
fn assert_within_deadline(took: Duration, deadline: Duration, baseline: Duration, what: &str) {
    let bound = deadline + baseline * 2 + Duration::from_millis(500);
    assert!(took <= bound, "{what} took {took:?}, more than {deadline:?} + allowance (healthy run: {baseline:?})");
}

/// Member `name` answered but is not in quorum, and says why.
fn assert_not_in_quorum(doc: &Value, name: &str) {
    let m = member(doc, name);
    assert_eq!(m["health"], "unhealthy", "{name}: {m:#}");
    assert_eq!(m["in_quorum"], false, "{name}: {m:#}");
    let errors: Vec<&str> = m["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert!(errors.iter().any(|e| NOT_IN_QUORUM.iter().any(|w| e.contains(w))), "{name}'s errors say why: {m:#}");
    // It answers: a partition, not a frozen or overloaded process.
    assert!(!m.to_string().contains("frozen or overloaded"), "{name}: {m:#}");
}

/// The report of a cluster where exactly `ok` (2 of 3 voters) are in quorum and `out` is not.
fn assert_two_of_three(doc: &Value, ok: &[String], out: &str, o: &Output) {
    assert_eq!(o.status.code(), Some(1), "a voter is not in quorum: exit 1\n{doc:#}");
    assert_eq!(doc["healthy"], false, "{doc:#}");
    for n in ok {
        assert_eq!(member(doc, n)["in_quorum"], true, "{n}: {doc:#}");
    }
    assert_eq!(member(doc, out)["in_quorum"], false, "{out}: {doc:#}");
    let q = check(doc, "quorum");
    assert!(q["message"].as_str().unwrap_or_default().starts_with("2/3 voters in quorum"), "{q:#}");
}

#[test]
fn cut_off_follower_answers_but_is_not_in_quorum() {
    let t = Faulty::start();
    let baseline = healthy_baseline(&t.c, t.other);
    t.cut_off_f(3);
    let (o, doc, took) = health(&t.c, t.other, DEADLINE);
    assert_not_in_quorum(&doc, &t.name(t.f));
    assert_two_of_three(&doc, &[t.name(t.leader), t.name(t.other)], &t.name(t.f), &o);
    assert_within_deadline(took, DEADLINE, baseline, "health through the majority");
    // From the cut-off side only: F's URL is all it is given.
    let (o, doc, took) = health_at(&t.c, &t.c.nodes[t.f].client_url());
    assert_not_in_quorum(&doc, &t.name(t.f));
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    assert_within_deadline(took, DEADLINE, baseline, "health through F only");
}

#[test]
fn follower_losing_the_leaders_frames_is_not_in_quorum() {
    let t = Faulty::start();
    let baseline = healthy_baseline(&t.c, t.other);
    // One way: the leader's frames to F vanish; F's frames to the leader arrive.
    t.net.drop_frames(t.leader, t.f);
    t.wait_leaderless(t.f);
    t.put_on_majority(3);
    let (o, doc, took) = health(&t.c, t.other, DEADLINE);
    assert_not_in_quorum(&doc, &t.name(t.f));
    assert_two_of_three(&doc, &[t.name(t.leader), t.name(t.other)], &t.name(t.f), &o);
    assert_within_deadline(took, DEADLINE, baseline, "health");
}

#[test]
fn health_right_after_the_leader_is_killed_waits_out_the_election() {
    let mut t = Faulty::start();
    let baseline = healthy_baseline(&t.c, t.f);
    let old = t.name(t.leader);
    t.c.kill(t.leader);
    let (o, doc, took) = health(&t.c, t.f, ELECTION_DEADLINE);
    let survivors = [t.name(t.f), t.name(t.other)];
    assert_two_of_three(&doc, &survivors, &old, &o);
    // The new leader, found inside the deadline.
    let leader = doc["leader"].as_str().unwrap_or_else(|| panic!("no leader reported: {doc:#}"));
    let named = doc["members"].as_array().unwrap().iter().find(|m| m["id"] == leader).unwrap();
    assert!(survivors.contains(&named["name"].as_str().unwrap().to_string()), "{doc:#}");
    assert_eq!(check(&doc, "leader")["status"], "ok", "{doc:#}");
    let members = check(&doc, "members")["message"].as_str().unwrap_or_default().to_string();
    assert!(!members.contains("0/3 voting members healthy"), "{members}");
    assert_within_deadline(took, ELECTION_DEADLINE, baseline, "health during the election");
}

#[test]
fn only_a_learner_alive_is_reported_with_the_way_back() {
    let mut c = Cluster::start(3);
    c.put("/registry/pods/default/a", "1");
    let l = c.add_learner("learner", true);
    for i in 0..3 {
        c.kill(i);
    }
    let (o, doc, _) = health(&c, l, DEADLINE);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let m = member(&doc, "learner");
    assert_eq!(m["answered"], true, "{m:#}");
    assert_eq!(m["is_learner"], true, "{m:#}");
    assert_eq!(m["id"].as_str().map(str::len), Some(16), "{m:#}");
    assert!(m["raft_applied_index"].as_u64().is_some_and(|i| i > 0), "{m:#}");
    assert!(m["raft_index"].as_u64().is_some_and(|i| i > 0), "{m:#}");
    assert!(m["version"].as_str().is_some_and(|v| v.starts_with(&etcd().version)), "{m:#}");
    // The way back: a one-member cluster from the learner's data dir.
    let data = c.nodes[l].data_dir().display().to_string();
    let says = |ch: &Value| {
        [&ch["message"], &ch["hint"]]
            .iter()
            .filter_map(|s| s.as_str())
            .any(|s| s.contains("restore from-data-dir") && s.contains(&data))
    };
    assert!(doc["checks"].as_array().unwrap().iter().any(says), "no check names restore from-data-dir {data}: {doc:#}");
}

/// `text` has the number `n` as a word of its own.
fn names_number(text: &str, n: i64) -> bool {
    text.split(|c: char| !c.is_ascii_digit()).any(|w| w == n.to_string())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Snapshot files in `dir` (not `.part`).
fn snapshots_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".db"))
        .collect();
    v.sort();
    v
}

#[test]
fn snapshot_save_never_streams_from_a_member_out_of_quorum() {
    let t = Faulty::start();
    // Keys F has too, so that its snapshot's revision is not 0.
    t.put_on_majority(3);
    t.cut_off_f(5);
    let majority = t.majority_revision();
    let dir = tempfile::tempdir().unwrap();
    let f = t.name(t.f);
    let save = |args: &[&str]| {
        let mut a = vec!["snapshot", "save"];
        a.extend(args);
        a.extend(["-o", "json"]);
        run(&t.c, RESTORE, t.other, &a)
    };

    // No --member: a member of the quorum, at least at the majority's revision.
    let plain = dir.path().join("plain.db");
    let (o, doc, _) = save(&[s(&plain)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ne!(doc["member"], f.as_str(), "streamed from the cut-off member: {doc:#}");
    assert!(doc["revision"].as_i64().unwrap() >= majority, "revision {} < the majority's {majority}", doc["revision"]);

    // --member F: refused, naming quorum and --force.
    let named = dir.path().join("named.db");
    let (o, _, _) = save(&[s(&named), "--member", &f]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("quorum") && err.contains("--force"), "{err}");
    assert!(!named.exists());

    // --member F --force: taken, and said to be forced.
    let (o, forced, _) = save(&[s(&named), "--member", &f, "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        format!("{}{}", stdout(&o), stderr(&o)).to_lowercase().contains("forced"),
        "{}\n{}",
        stdout(&o),
        stderr(&o)
    );
    let stale = forced["revision"].as_i64().unwrap();
    assert!(stale < majority, "F is behind: {stale} < {majority}");

    // A snapshot directory holding a newer good snapshot: a forced stale save fails, deletes nothing.
    let d = dir.path().join("backups");
    std::fs::create_dir(&d).unwrap();
    let (o, newer, _) = save(&["--dir", s(&d), "--keep", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let newer_rev = newer["revision"].as_i64().unwrap();
    let newer_file = Path::new(newer["path"].as_str().unwrap()).to_path_buf();
    let before = std::fs::read(&newer_file).unwrap();
    let (o, _, _) = save(&["--dir", s(&d), "--keep", "1", "--member", &f, "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(names_number(&err, stale) && names_number(&err, newer_rev), "names {stale} and {newer_rev}: {err}");
    assert!(
        snapshots_in(&d).contains(&newer_file.file_name().unwrap().to_string_lossy().into_owned()),
        "{:?}",
        snapshots_in(&d)
    );
    assert_eq!(std::fs::read(&newer_file).unwrap(), before, "the newer snapshot is untouched");
}

#[test]
fn learner_remove_is_refused_while_a_voter_is_out_of_quorum() {
    let t = Faulty::start();
    t.cut_off_f(3);
    let before = t.member_list();
    let third = t.name(t.other);
    let f = t.name(t.f);
    for dry in [true, false] {
        let mut args = vec!["remove", third.as_str()];
        if dry {
            args.push("--dry-run");
        }
        let (o, _, _) = run(&t.c, LEARNER, t.other, &args);
        assert_eq!(o.status.code(), Some(1), "dry run {dry}: {}\n{}", stdout(&o), stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(&f) && err.contains("quorum"), "dry run {dry}: {err}");
        assert_eq!(t.member_list(), before, "dry run {dry}: the member list changed");
    }
    t.put_on_majority(1);
}

#[test]
fn defrag_dry_run_is_refused_while_a_voter_is_out_of_quorum() {
    let t = Faulty::start();
    t.cut_off_f(3);
    let (o, _, _) = run(&t.c, DEFRAG, t.other, &["--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}\n{}", stdout(&o), stderr(&o));
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(out.contains(&t.name(t.f)), "names F: {out}");
}
