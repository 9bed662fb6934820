//! The one probe of "this member is part of a working quorum now", and its verdict.
//!
//! A member that answers clients is not necessarily in a quorum: a follower cut off from its
//! peers (or one that hears them but not the leader) still answers Status and serializable
//! reads, with no leader or a stale one, at an old revision. Every command that counts, chooses
//! or trusts members — health's quorum, the member a snapshot streams from, the quorum
//! arithmetic of learner remove/promote, defrag — asks [`look`] and [`judge`], and nothing else.
//!
//! The evidence, as etcdctl's `endpoint health` gathers it plus what Status shows:
//! - a **linearizable read** through the member within the deadline: etcd serves it only after
//!   the leader has confirmed, with a heartbeat round to a majority, that it still leads
//!   (ReadIndex), and only once the member has applied up to that index; a member with no
//!   leader, cut off, or whose log cannot advance never completes one;
//! - its **leader and term** agree with those of the members whose read succeeded;
//! - its **raft index** is within [`REACH`] entries of the leader's.
//!
//! Right after a leader dies the reads fail with "leader changed" / "no leader" for about an
//! election timeout; [`look`] retries those inside the deadline, so an election in progress ends
//! in the new leader rather than in "nobody is healthy".

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::units::member_id;
use crate::error::Error;
use crate::reach::cluster::{Member, Session};
use crate::reach::conn::{call, FailureClass, TransportError};
use crate::reach::status::{agreed_leader, StatusInfo};

/// How many raft entries a member's index may trail the leader's and still count as in reach.
/// A member that completed a linearizable read has applied up to the leader's commit index of a
/// moment ago, so this only catches a member whose Status was taken long before the leader's.
pub const REACH: u64 = 1000;

/// Pause between two tries of a read that failed because an election is in progress.
const ELECTION_RETRY: Duration = Duration::from_millis(150);

/// etcd's answers while an election is in progress (`etcdserver: leader changed`,
/// `etcdserver: no leader`): worth another try inside the deadline.
fn electing(e: &TransportError) -> bool {
    matches!(&e.class, FailureClass::Rpc(m) if m.contains("leader changed") || m.contains("no leader"))
}

/// What one member showed: its Status, and the linearizable read through it (`None` for a
/// learner, which etcd does not let serve one, or when Status already failed to connect).
#[derive(Debug, Clone)]
pub struct Looked {
    /// Its Status, or why it did not answer.
    pub status: Result<StatusInfo, TransportError>,
    /// The linearizable read: its latency, or why it failed.
    pub read: Option<Result<Duration, TransportError>>,
}

/// Status and a linearizable read through the member at `url`, concurrently, until `end`;
/// a read refused because of an election is tried again while time is left.
pub async fn look(session: &Session, url: &str, learner: bool, end: Instant) -> Looked {
    loop {
        let left = end.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        if let Err(e) = session.dialer.probe(url).await {
            return Looked { status: Err(e), read: None };
        }
        let mut client = match session.dialer.client(url).await {
            Ok(c) => c,
            Err(e) => return Looked { status: Err(e), read: None },
        };
        let mut c2 = client.clone();
        let status = async { crate::reach::status::status_info(call(url, "status", left, client.status()).await) };
        let read = async {
            if learner {
                return None;
            }
            let start = Instant::now();
            let r = call(url, "linearizable read", left, c2.get("health", None)).await;
            Some(match r {
                Ok(_) => Ok(start.elapsed()),
                // Permission denied (auth on, no read permission) still proves the read was served.
                Err(e) if matches!(&e.class, FailureClass::Rpc(m) if m.contains("permission denied")) => {
                    Ok(start.elapsed())
                }
                Err(e) => Err(e),
            })
        };
        let (status, read) = tokio::join!(status, read);
        let retry = matches!(&read, Some(Err(e)) if electing(e));
        if retry && end.saturating_duration_since(Instant::now()) > ELECTION_RETRY * 2 {
            tokio::time::sleep(ELECTION_RETRY).await;
            continue;
        }
        // A member that answered Status but not the read is not frozen: it is cut off from the
        // leader, has none, or cannot apply; say that rather than "frozen or overloaded".
        let read = match (read, &status) {
            (Some(Err(mut e)), Ok(s)) if e.class == FailureClass::TimedOut => {
                e.detail = format!(
                    "no linearizable read completed within {}, although it answers Status ({}): it is cut off from the leader, has no leader, or cannot apply its log",
                    crate::base::units::format_duration(left),
                    if s.leader == 0 { "no leader".to_string() } else { format!("following {}", member_id(s.leader)) }
                );
                Some(Err(e))
            }
            (r, _) => r,
        };
        return Looked { status, read };
    }
}

