//! `kubectl etcd defrag`: rolling defragmentation, one member at a time, followers first (the
//! most fragmented first) and the leader last, with the cluster's health checked before every
//! member; optional compaction first and the NOSPACE recovery after (`--compact --disarm`).
//!
//! A defragmentation rebuilds the member's database file and blocks its reads and writes
//! meanwhile, so the member counts as down for that time: before each one every voter must
//! answer, a leader must exist, and the voters left must still make a quorum.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::units::{format_bytes, format_duration, member_id};
use crate::error::{Error, Result};
use crate::reach::cluster::{Member, Session};
use crate::reach::conn::call;
use crate::reach::quorum::{leader_of, MemberStatus};
use crate::reach::status::quorum;

/// The key the write check after `--disarm` puts and deletes (under a prefix Kubernetes never
/// uses).
pub const WRITE_CHECK_KEY: &str = "/kubectl-etcd/defrag-write-check";

/// Which members a defrag selects by their free space (DB size minus size in use).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    /// At least this percentage of the DB size is free.
    Percent(f64),
    /// At least this many bytes are free.
    Bytes(u64),
}

impl MinFree {
    /// Parses `10%`, `100MiB`, `512Mi`, `1Gi`, `500M` (decimal) or a byte count.
    pub fn parse(s: &str) -> std::result::Result<MinFree, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(v) if (0.0..=100.0).contains(&v) => Ok(MinFree::Percent(v)),
                _ => Err(format!("{s:?} is not a percentage from 0% to 100%")),
            };
        }
        crate::base::units::parse_size(s).map(MinFree::Bytes).map_err(|e| format!("{e}; expected 10% or 100MiB"))
    }

    fn met(self, size: u64, free: u64) -> bool {
        match self {
            MinFree::Percent(p) => size > 0 && free as f64 >= size as f64 * p / 100.0,
            MinFree::Bytes(b) => free >= b,
        }
    }

    fn text(self) -> String {
        match self {
            MinFree::Percent(p) => format!("{p}% of the DB size"),
            MinFree::Bytes(b) => format_bytes(b),
        }
    }
}

/// Options of a defrag.
#[derive(Debug, Clone)]
pub struct Options {
    /// The free-space rule (`None`: 10 % of the DB size or 100 MiB, whichever is met first).
    pub min_free: Option<MinFree>,
    /// Take every member the RPC can be run on, whatever its free space.
    pub all: bool,
    /// Compact to the current revision first (physically).
    pub compact: bool,
    /// With `compact`: keep this many revisions before the current one.
    pub keep_revisions: u64,
    /// Disarm NOSPACE alarms afterwards, when every DB is below `disarm_threshold` of the quota.
    pub disarm: bool,
    /// Fraction of the quota every DB must be below for `disarm` (0.9).
    pub disarm_threshold: f64,
    /// The backend quota.
    pub quota: u64,
    /// Move leadership to the healthiest follower before the leader's turn.
    pub move_leader: bool,
    /// Pause between members, for the cluster to settle.
    pub wait_between: Duration,
    /// The per-member deadline (`--command-timeout` given explicitly); else it grows with the
    /// DB size.
    pub timeout: Option<Duration>,
    /// Go on where the safety check would stop (a one-member cluster is unavailable while it
    /// defragments).
    pub force: bool,
}

/// The default rule: 10 % of the DB size free, or 100 MiB.
pub const DEFAULT_RULE: [MinFree; 2] = [MinFree::Percent(10.0), MinFree::Bytes(100 * 1024 * 1024)];

/// One member in the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Member name.
    pub name: String,
    /// Member ID.
    #[serde(serialize_with = "crate::base::units::ser_hex")]
    pub id: u64,
    /// The client URL used.
    pub endpoint: Option<String>,
    /// `leader`, `follower` or `learner`.
    pub role: &'static str,
    /// DB size in bytes.
    pub db_size: Option<u64>,
    /// DB size in use in bytes.
    pub db_size_in_use: Option<u64>,
    /// Free bytes (size minus in use): what a defrag gives back.
    pub free: Option<u64>,
    /// Whether it is defragmented.
    pub selected: bool,
    /// Why (or why not).
    pub reason: String,
    /// How long its defrag may take.
    #[serde(rename = "deadline_ms", with = "crate::base::units::duration_ms")]
    pub deadline: Duration,
}

