//! Snapshots: status (the figures of `etcdutl snapshot status`), verify, save, and snapshot
//! directories (`snapshot ls`, and what `prune` or a save's `--keep` did).

use serde::Serialize;

use super::{Print, Table, View};
use crate::base::units::{format_bytes, format_duration, member_id};
use crate::ops::snapshot::Saved;
use crate::store::compress::Compression;
use crate::store::snapdir::{Entry, Pruned};
use crate::store::snapfile::{Status, Verified};
use crate::store::trailer::Trailer;

/// How a sha256 trailer reads.
pub fn trailer_text(t: Trailer) -> &'static str {
    match t {
        Trailer::Absent => "absent (data-dir copy)",
        Trailer::Valid => "valid",
        Trailer::Mismatch => "MISMATCH",
        Trailer::Unchecked => "present (not checked)",
    }
}

/// How a file's storage reads.
pub fn compression_text(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Zstd => "zstd",
    }
}

/// A size, and the size on disk when the file is compressed.
fn size_text(size: u64, c: Compression, file_size: u64) -> String {
    match c {
        Compression::None => format_bytes(size),
        Compression::Zstd => format!("{} (zstd {})", format_bytes(size), format_bytes(file_size)),
    }
}

/// The status table.
pub fn status_table(s: &Status, wide: bool) -> Table {
    let mut header = vec!["hash", "revision", "total keys", "total size", "sha256 trailer"];
    if wide {
        header.extend(["file size", "compression", "page size", "free pages", "buckets"]);
    }
    let mut t = Table::new(header);
    let mut row = vec![
        s.hash.clone(),
        s.revision.to_string(),
        s.total_keys.to_string(),
        format_bytes(s.total_size),
        trailer_text(s.sha256_trailer).to_string(),
    ];
    if wide {
        row.extend([
            s.file_size.to_string(),
            compression_text(s.compression).to_string(),
            s.page_size.to_string(),
            s.free_pages.to_string(),
            s.buckets.join(","),
        ]);
    }
    t.push(row);
    t
}

impl Print for Status {
    fn kind(&self) -> &'static str {
        "SnapshotStatus"
    }

    fn text(&self, view: View) -> String {
        status_table(self, view.wide).render(view)
    }
}

impl Print for Saved {
    fn kind(&self) -> &'static str {
        "SnapshotSaved"
    }

    fn text(&self, view: View) -> String {
        let mut t = Table::new(["file", "member", "id", "revision", "size", "sha256", "duration"]);
        t.push([
            self.path.display().to_string(),
            self.member.clone(),
            member_id(self.member_id),
            self.revision.to_string(),
            size_text(self.size, self.compression, self.file_size),
            self.sha256.clone(),
            format_duration(self.duration),
        ]);
        let mut s = t.render(view);
        if let (Some(f), false) = (&self.forced, view.no_headers) {
            s.push_str(&format!("forced: {f}\n"));
        }
        if let (Some(r), false) = (&self.retention, view.no_headers) {
            s.push_str(&retention_text(r));
        }
        for c in &self.copies {
            s.push_str(&format!("also saved as {}\n", c.location));
            if let (Some(r), false) = (&c.retention, view.no_headers) {
                s.push_str(&retention_text(r));
            }
        }
        s
    }
}

impl Print for Verified {
    fn kind(&self) -> &'static str {
        "SnapshotVerified"
    }

    fn text(&self, _: View) -> String {
        format!(
            "{}: ok: {}sha256 trailer {}, {} pages ({} in use, {} free), revision {}, buckets {}\n",
            self.path.display(),
            if self.compression == Compression::Zstd { "zstd, " } else { "" },
            trailer_text(self.sha256_trailer),
            self.summary.pages,
            self.summary.in_use,
            self.summary.free,
            self.revision,
            self.summary.buckets.join(",")
        )
    }
}

// Snapshot directories: `snapshot ls` and what `prune` (or a save's `--keep`) did.

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
            match (&e.metadata, e.sha256_trailer) {
                (Some(m), Trailer::Unchecked) if m.verified => "valid at upload (not downloaded)".to_string(),
                (None, Trailer::Unchecked) if e.remote => "unknown (not written by kubectl-etcd)".to_string(),
                (_, t) => trailer_text(t).to_string(),
            },
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
