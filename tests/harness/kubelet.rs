//! Kubelet emulation: starts and stops etcd as a node's static pod manifest appears and
//! disappears.

use std::path::Path;

/// Plays kubelet for one node: starts etcd with the flags of `manifests/etcd.yaml` when the file
/// is there and stops it when the file is moved away, polling every 50 ms, as kubelet does
/// with static pods.
pub struct Kubelet {
    pub(crate) stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
    /// How many times it started etcd.
    pub starts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Kubelet {
    pub(crate) fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn manifest_argv(path: &Path) -> Option<Vec<String>> {
    let m = kubectl_etcd::discovery::Manifest::load(path).ok()?;
    let mut argv: Vec<String> = m.flags.iter().map(|(k, v)| format!("--{k}={v}")).collect();
    argv.push("--logger=zap".into());
    argv.push("--log-level=warn".into());
    Some(argv)
}
