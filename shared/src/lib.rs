//! The core of kubectl-etcd: discovery of etcd members and credentials, TLS, connections,
//! cluster operations, rendering and errors. The plugins are thin binaries over this crate.

pub mod backend;
pub mod backups;
pub mod bbolt;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod complete;
pub mod compress;
pub mod conn;
pub mod dblock;
pub mod defrag;
pub mod discovery;
pub mod error;
pub mod health;
pub mod limits;
pub mod members;
pub mod metrics;
/// Operations (issue 26's layout; more move here).
pub mod ops {
    pub mod upgrade;
}
pub mod pb;
pub mod print;
pub mod quorum;
pub mod restore;
pub mod schedule;
pub mod snapshot;
pub mod tls;
pub mod tunnel;
pub mod url;
pub mod util;
pub mod version;
pub mod wal;
pub mod walcheck;

pub use error::{Error, ExitCode, Result};

/// The plugins behind `kubectl etcd` (`kubectl-etcd-NAME`), with their one-line summaries: the
/// dispatcher's commands, the completion helpers and the tests all take the list from here.
pub const PLUGINS: &[(&str, &str)] = &[
    ("health", "Show the health of every etcd member and of the cluster"),
    ("learner", "Add, promote, remove and replace members safely, as learners"),
    ("restore", "Save, inspect and verify snapshots; restore data dirs natively"),
    ("defrag", "Defragment members one at a time, compact, and recover from NOSPACE"),
    ("upgrade", "Check and perform etcd version upgrades, one member at a time"),
];
