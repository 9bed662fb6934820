//! Snapshot directories: `snapshot save --dir DIR` names each snapshot
//! `PREFIX-<UTC time>-<revision>.db` (`etcd-snapshot-20261201T060000Z-48213.db`; `.db.zst` with
//! `--compress zstd`), and keeps the
//! newest N **verified** ones; `snapshot ls` and `snapshot prune` read the same names.
//!
//! Only files named that way are ever considered, and only those whose sha256 trailer matches
//! count as verified: a damaged snapshot is reported and left where it is (it may be all that
//! is left), never counted towards N, never deleted. Files of another prefix, `.part` files of a
//! save under way and anything else in the directory are not touched.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::snapshot::Trailer;

/// `--name-prefix`'s default.
pub const DEFAULT_PREFIX: &str = "etcd-snapshot";

/// A snapshot file name's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// Everything before the time.
    pub prefix: String,
    /// `YYYYMMDDTHHMMSSZ`.
    pub stamp: String,
    /// The store's revision.
    pub revision: i64,
    /// `.db.zst`: zstd.
    pub compression: Compression,
}

impl Name {
    /// Parses `PREFIX-YYYYMMDDTHHMMSSZ-REVISION.db` and `….db.zst`.
    pub fn parse(file_name: &str) -> Option<Name> {
        let (base, compression) = match file_name.strip_suffix(".db.zst") {
            Some(b) => (b, Compression::Zstd),
            None => (file_name.strip_suffix(".db")?, Compression::None),
        };
        let (rest, rev) = base.rsplit_once('-')?;
        let (prefix, stamp) = rest.rsplit_once('-')?;
        let b = stamp.as_bytes();
        let stamp_ok =
            b.len() == 16 && b[8] == b'T' && b[15] == b'Z' && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        if prefix.is_empty() || prefix.starts_with('.') || !stamp_ok || rev.is_empty() {
            return None;
        }
        if !rev.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(Name { prefix: prefix.to_string(), stamp: stamp.to_string(), revision: rev.parse().ok()?, compression })
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        format!("{}-{}-{}.db{}", self.prefix, self.stamp, self.revision, self.compression.suffix())
    }

    /// The time as RFC 3339 (`2026-12-01T06:00:00Z`).
    pub fn time(&self) -> String {
        let s = &self.stamp;
        format!("{}-{}-{}T{}:{}:{}Z", &s[..4], &s[4..6], &s[6..8], &s[9..11], &s[11..13], &s[13..15])
    }
}

/// `YYYYMMDDTHHMMSSZ` for now, in UTC.
pub fn stamp_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Checks a `--name-prefix`: a plain file name part.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || prefix.starts_with('.') || prefix.contains('/') || prefix.chars().any(char::is_whitespace) {
        return Err(Error::Usage(format!(
            "--name-prefix {prefix:?} is not a plain file name part: use letters, digits, '-' or '_', not starting with '.'"
        )));
    }
    Ok(())
}

/// Checks a `--keep`: at least one snapshot stays.
pub fn check_keep(keep: usize) -> Result<()> {
    if keep == 0 {
        return Err(Error::Usage("--keep 0 would delete every snapshot: keep at least 1".into()));
    }
    Ok(())
}

/// One snapshot of a directory.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// The name's prefix.
    pub prefix: String,
    /// When it was saved (UTC, from its name).
    pub time: String,
    /// The store's revision (from its name).
    pub revision: i64,
    /// Its size in bytes (on disk).
    pub size: u64,
    /// How it is stored (from its first bytes).
    pub compression: Compression,
    /// Its sha256 trailer (of the uncompressed stream): `valid` is what retention counts as
    /// verified.
    pub sha256_trailer: Trailer,
    /// For the order: the name's time.
    #[serde(skip)]
    stamp: String,
}

impl Entry {
    /// Whether retention counts it.
    pub fn verified(&self) -> bool {
        self.sha256_trailer == Trailer::Valid
    }
}

