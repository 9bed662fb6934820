//! Snapshots: `save` (streamed from one member, verified, durable), `status` (the same figures
//! as `etcdutl snapshot status`), and `verify` (trailer hash and a full structural walk).
//!
//! A snapshot file is etcd's bbolt database followed by a 32-byte sha256 of it, which etcd
//! appends to the snapshot stream; a file whose size is 32 more than a multiple of 512 has that
//! trailer (etcd's own test). A `member/snap/db` copied from a data dir has none.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster::{find_member, Member, Session};
use crate::conn::{call, FailureClass, TransportError};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bbolt::check::{walk, Summary, Visitor};
use crate::bbolt::{BoltError, Db};
use crate::compress::{Compression, TrailerSum};
use crate::error::{Error, Result};
use crate::util::not_regular;

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

/// What `snapshot status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// CRC-32C over bucket names, keys and values (as etcdutl computes it), lowercase hex.
    pub hash: String,
    /// The same hash as a number (etcdutl's JSON `hash`).
    pub hash_u32: u32,
    /// The store's revision (of the last key in the `key` bucket).
    pub revision: i64,
    /// Entries in all buckets (etcdutl 3.4/3.5 "total keys").
    pub total_keys: u64,
    /// Database size (pages in use × page size), as etcdutl's "total size".
    pub total_size: u64,
    /// The file's size on disk.
    pub file_size: u64,
    /// How the file is stored (`zstd`: decompressed to read it).
    pub compression: Compression,
    /// The snapshot's size uncompressed (the file's size when it is not compressed).
    pub snapshot_size: u64,
    /// The sha256 trailer (of the uncompressed stream).
    pub sha256_trailer: Trailer,
    /// Top-level buckets.
    pub buckets: Vec<String>,
    /// Page size.
    pub page_size: u32,
    /// Free pages.
    pub free_pages: u64,
}

struct Hasher {
    crc: u32,
    total: u64,
    in_key: bool,
    last_key: Option<Vec<u8>>,
}

impl Visitor for Hasher {
    fn bucket(&mut self, name: &[u8]) -> Result<(), BoltError> {
        self.crc = crc32c::crc32c_append(self.crc, name);
        self.in_key = name == b"key";
        Ok(())
    }
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), BoltError> {
        self.crc = crc32c::crc32c_append(self.crc, key);
        if let Some(v) = value {
            self.crc = crc32c::crc32c_append(self.crc, v);
        }
        self.total += 1;
        if self.in_key {
            self.last_key = Some(key.to_vec());
        }
        Ok(())
    }
}

/// Errors of a snapshot file, mapped to the crate error with the file's path.
fn file_error(path: &Path, e: BoltError) -> Error {
    match e {
        BoltError::Io { source, .. } => {
            Error::ReadFile { input: true, what: "snapshot", path: path.to_path_buf(), source }
        }
        BoltError::Format(f) => Error::Corrupt { path: path.to_path_buf(), reason: f.to_string() },
    }
}

