//! `kubectl etcd doctor`: why a member is down — its log ([`logs`]), and (still in
//! `crate::restore::doctor` until the move into layers) its data dir.

pub mod logs;
