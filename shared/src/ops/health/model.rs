//! The health report's model: what each member said, the checks, the whole report. Built by
//! [`super::run`], printed by [`crate::cli::print`].

use std::time::Duration;

use serde::Serialize;

use crate::base::units::duration_ms;
use crate::base::units::member_id;
use crate::base::units::ser_hex_opt;
use crate::reach::cluster::Member;
use crate::reach::conn::{FailureClass, TransportError};
pub use crate::reach::discovery::manifest::DEFAULT_QUOTA;
use crate::reach::discovery::settings::Endpoint;
use crate::reach::status::{agreed_leader, learner_readiness};
use crate::reach::tls::CertInfo;

/// ok / warn / fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Worth attention; does not fail the run.
    Warn,
    /// Fails the run (exit 1).
    Fail,
}

impl Status {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Check name (`quorum`, `leader`, ...).
    pub name: &'static str,
    /// Result.
    pub status: Status,
    /// One-line finding.
    pub message: String,
    /// The next step, where useful.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A check's result.
pub(crate) fn check(name: &'static str, status: Status, message: impl Into<String>, hint: Option<String>) -> Check {
    Check { name, status, message: message.into(), hint }
}

/// A learner's progress.
#[derive(Debug, Clone, Serialize)]
pub struct LearnerProgress {
    /// `not started`, `catching up` or `in sync`.
    pub state: String,
    /// Its raft index.
    pub raft_index: Option<u64>,
    /// The leader's raft index.
    pub leader_raft_index: Option<u64>,
    /// Its applied index.
    pub applied: Option<u64>,
    /// The leader's applied index.
    pub leader_applied: Option<u64>,
    /// Percent of the leader's log the learner holds ([`crate::reach::status::learner_readiness`]).
    pub percent: Option<f64>,
    /// Whether etcd would accept a promote now (the same rule as `learner status`).
    pub promotable: bool,
}

/// What one member said.
#[derive(Debug, Clone, Serialize)]
pub struct MemberHealth {
    /// Member name (empty when not started, or for an endpoint that is not a member).
    pub name: String,
    /// Member ID (null for an endpoint that is not a member).
    #[serde(serialize_with = "ser_hex_opt")]
    pub id: Option<u64>,
    /// The endpoint contacted.
    pub endpoint: Option<String>,
    /// `healthy`, `unhealthy`, or for a learner its state.
    pub health: String,
    /// True when the member answered.
    pub answered: bool,
    /// True when it is a voter in the working quorum now ([`crate::reach::quorum`]): it completed a
    /// linearizable read and follows the quorum's leader in its term. Only these are `healthy`.
    pub in_quorum: bool,
    /// Latency of a linearizable read (`health` key), as etcdctl's endpoint health.
    #[serde(rename = "latency_ms", with = "duration_ms::option")]
    pub latency: Option<Duration>,
    /// This member is the leader.
    pub is_leader: bool,
    /// This member is a learner.
    pub is_learner: bool,
    /// Whether it is in etcd's member list (false: a discovered endpoint only).
    pub is_member: bool,
    /// etcd version.
    pub version: Option<String>,
    /// The cluster version this member runs at (`/version`'s `etcdcluster`, or the
    /// `etcd_cluster_version` metric): the lowest minor of the members, `3.5.0`.
    pub cluster_version: Option<String>,
    /// DB size in bytes.
    pub db_size: Option<u64>,
    /// DB size in use in bytes.
    pub db_size_in_use: Option<u64>,
    /// Raft term.
    pub raft_term: Option<u64>,
    /// Raft index.
    pub raft_index: Option<u64>,
    /// Raft applied index.
    pub raft_applied_index: Option<u64>,
    /// Applied lag behind the leader's applied index, in entries.
    pub applied_lag: Option<u64>,
    /// The leader this member believes in.
    #[serde(serialize_with = "ser_hex_opt")]
    pub leader: Option<u64>,
    /// The revision of its store (from the status header).
    pub revision: Option<i64>,
    /// Errors etcd reports in its status, and our failure, if any.
    pub errors: Vec<String>,
    /// The failure to reach it, classified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<TransportError>,
    /// Learner progress, for learners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learner: Option<LearnerProgress>,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Its serving certificate, read from the TLS handshake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cert: Option<CertInfo>,
    /// HashKV at the common revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<u32>,
    /// Storage quota compared against.
    pub quota_backend_bytes: u64,
    /// What its metrics endpoint said (disk and network latency, proposals), when reachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<crate::reach::metrics::Scrape>,
}

/// The quorum arithmetic of a report, as figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quorum {
    /// Voting members (learners excluded).
    pub voters: usize,
    /// Voters that answered.
    pub answering: usize,
    /// Voters in the working quorum ([`crate::reach::quorum`]): what `needed` and `can_lose` count.
    pub in_quorum: usize,
    /// Voters needed for a quorum.
    pub needed: usize,
    /// How many more voters may fail before the quorum is lost (0 when it is lost).
    pub can_lose: usize,
}

