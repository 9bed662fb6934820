//! A reader of etcd's database files (and, in [`writer`], a writer): the bbolt B+tree format that etcd keeps in
//! `member/snap/db` and that `etcdctl snapshot save` writes (followed by a sha256 trailer).
//!
//! The format, as bbolt defines it: the file is an array of pages of `page_size` bytes. Every
//! page starts with a 16-byte header (`id u64`, `flags u16`, `count u16`, `overflow u32`, little
//! endian); a page with `overflow = n` spans `n + 1` pages. Pages 0 and 1 are meta pages (the
//! valid one with the higher transaction ID wins). Branch pages hold 16-byte elements
//! (`pos u32, ksize u32, pgid u64`), leaf pages 16-byte elements (`flags u32, pos u32, ksize u32,
//! vsize u32`), `pos` counting from the element itself. A leaf element with flag 1 is a bucket: its
//! value is a bucket header (`root u64, sequence u64`), and when `root` is 0 the bucket's single
//! leaf page follows inline. The freelist page lists free page IDs (`count = 0xFFFF` means the
//! real count is the first u64).
//!
//! The reader reads pages with positioned reads (no memory map, no unsafe code), so memory stays
//! small whatever the size of the file, and it never trusts a length or offset without checking
//! it: any input gives an [`FormatError`] naming the page, never a panic.

pub mod check;
pub mod writer;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// bbolt's magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// bbolt's data file format version.
pub const VERSION: u32 = 2;
/// Size of a page header.
pub const PAGE_HEADER: usize = 16;
/// Size of a branch or leaf element.
pub const ELEMENT: usize = 16;
/// Size of a bucket header.
pub const BUCKET_HEADER: usize = 16;
/// Page flag: branch.
pub const BRANCH: u16 = 0x01;
/// Page flag: leaf.
pub const LEAF: u16 = 0x02;
/// Page flag: meta.
pub const META: u16 = 0x04;
/// Page flag: freelist.
pub const FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a bucket.
pub const BUCKET_LEAF: u32 = 0x01;
/// Meta `freelist` value when the freelist is not stored (`NoFreelistSync`).
pub const NO_FREELIST: u64 = u64::MAX;
/// Offset of the checksum in the meta structure (the bytes it covers).
const META_CHECKSUM_AT: usize = 56;
/// The deepest tree accepted (bbolt trees are a handful of levels deep).
const MAX_DEPTH: usize = 64;

/// A problem with a database file's structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{msg}", page.map(|p| format!("page {p}: ")).unwrap_or_default())]
pub struct FormatError {
    /// The page at fault, if one is.
    pub page: Option<u64>,
    /// What is wrong.
    pub msg: String,
}

/// A [`FormatError`] about `page`.
pub(crate) fn ferr(page: Option<u64>, msg: impl Into<String>) -> FormatError {
    FormatError { page, msg: msg.into() }
}

/// Errors of the reader.
#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    /// The file could not be opened or read.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a sound bbolt database.
    #[error("{0}")]
    Format(#[from] FormatError),
}

