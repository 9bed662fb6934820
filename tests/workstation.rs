//! From a workstation: only a kubeconfig (and, for the certificate commands, a copy of a node's
//! `pki/etcd`). Members are found through the Kubernetes API and reached through its
//! `pods/portforward` tunnels, served by the harness's fake API server (no API server can be
//! installed here; its port-forward speaks the real WebSocket channel protocol, see
//! harness/fakekube.rs) in front of real etcd members (3.4 or 3.5, by `E2E_ETCD_VERSION`).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use harness::fakekube::{kubeadm_pod, FakeKube};
use harness::*;
use serde_json::Value;

const HEALTH: &str = "kubectl-etcd-health";
const RESTORE: &str = "kubectl-etcd-restore";
const LEARNER: &str = "kubectl-etcd-learner";

/// The etcd pods as the API lists them, their file paths kubeadm's (`/etc/kubernetes/…`),
/// which do not exist on this "workstation": nothing can be read from the node.
fn workstation_pods(c: &Cluster) -> Vec<Value> {
    c.nodes
        .iter()
        .map(|n| {
            let root = n.root.display().to_string();
            let flags: Vec<(String, String)> = n
                .flags
                .iter()
                .map(|(k, v)| {
                    let v = v
                        .replace(&format!("{root}/pki"), "/etc/kubernetes/pki")
                        .replace(&format!("{root}/data"), "/var/lib/etcd");
                    (k.clone(), v)
                })
                .collect();
            kubeadm_pod(&n.name, &flags, &n.client_url(), true, "127.0.0.1")
        })
        .collect()
}

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

#[test]
fn learner_add_and_promote_through_tunnels() {
    let mut c = Cluster::start(3);
    let i = c.new_node("node-new", true);
    let (kube, kc, pki) = workstation(&c);
    let peer = c.nodes[i].peer_url();
    let common = ["--kubeconfig", s(&kc), "--pki-dir", s(&pki)];
    let mut args = common.to_vec();
    args.extend(["add", "node-new", "--peer-urls", &peer, "-o", "json"]);
    let o = run_plugin(LEARNER, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let added = json(&o);
    let initial = added["settings"]["initial_cluster"].as_str().unwrap().to_string();
    c.join(i, &initial);
    let mut args = common.to_vec();
    args.extend(["promote", "node-new", "--timeout", "60s"]);
    let o = run_plugin(LEARNER, &args, &[]);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let members = c.member_list();
    let m = members.as_array().unwrap().iter().find(|m| m["name"] == "node-new").unwrap();
    assert_ne!(m["isLearner"], true, "{members:#}");
    assert!(kube.port_forwards().len() >= 3, "{:?}", kube.port_forwards());
}