/// The plan: members in the order they are defragmented.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// The selection rule, in words.
    pub rule: String,
    /// Every member, selected ones first in defrag order (followers by free space, the leader
    /// last), then the skipped ones.
    pub members: Vec<Target>,
    /// The revision to compact to first (`--compact`).
    pub compact_to: Option<i64>,
    /// NOSPACE alarms are disarmed afterwards (`--disarm`).
    pub disarm: bool,
    /// Bytes the selected members give back.
    pub reclaimable: u64,
}

fn deadline_for(size: u64, opts: &Options) -> Duration {
    // bbolt rewrites the whole file; 16 MiB/s is a slow disk's pace, plus 30 s of slack.
    opts.timeout.unwrap_or_else(|| Duration::from_secs(30) + Duration::from_secs(size / (16 * 1024 * 1024)))
}

/// Whether this etcd serves maintenance RPCs on a learner (3.4 and 3.5 answer "rpc not
/// supported for learner" to everything but Status and serializable reads).
fn learner_rpc_allowed(version: &str) -> bool {
    let mut it = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (major, minor) >= (3, 6)
}

/// Builds the plan from every member's Status.
pub async fn plan(session: &Session, opts: &Options, dry_run: bool) -> Result<Plan> {
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    let leader = leader_of(&statuses);
    let mut rows: Vec<Target> = statuses.iter().map(|st| target(st, leader, opts)).collect();
    // Followers, most to give back first; the leader last; then what is skipped.
    rows.sort_by_key(|t| (!t.selected, t.role == "leader", std::cmp::Reverse(t.free.unwrap_or(0)), t.name.clone()));
    let compact_to = if opts.compact {
        let rev = statuses.iter().filter_map(|s| s.status.as_ref().ok()).map(|s| s.revision).max().unwrap_or(0);
        Some((rev - opts.keep_revisions as i64).max(1))
    } else {
        None
    };
    let rule = match (opts.all, opts.min_free) {
        (true, _) => "every member (--all)".to_string(),
        (_, Some(m)) => format!("free space at least {}", m.text()),
        _ => "free space at least 10% of the DB size or 100MiB".to_string(),
    };
    // The dry run refuses as the run would, before the first member.
    if let Some(first) = rows.iter().find(|t| t.selected) {
        safe_to_take(&statuses, first, opts.force)?;
    }
    let reclaimable = rows.iter().filter(|t| t.selected).filter_map(|t| t.free).sum();
    Ok(Plan { dry_run, rule, members: rows, compact_to, disarm: opts.disarm, reclaimable })
}

