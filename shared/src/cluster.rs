//! A session with an etcd cluster: discovery, TLS, and the authoritative member list from etcd.

use std::time::Duration;

use serde::Serialize;

use crate::conn::{call, Dialer, TransportError};
use crate::discovery::{self, Discovery, Endpoint, Settings};
use crate::error::{Error, Result};
use crate::tls::TlsContext;
use crate::util::member_id;

/// A member as etcd lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Member {
    /// Member ID (hex in output).
    #[serde(serialize_with = "ser_hex")]
    pub id: u64,
    /// Name; empty until a learner or new member has started.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty until the member has started.
    pub client_urls: Vec<String>,
    /// True for a learner (non-voting) member.
    pub is_learner: bool,
}

impl From<&etcd_client::Member> for Member {
    fn from(m: &etcd_client::Member) -> Member {
        Member {
            id: m.id(),
            name: m.name().to_string(),
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            is_learner: m.is_learner(),
        }
    }
}

impl Member {
    /// A name to show: the name, or `(not started)` with the peer URL.
    pub fn display_name(&self) -> String {
        if self.name.is_empty() {
            "(not started)".to_string()
        } else {
            self.name.clone()
        }
    }
}

pub use crate::util::{ser_hex, ser_hex_opt};

/// The member list and who answered it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberList {
    /// Cluster ID.
    #[serde(serialize_with = "ser_hex")]
    pub cluster_id: u64,
    /// The member that answered.
    #[serde(serialize_with = "ser_hex")]
    pub answered_by: u64,
    /// The endpoint that answered.
    pub endpoint: String,
    /// The members.
    pub members: Vec<Member>,
    /// Endpoints found beyond discovery's (this node's member did not answer), with their
    /// sources.
    pub extra_endpoints: Vec<Endpoint>,
}

/// Discovery plus a dialer: everything needed to talk to the cluster.
#[derive(Debug, Clone)]
pub struct Session {
    /// What the user asked for.
    pub settings: Settings,
    /// What discovery found.
    pub discovery: Discovery,
    /// The dialer (TLS context, dial timeout).
    pub dialer: Dialer,
}

/// Opens one tunnel before anything else, so that an RBAC refusal is one clear error (exit 3)
/// rather than every member failing alike. Other failures are the member's, found later.
async fn preflight(t: &crate::tunnel::Tunnels, timeout: Duration) -> Result<()> {
    let Some((pod, port)) = t.first() else { return Ok(()) };
    match t.open("preflight", &pod, port, timeout).await {
        Err(e @ Error::Forbidden { .. }) => Err(e),
        _ => Ok(()),
    }
}

impl Session {
    /// Runs discovery and loads the TLS material.
    pub async fn open(settings: &Settings) -> Result<Session> {
        let discovery = discovery::discover(settings).await?;
        let tls = TlsContext::load(&discovery.tls, discovery.insecure)?;
        if discovery.insecure {
            crate::print::progress::message(
                "WARNING: server certificates are NOT verified (--insecure-skip-tls-verify)",
            );
        }
        let mut dialer = Dialer::new(tls, settings.dial_timeout);
        if let Some(t) = discovery.tunnels.clone() {
            preflight(&t, settings.dial_timeout).await?;
            dialer = dialer.through(t);
        }
        Ok(Session { settings: settings.clone(), dialer, discovery })
    }

    /// The per-call deadline.
    pub fn command_timeout(&self) -> Duration {
        self.settings.command_timeout
    }

