//! A member's plain-HTTP metrics endpoint (`--listen-metrics-urls`, kubeadm's
//! `http://127.0.0.1:2381`): `/health` and the Prometheus text of `/metrics`, read with no
//! certificate at all. The figures a health report needs are taken out of the text by name;
//! latency percentiles come from etcd's histograms the way Prometheus' `histogram_quantile`
//! computes them (linear inside the bucket), over the member's whole uptime.

use std::time::Duration;

use serde::Serialize;

/// etcd's guidance: WAL fsync p99 under 10 ms.
pub const WAL_FSYNC_P99_MAX: f64 = 0.010;
/// etcd's guidance: backend commit p99 under 25 ms.
pub const BACKEND_COMMIT_P99_MAX: f64 = 0.025;
/// Fewer samples than this and a p99 is little more than the slowest few writes (a new
/// member's first fsyncs create and preallocate WAL files): reported, not judged.
pub const MIN_SAMPLES: u64 = 100;

/// What one scrape said (every field absent when the member does not export it).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scrape {
    /// `/health`'s verdict (`{"health":"true"}`).
    pub health: Option<bool>,
    /// `/health`'s reason, when it gives one (3.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// The member ID (`etcd_server_id{server_id}`).
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub id: Option<u64>,
    /// `etcd_server_version{server_version}`.
    pub version: Option<String>,
    /// `etcd_cluster_version{cluster_version}` (`3.5`).
    pub cluster_version: Option<String>,
    /// `etcd_server_has_leader`.
    pub has_leader: Option<bool>,
    /// `etcd_server_is_leader`.
    pub is_leader: Option<bool>,
    /// `etcd_server_is_learner`.
    pub is_learner: Option<bool>,
    /// `etcd_mvcc_db_total_size_in_bytes`.
    pub db_size: Option<u64>,
    /// `etcd_mvcc_db_total_size_in_use_in_bytes`.
    pub db_size_in_use: Option<u64>,
    /// `etcd_server_quota_backend_bytes`.
    pub quota_backend_bytes: Option<u64>,
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes: Option<u64>,
    /// `etcd_server_proposals_committed_total`.
    pub proposals_committed: Option<u64>,
    /// `etcd_server_proposals_applied_total`.
    pub proposals_applied: Option<u64>,
    /// `etcd_server_proposals_pending`.
    pub proposals_pending: Option<u64>,
    /// `etcd_server_proposals_failed_total`.
    pub proposals_failed: Option<u64>,
    /// Latency percentiles, in milliseconds.
    pub latency: Latency,
}

/// p99 latencies in milliseconds, from etcd's histograms (since the member started).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// `etcd_disk_wal_fsync_duration_seconds` p99.
    pub wal_fsync_p99_ms: Option<f64>,
    /// `etcd_disk_backend_commit_duration_seconds` p99.
    pub backend_commit_p99_ms: Option<f64>,
    /// `etcd_network_peer_round_trip_time_seconds` p99, the slowest peer.
    pub peer_rtt_p99_ms: Option<f64>,
    /// The slowest peer's ID.
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub peer_rtt_slowest: Option<u64>,
    /// Samples behind the WAL figure (0: the member has written nothing yet).
    pub wal_fsync_count: u64,
    /// Samples behind the backend commit figure.
    pub backend_commit_count: u64,
}

/// A sample's labels (`name`, `value`).
type Labels<'a> = Vec<(&'a str, &'a str)>;

/// One sample line: name, labels, value.
fn sample(line: &str) -> Option<(&str, Labels<'_>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (head, rest) = match line.find('{') {
        Some(i) => {
            let close = line[i..].find('}')? + i;
            (&line[..close + 1], &line[close + 1..])
        }
        None => line.split_at(line.find(' ')?),
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match head.find('{') {
        Some(i) => (&head[..i], &head[i + 1..head.len() - 1]),
        None => (head, ""),
    };
    let labels = labels
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect();
    Some((name, labels, value))
}

/// The `q` quantile of a cumulative histogram (`(upper bound, count)` pairs), as Prometheus'
/// `histogram_quantile`: the bucket holding rank `q·total`, linear inside it; the highest
/// finite bound when the rank falls in `+Inf`. `None` with no samples.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last().filter(|l| l.0.is_infinite()).map(|l| l.1)?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in &b {
        if *count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            return Some(if inside <= 0.0 { *le } else { lower + (le - lower) * (rank - below) / inside });
        }
        lower = *le;
        below = *count;
    }
    Some(lower)
}