/// One member's evidence, for [`judge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Its ID.
    pub id: u64,
    /// How messages name it.
    pub name: String,
    /// A learner (it does not vote).
    pub is_learner: bool,
    /// Its Status: (leader it follows or 0, term, raft index); `None` when it did not answer.
    pub status: Option<(u64, u64, u64)>,
    /// The linearizable read: `Ok`, or the failure in short; `None` when not tried.
    pub read: Option<Result<(), String>>,
}

impl Seen {
    /// The evidence in a [`Looked`].
    pub fn of(id: u64, name: &str, is_learner: bool, looked: &Looked) -> Seen {
        Seen {
            id,
            name: name.to_string(),
            is_learner,
            status: looked.status.as_ref().ok().map(|s| (s.leader, s.raft_term, s.raft_index)),
            read: looked.read.as_ref().map(|r| r.as_ref().map(|_| ()).map_err(|e| e.class.short())),
        }
    }
}

/// Whether a member is part of the working quorum, and if not, why, in a few words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    /// It is a voter that completed a linearizable read, follows the quorum's leader in its term
    /// and is within [`REACH`] of the leader's index.
    pub in_quorum: bool,
    /// Why not (`no leader`, `cut off: …`, `behind by N entries`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Standing {
    fn yes() -> Standing {
        Standing { in_quorum: true, reason: None }
    }

    fn no(reason: impl Into<String>) -> Standing {
        Standing { in_quorum: false, reason: Some(reason.into()) }
    }
}

/// The verdict on a set of members: the quorum's leader and term, and each member's standing
/// (in the order given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The leader the members in quorum follow.
    pub leader: Option<u64>,
    /// Its term.
    pub term: Option<u64>,
    /// One per member.
    pub standings: Vec<Standing>,
}

/// Judges every member from the evidence: the quorum is made of the voters whose linearizable
/// read succeeded; its leader is the one most of them follow, its term that leader's.
pub fn judge(seen: &[Seen]) -> Verdict {
    let served = |s: &&Seen| !s.is_learner && matches!(s.read, Some(Ok(())));
    let leader = agreed_leader(seen.iter().filter(served).filter_map(|s| s.status.map(|(l, _, _)| l)));
    let following = |s: &&Seen| s.status.is_some_and(|(l, _, _)| Some(l) == leader);
    let term = seen.iter().filter(served).filter(following).filter_map(|s| s.status.map(|(_, t, _)| t)).max();
    let leader_index = seen
        .iter()
        .find(|s| Some(s.id) == leader)
        .and_then(|s| s.status.map(|(_, _, i)| i))
        .or_else(|| seen.iter().filter(served).filter_map(|s| s.status.map(|(_, _, i)| i)).max());
    let name_of = |id: u64| {
        seen.iter().find(|s| s.id == id && !s.name.is_empty()).map(|s| s.name.clone()).unwrap_or_else(|| member_id(id))
    };
    let quorum_side = match (leader, term) {
        (Some(l), Some(t)) => format!("{} leads term {t}", name_of(l)),
        _ => String::new(),
    };
    let standings = seen
        .iter()
        .map(|s| {
            let Some((l, t, index)) = s.status else {
                return Standing::no("does not answer");
            };
            if s.is_learner {
                return Standing::no("a learner does not vote");
            }
            let disagrees = leader.is_some() && (Some(l) != leader || Some(t) != term);
            match &s.read {
                Some(Ok(())) if disagrees => Standing::no(format!(
                    "disagrees: follows {} in term {t} while {quorum_side}",
                    if l == 0 { "no leader".to_string() } else { name_of(l) }
                )),
                Some(Ok(())) => match leader_index.map(|li| li.saturating_sub(index)) {
                    Some(behind) if behind > REACH => Standing::no(format!("behind by {behind} entries")),
                    _ => Standing::yes(),
                },
                _ if l == 0 && leader.is_some() => Standing::no(format!("cut off: no leader while {quorum_side}")),
                _ if l == 0 => Standing::no("no leader"),
                _ if disagrees => {
                    Standing::no(format!("cut off: follows {} in term {t} while {quorum_side}", name_of(l)))
                }
                Some(Err(e)) => Standing::no(format!("takes no reads or writes: {e}")),
                None => Standing::no("not in quorum: no linearizable read"),
            }
        })
        .collect();
    Verdict { leader, term, standings }
}

