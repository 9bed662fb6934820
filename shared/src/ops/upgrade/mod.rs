//! `kubectl etcd upgrade`: whether the cluster may move to the next etcd version (`check`), and
//! the move of this node's static-pod member (`node`). The facts (policy, patch floors, flags,
//! kubeadm's versions) are data: [`facts`].

pub mod check;
pub mod downgrade;
pub mod facts;
pub mod node;

pub use check::{check, CheckOptions, UpgradeCheck};
pub use facts::{facts, Version};
