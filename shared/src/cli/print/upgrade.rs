//! `kubectl etcd upgrade`: the check (members' versions, then every check), the node plan and
//! its result.

use super::{Print, Table, View};
use crate::base::units::member_id;
use crate::ops::upgrade::check::MemberVersion;
use crate::ops::upgrade::{UpgradeCheck, UpgradeStatus};

/// The members' versions.
pub fn members_table(members: &[MemberVersion], wide: bool) -> Table {
    let mut header = vec!["name", "id", "version", "cluster version", "role", "in quorum"];
    if wide {
        header.extend(["storage version", "error"]);
    }
    let mut t = Table::new(header);
    for m in members {
        let role = if m.learner {
            "learner"
        } else if m.leader {
            "leader"
        } else if m.version.is_some() {
            "follower"
        } else {
            // It did not answer: what it is now is unknown.
            "-"
        };
        let mut row = vec![
            m.name.clone(),
            member_id(m.id),
            m.version.clone().unwrap_or_else(|| "?".into()),
            m.cluster_version.clone().unwrap_or_default(),
            role.to_string(),
            if m.in_quorum { "yes" } else { "no" }.to_string(),
        ];
        if wide {
            row.push(m.storage_version.clone().unwrap_or_default());
            row.push(m.error.clone().unwrap_or_default());
        }
        t.push(row);
    }
    t
}

impl Print for UpgradeCheck {
    fn kind(&self) -> &'static str {
        "UpgradeCheck"
    }

    fn text(&self, view: View) -> String {
        let mut s = members_table(&self.members, view.wide).render(view);
        s.push('\n');
        let from = self.current.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        let to = self.target.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
        s.push_str(&format!(
            "Upgrade {from} → {to}{}; cluster version {}.\n",
            if self.target_default { " (the next step on the supported path)" } else { "" },
            self.cluster_version.as_deref().unwrap_or("unknown")
        ));
        if let Some(f) = &self.floor {
            s.push_str(&format!(
                "Patch floor before {}: {}\n",
                self.target.map(|t| t.minor_str()).unwrap_or_default(),
                f.min
            ));
            for e in &f.entries {
                s.push_str(&format!("  {:<8} {} ({})\n", e.min, e.why, e.source));
            }
        }
        s.push('\n');
        s.push_str(&super::health::render_checks(&self.checks, view.color));
        if self.ready {
            s.push_str(&format!(
                "\nReady. Next, on each control-plane node in turn (the leader's last): kubectl etcd upgrade node --to {to}\n"
            ));
        } else {
            s.push_str(&format!("\nNot ready: {} failed.\n", self.failed().join(", ")));
        }
        s
    }
}

impl Print for UpgradeStatus {
    fn kind(&self) -> &'static str {
        "UpgradeStatus"
    }

    fn text(&self, view: View) -> String {
        let mut s = members_table(&self.members, view.wide).render(view);
        s.push('\n');
        s.push_str(&format!("Cluster version {}.\n", self.cluster_version.as_deref().unwrap_or("unknown")));
        match &self.downgrade {
            Some(d) if d.enabled => s.push_str(&format!(
                "Downgrade to {} enabled: swap each member's image once its storage version is {} (kubectl etcd downgrade cancel stops it).\n",
                d.target_version, d.target_version
            )),
            Some(_) => s.push_str("Downgrade: not enabled.\n"),
            None => {}
        }
        match &self.rollout {
            Some(r) => {
                let what = if r.minor_step { "Rolling upgrade" } else { "Patch rollout" };
                s.push_str(&format!(
                    "{what} {} → {}: {} of {} members done ({}); still to do: {}.\nNext, on each node still to do (the leader's last): kubectl etcd upgrade node --to {}\n",
                    r.from,
                    r.to,
                    r.done.len(),
                    r.done.len() + r.remaining.len(),
                    r.done.join(", "),
                    r.remaining.join(", "),
                    r.to
                ));
            }
            None => {
                let v = self.members.iter().find_map(|m| m.version.clone()).unwrap_or_else(|| "?".into());
                s.push_str(&format!("No rollout in progress: every member that answered runs {v}.\n"));
            }
        }
        s
    }
}

impl Print for crate::ops::upgrade::downgrade::DowngradeResult {
    fn kind(&self) -> &'static str {
        "DowngradeResult"
    }

    fn text(&self, _: View) -> String {
        let mut s = format!(
            "downgrade {}{}: accepted; cluster version {}.\n",
            format!("{:?}", self.action).to_lowercase(),
            self.target.as_ref().map(|t| format!(" to {t}")).unwrap_or_default(),
            self.cluster_version
        );
        if !self.storage_versions.is_empty() {
            s.push_str(&format!("Storage versions: {}.\n", self.storage_versions.join(", ")));
        }
        if !self.next.is_empty() {
            s.push_str(&super::steps("Next:", &self.next));
        }
        s
    }
}

impl Print for crate::ops::upgrade::node::NodePlan {
    fn kind(&self) -> &'static str {
        "UpgradeNodePlan"
    }

    fn text(&self, view: View) -> String {
        let mut s =
            format!("Member {} ({}) runs {}; target {}.\n", self.member, member_id(self.member_id), self.from, self.to);
        if self.nothing_to_do {
            s.push_str(&format!(
                "Nothing to do: {} runs {} with image {} already.\n",
                self.member, self.to, self.image_from
            ));
            return s;
        }
        s.push('\n');
        s.push_str(&super::health::render_checks(&self.check.checks, view.color));
        for f in &self.forced {
            s.push_str(&format!("FORCED past a failed check: {f}\n"));
        }
        s.push_str("\nPlan:\n");
        s.push_str(&super::numbered(&self.steps));
        if !self.ready {
            s.push_str(&format!(
                "\nRefused: {} failed (--force CHECK goes on past one, said in the output).\n",
                self.check.failed().join(", ")
            ));
        } else if self.dry_run {
            s.push_str("\nDry run: nothing was changed.\n");
        }
        s
    }
}

impl Print for crate::ops::upgrade::node::NodeResult {
    fn kind(&self) -> &'static str {
        "UpgradeNodeResult"
    }

    fn text(&self, _: View) -> String {
        let mut s = format!("{}\n", self.message);
        if let Some(p) = &self.snapshot {
            s.push_str(&format!("Snapshot taken first: {}\n", p.display()));
        }
        s.push_str(&format!("Original manifest kept as {}\n", self.backup.display()));
        if let Some(l) = &self.leader_moved_to {
            s.push_str(&format!("Leadership moved to {l} first.\n"));
        }
        if !self.next.is_empty() {
            s.push_str(&super::steps("Next:", &self.next));
        }
        s
    }
}
