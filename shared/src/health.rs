//! `kubectl etcd health`: every member probed concurrently, then the cluster-wide checks.
//!
//! The model ([`Report`]) is built by [`run`]; printers ([`members_table`], [`checks_table`])
//! are pure functions over it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::{ser_hex_opt, Member, MemberList, Session};
use crate::conn::{call, FailureClass, TransportError};
use crate::discovery::Endpoint;
use crate::render::{duration_ms, Table};
use crate::tls::CertInfo;
use crate::util::{format_bytes, format_duration, member_id};

/// etcd's default backend quota (`--quota-backend-bytes` unset).
pub const DEFAULT_QUOTA: u64 = 2 * 1024 * 1024 * 1024;
/// Certificates expiring sooner than this get a warning.
pub const CERT_WARN_SECS: i64 = 30 * 24 * 3600;
/// etcd accepts a promote once the learner has this share of the leader's log.
pub const LEARNER_READY_RATIO: f64 = 0.9;

/// Options of a health run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Skip the HashKV consistency check.
    pub skip_hashkv: bool,
    /// Backend quota to compare DB sizes against (`None`: manifest or etcd's default).
    pub quota_backend_bytes: Option<u64>,
}

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
    fn as_str(self) -> &'static str {
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

fn check(name: &'static str, status: Status, message: impl Into<String>, hint: Option<String>) -> Check {
    Check { name, status, message: message.into(), hint }
}

/// A learner's progress.
#[derive(Debug, Clone, Serialize)]
pub struct LearnerProgress {
    /// `not started`, `catching up` or `in sync`.
    pub state: String,
    /// Its applied index.
    pub applied: Option<u64>,
    /// The leader's applied index.
    pub leader_applied: Option<u64>,
    /// Percent of the leader's log applied.
    pub percent: Option<f64>,
    /// Whether etcd would accept a promote now.
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
    /// Latency of a linearizable read (`health` key), as etcdctl's endpoint health.
    #[serde(with = "duration_ms::option")]
    pub latency: Option<Duration>,
    /// This member is the leader.
    pub is_leader: bool,
    /// This member is a learner.
    pub is_learner: bool,
    /// Whether it is in etcd's member list (false: a discovered endpoint only).
    pub is_member: bool,
    /// etcd version.
    pub version: Option<String>,
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
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Cluster ID, when any member answered.
    #[serde(serialize_with = "ser_hex_opt")]
    pub cluster_id: Option<u64>,
    /// The leader, when agreed.
    #[serde(serialize_with = "ser_hex_opt")]
    pub leader: Option<u64>,
    /// True when no check failed.
    pub healthy: bool,
    /// One entry per member, plus discovered endpoints that are not members.
    pub members: Vec<MemberHealth>,
    /// The checks.
    pub checks: Vec<Check>,
    /// The endpoints discovery gave.
    pub discovered: Vec<Endpoint>,
    /// Server certificates were not verified.
    pub insecure: bool,
    /// How long the run took.
    #[serde(with = "duration_ms")]
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

/// The time left of a run's overall deadline.
#[derive(Debug, Clone, Copy)]
struct Budget {
    end: Instant,
}

impl Budget {
    /// Time left, at least 100 ms so that a late call still gets a chance to answer.
    fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now()).max(Duration::from_millis(100))
    }
}

struct Probed {
    member: MemberHealth,
    client: Option<etcd_client::Client>,
}

fn blank(member: Option<&Member>, endpoint: Option<String>, quota: u64) -> MemberHealth {
    MemberHealth {
        name: member.map(|m| m.name.clone()).unwrap_or_default(),
        id: member.map(|m| m.id),
        endpoint,
        health: "unhealthy".into(),
        answered: false,
        latency: None,
        is_leader: false,
        is_learner: member.is_some_and(|m| m.is_learner),
        is_member: member.is_some(),
        version: None,
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
    }
}

