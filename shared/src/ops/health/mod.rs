//! `kubectl etcd health`: every member probed concurrently, then the cluster-wide checks.
//!
//! [`model`] holds the report, [`probe`] the RPCs, [`checks`] the verdicts (pure, unit-tested);
//! [`run`] ties them together. The printers are in [`crate::cli::print`].

pub mod checks;
pub mod fleet;
pub mod model;
pub mod probe;
pub mod scrape;

use std::time::Instant;

pub use model::{Check, LearnerProgress, MemberHealth, Report, Status};

use crate::reach::cluster::{Member, Session};
use crate::reach::conn::FailureClass;
use crate::reach::discovery::settings::Endpoint;
use crate::reach::url::same_url;
use checks::*;
use model::{annotate, check, merge_aliases, nothing_answered, sort_rows};
pub use model::{Alarm, HashOutcome, CERT_WARN_SECS};
use probe::{pick_url, probe_member, Budget, Probed};

/// Options of a health run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Skip the HashKV consistency check.
    pub skip_hashkv: bool,
    /// Backend quota to compare DB sizes against (`None`: manifest or etcd's default).
    pub quota_backend_bytes: Option<u64>,
}

/// Runs every probe and check.
pub async fn run(session: &Session, opts: &Options) -> crate::Result<Report> {
    let start = Instant::now();
    // One budget for the whole run: a frozen member costs one deadline, not one per phase.
    let budget = Budget { end: start + session.settings.dial_timeout + session.command_timeout() };
    let mut discovered = session.discovery.endpoints.clone();
    let quota = crate::reach::discovery::manifest::quota(opts.quota_backend_bytes, session.discovery.manifest.as_ref());
    let report = |members: Vec<MemberHealth>, checks: Vec<Check>, cluster_id, leader, discovered| Report {
        time: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        cluster_id,
        leader,
        healthy: checks.iter().all(|c| c.status != Status::Fail),
        quorum: model::Quorum::of(&members),
        members,
        checks,
        discovered,
        insecure: session.discovery.insecure,
        transport: if session.dialer.tunnels().is_some() { "port-forward" } else { "direct" },
        skipped: Vec::new(),
        took: start.elapsed(),
    };

    // No certificate, through port-forward: what the metrics endpoints say.
    if session.discovery.no_credentials.is_some() {
        let rows = scrape::rows_from_metrics(session, &budget, quota).await;
        let checks = scrape::metrics_checks(&rows, quota);
        let leader = rows.iter().find(|r| r.is_leader).and_then(|r| r.id);
        let mut r = report(rows, checks, None, leader, discovered);
        r.skipped = scrape::SKIPPED.to_vec();
        return Ok(r);
    }

    // The member list is the truth; without it, report what discovery found.
    let list = match session.member_list().await {
        Ok(l) => l,
        // Every member refused our TLS: that is our credentials, not the cluster's quorum.
        Err(crate::Error::Unreachable { errors })
            if !errors.is_empty() && errors.iter().all(|e| matches!(e.class, FailureClass::Tls(_))) =>
        {
            return Err(crate::Error::Unreachable { errors })
        }
        Err(crate::Error::Unreachable { errors }) => {
            let mut members = nothing_answered(&discovered, &errors, quota);
            let learners = survivors(session, &budget, &mut members, &errors, quota).await;
            let checks = vec![if learners.is_empty() {
                let hint = "check that etcd runs on the endpoints and that the certificates are right (see ERRORS)";
                check("quorum", Status::Fail, "no member answered", Some(hint.into()))
            } else {
                learner_only_check(&members, session.discovery.manifest.as_ref())
            }];
            let cluster_id = None;
            return Ok(report(members, checks, cluster_id, None, discovered));
        }
        Err(e) => return Err(e),
    };
    discovered.extend(list.extra_endpoints.iter().cloned());

    // Probe every member and every discovered endpoint that is not a member, concurrently.
    let mut targets: Vec<(Option<&Member>, Option<String>)> =
        list.members.iter().map(|m| (Some(m), pick_url(m, &discovered))).collect();
    let strays: Vec<&Endpoint> = discovered
        .iter()
        .filter(|d| !list.members.iter().any(|m| m.client_urls.iter().any(|u| same_url(u, &d.url))))
        .collect();
    targets.extend(strays.iter().map(|d| (None, Some(d.url.clone()))));
    let probed: Vec<Probed> =
        futures::future::join_all(targets.iter().map(|(m, u)| probe_member(session, &budget, *m, u.clone(), quota)))
            .await;
    let (mut rows, mut clients): (Vec<_>, Vec<_>) = probed.into_iter().map(|p| (p.member, p.client)).unzip();
    let aliases = merge_aliases(&mut rows, &mut clients, list.members.len());
    let strays: Vec<&Endpoint> = strays
        .into_iter()
        .filter(|d| !aliases.iter().any(|a| a.starts_with(&format!("endpoint {} ", d.url))))
        .collect();
    let (mut rows, clients) = sort_rows(rows, clients);
    let quorum_leader = probe::judge_rows(&mut rows);
    let leader = annotate(&mut rows, quorum_leader);

    let hashes = if opts.skip_hashkv { None } else { probe::hash_kv(&mut rows, &clients, &budget).await };
    let alarms = probe::alarms(&rows, &clients, &budget).await;
    scrape::attach(session, &budget, &mut rows).await;
    let client_cert = session.dialer.tls().and_then(|t| t.client_cert.as_ref());
    let mut checks = vec![
        members_check(&rows),
        quorum_check(&rows),
        leader_check(&rows, leader),
        progress_check(&rows),
        alarm_check(alarms, &rows),
        db_check(&rows, quota),
        version_check(&rows),
    ];
    checks.extend(hash_check(hashes.as_ref(), opts.skip_hashkv));
    checks.push(scrape::disk_check(&rows));
    checks.push(count_check(&rows));
    checks.push(cert_check(&rows, client_cert));
    checks.push(discovery_check(&list, &discovered, &strays, &aliases, session.discovery.endpoints_complete));
    Ok(report(rows, checks, Some(list.cluster_id), leader, discovered))
}

