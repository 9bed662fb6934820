//! The README's demo: a local 3-member etcd cluster with mTLS and a kubeadm-shaped node layout,
//! and kubectl etcd run against it through the real discovery path (`--manifest`).

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

    drop(c);
    if failures > 0 {
        eprintln!("\ndemo: {failures} step(s) did not give the expected exit code");
        std::process::exit(1);
    }
    println!("\nDemo done: the cluster was stopped and its directory removed.");
}