fn target(st: &MemberStatus, leader: Option<u64>, opts: &Options) -> Target {
    let m = &st.member;
    let role = if m.is_learner {
        "learner"
    } else if Some(m.id) == leader {
        "leader"
    } else {
        "follower"
    };
    let mut t = Target {
        name: m.display_name(),
        id: m.id,
        endpoint: st.url.clone(),
        role,
        db_size: None,
        db_size_in_use: None,
        free: None,
        selected: false,
        reason: String::new(),
        deadline: deadline_for(0, opts),
    };
    let s = match &st.status {
        Ok(s) => s,
        Err(e) => {
            t.reason = format!("does not answer: {}", e.class.short());
            return t;
        }
    };
    let free = s.db_size.saturating_sub(s.db_size_in_use);
    t.db_size = Some(s.db_size);
    t.db_size_in_use = Some(s.db_size_in_use);
    t.free = Some(free);
    t.deadline = deadline_for(s.db_size, opts);
    if m.is_learner && !learner_rpc_allowed(&s.version) {
        t.reason = format!("skipped: etcd {} refuses the defragment RPC on a learner (rpc not supported for learner); it gets a compact copy when it is promoted or re-added", s.version);
        return t;
    }
    let rules: Vec<MinFree> = opts.min_free.map(|m| vec![m]).unwrap_or_else(|| DEFAULT_RULE.to_vec());
    let met = rules.iter().find(|r| r.met(s.db_size, free));
    (t.selected, t.reason) = match (opts.all, met) {
        (true, _) => (true, format!("--all; {} free", format_bytes(free))),
        // What a compaction frees does not show before it runs: every member is taken.
        _ if opts.compact => (true, format!("--compact: {} free now, more once compacted", format_bytes(free))),
        (_, Some(r)) => (true, format!("{} free (at least {})", format_bytes(free), r.text())),
        _ => (
            false,
            format!(
                "skipped: only {} free of {} (below {})",
                format_bytes(free),
                format_bytes(s.db_size),
                rules.iter().map(|r| r.text()).collect::<Vec<_>>().join(" and ")
            ),
        ),
    };
    t
}

/// One member defragmented.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    /// Member name.
    pub name: String,
    /// Member ID.
    #[serde(serialize_with = "crate::base::units::ser_hex")]
    pub id: u64,
    /// DB size before.
    pub before: Option<u64>,
    /// DB size after.
    pub after: Option<u64>,
    /// How long it took.
    #[serde(rename = "took_ms", with = "crate::base::units::duration_ms")]
    pub took: Duration,
    /// Leadership moved away from it first.
    #[serde(serialize_with = "crate::base::units::ser_hex_opt", skip_serializing_if = "Option::is_none")]
    pub moved_leader_to: Option<u64>,
}

/// The result of a defrag.
#[derive(Debug, Clone, Serialize)]
pub struct Defragged {
    /// The plan carried out.
    pub plan: Plan,
    /// The revision compacted to.
    pub compacted_to: Option<i64>,
    /// The members defragmented, in order.
    pub defragmented: Vec<Done>,
    /// NOSPACE alarms disarmed (member names).
    pub disarmed: Vec<String>,
    /// A write succeeded after the disarm (put and delete of [`WRITE_CHECK_KEY`]).
    pub write_check: Option<bool>,
}