/// Picks the client URL to use for a member: one discovery also found, else the first.
fn pick_url(m: &Member, discovered: &[Endpoint]) -> Option<String> {
    m.client_urls
        .iter()
        .find(|u| discovered.iter().any(|d| same_url(&d.url, u)))
        .or_else(|| m.client_urls.first())
        .cloned()
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

async fn probe_member(
    session: &Session,
    budget: &Budget,
    member: Option<&Member>,
    url: Option<String>,
    quota: u64,
) -> Probed {
    let mut h = blank(member, url.clone(), quota);
    let Some(url) = url else {
        h.health = if h.is_learner { "not started".into() } else { "unhealthy".into() };
        let f = TransportError {
            endpoint: String::new(),
            class: FailureClass::NoClientUrl,
            detail: "the member was added but has never started (no client URL)".into(),
        };
        h.errors.push(f.class.short());
        h.failure = Some(f);
        return Probed { member: h, client: None };
    };
    let probe = match session.dialer.probe(&url).await {
        Ok(p) => p,
        Err(e) => {
            h.errors.push(e.class.short());
            h.failure = Some(e);
            return Probed { member: h, client: None };
        }
    };
    h.server_cert = probe.server_cert;
    let mut client = match session.dialer.client(&url).await {
        Ok(c) => c,
        Err(e) => {
            h.errors.push(e.class.short());
            h.failure = Some(e);
            return Probed { member: h, client: None };
        }
    };
    let mut c2 = client.clone();
    let is_learner = h.is_learner;
    let deadline = budget.left();
    let status_fut = call(&url, "status", deadline, client.status());
    let health_fut = async {
        if is_learner {
            return None;
        }
        let start = Instant::now();
        // A linearizable read, as etcdctl's endpoint health does; permission denied still
        // proves the member is serving.
        let r = call(&url, "linearizable read", deadline, c2.get("health", None)).await;
        Some(match r {
            Ok(_) => Ok(start.elapsed()),
            Err(e) if matches!(&e.class, FailureClass::Rpc(m) if m.contains("permission denied")) => {
                Ok(start.elapsed())
            }
            Err(e) => Err(e),
        })
    };
    let (status, read) = tokio::join!(status_fut, health_fut);
    match status {
        Ok(s) => {
            h.answered = true;
            h.version = Some(s.version().to_string());
            h.db_size = Some(s.db_size().max(0) as u64);
            h.db_size_in_use = Some(s.raft_used_db_size().max(0) as u64);
            h.raft_term = Some(s.raft_term());
            h.raft_index = Some(s.raft_index());
            h.raft_applied_index = Some(s.raft_applied_index());
            h.leader = Some(s.leader()).filter(|l| *l != 0);
            h.is_learner = h.is_learner || s.is_learner();
            h.revision = s.header().map(|x| x.revision());
            if let Some(hdr) = s.header() {
                if h.id.is_none() {
                    h.id = Some(hdr.member_id());
                }
                h.is_leader = hdr.member_id() == s.leader();
            }
            h.errors.extend(s.errors().iter().cloned());
        }
        Err(e) => {
            h.errors.push(e.class.short());
            h.failure = Some(e);
        }
    }
    match read {
        None => {}
        Some(Ok(lat)) => h.latency = Some(lat),
        Some(Err(e)) => {
            h.errors.push(format!("read: {}", e.class.short()));
            if h.failure.is_none() {
                h.failure = Some(e);
            }
        }
    }
    if !h.is_learner {
        h.health =
            if h.answered && h.latency.is_some() && h.failure.is_none() { "healthy" } else { "unhealthy" }.into();
    }
    Probed { member: h, client: Some(client) }
}

/// Runs every probe and check.
pub async fn run(session: &Session, opts: &Options) -> crate::Result<Report> {
    let start = Instant::now();
    // One budget for the whole run: a frozen member costs one deadline, not one per phase.
    let budget = Budget { end: start + session.settings.dial_timeout + session.command_timeout() };
    let mut discovered = session.discovery.endpoints.clone();
    let quota = opts
        .quota_backend_bytes
        .or_else(|| session.discovery.manifest.as_ref().and_then(|m| m.quota_backend_bytes()))
        .filter(|q| *q > 0)
        .unwrap_or(DEFAULT_QUOTA);

    // The member list is the truth; without it, probe what discovery found.
    let list: Result<MemberList, crate::Error> = session.member_list().await;
    let list = match list {
        Ok(l) => Some(l),
        Err(crate::Error::Unreachable { errors })
            if !errors.is_empty() && errors.iter().all(|e| matches!(e.class, FailureClass::Tls(_))) =>
        {
            // Every member refused our TLS: that is our credentials, not the cluster's quorum.
            return Err(crate::Error::Unreachable { errors });
        }
        Err(crate::Error::Unreachable { errors }) => {
            // Nothing answered: report every discovered endpoint with its failure.
            let members = discovered
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
                .collect();
            let checks = vec![check(
                "quorum",
                Status::Fail,
                "no member answered",
                Some("check that etcd runs on the endpoints and that the certificates are right (see ERRORS)".into()),
            )];
            return Ok(Report {
                cluster_id: None,
                leader: None,
                healthy: false,
                members,
                checks,
                discovered,
                insecure: session.discovery.insecure,
                took: start.elapsed(),
            });
        }
        Err(e) => return Err(e),
    };
    let list = list.expect("member list");
    discovered.extend(list.extra_endpoints.iter().cloned());

    // Probe every member and every discovered endpoint that is not a member, concurrently.
    let mut targets: Vec<(Option<&Member>, Option<String>)> =
        list.members.iter().map(|m| (Some(m), pick_url(m, &discovered))).collect();
    let strays: Vec<&Endpoint> = discovered
        .iter()
        .filter(|d| !list.members.iter().any(|m| m.client_urls.iter().any(|u| same_url(u, &d.url))))
        .collect();
    for d in &strays {
        targets.push((None, Some(d.url.clone())));
    }
    let probed: Vec<Probed> =
        futures::future::join_all(targets.iter().map(|(m, u)| probe_member(session, &budget, *m, u.clone(), quota)))
            .await;
    let mut rows: Vec<MemberHealth> = Vec::new();
    let mut clients: Vec<Option<etcd_client::Client>> = Vec::new();
    for p in probed {
        rows.push(p.member);
        clients.push(p.client);
    }
    // A stray endpoint that turns out to be a member under another URL (an alias such as
    // localhost for 127.0.0.1): one row per member ID, never two, so that quorum counts members.
    // The alias's answer replaces the member's own row only when that row did not answer.
    let n_members = list.members.len();
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
    let strays: Vec<&Endpoint> = strays
        .into_iter()
        .filter(|d| !aliases.iter().any(|a| a.starts_with(&format!("endpoint {} ", d.url))))
        .collect();

    // Stable order: members by name (unstarted ones last), then stray endpoints.
    let mut paired: Vec<(MemberHealth, Option<etcd_client::Client>)> = rows.into_iter().zip(clients).collect();
    paired.sort_by_key(|(r, _)| (!r.is_member, r.name.is_empty(), r.name.clone(), r.endpoint.clone()));
    let (mut rows, clients): (Vec<MemberHealth>, Vec<Option<etcd_client::Client>>) = paired.into_iter().unzip();

    // Leader and learner progress.
    let leader_votes: BTreeMap<u64, usize> =
        rows.iter().filter_map(|r| r.leader).fold(BTreeMap::new(), |mut acc, l| {
            *acc.entry(l).or_default() += 1;
            acc
        });
    let leader = leader_votes.iter().max_by_key(|(_, n)| **n).map(|(l, _)| *l);
    let leader_applied =
        rows.iter().find(|r| Some(r.id) == Some(leader) && r.is_member).and_then(|r| r.raft_applied_index);
    for r in rows.iter_mut() {
        if let (Some(la), Some(a)) = (leader_applied, r.raft_applied_index) {
            r.applied_lag = Some(la.saturating_sub(a));
        }
        r.is_leader = r.is_leader || (r.id.is_some() && r.id == leader && r.answered);
        if r.is_learner {
            let percent = match (r.raft_applied_index, leader_applied) {
                (Some(a), Some(l)) if l > 0 => Some(((a as f64 / l as f64) * 100.0).min(100.0)),
                _ => None,
            };
            let promotable = percent.is_some_and(|p| p >= LEARNER_READY_RATIO * 100.0);
            let state = if r.client_urls.is_empty()
                || matches!(r.failure.as_ref().map(|f| &f.class), Some(FailureClass::NoClientUrl))
            {
                "not started"
            } else if !r.answered {
                "unreachable"
            } else if promotable {
                "in sync"
            } else {
                "catching up"
            };
            r.health = match percent {
                Some(p) if r.answered => format!("learner: {state} ({p:.0}%)"),
                _ => format!("learner: {state}"),
            };
            r.learner = Some(LearnerProgress {
                state: state.into(),
                applied: r.raft_applied_index,
                leader_applied,
                percent,
                promotable,
            });
        }
    }

    // HashKV of every answering voter at one common revision.
    let mut hash_check = None;
    if !opts.skip_hashkv {
        let voters: Vec<usize> =
            (0..rows.len()).filter(|i| rows[*i].is_member && !rows[*i].is_learner && rows[*i].answered).collect();
        if let Some(rev) = voters.iter().filter_map(|i| rows[*i].revision).min() {
            let futs = voters.iter().map(|i| {
                let client = clients[*i].clone();
                let url = rows[*i].endpoint.clone().unwrap_or_default();
                async move {
                    match client {
                        Some(mut c) => call(&url, "hashkv", budget.left(), c.hash_kv(rev))
                            .await
                            .map(|r| (r.hash(), r.compact_version())),
                        None => Err(TransportError::timed_out(&url, "hashkv", Duration::ZERO)),
                    }
                }
            });
            let hashes = futures::future::join_all(futs).await;
            let mut by_hash: BTreeMap<u32, Vec<String>> = BTreeMap::new();
            let mut errs = Vec::new();
            for (i, r) in voters.iter().zip(hashes) {
                match r {
                    Ok((hash, _)) => {
                        rows[*i].hash_kv = Some(hash);
                        by_hash.entry(hash).or_default().push(rows[*i].name.clone());
                    }
                    Err(e) => errs.push(format!("{}: {}", rows[*i].name, e.class.short())),
                }
            }
            hash_check = Some(if by_hash.len() > 1 {
                let groups: Vec<String> =
                    by_hash.iter().map(|(h, names)| format!("{h:08x} on {}", names.join(","))).collect();
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
                    format!("no voter answered HashKV at revision {rev}: {}", errs.join("; ")),
                    None,
                )
            } else if !errs.is_empty() {
                check(
                    "hash",
                    Status::Warn,
                    format!("HashKV agrees at revision {rev} on the voters that answered; {}", errs.join("; ")),
                    None,
                )
            } else {
                check(
                    "hash",
                    Status::Ok,
                    format!("{} voters agree at revision {rev}", by_hash.values().next().map(|v| v.len()).unwrap_or(0)),
                    None,
                )
            });
        }
    }

    // Alarms, from any answering member.
    let alarm_client = rows.iter().zip(clients.iter()).find(|(r, c)| r.answered && c.is_some() && !r.is_learner);
    let alarms = match alarm_client {
        Some((r, Some(c))) => {
            let mut c = c.clone();
            let url = r.endpoint.clone().unwrap_or_default();
            Some(
                call(
                    &url,
                    "alarm list",
                    budget.left(),
                    c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None),
                )
                .await,
            )
        }
        _ => None,
    };

    let mut checks =
        vec![members_check(&rows), quorum_check(&rows), leader_check(&rows, leader), progress_check(&rows)];
    checks.push(alarm_check(alarms, &rows));
    checks.push(db_check(&rows, quota));
    checks.push(version_check(&rows));
    if let Some(h) = hash_check {
        checks.push(h);
    } else if opts.skip_hashkv {
        checks.push(check("hash", Status::Ok, "skipped (--skip-hashkv)", None));
    }
    checks.push(count_check(&rows));
    checks.push(cert_check(&rows, session));
    checks.push(discovery_check(&list, &discovered, &strays, &aliases, session.discovery.endpoints_complete));

    let healthy = checks.iter().all(|c| c.status != Status::Fail);
    Ok(Report {
        cluster_id: Some(list.cluster_id),
        leader,
        healthy,
        members: rows,
        checks,
        discovered,
        insecure: session.discovery.insecure,
        took: start.elapsed(),
    })
}

