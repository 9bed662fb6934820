//! From a workstation: only a kubeconfig (and, for the certificate commands, a copy of a node's
//! `pki/etcd`). Members are found through the Kubernetes API and reached through its
//! `pods/portforward` tunnels, served by the harness's fake API server (no API server can be
//! installed here; its port-forward speaks the real WebSocket channel protocol, see
//! harness/fakekube.rs) in front of real etcd members (3.4 or 3.5, by `E2E_ETCD_VERSION`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use harness::fakekube::{workstation_pods, FakeKube};
use harness::*;
use serde_json::Value;

const HEALTH: &str = "kubectl-etcd-health";
const RESTORE: &str = "kubectl-etcd-restore";
const LEARNER: &str = "kubectl-etcd-learner";

/// A fake API for `c` and a kubeconfig for it; the copy of node-0's `pki/etcd` an operator
/// would bring.
fn workstation(c: &Cluster) -> (FakeKube, PathBuf, PathBuf) {
    let kube = FakeKube::start(workstation_pods(c), vec![]);
    let kc = kube.kubeconfig(c.dir.path());
    let pki = c.dir.path().join("pki-copy");
    std::fs::create_dir_all(&pki).unwrap();
    for f in ["ca.crt", "healthcheck-client.crt", "healthcheck-client.key"] {
        std::fs::copy(c.nodes[0].pki_etcd().join(f), pki.join(f)).unwrap();
    }
    (kube, kc, pki)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// (name, id, health, leader) of every member, sorted.
fn summary(doc: &Value) -> Vec<(String, String, String, bool)> {
    let mut v: Vec<_> = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["id"].as_str().unwrap_or("").to_string(),
                m["health"].as_str().unwrap_or("").to_string(),
                m["is_leader"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn health_through_tunnels_is_the_same_report_as_direct() {
    let c = Cluster::start(3);
    let (kube, kc, pki) = workstation(&c);
    let args = ["--kubeconfig", s(&kc), "--pki-dir", s(&pki), "-o", "json", "-v"];
    let o = run_plugin(HEALTH, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tunnelled = json(&o);
    assert!(stderr(&o).contains("transport: port-forward through the API server"), "{}", stderr(&o));
    // Every member through its own pod, at its own port.
    let forwards = kube.port_forwards();
    for n in &c.nodes {
        let want = format!("etcd-{}:{}", n.name, n.client_port);
        assert!(forwards.contains(&want), "{want} not in {forwards:?}");
    }
    let o =
        run_plugin(HEALTH, &["--kubeconfig", s(&kc), "--pki-dir", s(&pki), "-o", "json", "--transport", "direct"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let direct = json(&o);
    assert_eq!(summary(&tunnelled), summary(&direct));
    assert_eq!(summary(&tunnelled).len(), 3);
    assert!(summary(&tunnelled).iter().all(|m| m.2 == "healthy"), "{tunnelled:#}");
    let hash = |d: &Value| d["checks"].as_array().unwrap().iter().find(|c| c["name"] == "hash").cloned();
    assert_eq!(hash(&tunnelled).map(|h| h["status"].clone()), Some("ok".into()), "{tunnelled:#}");
}

#[test]
fn a_killed_member_is_refused_through_its_tunnel_and_rbac_refusal_says_what_to_grant() {
    let mut c = Cluster::start(3);
    let (kube, kc, pki) = workstation(&c);
    c.kill(2);
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "--pki-dir", s(&pki), "-o", "json"], &[]);
    let doc = json(&o);
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    let down = doc["members"].as_array().unwrap().iter().find(|m| m["name"] == "node-2").unwrap();
    assert_eq!(down["failure"]["class"], "connection_refused", "{down:#}");
    assert!(down["failure"]["detail"].as_str().unwrap().contains("port-forward"), "{down:#}");

    kube.behaviour.forbid_portforward.store(true, Ordering::SeqCst);
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "--pki-dir", s(&pki)], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot create resource \"pods/portforward\""), "{err}");
    assert!(err.contains("grant list on pods and create,get on pods/portforward in namespace kube-system"), "{err}");
    assert!(err.contains("--print-rbac"), "{err}");
    // What it names prints the Role and RoleBinding, for kubectl apply.
    let o = run_plugin(HEALTH, &["--print-rbac", "Group:etcd-operators", "-n", "kube-system"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let docs: Vec<&str> = stdout(&o).leak().split("\n---\n").collect();
    assert_eq!(docs.len(), 2, "{docs:?}");
    let role: Value = serde_saphyr::from_str(docs[0]).unwrap();
    let binding: Value = serde_saphyr::from_str(docs[1]).unwrap();
    assert_eq!(role["kind"], "Role");
    assert_eq!(role["rules"][1]["resources"][0], "pods/portforward");
    assert_eq!(role["rules"][1]["verbs"], serde_json::json!(["create", "get"]));
    assert_eq!(binding["subjects"][0]["kind"], "Group");
    assert_eq!(binding["subjects"][0]["name"], "etcd-operators");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    let o = run_plugin(HEALTH, &["--print-rbac", "alice"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // -o json: the same two objects as one v1 List; a table format has no meaning here.
    let o = run_plugin(HEALTH, &["--print-rbac", "Group:etcd-operators", "-o", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&list["apiVersion"], &list["kind"]), (&serde_json::json!("v1"), &serde_json::json!("List")));
    assert_eq!(list["items"][0], role, "{list:#}");
    assert_eq!(list["items"][1]["subjects"][0]["name"], "etcd-operators", "{list:#}");
    let o = run_plugin(HEALTH, &["--print-rbac", "Group:etcd-operators", "-o", "wide"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("-o yaml (the default) or -o json"), "{}", stderr(&o));
}

#[test]
fn port_forward_needs_members_from_the_api() {
    let c = Cluster::start(1);
    let o = run_plugin(HEALTH, &["--manifest", s(&c.nodes[0].manifest()), "--transport", "port-forward"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--transport port-forward: the members came from a manifest or --endpoints"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_save_through_a_tunnel_and_a_tunnel_cut_midway_leaves_no_file() {
    let c = Cluster::start(3);
    let mut client = c.client(0).await;
    let value = vec![b'v'; 64 * 1024];
    for i in 0..64 {
        client.put(format!("/w/{i}"), value.clone(), None).await.unwrap();
    }
    let (kube, kc, pki) = workstation(&c);
    let file = c.dir.path().join("ws.db");
    let o = run_plugin(
        RESTORE,
        &["--kubeconfig", s(&kc), "--pki-dir", s(&pki), "snapshot", "save", s(&file), "-o", "json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(kube.port_forwards().iter().any(|f| f.starts_with("etcd-")), "{:?}", kube.port_forwards());
    let v = run_plugin(RESTORE, &["snapshot", "verify", s(&file)], &[]);
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    let e = etcd();
    let status = match &e.etcdutl {
        Some(u) => {
            std::process::Command::new(u).args(["snapshot", "status", "-w", "json"]).arg(&file).output().unwrap()
        }
        None => std::process::Command::new(&e.etcdctl)
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(&file)
            .output()
            .unwrap(),
    };
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(st["totalKey"].as_u64().unwrap() >= 64, "{st:#}");

    // The network breaks a megabyte into the stream: a transport failure, and no file.
    kube.behaviour.cut_after.store(1 << 20, Ordering::SeqCst);
    let cut = c.dir.path().join("cut.db");
    let o = run_plugin(RESTORE, &["--kubeconfig", s(&kc), "--pki-dir", s(&pki), "snapshot", "save", s(&cut)], &[]);
    assert_eq!(o.status.code(), Some(4), "{}\n{}", stdout(&o), stderr(&o));
    let left: Vec<_> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("cut"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The new member is on another machine (its own address): its pod is not in the list the
/// commands start from; it appears once kubelet starts it, and the tunnels find it then.
#[test]
fn learner_add_and_promote_through_tunnels() {
    let mut c = Cluster::start(3);
    let (kube, kc, pki) = workstation(&c);
    let i = c.new_node_on("node-new", true, "127.0.0.2");
    let peer = c.nodes[i].peer_url();
    let common = ["--kubeconfig", s(&kc), "--pki-dir", s(&pki)];
    let mut args = common.to_vec();
    args.extend(["add", "node-new", "--peer-urls", &peer, "-o", "json"]);
    let o = run_plugin(LEARNER, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let added = json(&o);
    let initial = added["settings"]["initial_cluster"].as_str().unwrap().to_string();
    c.join(i, &initial);
    kube.add_pod(workstation_pods(&c).pop().unwrap());
    let mut args = common.to_vec();
    args.extend(["promote", "node-new", "--timeout", "60s"]);
    let o = run_plugin(LEARNER, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let members = c.member_list();
    let m = members.as_array().unwrap().iter().find(|m| m["name"] == "node-new").unwrap();
    assert_ne!(m["isLearner"], true, "{members:#}");
    // Its status came through its own pod, found after the command started.
    assert!(kube.port_forwards().iter().any(|f| f.starts_with("etcd-node-new:")), "{:?}", kube.port_forwards());
    let mut args = common.to_vec();
    args.extend(["-o", "json"]);
    let o = run_plugin(HEALTH, &args, &[]);
    let doc = json(&o);
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    assert_eq!(member(&doc, "node-new")["health"], "healthy", "{doc:#}");
    assert_eq!(member(&doc, "node-new")["endpoint"], c.nodes[i].client_url().as_str(), "{doc:#}");
}

fn member<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["members"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap_or_else(|| panic!("{name}: {doc:#}"))
}

/// No certificate at all: the report from each member's `/health` and `/metrics` through its
/// pod, the skipped checks named; a frozen member times out, a killed one is refused.
#[test]
fn without_certificates_health_reads_the_metrics_through_tunnels() {
    let mut c = Cluster::start(3);
    let (kube, kc, _) = workstation(&c);
    let ids: Vec<(String, String)> = c
        .member_list()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), format!("{:016x}", m["ID"].as_u64().unwrap())))
        .collect();
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "-o", "json", "-v"], &[]);
    let doc = json(&o);
    assert_eq!(o.status.code(), Some(0), "{doc:#}\n{}", stderr(&o));
    assert_eq!(doc["transport"], "port-forward");
    let schema = harness::schema::load("health.schema.json");
    assert_eq!(harness::schema::violations(&schema, &doc), Vec::<String>::new(), "{doc:#}");
    assert!(stderr(&o).contains("no etcd client certificate"), "{}", stderr(&o));
    for (name, id) in &ids {
        let m = member(&doc, name);
        assert_eq!(m["health"], "healthy", "{m:#}");
        assert_eq!(m["id"], id.as_str(), "{m:#}");
        assert!(m["version"].as_str().unwrap().starts_with(&etcd().version), "{m:#}");
        assert!(m["db_size"].as_u64().unwrap() > 0, "{m:#}");
        assert!(m["metrics"]["latency"]["wal_fsync_p99_ms"].is_number(), "{m:#}");
        assert!(m["metrics"]["proposals_committed"].as_u64().unwrap() > 0, "{m:#}");
    }
    let leaders = doc["members"].as_array().unwrap().iter().filter(|m| m["is_leader"] == true).count();
    assert_eq!(leaders, 1, "{doc:#}");
    let check = |d: &Value, n: &str| d["checks"].as_array().unwrap().iter().find(|c| c["name"] == n).cloned().unwrap();
    assert_eq!(check(&doc, "leader")["status"], "ok", "{doc:#}");
    assert_eq!(check(&doc, "quorum")["message"], "3/3 voters in quorum, 2 needed, may lose 1 more", "{doc:#}");
    let cred = check(&doc, "credentials");
    assert_eq!(cred["status"], "warn");
    assert!(
        cred["message"].as_str().unwrap().contains("skipped hash (HashKV consistency), alarms, member list"),
        "{cred:#}"
    );
    assert!(cred["hint"].as_str().unwrap().contains("--pki-dir"), "{cred:#}");
    assert!(doc["skipped"].as_array().unwrap().iter().any(|x| x == "alarms"), "{doc:#}");
    assert_disk_verdict(&doc, 3);
    if check(&doc, "disk")["status"] == "ok" {
        assert!(check(&doc, "disk")["message"].as_str().unwrap().contains("3 of 3 member(s) measured"), "{doc:#}");
    }
    for n in &c.nodes {
        let want = format!("etcd-{}:{}", n.name, n.metrics_port);
        assert!(kube.port_forwards().contains(&want), "{want}: {:?}", kube.port_forwards());
    }
    // The table says which checks were skipped and how to run them.
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc)], &[]);
    assert!(stdout(&o).contains("no etcd client certificate: skipped"), "{}", stdout(&o));

    // A frozen member: its tunnel opens, its metrics never answer. The run costs one deadline
    // (--dial-timeout 2s + --command-timeout 5s, the defaults) plus what a healthy run costs here.
    let started = std::time::Instant::now();
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "-o", "json"], &[]);
    assert_eq!(json(&o)["members"].as_array().map(Vec::len), Some(3), "{}", stderr(&o));
    let allowance = started.elapsed() + std::time::Duration::from_millis(500);
    c.freeze(1);
    let started = std::time::Instant::now();
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "-o", "json"], &[]);
    let doc = json(&o);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(7) + allowance, "took {took:?}, allowance {allowance:?}");
    assert_eq!(member(&doc, "node-1")["failure"]["class"], "timed_out", "{doc:#}");
    assert_eq!(o.status.code(), Some(1), "{doc:#}");
    c.resume(1);
    // A killed member: kubelet's dial is refused.
    c.kill(2);
    let o = run_plugin(HEALTH, &["--kubeconfig", s(&kc), "-o", "json"], &[]);
    let doc = json(&o);
    assert_eq!(member(&doc, "node-2")["failure"]["class"], "connection_refused", "{doc:#}");
    assert_eq!(o.status.code(), Some(1), "{doc:#}");

    // Commands that need a certificate say what to bring.
    let o = run_plugin(RESTORE, &["--kubeconfig", s(&kc), "snapshot", "save", s(&c.dir.path().join("x.db"))], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("pass --pki-dir DIR"), "{}", stderr(&o));
}

/// On a control-plane node, the local member's metrics (the manifest's
/// `--listen-metrics-urls`) give its disk latency; the others' are not reachable directly.
#[test]
fn on_a_node_the_local_members_disk_latency() {
    let c = Cluster::start(3);
    let o = run_plugin(HEALTH, &["--manifest", s(&c.nodes[0].manifest()), "-o", "json"], &[]);
    let doc = json(&o);
    assert_eq!(o.status.code(), Some(0), "{doc:#}");
    assert!(member(&doc, "node-0")["metrics"]["latency"]["wal_fsync_count"].as_u64().unwrap() > 0, "{doc:#}");
    assert!(member(&doc, "node-1").get("metrics").is_none(), "{doc:#}");
    let disk = doc["checks"].as_array().unwrap().iter().find(|c| c["name"] == "disk").unwrap();
    assert_disk_verdict(&doc, 1);
    if disk["status"] == "ok" {
        assert!(disk["message"].as_str().unwrap().starts_with("1 of 3 member(s) measured"), "{disk:#}");
    }
}

/// A CA that did not sign the members' certificates, through the tunnels: the port-forward
/// opens, the TLS handshake inside it fails, and each command says so in one line (the CA,
/// --cacert), exit 4, within one deadline, with no snapshot left behind; never a hang.
#[test]
fn a_ca_the_members_do_not_use_is_named_through_the_tunnels() {
    let c = Cluster::start(3);
    let (kube, kc, pki) = workstation(&c);
    let other = tempfile::tempdir().unwrap();
    harness::pki::Pki::foreign(other.path());
    std::fs::copy(other.path().join("ca.crt"), pki.join("ca.crt")).unwrap();
    let file = c.dir.path().join("untrusted.db");
    let base = ["--kubeconfig", s(&kc), "--pki-dir", s(&pki), "--command-timeout", "3s"];
    for args in [&["-o", "json"][..], &["snapshot", "save", s(&file)][..]] {
        let (tool, args) = if args[0] == "snapshot" { (RESTORE, args) } else { (HEALTH, args) };
        let all: Vec<&str> = base.iter().chain(args).copied().collect();
        let start = std::time::Instant::now();
        let o = run_plugin(tool, &all, &[]);
        let took = start.elapsed();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(4), "{tool} {args:?}: {err}");
        assert!(err.contains("tls: certificate signed by unknown authority") && err.contains("--cacert"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(took < std::time::Duration::from_secs(3 + 2), "{tool} took {took:?}: {err}");
    }
    assert!(kube.port_forwards().iter().any(|f| f.starts_with("etcd-")), "{:?}", kube.port_forwards());
    let left: Vec<_> = std::fs::read_dir(c.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("untrusted"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
