//! The members' metrics endpoints in the health report: the disk and network latency of every
//! member whose metrics can be reached (through its pod, or the local member's on a node), and
//! the whole report from metrics alone when no etcd client certificate is at hand.

use crate::reach::cluster::Session;
use crate::reach::conn::{FailureClass, Via};
use crate::reach::metrics::{Scrape, BACKEND_COMMIT_P99_MAX, MIN_SAMPLES, WAL_FSYNC_P99_MAX};
use crate::reach::url::EtcdUrl;

use super::checks::{db_check, members_check, quorum_check, version_check};
use super::model::{blank, check, label, Check, MemberHealth, Status};
use super::probe::Budget;

/// Where the metrics of the member at `endpoint` are: through its pod when tunnelling, else the
/// node's own member's `--listen-metrics-urls` when `endpoint` is that member.
pub(crate) fn metrics_via(session: &Session, endpoint: &str) -> Option<Via> {
    let url = EtcdUrl::parse(endpoint).ok()?;
    if let Some(t) = session.dialer.tunnels() {
        return t.metrics_port(&url).map(|(pod, port)| Via::Pod { pod, port });
    }
    let m = session.discovery.manifest.as_ref()?;
    if !m.client_urls().iter().any(|u| EtcdUrl::parse(u).is_ok_and(|c| c.same_socket(&url))) {
        return None;
    }
    let flag = m.flag("listen-metrics-urls")?;
    let u = crate::reach::url::plain_http_urls(flag).into_iter().next()?;
    if u.is_any_address() {
        return EtcdUrl::parse(&u.with_host("127.0.0.1")).ok().map(Via::Direct);
    }
    Some(Via::Direct(u))
}

/// Scrapes every row that has a metrics endpoint, concurrently, within the budget.
pub(crate) async fn attach(session: &Session, budget: &Budget, rows: &mut [MemberHealth]) {
    let vias: Vec<Option<Via>> =
        rows.iter().map(|r| r.endpoint.as_deref().and_then(|e| metrics_via(session, e))).collect();
    let scrapes = futures::future::join_all(vias.iter().map(|v| async move {
        match v {
            Some(v) => Some(crate::reach::metrics::scrape(&session.dialer, v, budget.left()).await),
            None => None,
        }
    }))
    .await;
    for (r, s) in rows.iter_mut().zip(scrapes) {
        if let Some(Ok(s)) = s {
            r.metrics = Some(s);
        }
    }
}