/// What a running defrag reports as it goes.
#[derive(Debug)]
pub enum Event<'a> {
    /// Compacted to this revision.
    Compacted(i64),
    /// Leadership moves away from the member about to be defragmented.
    MovingLeader {
        /// From this member.
        from: &'a str,
        /// To this one.
        to: &'a str,
    },
    /// A member's defrag starts.
    Start(&'a Target),
    /// A member's defrag finished.
    Finished(&'a Done),
}

fn stopped(cause: Error, done: &[Done], left: &[&Target]) -> Error {
    let done_text = if done.is_empty() {
        "nothing was defragmented".to_string()
    } else {
        format!("defragmented {}", done.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "))
    };
    let left_text = left.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    Error::Stopped {
        what: "defrag",
        cause: Box::new(cause),
        done: format!("{done_text}; left: {}", if left_text.is_empty() { "nothing" } else { &left_text }),
        next: "fix the cause (kubectl etcd health shows it), then run kubectl etcd defrag again: members already defragmented fall below the rule and are skipped".into(),
    }
}

/// The check before each member: every voter is in the working quorum ([`crate::reach::quorum`]), a
/// leader exists, and the voters in quorum left while `t` defragments still make a quorum.
fn safe_to_take(statuses: &[MemberStatus], t: &Target, force: bool) -> Result<()> {
    let voters: Vec<&MemberStatus> = statuses.iter().filter(|s| !s.member.is_learner).collect();
    let out: Vec<String> = voters.iter().filter(|s| !s.in_quorum()).map(|s| s.why_not()).collect();
    if !out.is_empty() {
        return Err(Error::Refused(format!(
            "not every voter is in the working quorum: {}; defragmenting {} now could lose quorum",
            out.join("; "),
            t.name
        )));
    }
    if leader_of(statuses).is_none() {
        return Err(Error::Refused("no leader: the cluster has no quorum or is electing".into()));
    }
    let in_quorum = voters.len() - usize::from(t.role != "learner");
    let (_, needed, _) = quorum(in_quorum, voters.len());
    if in_quorum < needed && !force {
        return Err(Error::Refused(format!(
            "defragmenting {} leaves {in_quorum}/{} voters in quorum, {needed} needed: the cluster would stop serving while it runs; pass --force to accept that",
            t.name,
            voters.len()
        )));
    }
    Ok(())
}

/// Carries out a plan.
pub async fn run(session: &Session, plan: Plan, opts: &Options, progress: &mut dyn FnMut(Event)) -> Result<Defragged> {
    let list = session.member_list().await?;
    let mut compacted_to = None;
    if let Some(rev) = plan.compact_to {
        let statuses = session.statuses(&list.members).await;
        let (mut c, url) = session.any_client(&statuses, None).await?;
        let physical = etcd_client::CompactionOptions::new().with_physical();
        match call(
            &url,
            "compact",
            session.command_timeout().max(Duration::from_secs(60)),
            c.compact(rev, Some(physical)),
        )
        .await
        {
            Ok(_) => {}
            // Compacted already at or past this revision (kube-apiserver compacts every 5 min).
            Err(e) if matches!(&e.class, crate::reach::conn::FailureClass::Rpc(m) if m.contains("compacted")) => {}
            Err(e) => {
                return Err(stopped(
                    Error::Transport(e),
                    &[],
                    &plan.members.iter().filter(|t| t.selected).collect::<Vec<_>>(),
                ))
            }
        }
        compacted_to = Some(rev);
        progress(Event::Compacted(rev));
    }
    let selected: Vec<&Target> = plan.members.iter().filter(|t| t.selected).collect();
    let mut done: Vec<Done> = Vec::new();
    for (i, t) in selected.iter().enumerate() {
        let left = &selected[i..];
        let statuses = session.statuses(&list.members).await;
        safe_to_take(&statuses, t, opts.force).map_err(|e| stopped(e, &done, left))?;
        let mut moved = None;
        if opts.move_leader && leader_of(&statuses) == Some(t.id) {
            let to = crate::reach::quorum::move_leader(session, &statuses, t.id)
                .await
                .map_err(|e| stopped(e, &done, left))?;
            let to_name = list.members.iter().find(|m| m.id == to).map(Member::display_name).unwrap_or_default();
            progress(Event::MovingLeader { from: &t.name, to: &to_name });
            moved = Some(to);
        }
        progress(Event::Start(t));
        let url = t.endpoint.clone().unwrap_or_default();
        let start = Instant::now();
        let r = async {
            let mut c = session.dialer.client(&url).await?;
            call(&url, "defragment", t.deadline, c.defragment()).await
        }
        .await;
        r.map_err(|e| stopped(Error::Transport(e), &done, left))?;
        let after = session.status_at(&url).await.ok().map(|s| s.db_size);
        done.push(Done {
            name: t.name.clone(),
            id: t.id,
            before: t.db_size,
            after,
            took: start.elapsed(),
            moved_leader_to: moved,
        });
        progress(Event::Finished(done.last().expect("just pushed")));
        if i + 1 < selected.len() && !opts.wait_between.is_zero() {
            tokio::time::sleep(opts.wait_between).await;
        }
    }
    let (disarmed, write_check) = if opts.disarm {
        let (d, w) = disarm(session, &list.members, opts).await.map_err(|e| stopped(e, &done, &[]))?;
        (d, Some(w))
    } else {
        (Vec::new(), None)
    };
    Ok(Defragged { plan, compacted_to, defragmented: done, disarmed, write_check })
}

/// Disarms NOSPACE alarms once every member's DB is below the threshold of the quota, then
/// checks that a write succeeds.
async fn disarm(session: &Session, members: &[Member], opts: &Options) -> Result<(Vec<String>, bool)> {
    let statuses = session.statuses(members).await;
    let limit = (opts.quota as f64 * opts.disarm_threshold) as u64;
    let full: Vec<String> = statuses
        .iter()
        .filter_map(|s| {
            let st = s.status.as_ref().ok()?;
            (st.db_size >= limit).then(|| {
                format!(
                    "{} at {} ({:.0}% of the {} quota)",
                    s.member.display_name(),
                    format_bytes(st.db_size),
                    st.db_size as f64 / opts.quota as f64 * 100.0,
                    format_bytes(opts.quota)
                )
            })
        })
        .collect();
    if !full.is_empty() {
        return Err(Error::Refused(format!(
            "not disarming: {} is not below {:.0}% of the quota; compact first (--compact), delete data, or raise --quota-backend-bytes on every member",
            full.join(", "),
            opts.disarm_threshold * 100.0
        )));
    }
    let (mut c, url) = session.any_client(&statuses, None).await?;
    let to = session.command_timeout();
    let alarms =
        call(&url, "alarm list", to, c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None))
            .await?;
    let mut disarmed = Vec::new();
    for a in alarms.alarms().iter().filter(|a| a.alarm() == etcd_client::AlarmType::Nospace) {
        let mut opt = etcd_client::AlarmOptions::new();
        opt.with_member(a.member_id());
        call(
            &url,
            "alarm disarm",
            to,
            c.alarm(etcd_client::AlarmAction::Deactivate, etcd_client::AlarmType::Nospace, Some(opt)),
        )
        .await?;
        let name = members
            .iter()
            .find(|m| m.id == a.member_id())
            .map(Member::display_name)
            .unwrap_or_else(|| member_id(a.member_id()));
        disarmed.push(name);
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    call(&url, "write check", to, c.put(WRITE_CHECK_KEY, stamp, None)).await?;
    call(&url, "write check", to, c.delete(WRITE_CHECK_KEY, None)).await?;
    Ok((disarmed, true))
}

/// A line for a finished member: `cp-2: 120MiB → 20MiB in 1.2s`.
pub fn done_line(d: &Done) -> String {
    let size = |v: Option<u64>| v.map(format_bytes).unwrap_or_else(|| "?".into());
    format!("{}: {} → {} in {}", d.name, size(d.before), size(d.after), format_duration(d.took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_free_parses_percent_and_sizes() {
        assert_eq!(MinFree::parse("10%"), Ok(MinFree::Percent(10.0)));
        assert_eq!(MinFree::parse("100MiB"), Ok(MinFree::Bytes(100 << 20)));
        assert!(MinFree::parse("120%").is_err());
        assert!(MinFree::parse("lots").is_err());
        assert!(MinFree::Percent(10.0).met(1000, 100));
        assert!(!MinFree::Percent(10.0).met(1000, 99));
        assert!(MinFree::Bytes(5).met(10, 5));
    }

    #[test]
    fn learners_are_defragmented_only_where_etcd_allows_it() {
        assert!(!learner_rpc_allowed("3.4.23"));
        assert!(!learner_rpc_allowed("3.5.1"));
        assert!(learner_rpc_allowed("3.6.0"));
    }

    #[test]
    fn the_deadline_grows_with_the_db() {
        let opts = Options {
            min_free: None,
            all: false,
            compact: false,
            keep_revisions: 0,
            disarm: false,
            disarm_threshold: 0.9,
            quota: 2 << 30,
            move_leader: false,
            wait_between: Duration::ZERO,
            timeout: None,
            force: false,
        };
        assert_eq!(deadline_for(0, &opts), Duration::from_secs(30));
        assert_eq!(deadline_for(4 << 30, &opts), Duration::from_secs(30 + 256));
        let fixed = Options { timeout: Some(Duration::from_secs(7)), ..opts };
        assert_eq!(deadline_for(4 << 30, &fixed), Duration::from_secs(7));
    }
}