/// Hashes the first `len` bytes of a file with sha256 and reads the 32 bytes after them.
///
/// A reader thread copies the file into a few recycled 1 MiB buffers while this thread hashes
/// the ones filled: sha256 (about 1.7 GB/s with the CPU's SHA extensions) is then the only cost
/// left, instead of sha256 plus the copy out of the page cache. Memory: four buffers.
fn sha256_prefix(path: &Path, len: u64) -> std::io::Result<([u8; 32], [u8; 32])> {
    const BUF: usize = 1 << 20;
    const BUFFERS: usize = 4;
    let mut f = std::fs::File::open(path)?;
    let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(BUFFERS);
    let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    for _ in 0..BUFFERS {
        let _ = empty_tx.send(Vec::with_capacity(BUF));
    }
    let reader = std::thread::spawn(move || -> std::io::Result<[u8; 32]> {
        let mut left = len;
        while left > 0 {
            // The hasher hung up (it failed): stop.
            let Ok(mut b) = empty_rx.recv() else { return Ok([0; 32]) };
            let n = (BUF as u64).min(left) as usize;
            b.resize(n, 0);
            if let Err(e) = f.read_exact(&mut b) {
                let _ = full_tx.send(Err(e));
                return Ok([0; 32]);
            }
            left -= n as u64;
            if full_tx.send(Ok(b)).is_err() {
                return Ok([0; 32]);
            }
        }
        drop(full_tx);
        let mut trailer = [0u8; 32];
        f.read_exact(&mut trailer)?;
        Ok(trailer)
    });
    let mut h = Sha256::new();
    let mut failed = None;
    for b in full_rx {
        match b {
            Ok(b) => {
                h.update(&b);
                let _ = empty_tx.send(b);
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(empty_tx);
    let trailer = reader.join().map_err(|_| std::io::Error::other("the reader thread panicked"))?;
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((h.finalize().into(), trailer?))
}

/// The sha256 trailer of a file of `size` bytes: absent, valid or mismatching. A compressed
/// snapshot's is checked over its decompressed stream.
pub fn check_trailer(path: &Path, size: u64) -> Result<Trailer> {
    let read_err = |source| Error::ReadFile { input: true, what: "snapshot", path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    if crate::compress::detect(&file).map_err(read_err)? == Compression::Zstd {
        return Ok(crate::compress::check_trailer(path)?.0);
    }
    drop(file);
    if !has_trailer(size) {
        return Ok(Trailer::Absent);
    }
    let (sum, trailer) = sha256_prefix(path, size - TRAILER).map_err(|source| Error::ReadFile {
        input: true,
        what: "snapshot",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(if sum == trailer { Trailer::Valid } else { Trailer::Mismatch })
}

/// A snapshot opened for reading: its database, and, for a compressed one, the trailer
/// verdict reached while decompressing it.
#[derive(Debug)]
pub struct Opened {
    /// The database (of the decompressed copy, for a compressed file).
    pub db: Db,
    /// The file's size on disk.
    pub file_size: u64,
    /// The snapshot's size uncompressed.
    pub len: u64,
    /// How the file is stored.
    pub compression: Compression,
    /// The trailer, when already checked (compressed files: over the decompressed stream).
    pub trailer: Option<Trailer>,
}

/// Opens a snapshot, plain or compressed (a compressed one is decompressed into a nameless
/// temporary file, its trailer checked on the way).
pub fn open(path: &Path) -> Result<Opened> {
    let read_err = |source| Error::ReadFile { input: true, what: "snapshot", path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let md = file.metadata().map_err(read_err)?;
    if md.is_dir() {
        return Err(read_err(std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    match crate::compress::detect(&file).map_err(read_err)? {
        Compression::None => {
            let db = Db::from_file(file, path).map_err(|e| file_error(path, e))?;
            Ok(Opened { db, file_size: md.len(), len: md.len(), compression: Compression::None, trailer: None })
        }
        Compression::Zstd => {
            drop(file);
            let d = crate::compress::decompress(path)?;
            let db = Db::from_file(d.file, path).map_err(|e| file_error(path, e))?;
            Ok(Opened { db, file_size: md.len(), len: d.len, compression: Compression::Zstd, trailer: Some(d.trailer) })
        }
    }
}

impl Opened {
    /// The trailer: the one already checked, else checked now on a second thread (`check`),
    /// else only reported present.
    fn trailer_thread(&self, path: &Path, check: bool) -> std::thread::JoinHandle<Result<Trailer>> {
        let known = self.trailer;
        let (p, size) = (path.to_path_buf(), self.len);
        std::thread::spawn(move || match known {
            Some(t) => Ok(t),
            None if check => check_trailer(&p, size),
            None if has_trailer(size) => Ok(Trailer::Unchecked),
            None => Ok(Trailer::Absent),
        })
    }
}

/// `snapshot status`: walks the whole file once (checking its structure) and hashes it as
/// etcdutl does; checks the sha256 trailer on a second thread meanwhile.
pub fn status(path: &Path) -> Result<Status> {
    status_with(path, true)
}

/// `snapshot status`; with `check_trailer = false` the sha256 trailer is only reported as
/// present (`Valid` is not claimed: it reads `Absent` or `Unchecked`), and the file is read
/// once instead of twice, as `etcdutl snapshot status` reads it.
pub fn status_with(path: &Path, check: bool) -> Result<Status> {
    let opened = open(path)?;
    let trailer = opened.trailer_thread(path, check);
    let db = &opened.db;
    let mut h = Hasher { crc: 0, total: 0, in_key: false, last_key: None };
    let summary: Summary = walk(db, &mut h).map_err(|e| file_error(path, e))?;
    let trailer = trailer.join().map_err(|_| Error::Usage("internal: trailer thread panicked".into()))??;
    let revision = match &h.last_key {
        None => 0,
        Some(k) if k.len() >= 17 => i64::from_be_bytes(k[..8].try_into().unwrap_or([0; 8])),
        Some(k) => {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("the key bucket holds a {}-byte key; etcd revision keys are 17 bytes", k.len()),
            })
        }
    };
    Ok(Status {
        hash: format!("{:x}", h.crc),
        hash_u32: h.crc,
        revision,
        total_keys: h.total,
        total_size: db.size(),
        file_size: opened.file_size,
        compression: opened.compression,
        snapshot_size: opened.len,
        sha256_trailer: trailer,
        buckets: summary.buckets,
        page_size: db.meta().page_size,
        free_pages: summary.free,
    })
}

/// The buckets etcd cannot start without.
pub const REQUIRED_BUCKETS: &[&str] = &["key", "meta"];

/// What `snapshot verify` found in a sound file.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    /// The file verified.
    pub path: PathBuf,
    /// How the file is stored.
    pub compression: Compression,
    /// The sha256 trailer (of the uncompressed stream).
    pub sha256_trailer: Trailer,
    /// The walk's summary.
    pub summary: Summary,
    /// The store's revision.
    pub revision: i64,
}

/// etcd's bucket layout: what makes a sound bbolt file an etcd v3 database. The one rule for
/// `verify` and for every restore, `--skip-hash-check` or not.
pub fn check_layout(path: &Path, buckets: &[String]) -> Result<()> {
    for b in REQUIRED_BUCKETS {
        if !buckets.iter().any(|x| x == b) {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("bucket {b:?} missing: not an etcd database (buckets: {})", buckets.join(", ")),
            });
        }
    }
    if !buckets.iter().any(|x| x == "members") {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "bucket \"members\" missing: not an etcd v3 database".into(),
        });
    }
    Ok(())
}

/// `snapshot verify`: the trailer hash (on a second thread) beside the full structural walk and
/// etcd's bucket layout, so the file costs the longer of the two rather than their sum. A
/// trailer mismatch is named first (a truncated or corrupted download is named as such), then
/// the walk's first problem.
pub fn verify(path: &Path) -> Result<Verified> {
    verify_opened(path, &open(path)?)
}

/// [`verify`] of a snapshot already open.
pub fn verify_opened(path: &Path, opened: &Opened) -> Result<Verified> {
    let trailer = opened.trailer_thread(path, true);
    let mut h = Hasher { crc: 0, total: 0, in_key: false, last_key: None };
    let walked = walk(&opened.db, &mut h).map_err(|e| file_error(path, e));
    let trailer = trailer.join().map_err(|_| Error::Internal("the trailer thread panicked".into()))??;
    if trailer == Trailer::Mismatch {
        return Err(Error::Corrupt {
            path: path.to_path_buf(),
            reason: "sha256 mismatch: snapshot is corrupt or truncated".into(),
        });
    }
    let summary = walked?;
    check_layout(path, &summary.buckets)?;
    let revision = h
        .last_key
        .as_ref()
        .filter(|k| k.len() >= 17)
        .map(|k| i64::from_be_bytes(k[..8].try_into().unwrap_or([0; 8])))
        .unwrap_or(0);
    Ok(Verified {
        path: path.to_path_buf(),
        compression: opened.compression,
        sha256_trailer: trailer,
        summary,
        revision,
    })
}

/// The result of `snapshot save`.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    /// The file written.
    pub path: PathBuf,
    /// The member it was streamed from.
    pub member: String,
    /// That member's ID.
    #[serde(serialize_with = "crate::cluster::ser_hex")]
    pub member_id: u64,
    /// The endpoint.
    pub endpoint: String,
    /// Revision of the snapshot.
    pub revision: i64,
    /// The snapshot's bytes (trailer included), uncompressed.
    pub size: u64,
    /// How the file is stored.
    pub compression: Compression,
    /// The file's size on disk (less than `size` when compressed).
    pub file_size: u64,
    /// The sha256 trailer (hex), verified.
    pub sha256: String,
    /// How long it took.
    #[serde(rename = "duration_ms", with = "crate::util::duration_ms")]
    pub duration: Duration,
    /// Why a member outside the working quorum was used (`--member … --force`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced: Option<String>,
    /// `--dir … --keep N`: what retention kept and deleted after this save.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::backups::Pruned>,
}

/// Streams snapshot chunks into `FILE.part`, verifying etcd's sha256 trailer on the fly.
///
/// The `.part` is held under an exclusive lock for the writer's whole life: a second save to
/// the same path (a scheduled backup overlapping a manual one) is refused at once, and a
/// `.part` left by a save that was killed is taken over. The final name is given only to the
/// file this writer verified.
///
/// Compressed (`--compress zstd`), the verified `.part` is then compressed into `.part.zst`,
/// which is fsynced and read back (it must decompress to the verified stream) before it takes
/// the final name; the uncompressed `.part` is removed after. The directory holds both for that
/// while.
#[derive(Debug)]
pub struct PartWriter {
    final_path: PathBuf,
    part: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    sum: TrailerSum,
    overwrite: bool,
    compression: Compression,
    zpart: Option<PathBuf>,
}

/// What a finished [`PartWriter`] published.
#[derive(Debug, Clone)]
pub struct Published {
    /// The path.
    pub path: PathBuf,
    /// The sha256 trailer, hex.
    pub sha256: String,
    /// The database's revision.
    pub revision: i64,
    /// The snapshot's size (uncompressed).
    pub size: u64,
    /// The file's size on disk.
    pub file_size: u64,
}

impl PartWriter {
    /// Creates `FILE.part` (mode 0600) and locks it. Refuses an existing `FILE` unless
    /// `overwrite`, and anything at `FILE` that is not a regular file even then.
    pub fn create(path: &Path, overwrite: bool) -> Result<PartWriter> {
        if let Ok(md) = std::fs::symlink_metadata(path) {
            if let Some(kind) = not_regular(&md) {
                return Err(Error::Usage(format!(
                    "{} is {kind}: refusing to replace it with a snapshot; name a regular file to write",
                    path.display()
                )));
            }
            if !overwrite {
                return Err(Error::Usage(format!(
                    "{} already exists: pass --overwrite to replace it, or choose another name",
                    path.display()
                )));
            }
        }
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(Error::Usage(format!("directory {} does not exist: create it first", parent.display())));
        }
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".part");
        let part = path.with_file_name(name);
        let busy = || {
            Error::Refused(format!(
                "another snapshot save is writing {} right now: wait for it to finish, or save under another name",
                part.display()
            ))
        };
        let create = |path: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
        };
        let file = match create(&part) {
            Ok(f) => {
                f.try_lock().map_err(|_| busy())?;
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if let Some(kind) = std::fs::symlink_metadata(&part).ok().as_ref().and_then(not_regular) {
                    return Err(Error::Usage(format!(
                        "{} is {kind}: remove it or save under another name",
                        part.display()
                    )));
                }
                // Locked: a save is under way. Not locked: left by a save that was killed; its
                // contents were never verified, so it is taken over.
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&part)
                    .map_err(|source| Error::Io { action: format!("open {}", part.display()), source })?;
                f.try_lock().map_err(|_| busy())?;
                f.set_len(0).map_err(|source| Error::Io { action: format!("truncate {}", part.display()), source })?;
                f
            }
            Err(source) => return Err(Error::Io { action: format!("create {}", part.display()), source }),
        };
        let file = std::io::BufWriter::with_capacity(1 << 20, file);
        Ok(PartWriter {
            final_path: path.to_path_buf(),
            part,
            file: Some(file),
            sum: TrailerSum::new(),
            overwrite,
            compression: Compression::None,
            zpart: None,
        })
    }

    /// Stores the published file this way.
    pub fn compressed(mut self, c: Compression) -> PartWriter {
        self.compression = c;
        self
    }

    /// The `.part` path.
    pub fn part_path(&self) -> &Path {
        &self.part
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.sum.len()
    }

    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let f = self.file.as_mut().ok_or_else(|| Error::Usage("internal: write after finish".into()))?;
        f.write_all(chunk).map_err(|source| Error::Io { action: format!("write {}", self.part.display()), source })?;
        // Everything but the last 32 bytes seen so far goes into the hash.
        self.sum.update(chunk);
        Ok(())
    }

    /// Checks the trailer, fsyncs, renames to the final name and fsyncs the directory.
    /// On any failure the `.part` is removed.
    pub fn finish(self) -> Result<Published> {
        self.finish_named(None)
    }

    /// [`PartWriter::finish`], publishing under the name `name` gives for the verified
    /// database's revision (a snapshot directory's `PREFIX-TIME-REVISION.db`).
    /// `name` may refuse the revision (a snapshot directory holding a newer one): the `.part` is
    /// then removed and nothing is published.
    pub fn finish_as(self, name: &dyn Fn(i64) -> Result<PathBuf>) -> Result<Published> {
        self.finish_named(Some(name))
    }

    fn finish_named(mut self, name: Option<&dyn Fn(i64) -> Result<PathBuf>>) -> Result<Published> {
        let result = self.finish_inner(name);
        if result.is_err() {
            self.abort();
        }
        result
    }

    fn finish_inner(&mut self, name: Option<&dyn Fn(i64) -> Result<PathBuf>>) -> Result<Published> {
        let size = self.sum.len();
        let (sum, tail) = std::mem::take(&mut self.sum).finish();
        if size < TRAILER || tail[..] != sum[..] {
            return Err(Error::Corrupt {
                path: self.part.clone(),
                reason: "sha256 mismatch: snapshot is corrupt or truncated (the stream did not end with the hash of its contents)".into(),
            });
        }
        let file = self.file.take().ok_or_else(|| Error::Usage("internal: finish twice".into()))?;
        let file = file
            .into_inner()
            .map_err(|e| Error::Io { action: format!("write {}", self.part.display()), source: e.into_error() })?;
        file.sync_all().map_err(|source| Error::Io { action: format!("fsync {}", self.part.display()), source })?;
        // The database must open (valid meta page) before it takes the final name.
        let db = Db::open(&self.part).map_err(|e| file_error(&self.part, e))?;
        let rev = revision(&db).map_err(|e| file_error(&self.part, e))?;
        if let Some(name) = name {
            self.final_path = name(rev)?;
        }
        drop(db);
        // Publish only the file this writer wrote: the `.part` name must still be our inode.
        {
            use std::os::unix::fs::MetadataExt;
            let ours = file
                .metadata()
                .map_err(|source| Error::Io { action: format!("stat {}", self.part.display()), source })?;
            let named = std::fs::symlink_metadata(&self.part)
                .map_err(|source| Error::Io { action: format!("stat {}", self.part.display()), source })?;
            if (ours.dev(), ours.ino()) != (named.dev(), named.ino()) {
                return Err(Error::Refused(format!(
                    "{} was replaced by another process while this save wrote it: nothing was published; save again",
                    self.part.display()
                )));
            }
        }
        // The file that takes the final name: the verified .part, or its compressed copy.
        let (from, file_size) = match self.compression {
            Compression::None => (self.part.clone(), size),
            Compression::Zstd => {
                let mut z = self.part.as_os_str().to_os_string();
                z.push(".zst");
                let z = PathBuf::from(z);
                self.zpart = Some(z.clone());
                let n = crate::compress::compress(&self.part, &z, &sum)?;
                (z, n)
            }
        };
        let publish = if self.overwrite {
            std::fs::rename(&from, &self.final_path)
        } else {
            // No replace: a file that appeared under the final name meanwhile is kept.
            std::fs::hard_link(&from, &self.final_path).and_then(|()| std::fs::remove_file(&from))
        };
        publish.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Refused(format!(
                    "{} appeared while this save ran (another save?): kept it; pass --overwrite to replace it",
                    self.final_path.display()
                ))
            } else {
                Error::Io { action: format!("rename {} to {}", from.display(), self.final_path.display()), source }
            }
        })?;
        drop(file);
        if self.compression != Compression::None {
            // Published compressed: the uncompressed .part has served.
            self.zpart = None;
            std::fs::remove_file(&self.part)
                .map_err(|source| Error::Io { action: format!("remove {}", self.part.display()), source })?;
        }
        let dir = self.final_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error::Io { action: format!("fsync directory {}", dir.display()), source })?;
        Ok(Published {
            path: self.final_path.clone(),
            sha256: sum.iter().map(|b| format!("{b:02x}")).collect(),
            revision: rev,
            size,
            file_size,
        })
    }

    /// Removes the `.part` file (and its compressed copy).
    pub fn abort(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.part);
        if let Some(z) = self.zpart.take() {
            let _ = std::fs::remove_file(z);
        }
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        // Still open: the save did not finish; leave nothing behind.
        if self.file.is_some() {
            self.abort();
        }
    }
}

