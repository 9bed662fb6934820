//! What one member's Status RPC says, and the arithmetic on it: the leader most members follow,
//! whether a learner may be promoted, how many voters a quorum needs.

use serde::Serialize;

use crate::base::units::ser_hex;
use crate::reach::cluster::Session;
use crate::reach::conn::{call, TransportError};

/// What one member's Status RPC said.
#[derive(Debug, Clone, Serialize)]
pub struct StatusInfo {
    /// The leader it follows (0: none).
    #[serde(serialize_with = "ser_hex")]
    pub leader: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Last raft log index.
    pub raft_index: u64,
    /// Applied index.
    pub raft_applied_index: u64,
    /// Whether it is a learner.
    pub is_learner: bool,
    /// etcd version.
    pub version: String,
    /// DB size in bytes.
    pub db_size: u64,
    /// DB size in use in bytes.
    pub db_size_in_use: u64,
    /// The store's revision (from the response header).
    pub revision: i64,
    /// The cluster it belongs to (from the response header).
    #[serde(serialize_with = "ser_hex")]
    pub cluster_id: u64,
    /// The member that answered (from the response header).
    #[serde(serialize_with = "ser_hex")]
    pub member_id: u64,
    /// Errors the member reports about itself (etcd's `errors`, for example a raised alarm).
    pub errors: Vec<String>,
    /// The version of its database file (etcd 3.6 and later; `None` before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_version: Option<String>,
    /// The cluster's downgrade state as this member knows it (etcd 3.6 and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downgrade: Option<DowngradeState>,
}

/// etcd 3.6's downgrade state (Status's `downgradeInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DowngradeState {
    /// A downgrade is enabled.
    pub enabled: bool,
    /// The version the cluster is going down to (empty when none).
    pub target_version: String,
}

/// A Status response as a [`StatusInfo`]: the one place its fields are read.
pub fn status_info(
    r: std::result::Result<etcd_client::StatusResponse, TransportError>,
) -> std::result::Result<StatusInfo, TransportError> {
    let s = r?;
    Ok(StatusInfo {
        leader: s.leader(),
        raft_term: s.raft_term(),
        raft_index: s.raft_index(),
        raft_applied_index: s.raft_applied_index(),
        is_learner: s.is_learner(),
        version: s.version().to_string(),
        db_size: s.db_size().max(0) as u64,
        db_size_in_use: s.raft_used_db_size().max(0) as u64,
        revision: s.header().map(|h| h.revision()).unwrap_or(0),
        cluster_id: s.header().map(|h| h.cluster_id()).unwrap_or(0),
        member_id: s.header().map(|h| h.member_id()).unwrap_or(0),
        errors: s.errors().to_vec(),
        storage_version: Some(s.storage_version().to_string()).filter(|v| !v.is_empty()),
        downgrade: s
            .downgrade_info()
            .map(|d| DowngradeState { enabled: d.enabled(), target_version: d.target_version().to_string() }),
    })
}

/// etcd accepts a promote once the leader has replicated this share of its log to the learner
/// (etcd's `readyPercent` in `isLearnerReady`).
pub const LEARNER_READY_RATIO: f64 = 0.9;

/// The leader most members that answered follow (`votes`: each one's leader, 0 for none); on a
/// tie the highest ID. `None` when nobody knows a leader.
pub fn agreed_leader(votes: impl IntoIterator<Item = u64>) -> Option<u64> {
    let mut count: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for l in votes.into_iter().filter(|l| *l != 0) {
        *count.entry(l).or_default() += 1;
    }
    count.iter().max_by_key(|(_, n)| **n).map(|(l, _)| *l)
}

/// Whether a learner can be promoted, from what the Status RPC shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Readiness {
    /// The share of the leader's log the learner holds, in percent (100 at most).
    pub percent: Option<f64>,
    /// The index the learner must reach for etcd to accept a promote.
    pub target: Option<u64>,
    /// Whether etcd would accept a promote now.
    pub promotable: bool,
}

