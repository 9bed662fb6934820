//! `kubectl etcd upgrade check`: read-only; every check an operator runs before moving etcd to
//! another version, each with what to do when it fails.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::facts::{facts, Version};
use crate::base::units::{format_bytes, member_id, ser_hex};
use crate::ops::health::model::{check as mk, Check, HashOutcome, Status};
use crate::reach::cluster::Session;
use crate::reach::conn::call;
use crate::reach::quorum::{leader_of, MemberStatus};
use crate::reach::status::VersionInfo;
use crate::Result;

/// What `check` is asked.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The target version; default: the next step on the supported path.
    pub to: Option<Version>,
    /// `--kubernetes v1.34`: what that kubeadm would do to etcd.
    pub kubernetes: Option<String>,
    /// A directory of snapshots to look for a recent one that verifies.
    pub snapshots: Option<PathBuf>,
    /// The data dir to read offline (default: the manifest's `--data-dir`).
    pub data_dir: Option<PathBuf>,
}

/// One member's versions.
#[derive(Debug, Clone, Serialize)]
pub struct MemberVersion {
    /// Name.
    pub name: String,
    /// ID.
    #[serde(serialize_with = "ser_hex")]
    pub id: u64,
    /// Server version (Status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The cluster version it reports (`/version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<String>,
    /// The storage version it reports (etcd 3.6+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_version: Option<String>,
    /// Leader.
    pub leader: bool,
    /// Learner.
    pub learner: bool,
    /// In the working quorum.
    pub in_quorum: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A patch floor that applies, with every reason for it.
#[derive(Debug, Clone, Serialize)]
pub struct FloorInfo {
    /// The lowest patch allowed before the next minor.
    pub min: Version,
    /// Each entry of the table for this step: its floor, why, where.
    pub entries: Vec<super::facts::Floor>,
}

/// `--kubernetes`: the etcd that kubeadm's `upgrade apply` installs.
#[derive(Debug, Clone, Serialize)]
pub struct KubeadmInfo {
    /// The Kubernetes version asked about.
    pub kubernetes: String,
    /// The etcd image tag kubeadm installs.
    pub etcd: String,
    /// The entry was not for this minor: kubeadm falls back to the nearest.
    pub fallback: bool,
    /// Where.
    pub source: String,
}

/// The result of `upgrade check`.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeCheck {
    /// The lowest server version among the members (what the path starts from).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Version>,
    /// The version checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Version>,
    /// The target was chosen (no `--to`).
    pub target_default: bool,
    /// The cluster version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_version: Option<String>,
    /// Per member.
    pub members: Vec<MemberVersion>,
    /// The patch floor of a minor step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor: Option<FloorInfo>,
    /// `--kubernetes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubeadm: Option<KubeadmInfo>,
    /// Every check.
    pub checks: Vec<Check>,
    /// No check failed.
    pub ready: bool,
}

impl UpgradeCheck {
    /// The failed checks' names.
    pub fn failed(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name).collect()
    }

    /// Exit code: 0 ready, 1 not.
    pub fn exit_code(&self) -> crate::ExitCode {
        if self.ready {
            crate::ExitCode::Ok
        } else {
            crate::ExitCode::Negative
        }
    }
}

/// The default target: the latest patch of this minor while below the next minor's floor (or
/// when no next minor is known), else the latest known patch of the next minor.
pub fn default_target(current: &Version) -> Option<Version> {
    let f = facts();
    let latest_here = f.latest_of(current).map(|(_, v)| v);
    if let Some((_, floor)) = f.floor_from(current) {
        if *current < floor {
            return latest_here.filter(|l| l >= &floor).or(Some(floor));
        }
    }
    let next = current.next_minor();
    match f.latest_of(&next) {
        Some((_, v)) => Some(v),
        None => latest_here.filter(|l| l > current),
    }
}