fn voters(rows: &[MemberHealth]) -> impl Iterator<Item = &MemberHealth> {
    rows.iter().filter(|r| r.is_member && !r.is_learner)
}

fn members_check(rows: &[MemberHealth]) -> Check {
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

fn label(r: &MemberHealth) -> String {
    if !r.name.is_empty() {
        r.name.clone()
    } else if let Some(id) = r.id {
        member_id(id)
    } else {
        r.endpoint.clone().unwrap_or_default()
    }
}

/// Quorum arithmetic: `(answering voters, voters, needed, may still fail)`.
pub fn quorum(answering: usize, voters: usize) -> (usize, usize, i64) {
    let needed = voters / 2 + 1;
    (answering, needed, answering as i64 - needed as i64)
}

fn quorum_check(rows: &[MemberHealth]) -> Check {
    let n = voters(rows).count();
    let up = voters(rows).filter(|r| r.answered).count();
    let (_, needed, spare) = quorum(up, n);
    let msg = format!("{up}/{n} voters answer, {needed} needed, may lose {} more", spare.max(0));
    let learners: Vec<String> = rows.iter().filter(|r| r.is_member && r.is_learner && r.answered).map(label).collect();
    if up == 0 && !learners.is_empty() {
        return check(
            "quorum",
            Status::Fail,
            format!("quorum lost: {msg}; only learner {} answers", learners.join(", ")),
            Some(format!(
                "a learner cannot be promoted without a quorum; if the voters are gone for good, rebuild a one-member cluster from the learner's data dir with `kubectl etcd restore from-data-dir` on {}",
                learners.join(", ")
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

fn leader_check(rows: &[MemberHealth], leader: Option<u64>) -> Check {
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
const LAG_WARN: u64 = 1000;

fn progress_check(rows: &[MemberHealth]) -> Check {
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

fn alarm_check(alarms: Option<Result<etcd_client::AlarmResponse, TransportError>>, rows: &[MemberHealth]) -> Check {
    match alarms {
        None => check("alarms", Status::Warn, "no voter answered to list alarms", None),
        Some(Err(e)) => check("alarms", Status::Warn, format!("alarm list failed: {}", e.class.short()), None),
        Some(Ok(resp)) => {
            let list: Vec<String> = resp
                .alarms()
                .iter()
                .filter(|a| a.alarm() != etcd_client::AlarmType::None)
                .map(|a| {
                    let who = rows
                        .iter()
                        .find(|r| r.id == Some(a.member_id()))
                        .map(label)
                        .unwrap_or_else(|| member_id(a.member_id()));
                    let kind = match a.alarm() {
                        etcd_client::AlarmType::Nospace => "NOSPACE",
                        etcd_client::AlarmType::Corrupt => "CORRUPT",
                        etcd_client::AlarmType::None => "NONE",
                    };
                    format!("{kind} on {who} ({})", member_id(a.member_id()))
                })
                .collect();
            if list.is_empty() {
                check("alarms", Status::Ok, "no alarms", None)
            } else {
                let nospace = list.iter().any(|a| a.starts_with("NOSPACE"));
                check(
                    "alarms",
                    Status::Fail,
                    list.join("; "),
                    Some(if nospace {
                        "the cluster is read-only: compact, defragment every member, then `etcdctl alarm disarm`"
                            .to_string()
                    } else {
                        "data corruption detected: find the odd member (hash check) and replace it".to_string()
                    }),
                )
            }
        }
    }
}

fn db_check(rows: &[MemberHealth], quota: u64) -> Check {
    let mut worst = Status::Ok;
    let mut notes = Vec::new();
    let mut max_size = 0;
    for r in rows.iter().filter(|r| r.answered) {
        let (Some(size), Some(used)) = (r.db_size, r.db_size_in_use) else {
            continue;
        };
        max_size = max_size.max(size);
        let pct = size as f64 / quota as f64 * 100.0;
        if pct >= 95.0 {
            worst = Status::Fail;
            notes.push(format!("{} at {pct:.0}% of quota", label(r)));
        } else if pct >= 80.0 {
            worst = worst.max(Status::Warn);
            notes.push(format!("{} at {pct:.0}% of quota", label(r)));
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
            Some("compact and defragment (etcdctl defrag), one member at a time".into()),
        )
    }
}

fn version_check(rows: &[MemberHealth]) -> Check {
    let versions: std::collections::BTreeSet<&str> = rows.iter().filter_map(|r| r.version.as_deref()).collect();
    match versions.len() {
        0 => check("versions", Status::Warn, "no member reported its version", None),
        1 => check(
            "versions",
            Status::Ok,
            format!("all members run {}", versions.iter().next().copied().unwrap_or_default()),
            None,
        ),
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
                Some(if minors.len() > 1 {
                    "finish the upgrade: etcd supports mixed minor versions only while upgrading".into()
                } else {
                    "patch versions differ; finish the rollout".into()
                }),
            )
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn count_check(rows: &[MemberHealth]) -> Check {
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
            format!("{n} voting members, tolerates {}", plural(n.saturating_sub(1) / 2, "failure")),
            None,
        )
    }
}

fn cert_check(rows: &[MemberHealth], session: &Session) -> Check {
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
    if let Some(c) = session.dialer.tls().and_then(|t| t.client_cert.as_ref()) {
        consider("client certificate".into(), c);
    }
    for r in rows {
        if let Some(c) = &r.server_cert {
            consider(format!("{} serving certificate", label(r)), c);
        }
    }
    let mut expired_server = false;
    for r in rows {
        if matches!(r.failure.as_ref().map(|f| &f.class), Some(FailureClass::Tls(crate::conn::TlsFailure::Expired))) {
            worst = Status::Fail;
            expired_server = true;
            notes.push(format!("{} serving certificate expired", label(r)));
        }
    }
    let _ = expired_server;
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

fn discovery_check(
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

/// The members table (`table` and `wide`).
pub fn members_table(report: &Report, wide: bool) -> Table {
    let mut header = vec![
        "name",
        "id",
        "endpoint",
        "health",
        "latency",
        "leader",
        "learner",
        "version",
        "db size",
        "in use",
        "raft term",
        "raft index",
        "applied",
    ];
    if wide {
        header.extend(["applied lag", "quota", "peer urls", "client urls"]);
    }
    header.push("errors");
    let mut t = Table::new(header);
    for r in &report.members {
        let in_use = match (r.db_size_in_use, r.db_size) {
            (Some(u), Some(s)) if s > 0 => {
                format!("{} ({:.0}%)", format_bytes(u), u as f64 / s as f64 * 100.0)
            }
            _ => String::new(),
        };
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut row = vec![
            if r.name.is_empty() {
                if r.is_member {
                    "(not started)".into()
                } else {
                    "(not a member)".into()
                }
            } else {
                r.name.clone()
            },
            r.id.map(member_id).unwrap_or_default(),
            r.endpoint.clone().unwrap_or_default(),
            r.health.clone(),
            r.latency.map(format_duration).unwrap_or_default(),
            if r.answered || r.is_leader { yes_no(r.is_leader) } else { String::new() },
            yes_no(r.is_learner),
            r.version.clone().unwrap_or_default(),
            r.db_size.map(format_bytes).unwrap_or_default(),
            in_use,
            opt(r.raft_term),
            opt(r.raft_index),
            opt(r.raft_applied_index),
        ];
        if wide {
            row.push(opt(r.applied_lag));
            row.push(format_bytes(r.quota_backend_bytes));
            row.push(r.peer_urls.join(","));
            row.push(r.client_urls.join(","));
        }
        row.push(r.errors.join("; "));
        t.push(row);
    }
    t
}

fn yes_no(b: bool) -> String {
    if b { "true" } else { "false" }.into()
}

/// The checks table.
pub fn checks_table(report: &Report) -> Table {
    let mut t = Table::new(["check", "status", "message"]);
    for c in &report.checks {
        let msg = match &c.hint {
            Some(h) if c.status != Status::Ok => format!("{} (next: {h})", c.message),
            _ => c.message.clone(),
        };
        t.push([c.name.to_string(), c.status.as_str().to_string(), msg]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

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
        r
    }

    #[test]
    fn quorum_arithmetic_and_the_learner_only_case() {
        let rows = [row("a", false, false), row("bb", false, true), row("ccc", false, true)];
        assert_eq!(quorum_check(&rows).message, "2/3 voters answer, 2 needed, may lose 0 more");
        assert_eq!(quorum_check(&rows).status, Status::Warn);
        let rows = [row("a", false, false), row("bb", false, false), row("ccc", false, false), row("dr", true, true)];
        let c = quorum_check(&rows);
        assert_eq!(c.status, Status::Fail);
        assert!(c.message.ends_with("only learner dr answers"), "{}", c.message);
        assert!(c.hint.unwrap().contains("kubectl etcd restore from-data-dir"));
    }
}