/// etcd's answer to a member list (or any RPC but Status and serializable reads) asked of a
/// learner (`rpc not supported for learner`).
fn learner_refusal(e: &crate::reach::conn::TransportError) -> bool {
    matches!(&e.class, FailureClass::Rpc(m) if m.contains("not supported for learner"))
}

/// When no voter answered the member list, the endpoints that refused it as learners are the
/// survivors: their Status fills their rows (name from discovery, ID, applied index, revision,
/// version). Returns their labels.
async fn survivors(
    session: &Session,
    budget: &Budget,
    rows: &mut [MemberHealth],
    errors: &[crate::reach::conn::TransportError],
    quota: u64,
) -> Vec<String> {
    let end = std::cmp::min(budget.end, Instant::now() + session.command_timeout());
    let mut out = Vec::new();
    for r in rows.iter_mut() {
        let Some(url) = r.endpoint.clone() else { continue };
        if !errors.iter().any(|e| e.endpoint == url && learner_refusal(e)) {
            continue;
        }
        let looked = crate::reach::quorum::look(session, &url, true, end).await;
        let Ok(s) = looked.status else { continue };
        let name = r.name.clone();
        *r = model::blank(None, Some(url.clone()), quota);
        r.name = name;
        r.is_member = true;
        r.is_learner = true;
        model::fill_status(r, s);
        r.health = "learner: answering, no quorum".into();
        r.errors.push("no voter answers".into());
        out.push(model::label(r));
    }
    out
}

/// The verdict when only learners answer: quorum lost, and the way back is a one-member cluster
/// rebuilt from a learner's data dir (named when it is this node's, from the manifest).
fn learner_only_check(rows: &[MemberHealth], manifest: Option<&crate::reach::discovery::Manifest>) -> Check {
    let learners: Vec<&MemberHealth> = rows.iter().filter(|r| r.is_learner && r.answered).collect();
    let local = manifest.map(|m| m.client_urls()).unwrap_or_default();
    let steps: Vec<String> = learners
        .iter()
        .map(|r| {
            let on_this_node = r.endpoint.as_ref().is_some_and(|u| local.iter().any(|l| same_url(l, u)));
            let dir = match manifest.and_then(|m| m.flag("data-dir")).filter(|_| on_this_node) {
                Some(d) => d.to_string(),
                None => "<its --data-dir>".to_string(),
            };
            format!(
                "{} ({}, revision {}, applied index {}): on its node, stop etcd and run `kubectl etcd restore from-data-dir {dir}`",
                model::label(r),
                r.id.map(crate::base::units::member_id).unwrap_or_default(),
                r.revision.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
                r.raft_applied_index.map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
            )
        })
        .collect();
    check(
        "quorum",
        Status::Fail,
        format!(
            "quorum lost: no voter answers; only learner {} answers",
            learners.iter().map(|r| model::label(r)).collect::<Vec<_>>().join(", ")
        ),
        Some(format!(
            "a learner cannot be promoted without a quorum; if the voters are gone for good, rebuild a one-member cluster from the learner's data dir: {}",
            steps.join("; ")
        )),
    )
}