/// The path check: a patch step or one minor up; never a skip, never down (that is `downgrade`).
pub fn path_check(lowest: &Version, highest: &Version, to: &Version) -> Check {
    let policy = facts().policy("one_minor_at_a_time").map(|p| p.source.clone()).unwrap_or_default();
    if to.major != lowest.major {
        return mk(
            "path",
            Status::Fail,
            format!("{lowest} → {to} changes the major version"),
            Some(format!("etcd upgrades one minor at a time ({policy})")),
        );
    }
    if to < highest {
        return mk(
            "path",
            Status::Fail,
            format!("{to} is below {highest}, which a member already runs: that is a downgrade"),
            Some("use kubectl etcd downgrade (etcd 3.6+), or pick a target at or above every member's version".into()),
        );
    }
    if to.same_minor(lowest) {
        return mk("path", Status::Ok, format!("{lowest} → {to}: a patch upgrade (always a valid step)"), None);
    }
    if to.minor == lowest.minor + 1 {
        return mk("path", Status::Ok, format!("{lowest} → {to}: one minor up"), None);
    }
    if to.minor < lowest.minor {
        return mk(
            "path",
            Status::Fail,
            format!("{to} is below {lowest}: that is a downgrade"),
            Some("use kubectl etcd downgrade (etcd 3.6+)".into()),
        );
    }
    let next = lowest.next_minor();
    let step = facts().latest_of(&next).map(|(_, v)| v.to_string()).unwrap_or_else(|| next.minor_str());
    mk(
        "path",
        Status::Fail,
        format!("{lowest} → {to} skips {}: etcd upgrades one minor at a time", next.minor_str()),
        Some(format!(
            "upgrade every member to {} first (kubectl etcd upgrade check --to {step}); source: {policy}",
            next.minor_str()
        )),
    )
}

/// The floor check of a minor step: every member still on the old minor at or above the floor.
pub fn floor_check(versions: &[(String, Version)], lowest: &Version, to: &Version) -> (Check, Option<FloorInfo>) {
    let f = facts();
    if to.same_minor(lowest) || to.minor != lowest.minor + 1 {
        return (mk("floor", Status::Ok, "a patch step has no floor", None), None);
    }
    let Some((_, floor)) = f.floor_from(lowest) else {
        return (
            mk(
                "floor",
                Status::Warn,
                format!("no floor known for {} → {}", lowest.minor_str(), to.minor_str()),
                Some("read etcd's upgrade guide for this step".into()),
            ),
            None,
        );
    };
    let info = FloorInfo { min: floor, entries: f.floors_from(lowest).into_iter().cloned().collect() };
    let below: Vec<String> =
        versions.iter().filter(|(_, v)| v.same_minor(lowest) && *v < floor).map(|(n, v)| format!("{n} {v}")).collect();
    let top = &info.entries[0];
    if !below.is_empty() {
        let reasons: Vec<String> =
            info.entries.iter().map(|e| format!("{}: {} ({})", e.min, e.why, e.source)).collect();
        return (
            mk(
                "floor",
                Status::Fail,
                format!(
                    "{} → {} needs every member on {floor} or later first; below: {}",
                    lowest.minor_str(),
                    to.minor_str(),
                    below.join(", ")
                ),
                Some(format!(
                    "upgrade to {} first (kubectl etcd upgrade node --to {} on each node); why: {}",
                    floor,
                    default_target(lowest).unwrap_or(floor),
                    reasons.join("; ")
                )),
            ),
            Some(info),
        );
    }
    let mut c = mk(
        "floor",
        Status::Ok,
        format!("every {} member is at or above the {floor} floor ({})", lowest.minor_str(), top.source),
        None,
    );
    if let Some((l, latest)) = f.latest_of(lowest) {
        if lowest < &latest {
            c.status = Status::Warn;
            c.hint = Some(format!("etcd advises the most recent patch ({latest}, {}) before the next minor", l.source));
        }
    }
    (c, Some(info))
}

/// The manifest's flags against the target: removed (fail) and deprecated (warn) ones, each
/// with its replacement.
pub fn flags_check(flags: &std::collections::BTreeMap<String, String>, to: &Version) -> Check {
    let (mut fail, mut warn) = (Vec::new(), Vec::new());
    for fact in &facts().flags {
        let Some(value) = flags.get(&fact.flag) else { continue };
        if fact.value.as_deref().is_some_and(|v| v != value) {
            continue;
        }
        let at = |m: &Option<String>| {
            m.as_deref().and_then(Version::parse).is_some_and(|m| (m.major, m.minor) <= (to.major, to.minor))
        };
        let shown = if fact.value.is_some() { format!("--{}={value}", fact.flag) } else { format!("--{}", fact.flag) };
        let instead = fact
            .replacement
            .as_ref()
            .map(|r| format!("use {}", r.replace("VALUE", value)))
            .unwrap_or_else(|| "remove it".into());
        let why = fact.why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default();
        if at(&fact.removed_in) {
            fail.push(format!(
                "{shown} is removed in {}: {instead}{why} [{}]",
                fact.removed_in.clone().unwrap_or_default(),
                fact.source
            ));
        } else if at(&fact.deprecated_in) {
            let gone = fact.removed_in.as_ref().map(|r| format!(", removed in {r}")).unwrap_or_default();
            warn.push(format!(
                "{shown} is deprecated in {}{gone}: {instead} [{}]",
                fact.deprecated_in.clone().unwrap_or_default(),
                fact.source
            ));
        }
    }
    if !fail.is_empty() {
        let n = fail.len();
        fail.extend(warn);
        return mk(
            "flags",
            Status::Fail,
            format!("{n} flag(s) etcd {} no longer accepts", to.minor_str()),
            Some(fail.join("; ")),
        );
    }
    if !warn.is_empty() {
        return mk("flags", Status::Warn, format!("{} deprecated flag(s)", warn.len()), Some(warn.join("; ")));
    }
    mk("flags", Status::Ok, format!("no flag in the manifest is removed or deprecated in {}", to.minor_str()), None)
}

