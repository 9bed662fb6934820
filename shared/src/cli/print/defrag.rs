//! Defragmentation: the plan (members in defrag order, with their free space and why each is
//! or is not taken) and the result (sizes before and after).

use super::{Print, Table, View};
use crate::base::units::{format_bytes, member_id};
use crate::ops::defrag::{done_line, Defragged, Plan};

/// The plan table: one row per member, in the order they are defragmented.
pub fn plan_table(plan: &Plan, wide: bool) -> Table {
    let mut header = vec!["order", "name", "id", "role", "db size", "in use", "free", "defrag", "reason"];
    if wide {
        header.extend(["endpoint", "deadline"]);
    }
    let mut t = Table::new(header);
    let mut n = 0;
    for m in &plan.members {
        let b = |v: Option<u64>| v.map(format_bytes).unwrap_or_default();
        let order = if m.selected {
            n += 1;
            n.to_string()
        } else {
            String::new()
        };
        let mut row = vec![
            order,
            m.name.clone(),
            member_id(m.id),
            m.role.to_string(),
            b(m.db_size),
            b(m.db_size_in_use),
            b(m.free),
            if m.selected { "yes" } else { "no" }.to_string(),
            m.reason.clone(),
        ];
        if wide {
            row.push(m.endpoint.clone().unwrap_or_default());
            row.push(crate::base::units::format_duration(m.deadline));
        }
        t.push(row);
    }
    t
}

fn heading(plan: &Plan) -> String {
    let mut s = format!("Rule: {}.", plan.rule);
    if let Some(r) = plan.compact_to {
        s.push_str(&format!(" First: compact to revision {r} (physical)."));
    }
    if plan.disarm {
        s.push_str(" After: disarm NOSPACE alarms once every DB is below the threshold, then check a write.");
    }
    s.push('\n');
    s
}

impl Print for Plan {
    fn kind(&self) -> &'static str {
        "DefragPlan"
    }

    fn text(&self, view: View) -> String {
        let mut s = heading(self);
        s.push_str(&plan_table(self, view.wide).render(view));
        let n = self.members.iter().filter(|m| m.selected).count();
        s.push_str(&format!(
            "{} to defragment, {} to reclaim.{}\n",
            if n == 1 { "1 member".to_string() } else { format!("{n} members") },
            format_bytes(self.reclaimable),
            if self.dry_run { " Dry run: nothing was changed." } else { "" }
        ));
        s
    }
}

impl Print for Defragged {
    fn kind(&self) -> &'static str {
        "Defragged"
    }

    fn text(&self, _: View) -> String {
        let mut s = String::new();
        if let Some(r) = self.compacted_to {
            s.push_str(&format!("Compacted to revision {r}.\n"));
        }
        if self.defragmented.is_empty() {
            s.push_str(&format!("Nothing to defragment (rule: {}).\n", self.plan.rule));
        } else {
            s.push_str("Defragmented:\n");
            for d in &self.defragmented {
                s.push_str(&format!("  {}\n", done_line(d)));
            }
        }
        let skipped: Vec<String> =
            self.plan.members.iter().filter(|m| !m.selected).map(|m| format!("  {}: {}\n", m.name, m.reason)).collect();
        if !skipped.is_empty() {
            s.push_str("Not defragmented:\n");
            s.push_str(&skipped.concat());
        }
        if self.plan.disarm {
            if self.disarmed.is_empty() {
                s.push_str("No NOSPACE alarm was raised");
            } else {
                s.push_str(&format!("Disarmed NOSPACE on {}", self.disarmed.join(", ")));
            }
            s.push_str(if self.write_check == Some(true) { "; a write succeeds.\n" } else { ".\n" });
        }
        s
    }
}