/// The figures of a `/metrics` text.
pub fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    let mut wal = Vec::new();
    let mut commit = Vec::new();
    let mut rtt: std::collections::BTreeMap<String, Vec<(f64, f64)>> = Default::default();
    let flag = |v: f64| Some(v != 0.0);
    for line in text.lines() {
        let Some((name, labels, v)) = sample(line) else { continue };
        let label = |k: &str| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let le = || label("le").and_then(|l| if l == "+Inf" { Some(f64::INFINITY) } else { l.parse().ok() });
        match name {
            "etcd_server_id" => s.id = label("server_id").and_then(|i| u64::from_str_radix(i, 16).ok()),
            "etcd_server_version" => s.version = label("server_version").map(String::from),
            "etcd_cluster_version" => s.cluster_version = label("cluster_version").map(|v| format!("{v}.0")),
            "etcd_server_has_leader" => s.has_leader = flag(v),
            "etcd_server_is_leader" => s.is_leader = flag(v),
            "etcd_server_is_learner" => s.is_learner = flag(v),
            "etcd_mvcc_db_total_size_in_bytes" => s.db_size = Some(v as u64),
            "etcd_mvcc_db_total_size_in_use_in_bytes" => s.db_size_in_use = Some(v as u64),
            "etcd_server_quota_backend_bytes" => s.quota_backend_bytes = Some(v as u64),
            "etcd_server_leader_changes_seen_total" => s.leader_changes = Some(v as u64),
            "etcd_server_proposals_committed_total" => s.proposals_committed = Some(v as u64),
            "etcd_server_proposals_applied_total" => s.proposals_applied = Some(v as u64),
            "etcd_server_proposals_pending" => s.proposals_pending = Some(v as u64),
            "etcd_server_proposals_failed_total" => s.proposals_failed = Some(v as u64),
            "etcd_disk_wal_fsync_duration_seconds_bucket" => wal.extend(le().map(|l| (l, v))),
            "etcd_disk_backend_commit_duration_seconds_bucket" => commit.extend(le().map(|l| (l, v))),
            "etcd_network_peer_round_trip_time_seconds_bucket" => {
                if let (Some(to), Some(l)) = (label("To"), le()) {
                    rtt.entry(to.to_string()).or_default().push((l, v));
                }
            }
            _ => {}
        }
    }
    let ms = |x: f64| (x * 1e6).round() / 1e3;
    let count = |b: &[(f64, f64)]| b.iter().find(|b| b.0.is_infinite()).map(|b| b.1 as u64).unwrap_or(0);
    s.latency.wal_fsync_count = count(&wal);
    s.latency.backend_commit_count = count(&commit);
    s.latency.wal_fsync_p99_ms = quantile(0.99, &wal).map(ms);
    s.latency.backend_commit_p99_ms = quantile(0.99, &commit).map(ms);
    let slowest =
        rtt.iter().filter_map(|(to, b)| quantile(0.99, b).map(|q| (to, q))).max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((to, q)) = slowest {
        s.latency.peer_rtt_p99_ms = Some(ms(q));
        s.latency.peer_rtt_slowest = u64::from_str_radix(to, 16).ok();
    }
    s
}

/// `/health`'s JSON: `{"health":"true","reason":""}`.
pub fn parse_health(body: &str) -> (Option<bool>, Option<String>) {
    let v: serde_json::Value = match serde_json::from_str(body.trim()) {
        Ok(v) => v,
        Err(_) => return (None, None),
    };
    let health = v.get("health").and_then(|h| h.as_str()).map(|h| h == "true");
    let reason = v.get("reason").and_then(|r| r.as_str()).filter(|r| !r.is_empty()).map(String::from);
    (health, reason)
}

