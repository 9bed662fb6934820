//! The RPCs of a health run: one probe per member (TLS handshake, then [`crate::reach::quorum::look`]:
//! Status and a linearizable read),
//! HashKV on the voters at one revision, and the alarm list. Each returns what it saw; the
//! checks judge it.

use std::time::{Duration, Instant};

use super::model::{blank, MemberHealth};
use super::model::{Alarm, HashOutcome};
use crate::reach::cluster::{Member, Session};
use crate::reach::conn::{call, FailureClass, TransportError};
use crate::reach::discovery::settings::Endpoint;
use crate::reach::quorum::{judge, look, Seen};
use crate::reach::url::same_url;

/// The time left of a run's overall deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) end: Instant,
}

impl Budget {
    /// Time left, at least 100 ms so that a late call still gets a chance to answer.
    pub(crate) fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now()).max(Duration::from_millis(100))
    }
}

/// One probed row and the client that reached it (for the cluster-wide RPCs after).
pub(crate) struct Probed {
    pub(crate) member: MemberHealth,
    pub(crate) client: Option<etcd_client::Client>,
}

/// Picks the client URL to use for a member: one discovery also found, else the first.
pub(crate) fn pick_url(m: &Member, discovered: &[Endpoint]) -> Option<String> {
    m.client_urls
        .iter()
        .find(|u| discovered.iter().any(|d| same_url(&d.url, u)))
        .or_else(|| m.client_urls.first())
        .cloned()
}

/// Status and a linearizable read on one member (or a bare endpoint), within the budget.
pub(crate) async fn probe_member(
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
    // The server certificate comes from a handshake of its own (the client does not expose it).
    match session.dialer.probe(&url).await {
        Ok(p) => h.server_cert = p.server_cert,
        Err(e) => {
            h.errors.push(e.class.short());
            h.failure = Some(e);
            return Probed { member: h, client: None };
        }
    }
    // The read gets one command timeout, never the whole budget: a cut-off member costs one
    // deadline, and the cluster-wide RPCs after still have time.
    let end = std::cmp::min(budget.end, Instant::now() + session.command_timeout());
    let looked = look(session, &url, h.is_learner, end).await;
    let client = session.dialer.client(&url).await.ok();
    match looked.status {
        Ok(s) => {
            super::model::fill_status(&mut h, s);
            if let Ok(v) = session.version_at(&url).await {
                h.cluster_version = Some(v.cluster).filter(|c| !c.is_empty() && c != "not_decided");
            }
        }
        Err(e) => {
            h.errors.push(e.class.short());
            h.failure = Some(e);
        }
    }
    match looked.read {
        None => {}
        Some(Ok(lat)) => h.latency = Some(lat),
        Some(Err(e)) => {
            h.errors.push(format!("read: {}", e.class.short()));
            if h.failure.is_none() {
                h.failure = Some(e);
            }
        }
    }
    Probed { member: h, client }
}

/// Judges the member rows with the one quorum verdict ([`judge`]): a voter is `healthy` only in
/// quorum, and the reason it is not goes first in its errors. Returns the quorum's leader.
pub(crate) fn judge_rows(rows: &mut [MemberHealth]) -> Option<u64> {
    let idx: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].is_member && rows[*i].id.is_some()).collect();
    let seen: Vec<Seen> = idx
        .iter()
        .map(|i| {
            let r = &rows[*i];
            Seen {
                id: r.id.unwrap_or(0),
                name: r.name.clone(),
                is_learner: r.is_learner,
                status: r
                    .raft_term
                    .filter(|_| r.answered)
                    .map(|t| (r.leader.unwrap_or(0), t, r.raft_index.unwrap_or(0))),
                read: if r.is_learner || !r.answered {
                    None
                } else if r.latency.is_some() {
                    Some(Ok(()))
                } else {
                    Some(Err(r.failure.as_ref().map(|f| f.class.short()).unwrap_or_default()))
                },
            }
        })
        .collect();
    for r in rows.iter_mut().filter(|r| !r.is_member) {
        if r.answered && r.latency.is_some() && r.failure.is_none() {
            r.health = "healthy".into();
        }
    }
    let verdict = judge(&seen);
    for (i, standing) in idx.iter().zip(verdict.standings) {
        let r = &mut rows[*i];
        if r.is_learner {
            continue;
        }
        r.in_quorum = standing.in_quorum;
        r.health = if standing.in_quorum { "healthy" } else { "unhealthy" }.into();
        if let Some(why) = standing.reason.filter(|_| r.answered) {
            r.errors.insert(0, why);
        }
    }
    verdict.leader
}

/// HashKV of every voter in quorum at the lowest revision they report (one common revision),
/// recorded on the rows; `None` when no voter is in quorum.
pub(crate) async fn hash_kv(
    rows: &mut [MemberHealth],
    clients: &[Option<etcd_client::Client>],
    budget: &Budget,
) -> Option<HashOutcome> {
    let voters: Vec<usize> =
        (0..rows.len()).filter(|i| rows[*i].is_member && !rows[*i].is_learner && rows[*i].in_quorum).collect();
    let revision = voters.iter().filter_map(|i| rows[*i].revision).min()?;
    let futs = voters.iter().map(|i| {
        let client = clients[*i].clone();
        let url = rows[*i].endpoint.clone().unwrap_or_default();
        async move {
            match client {
                Some(mut c) => call(&url, "hashkv", budget.left(), c.hash_kv(revision)).await.map(|r| r.hash()),
                None => Err(TransportError::timed_out(&url, "hashkv", Duration::ZERO)),
            }
        }
    });
    let answers = futures::future::join_all(futs).await;
    let mut out = HashOutcome { revision, hashes: Vec::new(), errors: Vec::new() };
    for (i, r) in voters.iter().zip(answers) {
        match r {
            Ok(hash) => {
                rows[*i].hash_kv = Some(hash);
                out.hashes.push((rows[*i].name.clone(), hash));
            }
            Err(e) => out.errors.push(format!("{}: {}", rows[*i].name, e.class.short())),
        }
    }
    Some(out)
}

/// The alarm list, from the first voter in quorum (a cut-off member cannot serve it); `None`
/// when no voter is in quorum.
pub(crate) async fn alarms(
    rows: &[MemberHealth],
    clients: &[Option<etcd_client::Client>],
    budget: &Budget,
) -> Option<Result<Vec<Alarm>, TransportError>> {
    let (r, c) = rows.iter().zip(clients).find(|(r, c)| r.in_quorum && c.is_some() && !r.is_learner)?;
    let mut c = c.clone()?;
    let url = r.endpoint.clone().unwrap_or_default();
    let resp = call(
        &url,
        "alarm list",
        budget.left(),
        c.alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None),
    )
    .await;
    Some(resp.map(|resp| {
        resp.alarms()
            .iter()
            .filter_map(|a| {
                let kind = match a.alarm() {
                    etcd_client::AlarmType::Nospace => "NOSPACE",
                    etcd_client::AlarmType::Corrupt => "CORRUPT",
                    etcd_client::AlarmType::None => return None,
                };
                Some(Alarm { member_id: a.member_id(), kind })
            })
            .collect()
    }))
}
