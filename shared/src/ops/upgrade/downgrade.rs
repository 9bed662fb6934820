//! `kubectl etcd downgrade validate|enable|cancel VERSION`: etcd 3.6's Maintenance Downgrade
//! API, behind the same health gate as an upgrade. Servers below 3.6 have no such API: the
//! refusal says so, and what to do instead.

use serde::Serialize;

use super::facts::{facts, Version};
use crate::reach::cluster::Session;
use crate::reach::conn::call;
use crate::{Error, Result};

/// The downgrade action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Would the cluster accept a downgrade to the version.
    Validate,
    /// Start it.
    Enable,
    /// Cancel it.
    Cancel,
}

/// What etcd answered.
#[derive(Debug, Clone, Serialize)]
pub struct DowngradeResult {
    /// The action.
    pub action: Action,
    /// The target version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The cluster version etcd reports in its answer.
    pub cluster_version: String,
    /// What comes next.
    pub next: Vec<String>,
}

/// Refuses unless every member answers on 3.6 or later; names the ones below.
pub fn require_downgrade_api(versions: &[(String, Option<Version>)]) -> Result<()> {
    let source = facts().policy("downgrade_needs_3_6").map(|p| p.source.clone()).unwrap_or_default();
    let below: Vec<String> = versions
        .iter()
        .filter(|(_, v)| v.is_none_or(|v| (v.major, v.minor) < (3, 6)))
        .map(|(n, v)| format!("{n} {}", v.map(|v| v.to_string()).unwrap_or_else(|| "(no answer)".into())))
        .collect();
    if below.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "the downgrade API exists from etcd 3.6 on, and these members run below it or did not answer: {}; an etcd 3.5 or older cluster goes back only by restoring a snapshot taken before the upgrade (kubectl etcd restore), or, while any member still runs the old minor, by putting the old image back on the upgraded members ({source})",
        below.join(", ")
    )))
}

/// Runs a downgrade action on the leader.
pub async fn run(session: &Session, action: Action, target: Option<Version>) -> Result<DowngradeResult> {
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    let versions: Vec<(String, Option<Version>)> = statuses
        .iter()
        .map(|s| (s.member.display_name(), s.status.as_ref().ok().and_then(|x| Version::parse(&x.version))))
        .collect();
    require_downgrade_api(&versions)?;
    let out: Vec<String> =
        statuses.iter().filter(|s| !s.member.is_learner && !s.in_quorum()).map(|s| s.why_not()).collect();
    if !out.is_empty() && action != Action::Cancel {
        return Err(Error::Refused(format!("every voter must be in quorum before a downgrade: {}", out.join("; "))));
    }
    let (c, url) = session.any_client(&statuses, None).await?;
    let version = target.map(|t| t.minor_str() + ".0").unwrap_or_default();
    let opts = match action {
        Action::Validate => etcd_client::DowngradeOptions::Validate(version.clone()),
        Action::Enable => etcd_client::DowngradeOptions::Enable(version.clone()),
        Action::Cancel => etcd_client::DowngradeOptions::Cancel,
    };
    let mut m = c.maintenance_client();
    let r = call(&url, "downgrade", session.command_timeout(), m.downgrade(opts)).await?;
    let next = match action {
        Action::Validate => vec![format!("kubectl etcd downgrade enable {version}")],
        Action::Enable => vec![
            format!(
                "wait until every member's storage version is {} (kubectl etcd upgrade check shows it)",
                target.map(|t| t.minor_str()).unwrap_or_default()
            ),
            format!(
                "then swap each member's image, the leader last: kubectl etcd upgrade node --to <a {} patch>",
                target.map(|t| t.minor_str()).unwrap_or_default()
            ),
        ],
        Action::Cancel => vec![],
    };
    Ok(DowngradeResult {
        action,
        target: target.map(|t| t.to_string()),
        cluster_version: r.version().to_string(),
        next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_below_3_6_are_refused_by_name() {
        let v = |s: &str| Version::parse(s);
        let e = require_downgrade_api(&[("a".into(), v("3.6.5")), ("b".into(), v("3.5.1")), ("c".into(), None)])
            .unwrap_err();
        let m = e.to_string();
        assert!(m.contains("b 3.5.1") && m.contains("c (no answer)") && !m.contains("a 3.6.5"), "{m}");
        assert!(m.contains("from etcd 3.6 on"));
        assert!(require_downgrade_api(&[("a".into(), v("3.6.5"))]).is_ok());
    }
}
