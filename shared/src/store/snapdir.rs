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

use crate::error::{Error, Result};
use crate::store::compress::Compression;
use crate::store::trailer::Trailer;

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
    /// An object in a bucket: the metadata written with it (none: not written by this tool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<crate::store::bucket::ObjectMeta>,
    /// True for an object in a bucket.
    #[serde(skip)]
    pub remote: bool,
    /// For the order: the name's time.
    #[serde(skip)]
    stamp: String,
}

impl Entry {
    /// Whether retention counts it: a local file whose trailer verifies; an object whose
    /// trailer verified after a download (`ls --verify`), else whose metadata says this tool
    /// verified it before uploading it.
    pub fn verified(&self) -> bool {
        match (&self.metadata, self.sha256_trailer) {
            (_, Trailer::Valid) => true,
            (Some(m), Trailer::Unchecked) => m.verified,
            _ => false,
        }
    }

    /// An object of a bucket, from its listing and metadata.
    pub fn remote(
        url: String,
        name: String,
        parsed: &Name,
        size: u64,
        compression: Compression,
        metadata: Option<crate::store::bucket::ObjectMeta>,
    ) -> Entry {
        Entry {
            path: PathBuf::from(url),
            name,
            prefix: parsed.prefix.clone(),
            time: parsed.time(),
            revision: parsed.revision,
            size,
            compression,
            sha256_trailer: Trailer::Unchecked,
            metadata,
            remote: true,
            stamp: parsed.stamp.clone(),
        }
    }
}

/// Newest first: by the name's time, then revision, then name.
pub fn sort_newest_first(v: &mut [Entry]) {
    v.sort_by(|a, b| b.stamp.cmp(&a.stamp).then(b.revision.cmp(&a.revision)).then(b.name.cmp(&a.name)));
}

/// A snapshot directory: a local directory (also `file://PATH`) or a bucket prefix
/// (`s3://BUCKET/PREFIX`, `gs://…`, `az://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapDir {
    /// On this machine.
    Local(PathBuf),
    /// In object storage.
    Bucket(crate::store::bucket::BucketUrl),
}

impl SnapDir {
    /// Parses a `--dir` / `--latest` value.
    pub fn parse(s: &str) -> Result<SnapDir> {
        if let Some(p) = s.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(Error::Usage(format!("{s}: a file:// URL takes an absolute path (file:///var/backups)")));
            }
            return Ok(SnapDir::Local(PathBuf::from(p)));
        }
        match crate::store::bucket::BucketUrl::parse(s) {
            Some(u) => Ok(SnapDir::Bucket(u?)),
            None => Ok(SnapDir::Local(PathBuf::from(s))),
        }
    }

    /// For clap's `value_parser`.
    pub fn parse_arg(s: &str) -> std::result::Result<SnapDir, String> {
        SnapDir::parse(s).map_err(|e| e.report())
    }
}

impl std::fmt::Display for SnapDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapDir::Local(p) => write!(f, "{}", p.display()),
            SnapDir::Bucket(u) => write!(f, "{u}"),
        }
    }
}