/// The leader the members in quorum follow (none when no member is in quorum).
pub fn leader_of(statuses: &[MemberStatus]) -> Option<u64> {
    agreed_leader(statuses.iter().filter(|s| s.in_quorum()).filter_map(|s| s.status.as_ref().ok()).map(|s| s.leader))
}

/// A member with the answer (or failure) of its Status RPC.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// The member.
    pub member: Member,
    /// The client URL used.
    pub url: Option<String>,
    /// Its status, or why it did not answer.
    pub status: std::result::Result<StatusInfo, TransportError>,
    /// Whether it is part of the working quorum now ([`crate::reach::quorum`]).
    pub standing: crate::reach::quorum::Standing,
}

impl MemberStatus {
    /// True when it answered Status (which says nothing of quorum: see [`Self::in_quorum`]).
    pub fn answered(&self) -> bool {
        self.status.is_ok()
    }

    /// True when it is a voter in the working quorum now: the only members a command may count
    /// or choose.
    pub fn in_quorum(&self) -> bool {
        self.standing.in_quorum
    }

    /// Why it is not in the quorum, for messages: `NAME (ID): REASON`.
    pub fn why_not(&self) -> String {
        format!(
            "{} ({}): {}",
            self.member.display_name(),
            member_id(self.member.id),
            self.standing.reason.as_deref().unwrap_or("in quorum")
        )
    }
}

impl Session {
    /// Every member's Status and its [`crate::reach::quorum`] standing, concurrently, within one
    /// command timeout: the one place where commands learn which members they may count on.
    pub async fn statuses(&self, members: &[Member]) -> Vec<MemberStatus> {
        let end = std::time::Instant::now() + self.command_timeout();
        let looked = futures::future::join_all(members.iter().map(|m| async move {
            match m.client_urls.first() {
                None => crate::reach::quorum::Looked {
                    status: Err(TransportError {
                        endpoint: String::new(),
                        class: crate::reach::conn::FailureClass::NoClientUrl,
                        detail: "the member was added but has never started".into(),
                    }),
                    read: None,
                },
                Some(u) => crate::reach::quorum::look(self, u, m.is_learner, end).await,
            }
        }))
        .await;
        let seen: Vec<crate::reach::quorum::Seen> = members
            .iter()
            .zip(&looked)
            .map(|(m, l)| crate::reach::quorum::Seen::of(m.id, &m.display_name(), m.is_learner, l))
            .collect();
        let verdict = crate::reach::quorum::judge(&seen);
        members
            .iter()
            .zip(looked)
            .zip(verdict.standings)
            .map(|((m, l), standing)| MemberStatus {
                member: m.clone(),
                url: m.client_urls.first().cloned(),
                status: l.status,
                standing,
            })
            .collect()
    }

    /// A client on a voter in quorum, preferring the leader: membership changes go there.
    pub async fn any_client(
        &self,
        statuses: &[MemberStatus],
        avoid: Option<u64>,
    ) -> crate::Result<(etcd_client::Client, String)> {
        let leader = leader_of(statuses);
        let mut candidates: Vec<&MemberStatus> =
            statuses.iter().filter(|s| s.in_quorum() && Some(s.member.id) != avoid).collect();
        candidates.sort_by_key(|s| Some(s.member.id) != leader);
        for c in candidates {
            if let Some(url) = &c.url {
                if let Ok(client) = self.dialer.client(url).await {
                    return Ok((client, url.clone()));
                }
            }
        }
        Err(Error::Refused(format!(
            "no voting member is in a working quorum, so the cluster cannot change membership: {}",
            statuses.iter().filter(|s| !s.member.is_learner).map(|s| s.why_not()).collect::<Vec<_>>().join("; ")
        )))
    }
}

/// The voter to hand leadership to: the one in quorum with the highest applied index.
pub fn successor(statuses: &[MemberStatus], from: u64) -> crate::Result<Member> {
    statuses
        .iter()
        .filter(|s| s.in_quorum() && s.member.id != from)
        .max_by_key(|s| s.status.as_ref().map(|x| x.raft_applied_index).unwrap_or(0))
        .map(|s| s.member.clone())
        .ok_or_else(|| Error::Refused("no other voter in quorum can take over leadership".into()))
}