/// A meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Meta {
    /// Which meta page (0 or 1).
    pub page: u64,
    /// Page size in bytes.
    pub page_size: u32,
    /// Flags.
    pub flags: u32,
    /// Root bucket's root page.
    pub root: u64,
    /// Root bucket's sequence.
    pub sequence: u64,
    /// Freelist page, or [`NO_FREELIST`].
    pub freelist: u64,
    /// High water mark: number of pages in use.
    pub pgid: u64,
    /// Transaction ID.
    pub txid: u64,
    /// FNV-1a checksum.
    pub checksum: u64,
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64le(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// FNV-1a 64, as bbolt checksums meta pages.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Parses the meta structure from the bytes after a meta page's header.
    pub fn parse(page: u64, b: &[u8]) -> Result<Meta, FormatError> {
        if b.len() < META_CHECKSUM_AT + 8 {
            return Err(ferr(Some(page), "meta page is cut short"));
        }
        let m = Meta {
            page,
            page_size: u32le(b, 8),
            flags: u32le(b, 12),
            root: u64le(b, 16),
            sequence: u64le(b, 24),
            freelist: u64le(b, 32),
            pgid: u64le(b, 40),
            txid: u64le(b, 48),
            checksum: u64le(b, 56),
        };
        let magic = u32le(b, 0);
        if magic != MAGIC {
            return Err(ferr(Some(page), format!("invalid magic {magic:#010x} (not a bbolt/etcd database)")));
        }
        let version = u32le(b, 4);
        if version != VERSION {
            return Err(ferr(Some(page), format!("unsupported bbolt version {version}")));
        }
        if fnv1a64(&b[..META_CHECKSUM_AT]) != m.checksum {
            return Err(ferr(Some(page), "meta checksum mismatch"));
        }
        if !m.page_size.is_power_of_two() || !(512..=65536).contains(&m.page_size) {
            return Err(ferr(Some(page), format!("invalid page size {}", m.page_size)));
        }
        Ok(m)
    }

    /// Serializes the meta structure (with its checksum) into 64 bytes.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&VERSION.to_le_bytes());
        b[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.root.to_le_bytes());
        b[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        b[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        b[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        b[48..56].copy_from_slice(&self.txid.to_le_bytes());
        let sum = fnv1a64(&b[..META_CHECKSUM_AT]);
        b[56..64].copy_from_slice(&sum.to_le_bytes());
        b
    }
}

/// A page read into memory (with its overflow pages).
#[derive(Debug, Clone)]
pub struct Page {
    /// Page ID (from the position read, checked against the header).
    pub id: u64,
    /// The bytes, header included.
    pub data: Vec<u8>,
}

/// One element of a leaf page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafElem<'a> {
    /// Element flags ([`BUCKET_LEAF`]).
    pub flags: u32,
    /// Key.
    pub key: &'a [u8],
    /// Value (a bucket header, possibly with an inline page, for buckets).
    pub value: &'a [u8],
}

/// One element of a branch page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchElem<'a> {
    /// The first key of the child.
    pub key: &'a [u8],
    /// The child page.
    pub child: u64,
}

impl Page {
    /// Wraps bytes that hold a page (an inline bucket's page has no meaningful ID).
    pub fn from_bytes(id: u64, data: Vec<u8>) -> Page {
        Page { id, data }
    }
    /// Page flags.
    pub fn flags(&self) -> u16 {
        u16le(&self.data, 8)
    }
    /// Element count.
    pub fn count(&self) -> usize {
        u16le(&self.data, 10) as usize
    }
    /// Overflow page count.
    pub fn overflow(&self) -> u32 {
        u32le(&self.data, 12)
    }

    fn element_at(&self, i: usize) -> Result<usize, FormatError> {
        let at = PAGE_HEADER + i * ELEMENT;
        if at + ELEMENT > self.data.len() {
            return Err(ferr(Some(self.id), format!("element {i} of {} lies outside the page", self.count())));
        }
        Ok(at)
    }

    fn slice(&self, from: usize, len: usize, what: &str, i: usize) -> Result<&[u8], FormatError> {
        from.checked_add(len).filter(|end| *end <= self.data.len()).map(|end| &self.data[from..end]).ok_or_else(|| {
            ferr(Some(self.id), format!("element {i}: {what} of {len} bytes at offset {from} lies outside the page"))
        })
    }

    /// Leaf element `i`.
    pub fn leaf(&self, i: usize) -> Result<LeafElem<'_>, FormatError> {
        let at = self.element_at(i)?;
        let flags = u32le(&self.data, at);
        let pos = u32le(&self.data, at + 4) as usize;
        let ksize = u32le(&self.data, at + 8) as usize;
        let vsize = u32le(&self.data, at + 12) as usize;
        let kstart = at.checked_add(pos).ok_or_else(|| ferr(Some(self.id), "element offset overflows"))?;
        let key = self.slice(kstart, ksize, "key", i)?;
        let value = self.slice(kstart + ksize, vsize, "value", i)?;
        Ok(LeafElem { flags, key, value })
    }

    /// Branch element `i`.
    pub fn branch(&self, i: usize) -> Result<BranchElem<'_>, FormatError> {
        let at = self.element_at(i)?;
        let pos = u32le(&self.data, at) as usize;
        let ksize = u32le(&self.data, at + 4) as usize;
        let child = u64le(&self.data, at + 8);
        let kstart = at.checked_add(pos).ok_or_else(|| ferr(Some(self.id), "element offset overflows"))?;
        let key = self.slice(kstart, ksize, "key", i)?;
        Ok(BranchElem { key, child })
    }

    /// The page IDs a freelist page lists.
    pub fn freelist_ids(&self) -> Result<Vec<u64>, FormatError> {
        let mut start = PAGE_HEADER;
        let mut count = self.count();
        if count == 0xFFFF {
            if self.data.len() < PAGE_HEADER + 8 {
                return Err(ferr(Some(self.id), "freelist count lies outside the page"));
            }
            count = usize::try_from(u64le(&self.data, PAGE_HEADER))
                .map_err(|_| ferr(Some(self.id), "freelist count overflows"))?;
            start += 8;
        }
        let end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(start))
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| ferr(Some(self.id), format!("freelist of {count} IDs does not fit in the page")))?;
        Ok(self.data[start..end].chunks_exact(8).map(|c| u64le(c, 0)).collect())
    }
}