/// The snapshots in `dir` (of `prefix` only, when given), newest first, each one's sha256
/// trailer checked.
pub fn list(dir: &Path, prefix: Option<&str>) -> Result<Vec<Entry>> {
    let read = std::fs::read_dir(dir).map_err(|source| Error::ReadFile {
        input: true,
        what: "snapshot directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for e in read.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(name) = Name::parse(&file_name) else { continue };
        if prefix.is_some_and(|p| p != name.prefix) {
            continue;
        }
        // Regular files only: never follow a link out of the directory.
        let Ok(md) = std::fs::symlink_metadata(e.path()) else { continue };
        if !md.file_type().is_file() {
            continue;
        }
        let path = e.path();
        let compression = std::fs::File::open(&path)
            .and_then(|f| crate::compress::detect(&f))
            .map_err(|source| Error::ReadFile { input: true, what: "snapshot", path: path.clone(), source })?;
        // A damaged compressed file is listed as mismatching, not an error: the others still count.
        let sha256_trailer = match crate::snapshot::check_trailer(&path, md.len()) {
            Err(Error::Corrupt { .. }) => Trailer::Mismatch,
            r => r?,
        };
        out.push(Entry {
            name: file_name,
            path,
            prefix: name.prefix.clone(),
            time: name.time(),
            revision: name.revision,
            size: md.len(),
            compression,
            sha256_trailer,
            stamp: name.stamp,
        });
    }
    out.sort_by(|a, b| b.stamp.cmp(&a.stamp).then(b.revision.cmp(&a.revision)).then(b.name.cmp(&a.name)));
    Ok(out)
}

/// What `prune` (or a save's retention) did or would do.
#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    /// The directory.
    pub dir: PathBuf,
    /// The prefix pruned.
    pub prefix: String,
    /// How many verified snapshots are kept.
    pub keep: usize,
    /// True when nothing was deleted.
    pub dry_run: bool,
    /// The newest `keep` verified snapshots.
    pub kept: Vec<Entry>,
    /// The older verified snapshots, deleted (or to be deleted in a dry run).
    pub removed: Vec<Entry>,
    /// Snapshots whose trailer does not verify: left alone and not counted.
    pub unverified: Vec<Entry>,
}

/// Keeps the newest `keep` verified snapshots of `prefix` in `dir` and deletes the older
/// verified ones; never a file of another prefix, an unverified one, or one not named as ours.
pub fn prune(dir: &Path, prefix: &str, keep: usize, dry_run: bool) -> Result<Pruned> {
    check_prefix(prefix)?;
    check_keep(keep)?;
    let entries = list(dir, Some(prefix))?;
    let (verified, unverified): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(Entry::verified);
    let mut kept = verified;
    let removed = kept.split_off(keep.min(kept.len()));
    if !dry_run && !removed.is_empty() {
        for e in &removed {
            std::fs::remove_file(&e.path).map_err(|source| Error::Io {
                action: format!("delete the old snapshot {}", e.path.display()),
                source,
            })?;
        }
        crate::util::sync_dir(dir)?;
    }
    Ok(Pruned { dir: dir.to_path_buf(), prefix: prefix.to_string(), keep, dry_run, kept, removed, unverified })
}

/// The newest snapshot in `dir` (any prefix) that passes `snapshot verify` (trailer and the
/// full structural walk), for `--latest DIR`; the ones skipped on the way, with why.
pub fn latest(dir: &Path) -> Result<(PathBuf, Vec<String>)> {
    let mut skipped = Vec::new();
    for e in list(dir, None)? {
        if !e.verified() {
            let why = if e.sha256_trailer == Trailer::Absent { "no sha256 trailer" } else { "sha256 trailer mismatch" };
            skipped.push(format!("{}: {why}", e.name));
            continue;
        }
        match crate::snapshot::verify(&e.path) {
            Ok(_) => return Ok((e.path, skipped)),
            Err(err) => skipped.push(format!("{}: {}", e.name, err.report())),
        }
    }
    Err(Error::Usage(format!(
        "no verified snapshot in {} (files named PREFIX-YYYYMMDDTHHMMSSZ-REVISION.db or .db.zst{}): pass a snapshot FILE instead",
        dir.display(),
        if skipped.is_empty() { String::new() } else { format!("; skipped {}", skipped.join("; ")) }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print() {
        let n = Name::parse("etcd-snapshot-20261201T060000Z-48213.db").unwrap();
        assert_eq!(n.prefix, "etcd-snapshot");
        assert_eq!(n.revision, 48213);
        assert_eq!(n.time(), "2026-12-01T06:00:00Z");
        assert_eq!(n.file_name(), "etcd-snapshot-20261201T060000Z-48213.db");
        let z = Name::parse("etcd-snapshot-20261201T060000Z-48213.db.zst").unwrap();
        assert_eq!((z.compression, z.revision), (Compression::Zstd, 48213));
        assert_eq!(z.file_name(), "etcd-snapshot-20261201T060000Z-48213.db.zst");
        for bad in [
            "etcd.db",
            "etcd-snapshot-20261201T060000Z-48213.db.part",
            "etcd-snapshot-20261201T060000Z-48213.db.part.zst",
            "etcd-snapshot-20261201T060000Z-48213.zst",
            ".etcd-snapshot-20261201T060000Z-1.db",
            "-20261201T060000Z-1.db",
            "x-20261201T0600Z-1.db",
            "x-20261201T060000Z-.db",
            "x-20261201T060000Z-12a.db",
            "x-2026120xT060000Z-1.db",
        ] {
            assert_eq!(Name::parse(bad), None, "{bad}");
        }
        assert_eq!(stamp_now().len(), 16);
        assert!(Name::parse(&format!("p-{}-0.db", stamp_now())).is_some());
        assert!(check_prefix("../x").is_err() && check_prefix(".x").is_err() && check_prefix("cp-1_a").is_ok());
    }
}