/// The revision of an etcd database: main revision of the last key in the `key` bucket.
pub fn revision(db: &Db) -> std::result::Result<i64, BoltError> {
    Ok(db
        .last_key(b"key")?
        .filter(|k| k.len() >= 17)
        .map(|k| i64::from_be_bytes(k[..8].try_into().unwrap_or([0; 8])))
        .unwrap_or(0))
}

/// Options of `snapshot save`.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// The member to stream from (name or ID); default: the healthiest voter that is not the leader.
    pub member: Option<String>,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Give up when no data arrives for this long.
    pub stall_timeout: Option<Duration>,
    /// Overall deadline (only when `--command-timeout` was given explicitly).
    pub deadline: Option<Duration>,
    /// How to store the file.
    pub compression: Compression,
    /// Stream from `member` even when it is not in the working quorum.
    pub force: bool,
}

/// The member a snapshot streams from, its client URL, and why it was taken although it is not
/// in quorum (`--member … --force`).
pub type Picked = (Member, String, Option<String>);

/// Picks the member to stream from, among the voters in the working quorum only
/// ([`crate::quorum`]): a member cut off from its peers or with no leader still streams a
/// snapshot, of an old revision. The named one must be in quorum unless `force`; unnamed, the
/// voter in quorum that is not the leader with the highest applied index (least load on the
/// leader), else the leader.
pub async fn pick_member(session: &Session, named: Option<&str>, force: bool) -> Result<Picked> {
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    if let Some(key) = named {
        let m = find_member(&list.members, key)?.clone();
        let url = m.client_urls.first().cloned().ok_or_else(|| {
            Error::Refused(format!("member {} has no client URL: it has never started", crate::util::member_id(m.id)))
        })?;
        let st = statuses.iter().find(|s| s.member.id == m.id);
        let forced = match st {
            Some(s) if s.in_quorum() => None,
            Some(s) if s.member.is_learner && s.answered() => None,
            Some(s) => {
                let why = s.why_not();
                if !force {
                    return Err(Error::Refused(format!(
                        "member {why}: it is not part of a working quorum, so its snapshot may be stale; save from another member (omit --member to pick one in quorum), or pass --force to take it anyway"
                    )));
                }
                Some(format!("--force: member {why}; the snapshot may be behind the cluster"))
            }
            None => None,
        };
        return Ok((m, url, forced));
    }
    let mut best: Option<(&Member, String, u64, bool)> = None;
    for st in statuses.iter().filter(|s| s.in_quorum()) {
        let (Ok(s), Some(url)) = (&st.status, &st.url) else { continue };
        let is_leader = s.leader == st.member.id;
        let applied = s.raft_applied_index;
        let better = match &best {
            None => true,
            Some((_, _, a, l)) => (*l && !is_leader) || (*l == is_leader && applied > *a),
        };
        if better {
            best = Some((&st.member, url.clone(), applied, is_leader));
        }
    }
    best.map(|(m, u, _, _)| (m.clone(), u, None)).ok_or_else(|| {
        Error::Refused(format!(
            "no voting member is part of a working quorum: cannot take a snapshot that is known to be current ({})",
            statuses.iter().filter(|s| !s.member.is_learner).map(|s| s.why_not()).collect::<Vec<_>>().join("; ")
        ))
    })
}