/// What this node's data dir records about membership: the v2 store (newest `.snap` plus the
/// WAL's conf changes, etcd ≤3.5's source of truth) against the backend's `members` buckets
/// (3.6's source of truth).
pub fn membership_check(data_dir: &Path, to: Option<&Version>) -> Check {
    let v3 = match crate::store::backend::bucket_members(data_dir) {
        Ok(m) => m,
        Err(e) => {
            return mk(
                "membership",
                Status::Warn,
                format!("the backend of {} is unreadable: {e}", data_dir.display()),
                Some("run this on the control-plane node, as root".into()),
            )
        }
    };
    let store = crate::store::wal::v2_store(data_dir);
    let log = crate::store::wal::membership(data_dir);
    let mut v2: std::collections::BTreeMap<u64, bool> = store.as_ref().map(|s| s.members.clone()).unwrap_or_default();
    if let Some(s) = &store {
        for id in &s.removed {
            v2.remove(id);
        }
    }
    for (id, m) in &log.members {
        v2.insert(*id, m.is_learner);
    }
    for id in &log.removed {
        v2.remove(id);
    }
    let v3map: std::collections::BTreeMap<u64, bool> = v3.iter().map(|m| (m.id, m.is_learner)).collect();
    let mut problems = Vec::new();
    for (id, l) in &v3map {
        match v2.get(id) {
            None => problems.push(format!(
                "{} is in the backend but not in the v2 store (a zombie member after 3.6)",
                member_id(*id)
            )),
            Some(l2) if l2 != l => problems.push(format!(
                "{} is a {} in the backend but a {} in the v2 store (\"too many learner members\" after 3.6)",
                member_id(*id),
                if *l { "learner" } else { "voter" },
                if *l2 { "learner" } else { "voter" }
            )),
            _ => {}
        }
    }
    for id in v2.keys().filter(|id| !v3map.contains_key(id)) {
        problems.push(format!("{} is in the v2 store but not in the backend (3.6 would lose it)", member_id(*id)));
    }
    let to36 = to.is_some_and(|t| (t.major, t.minor) >= (3, 6));
    let custom = store.as_ref().map(|s| s.custom.clone()).unwrap_or_default();
    if !problems.is_empty() {
        let fix = "etcd 3.5.26 and later repair the backend from the v2 store at start: upgrade to the 3.5 floor first, then check again (https://etcd.io/blog/2025/zombie_members_upgrade/)";
        return mk(
            "membership",
            if to36 { Status::Fail } else { Status::Warn },
            format!("the v2 store and the backend of {} disagree: {}", data_dir.display(), problems.join("; ")),
            Some(fix.into()),
        );
    }
    if to36 && !custom.is_empty() {
        return mk(
            "membership",
            Status::Fail,
            format!("the v2 store holds custom data ({}): etcd 3.6 refuses to start", custom.join(", ")),
            Some("migrate or drop the v2 data first (etcdutl check v2store; https://etcd.io/docs/v3.6/upgrades/upgrade_3_6/)".into()),
        );
    }
    let what = if store.is_some() {
        "the v2 store and the backend agree"
    } else {
        "no .snap file yet; the WAL and the backend agree"
    };
    mk("membership", Status::Ok, format!("{what} on {} member(s) ({})", v3map.len(), data_dir.display()), None)
}

