//! The health report: the members table (`wide` adds columns), the checks table, and the
//! insecure warning.

use super::{Print, Table, View};
use crate::base::units::{format_bytes, format_duration, member_id};
use crate::ops::health::{Report, Status};

impl Print for Report {
    fn kind(&self) -> &'static str {
        "HealthReport"
    }

    fn text(&self, view: View) -> String {
        let mut s = members_table(self, view.wide).render(view);
        // --no-headers is for scripts: the members only, one row each (the checks are in the
        // exit code and in -o json).
        if view.no_headers {
            return s;
        }
        s.push('\n');
        s.push_str(&checks_table(self, view.color));
        if self.insecure {
            s.push_str("\nWARNING: server certificates were NOT verified (--insecure-skip-tls-verify)\n");
        }
        s
    }
}

/// The members table. The default fits 120 columns with five members (NAME, ENDPOINT,
/// HEALTH, LATENCY, ROLE, VERSION, DB SIZE, IN USE as a percentage, ERRORS); `wide` adds the
/// ID, the cluster version, raft term/index/applied, the lag, the quota, the disk p99s and the URLs.
pub fn members_table(report: &Report, wide: bool) -> Table {
    let mut header = vec!["name"];
    if wide {
        header.push("id");
    }
    header.extend(["endpoint", "health", "latency", "role", "version", "db size", "in use"]);
    if wide {
        header.extend([
            "cluster version",
            "raft term",
            "raft index",
            "applied",
            "applied lag",
            "quota",
            "wal fsync p99",
            "commit p99",
            "peer urls",
            "client urls",
        ]);
    }
    header.push("errors");
    let mut t = Table::new(header);
    for r in &report.members {
        let percent = match (r.db_size_in_use, r.db_size) {
            (Some(u), Some(s)) if s > 0 => format!("{:.0}%", u as f64 / s as f64 * 100.0),
            _ => String::new(),
        };
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let role = if r.is_learner {
            "learner"
        } else if r.is_leader {
            "leader"
        } else if r.answered && r.is_member {
            "follower"
        } else {
            ""
        };
        // The role column says "learner": the health cell keeps only its progress.
        let health = match &r.learner {
            Some(l) => match l.percent {
                Some(p) if r.answered => format!("{} ({p:.0}%)", l.state),
                _ => l.state.clone(),
            },
            None => r.health.clone(),
        };
        let name = if r.name.is_empty() {
            if r.is_member { "(not started)" } else { "(not a member)" }.to_string()
        } else {
            r.name.clone()
        };
        let mut row = vec![name];
        if wide {
            row.push(r.id.map(member_id).unwrap_or_default());
        }
        row.extend([
            r.endpoint.clone().unwrap_or_default(),
            health,
            r.latency.map(format_duration).unwrap_or_default(),
            role.to_string(),
            r.version.clone().unwrap_or_default(),
            r.db_size.map(format_bytes).unwrap_or_default(),
            percent,
        ]);
        if wide {
            row.push(r.cluster_version.clone().unwrap_or_default());
            row.push(opt(r.raft_term));
            row.push(opt(r.raft_index));
            row.push(opt(r.raft_applied_index));
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

/// The checks table, wrapped to 120 columns: a long message, and the next step on its own
/// `next:` line, continue under the MESSAGE column.
pub fn checks_table(report: &Report, color: bool) -> String {
    render_checks(&report.checks, color)
}

/// A list of checks as the health checks table (any command's checks).
pub fn render_checks(checks: &[crate::ops::health::model::Check], color: bool) -> String {
    const WIDTH: usize = 120;
    let name_w = checks.iter().map(|c| c.name.len()).chain([5]).max().unwrap_or(5);
    let status_w = 6;
    let indent = name_w + 3 + status_w + 3;
    let room = WIDTH.saturating_sub(indent).max(40);
    let mut out = format!("{:<name_w$}   {:<status_w$}   MESSAGE\n", "CHECK", "STATUS");
    for c in checks {
        let mut lines = wrap(&c.message, room);
        if let (Some(h), true) = (&c.hint, c.status != Status::Ok) {
            lines.extend(wrap(&format!("next: {h}"), room));
        }
        for (i, l) in lines.iter().enumerate() {
            if i == 0 {
                let status = c.status.as_str();
                let pad = " ".repeat(status_w.saturating_sub(status.len()));
                let status = crate::base::color::paint(status, crate::base::color::Tone::of(status), color);
                out.push_str(&format!("{:<name_w$}   {status}{pad}   {l}\n", c.name));
            } else {
                out.push_str(&format!("{:indent$}{l}\n", ""));
            }
        }
    }
    out
}

impl Print for crate::ops::health::fleet::Fleet {
    fn kind(&self) -> &'static str {
        "HealthReportList"
    }

    fn text(&self, view: View) -> String {
        let (table, notes) = fleet_table(self, view.wide);
        let mut s = table.render(view);
        if view.no_headers || notes.is_empty() {
            return s;
        }
        s.push('\n');
        let name_w = notes.iter().map(|(c, _)| c.chars().count()).max().unwrap_or(0).max(7);
        let room = 120usize.saturating_sub(name_w + 3).max(40);
        s.push_str(&format!("{:<name_w$}   PROBLEM\n", "CONTEXT"));
        for (context, message) in &notes {
            for (i, l) in wrap(message, room).iter().enumerate() {
                let c = if i == 0 { context.as_str() } else { "" };
                s.push_str(&format!("{c:<name_w$}   {l}\n"));
            }
        }
        s
    }
}

/// The fleet table, one row per context (fits 120 columns with context names up to 24
/// characters); `wide` adds the checks that are not ok. Also the notes printed under it: why a
/// context has no report.
pub fn fleet_table(fleet: &crate::ops::health::fleet::Fleet, wide: bool) -> (Table, Vec<(String, String)>) {
    use crate::ops::health::fleet::{summary, Outcome};
    let mut header =
        vec!["context", "members", "leader", "quorum", "db", "alarms", "version", "worst check", "transport"];
    if wide {
        header.push("not ok");
    }
    let mut t = Table::new(header);
    let mut notes = Vec::new();
    for c in &fleet.items {
        let mut row = vec![c.context.clone()];
        match &c.outcome {
            Outcome::Report(r) => {
                let s = summary(r);
                row.extend([s.members, s.leader, s.quorum, s.db, s.alarms, s.versions, s.worst]);
                row.push(r.transport.to_string());
                if wide {
                    row.push(s.not_ok.join("; "));
                }
            }
            Outcome::NoEtcd { message } | Outcome::Forbidden { message } | Outcome::Failed { message } => {
                let what = match &c.outcome {
                    Outcome::NoEtcd { .. } => "no etcd visible",
                    Outcome::Forbidden { .. } => "fail (forbidden)",
                    _ => "fail (no report)",
                };
                row.extend(["", "", "", "", "", "", what, ""].map(String::from));
                if wide {
                    row.push(message.clone());
                }
                notes.push((c.context.clone(), message.clone()));
            }
        }
        t.push(row);
    }
    (t, notes)
}

/// Greedy word wrap at `width` columns (a longer word stands alone on its line). A command
/// (`kubectl …` up to the end of its clause) is never broken, so that it can be copied whole.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    let mut in_command = false;
    for word in text.split_whitespace() {
        match units.last_mut() {
            Some(u) if in_command => {
                u.push(' ');
                u.push_str(word);
            }
            _ => units.push(word.to_string()),
        }
        if word == "kubectl" {
            in_command = true;
        }
        if word.ends_with([';', ',', ')']) {
            in_command = false;
        }
    }
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in &units {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wraps_at_the_width() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("averyveryverylongword x", 5), ["averyveryverylongword", "x"]);
        assert_eq!(wrap("", 5), [""]);
        assert_eq!(
            wrap("the cluster is read-only: kubectl etcd defrag --compact --disarm", 30),
            ["the cluster is read-only:", "kubectl etcd defrag --compact --disarm"]
        );
        assert_eq!(wrap("run kubectl etcd x, then y z", 10), ["run", "kubectl etcd x,", "then y z"]);
    }
}
