//! The checks of a health run: pure functions from what the members said to one [`Check`] each,
//! so that every verdict and message is unit-tested.

use super::model::{check, label, voters, Check, MemberHealth, Status};

use super::model::{Alarm, HashOutcome, CERT_WARN_SECS};
use crate::base::units::{format_bytes, member_id};
use crate::reach::cluster::MemberList;
use crate::reach::conn::{FailureClass, TransportError};
use crate::reach::discovery::settings::Endpoint;
use crate::reach::status::quorum;
use crate::reach::tls::CertInfo;
use crate::reach::url::same_url;

pub(crate) fn members_check(rows: &[MemberHealth]) -> Check {
    let bad: Vec<String> = rows
        .iter()
        .filter(|r| r.is_member && !r.is_learner && r.health != "healthy")
        .map(|r| {
            format!(
                "{} {}",
                label(r),
                r.failure.as_ref().map(|f| f.class.short()).unwrap_or_else(|| r.errors.join(", "))
            )
        })
        .collect();
    let n = voters(rows).count();
    if bad.is_empty() {
        check("members", Status::Ok, format!("{n}/{n} voting members healthy"), None)
    } else {
        check(
            "members",
            Status::Fail,
            format!("{}/{n} voting members healthy; unhealthy: {}", n - bad.len(), bad.join("; ")),
            Some("see the ERRORS column; for a member that is down, check its etcd process and logs".into()),
        )
    }
}

pub(crate) fn quorum_check(rows: &[MemberHealth]) -> Check {
    let n = voters(rows).count();
    let up = voters(rows).filter(|r| r.in_quorum).count();
    let (_, needed, spare) = quorum(up, n);
    let mut msg = format!("{up}/{n} voters in quorum, {needed} needed, may lose {} more", spare.max(0));
    // Members that answer but are not part of the quorum are named: they are the ones a
    // partition or a damaged log leaves behind, and they must not be counted.
    let outside: Vec<String> = voters(rows)
        .filter(|r| r.answered && !r.in_quorum)
        .map(|r| format!("{} ({})", label(r), r.errors.first().cloned().unwrap_or_default()))
        .collect();
    if !outside.is_empty() {
        msg.push_str(&format!("; answering but not in quorum: {}", outside.join(", ")));
    }
    let learners: Vec<&MemberHealth> = rows.iter().filter(|r| r.is_member && r.is_learner && r.answered).collect();
    if up == 0 && !learners.is_empty() {
        let names: Vec<String> = learners.iter().map(|r| label(r)).collect();
        let revs: Vec<String> = learners
            .iter()
            .map(|r| {
                format!(
                    "{} (revision {}, applied index {})",
                    label(r),
                    r.revision.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
                    r.raft_applied_index.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
                )
            })
            .collect();
        return check(
            "quorum",
            Status::Fail,
            format!("quorum lost: {msg}; only learner {} answers", names.join(", ")),
            Some(format!(
                "a learner cannot be promoted without a quorum; if the voters are gone for good, rebuild a one-member cluster from the learner's data dir: on the learner's node, stop etcd and run `kubectl etcd restore from-data-dir <its --data-dir>` ({})",
                revs.join(", ")
            )),
        );
    }
    if spare < 0 {
        check(
            "quorum",
            Status::Fail,
            format!("quorum lost: {msg}"),
            Some(
                "bring members back; if they are gone for good, restore from a snapshot (kubectl etcd restore)".into(),
            ),
        )
    } else if spare == 0 && n > 1 {
        check("quorum", Status::Warn, msg, Some("one more failure loses quorum".into()))
    } else {
        check("quorum", Status::Ok, msg, None)
    }
}

