//! Snapshots: status (the figures of `etcdutl snapshot status`), verify, save.

use super::{Print, Table, View};
use crate::base::units::{format_bytes, format_duration, member_id};
use crate::ops::snapshot::{Saved, Status, Trailer, Verified};
use crate::store::compress::Compression;

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
            s.push_str(&super::backups::retention_text(r));
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
