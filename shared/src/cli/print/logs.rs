//! `doctor logs`: the findings of an etcd log (SEVERITY, COUNT, FIRST, LAST, WHAT, NEXT; `-o wide`
//! adds the evidence line) and each container start with how it ended.

use super::{Print, Table, View};
use crate::ops::doctor::checkup::Checkup;
use crate::ops::doctor::logs::LogReport;

/// The table's width budget: SEVERITY, COUNT, FIRST and LAST take 53 columns; WHAT and NEXT are
/// cut to fit 120 (-o wide and the causes below the table have them whole).
const WHAT_MAX: usize = 26;
const NEXT_MAX: usize = 38;

/// The table's NEXT: the step's first command (between backquotes) when there is one, else the
/// step's start.
fn next_cell(next: &str) -> String {
    let cmd = next.split('`').nth(1).filter(|c| c.starts_with("kubectl ")).unwrap_or(next);
    fit(cmd, NEXT_MAX)
}

/// A time as the table shows it: `MM-DDTHH:MM:SS` (the year and fraction are in -o json).
fn short_time(t: &Option<String>) -> String {
    match t {
        Some(t) if t.len() >= 19 => t[5..19].to_string(),
        Some(t) => t.clone(),
        None => String::new(),
    }
}

fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

impl Print for LogReport {
    fn kind(&self) -> &'static str {
        "LogReport"
    }

    fn text(&self, view: View) -> String {
        let mut s = String::new();
        if self.findings.is_empty() {
            s.push_str(&format!("No known failure in {} line(s) of etcd's log.\n", self.lines));
        } else {
            let mut header = vec!["severity", "count", "first", "last", "what", "next"];
            if view.wide {
                header.push("evidence");
            }
            let mut t = Table::new(header);
            for f in &self.findings {
                let mut row = vec![
                    if f.cleared.is_some() { "CLEARED".to_string() } else { f.severity.label().to_string() },
                    f.count.to_string(),
                    short_time(&f.first),
                    short_time(&f.last),
                    if view.wide { f.what.clone() } else { fit(&f.what, WHAT_MAX) },
                    match &f.cleared {
                        // History: when it ended, not a step to take now.
                        Some(c) if !view.wide => format!("cleared {}", short_time(&c.at)).trim_end().to_string(),
                        Some(c) => format!(
                            "cleared{}; if it comes back: {}",
                            c.at.as_ref().map(|t| format!(" at {t}")).unwrap_or_default(),
                            f.next
                        ),
                        None if view.wide => f.next.clone(),
                        None => next_cell(&f.next),
                    },
                ];
                if view.wide {
                    row.push(f.evidence.clone());
                }
                t.push(row);
            }
            s.push_str(&t.render(view));
            if !view.no_headers {
                s.push_str("\nCauses:\n");
                for f in &self.findings {
                    let on = if f.members.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", f.members.iter().cloned().collect::<Vec<_>>().join(", "))
                    };
                    match &f.cleared {
                        Some(c) => s.push_str(&format!(
                            "  {} ({}){on}, cleared{}: {}\n    cleared by: {}\n",
                            f.what,
                            f.id,
                            c.at.as_ref().map(|t| format!(" at {t}")).unwrap_or_default(),
                            f.cause,
                            c.evidence
                        )),
                        None => {
                            s.push_str(&format!("  {} ({}){on}: {}\n    next: {}\n", f.what, f.id, f.cause, f.next))
                        }
                    }
                }
            }
        }
        if !view.no_headers && self.unknown_fatal_omitted > 0 {
            s.push_str(&format!(
                "… and {} more fatal line(s) not in the catalogue, of other texts (-o json counts them)\n",
                self.unknown_fatal_omitted
            ));
        }
        if !view.no_headers && !self.unreadable.is_empty() {
            s.push_str("\nRead only in part:\n");
            for u in &self.unreadable {
                s.push_str(&format!("  {u}\n"));
            }
        }
        if !view.no_headers && !self.containers.is_empty() {
            s.push_str("\nContainers:\n");
            if self.containers_omitted > 0 {
                s.push_str(&format!("  … {} older container start(s) not listed\n", self.containers_omitted));
            }
            for (i, c) in self.containers.iter().enumerate() {
                let i = i as u64 + self.containers_omitted;
                s.push_str(&format!(
                    "  #{i} {} .. {} ({} lines): {}\n",
                    c.started.clone().unwrap_or_else(|| "?".into()),
                    c.last_line.clone().unwrap_or_else(|| "?".into()),
                    c.lines,
                    c.ended
                ));
                if view.wide {
                    s.push_str(&format!("     from {}\n", c.source));
                    if let Some(e) = &c.evidence {
                        s.push_str(&format!("     {e}\n"));
                    }
                }
            }
        }
        s
    }
}

impl Print for Checkup {
    fn kind(&self) -> &'static str {
        "Checkup"
    }

    fn text(&self, view: View) -> String {
        let mut s = format!("Member {}: {}\n", self.member.as_deref().unwrap_or("?"), self.verdict);
        if !self.next.is_empty() {
            s.push_str(&super::steps("Next:", &self.next));
        }
        s.push_str("\n== Log\n");
        match (&self.logs, &self.logs_error) {
            (Some(l), _) => s.push_str(&l.text(view)),
            (None, Some(e)) => s.push_str(&format!("{e}\n")),
            (None, None) => {}
        }
        s.push_str("\n== Data dir\n");
        match (&self.data_dir, &self.data_dir_error) {
            (Some(d), _) => s.push_str(&d.text(view)),
            (None, Some(e)) => s.push_str(&format!("{e}\n")),
            (None, None) => {}
        }
        s
    }
}
