//! `kubectl etcd upgrade status`: where the cluster stands between two versions — each member's
//! server, cluster and storage version, the downgrade state (etcd 3.6+), and how far a rolling
//! upgrade has got. Read-only.

use serde::Serialize;

use super::check::{member_versions, MemberVersion};
use super::facts::Version;
use crate::reach::cluster::Session;
use crate::reach::quorum::{leader_of, MemberStatus};
use crate::reach::status::{DowngradeState, VersionInfo};
use crate::Result;

/// A rolling upgrade in progress: members on different versions.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    /// The lowest version a member runs.
    pub from: Version,
    /// The highest (where the rollout is going).
    pub to: Version,
    /// Members on `to`.
    pub done: Vec<String>,
    /// Members still below `to`, or that did not answer.
    pub remaining: Vec<String>,
    /// A minor step (mixed minors are supported only while upgrading), not a patch rollout.
    pub minor_step: bool,
}

/// The result of `upgrade status`.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeStatus {
    /// Per member.
    pub members: Vec<MemberVersion>,
    /// The cluster version the members in quorum report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<String>,
    /// The downgrade state (etcd 3.6+, from the leader's Status); `None` below 3.6.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downgrade: Option<DowngradeState>,
    /// A rolling upgrade in progress; `None` when every member that answered runs one version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// Runs `upgrade status`.
pub async fn status(session: &Session) -> Result<UpgradeStatus> {
    let (statuses, versions) = super::check::statuses_and_versions(session).await?;
    Ok(standing(&statuses, &versions))
}

/// The status from what the members said.
pub fn standing(statuses: &[MemberStatus], versions: &[Option<VersionInfo>]) -> UpgradeStatus {
    let leader = leader_of(statuses);
    let members = member_versions(statuses, versions, leader);
    let downgrade = statuses
        .iter()
        .filter(|s| Some(s.member.id) == leader || leader.is_none())
        .find_map(|s| s.status.as_ref().ok().and_then(|x| x.downgrade.clone()));
    UpgradeStatus {
        cluster_version: super::check::cluster_version_of(statuses, versions),
        rollout: rollout(&members),
        downgrade,
        members,
    }
}

/// The rollout between the lowest and highest versions the members run, if they differ.
pub fn rollout(members: &[MemberVersion]) -> Option<Rollout> {
    let parsed: Vec<(&MemberVersion, Option<Version>)> =
        members.iter().map(|m| (m, m.version.as_deref().and_then(Version::parse))).collect();
    let from = parsed.iter().filter_map(|(_, v)| *v).min()?;
    let to = parsed.iter().filter_map(|(_, v)| *v).max()?;
    if from == to {
        return None;
    }
    let (done, remaining): (Vec<_>, Vec<_>) = parsed.iter().partition(|(_, v)| *v == Some(to));
    Some(Rollout {
        from,
        to,
        done: done.iter().map(|(m, _)| m.name.clone()).collect(),
        remaining: remaining.iter().map(|(m, _)| m.name.clone()).collect(),
        minor_step: !from.same_minor(&to),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, v: Option<&str>) -> MemberVersion {
        MemberVersion {
            name: name.into(),
            id: 1,
            version: v.map(String::from),
            cluster_version: None,
            storage_version: None,
            leader: false,
            learner: false,
            in_quorum: v.is_some(),
            error: None,
        }
    }

    #[test]
    fn a_rollout_names_the_members_done_and_left() {
        assert!(rollout(&[m("a", Some("3.5.1")), m("b", Some("3.5.1"))]).is_none());
        let r = rollout(&[m("a", Some("3.5.1")), m("b", Some("3.4.23")), m("c", None)]).unwrap();
        assert_eq!((r.from.to_string(), r.to.to_string()), ("3.4.23".into(), "3.5.1".into()));
        assert_eq!(r.done, vec!["a"]);
        assert_eq!(r.remaining, vec!["b", "c"], "a member that did not answer is not done");
        assert!(r.minor_step);
        let r = rollout(&[m("a", Some("3.5.1")), m("b", Some("3.5.0"))]).unwrap();
        assert!(!r.minor_step);
    }
}