/// [`save`] that a signal (Ctrl-C, SIGTERM) stops cleanly: the `.part` is removed and the
/// error says which signal.
pub async fn save_interruptible(
    session: &Session,
    target: &Target,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    crate::util::catch_signals();
    tokio::select! {
        r = save_to(session, target, opts, progress) => r,
        _ = crate::util::until_interrupted() => Err(Error::Refused(format!(
            "interrupted by {}: no snapshot written (the .part file was removed)",
            crate::util::interrupting_signal().unwrap_or("a signal")
        ))),
    }
}

/// Where `snapshot save` writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// This file.
    File(PathBuf),
    /// `DIR/PREFIX-TIME-REVISION.db`, then the directory pruned to the newest N verified
    /// snapshots of PREFIX when N is given.
    Dir { dir: PathBuf, prefix: String, keep: Option<usize> },
}

/// [`save`] into a file or a snapshot directory.
pub async fn save_to(
    session: &Session,
    target: &Target,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    match target {
        Target::File(path) => save(session, path, opts, progress).await,
        Target::Dir { dir, prefix, keep } => {
            crate::backups::check_prefix(prefix)?;
            if let Some(n) = keep {
                crate::backups::check_keep(*n)?;
            }
            if !dir.is_dir() {
                return Err(Error::Usage(format!("directory {} does not exist: create it first", dir.display())));
            }
            let stamp = crate::backups::stamp_now();
            let first = dir.join(format!("{prefix}-{stamp}.db"));
            let (d, p, st, compression) = (dir.clone(), prefix.clone(), stamp.clone(), opts.compression);
            let named: NameFn = Box::new(move |rev: i64| {
                // A snapshot older than one the directory already holds comes from a member
                // that is behind: it must never become the newest name (--latest, retention).
                crate::backups::refuse_older(&d, &p, rev)?;
                Ok(d.join(
                    crate::backups::Name { prefix: p.clone(), stamp: st.clone(), revision: rev, compression }
                        .file_name(),
                ))
            });
            let mut saved = save_named(session, &first, Some(named), opts, progress).await?;
            // Only after a verified save: a failed one never prunes.
            if let Some(n) = keep {
                // The snapshot is saved whatever retention then meets: say so.
                let pruned = crate::backups::prune(dir, prefix, *n, false).map_err(|e| Error::Stopped {
                    what: "snapshot retention",
                    cause: Box::new(e),
                    done: format!("the snapshot was saved as {}", saved.path.display()),
                    next: format!(
                        "kubectl etcd restore snapshot prune {} --keep {n} --name-prefix {prefix}",
                        dir.display()
                    ),
                })?;
                saved.retention = Some(pruned);
            }
            Ok(saved)
        }
    }
}