/// Bytes under `dir` (files only, symlinks not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Free bytes for an unprivileged writer on the filesystem holding `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Room for kubeadm's copy of the data dir and for a snapshot, beside the data dir.
pub fn room_check(data_dir: &Path, db_size: u64) -> Check {
    let size = dir_size(data_dir);
    let parent = data_dir.parent().unwrap_or(data_dir);
    let Some(free) = free_space(parent) else {
        return mk("room", Status::Warn, format!("cannot read the free space of {}", parent.display()), None);
    };
    // The copy, a snapshot (the DB size), and a tenth of both as margin.
    let need = (size + db_size) + (size + db_size) / 10;
    let msg = format!(
        "{} free beside {} ({}); a copy and a snapshot need {}",
        format_bytes(free),
        data_dir.display(),
        format_bytes(size),
        format_bytes(need)
    );
    if free < need {
        return mk(
            "room",
            Status::Fail,
            msg,
            Some(format!("free at least {} on {}", format_bytes(need - free), parent.display())),
        );
    }
    mk("room", Status::Ok, msg, None)
}

/// The newest snapshot in `dir` that verifies, or a warning that says to take one.
pub fn snapshot_check(dir: &Path) -> Check {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let take = "take one: kubectl etcd restore snapshot save --dir DIR (upgrade node takes one first)";
    let Some((when, newest)) = files.pop() else {
        return mk("snapshot", Status::Warn, format!("no snapshot in {}", dir.display()), Some(take.into()));
    };
    let age = when.elapsed().unwrap_or_default();
    match crate::store::snapfile::verify(&newest).map(|_| ()) {
        Ok(()) if age < std::time::Duration::from_secs(24 * 3600) => mk(
            "snapshot",
            Status::Ok,
            format!("{} verifies ({} old)", newest.display(), crate::base::units::format_duration(age)),
            None,
        ),
        Ok(()) => mk(
            "snapshot",
            Status::Warn,
            format!("the newest snapshot, {}, is {} old", newest.display(), crate::base::units::format_duration(age)),
            Some(take.into()),
        ),
        Err(e) => mk(
            "snapshot",
            Status::Warn,
            format!("the newest snapshot, {}, does not verify: {e}", newest.display()),
            Some(take.into()),
        ),
    }
}

/// Every member's standing, and the `/version` of each that answered.
pub(crate) async fn statuses_and_versions(session: &Session) -> Result<(Vec<MemberStatus>, Vec<Option<VersionInfo>>)> {
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    let versions = futures::future::join_all(statuses.iter().map(|s| async move {
        match (&s.url, s.answered()) {
            (Some(u), true) => session.version_at(u).await.ok(),
            _ => None,
        }
    }))
    .await;
    Ok((statuses, versions))
}

/// Runs `upgrade check`.
pub async fn check(session: &Session, opts: &CheckOptions) -> Result<UpgradeCheck> {
    let (statuses, versions) = statuses_and_versions(session).await?;
    assess(session, opts, &statuses, &versions).await
}

/// The checks from what the members said.
pub async fn assess(
    session: &Session,
    opts: &CheckOptions,
    statuses: &[MemberStatus],
    versions: &[Option<VersionInfo>],
) -> Result<UpgradeCheck> {
    let leader = leader_of(statuses);
    let members = member_versions(statuses, versions, leader);
    let cluster_version = cluster_version_of(statuses, versions);
    let parsed: Vec<(String, Version)> =
        members.iter().filter_map(|m| Some((m.name.clone(), Version::parse(m.version.as_deref()?)?))).collect();
    let lowest = parsed.iter().map(|(_, v)| *v).min();
    let highest = parsed.iter().map(|(_, v)| *v).max();
    let stepped = version_checks(&members, &parsed, cluster_version.as_deref(), opts.to);
    let mut checks = stepped.checks;
    checks.extend(gate_checks(statuses, leader));
    checks.push(alarms_check(session, statuses).await);
    checks.push(hash_check(session, statuses).await);
    checks.extend(node_checks(session, opts, statuses, stepped.target.as_ref()));
    let kubeadm = match &opts.kubernetes {
        Some(k) => {
            let info = kubeadm_info(k)?;
            checks.push(kubeadm_check(&info, lowest, highest, &parsed));
            Some(info)
        }
        None => None,
    };
    let ready = !checks.iter().any(|c| c.status == Status::Fail);
    Ok(UpgradeCheck {
        current: lowest,
        target: stepped.target,
        target_default: opts.to.is_none(),
        cluster_version,
        members,
        floor: stepped.floor,
        kubeadm,
        checks,
        ready,
    })
}