/// The snapshots in `dir` (of `prefix` only, when given), newest first, each one's sha256
/// trailer checked: several files at once, one per CPU (sha256 runs on one core per file).
pub fn list(dir: &Path, prefix: Option<&str>) -> Result<Vec<Entry>> {
    let mut entries = scan(dir, prefix)?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(entries.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let verdicts: Vec<(usize, Result<Trailer>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(e) = entries.get(i) else { break };
                        // A damaged compressed file is listed as mismatching, not an error: the
                        // others still count.
                        let t = match crate::store::snapfile::check_trailer(&e.path, e.size) {
                            Err(Error::Corrupt { .. }) => Ok(Trailer::Mismatch),
                            r => r,
                        };
                        done.push((i, t));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut verdicts = verdicts;
    verdicts.sort_by_key(|(i, _)| *i);
    if verdicts.len() != entries.len() {
        return Err(Error::Internal("a trailer check thread panicked".into()));
    }
    for (i, t) in verdicts {
        entries[i].sha256_trailer = t?;
    }
    Ok(entries)
}

/// The snapshots in `dir` (of `prefix` only, when given), newest first, by name and metadata
/// only: their trailers are left [`Trailer::Unchecked`].
fn scan(dir: &Path, prefix: Option<&str>) -> Result<Vec<Entry>> {
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
            .and_then(|f| crate::store::compress::detect(&f))
            .map_err(|source| Error::ReadFile { input: true, what: "snapshot", path: path.clone(), source })?;
        out.push(Entry {
            name: file_name,
            path,
            prefix: name.prefix.clone(),
            time: name.time(),
            revision: name.revision,
            size: md.len(),
            compression,
            sha256_trailer: Trailer::Unchecked,
            metadata: None,
            remote: false,
            stamp: name.stamp,
        });
    }
    sort_newest_first(&mut out);
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
    let (kept, removed) = retain(verified, keep);
    if !dry_run && !removed.is_empty() {
        for e in &removed {
            std::fs::remove_file(&e.path).map_err(|source| Error::Io {
                action: format!("delete the old snapshot {}", e.path.display()),
                source,
            })?;
        }
        crate::base::fsio::sync_dir(dir)?;
    }
    Ok(Pruned { dir: dir.to_path_buf(), prefix: prefix.to_string(), keep, dry_run, kept, removed, unverified })
}

/// Splits verified snapshots (newest first) into the kept and the deleted: the newest `keep`,
/// and also every older-named one whose revision is above all of those kept — a snapshot saved
/// later from a member that was behind must never cost the one of a higher revision.
pub(crate) fn retain(verified: Vec<Entry>, keep: usize) -> (Vec<Entry>, Vec<Entry>) {
    let mut kept: Vec<Entry> = Vec::new();
    let mut removed = Vec::new();
    for e in verified {
        let newest_kept = kept.iter().map(|k| k.revision).max();
        if kept.len() < keep || newest_kept.is_some_and(|r| e.revision > r) {
            kept.push(e);
        } else {
            removed.push(e);
        }
    }
    (kept, removed)
}

/// Refuses to name a new snapshot of `revision` in `dir` when a verified snapshot of `prefix`
/// there has a higher one: the new one comes from a member behind the cluster.
pub fn refuse_older(dir: &Path, prefix: &str, revision: i64) -> Result<()> {
    let newer: Vec<Entry> = scan(dir, Some(prefix))?.into_iter().filter(|e| e.revision > revision).collect();
    for e in newer {
        if crate::store::snapfile::check_trailer(&e.path, e.size).ok() == Some(Trailer::Valid) {
            return Err(Error::Refused(format!(
                "the snapshot just streamed is at revision {revision}, older than {} at revision {} already in {}: the member it came from is behind the cluster; nothing was written (save again from a member in quorum)",
                e.name,
                e.revision,
                dir.display()
            )));
        }
    }
    Ok(())
}

/// The newest snapshot in `dir` (any prefix) that passes `snapshot verify` (trailer and the
/// full structural walk), for `--latest DIR`; the ones skipped on the way, with why. Files are
/// verified newest first and the search stops at the first sound one: the older ones are never
/// read (in an incident, a directory of week-old snapshots costs nothing).
pub fn latest(dir: &Path) -> Result<(PathBuf, Vec<String>)> {
    let mut skipped = Vec::new();
    for e in scan(dir, None)? {
        if e.compression == Compression::None && !crate::store::trailer::has_trailer(e.size) {
            skipped.push(format!("{}: no sha256 trailer", e.name));
            continue;
        }
        match crate::store::snapfile::verify(&e.path) {
            Ok(v) if v.sha256_trailer == Trailer::Valid => return Ok((e.path, skipped)),
            Ok(_) => skipped.push(format!("{}: no sha256 trailer", e.name)),
            Err(err) if matches!(&err, Error::Corrupt { reason, .. } if reason.starts_with("sha256 mismatch")) => {
                skipped.push(format!("{}: sha256 trailer mismatch", e.name))
            }
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

    fn entry(stamp: &str, revision: i64) -> Entry {
        Entry {
            name: format!("etcd-{stamp}-{revision}.db"),
            path: PathBuf::from(format!("/b/etcd-{stamp}-{revision}.db")),
            prefix: "etcd".into(),
            time: stamp.into(),
            revision,
            size: 1,
            compression: Compression::None,
            sha256_trailer: Trailer::Valid,
            metadata: None,
            remote: false,
            stamp: stamp.into(),
        }
    }

    #[test]
    fn retention_never_deletes_a_higher_revision_than_it_keeps() {
        let names = |v: &[Entry]| v.iter().map(|e| e.revision).collect::<Vec<_>>();
        // Newest first by time; the newest was saved from a member that was behind.
        let (kept, removed) =
            retain(vec![entry("20261205T0300Z", 221), entry("20261205T0200Z", 251), entry("20261205T0100Z", 200)], 1);
        assert_eq!((names(&kept), names(&removed)), (vec![221, 251], vec![200]));
        let (kept, removed) = retain(vec![entry("3", 30), entry("2", 20), entry("1", 10)], 2);
        assert_eq!((names(&kept), names(&removed)), (vec![30, 20], vec![10]));
    }

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
