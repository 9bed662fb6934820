//! zstd-compressed snapshots (`snapshot save --compress zstd`).
//!
//! A compressed snapshot is one zstd frame (with zstd's content checksum and size) holding the
//! snapshot exactly as etcd streamed it: the bbolt database followed by etcd's 32-byte sha256
//! trailer. Readers tell it by its first four bytes (zstd's magic number), never by its name, so
//! `status`, `verify`, `ls`, `apply` and `restore node` take either kind of file; the trailer is
//! always checked against the *uncompressed* stream.
//!
//! bbolt is read by page, so a database cannot be walked inside a zstd stream: readers that need
//! the database decompress it into an unlinked temporary file beside the snapshot (`$TMPDIR`
//! when that directory is read-only). The file has no name, so nothing is left behind even when
//! the process is killed, and memory stays flat (one buffer and zstd's window).

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::trailer::{has_trailer, Trailer, TRAILER};

/// zstd's frame magic number, as it is stored (little-endian 0xFD2FB528).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// zstd's level for snapshots: its default, fast and within a few per cent of the best ratio on
/// etcd's databases.
pub const LEVEL: i32 = 3;

const BUF: usize = 1 << 20;

/// How a snapshot file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As etcd streams it.
    #[default]
    None,
    /// One zstd frame.
    Zstd,
}

impl Compression {
    /// The file name suffix a snapshot directory gives it (after `.db`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Zstd => ".zst",
        }
    }
}

/// How a file is stored, from its first bytes.
pub fn detect(file: &File) -> std::io::Result<Compression> {
    let mut head = [0u8; 4];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) if head == ZSTD_MAGIC => Ok(Compression::Zstd),
        Ok(()) => Ok(Compression::None),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Compression::None),
        Err(e) => Err(e),
    }
}

/// The sha256 of everything but the last 32 bytes of a stream, and those 32 bytes: etcd's
/// trailer check, fed chunk by chunk.
#[derive(Debug, Clone, Default)]
pub struct TrailerSum {
    hasher: Sha256,
    tail: Vec<u8>,
    len: u64,
}

impl TrailerSum {
    /// A new sum.
    pub fn new() -> TrailerSum {
        TrailerSum { hasher: Sha256::new(), tail: Vec::with_capacity(2 * TRAILER as usize), len: 0 }
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        let t = TRAILER as usize;
        if chunk.len() >= t {
            // Everything held back so far, and all but the chunk's last 32 bytes, are content.
            self.hasher.update(&self.tail);
            let cut = chunk.len() - t;
            self.hasher.update(&chunk[..cut]);
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[cut..]);
        } else {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > t {
                let cut = self.tail.len() - t;
                self.hasher.update(&self.tail[..cut]);
                self.tail.drain(..cut);
            }
        }
    }

    /// Bytes fed.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sha256 of the content and the last 32 bytes (fewer when the stream was shorter).
    pub fn finish(self) -> ([u8; 32], Vec<u8>) {
        (self.hasher.finalize().into(), self.tail)
    }

    /// The trailer's verdict for a stream of this length.
    pub fn trailer(self) -> Trailer {
        if !has_trailer(self.len) {
            return Trailer::Absent;
        }
        let (sum, tail) = self.finish();
        if tail[..] == sum[..] {
            Trailer::Valid
        } else {
            Trailer::Mismatch
        }
    }
}

fn read_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::ReadFile { input: true, what: "snapshot", path: path.to_path_buf(), source }
}

/// A decompression failure: a damaged or truncated zstd stream is corruption; anything else
/// (the disk) is a read error.
fn decode_error(path: &Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::Other | std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            if e.raw_os_error().is_none() =>
        {
            Error::Corrupt {
                path: path.to_path_buf(),
                reason: format!("zstd: {e}: the compressed snapshot is damaged or truncated"),
            }
        }
        _ => read_error(path)(e),
    }
}