/// The one rule for "promotable" everywhere. etcd compares the learner's replicated index
/// (the leader's `Match` for it) with the leader's commit index; the API shows neither, so this
/// compares the learner's raft index with the leader's (the Status RPC's `raftIndex`, a commit
/// index on both sides), which is what etcd's rule sees up to an in-flight batch.
pub fn learner_readiness(learner_index: Option<u64>, leader_index: Option<u64>) -> Readiness {
    let target = leader_index.map(|l| (l as f64 * LEARNER_READY_RATIO).ceil() as u64);
    let percent = match (learner_index, leader_index) {
        (Some(a), Some(l)) if l > 0 => Some((a as f64 / l as f64 * 100.0).min(100.0)),
        _ => None,
    };
    let promotable = matches!((learner_index, target), (Some(a), Some(t)) if a >= t && leader_index > Some(0));
    Readiness { percent, target, promotable }
}

/// Quorum arithmetic: `(answering voters, voters, needed, may still fail)`.
pub fn quorum(answering: usize, voters: usize) -> (usize, usize, i64) {
    let needed = voters / 2 + 1;
    (answering, needed, answering as i64 - needed as i64)
}

impl Session {
    /// The Status RPC of whatever member serves `url` (what it says, not whether it is in a
    /// quorum: see [`Session::statuses`]).
    pub async fn status_at(&self, url: &str) -> std::result::Result<StatusInfo, TransportError> {
        self.dialer.probe(url).await?;
        let mut c = self.dialer.client(url).await?;
        status_info(call(url, "status", self.command_timeout(), c.status()).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_is_the_one_most_members_follow() {
        assert_eq!(agreed_leader([0, 0]), None);
        assert_eq!(agreed_leader([7, 7, 9]), Some(7));
        assert_eq!(agreed_leader([0, 9]), Some(9));
        assert_eq!(agreed_leader([3, 9]), Some(9), "a tie goes to the highest ID, every time");
    }

    #[test]
    fn promotable_at_ninety_percent_of_the_leaders_log() {
        let r = learner_readiness(Some(90), Some(100));
        assert!(r.promotable);
        assert_eq!(r.target, Some(90));
        assert_eq!(r.percent, Some(90.0));
        assert!(!learner_readiness(Some(89), Some(100)).promotable);
        assert!(!learner_readiness(None, Some(100)).promotable);
        assert!(!learner_readiness(Some(5), None).promotable);
        assert!(!learner_readiness(Some(0), Some(0)).promotable);
        assert_eq!(learner_readiness(Some(120), Some(100)).percent, Some(100.0));
        // ceil: 0.9 × 11 = 9.9 → 10 entries.
        assert!(!learner_readiness(Some(9), Some(11)).promotable);
        assert!(learner_readiness(Some(10), Some(11)).promotable);
    }
}

/// What a member's `/version` endpoint says: its server version, the cluster version it runs
/// at (the lowest its members agreed on, `MAJOR.MINOR.0`) and, from etcd 3.6, the storage version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VersionInfo {
    /// `etcdserver`.
    #[serde(alias = "etcdserver")]
    pub server: String,
    /// `etcdcluster` (`not_decided` right after a start).
    #[serde(alias = "etcdcluster")]
    pub cluster: String,
    /// `storage` (etcd 3.6 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Session {
    /// The `/version` of the member serving `url`.
    pub async fn version_at(&self, url: &str) -> std::result::Result<VersionInfo, TransportError> {
        let (code, body) = self.dialer.client_url_get(url, "/version", self.command_timeout()).await?;
        if code != 200 {
            return Err(TransportError::new(
                url,
                crate::reach::conn::FailureClass::Network(format!("HTTP {code}")),
                format!("/version answered HTTP {code}"),
            ));
        }
        serde_json::from_str(body.trim()).map_err(|e| {
            TransportError::new(
                url,
                crate::reach::conn::FailureClass::Network("bad /version".into()),
                format!("/version did not answer etcd's JSON ({e})"),
            )
        })
    }
}
