//! Writing bbolt databases: a fresh, compact one by bulk-loading B+trees from sorted key/value
//! streams ([`DbWriter::create`]), or new pages appended to a copy of an existing one
//! ([`DbWriter::append`]), copy-on-write as bbolt commits a transaction: the trees that change
//! are written past the high water mark, then a new root bucket and both meta pages point at
//! them, and the pages they replace become free. Pages are allocated in order and written
//! sequentially, so memory stays small (one page of each tree level) whatever the size of the
//! data. New buckets are always rooted at a page (never inline); the freelist is not stored, as
//! etcd runs bbolt (`NoFreelistSync`): bbolt rebuilds it at open from the pages not reachable.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::{LastPath, Meta, BRANCH, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, LEAF, META, NO_FREELIST, PAGE_HEADER};

/// Writes one database file.
#[derive(Debug)]
pub struct DbWriter {
    out: BufWriter<File>,
    ps: usize,
    next: u64,
    /// Top-level buckets so far: name and the root bucket's value for it (a bucket header,
    /// with an inline bucket's page after it).
    buckets: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One element waiting to be laid out on a page.
#[derive(Debug)]
struct Pending {
    flags: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A tree being bulk-loaded: the leaf level fills first; each full page's first key and ID go
/// up to the level above.
#[derive(Debug, Default)]
struct Level {
    elems: Vec<Pending>,
    bytes: usize,
}

impl Level {
    /// Adds an element taking `size` bytes on a page (element header included); the page
    /// filled so far is written first when the element would not fit on it. Each written page's
    /// first key and ID go to `done`, for the level above.
    fn add(
        &mut self,
        db: &mut DbWriter,
        kind: u16,
        e: Pending,
        size: usize,
        done: &mut Vec<(Vec<u8>, u64)>,
    ) -> std::io::Result<()> {
        if !self.elems.is_empty() && PAGE_HEADER + self.bytes + size > db.ps {
            self.flush(db, kind, done)?;
        }
        self.bytes += size;
        self.elems.push(e);
        Ok(())
    }

    /// Writes the elements gathered so far as one page (an empty leaf when there are none).
    fn flush(&mut self, db: &mut DbWriter, kind: u16, done: &mut Vec<(Vec<u8>, u64)>) -> std::io::Result<()> {
        let elems = std::mem::take(&mut self.elems);
        self.bytes = 0;
        let first = elems.first().map(|e| e.key.clone()).unwrap_or_default();
        let id = db.write_page(kind, &elems)?;
        done.push((first, id));
        Ok(())
    }
}

/// Writes the entries of one bucket, in key order.
#[derive(Debug)]
pub struct BucketWriter<'a> {
    db: &'a mut DbWriter,
    name: Vec<u8>,
    sequence: u64,
    leaf: Level,
    /// (first key, page) of every finished leaf page.
    children: Vec<(Vec<u8>, u64)>,
    last: Option<Vec<u8>>,
    count: u64,
}

impl DbWriter {
    /// Creates the file (it must not exist) with this page size.
    pub fn create(path: &Path, page_size: u32) -> std::io::Result<DbWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        // Pages 0 and 1 (meta) are written last; reserve them.
        out.write_all(&vec![0u8; 2 * page_size as usize])?;
        Ok(DbWriter { out, ps: page_size as usize, next: 2, buckets: Vec::new() })
    }

