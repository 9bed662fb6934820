//! Snapshot directories: `snapshot ls` and what `prune` (or a save's `--keep`) did.

use serde::Serialize;

use super::snapshot::compression_text;
use super::{Print, Table, View};
use crate::base::units::format_bytes;
use crate::store::snapdir::{Entry, Pruned};

/// `snapshot ls`: the snapshots of a directory, newest first.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Snapshots(pub Vec<Entry>);

fn table(entries: &[Entry], wide: bool) -> Table {
    let mut header = vec!["name", "time", "revision", "size", "sha256"];
    if wide {
        header.extend(["compression", "path"]);
    }
    let mut t = Table::new(header);
    for e in entries {
        let mut row = vec![
            e.name.clone(),
            e.time.clone(),
            e.revision.to_string(),
            format_bytes(e.size),
            super::snapshot::trailer_text(e.sha256_trailer).to_string(),
        ];
        if wide {
            row.push(compression_text(e.compression).to_string());
            row.push(e.path.display().to_string());
        }
        t.push(row);
    }
    t
}

impl Print for Snapshots {
    fn kind(&self) -> &'static str {
        "SnapshotList"
    }

    fn text(&self, view: View) -> String {
        if self.0.is_empty() && !view.no_headers {
            return "No snapshots (files named PREFIX-YYYYMMDDTHHMMSSZ-REVISION.db or .db.zst).\n".into();
        }
        table(&self.0, view.wide).render(view)
    }
}

/// The lines a retention run adds to a save's or prune's output.
pub fn retention_text(p: &Pruned) -> String {
    let names = |v: &[Entry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>().join(", ");
    let mut s =
        format!("Kept the newest {} verified snapshot(s) of {} in {}.\n", p.kept.len(), p.prefix, p.dir.display());
    if !p.removed.is_empty() {
        let verb = if p.dry_run { "Would delete" } else { "Deleted" };
        s.push_str(&format!("{verb} {} older one(s): {}.\n", p.removed.len(), names(&p.removed)));
    }
    if !p.unverified.is_empty() {
        s.push_str(&format!("Left alone, not counted (sha256 trailer does not verify): {}.\n", names(&p.unverified)));
    }
    s
}

impl Print for Pruned {
    fn kind(&self) -> &'static str {
        "SnapshotsPruned"
    }

    fn text(&self, view: View) -> String {
        let mut s = String::new();
        if self.dry_run {
            s.push_str("Dry run; nothing was deleted.\n");
        }
        s.push_str(&retention_text(self));
        if !view.no_headers && !self.kept.is_empty() {
            s.push('\n');
            s.push_str(&table(&self.kept, view.wide).render(view));
        }
        s
    }
}
