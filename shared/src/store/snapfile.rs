//! A snapshot file: etcd's bbolt database followed by its sha256 trailer. `status` (the same
//! figures as `etcdutl snapshot status`), `verify` (the trailer and a full structural walk), and
//! the durable writer every save goes through (`.part`, fsynced, verified, then named).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::base::fsio::not_regular;
use crate::error::{Error, Result};
use crate::store::bbolt::check::{walk, Summary, Visitor};
use crate::store::bbolt::{BoltError, Db};
use crate::store::compress::{Compression, TrailerSum};
use crate::store::trailer::{has_trailer, Trailer, TRAILER};

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
    if crate::store::compress::detect(&file).map_err(read_err)? == Compression::Zstd {
        return Ok(crate::store::compress::check_trailer(path)?.0);
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
    match crate::store::compress::detect(&file).map_err(read_err)? {
        Compression::None => {
            let db = Db::from_file(file, path).map_err(|e| file_error(path, e))?;
            Ok(Opened { db, file_size: md.len(), len: md.len(), compression: Compression::None, trailer: None })
        }
        Compression::Zstd => {
            drop(file);
            let d = crate::store::compress::decompress(path)?;
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
    durable: bool,
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
            durable: true,
        })
    }

    /// `false`: the file is a private temporary copy that outlives no upload (every `--dir` a
    /// bucket): it is verified and named as ever but not fsynced, its durability being the
    /// store's once the upload completes.
    pub fn durable(mut self, durable: bool) -> PartWriter {
        self.durable = durable;
        self
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
        if self.durable {
            file.sync_all().map_err(|source| Error::Io { action: format!("fsync {}", self.part.display()), source })?;
        }
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
                let n = crate::store::compress::compress(&self.part, &z, &sum)?;
                (z, n)
            }
        };
        let publish = if self.overwrite {
            std::fs::rename(&from, &self.final_path)
        } else {
            // No replace: a file that appeared under the final name meanwhile is kept.
            std::fs::hard_link(&from, &self.final_path).and_then(|()| std::fs::remove_file(&from))
        };
        let named_by_revision = name.is_some();
        publish.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists && named_by_revision {
                // A snapshot directory's name is the second and the revision: another save of
                // the same revision in the same second, before or during this one.
                Error::Refused(format!(
                    "{} already exists (another save of revision {rev} in the same second): kept it; this save added nothing",
                    self.final_path.display()
                ))
            } else if source.kind() == std::io::ErrorKind::AlreadyExists {
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
        if self.durable {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|source| Error::Io { action: format!("fsync directory {}", dir.display()), source })?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bbolt::writer::DbWriter;

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

    /// A snapshot directory's name (second and revision) already taken: refused with what
    /// happened, the file kept, no `.part` left, and no advice to pass --overwrite (which a
    /// directory save does not take).
    #[test]
    fn a_directory_name_already_taken_is_kept_and_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = stream(dir.path());
        let named = dir.path().join("etcd-snapshot-20261206T140000Z-200.db");
        std::fs::write(&named, b"the earlier one").unwrap();
        let target = dir.path().join("etcd-snapshot.part-target");
        let mut w = PartWriter::create(&target, false).unwrap();
        w.write(&bytes).unwrap();
        let e =
            w.finish_as(&|rev| Ok(dir.path().join(format!("etcd-snapshot-20261206T140000Z-{rev}.db")))).unwrap_err();
        let said = e.to_string();
        assert!(said.contains("already exists (another save of revision 200 in the same second)"), "{said}");
        assert!(!said.contains("--overwrite"), "{said}");
        assert_eq!(std::fs::read(&named).unwrap(), b"the earlier one");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(!left.iter().any(|n| n.to_string_lossy().ends_with(".part")), "{left:?}");
    }
}