/// Each member's versions as the check shows them.
pub(crate) fn member_versions(
    statuses: &[MemberStatus],
    versions: &[Option<VersionInfo>],
    leader: Option<u64>,
) -> Vec<MemberVersion> {
    statuses
        .iter()
        .zip(versions)
        .map(|(s, v)| MemberVersion {
            name: s.member.display_name(),
            id: s.member.id,
            version: s.status.as_ref().ok().map(|x| x.version.clone()),
            cluster_version: v.as_ref().map(|v| v.cluster.clone()),
            storage_version: v.as_ref().and_then(|v| v.storage.clone()),
            leader: Some(s.member.id) == leader,
            learner: s.member.is_learner,
            in_quorum: s.in_quorum(),
            error: (!s.in_quorum() && !s.member.is_learner).then(|| s.standing.reason.clone().unwrap_or_default()),
        })
        .collect()
}

/// What the members' versions say: the `versions` check, the target, and the path, floor and
/// release checks of the step to it.
struct Stepped {
    checks: Vec<Check>,
    target: Option<Version>,
    floor: Option<FloorInfo>,
}

fn version_checks(
    members: &[MemberVersion],
    parsed: &[(String, Version)],
    cluster_version: Option<&str>,
    to: Option<Version>,
) -> Stepped {
    let (Some(lo), Some(hi)) = (parsed.iter().map(|(_, v)| *v).min(), parsed.iter().map(|(_, v)| *v).max()) else {
        let none = mk(
            "versions",
            Status::Fail,
            "no member reported its version",
            Some("is any member up? see kubectl etcd health".into()),
        );
        return Stepped { checks: vec![none], target: to, floor: None };
    };
    let list =
        members.iter().map(|m| format!("{} {}", m.name, m.version.as_deref().unwrap_or("?"))).collect::<Vec<_>>();
    let silent = members.iter().filter(|m| m.version.is_none()).count();
    let (status, hint) = if silent > 0 {
        (Status::Fail, Some("every member must answer before its version can be judged".to_string()))
    } else if lo.same_minor(&hi) {
        (Status::Ok, None)
    } else {
        (
            Status::Warn,
            Some(format!("a rolling upgrade to {} is in progress: finish it before another step", hi.minor_str())),
        )
    };
    let mut checks = vec![mk(
        "versions",
        status,
        format!("{}; cluster version {}", list.join(", "), cluster_version.unwrap_or("unknown")),
        hint,
    )];
    let target = to.or_else(|| {
        if lo.same_minor(&hi) {
            default_target(&lo)
        } else {
            facts().latest_of(&hi).map(|(_, v)| v).or(Some(hi))
        }
    });
    let mut floor = None;
    match target {
        Some(t) if t == lo && t == hi => {
            checks.push(mk("path", Status::Ok, format!("every member runs {t} already: nothing to do"), None))
        }
        Some(t) => {
            checks.push(path_check(&lo, &hi, &t));
            let (c, f) = floor_check(parsed, &lo, &t);
            checks.push(c);
            floor = f;
            checks.extend(release_check(&t));
        }
        None => checks.push(mk("path", Status::Ok, format!("no newer release known after {hi}"), None)),
    }
    Stepped { checks, target, floor }
}

/// A target newer than the newest release of its minor this build knows: make sure it exists.
fn release_check(t: &Version) -> Option<Check> {
    let (l, latest) = facts().latest_of(t)?;
    (*t > latest).then(|| {
        mk(
            "release",
            Status::Warn,
            format!("{t} is newer than {latest}, the latest {} this build knows ({})", t.minor_str(), l.source),
            Some("make sure the image exists".into()),
        )
    })
}