pub(crate) fn leader_check(rows: &[MemberHealth], leader: Option<u64>) -> Check {
    let answering: Vec<&MemberHealth> = rows.iter().filter(|r| r.answered && r.is_member).collect();
    let leaders: std::collections::BTreeSet<u64> = answering.iter().filter_map(|r| r.leader).collect();
    let terms: std::collections::BTreeSet<u64> = answering.iter().filter_map(|r| r.raft_term).collect();
    let no_leader: Vec<String> = answering.iter().filter(|r| r.leader.is_none()).map(|r| label(r)).collect();
    match leader {
        None => check(
            "leader",
            Status::Fail,
            "no member knows a leader",
            Some("the cluster has no quorum or is electing; check the quorum check and etcd logs".into()),
        ),
        Some(_) if leaders.len() > 1 => check(
            "leader",
            Status::Fail,
            format!(
                "members disagree on the leader: {}",
                leaders.iter().map(|l| member_id(*l)).collect::<Vec<_>>().join(", ")
            ),
            Some("a network partition or an election in progress; run again".into()),
        ),
        Some(l) => {
            let name = rows.iter().find(|r| r.id == Some(l)).map(label).unwrap_or_else(|| member_id(l));
            let leader_answers = rows.iter().any(|r| r.id == Some(l) && r.answered);
            if !leader_answers {
                check(
                    "leader",
                    Status::Fail,
                    format!("the members follow {name} ({}), which does not answer", member_id(l)),
                    Some("an election follows within the election timeout while a quorum remains; run again".into()),
                )
            } else if !no_leader.is_empty() {
                check(
                    "leader",
                    Status::Warn,
                    format!("leader {name}, but {} know no leader", no_leader.join(",")),
                    None,
                )
            } else if terms.len() > 1 {
                check(
                    "leader",
                    Status::Warn,
                    format!(
                        "leader {name} ({}), but members report terms {}",
                        member_id(l),
                        terms.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
                    ),
                    None,
                )
            } else {
                check(
                    "leader",
                    Status::Ok,
                    format!("{name} ({}) leads term {}", member_id(l), terms.iter().next().copied().unwrap_or(0)),
                    None,
                )
            }
        }
    }
}

/// Lag (in entries) above which a voter is reported as behind.
/// (The quorum probe's reach: a voter further behind is not counted in quorum either.)
const LAG_WARN: u64 = crate::reach::quorum::REACH;

pub(crate) fn progress_check(rows: &[MemberHealth]) -> Check {
    let behind: Vec<String> = voters(rows)
        .filter(|r| r.applied_lag.is_some_and(|l| l > LAG_WARN))
        .map(|r| format!("{} {} entries behind", label(r), r.applied_lag.unwrap_or(0)))
        .collect();
    let max = voters(rows).filter_map(|r| r.applied_lag).max();
    let learners: Vec<String> =
        rows.iter().filter_map(|r| r.learner.as_ref().map(|l| format!("learner {} {}", label(r), l.state))).collect();
    let tail = if learners.is_empty() { String::new() } else { format!("; {}", learners.join("; ")) };
    match max {
        None => check("raft", Status::Warn, format!("no applied indexes to compare{tail}"), None),
        Some(_) if !behind.is_empty() => check(
            "raft",
            Status::Warn,
            format!("{}{tail}", behind.join("; ")),
            Some("a member far behind is slow (disk, network) or recovering".into()),
        ),
        Some(m) => check("raft", Status::Ok, format!("voters within {m} entries of the leader{tail}"), None),
    }
}