    /// Appends to `file`, a copy of a database whose high water mark is `pgid` pages of
    /// `page_size` bytes: new pages go from page `pgid` on. Every top-level bucket must then be
    /// given, in name order: kept ([`DbWriter::keep_bucket`]), written anew
    /// ([`DbWriter::bucket`]) or appended to ([`DbWriter::append_after_last`]).
    pub fn append(file: File, page_size: u32, pgid: u64) -> std::io::Result<DbWriter> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.seek(SeekFrom::Start(pgid * page_size as u64))?;
        Ok(DbWriter { out, ps: page_size as usize, next: pgid, buckets: Vec::new() })
    }

    /// Keeps a top-level bucket as it is: `value` is the root bucket's value for it, as read
    /// ([`super::Db::bucket_values`]).
    pub fn keep_bucket(&mut self, name: &[u8], value: &[u8]) {
        self.buckets.push((name.to_vec(), value.to_vec()));
    }

    /// Keeps a top-level bucket with one entry added after its last key, copy-on-write: its
    /// last leaf and the branch pages above it (`path`, [`super::Db::last_path`]) are written
    /// anew; every other page of the tree stays where it is. An inline bucket becomes rooted
    /// at a page. The key must sort after every key of the bucket.
    pub fn append_after_last(
        &mut self,
        name: &[u8],
        sequence: u64,
        path: LastPath,
        key: &[u8],
        value: &[u8],
    ) -> std::io::Result<()> {
        if path.leaf.last().is_some_and(|e| e.key.as_slice() >= key) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the appended key must sort after the bucket's last key",
            ));
        }
        let mut elems: Vec<Pending> =
            path.leaf.into_iter().map(|e| Pending { flags: e.flags, key: e.key, value: e.value }).collect();
        elems.push(Pending { flags: 0, key: key.to_vec(), value: value.to_vec() });
        // One page, with overflow pages if the entries need them (as bbolt stores a leaf
        // holding a value larger than a page).
        let mut id = self.write_page(LEAF, &elems)?;
        for branch in path.branches.into_iter().rev() {
            let n = branch.len();
            let elems: Vec<Pending> = branch
                .into_iter()
                .enumerate()
                .map(|(i, (key, child))| {
                    let child = if i + 1 == n { id } else { child };
                    Pending { flags: 0, key, value: child.to_le_bytes().to_vec() }
                })
                .collect();
            id = self.write_page(BRANCH, &elems)?;
        }
        self.buckets.push((name.to_vec(), bucket_header(id, sequence)));
        Ok(())
    }

    /// Starts a top-level bucket. Buckets must come in name order.
    pub fn bucket(&mut self, name: &[u8], sequence: u64) -> BucketWriter<'_> {
        BucketWriter {
            db: self,
            name: name.to_vec(),
            sequence,
            leaf: Level::default(),
            children: Vec::new(),
            last: None,
            count: 0,
        }
    }

    /// Writes a page made of `elems` (already known to fit, or one oversized element) and
    /// returns its ID.
    fn write_page(&mut self, flags: u16, elems: &[Pending]) -> std::io::Result<u64> {
        let data: usize = elems.iter().map(|e| e.key.len() + if flags == LEAF { e.value.len() } else { 0 }).sum();
        let size = PAGE_HEADER + elems.len() * ELEMENT + data;
        let pages = size.div_ceil(self.ps).max(1);
        let mut buf = vec![0u8; pages * self.ps];
        let id = self.next;
        buf[0..8].copy_from_slice(&id.to_le_bytes());
        buf[8..10].copy_from_slice(&flags.to_le_bytes());
        buf[10..12].copy_from_slice(&(elems.len() as u16).to_le_bytes());
        buf[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        let mut data_at = PAGE_HEADER + elems.len() * ELEMENT;
        for (i, e) in elems.iter().enumerate() {
            let at = PAGE_HEADER + i * ELEMENT;
            let pos = (data_at - at) as u32;
            if flags == LEAF {
                buf[at..at + 4].copy_from_slice(&e.flags.to_le_bytes());
                buf[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
                buf[at + 8..at + 12].copy_from_slice(&(e.key.len() as u32).to_le_bytes());
                buf[at + 12..at + 16].copy_from_slice(&(e.value.len() as u32).to_le_bytes());
                buf[data_at..data_at + e.key.len()].copy_from_slice(&e.key);
                data_at += e.key.len();
                buf[data_at..data_at + e.value.len()].copy_from_slice(&e.value);
                data_at += e.value.len();
            } else {
                // Branch: the child page ID travels in `value` as 8 little-endian bytes.
                buf[at..at + 4].copy_from_slice(&pos.to_le_bytes());
                buf[at + 4..at + 8].copy_from_slice(&(e.key.len() as u32).to_le_bytes());
                buf[at + 8..at + 16].copy_from_slice(&e.value[..8]);
                buf[data_at..data_at + e.key.len()].copy_from_slice(&e.key);
                data_at += e.key.len();
            }
        }
        self.out.write_all(&buf)?;
        self.next += pages as u64;
        Ok(id)
    }

    /// Builds the branch levels above `children` and returns the root page.
    fn branches(&mut self, mut children: Vec<(Vec<u8>, u64)>) -> std::io::Result<u64> {
        while children.len() > 1 {
            let mut parents = Vec::new();
            let mut level = Level::default();
            for (key, id) in children {
                let size = ELEMENT + key.len();
                let e = Pending { flags: 0, key, value: id.to_le_bytes().to_vec() };
                level.add(self, BRANCH, e, size, &mut parents)?;
            }
            level.flush(self, BRANCH, &mut parents)?;
            children = parents;
        }
        Ok(children[0].1)
    }

    /// Writes the root bucket and the meta pages, syncs, and closes the file. Returns the
    /// number of pages.
    pub fn finish(self, root_sequence: u64) -> std::io::Result<u64> {
        let (pgid, f) = self.finish_unsynced(root_sequence, 1)?;
        f.sync_all()?;
        Ok(pgid)
    }

    /// [`DbWriter::finish`] without the fsync: the number of pages and the file, for a caller
    /// that syncs it while doing something else (checking what was written). The meta pages
    /// get transaction IDs `txid` and `txid + 1`: both point at the new root, so no older state
    /// of the file can be picked at open.
    pub fn finish_unsynced(mut self, root_sequence: u64, txid: u64) -> std::io::Result<(u64, std::fs::File)> {
        // The root bucket: one leaf element per bucket, its value a bucket header.
        let buckets = std::mem::take(&mut self.buckets);
        let mut leaf = Level::default();
        let mut children = Vec::new();
        for (name, value) in buckets {
            let size = ELEMENT + name.len() + value.len();
            leaf.add(&mut self, LEAF, Pending { flags: BUCKET_LEAF, key: name, value }, size, &mut children)?;
        }
        leaf.flush(&mut self, LEAF, &mut children)?;
        let root = self.branches(children)?;
        let pgid = self.next;
        let mut f = self.out.into_inner().map_err(|e| e.into_error())?;
        for (page, txid) in [(0u64, txid), (1, txid + 1)] {
            let meta = Meta {
                page,
                page_size: self.ps as u32,
                flags: 0,
                root,
                sequence: root_sequence,
                freelist: NO_FREELIST,
                pgid,
                txid,
                checksum: 0,
            };
            let mut buf = vec![0u8; self.ps];
            buf[0..8].copy_from_slice(&page.to_le_bytes());
            buf[8..10].copy_from_slice(&META.to_le_bytes());
            buf[PAGE_HEADER..PAGE_HEADER + 64].copy_from_slice(&meta.encode());
            f.seek(SeekFrom::Start(page * self.ps as u64))?;
            f.write_all(&buf)?;
        }
        Ok((pgid, f))
    }
}

/// A bucket header for a bucket rooted at a page.
fn bucket_header(root: u64, sequence: u64) -> Vec<u8> {
    let mut value = Vec::with_capacity(BUCKET_HEADER);
    value.extend_from_slice(&root.to_le_bytes());
    value.extend_from_slice(&sequence.to_le_bytes());
    value
}

impl BucketWriter<'_> {
    /// Appends an entry; keys must be strictly increasing.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        if self.last.as_deref().is_some_and(|l| l >= key) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "keys must be written in increasing order",
            ));
        }
        let size = ELEMENT + key.len() + value.len();
        let e = Pending { flags: 0, key: key.to_vec(), value: value.to_vec() };
        self.leaf.add(self.db, LEAF, e, size, &mut self.children)?;
        self.last = Some(key.to_vec());
        self.count += 1;
        Ok(())
    }

    /// Finishes the bucket; returns the number of entries.
    pub fn finish(mut self) -> std::io::Result<u64> {
        if !self.leaf.elems.is_empty() || self.children.is_empty() {
            self.leaf.flush(self.db, LEAF, &mut self.children)?;
        }
        let children = std::mem::take(&mut self.children);
        let root = self.db.branches(children)?;
        self.db.buckets.push((std::mem::take(&mut self.name), bucket_header(root, self.sequence)));
        Ok(self.count)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::check::check;
    use super::super::{BucketRoot, Db};
    use super::*;

    #[test]
    fn bulk_loaded_trees_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = DbWriter::create(&path, 4096).unwrap();
        {
            let b = w.bucket(b"alpha", 0);
            b.finish().unwrap();
        }
        {
            let mut b = w.bucket(b"key", 7);
            for i in 0..20_000u32 {
                let v = if i % 1000 == 0 { vec![b'x'; 10_000] } else { i.to_be_bytes().to_vec() };
                b.put(format!("k{i:08}").as_bytes(), &v).unwrap();
            }
            assert_eq!(b.finish().unwrap(), 20_000);
        }
        w.finish(0).unwrap();
        let db = Db::open(&path).unwrap();
        let summary = check(&db).unwrap();
        assert_eq!(summary.buckets, ["alpha", "key"]);
        let mut n = 0u32;
        let key = db.bucket(b"key").unwrap().unwrap();
        db.for_each(&key, &mut |k, v| {
            assert_eq!(k, format!("k{n:08}").as_bytes());
            let v = v.unwrap();
            if n.is_multiple_of(1000) {
                assert_eq!(v.len(), 10_000);
            } else {
                assert_eq!(v, n.to_be_bytes());
            }
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 20_000);
        assert_eq!(db.last_key(b"key").unwrap().unwrap(), b"k00019999");
        assert!(matches!(db.bucket(b"alpha").unwrap(), Some(BucketRoot::Page(_))));
    }

    /// An inline bucket's value: a bucket header with root 0, then its one leaf page.
    pub(crate) fn inline_bucket(elems: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
        let mut v = vec![0u8; BUCKET_HEADER];
        let mut page = vec![0u8; PAGE_HEADER + elems.len() * ELEMENT];
        page[8..10].copy_from_slice(&LEAF.to_le_bytes());
        page[10..12].copy_from_slice(&(elems.len() as u16).to_le_bytes());
        for (i, (flags, k, val)) in elems.iter().enumerate() {
            let at = PAGE_HEADER + i * ELEMENT;
            let pos = (page.len() - at) as u32;
            page[at..at + 4].copy_from_slice(&flags.to_le_bytes());
            page[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
            page[at + 8..at + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
            page[at + 12..at + 16].copy_from_slice(&(val.len() as u32).to_le_bytes());
            page.extend_from_slice(k);
            page.extend_from_slice(val);
        }
        v.extend_from_slice(&page);
        v
    }

    pub(crate) fn entries(db: &Db, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let root = db.bucket(name).unwrap().unwrap();
        db.for_each(&root, &mut |k, v| {
            out.push((k.to_vec(), v.unwrap().to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    /// A copy patched copy-on-write: the kept pages are the original's byte for byte, the
    /// appended key lands after the last one of a three-level tree and of an inline bucket,
    /// a rewritten bucket replaces the old one, and the whole file passes the walk.
    #[test]
    fn appends_patch_a_copy_copy_on_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut w = DbWriter::create(&path, 4096).unwrap();
        let mut b = w.bucket(b"big", 3);
        for i in 0..50_000u32 {
            let v = if i % 5000 == 0 { vec![b'x'; 9_000] } else { i.to_be_bytes().to_vec() };
            b.put(format!("k{i:08}").as_bytes(), &v).unwrap();
        }
        b.finish().unwrap();
        let mut b = w.bucket(b"members", 0);
        b.put(b"old", b"member").unwrap();
        b.finish().unwrap();
        w.finish(9).unwrap();
        let src = Db::open(&path).unwrap();
        let values = src.bucket_values().unwrap();
        let big = values.iter().find(|b| b.name == b"big").unwrap();
        assert_eq!(big.sequence(), 3);
        let path_pages = src.last_path(&src.bucket(b"big").unwrap().unwrap()).unwrap();
        assert!(path_pages.branches.len() >= 2, "a tree of at least three levels");

        let copy = dir.path().join("copy");
        let out = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&copy).unwrap();
        crate::base::fsio::copy_range(src.file(), &out, src.size()).unwrap();
        let m = *src.meta();
        let mut w = DbWriter::append(out, m.page_size, m.pgid).unwrap();
        w.append_after_last(b"big", big.sequence(), path_pages, b"z-last", b"appended").unwrap();
        let inline = inline_bucket(&[(0, b"a", b"1"), (0, b"b", b"2")]);
        let root = BucketRoot::from_value(0, &inline).unwrap();
        let inline_path = src.last_path(&root).unwrap();
        assert!(w.append_after_last(b"inl", 0, inline_path.clone(), b"a", b"x").is_err(), "not after the last key");
        w.append_after_last(b"inl", 0, inline_path, b"c", b"3").unwrap();
        w.keep_bucket(b"kept-inline", &inline);
        let mut b = w.bucket(b"members", 0);
        b.put(b"new", b"member").unwrap();
        b.finish().unwrap();
        w.finish_unsynced(m.sequence, m.txid + 1).unwrap().1.sync_all().unwrap();

        let out = Db::open(&copy).unwrap();
        assert_eq!(out.meta().txid, m.txid + 2);
        assert_eq!(out.meta().sequence, 9);
        let summary = check(&out).unwrap();
        assert_eq!(summary.buckets, ["big", "inl", "kept-inline", "members"]);
        assert!(summary.in_use < summary.pages, "the replaced pages are no longer reachable");
        let big = entries(&out, b"big");
        assert_eq!(big.len(), 50_001);
        assert_eq!(big[5000].1.len(), 9_000);
        assert_eq!(big.last().unwrap(), &(b"z-last".to_vec(), b"appended".to_vec()));
        assert_eq!(entries(&src, b"big")[..], big[..50_000]);
        assert_eq!(out.bucket_values().unwrap()[0].sequence(), 3);
        let two = |a: &[u8], b: &[u8]| (a.to_vec(), b.to_vec());
        assert_eq!(entries(&out, b"inl"), [two(b"a", b"1"), two(b"b", b"2"), two(b"c", b"3")]);
        assert_eq!(entries(&out, b"kept-inline"), [two(b"a", b"1"), two(b"b", b"2")]);
        assert_eq!(entries(&out, b"members"), [two(b"new", b"member")]);
        // Every page below the old high water mark, but the meta pages, is the original's.
        let (a, b) = (std::fs::read(&path).unwrap(), std::fs::read(&copy).unwrap());
        let ps = m.page_size as usize;
        assert_eq!(a[2 * ps..], b[2 * ps..a.len()]);
        assert_eq!(b.len() as u64, out.meta().pgid * ps as u64);
    }
}
