//! The offline diagnosis of a data dir (`restore doctor`).

use super::{steps, Print, View};
use crate::base::units::{format_bytes, member_id};
use crate::ops::doctor::{Diagnosis, Verdict};
use crate::store::walcheck::End;

impl Print for Diagnosis {
    fn kind(&self) -> &'static str {
        "Diagnosis"
    }

    fn text(&self, _: View) -> String {
        let verdict = match self.verdict {
            Verdict::Healthy => "HEALTHY: etcd should start on it",
            Verdict::Repairable => "REPAIRABLE: a torn WAL tail, which etcd truncates at start",
            Verdict::Damaged => {
                "DAMAGED: etcd refuses to start on it (or would start wrong, or fail on rejoining its cluster)"
            }
            Verdict::Removed => "REMOVED: the member was removed from its cluster; stop it and move its data dir aside",
            Verdict::NeverStarted => "NEVER STARTED: no WAL; the member was added but never finished its first start",
        };
        let mut s = format!("Data dir {}: {verdict}\n", self.data_dir.display());
        s.push_str(&format!(
            "Member: {} ({})\n",
            self.name.clone().unwrap_or_else(|| "?".into()),
            self.member_id.map(member_id).unwrap_or_else(|| "unknown".into())
        ));
        let w = &self.wal;
        let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        s.push_str(&format!(
            "WAL: {} segment(s), entries {}..{} (last term {}), HardState {}, {} snapshot marker(s)\n",
            w.segments.len(),
            opt(w.first_index),
            opt(w.last_index),
            opt(w.last_term),
            w.hard_state
                .map(|h| format!("term {} vote {} commit {}", h.term, member_id(h.vote), h.commit))
                .unwrap_or_else(|| "-".into()),
            w.snapshots.len()
        ));
        for seg in &w.segments {
            let end = match seg.end {
                End::Clean => "ok".to_string(),
                End::Torn => format!("torn: {}", seg.problem.clone().unwrap_or_default()),
                End::Damaged => format!("DAMAGED: {}", seg.problem.clone().unwrap_or_default()),
            };
            s.push_str(&format!("  {}  {} records, {} used  {end}\n", seg.name, seg.records, format_bytes(seg.used)));
        }
        match &self.loads_snap {
            Some(n) => s.push_str(&format!("Snapshots: {} .snap file(s); etcd loads {n}\n", self.snaps.len())),
            None => s.push_str(&format!("Snapshots: {} .snap file(s); none matches the WAL\n", self.snaps.len())),
        }
        if let Some(db) = &self.db {
            s.push_str(&format!(
                "Database: {}, {}, consistent index {}, {} member(s)\n",
                format_bytes(db.size),
                if db.valid {
                    "verifies".to_string()
                } else {
                    format!("DAMAGED ({})", db.problem.clone().unwrap_or_default())
                },
                opt(db.consistent_index),
                db.members.len()
            ));
        }
        if !self.damage.is_empty() {
            s.push_str(&steps("Damage:", &self.damage));
        }
        if !self.notes.is_empty() {
            s.push_str(&steps("Notes:", &self.notes));
        }
        s.push_str(&steps("Next:", &self.next_steps));
        s
    }
}