/// `snapshot save`: streams a snapshot from one member into `path`.
pub async fn save(
    session: &Session,
    path: &Path,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    save_named(session, path, None, opts, progress).await
}

/// The final name for a verified snapshot's revision.
type NameFn = Box<dyn Fn(i64) -> Result<PathBuf> + Send>;

async fn save_named(
    session: &Session,
    path: &Path,
    name: Option<NameFn>,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    let start = Instant::now();
    let mut writer = PartWriter::create(path, opts.overwrite)?.compressed(opts.compression);
    let (member, url, forced) = pick_member(session, opts.member.as_deref(), opts.force).await?;
    if let Some(f) = &forced {
        eprintln!("warning: {f}");
    }
    session.dialer.probe(&url).await?;
    let mut client = session.dialer.client(&url).await?;
    let stall = opts.stall_timeout.unwrap_or(Duration::from_secs(30));
    let stream = async {
        let mut stream = call(&url, "snapshot", stall, client.snapshot()).await?;
        // What etcd announced bounds what is read: an endless stream stops there.
        let mut bound = crate::limits::SnapshotStream::new();
        loop {
            let total = bound.total();
            let msg = match tokio::time::timeout(stall, stream.message()).await {
                Err(_) => return Err(Error::Transport(TransportError::timed_out(&url, "the snapshot stream", stall))),
                Ok(Err(e)) => {
                    let mut t = TransportError::rpc(&url, e);
                    if t.detail.contains("h2 protocol error")
                        || t.detail.contains("connection")
                        || t.detail.contains("broken pipe")
                    {
                        t.detail = format!(
                            "the member stopped sending after {total} bytes (it was killed, restarted or lost the network); no snapshot was written: save again, from another member with --member if this one is down"
                        );
                    }
                    return Err(Error::Transport(t));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(m))) => m,
            };
            let blob = msg.blob();
            bound.accept(blob.len() as u64, msg.remaining_bytes()).map_err(|why| {
                let class = FailureClass::Network("snapshot stream past its size".into());
                TransportError::new(&url, class, format!("{why}; no snapshot was written"))
            })?;
            // Writing is quick next to the network; keep it on this task.
            writer.write(blob)?;
            progress(writer.written().min(bound.total()), bound.total());
        }
        let total = bound.total();
        // etcd announces the database size, then sends the sha256 trailer after it.
        if total != 0 && writer.written() != total + TRAILER {
            return Err(Error::Corrupt {
                path: writer.part_path().to_path_buf(),
                reason: format!(
                    "the stream ended after {} of {} bytes: snapshot is truncated",
                    writer.written(),
                    total + TRAILER
                ),
            });
        }
        Ok(())
    };
    match opts.deadline {
        Some(d) => tokio::time::timeout(d, stream)
            .await
            .map_err(|_| Error::Transport(TransportError::timed_out(&url, "the snapshot (--command-timeout)", d)))??,
        None => stream.await?,
    }
    // Compressing is file work: off the runtime's threads.
    let p = tokio::task::spawn_blocking(move || match name {
        Some(name) => writer.finish_as(&*name),
        None => writer.finish(),
    })
    .await
    .map_err(Error::from_join)??;
    Ok(Saved {
        forced,
        retention: None,
        path: p.path,
        member: member.name.clone(),
        member_id: member.id,
        endpoint: url,
        revision: p.revision,
        size: p.size,
        compression: opts.compression,
        file_size: p.file_size,
        sha256: p.sha256,
        duration: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bbolt::writer::DbWriter;

    /// A small database with a `key` bucket and etcd's sha256 trailer, as a Snapshot stream
    /// brings it.
    fn stream(dir: &Path) -> Vec<u8> {
        let path = dir.join("src.db");
        let mut w = DbWriter::create(&path, 4096).unwrap();
        {
            let mut b = w.bucket(b"key", 0);
            for rev in 1..=200u64 {
                let mut k = rev.to_be_bytes().to_vec();
                k.push(b'_');
                k.extend_from_slice(&0u64.to_be_bytes());
                b.put(&k, &[9u8; 64]).unwrap();
            }
            b.finish().unwrap();
        }
        w.finish(0).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let sum = Sha256::digest(&bytes);
        bytes.extend_from_slice(&sum);
        bytes
    }

    fn publish(target: &Path, bytes: &[u8]) -> Result<Published> {
        let mut w = PartWriter::create(target, false)?;
        for chunk in bytes.chunks(1000) {
            w.write(chunk)?;
        }
        w.finish()
    }

    /// One byte changed in transit (the trailer no longer the hash of what came before it):
    /// refused as corrupt, and neither the file nor its `.part` is left.
    #[test]
    fn a_stream_whose_hash_does_not_match_is_never_published() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = stream(dir.path());
        let good = dir.path().join("good.db");
        let p = publish(&good, &bytes).unwrap();
        assert_eq!((p.revision, std::fs::read(&good).unwrap()), (200, bytes.clone()));
        for at in [5000, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let target = dir.path().join(format!("bad-{at}.db"));
            let e = publish(&target, &bad).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            assert!(e.to_string().contains("sha256 mismatch"), "{e}");
            assert!(!target.exists() && !dir.path().join(format!("bad-{at}.db.part")).exists());
        }
    }
}