impl Quorum {
    /// The figures for these rows.
    pub fn of(rows: &[MemberHealth]) -> Quorum {
        let n = voters(rows).count();
        let answering = voters(rows).filter(|r| r.answered).count();
        let in_quorum = voters(rows).filter(|r| r.in_quorum).count();
        let (_, needed, spare) = crate::reach::status::quorum(in_quorum, n);
        Quorum { voters: n, answering, in_quorum, needed, can_lose: spare.max(0) as usize }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When the report was made (RFC 3339, UTC): one per `--watch` round.
    pub time: String,
    /// Cluster ID, when any member answered.
    #[serde(serialize_with = "ser_hex_opt")]
    pub cluster_id: Option<u64>,
    /// The leader, when agreed.
    #[serde(serialize_with = "ser_hex_opt")]
    pub leader: Option<u64>,
    /// True when no check failed.
    pub healthy: bool,
    /// The quorum figures.
    pub quorum: Quorum,
    /// One entry per member, plus discovered endpoints that are not members.
    pub members: Vec<MemberHealth>,
    /// The checks.
    pub checks: Vec<Check>,
    /// The endpoints discovery gave.
    pub discovered: Vec<Endpoint>,
    /// Server certificates were not verified.
    pub insecure: bool,
    /// How the members were reached: `direct` or `port-forward`.
    pub transport: &'static str,
    /// Checks that could not run (no etcd client certificate: the metrics-only report).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<&'static str>,
    /// How long the run took.
    #[serde(rename = "took_ms", with = "duration_ms")]
    pub took: Duration,
}

impl Report {
    /// The exit code of the report: 0 when no check fails, 1 otherwise.
    pub fn exit_code(&self) -> crate::ExitCode {
        if self.healthy {
            crate::ExitCode::Ok
        } else {
            crate::ExitCode::Negative
        }
    }
}

/// A row for a member (or a bare endpoint) that has not answered yet.
pub(crate) fn blank(member: Option<&Member>, endpoint: Option<String>, quota: u64) -> MemberHealth {
    MemberHealth {
        name: member.map(|m| m.name.clone()).unwrap_or_default(),
        id: member.map(|m| m.id),
        endpoint,
        health: "unhealthy".into(),
        answered: false,
        in_quorum: false,
        latency: None,
        is_leader: false,
        is_learner: member.is_some_and(|m| m.is_learner),
        is_member: member.is_some(),
        version: None,
        cluster_version: None,
        db_size: None,
        db_size_in_use: None,
        raft_term: None,
        raft_index: None,
        raft_applied_index: None,
        applied_lag: None,
        leader: None,
        revision: None,
        errors: Vec::new(),
        failure: None,
        learner: None,
        peer_urls: member.map(|m| m.peer_urls.clone()).unwrap_or_default(),
        client_urls: member.map(|m| m.client_urls.clone()).unwrap_or_default(),
        server_cert: None,
        hash_kv: None,
        quota_backend_bytes: quota,
        metrics: None,
    }
}

/// Fills a row from the member's Status (what it says of itself; quorum is judged after).
pub(crate) fn fill_status(h: &mut MemberHealth, s: crate::reach::status::StatusInfo) {
    h.answered = true;
    h.version = Some(s.version);
    h.db_size = Some(s.db_size);
    h.db_size_in_use = Some(s.db_size_in_use);
    h.raft_term = Some(s.raft_term);
    h.raft_index = Some(s.raft_index);
    h.raft_applied_index = Some(s.raft_applied_index);
    h.leader = Some(s.leader).filter(|l| *l != 0);
    h.is_learner = h.is_learner || s.is_learner;
    h.revision = Some(s.revision);
    if h.id.is_none() {
        h.id = Some(s.member_id);
    }
    h.is_leader = s.member_id == s.leader;
    h.errors.extend(s.errors);
}

/// The voting members among the rows.
pub fn voters(rows: &[MemberHealth]) -> impl Iterator<Item = &MemberHealth> {
    rows.iter().filter(|r| r.is_member && !r.is_learner)
}

/// How a row is named in messages: its name, else its ID, else its endpoint.
pub fn label(r: &MemberHealth) -> String {
    if !r.name.is_empty() {
        r.name.clone()
    } else if let Some(id) = r.id {
        member_id(id)
    } else {
        r.endpoint.clone().unwrap_or_default()
    }
}

/// The report when no member answered: every discovered endpoint with its failure.
pub(crate) fn nothing_answered(discovered: &[Endpoint], errors: &[TransportError], quota: u64) -> Vec<MemberHealth> {
    discovered
        .iter()
        .map(|d| {
            let mut h = blank(None, Some(d.url.clone()), quota);
            h.name = d.name.clone().unwrap_or_default();
            if let Some(e) = errors.iter().find(|e| e.endpoint == d.url) {
                h.errors.push(e.class.short());
                h.failure = Some(e.clone());
            }
            h
        })
        .collect()
}

/// A stray endpoint (after the first `n_members` rows) that turns out to be a member under
/// another URL (an alias such as localhost for 127.0.0.1) is folded into that member's row: one
/// row per member ID, never two, so that quorum counts members. The alias's answer replaces the
/// member's own row only when that row did not answer. Returns one note per alias.
pub(crate) fn merge_aliases<C>(rows: &mut Vec<MemberHealth>, clients: &mut Vec<C>, n_members: usize) -> Vec<String> {
    let mut aliases: Vec<String> = Vec::new();
    for i in (n_members..rows.len()).rev() {
        let Some(id) = rows[i].id.filter(|_| rows[i].answered) else { continue };
        let Some(j) = rows[..n_members].iter().position(|r| r.id == Some(id)) else { continue };
        let alias = rows.remove(i);
        let client = clients.remove(i);
        let url = alias.endpoint.clone().unwrap_or_default();
        aliases.push(format!("endpoint {url} reaches member {} ({})", rows[j].name, member_id(id)));
        if !rows[j].answered {
            let keep = MemberHealth {
                name: rows[j].name.clone(),
                is_member: true,
                peer_urls: rows[j].peer_urls.clone(),
                client_urls: rows[j].client_urls.clone(),
                ..alias
            };
            rows[j] = keep;
            clients[j] = client;
        }
    }
    aliases
}

/// Stable order: members by name (unstarted ones last), then stray endpoints.
pub(crate) fn sort_rows<C>(rows: Vec<MemberHealth>, clients: Vec<C>) -> (Vec<MemberHealth>, Vec<C>) {
    let mut paired: Vec<(MemberHealth, C)> = rows.into_iter().zip(clients).collect();
    paired.sort_by_key(|(r, _)| (!r.is_member, r.name.is_empty(), r.name.clone(), r.endpoint.clone()));
    paired.into_iter().unzip()
}

/// Marks the leader (the quorum's, from [`super::probe::judge_rows`]; else the one most members
/// that answered follow), fills every row's applied lag and every learner's progress with the
/// one readiness rule of [`learner_readiness`].
pub(crate) fn annotate(rows: &mut [MemberHealth], quorum_leader: Option<u64>) -> Option<u64> {
    let leader = quorum_leader.or_else(|| agreed_leader(rows.iter().filter_map(|r| r.leader)));
    let leader_row = rows.iter().find(|r| r.id.is_some() && r.id == leader && r.is_member);
    let leader_applied = leader_row.and_then(|r| r.raft_applied_index);
    let leader_index = leader_row.and_then(|r| r.raft_index);
    for r in rows.iter_mut() {
        if let (Some(la), Some(a)) = (leader_applied, r.raft_applied_index) {
            r.applied_lag = Some(la.saturating_sub(a));
        }
        r.is_leader = r.is_leader || (r.id.is_some() && r.id == leader && r.answered);
        if !r.is_learner {
            continue;
        }
        let ready = learner_readiness(r.raft_index, leader_index);
        let state = if r.client_urls.is_empty()
            || matches!(r.failure.as_ref().map(|f| &f.class), Some(FailureClass::NoClientUrl))
        {
            "not started"
        } else if !r.answered {
            "unreachable"
        } else if ready.promotable {
            "in sync"
        } else {
            "catching up"
        };
        r.health = match ready.percent {
            Some(p) if r.answered => format!("learner: {state} ({p:.0}%)"),
            _ => format!("learner: {state}"),
        };
        r.learner = Some(LearnerProgress {
            state: state.into(),
            raft_index: r.raft_index,
            leader_raft_index: leader_index,
            applied: r.raft_applied_index,
            leader_applied,
            percent: ready.percent,
            promotable: ready.promotable,
        });
    }
    leader
}
/// Certificates expiring sooner than this get a warning.
pub const CERT_WARN_SECS: i64 = 30 * 24 * 3600;

/// What HashKV returned: the common revision, each voter's hash, the voters that failed.
#[derive(Debug, Clone, Default)]
pub struct HashOutcome {
    /// The revision every voter hashed at.
    pub revision: i64,
    /// `(member name, hash)` of the voters that answered.
    pub hashes: Vec<(String, u32)>,
    /// `name: failure` of the voters that did not.
    pub errors: Vec<String>,
}

/// An alarm etcd raised: the member and `NOSPACE` or `CORRUPT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// The member it is raised on.
    pub member_id: u64,
    /// `NOSPACE` or `CORRUPT`.
    pub kind: &'static str,
}
