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
    /// `enable`: each member's storage version when the wait ended (`name version`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub storage_versions: Vec<String>,
    /// `enable`: every member's storage version reached the target within the wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_ready: Option<bool>,
    /// What comes next.
    pub next: Vec<String>,
}

/// The members whose storage version is not yet `target`'s minor (etcd 3.6 reports `3.5.0` for
/// a 3.5 storage version), as `name version`; and every member's, for the record.
/// `members`: each member's name and the storage version its Status reported.
pub fn storage_behind(members: &[(String, Option<String>)], target: &Version) -> (Vec<String>, Vec<String>) {
    let mut all = Vec::new();
    let mut behind = Vec::new();
    for (name, v) in members {
        let shown = format!("{name} {}", v.as_deref().unwrap_or("?"));
        if !v.as_deref().and_then(Version::parse).is_some_and(|v| v.same_minor(target)) {
            behind.push(shown.clone());
        }
        all.push(shown);
    }
    (behind, all)
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

/// Runs a downgrade action on the leader; `enable` then follows every member's storage version
/// until it is the target's (at most `wait`), reporting each change through `progress`.
pub async fn run(
    session: &Session,
    action: Action,
    target: Option<Version>,
    wait: std::time::Duration,
    progress: &mut dyn FnMut(String),
) -> Result<DowngradeResult> {
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
    let minor = target.map(|t| t.minor_str()).unwrap_or_default();
    let (mut storage_versions, mut storage_ready) = (Vec::new(), None);
    let next = match (action, target) {
        (Action::Validate, _) => vec![format!("kubectl etcd downgrade enable {version}")],
        (Action::Enable, Some(t)) => {
            let end = std::time::Instant::now() + wait;
            let mut last = Vec::new();
            let ready = loop {
                let statuses = session.statuses(&list.members).await;
                let seen: Vec<(String, Option<String>)> = statuses
                    .iter()
                    .map(|s| (s.member.display_name(), s.status.as_ref().ok().and_then(|x| x.storage_version.clone())))
                    .collect();
                let (behind, all) = storage_behind(&seen, &t);
                if all != last {
                    progress(format!("storage versions: {}", all.join(", ")));
                    last = all.clone();
                }
                storage_versions = all;
                if behind.is_empty() {
                    break true;
                }
                if std::time::Instant::now() >= end {
                    break false;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            };
            storage_ready = Some(ready);
            let swap = format!(
                "swap each member's image to a {minor} patch, the leader last: kubectl etcd upgrade node --to <{minor}.PATCH> --force path"
            );
            if ready {
                vec![format!("every member's storage version is {minor}: binaries may be swapped now"), swap]
            } else {
                vec![
                    format!(
                        "wait until every member's storage version is {minor} (kubectl etcd upgrade status shows it); do not swap binaries before"
                    ),
                    swap,
                    "or go back up: kubectl etcd downgrade cancel".into(),
                ]
            }
        }
        _ => vec![],
    };
    Ok(DowngradeResult {
        action,
        target: target.map(|t| t.to_string()),
        cluster_version: r.version().to_string(),
        storage_versions,
        storage_ready,
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

    #[test]
    fn storage_versions_are_followed_to_the_target_minor() {
        let t = Version::parse("3.5.0").unwrap();
        let m = |n: &str, v: Option<&str>| (n.to_string(), v.map(String::from));
        let (behind, all) = storage_behind(&[m("a", Some("3.6.0")), m("b", Some("3.5.0")), m("c", None)], &t);
        assert_eq!(behind, vec!["a 3.6.0", "c ?"], "a member that reports none is not there yet");
        assert_eq!(all, vec!["a 3.6.0", "b 3.5.0", "c ?"]);
        assert!(storage_behind(&[m("a", Some("3.5.0")), m("b", Some("3.5.0"))], &t).0.is_empty());
    }
}