/// Reads the whole zstd stream of `path`, giving each decompressed chunk to `sink`; returns
/// the trailer sum of the decompressed stream.
fn decode(path: &Path, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<TrailerSum> {
    let file = File::open(path).map_err(read_error(path))?;
    let mut dec = zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUF, file))
        .map_err(|e| decode_error(path, e))?;
    let mut sum = TrailerSum::new();
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(decode_error(path, e)),
        };
        sum.update(&buf[..n]);
        sink(&buf[..n])?;
    }
    Ok(sum)
}

/// The sha256 trailer of a compressed snapshot, checked over its decompressed stream (which is
/// read and dropped); and that stream's length.
pub fn check_trailer(path: &Path) -> Result<(Trailer, u64)> {
    let sum = decode(path, &mut |_| Ok(()))?;
    let len = sum.len();
    Ok((sum.trailer(), len))
}

/// The decompressed stream's own sha256 trailer bytes (the last 32 bytes) when it has one,
/// else the sha256 of the whole stream: what identifies the snapshot whatever its storage.
pub fn identity(path: &Path) -> Result<[u8; 32]> {
    if let Some(t) = cached_identity(path) {
        return Ok(t);
    }
    let sum = decode(path, &mut |_| Ok(()))?;
    if has_trailer(sum.len()) {
        let (_, tail) = sum.finish();
        let mut t = [0u8; 32];
        t.copy_from_slice(&tail);
        return Ok(t);
    }
    // No trailer (a compressed copy of member/snap/db): the hash of all of it.
    let mut whole = Sha256::new();
    decode(path, &mut |c| {
        whole.update(c);
        Ok(())
    })?;
    Ok(whole.finalize().into())
}

/// A compressed snapshot decompressed into an unlinked temporary file.
#[derive(Debug)]
pub struct Decompressed {
    /// The decompressed snapshot (no name on disk), open for reading.
    pub file: File,
    /// Its length (trailer included).
    pub len: u64,
    /// Its sha256 trailer, checked while decompressing.
    pub trailer: Trailer,
}

/// Opens a nameless read-write file in `dir` (O_TMPFILE), or, on a file system without it, a
/// named one that is unlinked at once.
pub fn nameless_in(dir: &Path) -> std::io::Result<File> {
    match std::fs::OpenOptions::new().read(true).write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir) {
        Ok(f) => Ok(f),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)) => {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = dir.join(format!(".kubectl-etcd-unzstd-{}-{n}", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&p)?;
            std::fs::remove_file(&p)?;
            Ok(f)
        }
        Err(e) => Err(e),
    }
}

/// Where a compressed snapshot is decompressed: beside it, else `$TMPDIR` (or /tmp).
fn temp_dirs(path: &Path) -> Vec<PathBuf> {
    let beside = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let tmp = std::env::temp_dir();
    if tmp == beside {
        vec![beside]
    } else {
        vec![beside, tmp]
    }
}

/// What identifies a compressed file's contents for [`decompress`]'s cache: device, inode,
/// size, and modification and change times (a file rewritten or replaced differs in one).
type FileKey = (u64, u64, u64, i64, i64, i64, i64);

fn file_key(path: &Path) -> Option<FileKey> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).ok()?;
    Some((md.dev(), md.ino(), md.size(), md.mtime(), md.mtime_nsec(), md.ctime(), md.ctime_nsec()))
}

/// The last file [`decompress`] decompressed, kept for the rest of the process: `restore node`
/// reads one compressed snapshot several times (its members, its identity, the check before
/// etcd is stopped, the restore) and decompresses it once. One entry: at most one extra
/// uncompressed copy is held (nameless, so it is gone when the process ends).
static LAST: std::sync::Mutex<Option<Cached>> = std::sync::Mutex::new(None);

/// [`LAST`]'s entry.
struct Cached {
    key: FileKey,
    file: File,
    len: u64,
    trailer: Trailer,
}