/// The health gate from the quorum probe: every voter in quorum, one leader, no learner
/// mid-join. (A voter in quorum completed a linearizable read and a proposal and is within
/// [`crate::reach::quorum::REACH`] entries of the leader: no separate raft-index check is needed.)
fn gate_checks(statuses: &[MemberStatus], leader: Option<u64>) -> Vec<Check> {
    let mut checks = Vec::new();
    let voters: Vec<&MemberStatus> = statuses.iter().filter(|s| !s.member.is_learner).collect();
    let out: Vec<String> = voters.iter().filter(|s| !s.in_quorum()).map(|s| s.why_not()).collect();
    if out.is_empty() {
        checks.push(mk(
            "quorum",
            Status::Ok,
            format!(
                "all {} voters in quorum (each took a linearizable read and a proposal, within {} entries of the leader)",
                voters.len(),
                crate::reach::quorum::REACH
            ),
            None,
        ));
    } else {
        checks.push(mk(
            "quorum",
            Status::Fail,
            format!("{} of {} voters not in quorum: {}", out.len(), voters.len(), out.join("; ")),
            Some(
                "bring every member back first (kubectl etcd health); an upgrade takes one member down at a time"
                    .into(),
            ),
        ));
    }
    let followed: std::collections::BTreeSet<u64> =
        statuses.iter().filter(|s| s.in_quorum()).filter_map(|s| s.status.as_ref().ok().map(|x| x.leader)).collect();
    checks.push(match leader {
        Some(l) if followed.len() == 1 => {
            mk("leader", Status::Ok, format!("one leader, {}", name_of(statuses, l)), None)
        }
        Some(_) => mk(
            "leader",
            Status::Fail,
            format!(
                "members follow different leaders ({})",
                followed.iter().map(|l| member_id(*l)).collect::<Vec<_>>().join(", ")
            ),
            Some("wait for the election to settle".into()),
        ),
        None => mk("leader", Status::Fail, "no leader", Some("the cluster has no quorum".into())),
    });
    let learners: Vec<String> = statuses
        .iter()
        .filter(|s| s.member.is_learner)
        .map(|s| format!("{} ({})", s.member.display_name(), member_id(s.member.id)))
        .collect();
    checks.push(if learners.is_empty() {
        mk("learners", Status::Ok, "no learner", None)
    } else {
        mk(
            "learners",
            Status::Fail,
            format!("a learner is mid-join: {}", learners.join(", ")),
            Some("promote it (kubectl etcd learner promote) or remove it first".into()),
        )
    });
    checks
}

/// This node: the manifest's flags against the target, room and membership in its data dir, and
/// the newest snapshot of `--snapshots`.
fn node_checks(
    session: &Session,
    opts: &CheckOptions,
    statuses: &[MemberStatus],
    target: Option<&Version>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let manifest = session.discovery.manifest.as_ref();
    match (manifest, target) {
        (Some(m), Some(t)) => checks.push(flags_check(&m.flags, t)),
        (None, _) => checks.push(mk(
            "flags",
            Status::Warn,
            "no static pod manifest on this node: flags not checked",
            Some("run on a control-plane node, or pass --manifest".into()),
        )),
        _ => {}
    }
    let data_dir = opts.data_dir.clone().or_else(|| manifest.and_then(|m| m.flag("data-dir")).map(PathBuf::from));
    match data_dir.filter(|d| d.join("member").is_dir()) {
        Some(d) => {
            let db = statuses.iter().filter_map(|s| s.status.as_ref().ok()).map(|s| s.db_size).max().unwrap_or(0);
            checks.push(room_check(&d, db));
            checks.push(membership_check(&d, target));
        }
        None => checks.push(mk(
            "membership",
            Status::Warn,
            "this node's data dir is not readable here: membership and room not checked",
            Some("run on the control-plane node as root, or pass --data-dir".into()),
        )),
    }
    if let Some(dir) = &opts.snapshots {
        checks.push(snapshot_check(dir));
    }
    checks
}

/// `--kubernetes vX.Y`: the etcd kubeadm of that version installs.
fn kubeadm_info(k: &str) -> Result<KubeadmInfo> {
    let (entry, fallback) = facts().kubeadm_etcd(k).ok_or_else(|| {
        crate::Error::Usage(format!(
            "--kubernetes {k:?} is not a Kubernetes version: expected vMAJOR.MINOR, e.g. v1.34"
        ))
    })?;
    Ok(KubeadmInfo { kubernetes: k.to_string(), etcd: entry.etcd.clone(), fallback, source: entry.source.clone() })
}

