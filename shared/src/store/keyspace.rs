//! etcd's MVCC keyspace as its backend keeps it: the `key` bucket, whose bbolt keys are
//! revisions (8-byte main revision big-endian, `_`, 8-byte sub revision, and a trailing `t` for
//! a deletion's tombstone) and whose values are `mvccpb.KeyValue` messages (`key` 1,
//! `create_revision` 2, `mod_revision` 3, `version` 4, `value` 5, `lease` 6); and the `meta`
//! bucket's compaction marks (`finishedCompactRev`, `scheduledCompactRev`: a revision in the same
//! 17-byte form).
//!
//! [`walk_keys`] visits every revision kept, newest first, reading one page at a time (memory
//! does not grow with the file), and counts the pages every tree of the file uses, so that the
//! free pages (what a defragmentation returns) are known without a second pass. Nothing read is
//! trusted: a page used twice, a tree too deep, a revision key of the wrong size or a value that
//! is not a KeyValue is a [`FormatError`] naming the page, never a panic or a loop.

use super::bbolt::{ferr, BoltError, BucketRoot, Db, FormatError, Page, BRANCH, BUCKET_LEAF, LEAF};

/// The deepest tree accepted.
const MAX_DEPTH: usize = 64;

/// One revision of a key, as the `key` bucket holds it.
#[derive(Debug, Clone, Copy)]
pub struct Revision<'a> {
    /// Main revision.
    pub main: i64,
    /// Sub revision (the operation's index in its transaction).
    pub sub: i64,
    /// A deletion (its value holds only the key and `mod_revision`).
    pub tombstone: bool,
    /// The user key.
    pub key: &'a [u8],
    /// The value (empty for a tombstone).
    pub value: &'a [u8],
    /// The revision that created the key (0 for a tombstone).
    pub create_revision: i64,
    /// Puts since the key was created, this one included (0 for a tombstone).
    pub version: i64,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
    /// Size of the entry in the bucket: the revision key and the encoded KeyValue.
    pub stored: usize,
}

/// The file-level figures a walk collects besides the revisions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pages {
    /// Page size.
    pub page_size: u32,
    /// Pages in the file's high water mark (the database size is this × the page size).
    pub total: u64,
    /// Pages that no tree uses: the freelist's, or, when bbolt does not store its freelist,
    /// every page no tree reaches. What a defragmentation returns.
    pub free: u64,
}

/// The compaction marks of the `meta` bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The last compaction that finished (0: none).
    pub finished: i64,
    /// The last one scheduled (ahead of `finished` while one runs or was interrupted).
    pub scheduled: i64,
}

/// A bitset of pages seen, one bit per page (32 KiB per GiB of 4 KiB pages).
struct Seen {
    bits: Vec<u64>,
    pages: u64,
    count: u64,
}

impl Seen {
    fn new(pages: u64) -> Seen {
        Seen { bits: vec![0; (pages as usize).div_ceil(64)], pages, count: 0 }
    }
    fn mark(&mut self, id: u64, overflow: u64) -> Result<(), FormatError> {
        for p in id..=id.saturating_add(overflow) {
            let (w, b) = ((p / 64) as usize, p % 64);
            let slot = self
                .bits
                .get_mut(w)
                .filter(|_| p < self.pages)
                .ok_or_else(|| ferr(Some(p), "beyond the high water mark"))?;
            if *slot & (1 << b) != 0 {
                return Err(ferr(Some(p), "referenced twice: the tree is corrupt"));
            }
            *slot |= 1 << b;
            self.count += 1;
        }
        Ok(())
    }
}

