//! Members and learners: add, status, promote, remove, replace, and the certificates issued
//! for a member; the learner catch-up progress line.

use super::{indented, numbered, steps, Print, Table, View};
use crate::base::progress::Bar;
use crate::base::units::{format_duration, member_id};
use crate::ops::certs::Issued;
use crate::ops::members::{Added, Learners, Progress, Promoted, Removed, Replaced};

impl Print for Added {
    fn kind(&self) -> &'static str {
        "Added"
    }

    fn text(&self, _: View) -> String {
        let mut s = String::new();
        for w in &self.forced {
            s.push_str(&format!("WARNING (--force): {w}\n"));
        }
        match (self.dry_run, self.already_existed, self.id) {
            (true, _, _) => s.push_str(&format!(
                "Dry run: would add learner {} with peer URLs {}; nothing was changed.\n",
                self.settings.name, self.settings.initial_advertise_peer_urls
            )),
            (_, true, Some(id)) => s.push_str(&format!(
                "Learner {} already exists with these peer URLs (ID {}); nothing was changed.\n",
                self.settings.name,
                member_id(id)
            )),
            (_, _, Some(id)) => {
                s.push_str(&format!("Added learner {} with ID {}.\n", self.settings.name, member_id(id)))
            }
            _ => {}
        }
        s.push_str("\nStart etcd on the new member with:\n");
        s.push_str(&indented(&self.settings.flags()));
        if let Some(m) = &self.manifest {
            s.push_str("\n# Static pod manifest for the new member (/etc/kubernetes/manifests/etcd.yaml):\n");
            s.push_str(m);
        }
        if let Some(p) = &self.manifest_written {
            let verb = if self.dry_run { "Would write" } else { "Wrote" };
            s.push_str(&format!("\n{verb} the new member's static pod manifest to {}.\n", p.display()));
        }
        if self.manifest.is_some() || self.manifest_written.is_some() {
            s.push_str(&certs_hint(&self.settings));
        }
        if self.promote_follows {
            s.push_str("\nWaiting for it to start and catch up; it is promoted as soon as etcd allows.\n");
        } else {
            let key = self.id.map(member_id).unwrap_or_else(|| self.settings.name.clone());
            s.push_str(&format!("\nOnce it runs, promote it: kubectl etcd learner promote {key}\n"));
        }
        s
    }
}

/// The learners table.
pub fn progress_table(rows: &[Progress]) -> Table {
    let mut t = Table::new([
        "name",
        "id",
        "peer urls",
        "started",
        "index",
        "leader index",
        "percent",
        "rate",
        "eta",
        "promotable",
        "error",
    ]);
    for p in rows {
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
        t.push([
            p.member.display_name(),
            member_id(p.member.id),
            p.member.peer_urls.join(","),
            p.started.to_string(),
            opt(p.raft_index),
            opt(p.leader_index),
            p.percent.map(|x| format!("{x:.1}%")).unwrap_or_default(),
            p.rate.map(|r| format!("{r:.0}/s")).unwrap_or_default(),
            p.eta.map(format_duration).unwrap_or_default(),
            p.promotable.to_string(),
            p.error.clone().unwrap_or_default(),
        ]);
    }
    t
}

impl Print for Learners {
    fn kind(&self) -> &'static str {
        "Learners"
    }

    fn text(&self, view: View) -> String {
        if self.0.is_empty() {
            return "No learners.\n".into();
        }
        progress_table(&self.0).render(view)
    }
}

impl Print for Promoted {
    fn kind(&self) -> &'static str {
        "Promoted"
    }

    fn text(&self, _: View) -> String {
        format!(
            "Promoted {} ({}) to a voting member after {} ({} attempt{}).\n",
            self.member.display_name(),
            member_id(self.member.id),
            format_duration(self.waited),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" }
        )
    }
}

impl Print for Removed {
    fn kind(&self) -> &'static str {
        "Removed"
    }

    fn text(&self, _: View) -> String {
        let mut s = steps(if self.dry_run { "Dry run; the plan:" } else { "Done:" }, &self.steps);
        s.push_str(&steps(if self.dry_run { "Nothing was changed. Afterwards:" } else { "Next:" }, &self.next_steps));
        s
    }
}

impl Print for Replaced {
    fn kind(&self) -> &'static str {
        "Replaced"
    }

    fn text(&self, _: View) -> String {
        if self.dry_run {
            return format!(
                "Dry run; the plan:\n{}Nothing was changed.\n\nStart etcd on the new member with:\n{}",
                numbered(&self.steps),
                indented(&self.settings.flags())
            );
        }
        let mut s = String::from("\n");
        s.push_str(&steps("Replaced:", &self.steps));
        s.push_str(&steps("Next:", &self.next_steps));
        s
    }
}

impl Print for Issued {
    fn kind(&self) -> &'static str {
        "IssuedCertificates"
    }

    fn text(&self, _: View) -> String {
        let mut s = format!(
            "Issued certificates for {}, signed by {}, valid until {}:\n",
            self.name,
            self.ca_cert.display(),
            self.not_after
        );
        for f in &self.files {
            s.push_str(&format!("  {}\n", f.display()));
        }
        s.push_str(&format!("SANs: {}\n", self.sans.join(", ")));
        s
    }
}

/// Draws a learner's catch-up on a [`Bar`]; says once, on a line of its own, that it has not
/// started yet and how to start it.
pub fn learner_progress(bar: &mut Bar, p: &Progress) {
    if !p.started {
        bar.note(&format!(
            "learner {} (peer URLs {}) has not started yet: waiting for it; start etcd on the new node with the settings `kubectl etcd learner add` printed (--initial-cluster-state=existing)",
            member_id(p.member.id),
            p.member.peer_urls.join(",")
        ));
        bar.text(&format!("waiting for learner {} to start ...", member_id(p.member.id)));
        return;
    }
    let detail = format!(
        "{}  eta {}",
        p.rate.map(|r| format!("{r:.0} entries/s")).unwrap_or_else(|| "-".into()),
        p.eta.map(format_duration).unwrap_or_else(|| "-".into())
    );
    bar.percent(p.percent.unwrap_or(0.0), &detail);
}

/// The manifest names the new node's own server and peer certificates: how to issue them,
/// with its name and the address of its peer URL.
fn certs_hint(settings: &crate::ops::members::JoinSettings) -> String {
    let first = settings.initial_advertise_peer_urls.split(',').next().unwrap_or_default();
    let host = crate::reach::url::host(first).unwrap_or_default();
    let addr = if host.parse::<std::net::IpAddr>().is_ok() {
        format!("--ip {host}")
    } else {
        format!("--dns {host} --ip ADDRESS")
    };
    format!(
        "\nThe new node needs its own server and peer certificates, signed by the cluster's etcd CA, where the manifest names them. On a node holding the CA: kubectl etcd learner certs {} {addr} --out {}\n",
        settings.name,
        crate::reach::layouts::KUBEADM.pki_dir
    )
}
