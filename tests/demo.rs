//! The README's demo: a local 3-member etcd cluster with mTLS and a kubeadm-shaped node layout,
//! and kubectl etcd run against it through the real discovery path (`--manifest`).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use harness::{bin, etcd, Cluster};

fn run(args: &[&str]) -> i32 {
    let shown: Vec<String> =
        args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.to_string() }).collect();
    println!("\n$ kubectl etcd {}", shown.join(" "));
    let st = Command::new(bin("kubectl-etcd"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("KUBECTL_ETCD_DEFAULT_MANIFEST", "/nonexistent")
        .status()
        .expect("run kubectl-etcd");
    let code = st.code().unwrap_or(-1);
    println!("(exit code {code})");
    code
}

fn main() {
    let e = etcd();
    println!("Starting a 3-member etcd {} cluster on loopback with client and peer mTLS ...", e.version);
    let mut c = Cluster::start(3);
    let manifest = c.nodes[0].manifest().display().to_string();
    println!("Node layout as kubeadm writes it: {}", c.nodes[0].root.display());
    println!("  manifest: {manifest}");
    println!("  certificates: {}/", c.nodes[0].pki_etcd().display());
    for i in 0..10 {
        c.put(&format!("/registry/configmaps/default/demo-{i}"), "value");
    }
    let mut failures = 0;

    println!("\n== 1. Everything about the cluster's health, found from the static pod manifest alone");
    failures += (run(&["health", "--manifest", &manifest]) != 0) as i32;

    println!("\n== 2. A member dies: it is reported at once as 'connection refused'; exit code 1");
    let leader = c.leader();
    let victim = (1..3).find(|i| *i != leader).unwrap_or(1);
    c.kill(victim);
    failures += (run(&["health", "--manifest", &manifest]) != 1) as i32;
    c.restart(victim);

    println!("\n== 3. The same as JSON for scripts (first lines)");
    let out = Command::new(bin("kubectl-etcd-health"))
        .args(["--manifest", &manifest, "-o", "json"])
        .env_remove("KUBECONFIG")
        .output()
        .expect("run health");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines().take(12) {
        println!("{line}");
    }
    println!("  ...");

    println!("\n== 4. Grow the cluster safely: add a learner, start it with the printed settings, promote it");
    let i = c.new_node("node-3", true);
    let peer = c.nodes[i].peer_url();
    failures +=
        (run(&["learner", "add", "node-3", "--peer-urls", &peer, "--manifest", &manifest, "--dry-run"]) != 0) as i32;
    let out = Command::new(bin("kubectl-etcd"))
        .args(["learner", "add", "node-3", "--peer-urls", &peer, "--manifest", &manifest, "-o", "json"])
        .env_remove("KUBECONFIG")
        .output()
        .expect("learner add");
    println!("\n$ kubectl etcd learner add node-3 --peer-urls {peer} --manifest {manifest} -o json");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let initial = added["settings"]["initial_cluster"].as_str().unwrap_or_default().to_string();
    let id = added["id"].as_str().unwrap_or_default().to_string();
    if initial.is_empty() {
        failures += 1;
    } else {
        println!("(starting etcd for node-3 with those settings)");
        c.join(i, &initial);
        failures += (run(&["learner", "promote", &id, "--manifest", &manifest]) != 0) as i32;
        failures += (run(&["health", "--manifest", &manifest]) != 0) as i32;
    }

    println!("\n== 5. Back up, inspect, and restore natively (no etcdutl)");
    let dir = tempfile::tempdir().expect("tempdir");
    let snap = dir.path().join("backup.db");
    let snap_s = snap.display().to_string();
    failures += (run(&["restore", "snapshot", "save", &snap_s, "--manifest", &manifest]) != 0) as i32;
    failures += (run(&["restore", "snapshot", "status", &snap_s]) != 0) as i32;
    failures += (run(&["restore", "snapshot", "verify", &snap_s]) != 0) as i32;
    let mut fresh = Cluster::builder(1).planned();
    let data = fresh.nodes[0].data_dir().display().to_string();
    let ic = format!("node-0={}", fresh.nodes[0].peer_url());
    let token = fresh.token.clone();
    failures += (run(&[
        "restore",
        "apply",
        &snap_s,
        "--data-dir",
        &data,
        "--name",
        "node-0",
        "--initial-cluster",
        &ic,
        "--initial-cluster-token",
        &token,
    ]) != 0) as i32;
    println!("(starting etcd on the restored data dir)");
    fresh.start_all();
    let fresh_manifest = fresh.nodes[0].manifest().display().to_string();
    failures += (run(&["health", "--manifest", &fresh_manifest]) != 0) as i32;
    drop(fresh);

    drop(c);
    if failures > 0 {
        eprintln!("\ndemo: {failures} step(s) did not give the expected exit code");
        std::process::exit(1);
    }
    println!("\nDemo done: the cluster was stopped and its directory removed.");
}