/// What kubeadm's `upgrade apply` would do to etcd from here.
pub fn kubeadm_check(
    info: &KubeadmInfo,
    lowest: Option<Version>,
    highest: Option<Version>,
    parsed: &[(String, Version)],
) -> Check {
    let Some(ke) = Version::parse(&info.etcd) else {
        return mk("kubeadm", Status::Warn, format!("kubeadm's etcd {} is not a version", info.etcd), None);
    };
    let note = if info.fallback { " (not listed for this minor: kubeadm takes the nearest)" } else { "" };
    let (Some(lo), Some(hi)) = (lowest, highest) else {
        return mk(
            "kubeadm",
            Status::Warn,
            format!("kubeadm {} installs etcd {}{note}", info.kubernetes, info.etcd),
            None,
        );
    };
    if ke <= hi {
        return mk(
            "kubeadm",
            Status::Ok,
            format!(
                "kubeadm {} installs etcd {}{note}: not newer than {hi}, so it leaves etcd alone",
                info.kubernetes, info.etcd
            ),
            None,
        );
    }
    let p = path_check(&lo, &hi, &ke);
    let (f, _) = floor_check(parsed, &lo, &ke);
    let prefix = format!("kubeadm {} installs etcd {}{note} ({})", info.kubernetes, info.etcd, info.source);
    if p.status == Status::Fail {
        return mk("kubeadm", Status::Fail, format!("{prefix}: {}", p.message), p.hint);
    }
    if f.status == Status::Fail {
        return mk("kubeadm", Status::Fail, format!("{prefix}, and kubeadm checks no floor: {}", f.message), f.hint);
    }
    mk("kubeadm", Status::Ok, format!("{prefix}: a valid step from {lo}"), None)
}

fn name_of(statuses: &[MemberStatus], id: u64) -> String {
    statuses.iter().find(|s| s.member.id == id).map(|s| s.member.display_name()).unwrap_or_else(|| member_id(id))
}

/// The cluster version: what the members in quorum report (the most common), else any.
pub(crate) fn cluster_version_of(statuses: &[MemberStatus], versions: &[Option<VersionInfo>]) -> Option<String> {
    let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
    for (s, v) in statuses.iter().zip(versions) {
        if let Some(v) = v {
            if !v.cluster.is_empty() && v.cluster != "not_decided" {
                *count.entry(v.cluster.as_str()).or_default() += if s.in_quorum() { 10 } else { 1 };
            }
        }
    }
    count.into_iter().max_by_key(|(_, n)| *n).map(|(v, _)| v.to_string())
}

async fn alarms_check(session: &Session, statuses: &[MemberStatus]) -> Check {
    let Ok((mut c, url)) = session.any_client(statuses, None).await else {
        return mk("alarms", Status::Fail, "no voter in quorum to list alarms", None);
    };
    match call(
        &url,
        "alarm list",
        session.command_timeout(),
        c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None),
    )
    .await
    {
        Err(e) => mk("alarms", Status::Fail, format!("alarm list failed: {e}"), None),
        Ok(r) => {
            let raised: Vec<String> = r
                .alarms()
                .iter()
                .filter(|a| a.alarm() != etcd_client::AlarmType::None)
                .map(|a| format!("{:?} on {}", a.alarm(), name_of(statuses, a.member_id())).to_uppercase())
                .collect();
            if raised.is_empty() {
                mk("alarms", Status::Ok, "no alarm", None)
            } else {
                mk(
                    "alarms",
                    Status::Fail,
                    format!("alarms raised: {}", raised.join(", ")),
                    Some("clear them first (NOSPACE: kubectl etcd defrag --compact --disarm)".into()),
                )
            }
        }
    }
}

