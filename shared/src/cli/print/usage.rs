//! `usage`: where the database came from, one row per resource (or namespace), the largest and
//! most rewritten keys, and the findings with their next steps.

use super::{Print, Table, View};
use crate::base::units::format_bytes;
use crate::ops::usage::{By, Figures, Usage};

/// Cuts a key to `max` characters, keeping its end (the name) and marking the cut.
fn short(key: &str, max: usize) -> String {
    let n = key.chars().count();
    if n <= max {
        return key.to_string();
    }
    let tail: String = key.chars().skip(n - (max - 1)).collect();
    format!("…{tail}")
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        String::new()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

fn row(name: &str, f: &Figures, all: u64, wide: bool) -> Vec<String> {
    let mut r = vec![
        if wide { name.to_string() } else { short(name, 48) },
        f.live_keys.to_string(),
        format_bytes(f.live_bytes),
        f.revisions.to_string(),
        format_bytes(f.history_bytes),
        f.tombstones.to_string(),
        pct(f.total_bytes(), all),
    ];
    if wide {
        r.push(f.live_bytes.to_string());
        r.push(f.history_bytes.to_string());
    }
    r
}

impl Usage {
    /// The heading: source, revisions, size against quota, free pages.
    pub fn heading(&self) -> String {
        let src = &self.source;
        let from = match src.kind.as_str() {
            "member" => format!(
                "a snapshot of {} ({}), streamed into a temporary file: {}",
                src.member.as_deref().unwrap_or("?"),
                src.endpoint.as_deref().unwrap_or("?"),
                format_bytes(src.size)
            ),
            "data-dir" => format!(
                "data dir {} (member/snap/db, {}, read without etcd's lock)",
                src.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                format_bytes(src.size)
            ),
            _ => format!(
                "{} ({}{})",
                src.path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                format_bytes(src.size),
                if src.compression == crate::store::compress::Compression::Zstd { ", zstd" } else { "" }
            ),
        };
        let compacted = if self.compacted_revision == 0 {
            "never compacted".to_string()
        } else {
            format!("compacted at {}", self.compacted_revision)
        };
        format!(
            "Database: {from}\nRevision {}, {compacted}. Size {} of {} quota ({}); {} free in {} pages (what defrag returns).\n",
            self.revision,
            format_bytes(self.db_size),
            format_bytes(self.quota),
            pct(self.db_size, self.quota),
            format_bytes(self.free_bytes),
            self.free_pages
        )
    }
}

impl Print for Usage {
    fn kind(&self) -> &'static str {
        "Usage"
    }

    fn text(&self, view: View) -> String {
        let mut s = if view.no_headers { String::new() } else { format!("{}\n", self.heading()) };
        let first = if self.by == By::Namespace { "namespace" } else { "resource" };
        let mut header = vec![first, "live keys", "live bytes", "revisions", "history", "tombstones", "share"];
        if view.wide {
            header.extend(["live bytes (exact)", "history (exact)"]);
        }
        let mut t = Table::new(header);
        let all = self.totals.total_bytes();
        let rows: Vec<(String, Figures)> = match (&self.namespaces, self.by) {
            (Some(ns), By::Namespace) => ns
                .iter()
                .map(|n| (if n.namespace.is_empty() { "(none)".into() } else { n.namespace.clone() }, n.figures))
                .collect(),
            _ => self.resources.iter().map(|r| (r.resource.clone(), r.figures)).collect(),
        };
        let shown = if view.wide || self.top == 0 { rows.len() } else { self.top.min(rows.len()) };
        for (name, f) in &rows[..shown] {
            t.push(row(name, f, all, view.wide));
        }
        if shown < rows.len() {
            let mut rest = Figures::default();
            let n = rows.len() - shown;
            for (_, f) in &rows[shown..] {
                rest.live_keys += f.live_keys;
                rest.live_bytes += f.live_bytes;
                rest.revisions += f.revisions;
                rest.history_bytes += f.history_bytes;
                rest.tombstones += f.tombstones;
            }
            t.push(row(&format!("({n} more)"), &rest, all, view.wide));
        }
        t.push(row("total", &self.totals, all, view.wide));
        s.push_str(&t.render(view));
        if view.no_headers {
            return s;
        }
        if !self.largest.is_empty() {
            s.push_str("\nLargest objects:\n");
            let mut t = Table::new(["key", "bytes"]);
            for l in &self.largest {
                t.push([if view.wide { l.key.clone() } else { short(&l.key, 100) }, format_bytes(l.bytes)]);
            }
            s.push_str(&super::indented(&t.render(view)));
        }
        if !self.most_rewritten.is_empty() {
            s.push_str("\nMost rewritten keys:\n");
            let mut t = Table::new(["key", "versions kept", "version"]);
            for r in &self.most_rewritten {
                t.push([
                    if view.wide { r.key.clone() } else { short(&r.key, 80) },
                    r.versions.to_string(),
                    r.version.to_string(),
                ]);
            }
            s.push_str(&super::indented(&t.render(view)));
        }
        if self.findings.is_empty() {
            s.push_str("\nNothing to act on.\n");
        } else {
            s.push_str("\nFindings:\n");
            // Each finding wrapped at 120 columns, its next step on its own `next:` lines.
            for f in &self.findings {
                for (i, l) in super::health::wrap(&f.message, 116).iter().enumerate() {
                    s.push_str(&format!("{}{l}\n", if i == 0 { "  - " } else { "    " }));
                }
                for (i, l) in super::health::wrap(&f.next, 110).iter().enumerate() {
                    s.push_str(&format!("{}{l}\n", if i == 0 { "    next: " } else { "          " }));
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_key_keeps_its_name() {
        assert_eq!(super::short("/registry/pods/ns/name", 100), "/registry/pods/ns/name");
        let s = super::short("/registry/example.com/widgets/team/a-very-long-name", 20);
        assert_eq!(s.chars().count(), 20);
        assert!(s.starts_with('…') && s.ends_with("a-very-long-name"), "{s}");
    }
}