/// Where a bucket's tree is.
#[derive(Debug, Clone)]
pub enum BucketRoot {
    /// Rooted at a page.
    Page(u64),
    /// An inline bucket: its one leaf page is stored in the parent's value.
    Inline(Page),
}

impl BucketRoot {
    /// Decodes a bucket value (header and, for inline buckets, the page).
    pub fn from_value(page: u64, value: &[u8]) -> Result<BucketRoot, FormatError> {
        if value.len() < BUCKET_HEADER {
            return Err(ferr(
                Some(page),
                format!("bucket value of {} bytes is shorter than a bucket header", value.len()),
            ));
        }
        let root = u64le(value, 0);
        if root != 0 {
            return Ok(BucketRoot::Page(root));
        }
        let inline = &value[BUCKET_HEADER..];
        if inline.len() < PAGE_HEADER {
            return Err(ferr(Some(page), "inline bucket is shorter than a page header"));
        }
        Ok(BucketRoot::Inline(Page::from_bytes(page, inline.to_vec())))
    }
}

/// One element of a leaf page, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafEntry {
    /// Element flags ([`BUCKET_LEAF`]).
    pub flags: u32,
    /// Key.
    pub key: Vec<u8>,
    /// Value.
    pub value: Vec<u8>,
}

/// A top-level bucket as the root bucket stores it ([`Db::bucket_values`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketValue {
    /// Its name.
    pub name: Vec<u8>,
    /// Its value: the bucket header (`root u64, sequence u64`), with an inline bucket's page
    /// after it.
    pub value: Vec<u8>,
    /// The root bucket's page holding it.
    pub page: u64,
}

impl BucketValue {
    /// The bucket's sequence.
    pub fn sequence(&self) -> u64 {
        if self.value.len() < BUCKET_HEADER {
            return 0;
        }
        u64le(&self.value, 8)
    }
}

/// The rightmost path of a tree ([`Db::last_path`]).
#[derive(Debug, Clone)]
pub struct LastPath {
    /// The branch pages from the root down, each as (first key of child, child page).
    pub branches: Vec<Vec<(Vec<u8>, u64)>>,
    /// The elements of the last leaf.
    pub leaf: Vec<LeafEntry>,
}

/// A visitor of a bucket's entries: key, and value (`None` for a nested bucket).
pub type EntryFn<'a> = dyn FnMut(&[u8], Option<&[u8]>) -> Result<(), BoltError> + 'a;

/// An open database file.
#[derive(Debug)]
pub struct Db {
    file: File,
    path: PathBuf,
    len: u64,
    meta: Meta,
    /// Reads counted, for statistics.
    pub pages_read: std::cell::Cell<u64>,
}

impl Db {
    /// Opens a database file read-only and picks its meta page.
    pub fn open(path: &Path) -> Result<Db, BoltError> {
        let file = File::open(path).map_err(|source| BoltError::Io { path: path.to_path_buf(), source })?;
        Db::from_file(file, path)
    }