    /// Asks every discovered endpoint for the member list at once; the first answer wins.
    ///
    /// When none answers and the endpoints came from this node's manifest (only its own member),
    /// the other members are tried: those the data dir's backend and `--initial-cluster` name
    /// ([`Discovery::fallback`]), then the etcd pods through kubeadm's admin.conf. The endpoints
    /// that led to members are returned in [`MemberList::extra_endpoints`], with their sources.
    pub async fn member_list(&self) -> Result<MemberList> {
        let urls: Vec<String> = self.discovery.endpoints.iter().map(|e| e.url.clone()).collect();
        let first = self.member_list_from(&urls).await;
        let Err(Error::Unreachable { errors }) = first else { return first };
        if self.discovery.manifest.is_none() || !self.settings.endpoints.is_empty() {
            return Err(Error::Unreachable { errors });
        }
        let mut all_errors = errors;
        let verbose = self.settings.verbose;
        let mut tried: Vec<Endpoint> = Vec::new();
        for round in 0..2 {
            let extra: Vec<Endpoint> = if round == 0 {
                self.discovery.fallback.clone()
            } else {
                discovery::admin_conf_endpoints(&self.settings).await
            };
            let extra: Vec<Endpoint> = extra
                .into_iter()
                .filter(|e| !urls.iter().chain(tried.iter().map(|t| &t.url)).any(|u| u == &e.url))
                .collect();
            if extra.is_empty() {
                continue;
            }
            if verbose {
                crate::print::progress::message(&format!(
                    "discovery: this node's member does not answer; trying {}",
                    extra.iter().map(|e| format!("{} (from {})", e.url, e.source)).collect::<Vec<_>>().join(", ")
                ));
            }
            let extra_urls: Vec<String> = extra.iter().map(|e| e.url.clone()).collect();
            tried.extend(extra);
            match self.member_list_from(&extra_urls).await {
                Ok(mut list) => {
                    // Keep the endpoints that are some member's client URL (or the one that
                    // answered): the rest are guesses that led nowhere.
                    list.extra_endpoints = tried
                        .into_iter()
                        .filter(|e| {
                            e.url == list.endpoint
                                || list.members.iter().any(|m| {
                                    m.client_urls.iter().any(|u| u.trim_end_matches('/') == e.url.trim_end_matches('/'))
                                })
                        })
                        .collect();
                    if verbose {
                        crate::print::progress::message(&format!(
                            "discovery: member list from {} (its source: {})",
                            list.endpoint,
                            list.extra_endpoints
                                .iter()
                                .find(|e| e.url == list.endpoint)
                                .map(|e| e.source.as_str())
                                .unwrap_or("?")
                        ));
                    }
                    return Ok(list);
                }
                Err(Error::Unreachable { errors }) => all_errors.extend(errors),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unreachable { errors: all_errors })
    }

    /// The member list from the first of `urls` to answer.
    pub async fn member_list_from(&self, urls: &[String]) -> Result<MemberList> {
        if urls.is_empty() {
            return Err(Error::NothingFound { tried: vec!["no endpoints to contact".into()] });
        }
        // All at once; the first answer wins, and when none answers every failure is reported.
        let mut pending: futures::stream::FuturesUnordered<_> =
            urls.iter().map(|u| self.member_list_one(u.clone())).collect();
        let mut errors = Vec::new();
        while let Some(r) = futures::StreamExt::next(&mut pending).await {
            match r {
                Ok(list) => return Ok(list),
                Err(e) => errors.push(e),
            }
        }
        Err(Error::Unreachable { errors })
    }

    async fn member_list_one(&self, url: String) -> std::result::Result<MemberList, TransportError> {
        self.dialer.probe(&url).await?;
        let mut client = self.dialer.client(&url).await?;
        let resp = call(&url, "member list", self.command_timeout(), client.member_list()).await?;
        crate::limits::check_members(&url, resp.members().len())?;
        let header = resp.header();
        let members = resp.members().iter().map(Member::from).collect();
        Ok(MemberList {
            cluster_id: header.map(|h| h.cluster_id()).unwrap_or(0),
            answered_by: header.map(|h| h.member_id()).unwrap_or(0),
            endpoint: url,
            members,
            extra_endpoints: Vec::new(),
        })
    }
}

/// Finds a member by name or hex ID; errors name the known members.
pub fn find_member<'a>(members: &'a [Member], key: &str) -> Result<&'a Member> {
    if let Some(m) = members.iter().find(|m| m.name == key) {
        return Ok(m);
    }
    if let Some(id) = crate::util::parse_member_id(key) {
        if let Some(m) = members.iter().find(|m| m.id == id) {
            return Ok(m);
        }
    }
    if let Some(id) = crate::util::parse_member_id_decimal(key) {
        if let Some(m) = members.iter().find(|m| m.id == id) {
            return Ok(m);
        }
    }
    if let Some(m) =
        members.iter().find(|m| m.peer_urls.iter().any(|u| u.trim_end_matches('/') == key.trim_end_matches('/')))
    {
        return Ok(m);
    }
    let known: Vec<String> = members.iter().map(|m| format!("{} ({})", m.display_name(), member_id(m.id))).collect();
    let hint = if members.iter().any(|m| m.name.is_empty()) {
        "; a member that never started has no name yet: use its ID"
    } else {
        ""
    };
    Err(Error::Usage(format!("no member named or with ID {key:?}; members are: {}{hint}", known.join(", "))))
}

