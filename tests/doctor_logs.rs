//! `kubectl etcd doctor logs` on logs real etcd wrote while failing: each failure of the
//! catalogue produced by real etcd (3.4 or 3.5, by `E2E_ETCD_VERSION`) in its native format —
//! 3.4's capnslog text lines, 3.5's zap JSON — and, through the kubelet emulation, as CRI pod
//! logs (zap JSON on both versions, one file per restart, a rotated part gzipped). No log line
//! here is written by hand.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use harness::*;
use serde_json::Value;

const DOCTOR: &str = "kubectl-etcd-doctor";

/// The flags that make etcd log in its version's own format: 3.4's capnslog text (its default
/// logger), 3.5's zap JSON (its only one). The harness asks for zap otherwise.
fn native_format() -> Vec<(String, String)> {
    if etcd().version == "3.4" {
        vec![("logger".into(), "capnslog".into())]
    } else {
        Vec::new()
    }
}

/// The format key `doctor logs` must count lines under for the native format.
fn native_key() -> &'static str {
    if etcd().version == "3.4" {
        "text"
    } else {
        "zap"
    }
}

fn builder(n: usize) -> Builder {
    native_format().iter().fold(Cluster::builder(n), |b, (k, v)| b.flag(k, v))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `doctor logs ARGS -o json`: the process and its document.
fn doctor_logs(args: &[&str]) -> (Output, Value) {
    let mut a = vec!["logs"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let o = run_plugin(DOCTOR, &a, &[]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("no JSON: {}{}", stdout(&o), stderr(&o)));
    (o, v)
}

/// The finding `id` of a report, or a failure that prints the report and the log.
fn finding<'a>(doc: &'a Value, id: &str, log: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id} finding in {doc:#}\n--- the log:\n{log}"))
}

/// Reads `log` with `doctor logs --log-file` and checks that it names `id` with a next step
/// holding `next`, exits 1, and read the version's native format; then the same lines framed
/// as a CRI pod log and as Docker's json-file log, which must give the same finding and exit
/// code.
fn assert_known(log: &Path, id: &str, next: &str) -> Value {
    assert_known_exit(log, id, next, 1)
}

/// [`assert_known`] with the exit code expected (0 when the log holds only warnings).
fn assert_known_exit(log: &Path, id: &str, next: &str, code: i32) -> Value {
    // A still-running etcd may be writing it: read one copy, raw and CRI-framed.
    let text = std::fs::read_to_string(log).unwrap();
    let copy = log.with_extension("copy.log");
    std::fs::write(&copy, &text).unwrap();
    let log = copy.as_path();
    let (o, d) = doctor_logs(&["--log-file", s(log)]);
    let f = finding(&d, id, &text);
    assert!(f["next"].as_str().unwrap().contains(next), "{f:#}");
    assert!(f["count"].as_u64().unwrap() >= 1 && !f["evidence"].as_str().unwrap().is_empty(), "{f:#}");
    assert!(f["source"].as_array().is_some_and(|s| !s.is_empty()), "{f:#}");
    assert!(d["formats"][native_key()].as_u64().unwrap_or(0) > 0, "not read as {}: {d:#}", native_key());
    assert_eq!(o.status.code(), Some(code), "{d:#}\n{}", stderr(&o));
    // The table names it too, in 120 columns.
    let table = run_plugin(DOCTOR, &["logs", "--log-file", s(log)], &[]);
    let out = stdout(&table);
    let what = f["what"].as_str().unwrap();
    assert!(out.contains(&what[..what.len().min(30)]), "{out}");
    let first_table_line = out.lines().next().unwrap();
    assert!(first_table_line.starts_with("SEVERITY   COUNT   FIRST"), "{out}");
    for l in out.lines().take_while(|l| !l.is_empty()) {
        assert!(l.chars().count() <= 120, "over 120 columns: {l}");
    }
    // The same lines as kubelet keeps them in a pod log (CRI frames): the same finding, the
    // same count, the same exit code.
    let cri = harness::kubelet::cri_copy(log);
    let (o, c) = doctor_logs(&["--log-file", s(&cri)]);
    let g = finding(&c, id, &text);
    assert_eq!((&g["next"], &g["count"], &g["evidence"]), (&f["next"], &f["count"], &f["evidence"]), "{c:#}");
    assert!(c["formats"][native_key()].as_u64().unwrap_or(0) > 0, "CRI not read as {}: {c:#}", native_key());
    assert_eq!(o.status.code(), Some(code), "{c:#}\n{}", stderr(&o));
    // And as Docker's json-file driver keeps them (RKE1's etcd container): the same again.
    let docker = harness::kubelet::docker_copy(log);
    let (o, k) = doctor_logs(&["--log-file", s(&docker)]);
    let g = finding(&k, id, &text);
    assert_eq!((&g["next"], &g["count"], &g["evidence"]), (&f["next"], &f["count"], &f["evidence"]), "{k:#}");
    assert!(k["formats"][native_key()].as_u64().unwrap_or(0) > 0, "Docker not read as {}: {k:#}", native_key());
    assert_eq!(k["formats"].get("raw"), d["formats"].get("raw"), "{k:#}");
    assert_eq!(o.status.code(), Some(code), "{k:#}\n{}", stderr(&o));
    d
}

/// Polls `doctor logs --log-file LOG` until it names `id` (the log is being written by a
/// running etcd); returns the report.
fn wait_finding(log: &Path, id: &str, timeout: Duration) -> Value {
    wait_for(&format!("{id} in {}", log.display()), timeout, || {
        let (_, d) = doctor_logs(&["--log-file", s(log)]);
        d["findings"].as_array().unwrap().iter().any(|f| f["id"] == id).then_some(d)
    })
}

fn log_of(c: &Cluster, i: usize) -> PathBuf {
    c.nodes[i].root.join("etcd.log")
}

/// `etcdctl member add NAME --peer-urls=URL`, retried while etcd calls the cluster unhealthy.
fn member_add(c: &Cluster, name: &str, peer: &str) {
    wait_for("etcd to accept member add", Duration::from_secs(20), || {
        let o = c.etcdctl(&c.endpoints(), &["member", "add", name, &format!("--peer-urls={peer}")]);
        assert!(o.status.success() || stderr(&o).contains("unhealthy cluster"), "{}", stderr(&o));
        o.status.success().then_some(())
    });
}

/// A joiner whose --initial-cluster lists a member the cluster does not have: a cluster of
/// one, node-1 added, node-1 started with node-9 in its --initial-cluster as well.
fn wrong_joiner(c: &mut Cluster) -> usize {
    let i = c.new_node("node-1", true);
    let peer = c.nodes[i].peer_url();
    member_add(c, "node-1", &peer);
    let wrong = format!("node-0={},node-1={peer},node-9=https://127.0.0.1:{}", c.nodes[0].peer_url(), free_port());
    c.plan_joiner(i, &wrong, &native_format());
    i
}

/// A joiner with a wrong --initial-cluster: etcd exits at once; the doctor names the flag and
/// tells how the container ended.
#[test]
fn a_joiner_with_a_wrong_initial_cluster() {
    let mut c = builder(1).start();
    let i = wrong_joiner(&mut c);
    c.spawn_node(i);
    let mut child = c.nodes[i].child.take().unwrap();
    wait_for("the joiner to exit", Duration::from_secs(30), || child.try_wait().unwrap());
    let d = assert_known(&log_of(&c, i), "initial-cluster-mismatch", "--initial-cluster");
    let f = finding(&d, "initial-cluster-mismatch", "");
    assert_eq!(f["severity"], "critical");
    assert!(f["evidence"].as_str().unwrap().contains("member count is unequal"), "{f:#}");
    let last = d["containers"].as_array().unwrap().last().unwrap();
    assert!(last["ended"].as_str().unwrap().starts_with("crashed: --initial-cluster does not match"), "{d:#}");
}

/// The same joiner under the kubelet emulation: it crash-loops, one CRI file per restart. The
/// doctor reads every restart, or only the previous one (rotated parts: the test below).
#[test]
fn a_crash_looping_joiner_in_pod_logs() {
    let mut c = Cluster::builder(1).start();
    let i = wrong_joiner(&mut c);
    let starts = c.kubelet(i);
    let dir = pod_log_dir(&c.nodes[i].root, "node-1");
    // Three starts, the last one ended (kubelet waits out its back-off, 1 s by now): no
    // container is cut short when the loop is stopped.
    let status = c.container_status(i);
    wait_for("three starts of the joiner, the last one ended", Duration::from_secs(30), || {
        (starts.load(std::sync::atomic::Ordering::SeqCst) >= 3 && status.lock().unwrap().running.is_none())
            .then_some(())
    });
    // Stop the crash loop (the manifest moved away, as an operator does), and wait until every
    // container it started has ended on its fatal line, so that the files stay put.
    std::fs::rename(c.nodes[i].manifest(), c.nodes[i].root.join("etcd.yaml.off")).unwrap();
    let mut seen = 0;
    wait_for("every container to end on its fatal line", Duration::from_secs(30), || {
        let n = starts.load(std::sync::atomic::Ordering::SeqCst);
        let ended = (0..n).all(|k| {
            std::fs::read_to_string(dir.join(format!("{k}.log"))).is_ok_and(|t| t.contains(r#""level":"fatal""#))
        });
        let stable = n == seen;
        seen = n;
        (ended && stable).then_some(())
    });
    let root = c.nodes[i].root.join("var/log/pods");
    let files: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let crashed = files.iter().filter(|f| f.ends_with(".log") || f.ends_with(".gz")).count();

    let (o, d) = doctor_logs(&["node-1", "--pod-log-dir", s(&root)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = finding(&d, "initial-cluster-mismatch", &format!("{files:?}"));
    assert!(f["count"].as_u64().unwrap() >= crashed as u64, "{crashed} crashed containers: {f:#}");
    assert_eq!(f["members"], serde_json::json!(["node-1"]), "{f:#}");
    assert!(d["formats"]["zap"].as_u64().unwrap() > 0, "{d:#}");
    let containers = d["containers"].as_array().unwrap();
    assert_eq!(containers.len(), crashed, "{d:#}");
    for k in containers {
        assert!(k["ended"].as_str().unwrap().starts_with("crashed: --initial-cluster does not match"), "{d:#}");
    }

    // --previous: the container before the last one only.
    let (_, prev) = doctor_logs(&["node-1", "--pod-log-dir", s(&root), "--previous"]);
    let pc = prev["containers"].as_array().unwrap();
    assert_eq!(pc.len(), 1, "{prev:#}");
    assert!(pc[0]["source"].as_str().unwrap().ends_with(&format!("{}.log", crashed - 2)), "{prev:#}");

    // The checkup of the node's member (no subcommand): its manifest names it and its data
    // dir; the log's cause leads the verdict, the data dir (never started: no WAL) follows.
    let moved = c.nodes[i].root.join("etcd.yaml.off");
    let o = run_plugin(DOCTOR, &["--manifest", s(&moved), "--pod-log-dir", s(&root), "-o", "json"], &[]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(o.status.code(), Some(1), "{v:#}\n{}", stderr(&o));
    assert_eq!(v["member"], "node-1", "{v:#}");
    assert!(v["verdict"].as_str().unwrap().starts_with("its log: --initial-cluster does not match"), "{v:#}");
    assert!(v["next"][0].as_str().unwrap().contains("--initial-cluster"), "{v:#}");
    assert_eq!(v["data_dir"]["verdict"], "never_started", "{v:#}");

    // Another member's name finds nothing: exit 3, saying where it looked.
    let o = run_plugin(DOCTOR, &["logs", "node-7", "--pod-log-dir", s(&root)], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("kube-system_etcd-node-7_*/etcd/*.log"), "{}", stderr(&o));
}

/// A member removed while it runs: it learns it and stops; its log says so.
#[test]
fn a_member_removed_while_running() {
    let mut c = builder(3).start();
    let list = c.member_list();
    let id = list.as_array().unwrap().iter().find(|m| m["name"] == "node-2").unwrap()["ID"].as_u64().unwrap();
    wait_for("etcd to accept member remove", Duration::from_secs(20), || {
        let o = c.etcdctl(&c.nodes[0].client_url(), &["member", "remove", &format!("{id:x}")]);
        assert!(o.status.success() || stderr(&o).contains("unhealthy cluster"), "{}", stderr(&o));
        o.status.success().then_some(())
    });
    let mut gone = c.nodes[2].child.take().unwrap();
    wait_for("the removed member to stop", Duration::from_secs(30), || gone.try_wait().unwrap());
    let d = assert_known(&log_of(&c, 2), "member-removed", "kubectl etcd learner add");
    assert_eq!(finding(&d, "member-removed", "")["severity"], "critical");
    // It stopped on its own, with no fatal line: the container says why.
    let ended = d["containers"].as_array().unwrap().last().unwrap()["ended"].as_str().unwrap().to_string();
    assert!(ended.starts_with("stopped on its own: this member was removed"), "{d:#}");

    // Started again on its old data dir, as a kubelet would: the others refuse its streams.
    c.spawn_unchecked(2);
    let d = wait_for("a member to refuse the removed one", Duration::from_secs(30), || {
        (0..2).find_map(|i| {
            let (_, d) = doctor_logs(&["--log-file", s(&log_of(&c, i))]);
            d["findings"].as_array().unwrap().iter().any(|f| f["id"] == "removed-peer-running").then_some(d)
        })
    });
    assert!(evidence(&d, "removed-peer-running").contains("removed"), "{d:#}");
    assert!(finding(&d, "removed-peer-running", "")["next"].as_str().unwrap().contains("restore doctor"), "{d:#}");
}

/// A tiny quota filled: NOSPACE, and the one command that recovers.
#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_quota_filled() {
    // At info level, kubeadm's default: 3.4 logs the disarm at info.
    let c = native_format()
        .iter()
        .fold(Cluster::builder(1).quota(4 << 20).flag("log-level", "info"), |b, (k, v)| b.flag(k, v))
        .start();
    c.fill_until_nospace("/fill/", 1000, 2000).await;
    let d = wait_finding(&log_of(&c, 0), "nospace", Duration::from_secs(10));
    let f = finding(&d, "nospace", "");
    assert!(f["evidence"].as_str().unwrap().contains("NOSPACE"), "{f:#}");
    assert!(f.get("cleared").is_none(), "{f:#}");
    assert_known(&log_of(&c, 0), "nospace", "kubectl etcd defrag --compact --disarm");

    // The recovery it names, run for real after deleting what filled it: etcd logs the disarm, and the same log now tells
    // NOSPACE as history, exit 0 (nothing else in it is an error), not as the cluster's state.
    // The keys are live data, not history: deleted first (etcd allows deletes under NOSPACE).
    let o = c.etcdctl(&c.endpoints(), &["del", "--prefix", "/fill/"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut args = c.manifest_args();
    // One member: its defragmentation stops the cluster while it runs, as --force accepts.
    args.extend(["--compact".into(), "--disarm".into(), "--force".into()]);
    let o = run_plugin("kubectl-etcd-defrag", &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let d = wait_for("the disarm in the log", Duration::from_secs(10), || {
        let (o, d) = doctor_logs(&["--log-file", s(&log_of(&c, 0))]);
        finding(&d, "nospace", "").get("cleared").is_some().then_some((o, d))
    });
    let (o, d) = d;
    let f = finding(&d, "nospace", "");
    let cleared = &f["cleared"];
    assert!(cleared["evidence"].as_str().unwrap().contains("alarm disarmed"), "{f:#}");
    assert!(cleared["at"].as_str().unwrap() >= f["last"].as_str().unwrap(), "{f:#}");
    assert_eq!(o.status.code(), Some(0), "{d:#}");
    let table = stdout(&run_plugin(DOCTOR, &["logs", "--log-file", s(&log_of(&c, 0))], &[]));
    let row = table.lines().find(|l| l.contains("NOSPACE")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.starts_with("CLEARED") && row.contains("cleared "), "{table}");
    assert!(table.contains("cleared at ") && table.contains("cleared by: "), "{table}");
}

/// A client whose certificate another CA signed (it trusts the server): etcd rejects the
/// handshake and logs it (at info level, kubeadm's default, on 3.4).
#[test]
fn a_client_with_another_ca() {
    let c = builder(1).flag("log-level", "info").start();
    let foreign_dir = c.dir.path().join("foreign");
    let foreign = Pki::foreign(&foreign_dir);
    foreign.write_node(&foreign_dir, "intruder", &["127.0.0.1"], &["localhost"]);
    etcdctl_with(
        &c,
        &foreign_dir.join("etcd/healthcheck-client.crt"),
        &foreign_dir.join("etcd/healthcheck-client.key"),
    );
    wait_finding(&log_of(&c, 0), "tls-unknown-authority", Duration::from_secs(15));
    assert_known(&log_of(&c, 0), "tls-unknown-authority", "kubectl etcd learner certs");
}

/// A stopped peer: the leader cannot reach it; started again, the same log tells that as
/// history.
#[test]
fn a_stopped_peer() {
    // At info level, kubeadm's default: etcd logs a peer's return ("became active") at info.
    let mut c = builder(3).flag("log-level", "info").start();
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    c.kill(follower);
    let d = wait_finding(&log_of(&c, leader), "peer-unreachable", Duration::from_secs(30));
    // The raft stream to it went first.
    let lost = wait_finding(&log_of(&c, leader), "peer-stream-lost", Duration::from_secs(30));
    assert!(evidence(&lost, "peer-stream-lost").contains("streaming connection"), "{lost:#}");
    let f = finding(&d, "peer-unreachable", "");
    assert!(f["next"].as_str().unwrap().contains("kubectl etcd health"), "{f:#}");
    assert_known(&log_of(&c, leader), "peer-unreachable", "kubectl etcd health");
    assert!(finding(&d, "peer-unreachable", "").get("cleared").is_none(), "{d:#}");

    // Back: the leader logs it active again, and its log now reads the outage as over.
    c.restart(follower);
    let (o, d) = wait_for("the peer's return in the leader's log", Duration::from_secs(30), || {
        let (o, d) = doctor_logs(&["--log-file", s(&log_of(&c, leader))]);
        finding(&d, "peer-unreachable", "").get("cleared").is_some().then_some((o, d))
    });
    let f = finding(&d, "peer-unreachable", "");
    assert!(f["cleared"]["evidence"].as_str().unwrap().contains("became active"), "{f:#}");
    let current_errors: Vec<&Value> = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("cleared").is_none() && ["critical", "error"].contains(&f["severity"].as_str().unwrap()))
        .collect();
    assert_eq!(o.status.code(), Some(if current_errors.is_empty() { 0 } else { 1 }), "{d:#}");
}

/// A WAL record damaged in the middle of its segment: etcd refuses to start on it.
#[test]
fn a_damaged_wal() {
    let mut c = builder(1).start();
    for k in 0..30 {
        c.put(&format!("/k/{k:02}"), "value");
    }
    c.stop(0);
    let wal = c.nodes[0].data_dir().join("member/wal");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&wal).unwrap().map(|e| e.unwrap().path()).collect();
    segs.retain(|p| p.extension().is_some_and(|e| e == "wal"));
    segs.sort();
    let seg = segs.pop().unwrap();
    let frames = wal_frames(&seg);
    let (at, end) = frames[frames.len() / 2];
    let mut bytes = std::fs::read(&seg).unwrap();
    // One byte of the record's data (after its 8-byte length): its CRC no longer matches.
    let k = at + 8 + (end - at - 8) / 2;
    bytes[k] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    c.spawn_node(0);
    let mut child = c.nodes[0].child.take().unwrap();
    wait_for("etcd to refuse the damaged WAL", Duration::from_secs(30), || child.try_wait().unwrap());
    let d = assert_known(&log_of(&c, 0), "wal-damaged", "kubectl etcd restore doctor");
    let f = finding(&d, "wal-damaged", "");
    assert!(f["evidence"].as_str().unwrap().contains("crc mismatch"), "{f:#}");
}

/// A member that starts, takes writes and stops cleanly: nothing known, exit 0 — from the
/// file, from stdin, and through the dispatcher (`kubectl etcd doctor logs`).
#[test]
fn a_clean_log_exits_0() {
    let mut c = builder(1).start();
    for k in 0..10 {
        c.put(&format!("/k/{k}"), "v");
    }
    c.stop(0);
    let log = log_of(&c, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    let (o, d) = doctor_logs(&["--log-file", s(&log)]);
    assert_eq!(o.status.code(), Some(0), "{d:#}\n--- the log:\n{text}");
    assert_eq!(d["findings"], serde_json::json!([]), "{d:#}\n--- the log:\n{text}");
    assert_eq!(d["kind"], "LogReport");

    // One start, one container (etcd 3.4's plain `[WARNING] Deprecated …` line before its
    // first line is no container of its own).
    let containers = d["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{d:#}");

    let o = doctor_stdin(text.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lines"], d["lines"], "{v:#}");
    // The same log gzipped on stdin is read as the log.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let o = doctor_stdin(&gz.finish().unwrap());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!((o.status.code(), &v["lines"]), (Some(0), &d["lines"]), "{v:#}");
    // What journalctl prints where there is no etcd unit: no etcd log, exit 3.
    let o = doctor_stdin(b"-- No entries --\n");
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("none of them etcd's"), "{}", stderr(&o));

    let o = plugin_command("kubectl-etcd", &["doctor", "logs", "--log-file", s(&log)], &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("No known failure in "), "{}", stdout(&o));
    // `restore doctor` still answers.
    let o = run_plugin("kubectl-etcd-restore", &["doctor", "--help"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// `doctor logs - -o json` with `input` on stdin.
fn doctor_stdin(input: &[u8]) -> Output {
    let mut child = plugin_command(DOCTOR, &["logs", "-", "-o", "json"], &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
    child.wait_with_output().unwrap()
}

/// No pod log anywhere: exit 3, saying where it looked.
#[test]
fn no_log_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_plugin(DOCTOR, &["logs", "--pod-log-dir", s(dir.path())], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let want = format!("{}/kube-system_etcd-*_*/etcd/*.log", dir.path().display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}

/// Writes a kubeconfig for `kube` into the cluster's dir.
fn fake_api(c: &Cluster) -> (harness::fakekube::FakeKube, PathBuf) {
    let kube = harness::fakekube::FakeKube::start(harness::fakekube::workstation_pods(c), vec![]);
    for (i, n) in c.nodes.iter().enumerate() {
        if c.kubelets.iter().any(|k| k.node == n.name) {
            kube.serve_logs(&format!("kube-system/etcd-{}", n.name), c.container_status(i));
        }
    }
    let kc = kube.kubeconfig(c.dir.path());
    (kube, kc)
}

/// From a workstation (no pod log on this machine): each etcd pod's log through the API's
/// `pods/log`, as kubelet serves it from the kubelet emulation's CRI files: a crash-looping
/// joiner's previous container (and its current one when it differs), `--previous` alone,
/// `--since` passed on as `sinceSeconds`, every pod with no name; RBAC's refusal says to grant
/// `get` on `pods/log` (which `--print-rbac` now grants); an API that does not answer says
/// that pods/log needs it.
#[test]
fn through_the_api_from_a_workstation() {
    let mut c = Cluster::builder(1).start();
    // node-0 under the kubelet emulation too, so that its log is a pod log as well.
    c.stop(0);
    c.kubelet(0);
    c.wait_healthy(0);
    let i = wrong_joiner(&mut c);
    let starts = c.kubelet(i);
    wait_for("three starts of the joiner", Duration::from_secs(30), || {
        (starts.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(())
    });
    let (kube, kc) = fake_api(&c);
    let kcs = s(&kc).to_string();
    let at = |args: &[&'static str]| -> Vec<String> {
        let mut a: Vec<String> = args.iter().map(|x| x.to_string()).collect();
        a.extend(["--kubeconfig".to_string(), kcs.clone()]);
        a
    };
    let doctor_logs = |args: Vec<String>| doctor_logs(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let run_plugin =
        |p: &str, args: Vec<String>| run_plugin(p, &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);

    let (o, d) = doctor_logs(at(&["node-1"]));
    assert_eq!(o.status.code(), Some(1), "{d:#}\n{}", stderr(&o));
    finding(&d, "initial-cluster-mismatch", "");
    let read = d["read"].as_array().unwrap();
    assert_eq!(read[0], "pods/log kube-system/etcd-node-1 -c etcd --previous", "{d:#}");
    let containers = d["containers"].as_array().unwrap();
    assert!(!containers.is_empty() && containers.len() <= 2, "{d:#}");
    assert!(containers[0]["ended"].as_str().unwrap().starts_with("crashed: --initial-cluster does not match"), "{d:#}");
    let asked = kube.log_requests();
    assert!(
        asked.iter().any(|r| r.starts_with("/api/v1/namespaces/kube-system/pods/etcd-node-1/log?")
            && r.contains("container=etcd")
            && r.contains("previous=true")
            && r.contains(&format!("limitBytes={}", 12 << 20))),
        "{asked:?}"
    );

    // --previous: the last terminated container only, one request.
    let before = kube.log_requests().len();
    let (o, prev) = doctor_logs(at(&["node-1", "--previous", "--since", "1h"]));
    assert_eq!(o.status.code(), Some(1), "{prev:#}\n{}", stderr(&o));
    assert_eq!(prev["read"], serde_json::json!(["pods/log kube-system/etcd-node-1 -c etcd --previous"]), "{prev:#}");
    assert_eq!(prev["containers"].as_array().unwrap().len(), 1, "{prev:#}");
    let asked = kube.log_requests();
    assert_eq!(asked.len(), before + 1, "{asked:?}");
    assert!(asked.last().unwrap().contains("sinceSeconds=3600"), "{asked:?}");

    // Every etcd pod: node-0 has no previous container (kubelet's 400), its current log is read.
    let (o, all) = doctor_logs(at(&[]));
    assert_eq!(o.status.code(), Some(1), "{all:#}\n{}", stderr(&o));
    let read = all["read"].to_string();
    assert!(read.contains("\"pods/log kube-system/etcd-node-0 -c etcd\""), "{all:#}");
    assert!(!read.contains("etcd-node-0 -c etcd --previous"), "{all:#}");
    assert!(read.contains("etcd-node-1 -c etcd --previous"), "{all:#}");
    // Every pod read at once: each finding names the members whose logs hold it.
    assert_eq!(finding(&all, "initial-cluster-mismatch", "")["members"], serde_json::json!(["node-1"]), "{all:#}");

    // The checkup (no subcommand) of node-1 on a node that keeps no pod log: its pod's log
    // through the API leads the verdict.
    let empty = c.dir.path().join("no-pod-logs");
    std::fs::create_dir_all(&empty).unwrap();
    let manifest = c.nodes[i].manifest().to_str().unwrap().to_string();
    let args = ["--manifest", &manifest, "--pod-log-dir", s(&empty), "-o", "json", "--kubeconfig", &kcs];
    let o = run_plugin(DOCTOR, args.iter().map(|a| a.to_string()).collect());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(o.status.code(), Some(1), "{v:#}\n{}", stderr(&o));
    assert_eq!(v["member"], "node-1", "{v:#}");
    assert_eq!(v["logs"]["read"][0], "pods/log kube-system/etcd-node-1 -c etcd --previous", "{v:#}");
    assert!(v["verdict"].as_str().unwrap().starts_with("its log: --initial-cluster does not match"), "{v:#}");

    // RBAC without pods/log: exit 3, one line saying what to grant; --print-rbac grants it.
    kube.behaviour.forbid_log.store(true, std::sync::atomic::Ordering::SeqCst);
    let o = run_plugin(DOCTOR, at(&["logs", "node-1"]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot get resource \"pods/log\"") && err.contains("grant get on pods/log"), "{err}");
    let o = run_plugin("kubectl-etcd-health", at(&["--print-rbac", "User:alice", "-o", "json"]));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules = list["items"][0]["rules"].as_array().unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r["resources"] == serde_json::json!(["pods/log"]) && r["verbs"] == serde_json::json!(["get"])),
        "{list:#}"
    );

    // The API server down: no log, and why (pods/log lives only while it is up).
    let down = c.dir.path().join("kubeconfig-down");
    let text = std::fs::read_to_string(&kc).unwrap().replace(&kube.url, &format!("http://127.0.0.1:{}", free_port()));
    std::fs::write(&down, text).unwrap();
    let o = harness::run_plugin(DOCTOR, &["logs", "node-1", "--kubeconfig", s(&down)], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("only while the API server is up") && err.contains("/var/log/pods"), "{err}");
}

/// The kubelet emulation rotates the running member's log as kubelet does (max size, max
/// files: `N.log.<stamp>`, older parts gzipped); `doctor logs` reads every part, in order, and
/// counts every line the parts hold. The lines are real: a client from another CA, refused by
/// etcd at each handshake.
#[test]
fn pod_logs_rotated_by_kubelet_are_all_read() {
    let mut c = Cluster::builder(1).start();
    c.stop(0);
    c.kubelet_with(0, LogPolicy { max_size: 2048, max_files: 4 });
    c.wait_healthy(0);
    let foreign_dir = c.dir.path().join("foreign");
    let foreign = Pki::foreign(&foreign_dir);
    foreign.write_node(&foreign_dir, "intruder", &["127.0.0.1"], &["localhost"]);
    let pki = c.nodes[0].pki_etcd();
    let intrude = || {
        Command::new(&etcd().etcdctl)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", c.nodes[0].client_url()))
            .arg(format!("--cacert={}", pki.join("ca.crt").display()))
            .arg(format!("--cert={}", foreign_dir.join("etcd/healthcheck-client.crt").display()))
            .arg(format!("--key={}", foreign_dir.join("etcd/healthcheck-client.key").display()))
            .args(["--dial-timeout=1s", "--command-timeout=1s", "endpoint", "health"])
            .output()
            .unwrap()
    };
    let dir = pod_log_dir(&c.nodes[0].root, "node-0");
    let names = || -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    };
    // Until kubelet has rotated twice: a gzipped part and the newest rotated part beside it.
    wait_for("a rotated, gzipped part", Duration::from_secs(90), || {
        intrude();
        let n = names();
        (n.iter().any(|f| f.ends_with(".gz")) && n.iter().any(|f| f.starts_with("0.log.") && !f.ends_with(".gz")))
            .then_some(())
    });
    // Frozen: the member stopped (the manifest moved away), so nothing rotates any more.
    std::fs::rename(c.nodes[0].manifest(), c.nodes[0].root.join("etcd.yaml.off")).unwrap();
    wait_for("the container to stop", Duration::from_secs(30), || {
        c.container_status(0).lock().unwrap().running.is_none().then_some(())
    });
    let files = names();
    assert!(files.len() <= 4, "max files 4: {files:?}");
    assert!(files.iter().all(|f| f == "0.log" || f.starts_with("0.log.2")), "{files:?}");
    // What the parts hold, read here with gzip's own decoder: the refused handshakes.
    let mut refused = 0;
    for f in &files {
        let bytes = std::fs::read(dir.join(f)).unwrap();
        let text = if f.ends_with(".gz") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut s).unwrap();
            s
        } else {
            String::from_utf8(bytes).unwrap()
        };
        refused += text.lines().filter(|l| l.contains("certificate signed by unknown authority")).count();
    }
    assert!(refused > 0, "{files:?}");
    let root = c.nodes[0].root.join("var/log/pods");
    let (o, d) = doctor_logs(&["node-0", "--pod-log-dir", s(&root)]);
    assert_eq!(o.status.code(), Some(1), "{d:#}\n{}", stderr(&o));
    let f = finding(&d, "tls-unknown-authority", "");
    assert_eq!(f["count"].as_u64().unwrap(), refused as u64, "{f:#}\n{files:?}");
    let read: Vec<String> = d["read"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    assert_eq!(read.len(), files.len(), "{read:?}");
    // Oldest first: the gzipped parts, the newest rotated part, the live file last.
    assert!(read[0].ends_with(".gz") && read.last().unwrap().ends_with("/0.log"), "{read:?}");
    assert_eq!(d["containers"].as_array().unwrap().len(), 1, "{d:#}");

    // A gzipped part cut short (a disk filled during rotation): a warning naming it, and the
    // rest of the log still read — the same finding, the same exit code.
    let gz = dir.join(files.iter().find(|f| f.ends_with(".gz")).unwrap());
    let len = std::fs::metadata(&gz).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&gz).unwrap().set_len(len / 2).unwrap();
    let (o, d) = doctor_logs(&["node-0", "--pod-log-dir", s(&root)]);
    assert_eq!(o.status.code(), Some(1), "{d:#}\n{}", stderr(&o));
    let g = finding(&d, "tls-unknown-authority", "");
    assert!(g["count"].as_u64().unwrap() >= 1, "{g:#}");
    assert_eq!(d["unreadable"].as_array().map(Vec::len), Some(1), "{d:#}");
    assert!(stderr(&o).contains(&format!("{}: read only in part", gz.display())), "{}", stderr(&o));
}

/// Waits for the child of node `i` to exit (etcd refusing to start).
fn wait_exit(c: &mut Cluster, i: usize) {
    let mut child = c.nodes[i].child.take().unwrap();
    wait_for("etcd to exit", Duration::from_secs(60), || child.try_wait().unwrap());
}

/// Prints the lines of `log` the finding `id` matched, for the record (the catalogue is checked
/// against them).
fn evidence(d: &Value, id: &str) -> String {
    finding(d, id, "")["evidence"].as_str().unwrap().to_string()
}

/// A member whose data dir was lost (moved aside) and that starts again with its old flags
/// (`--initial-cluster-state=new`) while the others run: etcd finds itself already in the
/// cluster and refuses.
#[test]
fn a_wiped_member_started_as_new_is_already_bootstrapped() {
    let mut c = builder(3).start();
    c.stop(2);
    let dd = c.nodes[2].data_dir();
    std::fs::rename(&dd, dd.with_extension("aside")).unwrap();
    c.spawn_node(2);
    wait_exit(&mut c, 2);
    let d = assert_known(&log_of(&c, 2), "already-bootstrapped", "kubectl etcd learner remove");
    assert!(evidence(&d, "already-bootstrapped").contains("has already been bootstrapped"), "{d:#}");
}

/// A member restored alone from a snapshot (a cluster of its own: another cluster ID) beside the
/// live cluster, on its old peer URL: the others still talk to it and each side refuses the
/// other's cluster ID.
#[test]
fn a_member_restored_alone_has_another_cluster_id() {
    let mut c = builder(3).start();
    c.put("/k", "v");
    let snap = c.dir.path().join("alone.db");
    let o = c.etcdctl(&c.nodes[0].client_url(), &["snapshot", "save", snap.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    c.stop(2);
    let dd = c.nodes[2].data_dir();
    std::fs::rename(&dd, dd.with_extension("aside")).unwrap();
    let peer = c.nodes[2].peer_url();
    let tool = etcd().etcdutl.clone().unwrap_or(etcd().etcdctl.clone());
    let o = Command::new(tool)
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "restore", s(&snap), "--data-dir", s(&dd), "--name", "node-2"])
        .arg(format!("--initial-cluster=node-2={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    c.spawn_node(2);
    let d = wait_finding(&log_of(&c, 2), "cluster-id-mismatch", Duration::from_secs(30));
    assert!(evidence(&d, "cluster-id-mismatch").contains("cluster ID mismatch"), "{d:#}");
    assert_known(&log_of(&c, 2), "cluster-id-mismatch", "kubectl etcd restore doctor");
    // The live members' side of it.
    let d = wait_finding(&log_of(&c, 0), "cluster-id-mismatch", Duration::from_secs(30));
    assert!(evidence(&d, "cluster-id-mismatch").contains("cluster ID mismatch"), "{d:#}");
}

/// A raft snapshot newer than the database (the database replaced by an older copy, as a
/// member killed between receiving a snapshot and swapping it in leaves it): etcd looks for
/// the `<index>.snap.db` it would have received, finds none, and stops.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_snap_db() {
    let mut c = builder(1).flag("snapshot-count", "100").start();
    c.put("/k/first", "v");
    let db = c.nodes[0].data_dir().join("member/snap/db");
    let old = c.dir.path().join("db.old");
    tokio::task::block_in_place(|| c.stop(0));
    std::fs::copy(&db, &old).unwrap();
    tokio::task::block_in_place(|| c.restart(0));
    let mut client = c.client(0).await;
    for k in 0..350 {
        client.put(format!("/k/{k}"), "v", None).await.unwrap();
    }
    tokio::task::block_in_place(|| c.stop(0));
    let snaps = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".snap"))
        .count();
    assert!(snaps > 0, "no raft snapshot written");
    std::fs::rename(&db, db.with_extension("aside")).unwrap();
    std::fs::copy(&old, &db).unwrap();
    c.spawn_node(0);
    tokio::task::block_in_place(|| wait_exit(&mut c, 0));
    let d = assert_known(&log_of(&c, 0), "snap-db-missing", "kubectl etcd restore doctor");
    // 3.5 warns "failed to find [SNAPSHOT-INDEX].snap.db" first; 3.4 says only the panic's
    // "failed to find database snapshot file".
    let e = evidence(&d, "snap-db-missing");
    assert!(e.contains(".snap.db") || e.contains("failed to find database snapshot file"), "{d:#}");
    let last = d["containers"].as_array().unwrap().last().unwrap().clone();
    assert!(last["ended"].as_str().unwrap().starts_with("crashed: the database snapshot file"), "{d:#}");
}

/// etcdctl with the client pair `cert`/`key` against node 0 (expected to fail).
fn etcdctl_with(c: &Cluster, cert: &Path, key: &Path) {
    etcdctl_refused(c, &[cluster_ca(c), format!("--cert={}", cert.display()), format!("--key={}", key.display())]);
}

/// `etcdctl endpoint health` against node-0 with these TLS flags (`--cacert`, `--cert`,
/// `--key`), which etcd or etcdctl must refuse.
fn etcdctl_refused(c: &Cluster, tls: &[String]) {
    let o = Command::new(&etcd().etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", c.nodes[0].client_url()))
        .args(tls)
        .args(["--dial-timeout=2s", "--command-timeout=3s", "endpoint", "health"])
        .output()
        .unwrap();
    assert!(!o.status.success(), "the handshake was accepted: {tls:?}");
}

/// `--cacert` of the cluster's own CA.
fn cluster_ca(c: &Cluster) -> String {
    format!("--cacert={}", c.nodes[0].pki_etcd().join("ca.crt").display())
}

/// A client with no certificate at all (it trusts the server's CA) against etcd's
/// `--client-cert-auth`: etcd refuses the handshake and logs it.
#[test]
fn a_client_without_a_certificate() {
    let c = builder(1).flag("log-level", "info").start();
    etcdctl_refused(&c, &[cluster_ca(&c)]);
    let d = wait_finding(&log_of(&c, 0), "tls-no-client-cert", Duration::from_secs(15));
    assert!(evidence(&d, "tls-no-client-cert").contains("didn't provide a certificate"), "{d:#}");
    assert_known(&log_of(&c, 0), "tls-no-client-cert", "client certificate");
}

/// The leader killed: each follower loses it and the two elect another (raft's own lines at
/// info, kubeadm's level).
#[test]
fn the_leader_dies() {
    let mut c = builder(3).flag("log-level", "info").start();
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    c.kill(leader);
    let d = wait_finding(&log_of(&c, follower), "leader-changes", Duration::from_secs(30));
    assert!(evidence(&d, "leader-changes").contains("lost leader"), "{d:#}");
    // etcd 3.4's raft lines carry their own time (Go's logger: `raft2026/12/06 07:32:24 INFO:`).
    assert!(finding(&d, "leader-changes", "")["first"].is_string(), "{d:#}");
    let d = assert_known(&log_of(&c, follower), "leader-changes", "kubectl etcd health");
    assert_eq!(d["containers"].as_array().unwrap().len(), 1, "{d:#}");
}

/// A client that does not trust etcd's serving certificate (its CA file is another CA's): it
/// ends the handshake, and etcd logs only the client's alert.
#[test]
fn a_client_that_distrusts_the_server() {
    let c = builder(1).flag("log-level", "info").start();
    let foreign_dir = c.dir.path().join("foreign");
    Pki::foreign(&foreign_dir);
    let pki = c.nodes[0].pki_etcd();
    etcdctl_refused(
        &c,
        &[
            format!("--cacert={}", foreign_dir.join("ca.crt").display()),
            format!("--cert={}", pki.join("healthcheck-client.crt").display()),
            format!("--key={}", pki.join("healthcheck-client.key").display()),
        ],
    );
    let d = wait_finding(&log_of(&c, 0), "tls-rejected-by-client", Duration::from_secs(15));
    assert!(evidence(&d, "tls-rejected-by-client").contains("remote error: tls:"), "{d:#}");
    assert_known(&log_of(&c, 0), "tls-rejected-by-client", "kubectl etcd learner certs");
}

/// A joiner (`--initial-cluster-state=existing`) whose --initial-cluster names a peer that does
/// not answer: it cannot fetch the membership and exits.
#[test]
fn a_joiner_whose_peers_do_not_answer() {
    let mut c = builder(1).start();
    let i = c.new_node("node-1", true);
    let ic = format!("node-0=https://127.0.0.1:{},node-1={}", free_port(), c.nodes[i].peer_url());
    c.plan_joiner(i, &ic, &native_format());
    c.spawn_node(i);
    wait_exit(&mut c, i);
    let d = assert_known(&log_of(&c, i), "join-unreachable", "kubectl etcd health");
    let ended = d["containers"].as_array().unwrap().last().unwrap()["ended"].as_str().unwrap().to_string();
    assert!(ended.starts_with("crashed: a joining member reached none of its peers"), "{d:#}");
}

/// A client whose certificate (from the cluster's own CA) has expired: etcd rejects the
/// handshake and logs why.
#[test]
fn a_client_with_an_expired_certificate() {
    let c = builder(1).flag("log-level", "info").start();
    let dir = c.dir.path().join("old");
    std::fs::create_dir_all(&dir).unwrap();
    Pki::write_pair(&dir, "client", &c.pki.issue("old-client", None, &[], &[], harness::pki::Usage::Client, true));
    etcdctl_with(&c, &dir.join("client.crt"), &dir.join("client.key"));
    let d = wait_finding(&log_of(&c, 0), "tls-expired", Duration::from_secs(15));
    assert!(evidence(&d, "tls-expired").contains("certificate has expired or is not yet valid"), "{d:#}");
    assert_known(&log_of(&c, 0), "tls-expired", "kubeadm certs renew");
}

/// A joiner whose peer certificate names another address than the one it is reached at: the
/// member dialing it refuses the name, and the joiner's own connections are refused too.
#[test]
fn a_peer_certificate_for_another_address() {
    let mut c = builder(1).flag("log-level", "info").start();
    let i = c.new_node("node-1", false);
    let etcd_dir = c.nodes[i].root.join("pki/etcd");
    let usage = harness::pki::Usage::ServerClient;
    Pki::write_pair(&etcd_dir, "server", &c.pki.issue("node-1", None, &["127.0.0.1"], &["localhost"], usage, false));
    Pki::write_pair(&etcd_dir, "peer", &c.pki.issue("node-1", None, &["10.9.9.9"], &["elsewhere"], usage, false));
    let peer = c.nodes[i].peer_url();
    member_add(&c, "node-1", &peer);
    let ic = format!("node-0={},node-1={peer}", c.nodes[0].peer_url());
    c.plan_joiner(i, &ic, &native_format());
    c.nodes[i].flags.push(("log-level".into(), "info".into()));
    c.spawn_node(i);
    let d = wait_finding(&log_of(&c, 0), "tls-name-mismatch", Duration::from_secs(30));
    // etcd's own check of an incoming peer's certificate against its remote address.
    assert!(evidence(&d, "tls-name-mismatch").contains(r#"does not match any of DNSNames [\"elsewhere\"]"#), "{d:#}");
    assert_known(&log_of(&c, 0), "tls-name-mismatch", "kubectl etcd learner certs");
}

/// A member that starts while its peers are down cannot publish itself through raft: the
/// proposal times out ("etcdserver: request timed out"), again and again.
#[test]
fn a_member_alone_without_quorum_times_out() {
    let mut c = builder(3).start();
    c.stop(1);
    c.stop(2);
    c.stop(0);
    c.spawn_node(0);
    let d = wait_finding(&log_of(&c, 0), "request-timeout", Duration::from_secs(60));
    assert!(evidence(&d, "request-timeout").contains("etcdserver: request timed out"), "{d:#}");
    assert_known(&log_of(&c, 0), "request-timeout", "kubectl etcd health");
}

/// A disk that stops answering for a moment under every member's WAL (`fsfreeze`, harness
/// `HangingDisk`) while a write is in flight: the leader's raft loop waits on the disk and it
/// cannot send its heartbeats on time. Warnings only: exit 0.
#[test]
fn a_disk_that_stalls() {
    let disk = HangingDisk::new(1024);
    let b = (0..3)
        .fold(builder(3), |b, i| b.node_flag(i, "wal-dir", disk.path().join(format!("wal-{i}")).to_str().unwrap()));
    let c = b.start();
    let leader = c.leader();
    let frozen = disk.freeze();
    let started = std::time::Instant::now();
    let ep = c.nodes[leader].client_url();
    std::thread::scope(|sc| {
        let put = sc.spawn(|| c.etcdctl(&ep, &["put", "/stall", "v", "--command-timeout=20s"]));
        // The stall must outlast 2 heartbeats (100 ms each) and stay under the election
        // timeout (1 s): 600 ms.
        wait_for("600 ms of a frozen disk", Duration::from_secs(5), || {
            (started.elapsed() >= Duration::from_millis(600)).then_some(())
        });
        drop(frozen);
        assert!(put.join().unwrap().status.success());
    });
    let d = wait_finding(&log_of(&c, leader), "heartbeat-late", Duration::from_secs(15));
    assert!(evidence(&d, "heartbeat-late").contains("failed to send out heartbeat on time"), "{d:#}");
    let bad = d["findings"].as_array().unwrap().iter().filter(|f| f["severity"] != "warning").count();
    assert_eq!(bad, 0, "{d:#}");
    assert_known_exit(&log_of(&c, leader), "heartbeat-late", "kubectl etcd health -o wide", 0);
    drop(disk);
}

/// A slow disk under the member's data dir (harness `HangingDisk::throttle`: its writes to the
/// disk throttled to 1 KiB a second): each write still lands at once in the page cache, but
/// every fdatasync waits for the device, a 4 KiB page 4 s, over etcd's 1 s warning threshold —
/// the WAL's (`slow fdatasync`) and the database's commits, which hold back the applies queued
/// behind them (`apply request took too long`, over 100 ms). Warnings only: exit 0.
#[test]
fn a_slow_disk() {
    let disk = HangingDisk::new(1024);
    let data = disk.path().join("data");
    let c = builder(1).node_flag(0, "data-dir", data.to_str().unwrap()).start();
    let throttled = disk.throttle(c.nodes[0].pid().unwrap(), 1024);
    for k in 0..3 {
        c.etcdctl(&c.nodes[0].client_url(), &["put", &format!("/slow/{k}"), "v", "--command-timeout=30s"]);
    }
    wait_finding(&log_of(&c, 0), "apply-too-long", Duration::from_secs(30));
    let d = wait_finding(&log_of(&c, 0), "slow-fdatasync", Duration::from_secs(30));
    drop(throttled);
    let e = evidence(&d, "slow-fdatasync");
    assert!(e.contains("slow fdatasync") || e.contains("sync duration of"), "{d:#}");
    assert!(evidence(&d, "apply-too-long").contains("took too long"), "{d:#}");
    assert_known_exit(&log_of(&c, 0), "apply-too-long", "kubectl etcd defrag", 0);
    assert_known_exit(&log_of(&c, 0), "slow-fdatasync", "kubectl etcd health -o wide", 0);
    drop(c);
    drop(disk);
}

/// A peer whose clock is 10 s behind (harness `SkewProxy`: node-1's advertised peer URL is a
/// proxy that passes raft through and answers etcd's clock probe with a time 10 s ago): node-0,
/// real etcd, measures the drift itself and logs it. Peers talk plain HTTP here so that the
/// proxy can read the probe; clients keep mTLS. A warning only: exit 0.
#[test]
fn a_peer_whose_clock_is_behind() {
    let mut c = builder(2).planned();
    let proxy = SkewProxy::start(c.nodes[1].peer_port, Duration::from_secs(10));
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let advertised = [url(c.nodes[0].peer_port), url(proxy.port)];
    let initial = format!("node-0={},node-1={}", advertised[0], advertised[1]);
    for (i, n) in c.nodes.iter_mut().enumerate() {
        let listen = url(n.peer_port);
        n.flags.retain(|(k, _)| !k.starts_with("peer-"));
        for (k, v) in n.flags.iter_mut() {
            match k.as_str() {
                "listen-peer-urls" => *v = listen.clone(),
                "initial-advertise-peer-urls" => *v = advertised[i].clone(),
                "initial-cluster" => *v = initial.clone(),
                _ => {}
            }
        }
    }
    c.start_all();
    let d = wait_finding(&log_of(&c, 0), "clock-drift", Duration::from_secs(30));
    let e = evidence(&d, "clock-drift");
    assert!(e.contains("prober found high clock drift") || e.contains("the clock difference against peer"), "{d:#}");
    // Only node-0 dials node-1 through the proxy: node-1 sees node-0's true clock.
    let (_, other) = doctor_logs(&["--log-file", s(&log_of(&c, 1))]);
    assert!(!other["findings"].as_array().unwrap().iter().any(|f| f["id"] == "clock-drift"), "{other:#}");
    assert_known_exit(&log_of(&c, 0), "clock-drift", "timedatectl", 0);
    drop(c);
    drop(proxy);
}