pub(crate) fn alarm_check(alarms: Option<Result<Vec<Alarm>, TransportError>>, rows: &[MemberHealth]) -> Check {
    match alarms {
        None => check("alarms", Status::Warn, "no voter answered to list alarms", None),
        Some(Err(e)) => check("alarms", Status::Warn, format!("alarm list failed: {}", e.class.short()), None),
        Some(Ok(alarms)) if alarms.is_empty() => check("alarms", Status::Ok, "no alarms", None),
        Some(Ok(alarms)) => {
            let list: Vec<String> = alarms
                .iter()
                .map(|a| {
                    // etcd's periodic corruption check raises CORRUPT with member ID 0: it cannot
                    // tell which member is corrupt (https://github.com/etcd-io/etcd/issues/14849;
                    // 3.5.1 did so by a bug, https://github.com/etcd-io/etcd/pull/14272).
                    if a.member_id == 0 {
                        return format!(
                            "{} with no member named (etcd's corruption check cannot tell which; the hash check can)",
                            a.kind
                        );
                    }
                    let who = rows
                        .iter()
                        .find(|r| r.id == Some(a.member_id))
                        .map(label)
                        .unwrap_or_else(|| member_id(a.member_id));
                    format!("{} on {who} ({})", a.kind, member_id(a.member_id))
                })
                .collect();
            let nospace = alarms.iter().any(|a| a.kind == "NOSPACE");
            check(
                "alarms",
                Status::Fail,
                list.join("; "),
                Some(if nospace {
                    "the cluster is read-only (mvcc: database space exceeded): kubectl etcd defrag --compact --disarm; then kubectl etcd usage shows what filled it"
                        .to_string()
                } else {
                    "data corruption detected: find the odd member (hash check) and replace it".to_string()
                }),
            )
        }
    }
}

/// The hash check: every voter that answered must agree. `None` when HashKV did not run.
pub(crate) fn hash_check(outcome: Option<&HashOutcome>, skipped: bool) -> Option<Check> {
    if skipped {
        return Some(check("hash", Status::Ok, "skipped (--skip-hashkv)", None));
    }
    let o = outcome?;
    let rev = o.revision;
    let mut by_hash: std::collections::BTreeMap<u32, Vec<&str>> = std::collections::BTreeMap::new();
    for (name, h) in &o.hashes {
        by_hash.entry(*h).or_default().push(name);
    }
    Some(if by_hash.len() > 1 {
        let groups: Vec<String> = by_hash.iter().map(|(h, names)| format!("{h:08x} on {}", names.join(","))).collect();
        check(
            "hash",
            Status::Fail,
            format!("HashKV differs at revision {rev}: {} (data inconsistency)", groups.join("; ")),
            Some("check the CORRUPT alarm and etcd logs; restore the odd member from a snapshot or re-add it as a learner".into()),
        )
    } else if by_hash.is_empty() {
        check(
            "hash",
            Status::Warn,
            format!("no voter answered HashKV at revision {rev}: {}", o.errors.join("; ")),
            None,
        )
    } else if !o.errors.is_empty() {
        check(
            "hash",
            Status::Warn,
            format!("HashKV agrees at revision {rev} on the voters that answered; {}", o.errors.join("; ")),
            None,
        )
    } else {
        let agree = if o.hashes.len() == 1 { "1 voter (nothing to compare with)" } else { "" };
        let msg = if agree.is_empty() {
            format!("{} voters agree at revision {rev}", o.hashes.len())
        } else {
            format!("{agree} at revision {rev}")
        };
        check("hash", Status::Ok, msg, None)
    })
}