/// Scrapes `/health` and `/metrics` of one member through `dialer`, both within `timeout`.
pub async fn scrape(
    dialer: &crate::reach::conn::Dialer,
    via: &crate::reach::conn::Via,
    timeout: Duration,
) -> Result<Scrape, crate::reach::conn::TransportError> {
    let (health, metrics) =
        futures::future::join(dialer.http_get(via, "/health", timeout), dialer.http_get(via, "/metrics", timeout))
            .await;
    let (code, body) = metrics?;
    if code != 200 {
        return Err(crate::reach::conn::TransportError::new(
            &via.to_string(),
            crate::error::FailureClass::Network(format!("HTTP {code}")),
            format!("/metrics answered HTTP {code}: is this etcd's --listen-metrics-urls port?"),
        ));
    }
    let mut s = parse(&body);
    // etcd answers /health with 503 when unhealthy; the body still says why.
    if let Ok((_, body)) = health {
        (s.health, s.health_reason) = parse_health(&body);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_as_prometheus_computes_them() {
        // 100 samples: 90 under 1 ms, 9 more under 2 ms, the last under 4 ms.
        let b = [(0.001, 90.0), (0.002, 99.0), (0.004, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &b), Some(0.001 * 50.0 / 90.0));
        assert_eq!(quantile(0.99, &b), Some(0.002));
        assert!((quantile(0.995, &b).unwrap() - 0.003).abs() < 1e-12);
        // The rank in +Inf: the highest finite bound.
        let b = [(0.001, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(0.99, &b), Some(0.001));
        assert_eq!(quantile(0.99, &[(0.001, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(quantile(0.99, &[]), None);
    }

    #[test]
    fn the_figures_of_a_real_scrape() {
        let text = r#"# HELP etcd_server_id Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.
# TYPE etcd_server_id gauge
etcd_server_id{server_id="d0fc88b41492808e"} 1
etcd_server_version{server_version="3.5.1"} 1
etcd_cluster_version{cluster_version="3.5"} 1
etcd_server_has_leader 1
etcd_server_is_leader 0
etcd_server_is_learner 0
etcd_mvcc_db_total_size_in_bytes 20480
etcd_mvcc_db_total_size_in_use_in_bytes 16384
etcd_server_quota_backend_bytes 2.147483648e+09
etcd_server_leader_changes_seen_total 2
etcd_server_proposals_committed_total 42
etcd_server_proposals_applied_total 41
etcd_server_proposals_pending 1
etcd_server_proposals_failed_total 0
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 4
etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"} 5
etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"} 5
etcd_disk_wal_fsync_duration_seconds_sum 0.003
etcd_disk_wal_fsync_duration_seconds_count 5
etcd_disk_backend_commit_duration_seconds_bucket{le="0.008"} 0
etcd_disk_backend_commit_duration_seconds_bucket{le="0.016"} 10
etcd_disk_backend_commit_duration_seconds_bucket{le="+Inf"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="2f36a3ae708a8ec8",le="0.0001"} 0
etcd_network_peer_round_trip_time_seconds_bucket{To="2f36a3ae708a8ec8",le="0.0002"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="2f36a3ae708a8ec8",le="+Inf"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="e83c179a10cfab90",le="0.0001"} 10
etcd_network_peer_round_trip_time_seconds_bucket{To="e83c179a10cfab90",le="+Inf"} 10
"#;
        let s = parse(text);
        assert_eq!(s.id, Some(0xd0fc88b41492808e));
        assert_eq!(s.version.as_deref(), Some("3.5.1"));
        assert_eq!(s.cluster_version.as_deref(), Some("3.5.0"));
        assert_eq!((s.has_leader, s.is_leader, s.is_learner), (Some(true), Some(false), Some(false)));
        assert_eq!((s.db_size, s.db_size_in_use, s.quota_backend_bytes), (Some(20480), Some(16384), Some(2 << 30)));
        assert_eq!(s.leader_changes, Some(2));
        assert_eq!((s.proposals_committed, s.proposals_applied, s.proposals_pending), (Some(42), Some(41), Some(1)));
        assert_eq!(s.latency.wal_fsync_count, 5);
        assert_eq!(s.latency.backend_commit_count, 10);
        assert_eq!(s.latency.wal_fsync_p99_ms, Some(1.95));
        assert_eq!(s.latency.backend_commit_p99_ms, Some(15.92));
        assert_eq!(s.latency.peer_rtt_slowest, Some(0x2f36a3ae708a8ec8));
        assert_eq!(s.latency.peer_rtt_p99_ms, Some(0.199));
        assert_eq!(parse_health("{\"health\":\"true\",\"reason\":\"\"}"), (Some(true), None));
        assert_eq!(
            parse_health("{\"health\":\"false\",\"reason\":\"RAFT NO LEADER\"}"),
            (Some(false), Some("RAFT NO LEADER".into()))
        );
        assert_eq!(parse_health("{\"health\":\"true\"}"), (Some(true), None));
    }
}
