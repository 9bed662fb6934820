//! What `--version` says on every binary, and `kubectl etcd version`.

/// The release.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit it was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("KUBECTL_ETCD_COMMIT");
/// The target it was built for.
pub const TARGET: &str = env!("KUBECTL_ETCD_TARGET");
/// The etcd versions the suite is tested against (Debian's 3.4 and the 3.5 build of the
/// install script).
pub const TESTED_ETCD: &str = "3.4.23, 3.5.1";

/// `0.2.0 (commit 0123456789ab, x86_64-unknown-linux-gnu; tested with etcd 3.4.23, 3.5.1)`:
/// clap prints it after the binary's name.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("KUBECTL_ETCD_COMMIT"),
    ", ",
    env!("KUBECTL_ETCD_TARGET"),
    "; tested with etcd 3.4.23, 3.5.1)"
);