pub(crate) fn db_check(rows: &[MemberHealth], quota: u64) -> Check {
    let mut worst = Status::Ok;
    let mut notes = Vec::new();
    let mut max_size = 0;
    for r in rows.iter().filter(|r| r.answered) {
        let (Some(size), Some(used)) = (r.db_size, r.db_size_in_use) else {
            continue;
        };
        max_size = max_size.max(size);
        let pct = size as f64 / quota as f64 * 100.0;
        // The share shown is cut, not rounded: 94.7 % is "94%" and warns; "95%" always fails.
        let shown = pct.floor();
        if pct >= 95.0 {
            worst = Status::Fail;
            notes.push(format!("{} at {shown}% of quota", label(r)));
        } else if pct >= 80.0 {
            worst = worst.max(Status::Warn);
            notes.push(format!("{} at {shown}% of quota", label(r)));
        }
        if size > 64 * 1024 * 1024 && (used as f64) < size as f64 * 0.5 {
            worst = worst.max(Status::Warn);
            notes.push(format!(
                "{} {:.0}% fragmented ({} in use of {})",
                label(r),
                100.0 - used as f64 / size as f64 * 100.0,
                format_bytes(used),
                format_bytes(size)
            ));
        }
    }
    let base = format!("largest DB {} of {} quota", format_bytes(max_size), format_bytes(quota));
    if notes.is_empty() {
        check("db-size", Status::Ok, base, None)
    } else {
        check(
            "db-size",
            worst,
            format!("{base}; {}", notes.join("; ")),
            Some(if worst == Status::Fail {
                "near the quota: kubectl etcd defrag --compact; kubectl etcd usage shows what fills it (then raise --quota-backend-bytes if live data alone stays high)"
                    .into()
            } else {
                "kubectl etcd defrag (one member at a time, the leader last; --dry-run shows the plan); kubectl etcd usage shows what fills the database".into()
            }),
        )
    }
}

pub(crate) fn version_check(rows: &[MemberHealth]) -> Check {
    let mut c = server_versions(rows);
    let clusters: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r.cluster_version.as_deref()).collect();
    if !clusters.is_empty() {
        let list: Vec<&str> = clusters.into_iter().collect();
        c.message.push_str(&format!("; cluster version {}", list.join(" / ")));
    }
    c
}

fn server_versions(rows: &[MemberHealth]) -> Check {
    let versions: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r.version.as_deref()).collect();
    match versions.len() {
        0 => check("versions", Status::Warn, "no member reported its version", None),
        1 => {
            let v = versions.iter().next().copied().unwrap_or_default();
            let silent: Vec<String> = rows.iter().filter(|r| r.is_member && r.version.is_none()).map(label).collect();
            if silent.is_empty() {
                check("versions", Status::Ok, format!("all members run {v}"), None)
            } else {
                check(
                    "versions",
                    Status::Warn,
                    format!("the members that answered run {v}; unknown for {} (no answer)", silent.join(", ")),
                    None,
                )
            }
        }
        _ => {
            let minors: std::collections::BTreeSet<String> =
                versions.iter().map(|v| v.split('.').take(2).collect::<Vec<_>>().join(".")).collect();
            let list = rows
                .iter()
                .filter_map(|r| r.version.as_ref().map(|v| format!("{} {v}", label(r))))
                .collect::<Vec<_>>()
                .join(", ");
            check(
                "versions",
                Status::Warn,
                format!("version skew: {list}"),
                Some(rollout_hint(rows, &versions, minors.len())),
            )
        }
    }
}

