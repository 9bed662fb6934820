//! Records the git commit and the target triple for `--version` (`kubectl etcd version`).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KUBECTL_ETCD_COMMIT={commit}");
    println!("cargo:rustc-env=KUBECTL_ETCD_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    // A new commit changes HEAD (a branch ref) or the packed refs.
    for f in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        println!("cargo:rerun-if-changed={f}");
    }
}