/// Moves leadership from `from` (the leader) to its [`successor`], and returns that voter's ID.
pub async fn move_leader(session: &Session, statuses: &[MemberStatus], from: u64) -> crate::Result<u64> {
    let target = successor(statuses, from)?.id;
    let url = statuses
        .iter()
        .find(|s| s.member.id == from)
        .and_then(|s| s.url.clone())
        .ok_or_else(|| Error::Refused("the leader has no client URL".into()))?;
    let mut c = session.dialer.client(&url).await?;
    call(&url, "move leader", session.command_timeout(), c.move_leader(target)).await?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(id: u64, status: Option<(u64, u64, u64)>, read: Option<Result<(), &str>>) -> Seen {
        Seen { id, name: format!("m{id}"), is_learner: false, status, read: read.map(|r| r.map_err(|e| e.to_string())) }
    }

    #[test]
    fn a_member_that_answers_without_a_leader_is_not_in_quorum() {
        let v = judge(&[
            seen(1, Some((1, 5, 100)), Some(Ok(()))),
            seen(2, Some((1, 5, 100)), Some(Ok(()))),
            seen(3, Some((0, 5, 90)), Some(Err("timed out"))),
        ]);
        assert_eq!((v.leader, v.term), (Some(1), Some(5)));
        assert!(v.standings[0].in_quorum && v.standings[1].in_quorum);
        assert_eq!(v.standings[2].reason.as_deref(), Some("cut off: no leader while m1 leads term 5"));
    }

    #[test]
    fn a_cut_off_member_that_still_follows_the_old_leader_is_named() {
        let v = judge(&[
            seen(1, Some((2, 6, 120)), Some(Ok(()))),
            seen(2, Some((2, 6, 120)), Some(Ok(()))),
            seen(3, Some((1, 5, 90)), Some(Err("timed out"))),
        ]);
        assert_eq!(v.standings[2].reason.as_deref(), Some("cut off: follows m1 in term 5 while m2 leads term 6"));
        assert_eq!(v.standings.iter().filter(|s| s.in_quorum).count(), 2);
    }

    #[test]
    fn nobody_is_in_quorum_when_no_read_completes() {
        let v = judge(&[
            seen(1, Some((1, 5, 100)), Some(Err("timed out"))),
            seen(2, Some((0, 7, 100)), Some(Err("timed out"))),
            seen(3, None, None),
        ]);
        assert_eq!(v.leader, None);
        assert!(v.standings.iter().all(|s| !s.in_quorum));
        assert_eq!(v.standings[0].reason.as_deref(), Some("takes no reads or writes: timed out"));
        assert_eq!(v.standings[1].reason.as_deref(), Some("no leader"));
        assert_eq!(v.standings[2].reason.as_deref(), Some("does not answer"));
    }

    #[test]
    fn a_member_that_follows_the_leader_but_takes_no_reads_is_not_in_quorum() {
        let v = judge(&[
            seen(1, Some((1, 5, 100)), Some(Ok(()))),
            seen(2, Some((1, 5, 100)), Some(Ok(()))),
            seen(3, Some((1, 5, 38)), Some(Err("timed out"))),
        ]);
        assert_eq!(v.standings[2].reason.as_deref(), Some("takes no reads or writes: timed out"));
    }

    #[test]
    fn far_behind_or_disagreeing_members_are_out() {
        let v = judge(&[
            seen(1, Some((1, 5, 5000)), Some(Ok(()))),
            seen(2, Some((1, 5, 4999)), Some(Ok(()))),
            seen(3, Some((1, 5, 3000)), Some(Ok(()))),
        ]);
        assert!(v.standings[1].in_quorum);
        assert_eq!(v.standings[2].reason.as_deref(), Some("behind by 2000 entries"));
        let v = judge(&[
            seen(1, Some((1, 5, 10)), Some(Ok(()))),
            seen(2, Some((1, 5, 10)), Some(Ok(()))),
            seen(3, Some((3, 4, 10)), Some(Ok(()))),
        ]);
        assert_eq!(v.standings[2].reason.as_deref(), Some("disagrees: follows m3 in term 4 while m1 leads term 5"));
    }

    #[test]
    fn learners_never_count() {
        let mut l = seen(4, Some((1, 5, 100)), None);
        l.is_learner = true;
        let all = [seen(1, Some((1, 5, 100)), Some(Ok(()))), l];
        let v = judge(&all);
        assert!(v.standings[0].in_quorum && !v.standings[1].in_quorum);
        assert_eq!(all.iter().zip(&v.standings).filter(|(s, st)| !s.is_learner && st.in_quorum).count(), 1);
    }
}