/// How far a rolling upgrade has got: the members on the newest version, and those still to do.
fn rollout_hint(rows: &[MemberHealth], versions: &std::collections::BTreeSet<&str>, minors: usize) -> String {
    let newest = versions
        .iter()
        .copied()
        .max_by_key(|v| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>())
        .unwrap_or_default();
    let members: Vec<&MemberHealth> = rows.iter().filter(|r| r.is_member).collect();
    let done = members.iter().filter(|r| r.version.as_deref() == Some(newest)).count();
    let todo: Vec<String> = members.iter().filter(|r| r.version.as_deref() != Some(newest)).map(|r| label(r)).collect();
    let what = if minors > 1 {
        "finish the upgrade: etcd supports mixed minor versions only while upgrading"
    } else {
        "patch versions differ; finish the rollout"
    };
    format!(
        "{what}: {done} of {} members on {newest}, still to do: {} (kubectl etcd upgrade node --to {newest} on each, then kubectl etcd upgrade check)",
        members.len(),
        todo.join(", ")
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub(crate) fn count_check(rows: &[MemberHealth]) -> Check {
    let n = voters(rows).count();
    if n > 7 {
        check(
            "member-count",
            Status::Warn,
            format!("{n} voting members: more than 7 slows every write"),
            Some("5 voters tolerate 2 failures; remove extras or make them learners".into()),
        )
    } else if n.is_multiple_of(2) && n > 0 {
        check(
            "member-count",
            Status::Warn,
            format!("{n} voting members: an even count tolerates no more failures than {} members", n - 1),
            Some(format!("add or remove one member (quorum is {})", n / 2 + 1)),
        )
    } else {
        check(
            "member-count",
            Status::Ok,
            format!("{}, tolerates {}", plural(n, "voting member"), plural(n.saturating_sub(1) / 2, "failure")),
            None,
        )
    }
}

pub(crate) fn cert_check(rows: &[MemberHealth], client_cert: Option<&CertInfo>) -> Check {
    let mut worst = Status::Ok;
    let mut notes = Vec::new();
    let mut soonest: Option<(i64, String)> = None;
    let mut consider = |who: String, c: &CertInfo| {
        let left = c.seconds_left();
        if soonest.as_ref().is_none_or(|(s, _)| left < *s) {
            soonest = Some((left, who.clone()));
        }
        if left <= 0 {
            worst = Status::Fail;
            notes.push(format!("{who} expired {}", c.not_after_rfc3339));
        } else if left < CERT_WARN_SECS {
            worst = worst.max(Status::Warn);
            notes.push(format!("{who} expires in {} days ({})", left / 86400, c.not_after_rfc3339));
        }
    };
    if let Some(c) = client_cert {
        consider("client certificate".into(), c);
    }
    for r in rows {
        if let Some(c) = &r.server_cert {
            consider(format!("{} serving certificate", label(r)), c);
        }
    }
    for r in rows {
        if matches!(
            r.failure.as_ref().map(|f| &f.class),
            Some(FailureClass::Tls(crate::reach::conn::TlsFailure::Expired))
        ) {
            worst = Status::Fail;
            notes.push(format!("{} serving certificate expired", label(r)));
        }
    }
    match (notes.is_empty(), soonest) {
        (true, Some((left, who))) => {
            check("certificates", Status::Ok, format!("soonest expiry: {who} in {} days", left / 86400), None)
        }
        (true, None) => check("certificates", Status::Ok, "no certificates in use (plain http)", None),
        (false, _) => check(
            "certificates",
            worst,
            notes.join("; "),
            Some("renew with `kubeadm certs renew etcd-server etcd-peer etcd-healthcheck-client` on kubeadm".into()),
        ),
    }
}

pub(crate) fn discovery_check(
    list: &MemberList,
    discovered: &[Endpoint],
    strays: &[&Endpoint],
    aliases: &[String],
    complete: bool,
) -> Check {
    let mut notes: Vec<String> = aliases.iter().map(|a| format!("{a} under another URL (counted once)")).collect();
    for e in &list.extra_endpoints {
        notes.push(format!("{} found through {} (this node's endpoints did not answer)", e.url, e.source));
    }
    for s in strays {
        notes.push(format!("endpoint {} (from {}) is not a member of this cluster", s.url, s.source));
    }
    if complete {
        for m in &list.members {
            let found = discovered.iter().any(|d| {
                m.client_urls.iter().any(|u| same_url(u, &d.url)) || d.name.as_deref() == Some(m.name.as_str())
            });
            if !found && !m.is_learner {
                notes.push(format!("member {} ({}) was not found by discovery", m.display_name(), member_id(m.id)));
            }
        }
    }
    if notes.is_empty() {
        check(
            "discovery",
            Status::Ok,
            format!("{} discovered endpoint(s) match etcd's member list", discovered.len()),
            None,
        )
    } else {
        check(
            "discovery",
            Status::Warn,
            notes.join("; "),
            Some("etcd's member list is authoritative; fix stale manifests, pods or flags".into()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::health::model::DEFAULT_QUOTA;
    use crate::ops::health::model::{annotate, blank, merge_aliases};
    use crate::reach::cluster::Member;

    fn row(name: &str, learner: bool, answered: bool) -> MemberHealth {
        let m = Member {
            id: name.len() as u64,
            name: name.into(),
            peer_urls: vec![],
            client_urls: vec!["https://x:2379".into()],
            is_learner: learner,
        };
        let mut r = blank(Some(&m), Some("https://x:2379".into()), DEFAULT_QUOTA);
        r.answered = answered;
        if answered && !learner {
            r.health = "healthy".into();
            r.in_quorum = true;
        }
        r
    }

    fn following(mut r: MemberHealth, leader: u64, term: u64, index: u64) -> MemberHealth {
        r.leader = Some(leader);
        r.raft_term = Some(term);
        r.raft_index = Some(index);
        r.raft_applied_index = Some(index);
        r
    }

    #[test]
    fn quorum_arithmetic_and_the_learner_only_case() {
        assert_eq!(quorum(2, 3), (2, 2, 0));
        assert_eq!(quorum(1, 3), (1, 2, -1));
        let rows = [row("a", false, false), row("bb", false, true), row("ccc", false, true)];
        assert_eq!(quorum_check(&rows).message, "2/3 voters in quorum, 2 needed, may lose 0 more");
        assert_eq!(quorum_check(&rows).status, Status::Warn);
        let rows = [row("a", false, true), row("bb", false, true), row("ccc", false, true)];
        assert_eq!(quorum_check(&rows).status, Status::Ok);
        let rows = [row("a", false, false), row("bb", false, false), row("ccc", false, true)];
        let c = quorum_check(&rows);
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.starts_with("quorum lost: 1/3"), "{}", c.message);
        let rows = [row("a", false, false), row("bb", false, false), row("ccc", false, false), row("dr", true, true)];
        let c = quorum_check(&rows);
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.ends_with("only learner dr answers"), "{}", c.message);
        assert!(c.hint.unwrap().contains("kubectl etcd restore from-data-dir"));
    }

    #[test]
    fn members_check_names_the_unhealthy_voter_and_ignores_learners() {
        let rows = [row("a", false, true), row("bb", false, false), row("ccc", false, true), row("l", true, false)];
        let c = members_check(&rows);
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.starts_with("2/3 voting members healthy; unhealthy: bb"), "{}", c.message);
        let rows = [row("a", false, true), row("l", true, false)];
        assert_eq!(members_check(&rows).status, Status::Ok);
    }

    #[test]
    fn leader_agreement() {
        let rows = [following(row("a", false, true), 1, 5, 10), following(row("bb", false, true), 1, 5, 10)];
        let c = leader_check(&rows, Some(1));
        assert_eq!((c.status, c.message.as_str()), (Status::Ok, "a (0000000000000001) leads term 5"));
        let rows = [following(row("a", false, true), 1, 5, 10), following(row("bb", false, true), 2, 6, 10)];
        let c = leader_check(&rows, Some(2));
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("disagree"), "{}", c.message);
        assert_eq!(leader_check(&rows, None).status, Status::Fail);
        let rows = [following(row("a", false, true), 1, 5, 10), following(row("bb", false, true), 1, 6, 10)];
        assert_eq!(leader_check(&rows, Some(1)).status, Status::Warn);
    }

    #[test]
    fn a_learner_is_promotable_by_the_one_rule() {
        // The leader's raft index is 1000; the learner holds 950 (95%) but has applied only
        // 100: etcd compares replicated indexes, so it is promotable.
        let mut l = following(row("l", true, true), 1, 5, 950);
        l.raft_applied_index = Some(100);
        let mut rows = [following(row("a", false, true), 1, 5, 1000), l, following(row("ccc", false, true), 1, 5, 998)];
        assert_eq!(annotate(&mut rows, None), Some(1));
        assert!(rows[0].is_leader);
        let p = rows[1].learner.clone().unwrap();
        assert!(p.promotable && p.state == "in sync", "{p:?}");
        assert_eq!(rows[1].health, "learner: in sync (95%)");
        assert_eq!(rows[2].applied_lag, Some(2));
        let mut slow = following(row("l", true, true), 1, 5, 899);
        let mut rows = [following(row("a", false, true), 1, 5, 1000), slow.clone()];
        annotate(&mut rows, None);
        assert_eq!(rows[1].learner.as_ref().unwrap().state, "catching up");
        slow.client_urls.clear();
        slow.answered = false;
        let mut rows = [following(row("a", false, true), 1, 5, 1000), slow];
        annotate(&mut rows, None);
        assert_eq!(rows[1].learner.as_ref().unwrap().state, "not started");
        assert!(progress_check(&rows).message.contains("learner l not started"));
    }

    #[test]
    fn progress_warns_about_a_voter_far_behind() {
        let mut rows = [following(row("a", false, true), 1, 5, 5000), following(row("bb", false, true), 1, 5, 3000)];
        annotate(&mut rows, None);
        let c = progress_check(&rows);
        assert_eq!(c.status, Status::Warn);
        assert!(c.message.contains("bb 2000 entries behind"), "{}", c.message);
    }

    #[test]
    fn alarms_name_the_member_and_the_nospace_runbook() {
        let rows = [row("a", false, true)];
        assert_eq!(alarm_check(Some(Ok(vec![])), &rows).status, Status::Ok);
        assert_eq!(alarm_check(None, &rows).status, Status::Warn);
        let c = alarm_check(Some(Ok(vec![Alarm { member_id: 1, kind: "NOSPACE" }])), &rows);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.message, "NOSPACE on a (0000000000000001)");
        let hint = c.hint.unwrap();
        assert!(
            hint.contains("kubectl etcd defrag --compact --disarm") && hint.contains("kubectl etcd usage"),
            "{hint}"
        );
        let c = alarm_check(Some(Ok(vec![Alarm { member_id: 9, kind: "CORRUPT" }])), &rows);
        assert!(c.hint.unwrap().contains("corruption"));
    }

    #[test]
    fn hashes_must_agree() {
        let o = |hashes: Vec<(&str, u32)>, errors: Vec<&str>| HashOutcome {
            revision: 7,
            hashes: hashes.into_iter().map(|(n, h)| (n.to_string(), h)).collect(),
            errors: errors.into_iter().map(String::from).collect(),
        };
        let c = hash_check(Some(&o(vec![("a", 1), ("b", 1), ("c", 1)], vec![])), false).unwrap();
        assert_eq!((c.status, c.message.as_str()), (Status::Ok, "3 voters agree at revision 7"));
        let c = hash_check(Some(&o(vec![("a", 1), ("b", 2), ("c", 1)], vec![])), false).unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("00000002 on b"), "{}", c.message);
        let c = hash_check(Some(&o(vec![("a", 1)], vec!["b: timed out"])), false).unwrap();
        assert_eq!(c.status, Status::Warn);
        assert_eq!(hash_check(None, true).unwrap().message, "skipped (--skip-hashkv)");
        assert!(hash_check(None, false).is_none());
    }

    #[test]
    fn db_size_against_quota_and_fragmentation() {
        let sized = |size: u64, used: u64| {
            let mut r = row("a", false, true);
            r.db_size = Some(size);
            r.db_size_in_use = Some(used);
            r
        };
        let q = 1000 * 1024 * 1024;
        assert_eq!(db_check(&[sized(10 << 20, 10 << 20)], q).status, Status::Ok);
        assert_eq!(db_check(&[sized(960 << 20, 960 << 20)], q).status, Status::Fail);
        assert_eq!(db_check(&[sized(850 << 20, 850 << 20)], q).status, Status::Warn);
        // Just under the failing share: says 94%, never a rounded 95%, and warns.
        let c = db_check(&[sized(947 << 20, 947 << 20)], q);
        assert_eq!(c.status, Status::Warn);
        assert!(c.message.contains("at 94% of quota"), "{}", c.message);
        let c = db_check(&[sized(200 << 20, 50 << 20)], q);
        assert_eq!(c.status, Status::Warn);
        assert!(c.message.contains("75% fragmented"), "{}", c.message);
        let hint = c.hint.unwrap();
        assert!(hint.starts_with("kubectl etcd defrag") && hint.contains("kubectl etcd usage"), "{hint}");
        let c = db_check(&[sized(960 << 20, 960 << 20)], q);
        assert!(c.hint.unwrap().contains("kubectl etcd usage"));
    }

    #[test]
    fn versions_counts_and_certificates() {
        let v = |name: &str, ver: &str| {
            let mut r = row(name, false, true);
            r.version = Some(ver.into());
            r
        };
        assert_eq!(version_check(&[v("a", "3.5.1"), v("bb", "3.5.1")]).status, Status::Ok);
        let c = version_check(&[v("a", "3.5.1"), row("bb", false, false)]);
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Warn, "the members that answered run 3.5.1; unknown for bb (no answer)")
        );
        let mut a = v("a", "3.5.1");
        a.cluster_version = Some("3.5.0".into());
        assert_eq!(version_check(&[a]).message, "all members run 3.5.1; cluster version 3.5.0");
        let c = version_check(&[v("a", "3.5.1"), v("bb", "3.4.23"), v("c", "3.4.23")]);
        assert_eq!(c.status, Status::Warn);
        let hint = c.hint.unwrap();
        assert!(hint.contains("finish the upgrade"), "{hint}");
        assert!(
            hint.contains("1 of 3 members on 3.5.1, still to do: bb, c (kubectl etcd upgrade node --to 3.5.1"),
            "{hint}"
        );
        // 3.10 is newer than 3.9: versions compare as numbers.
        let c = version_check(&[v("a", "3.10.0"), v("bb", "3.9.9")]);
        assert!(c.hint.unwrap().contains("1 of 2 members on 3.10.0"));
        assert_eq!(count_check(&[row("a", false, true)]).message, "1 voting member, tolerates 0 failures");
        assert_eq!(count_check(&[row("a", false, true), row("bb", false, true)]).status, Status::Warn);
        let cert = |left: i64| CertInfo {
            subject: "s".into(),
            issuer: "i".into(),
            sans: vec![],
            not_after: crate::reach::tls::now_unix() + left,
            not_after_rfc3339: "2026-01-01T00:00:00Z".into(),
            not_before: 0,
        };
        let c = cert_check(&[row("a", false, true)], Some(&cert(-10)));
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.contains("client certificate expired"), "{}", c.message);
        assert_eq!(cert_check(&[row("a", false, true)], Some(&cert(86400))).status, Status::Warn);
        assert_eq!(cert_check(&[row("a", false, true)], Some(&cert(365 * 86400))).status, Status::Ok);
        assert_eq!(cert_check(&[row("a", false, true)], None).message, "no certificates in use (plain http)");
    }

    #[test]
    fn an_alias_endpoint_is_one_member_not_two() {
        let mut own = row("a", false, false);
        own.id = Some(1);
        let mut alias = blank(None, Some("https://localhost:2379".into()), DEFAULT_QUOTA);
        alias.id = Some(1);
        alias.answered = true;
        alias.health = "healthy".into();
        let mut rows = vec![own, row("bb", false, true), alias];
        let mut clients = vec![(), (), ()];
        let notes = merge_aliases(&mut rows, &mut clients, 2);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].answered && rows[0].is_member && rows[0].name == "a");
        assert_eq!(notes, ["endpoint https://localhost:2379 reaches member a (0000000000000001)"]);
    }
}
