//! The health report: the members table (`wide` adds columns), the checks table, and the
//! insecure warning.

use super::{Print, Table, View};
use crate::health::{Report, Status};
use crate::util::{format_bytes, format_duration, member_id};

impl Print for Report {
    fn text(&self, view: View) -> String {
        let mut s = members_table(self, view.wide).format(view.no_headers);
        s.push('\n');
        s.push_str(&checks_table(self).format(view.no_headers));
        if self.insecure {
            s.push_str("\nWARNING: server certificates were NOT verified (--insecure-skip-tls-verify)\n");
        }
        s
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
        header.extend(["applied lag", "quota", "wal fsync p99", "commit p99", "peer urls", "client urls"]);
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
            let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}ms")).unwrap_or_default();
            let lat = r.metrics.as_ref().map(|m| &m.latency);
            row.push(ms(lat.and_then(|l| l.wal_fsync_p99_ms)));
            row.push(ms(lat.and_then(|l| l.backend_commit_p99_ms)));
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