/// Decompresses `path` into an unlinked temporary file, checking the sha256 trailer of the
/// decompressed stream on the way (once per process for the same unchanged file: later calls
/// share the first one's temporary file, which nothing writes to).
pub fn decompress(path: &Path) -> Result<Decompressed> {
    let key = file_key(path);
    if let (Some(key), Ok(last)) = (key, LAST.lock()) {
        if let Some(c) = last.as_ref().filter(|c| c.key == key) {
            if let Ok(file) = c.file.try_clone() {
                return Ok(Decompressed { file, len: c.len, trailer: c.trailer });
            }
        }
    }
    let d = decompress_uncached(path)?;
    if let (Some(key), Ok(mut last), Ok(f)) = (key, LAST.lock(), d.file.try_clone()) {
        *last = Some(Cached { key, file: f, len: d.len, trailer: d.trailer });
    }
    Ok(d)
}

/// [`identity`] from [`decompress`]'s cache, when it holds this file.
fn cached_identity(path: &Path) -> Option<[u8; 32]> {
    use std::os::unix::fs::FileExt;
    let key = file_key(path)?;
    let last = LAST.lock().ok()?;
    let c = last.as_ref().filter(|c| c.key == key && has_trailer(c.len))?;
    let mut t = [0u8; 32];
    c.file.read_exact_at(&mut t, c.len - 32).ok()?;
    Some(t)
}

fn decompress_uncached(path: &Path) -> Result<Decompressed> {
    let dirs = temp_dirs(path);
    let mut last = None;
    let mut file = None;
    for d in &dirs {
        match nameless_in(d) {
            Ok(f) => {
                file = Some((f, d.clone()));
                break;
            }
            Err(e) => last = Some((d.clone(), e)),
        }
    }
    let Some((file, dir)) = file else {
        let (d, source) = last.unwrap_or_else(|| (PathBuf::from("."), std::io::Error::other("no directory")));
        return Err(Error::Io {
            action: format!(
                "create a temporary file in {} to decompress {} into (set TMPDIR to a writable directory)",
                d.display(),
                path.display()
            ),
            source,
        });
    };
    let mut w = std::io::BufWriter::with_capacity(BUF, file);
    let sum = decode(path, &mut |chunk| {
        w.write_all(chunk).map_err(|source| Error::Io {
            action: format!(
                "decompress {} into {} (it needs the uncompressed size free; set TMPDIR elsewhere)",
                path.display(),
                dir.display()
            ),
            source,
        })
    })?;
    let file = w.into_inner().map_err(|e| Error::Io {
        action: format!("decompress {} into {}", path.display(), dir.display()),
        source: e.into_error(),
    })?;
    let len = sum.len();
    Ok(Decompressed { file, len, trailer: sum.trailer() })
}

/// Compresses the verified snapshot `src` into a new file `dst` (mode 0600), fsyncs it, then
/// reads it back and checks that it decompresses to the same stream (length and sha256 of the
/// content `content_sha256`). Returns the compressed size. `dst` is removed on failure.
pub fn compress(src: &Path, dst: &Path, content_sha256: &[u8; 32]) -> Result<u64> {
    let result = compress_inner(src, dst, content_sha256);
    if result.is_err() {
        let _ = std::fs::remove_file(dst);
    }
    result
}

