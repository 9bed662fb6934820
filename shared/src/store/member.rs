//! A member as etcd records it on disk: the backend's `members` bucket holds its JSON, and the
//! WAL's conf changes carry the same JSON in their context.

use serde::{Deserialize, Serialize};

use crate::base::units::ser_hex;

/// A member as etcd stores it on disk (the backend's `members` bucket, a WAL conf change's context).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMember {
    /// Member ID.
    #[serde(serialize_with = "ser_hex")]
    pub id: u64,
    /// Name; empty for a member that never started.
    #[serde(default)]
    pub name: String,
    /// Peer URLs.
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// Client URLs; empty for a member that never started.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    /// A learner.
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}
