//! The core of kubectl-etcd: discovery of etcd members and credentials, TLS, connections,
//! cluster operations, rendering and errors. The plugins are thin binaries over this crate.

pub mod base;
pub mod cli;
pub mod error;
pub mod limits;
pub mod ops;
pub mod reach;
pub mod store;

pub use error::{Error, ExitCode, Result};

/// The plugins behind `kubectl etcd` (`kubectl-etcd-NAME`), with their one-line summaries: the
/// dispatcher's commands, the completion helpers and the tests all take the list from here.
pub const PLUGINS: &[(&str, &str)] = &[
    ("health", "Show the health of every etcd member and of the cluster"),
    ("learner", "Add, promote, remove and replace members safely, as learners"),
    ("restore", "Save, inspect and verify snapshots; restore data dirs natively"),
    ("defrag", "Defragment members one at a time, compact, and recover from NOSPACE"),
    ("doctor", "Why is a member down: its log, its data dir and the cluster's view, with the next step"),
    ("upgrade", "Check and perform etcd version upgrades, one member at a time"),
];

/// The dispatcher's aliases: (noun, plugin it runs, the word that stands for it in the plugin's
/// arguments, summary). `kubectl etcd usage …` runs `kubectl-etcd-defrag usage …`.
pub const ALIASES: &[(&str, &str, Option<&str>, &str)] = &[
    ("snapshot", "restore", Some("snapshot"), "Save, inspect and verify snapshots (kubectl etcd restore snapshot …)"),
    ("member", "learner", None, "Add, promote, remove and replace members (kubectl etcd learner …)"),
    (
        "downgrade",
        "upgrade",
        Some("downgrade"),
        "etcd 3.6+: downgrade the cluster version (kubectl etcd upgrade downgrade …)",
    ),
    (
        "usage",
        "defrag",
        Some("usage"),
        "What fills the database, per Kubernetes resource (kubectl etcd defrag usage …)",
    ),
];