/// etcd's disk guidance against every scraped member: WAL fsync p99 < 10 ms, backend commit
/// p99 < 25 ms (since each member started). A figure over fewer than [`MIN_SAMPLES`] samples
/// is shown but not judged: a new member's first writes are its slowest.
pub fn disk_check(rows: &[MemberHealth]) -> Check {
    let measured: Vec<(&MemberHealth, &Scrape)> =
        rows.iter().filter_map(|r| r.metrics.as_ref().map(|m| (r, m))).collect();
    if measured.is_empty() {
        return check(
            "disk",
            Status::Ok,
            "not measured: no member's metrics endpoint was reachable",
            Some("through port-forward, the pods' --listen-metrics-urls (kubeadm: http://127.0.0.1:2381); on a node, the manifest's".into()),
        );
    }
    let mut slow = Vec::new();
    let mut young = Vec::new();
    for (r, m) in &measured {
        let l = &m.latency;
        let judged = |p99: Option<f64>, count: u64, max: f64| p99.filter(|p| count >= MIN_SAMPLES && *p > max * 1e3);
        if let Some(w) = judged(l.wal_fsync_p99_ms, l.wal_fsync_count, WAL_FSYNC_P99_MAX) {
            slow.push(format!("{} WAL fsync p99 {w:.1} ms (> 10 ms)", label(r)));
        }
        if let Some(c) = judged(l.backend_commit_p99_ms, l.backend_commit_count, BACKEND_COMMIT_P99_MAX) {
            slow.push(format!("{} backend commit p99 {c:.1} ms (> 25 ms)", label(r)));
        }
        if l.wal_fsync_count < MIN_SAMPLES || l.backend_commit_count < MIN_SAMPLES {
            young.push(label(r));
        }
    }
    if !slow.is_empty() {
        return check(
            "disk",
            Status::Warn,
            slow.join("; "),
            Some("etcd needs a disk that fsyncs fast: a dedicated SSD, no noisy neighbours (apiserver: \"etcdserver: request timed out\")".into()),
        );
    }
    let worst = |f: fn(&Scrape) -> Option<f64>| {
        measured.iter().filter_map(|(_, m)| f(m)).fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    let fmt = |x: Option<f64>| x.map(|x| format!("{x:.1} ms")).unwrap_or_else(|| "-".into());
    let mut message = format!(
        "{} of {} member(s) measured: WAL fsync p99 at most {}, backend commit p99 at most {}",
        measured.len(),
        rows.iter().filter(|r| r.is_member || r.metrics.is_some()).count(),
        fmt(worst(|m| m.latency.wal_fsync_p99_ms)),
        fmt(worst(|m| m.latency.backend_commit_p99_ms)),
    );
    if !young.is_empty() {
        message
            .push_str(&format!("; not judged on {} (fewer than {MIN_SAMPLES} writes since start)", young.join(", ")));
    }
    check("disk", Status::Ok, message, None)
}

/// What a report without certificates cannot check.
pub const SKIPPED: &[&str] =
    &["hash (HashKV consistency)", "alarms", "member list", "raft indexes", "serving certificates"];

/// The report from the members' metrics alone: one row per etcd pod, filled from its
/// `/health` and `/metrics` through its tunnel.
pub(crate) async fn rows_from_metrics(session: &Session, budget: &Budget, quota: u64) -> Vec<MemberHealth> {
    let Some(t) = session.dialer.tunnels() else { return Vec::new() };
    let routes = t.routes().to_vec();
    let scrapes = futures::future::join_all(routes.iter().map(|r| async move {
        match r.metrics_port {
            Some(port) => Some(
                crate::reach::metrics::scrape(&session.dialer, &Via::Pod { pod: r.pod.clone(), port }, budget.left())
                    .await,
            ),
            None => None,
        }
    }))
    .await;
    let mut rows = Vec::new();
    for (r, s) in routes.iter().zip(scrapes) {
        let mut h = blank(None, Some(r.client_url.clone()), quota);
        h.name = r.name.clone();
        h.client_urls = vec![r.client_url.clone()];
        // Without a certificate the member list is out of reach: each etcd pod counts as a
        // voter unless its metrics say it is a learner.
        h.is_member = true;
        match s {
            None => {
                let why = r.no_metrics.clone().unwrap_or_default();
                h.errors.push(format!("no metrics endpoint: {why}"));
                h.failure = Some(crate::reach::conn::TransportError::new(
                    &r.client_url,
                    FailureClass::Network("no metrics endpoint".into()),
                    why,
                ));
            }
            Some(Err(e)) => {
                h.errors.push(e.class.short());
                h.failure = Some(e);
            }
            Some(Ok(m)) => {
                h.answered = true;
                h.id = m.id;
                h.is_leader = m.is_leader == Some(true);
                h.is_learner = m.is_learner == Some(true);
                h.version = m.version.clone();
                h.cluster_version = m.cluster_version.clone();
                h.db_size = m.db_size;
                h.db_size_in_use = m.db_size_in_use;
                if let Some(q) = m.quota_backend_bytes.filter(|q| *q > 0) {
                    h.quota_backend_bytes = q;
                }
                h.health = match (m.health, h.is_learner) {
                    (_, true) => "learner".into(),
                    (Some(true), _) => "healthy".into(),
                    _ => "unhealthy".into(),
                };
                if m.health == Some(false) {
                    h.errors.push(format!("/health: {}", m.health_reason.clone().unwrap_or_else(|| "false".into())));
                }
                if m.has_leader == Some(false) {
                    h.errors.push("no leader".into());
                }
                // Without a client certificate no read can be made: the metrics' own health
                // (etcd's /health does a linearizable read) and leader gauge stand in for it.
                h.in_quorum = !h.is_learner && m.health == Some(true) && m.has_leader != Some(false);
                h.metrics = Some(m);
            }
        }
        rows.push(h);
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

/// Leader agreement from metrics: every answering member has a leader and exactly one says it
/// is the leader.
pub fn metrics_leader_check(rows: &[MemberHealth]) -> Check {
    let answering: Vec<&MemberHealth> = rows.iter().filter(|r| r.metrics.is_some()).collect();
    let leaders: Vec<&MemberHealth> = answering.iter().copied().filter(|r| r.is_leader).collect();
    let leaderless: Vec<String> = answering
        .iter()
        .filter(|r| r.metrics.as_ref().and_then(|m| m.has_leader) == Some(false))
        .map(|r| label(r))
        .collect();
    if !leaderless.is_empty() {
        return check(
            "leader",
            Status::Fail,
            format!("no leader on {}", leaderless.join(", ")),
            Some("a member without a leader cannot serve writes: check quorum and the peer network".into()),
        );
    }
    match leaders.as_slice() {
        [one] => {
            let changes = one.metrics.as_ref().and_then(|m| m.leader_changes).unwrap_or(0);
            check("leader", Status::Ok, format!("{} leads ({changes} leader change(s) seen by it)", label(one)), None)
        }
        [] => check("leader", Status::Fail, "no answering member is the leader", None),
        many => check(
            "leader",
            Status::Fail,
            format!("{} all say they lead", many.iter().map(|r| label(r)).collect::<Vec<_>>().join(", ")),
            Some("a split: check the peer network between them".into()),
        ),
    }
}

/// Proposals from metrics: failed proposals and a pending backlog.
pub fn proposals_check(rows: &[MemberHealth]) -> Check {
    let mut notes = Vec::new();
    let mut status = Status::Ok;
    for r in rows {
        let Some(m) = &r.metrics else { continue };
        if let Some(f) = m.proposals_failed.filter(|f| *f > 0) {
            notes.push(format!("{}: {f} failed", label(r)));
            status = Status::Warn;
        }
        if let Some(p) = m.proposals_pending.filter(|p| *p > 5) {
            notes.push(format!("{}: {p} pending", label(r)));
            status = Status::Warn;
        }
        if let (Some(c), Some(a)) = (m.proposals_committed, m.proposals_applied) {
            if c.saturating_sub(a) > 1000 {
                notes.push(format!("{}: applied {} behind committed", label(r), c - a));
                status = Status::Warn;
            }
        }
    }
    let message = if notes.is_empty() { "no failed or piled-up proposals".to_string() } else { notes.join("; ") };
    check("proposals", status, message, None)
}

/// The checks of a metrics-only report, the skipped ones named with the way to run them.
pub(crate) fn metrics_checks(rows: &[MemberHealth], quota: u64) -> Vec<Check> {
    vec![
        members_check(rows),
        quorum_check(rows),
        metrics_leader_check(rows),
        proposals_check(rows),
        db_check(rows, quota),
        version_check(rows),
        disk_check(rows),
        check(
            "credentials",
            Status::Warn,
            format!("no etcd client certificate: skipped {}", SKIPPED.join(", ")),
            Some("copy a control-plane node's /etc/kubernetes/pki/etcd and pass --pki-dir DIR (or --cacert/--cert/--key)".into()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reach::metrics::Latency;

    fn row(name: &str, wal: (f64, u64), commit: (f64, u64)) -> MemberHealth {
        let mut r = blank(None, Some(format!("https://{name}:2379")), 2 << 30);
        r.name = name.into();
        r.is_member = true;
        r.metrics = Some(Scrape {
            latency: Latency {
                wal_fsync_p99_ms: Some(wal.0),
                wal_fsync_count: wal.1,
                backend_commit_p99_ms: Some(commit.0),
                backend_commit_count: commit.1,
                ..Default::default()
            },
            ..Default::default()
        });
        r
    }

    #[test]
    fn disk_is_judged_only_on_enough_samples() {
        let c = disk_check(&[row("a", (3.0, 5000), (9.0, 800)), row("b", (15.3, 40), (30.0, 12))]);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert_eq!(
            c.message,
            "2 of 2 member(s) measured: WAL fsync p99 at most 15.3 ms, backend commit p99 at most 30.0 ms; \
             not judged on b (fewer than 100 writes since start)"
        );
        let c = disk_check(&[row("a", (3.0, 5000), (9.0, 800)), row("b", (15.3, 400), (30.0, 120))]);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(c.message, "b WAL fsync p99 15.3 ms (> 10 ms); b backend commit p99 30.0 ms (> 25 ms)");
        let c = disk_check(&[row("a", (3.0, 5000), (26.0, 99))]);
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }
}
