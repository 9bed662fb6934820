//! `kubectl etcd health` against real etcd clusters.

use harness::*;

#[test]
fn smoke() {
    let c = Cluster::start(3);
    let o = run_plugin(
        "kubectl-etcd-health",
        &["--manifest", c.nodes[0].manifest().to_str().unwrap(), "-v"],
        &[],
    );
    println!("{}\n{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn timing() {
    let t = std::time::Instant::now();
    let _p = Pki::new(&tempfile::tempdir().unwrap().path().join("x"));
    eprintln!("pki {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _b = bin("kubectl-etcd-health");
    eprintln!("bin {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let _c = Cluster::start(3);
    eprintln!("cluster {:?}", t.elapsed());
}
