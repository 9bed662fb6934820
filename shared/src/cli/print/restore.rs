//! Restores: into a new data dir (`apply`, `from-data-dir`), and the on-node flows' plan and
//! result.

use super::health::members_table;
use super::{numbered, steps, Print, View};
use crate::base::units::{format_duration, member_id};
use crate::ops::restore::node::{NodeRestored, Plan};
use crate::ops::restore::{ApplyPlan, Restored};

impl Print for Restored {
    fn kind(&self) -> &'static str {
        "Restored"
    }

    fn text(&self, _: View) -> String {
        let a = &self.applied;
        let mut s = if self.from_data_dir {
            format!(
                "Restored a one-member cluster {} into {}: start etcd there with --name {} --data-dir {} (never --force-new-cluster on a learner's data dir).\n",
                member_id(a.cluster_id),
                a.data_dir.display(),
                a.member.name,
                a.data_dir.display()
            )
        } else {
            let mut s = format!(
                "Restored {} into {} as member {} ({}) of cluster {} at revision {}{} in {}.\nMembers:\n",
                self.snapshot.display(),
                a.data_dir.display(),
                a.member.name,
                member_id(a.member.id),
                member_id(a.cluster_id),
                a.revision,
                a.bumped_to.map(|b| format!(" (bumped to {b}, compacted)")).unwrap_or_default(),
                format_duration(a.duration)
            );
            for m in &a.members {
                s.push_str(&format!("  {}  {}  {}\n", member_id(m.id), m.name, m.peer_urls.join(",")));
            }
            s
        };
        s.push_str(&steps("Next:", &self.next_steps));
        s
    }
}

impl Print for ApplyPlan {
    fn kind(&self) -> &'static str {
        "ApplyPlan"
    }

    fn text(&self, _: View) -> String {
        format!(
            "Plan: restore {}{} into {} as the only member {} ({}).\nDry run: nothing was changed.\n",
            self.snapshot.display(),
            if self.skip_hash_check { " (skip-hash-check)" } else { "" },
            self.data_dir.display(),
            self.name,
            self.initial_cluster
        )
    }
}

/// The plan of a node flow as shown before the confirmation: warnings first, then the steps.
pub fn plan_text(plan: &Plan) -> String {
    let mut text = String::new();
    for w in &plan.warnings {
        text.push_str(&format!("WARNING: {w}\n"));
    }
    text.push_str(&format!(
        "Plan for member {} (from {}), membership from {}:\n",
        plan.name,
        plan.manifest.display(),
        plan.membership_source
    ));
    text.push_str(&numbered(&plan.steps));
    text
}

/// A plan reaches stdout only as a dry run's result.
impl Print for Plan {
    fn kind(&self) -> &'static str {
        "NodeRestorePlan"
    }

    fn text(&self, _: View) -> String {
        format!("{}Dry run: nothing was changed.\n", plan_text(self))
    }
}

impl Print for NodeRestored {
    fn kind(&self) -> &'static str {
        "NodeRestored"
    }

    fn text(&self, view: View) -> String {
        let (plan, applied) = (&self.outcome.plan, &self.outcome.applied);
        let old = if plan.backup.exists() {
            format!("the old data is at {}", plan.backup.display())
        } else {
            format!("there was no old data in {}", plan.data_dir.display())
        };
        let mut s = format!(
            "Restored member {} ({}) of cluster {} at revision {}; {old}.\n\n",
            applied.member.name,
            member_id(applied.member.id),
            member_id(applied.cluster_id),
            applied.revision,
        );
        match &self.health {
            Some(report) => {
                s.push_str(&members_table(report, false).render(view));
                s.push('\n');
            }
            None if !self.outcome.answered => s.push_str(&format!(
                "etcd runs on the restored data dir and listens on {}; it will answer once a quorum of the {} restored members runs.\n\n",
                plan.client_url,
                applied.members.len()
            )),
            None => {}
        }
        s.push_str(&steps("Next:", &self.next_steps));
        s
    }
}
