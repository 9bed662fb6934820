//! `kubectl etcd upgrade`: whether the cluster may move to the next etcd version (`check`), and
//! the move of this node's static-pod member (`node`), and where a rollout stands (`status`). The facts (policy, patch floors, flags,
//! kubeadm's versions) are data: [`facts`].

pub mod check;
pub mod downgrade;
pub mod facts;
pub mod node;
pub mod status;

pub use check::{check, CheckOptions, UpgradeCheck};
pub use facts::{facts, Version};
pub use status::{status, UpgradeStatus};
