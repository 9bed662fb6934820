//! Writing a fresh, compact bbolt database by bulk-loading B+trees from sorted key/value
//! streams: pages are allocated in order and written sequentially, so memory stays small (one
//! page of each tree level) whatever the size of the data. Buckets are always rooted at a page
//! (never inline); the freelist is not stored, as etcd runs bbolt (`NoFreelistSync`).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::{Meta, BRANCH, BUCKET_HEADER, BUCKET_LEAF, ELEMENT, LEAF, META, NO_FREELIST, PAGE_HEADER};

/// Writes one database file.
#[derive(Debug)]
pub struct DbWriter {
    out: BufWriter<File>,
    ps: usize,
    next: u64,
    /// Top-level buckets written so far: (name, root page, sequence).
    buckets: Vec<(Vec<u8>, u64, u64)>,
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
        let (pgid, f) = self.finish_unsynced(root_sequence)?;
        f.sync_all()?;
        Ok(pgid)
    }

    /// [`DbWriter::finish`] without the fsync: the number of pages and the file, for a caller
    /// that syncs it while doing something else (checking what was written).
    pub fn finish_unsynced(mut self, root_sequence: u64) -> std::io::Result<(u64, std::fs::File)> {
        // The root bucket: one leaf element per bucket, its value a bucket header.
        let buckets = std::mem::take(&mut self.buckets);
        let mut leaf = Level::default();
        let mut children = Vec::new();
        for (name, root, seq) in buckets {
            let mut value = Vec::with_capacity(BUCKET_HEADER);
            value.extend_from_slice(&root.to_le_bytes());
            value.extend_from_slice(&seq.to_le_bytes());
            let size = ELEMENT + name.len() + value.len();
            leaf.add(&mut self, LEAF, Pending { flags: BUCKET_LEAF, key: name, value }, size, &mut children)?;
        }
        leaf.flush(&mut self, LEAF, &mut children)?;
        let root = self.branches(children)?;
        let pgid = self.next;
        let mut f = self.out.into_inner().map_err(|e| e.into_error())?;
        for (page, txid) in [(0u64, 1u64), (1, 2)] {
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
        self.db.buckets.push((std::mem::take(&mut self.name), root, self.sequence));
        Ok(self.count)
    }
}

#[cfg(test)]
mod tests {
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
}