fn revision_of(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Key, value, create_revision, version and lease of a `mvccpb.KeyValue`.
type KeyValue<'a> = (&'a [u8], &'a [u8], i64, i64, i64);

/// A leaf entry's page, key and value, to a walk's visitor.
type EntryVisit<'a> = dyn FnMut(u64, &[u8], &[u8]) -> Result<(), BoltError> + 'a;

/// The fields of a `mvccpb.KeyValue`: key, value, create_revision, version, lease; `None` when
/// the bytes are not one.
fn key_value(b: &[u8]) -> Option<KeyValue<'_>> {
    let (mut key, mut value, mut create, mut version, mut lease) = (None, &b[..0], 0, 0, 0);
    let mut pos = 0;
    while pos < b.len() {
        let tag = crate::store::pb::read_varint(b, &mut pos)?;
        match (tag >> 3, tag & 7) {
            (f, 0) => {
                let v = crate::store::pb::read_varint(b, &mut pos)? as i64;
                match f {
                    2 => create = v,
                    4 => version = v,
                    6 => lease = v,
                    _ => {}
                }
            }
            (f, 2) => {
                let len = usize::try_from(crate::store::pb::read_varint(b, &mut pos)?).ok()?;
                let bytes = b.get(pos..pos.checked_add(len)?)?;
                pos += len;
                match f {
                    1 => key = Some(bytes),
                    5 => value = bytes,
                    _ => {}
                }
            }
            (_, 1) => pos = pos.checked_add(8).filter(|p| *p <= b.len())?,
            (_, 5) => pos = pos.checked_add(4).filter(|p| *p <= b.len())?,
            _ => return None,
        }
    }
    Some((key?, value, create, version, lease))
}

/// Decodes one entry of the `key` bucket.
pub fn decode<'a>(page: u64, rev: &[u8], kv: &'a [u8]) -> Result<Revision<'a>, FormatError> {
    let tombstone = match rev.len() {
        17 if rev[8] == b'_' => false,
        18 if rev[8] == b'_' && rev[17] == b't' => true,
        n => {
            return Err(ferr(
                Some(page),
                format!("the key bucket holds a {n}-byte key; etcd's revision keys are 17 bytes (18 for a deletion)"),
            ))
        }
    };
    let (key, value, create_revision, version, lease) = key_value(kv).ok_or_else(|| {
        ferr(Some(page), format!("revision {}: the value is not an mvccpb.KeyValue", revision_of(rev)))
    })?;
    Ok(Revision {
        main: revision_of(rev),
        sub: revision_of(&rev[9..]),
        tombstone,
        key,
        value,
        create_revision,
        version,
        lease,
        stored: rev.len() + kv.len(),
    })
}

struct Walk<'a> {
    db: &'a Db,
    seen: Seen,
}