fn compress_inner(src: &Path, dst: &Path, content_sha256: &[u8; 32]) -> Result<u64> {
    let io = |action: String| move |source| Error::Io { action, source };
    let mut input = File::open(src).map_err(io(format!("open {}", src.display())))?;
    let len = input.metadata().map_err(io(format!("stat {}", src.display())))?.len();
    // A file left by a save that was killed (under the same .part lock) is replaced.
    match std::fs::symlink_metadata(dst) {
        Ok(md) if md.file_type().is_file() => {
            std::fs::remove_file(dst).map_err(io(format!("remove the stale {}", dst.display())))?
        }
        _ => {}
    }
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dst)
        .map_err(io(format!("create {}", dst.display())))?;
    let werr = || io(format!("write {}", dst.display()));
    let mut enc =
        zstd::stream::write::Encoder::new(std::io::BufWriter::with_capacity(BUF, out), LEVEL).map_err(werr())?;
    enc.include_checksum(true).map_err(werr())?;
    enc.include_contentsize(true).map_err(werr())?;
    enc.set_pledged_src_size(Some(len)).map_err(werr())?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(format!("read {}", src.display()))(e)),
        };
        enc.write_all(&buf[..n]).map_err(werr())?;
        if crate::base::signals::interrupted() {
            let sig = crate::base::signals::interrupting_signal().unwrap_or("a signal");
            return Err(Error::Refused(format!("interrupted by {sig}: no snapshot written")));
        }
    }
    let out = enc.finish().map_err(werr())?.into_inner().map_err(|e| werr()(e.into_error()))?;
    out.sync_all().map_err(io(format!("fsync {}", dst.display())))?;
    let size = out.metadata().map_err(io(format!("stat {}", dst.display())))?.len();
    drop(out);
    // Read back what is on disk: it must give the stream that was verified.
    let sum = decode(dst, &mut |_| Ok(()))?;
    let back = sum.len();
    let (got, _) = sum.finish();
    if back != len || &got != content_sha256 {
        return Err(Error::Corrupt {
            path: dst.to_path_buf(),
            reason: format!(
                "reading the compressed snapshot back gave {back} bytes of another content than the {len} bytes saved"
            ),
        });
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_sum_matches_whatever_the_chunking() {
        // A trailer follows content whose length is a multiple of 512.
        let content: Vec<u8> = (0..5120u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut stream = content.clone();
        stream.extend_from_slice(&Sha256::digest(&content));
        for chunk in [1, 7, 31, 32, 33, 512, 4096, 1 << 20] {
            let mut s = TrailerSum::new();
            for c in stream.chunks(chunk) {
                s.update(c);
            }
            assert_eq!(s.len(), stream.len() as u64);
            assert_eq!(s.trailer(), Trailer::Valid, "chunk {chunk}");
        }
        let mut bad = stream.clone();
        bad[100] ^= 1;
        let mut s = TrailerSum::new();
        s.update(&bad);
        assert_eq!(s.trailer(), Trailer::Mismatch);
        let mut s = TrailerSum::new();
        s.update(&content);
        assert_eq!(s.trailer(), Trailer::Absent);
    }

    #[test]
    fn compressed_files_round_trip_and_damage_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..(512 * 300u32)).map(|i| (i % 13) as u8).collect();
        let sum: [u8; 32] = Sha256::digest(&content).into();
        let src = dir.path().join("s.db");
        let mut stream = content.clone();
        stream.extend_from_slice(&sum);
        std::fs::write(&src, &stream).unwrap();
        let dst = dir.path().join("s.db.zst");
        let size = compress(&src, &dst, &sum).unwrap();
        assert!(size < stream.len() as u64 / 10, "{size}");
        assert_eq!(detect(&File::open(&dst).unwrap()).unwrap(), Compression::Zstd);
        assert_eq!(detect(&File::open(&src).unwrap()).unwrap(), Compression::None);
        assert_eq!(check_trailer(&dst).unwrap(), (Trailer::Valid, stream.len() as u64));
        let d = decompress(&dst).unwrap();
        assert_eq!((d.len, d.trailer), (stream.len() as u64, Trailer::Valid));
        let mut back = vec![0u8; d.len as usize];
        d.file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, stream);
        assert_eq!(identity(&dst).unwrap(), sum);
        // Read again unchanged: the same temporary file, not a second decompression.
        {
            use std::os::unix::fs::MetadataExt;
            let again = decompress(&dst).unwrap();
            assert_eq!(again.file.metadata().unwrap().ino(), d.file.metadata().unwrap().ino());
            assert_eq!((again.len, again.trailer), (d.len, d.trailer));
        }
        // Nothing named is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A truncated stream is corruption, named as such.
        let bytes = std::fs::read(&dst).unwrap();
        std::fs::write(&dst, &bytes[..bytes.len() / 2]).unwrap();
        let e = decompress(&dst).unwrap_err().report();
        assert!(e.contains("damaged or truncated"), "{e}");
        // Compressing a file whose content is not the one verified fails and leaves nothing.
        let other = dir.path().join("o.db.zst");
        assert!(compress(&src, &other, &[0u8; 32]).is_err());
        assert!(!other.exists());
    }
}