/// HashKV of every voter in quorum at one revision (the lowest they report): a member whose
/// keyspace differs must be replaced before an upgrade, not carried through it.
async fn hash_check(session: &Session, statuses: &[MemberStatus]) -> Check {
    let voters: Vec<(&MemberStatus, &str)> =
        statuses.iter().filter(|s| s.in_quorum()).filter_map(|s| Some((s, s.url.as_deref()?))).collect();
    let Some(revision) = voters.iter().filter_map(|(s, _)| s.status.as_ref().ok().map(|x| x.revision)).min() else {
        return mk("hash", Status::Fail, "no voter in quorum to compare HashKV on", None);
    };
    let answers = futures::future::join_all(voters.iter().map(|(_, url)| async move {
        let mut c = session.dialer.client(url).await?;
        call(url, "hashkv", session.command_timeout(), c.hash_kv(revision)).await.map(|r| r.hash())
    }))
    .await;
    let mut outcome = HashOutcome { revision, hashes: Vec::new(), errors: Vec::new() };
    for ((s, _), a) in voters.iter().zip(answers) {
        match a {
            Ok(h) => outcome.hashes.push((s.member.display_name(), h)),
            Err(e) => outcome.errors.push(format!("{}: {}", s.member.display_name(), e.class.short())),
        }
    }
    let mut c = crate::ops::health::checks::hash_check(Some(&outcome), false)
        .unwrap_or_else(|| mk("hash", Status::Warn, "HashKV did not run", None));
    // Upgrading is not the moment to carry a keyspace nobody compared.
    if c.status == Status::Warn && outcome.hashes.is_empty() {
        c.status = Status::Fail;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn the_path_is_one_minor_at_a_time() {
        assert_eq!(path_check(&v("3.4.23"), &v("3.4.23"), &v("3.5.1")).status, Status::Ok);
        assert_eq!(path_check(&v("3.5.1"), &v("3.5.1"), &v("3.5.30")).status, Status::Ok);
        let skip = path_check(&v("3.4.23"), &v("3.4.23"), &v("3.6.5"));
        assert_eq!(skip.status, Status::Fail);
        assert!(skip.message.contains("skips 3.5"), "{}", skip.message);
        assert_eq!(
            path_check(&v("3.5.1"), &v("3.5.2"), &v("3.5.1")).status,
            Status::Fail,
            "below a member: a downgrade"
        );
        assert_eq!(path_check(&v("3.5.1"), &v("3.5.1"), &v("4.0.0")).status, Status::Fail);
    }

    #[test]
    fn the_floor_is_named_and_met() {
        let members = vec![("a".to_string(), v("3.5.21")), ("b".to_string(), v("3.5.33"))];
        let (c, info) = floor_check(&members, &v("3.5.21"), &v("3.6.5"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("3.5.32") && c.message.contains("a 3.5.21"), "{}", c.message);
        assert_eq!(info.unwrap().entries.len(), 3);
        let members = vec![("a".to_string(), v("3.5.33"))];
        assert_eq!(floor_check(&members, &v("3.5.33"), &v("3.6.5")).0.status, Status::Ok);
        // 3.4 → 3.5 has no floor above 3.4.0; not the latest patch is a warning.
        let members = vec![("a".to_string(), v("3.4.23"))];
        assert_eq!(floor_check(&members, &v("3.4.23"), &v("3.5.1")).0.status, Status::Warn);
    }

    #[test]
    fn the_default_target_goes_to_the_floor_first() {
        assert_eq!(default_target(&v("3.5.1")), Some(v("3.5.33")));
        assert_eq!(default_target(&v("3.5.33")), Some(v("3.6.14")));
        assert_eq!(default_target(&v("3.4.23")), Some(v("3.5.33")));
        assert_eq!(default_target(&v("3.7.0")), Some(v("3.7.1")));
        assert_eq!(default_target(&v("3.7.1")), None);
    }

    #[test]
    fn removed_flags_fail_and_deprecated_ones_warn() {
        let flags = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let c = flags_check(&flags(&[("enable-v2", "true"), ("data-dir", "/var/lib/etcd")]), &v("3.6.5"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.hint.unwrap().contains("--enable-v2 is removed in 3.6"));
        assert_eq!(flags_check(&flags(&[("enable-v2", "true")]), &v("3.5.30")).status, Status::Ok);
        let c = flags_check(&flags(&[("experimental-initial-corrupt-check", "true")]), &v("3.6.5"));
        assert_eq!(c.status, Status::Warn);
        let c = flags_check(&flags(&[("experimental-initial-corrupt-check", "true")]), &v("3.7.1"));
        assert_eq!(c.status, Status::Fail);
        assert!(c.hint.unwrap().contains("--feature-gates=InitialCorruptCheck=true"));
        assert_eq!(flags_check(&flags(&[("logger", "zap")]), &v("3.5.1")).status, Status::Ok);
        assert_eq!(flags_check(&flags(&[("logger", "capnslog")]), &v("3.5.1")).status, Status::Warn);
    }

    #[test]
    fn kubeadm_without_the_floor_is_named() {
        let info =
            KubeadmInfo { kubernetes: "v1.34".into(), etcd: "3.6.5-0".into(), fallback: false, source: "s".into() };
        let members = vec![("a".to_string(), v("3.5.24"))];
        let c = kubeadm_check(&info, Some(v("3.5.24")), Some(v("3.5.24")), &members);
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("checks no floor"), "{}", c.message);
        let members = vec![("a".to_string(), v("3.5.33"))];
        assert_eq!(kubeadm_check(&info, Some(v("3.5.33")), Some(v("3.5.33")), &members).status, Status::Ok);
        let members = vec![("a".to_string(), v("3.4.23"))];
        assert_eq!(kubeadm_check(&info, Some(v("3.4.23")), Some(v("3.4.23")), &members).status, Status::Fail);
    }
}