/// The one learner, for a command given no member (`learner promote` alone): a name nobody has
/// is never taken to mean an unstarted learner, that is [`find_member`]'s usage error.
pub fn only_learner(members: &[Member]) -> Result<&Member> {
    let learners: Vec<&Member> = members.iter().filter(|m| m.is_learner).collect();
    match learners.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Usage("the cluster has no learner: name the member to promote".into())),
        many => Err(Error::Usage(format!(
            "the cluster has {} learners: name the one to promote ({})",
            many.len(),
            many.iter().map(|m| format!("{} ({})", m.display_name(), member_id(m.id))).collect::<Vec<_>>().join(", ")
        ))),
    }
}

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

/// The leader the members in quorum follow (none when no member is in quorum).
pub fn leader_of(statuses: &[MemberStatus]) -> Option<u64> {
    agreed_leader(statuses.iter().filter(|s| s.in_quorum()).filter_map(|s| s.status.as_ref().ok()).map(|s| s.leader))
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

/// A member with the answer (or failure) of its Status RPC.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    /// The member.
    pub member: Member,
    /// The client URL used.
    pub url: Option<String>,
    /// Its status, or why it did not answer.
    pub status: std::result::Result<StatusInfo, TransportError>,
    /// Whether it is part of the working quorum now ([`crate::quorum`]).
    pub standing: crate::quorum::Standing,
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
    /// The Status RPC of whatever member serves `url` (what it says, not whether it is in a
    /// quorum: see [`Session::statuses`]).
    pub async fn status_at(&self, url: &str) -> std::result::Result<StatusInfo, TransportError> {
        self.dialer.probe(url).await?;
        let mut c = self.dialer.client(url).await?;
        status_info(call(url, "status", self.command_timeout(), c.status()).await)
    }

    /// Every member's Status and its [`crate::quorum`] standing, concurrently, within one
    /// command timeout: the one place where commands learn which members they may count on.
    pub async fn statuses(&self, members: &[Member]) -> Vec<MemberStatus> {
        let end = std::time::Instant::now() + self.command_timeout();
        let looked = futures::future::join_all(members.iter().map(|m| async move {
            match m.client_urls.first() {
                None => crate::quorum::Looked {
                    status: Err(TransportError {
                        endpoint: String::new(),
                        class: crate::conn::FailureClass::NoClientUrl,
                        detail: "the member was added but has never started".into(),
                    }),
                    read: None,
                },
                Some(u) => crate::quorum::look(self, u, m.is_learner, end).await,
            }
        }))
        .await;
        let seen: Vec<crate::quorum::Seen> = members
            .iter()
            .zip(&looked)
            .map(|(m, l)| crate::quorum::Seen::of(m.id, &m.display_name(), m.is_learner, l))
            .collect();
        let verdict = crate::quorum::judge(&seen);
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
    ) -> Result<(etcd_client::Client, String)> {
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
                crate::conn::FailureClass::Network(format!("HTTP {code}")),
                format!("/version answered HTTP {code}"),
            ));
        }
        serde_json::from_str(body.trim()).map_err(|e| {
            TransportError::new(
                url,
                crate::conn::FailureClass::Network("bad /version".into()),
                format!("/version did not answer etcd's JSON ({e})"),
            )
        })
    }
}

/// The voter to hand leadership to: the one in quorum with the highest applied index.
pub fn successor(statuses: &[MemberStatus], from: u64) -> Result<Member> {
    statuses
        .iter()
        .filter(|s| s.in_quorum() && s.member.id != from)
        .max_by_key(|s| s.status.as_ref().map(|x| x.raft_applied_index).unwrap_or(0))
        .map(|s| s.member.clone())
        .ok_or_else(|| Error::Refused("no other voter in quorum can take over leadership".into()))
}

/// Moves leadership from `from` (the leader) to its [`successor`], and returns that voter's ID.
pub async fn move_leader(session: &Session, statuses: &[MemberStatus], from: u64) -> Result<u64> {
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
