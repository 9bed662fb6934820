//! etcd's sha256 trailer: the 32 bytes etcd appends to a snapshot stream, the sha256 of the
//! database before them. A file whose size is 32 more than a multiple of 512 has one (etcd's own
//! test); a `member/snap/db` copied from a data dir has none.

use serde::Serialize;

/// Size of etcd's sha256 trailer.
pub const TRAILER: u64 = 32;

/// Whether a file carries etcd's sha256 trailer, and whether it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trailer {
    /// No trailer: a database copied from a data dir (`member/snap/db`).
    Absent,
    /// Present and matching.
    Valid,
    /// Present and not matching: the file is corrupt or truncated.
    Mismatch,
    /// Present, not checked (`--skip-hash-check`).
    Unchecked,
}

/// True when a file of this size carries the trailer.
pub fn has_trailer(size: u64) -> bool {
    size % 512 == TRAILER
}