impl Walk<'_> {
    fn read(&mut self, id: u64) -> Result<Page, BoltError> {
        if id < 2 {
            return Err(ferr(Some(id), "a meta page is referenced as a tree page").into());
        }
        let p = self.db.page(id)?;
        self.seen.mark(id, p.overflow() as u64)?;
        Ok(p)
    }

    /// Visits a tree's leaf entries, last first when `reverse`; nested buckets' trees are
    /// counted (their pages are in use) but not visited.
    fn tree(&mut self, root: &BucketRoot, reverse: bool, f: &mut EntryVisit<'_>) -> Result<(), BoltError> {
        match root {
            BucketRoot::Inline(p) => self.page(p, 0, reverse, true, f),
            BucketRoot::Page(id) => {
                let p = self.read(*id)?;
                self.page(&p, 0, reverse, true, f)
            }
        }
    }

    fn page(
        &mut self,
        p: &Page,
        depth: usize,
        reverse: bool,
        nested: bool,
        f: &mut EntryVisit<'_>,
    ) -> Result<(), BoltError> {
        if depth > MAX_DEPTH {
            return Err(ferr(Some(p.id), "tree deeper than any real database (a cycle?)").into());
        }
        let n = p.count();
        let order: Box<dyn Iterator<Item = usize>> = if reverse { Box::new((0..n).rev()) } else { Box::new(0..n) };
        match p.flags() {
            BRANCH => {
                for i in order {
                    let child = p.branch(i)?.child;
                    let c = self.read(child)?;
                    self.page(&c, depth + 1, reverse, nested, f)?;
                }
                Ok(())
            }
            LEAF => {
                for i in order {
                    let e = p.leaf(i)?;
                    if e.flags & BUCKET_LEAF != 0 {
                        if !nested {
                            continue;
                        }
                        let nested = BucketRoot::from_value(p.id, e.value)?;
                        self.tree(&nested, false, &mut |_, _, _| Ok(()))?;
                    } else {
                        f(p.id, e.key, e.value)?;
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
}

/// Walks an etcd database: every revision of the `key` bucket, newest first, to `visit`; the
/// `meta` bucket's compaction marks; and the pages in use, for the free count. Refuses a file
/// without a `key` bucket (not an etcd database).
pub fn walk_keys(
    db: &Db,
    visit: &mut dyn FnMut(&Revision<'_>) -> Result<(), BoltError>,
) -> Result<(Pages, Compaction), BoltError> {
    let meta = *db.meta();
    let mut w = Walk { db, seen: Seen::new(meta.pgid) };
    // The two meta pages, and the root bucket's own pages (a branch root is read by buckets()
    // again: count the tree once here).
    w.seen.mark(0, 0)?;
    w.seen.mark(1, 0)?;
    let root = w.read(meta.root)?;
    let mut names = Vec::new();
    w.page(&root, 0, false, false, &mut |_, _, _| Ok(()))?;
    let buckets = db.bucket_values()?;
    let mut compaction = Compaction::default();
    let mut found_key = false;
    for b in &buckets {
        names.push(String::from_utf8_lossy(&b.name).into_owned());
        let r = BucketRoot::from_value(b.page, &b.value)?;
        match b.name.as_slice() {
            b"key" => {
                found_key = true;
                w.tree(&r, true, &mut |page, k, v| visit(&decode(page, k, v)?))?;
            }
            b"meta" => w.tree(&r, false, &mut |_, k, v| {
                if v.len() >= 8 {
                    match k {
                        b"finishedCompactRev" => compaction.finished = revision_of(v),
                        b"scheduledCompactRev" => compaction.scheduled = revision_of(v),
                        _ => {}
                    }
                }
                Ok(())
            })?,
            _ => w.tree(&r, false, &mut |_, _, _| Ok(()))?,
        }
    }
    if !found_key {
        return Err(
            ferr(None, format!("no \"key\" bucket: not an etcd v3 database (buckets: {})", names.join(", "))).into()
        );
    }
    let free = if meta.freelist != super::bbolt::NO_FREELIST {
        let fl = db.page(meta.freelist)?;
        if fl.flags() != super::bbolt::FREELIST {
            return Err(ferr(Some(meta.freelist), "the meta page's freelist is not a freelist page").into());
        }
        fl.freelist_ids()?.len() as u64
    } else {
        meta.pgid.saturating_sub(w.seen.count)
    };
    Ok((Pages { page_size: meta.page_size, total: meta.pgid, free }, compaction))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pb::{field_bytes, field_varint};

    fn kv(key: &[u8], value: &[u8], create: u64, modr: u64, version: u64) -> Vec<u8> {
        let mut b = Vec::new();
        field_bytes(&mut b, 1, key);
        field_varint(&mut b, 2, create);
        field_varint(&mut b, 3, modr);
        field_varint(&mut b, 4, version);
        field_bytes(&mut b, 5, value);
        b
    }

    fn rev(main: u64, tomb: bool) -> Vec<u8> {
        let mut k = main.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&0u64.to_be_bytes());
        if tomb {
            k.push(b't');
        }
        k
    }

    #[test]
    fn revisions_decode_as_etcd_writes_them() {
        let v = kv(b"/registry/pods/a/b", b"k8s\0xyz", 3, 7, 2);
        let r = decode(9, &rev(7, false), &v).unwrap();
        assert_eq!(
            (r.main, r.tombstone, r.key, r.value, r.create_revision, r.version),
            (7, false, &b"/registry/pods/a/b"[..], &b"k8s\0xyz"[..], 3, 2)
        );
        let mut t = Vec::new();
        field_bytes(&mut t, 1, b"/registry/pods/a/b");
        field_varint(&mut t, 3, 8);
        let r = decode(9, &rev(8, true), &t).unwrap();
        assert!(r.tombstone && r.value.is_empty() && r.version == 0);
        let e = decode(9, b"short", &v).unwrap_err().to_string();
        assert!(e.contains("page 9") && e.contains("5-byte key"), "{e}");
        let e = decode(9, &rev(7, false), b"\x0a\x50ab").unwrap_err().to_string();
        assert!(e.contains("not an mvccpb.KeyValue"), "{e}");
    }

    #[test]
    fn a_page_used_twice_is_refused() {
        let mut s = Seen::new(10);
        s.mark(3, 1).unwrap();
        assert!(s.mark(4, 0).unwrap_err().msg.contains("referenced twice"));
        assert!(s.mark(12, 0).is_err());
    }
}