    /// A database in an open file (a decompressed snapshot in a nameless temporary file);
    /// `path` is the name errors give it.
    pub fn from_file(file: File, path: &Path) -> Result<Db, BoltError> {
        let io = |source| BoltError::Io { path: path.to_path_buf(), source };
        let md = file.metadata().map_err(io)?;
        if md.is_dir() {
            return Err(io(std::io::Error::from_raw_os_error(libc::EISDIR)));
        }
        let len = md.len();
        if len == 0 {
            return Err(ferr(None, "the file is empty").into());
        }
        let mut first = vec![0u8; 4096.min(len as usize)];
        file.read_exact_at(&mut first, 0).map_err(io)?;
        if first.len() < PAGE_HEADER + 64 {
            return Err(ferr(None, format!("the file has {len} bytes: too short for a database")).into());
        }
        let m0 = Meta::parse(0, &first[PAGE_HEADER..]);
        let ps1 = m0.as_ref().map(|m| m.page_size as u64).unwrap_or(4096);
        let m1 = {
            let mut b = vec![0u8; PAGE_HEADER + 64];
            match file.read_exact_at(&mut b, ps1) {
                Ok(()) => Meta::parse(1, &b[PAGE_HEADER..]),
                Err(_) => Err(ferr(Some(1), "meta page lies beyond the end of the file")),
            }
        };
        let meta = match (m0, m1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(e), Err(_)) => return Err(ferr(None, format!("no valid meta page ({e})")).into()),
        };
        Ok(Db { file, path: path.to_path_buf(), len, meta, pages_read: std::cell::Cell::new(0) })
    }

    /// The meta page in use.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// File length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file (never: `open` refuses those).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The database size as bbolt reports it (`tx.Size()`): pages in use × page size.
    pub fn size(&self) -> u64 {
        self.meta.pgid.saturating_mul(self.meta.page_size as u64)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads page `id` with its overflow pages.
    pub fn page(&self, id: u64) -> Result<Page, BoltError> {
        let ps = self.meta.page_size as u64;
        if id >= self.meta.pgid {
            return Err(ferr(Some(id), format!("page ID beyond the high water mark ({} pages)", self.meta.pgid)).into());
        }
        let off = id.checked_mul(ps).ok_or_else(|| ferr(Some(id), "page offset overflows"))?;
        if off + ps > self.len {
            return Err(ferr(
                Some(id),
                format!("lies beyond the end of the file ({} bytes): the file is truncated", self.len),
            )
            .into());
        }
        let io = |source| BoltError::Io { path: self.path.clone(), source };
        let mut data = vec![0u8; ps as usize];
        self.file.read_exact_at(&mut data, off).map_err(io)?;
        self.pages_read.set(self.pages_read.get() + 1);
        let hdr_id = u64le(&data, 0);
        if hdr_id != id {
            return Err(ferr(Some(id), format!("header says page {hdr_id}")).into());
        }
        let overflow = u32le(&data, 12) as u64;
        if overflow > 0 {
            let total = (overflow + 1).checked_mul(ps).ok_or_else(|| ferr(Some(id), "overflow too large"))?;
            if id + overflow >= self.meta.pgid || off + total > self.len {
                return Err(
                    ferr(Some(id), format!("{overflow} overflow pages run past the end of the database")).into()
                );
            }
            data.resize(total as usize, 0);
            self.file.read_exact_at(&mut data[ps as usize..], off + ps).map_err(io)?;
        }
        Ok(Page { id, data })
    }

    /// Visits every key/value of a bucket in key order. Nested buckets are given with
    /// `value = None` (as bbolt's `ForEach` gives them).
    pub fn for_each(&self, bucket: &BucketRoot, f: &mut EntryFn<'_>) -> Result<(), BoltError> {
        match bucket {
            BucketRoot::Inline(p) => self.walk_page(p, 0, f),
            BucketRoot::Page(id) => self.walk(*id, 0, f),
        }
    }

    fn walk(&self, id: u64, depth: usize, f: &mut EntryFn<'_>) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(ferr(Some(id), "tree deeper than any real database (a cycle?)").into());
        }
        let p = self.page(id)?;
        self.walk_page(&p, depth, f)
    }

    fn walk_page(&self, p: &Page, depth: usize, f: &mut EntryFn<'_>) -> Result<(), BoltError> {
        match p.flags() {
            BRANCH => {
                for i in 0..p.count() {
                    let child = p.branch(i)?.child;
                    self.walk(child, depth + 1, f)?;
                }
                Ok(())
            }
            LEAF => {
                for i in 0..p.count() {
                    let e = p.leaf(i)?;
                    if e.flags & BUCKET_LEAF != 0 {
                        f(e.key, None)?;
                    } else {
                        f(e.key, Some(e.value))?;
                    }
                }
                Ok(())
            }
            other => Err(ferr(
                Some(p.id),
                format!("invalid page type {other:#04x} where a branch or leaf page was expected"),
            )
            .into()),
        }
    }

    /// The top-level buckets, in key order, with their roots.
    pub fn buckets(&self) -> Result<Vec<(Vec<u8>, BucketRoot)>, BoltError> {
        self.bucket_values()?.into_iter().map(|b| Ok((b.name, BucketRoot::from_value(b.page, &b.value)?))).collect()
    }

    /// The top-level buckets, in key order, as the root bucket stores them.
    pub fn bucket_values(&self) -> Result<Vec<BucketValue>, BoltError> {
        let mut out = Vec::new();
        self.collect_buckets(self.meta.root, 0, &mut out)?;
        Ok(out)
    }

    fn collect_buckets(&self, id: u64, depth: usize, out: &mut Vec<BucketValue>) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(ferr(Some(id), "tree deeper than any real database (a cycle?)").into());
        }
        let p = self.page(id)?;
        match p.flags() {
            BRANCH => {
                for i in 0..p.count() {
                    let child = p.branch(i)?.child;
                    self.collect_buckets(child, depth + 1, out)?;
                }
            }
            LEAF => {
                for i in 0..p.count() {
                    let e = p.leaf(i)?;
                    if e.flags & BUCKET_LEAF == 0 {
                        return Err(ferr(
                            Some(p.id),
                            format!(
                                "root bucket holds a plain key {:?}; etcd keeps only buckets there",
                                String::from_utf8_lossy(e.key)
                            ),
                        )
                        .into());
                    }
                    out.push(BucketValue { name: e.key.to_vec(), value: e.value.to_vec(), page: p.id });
                }
            }
            other => return Err(ferr(Some(p.id), format!("invalid page type {other:#04x} for the root bucket")).into()),
        }
        Ok(())
    }

    /// The rightmost path of a bucket's tree, decoded: its branch pages from the root down
    /// and its last leaf (for an inline bucket, no branches and its one leaf). What a writer
    /// needs to append a key after the last one, copy-on-write.
    pub fn last_path(&self, bucket: &BucketRoot) -> Result<LastPath, BoltError> {
        let mut page = match bucket {
            BucketRoot::Inline(p) => p.clone(),
            BucketRoot::Page(id) => self.page(*id)?,
        };
        let mut branches = Vec::new();
        for _ in 0..MAX_DEPTH {
            match page.flags() {
                BRANCH => {
                    let elems: Vec<(Vec<u8>, u64)> = (0..page.count())
                        .map(|i| page.branch(i).map(|e| (e.key.to_vec(), e.child)))
                        .collect::<Result<_, _>>()?;
                    let Some(&(_, child)) = elems.last() else {
                        return Err(ferr(Some(page.id), "branch page with no elements").into());
                    };
                    branches.push(elems);
                    page = self.page(child)?;
                }
                LEAF => {
                    let leaf = (0..page.count())
                        .map(|i| {
                            page.leaf(i).map(|e| LeafEntry {
                                flags: e.flags,
                                key: e.key.to_vec(),
                                value: e.value.to_vec(),
                            })
                        })
                        .collect::<Result<_, _>>()?;
                    return Ok(LastPath { branches, leaf });
                }
                other => return Err(ferr(Some(page.id), format!("invalid page type {other:#04x}")).into()),
            }
        }
        Err(ferr(Some(page.id), "tree deeper than any real database (a cycle?)").into())
    }

    /// The open file (to copy its pages).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The last key of a top-level bucket: one page per tree level, whatever the file's size.
    pub fn last_key(&self, name: &[u8]) -> Result<Option<Vec<u8>>, BoltError> {
        let Some(root) = self.bucket(name)? else { return Ok(None) };
        let mut page = match root {
            BucketRoot::Inline(p) => p,
            BucketRoot::Page(id) => self.page(id)?,
        };
        for _ in 0..MAX_DEPTH {
            let n = page.count();
            if n == 0 {
                return Ok(None);
            }
            match page.flags() {
                BRANCH => {
                    let child = page.branch(n - 1)?.child;
                    page = self.page(child)?;
                }
                LEAF => return Ok(Some(page.leaf(n - 1)?.key.to_vec())),
                other => return Err(ferr(Some(page.id), format!("invalid page type {other:#04x}")).into()),
            }
        }
        Err(ferr(Some(page.id), "tree deeper than any real database (a cycle?)").into())
    }

    /// Finds a top-level bucket.
    pub fn bucket(&self, name: &[u8]) -> Result<Option<BucketRoot>, BoltError> {
        Ok(self.buckets()?.into_iter().find(|(n, _)| n == name).map(|(_, r)| r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_roundtrip_and_checksum() {
        let m = Meta {
            page: 0,
            page_size: 4096,
            flags: 0,
            root: 3,
            sequence: 0,
            freelist: 2,
            pgid: 4,
            txid: 7,
            checksum: 0,
        };
        let b = m.encode();
        let back = Meta::parse(0, &b).unwrap();
        assert_eq!(back.root, 3);
        assert_eq!(back.txid, 7);
        let mut bad = b;
        bad[20] ^= 1;
        assert_eq!(Meta::parse(0, &bad).unwrap_err().msg, "meta checksum mismatch");
    }

    #[test]
    fn fnv_known_value() {
        // FNV-1a 64 of "a".
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
