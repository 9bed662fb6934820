//! A full structural walk of a database file, in the spirit of bbolt's `tx.Check()`: every page
//! of every bucket is read once; page types, element bounds and key order are checked; no page
//! may be used twice or be both in use and free; with a stored freelist, every page must be
//! either reachable or free.

use super::{ferr, BoltError, BucketRoot, Db, FormatError, Page, BRANCH, BUCKET_LEAF, FREELIST, LEAF, NO_FREELIST};

/// What the walk found in a sound file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Pages in the file's high water mark.
    pub pages: u64,
    /// Pages reached from the root (including overflow pages and the two meta pages).
    pub in_use: u64,
    /// Pages listed as free.
    pub free: u64,
    /// Top-level buckets, in order.
    pub buckets: Vec<String>,
    /// Key/value pairs in all buckets (nested buckets count as one entry).
    pub entries: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Unseen,
    Used,
    Free,
}

/// Receives the contents of the top-level buckets during a walk, in key order, exactly as
/// bbolt's cursor and `ForEach` give them (nested buckets as a key with no value).
pub trait Visitor {
    /// A top-level bucket begins.
    fn bucket(&mut self, name: &[u8]) -> Result<(), BoltError>;
    /// An entry of the current top-level bucket.
    fn entry(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), BoltError>;
}

/// A visitor that does nothing.
#[derive(Debug)]
pub struct NoVisitor;

impl Visitor for NoVisitor {
    fn bucket(&mut self, _: &[u8]) -> Result<(), BoltError> {
        Ok(())
    }
    fn entry(&mut self, _: &[u8], _: Option<&[u8]>) -> Result<(), BoltError> {
        Ok(())
    }
}

struct Walker<'a> {
    db: &'a Db,
    marks: Vec<Mark>,
    summary: Summary,
    visitor: &'a mut dyn Visitor,
}

const MAX_DEPTH: usize = 64;

impl Walker<'_> {
    fn mark(&mut self, id: u64, overflow: u64, how: Mark) -> Result<(), FormatError> {
        for p in id..=id + overflow {
            let slot = self.marks.get_mut(p as usize).ok_or_else(|| ferr(Some(p), "beyond the high water mark"))?;
            match (*slot, how) {
                (Mark::Unseen, _) => *slot = how,
                (Mark::Used, Mark::Used) => return Err(ferr(Some(p), "referenced twice: the tree is corrupt")),
                (Mark::Free, Mark::Free) => return Err(ferr(Some(p), "listed twice in the freelist")),
                _ => return Err(ferr(Some(p), "both in use and in the freelist")),
            }
        }
        Ok(())
    }

    fn read(&mut self, id: u64) -> Result<Page, BoltError> {
        if id < 2 {
            return Err(ferr(Some(id), "a meta page is referenced as a tree page").into());
        }
        let p = self.db.page(id)?;
        self.mark(id, p.overflow() as u64, Mark::Used)?;
        Ok(p)
    }

    /// Checks a tree; keys must lie in `[lo, hi)`.
    /// `level` is 0 for the root bucket, 1 for a top-level bucket, more for nested buckets.
    fn tree(
        &mut self,
        p: &Page,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
        depth: usize,
        level: usize,
    ) -> Result<(), BoltError> {
        let top = level == 0;
        if depth > MAX_DEPTH {
            return Err(ferr(Some(p.id), "tree deeper than any real database (a cycle?)").into());
        }
        let in_range = |k: &[u8]| lo.is_none_or(|l| k >= l) && hi.is_none_or(|h| k < h);
        match p.flags() {
            BRANCH => {
                if p.count() == 0 {
                    return Err(ferr(Some(p.id), "branch page with no elements").into());
                }
                let elems: Vec<(Vec<u8>, u64)> =
                    (0..p.count()).map(|i| p.branch(i).map(|e| (e.key.to_vec(), e.child))).collect::<Result<_, _>>()?;
                for (i, (k, child)) in elems.iter().enumerate() {
                    if i > 0 && elems[i - 1].0 >= *k {
                        return Err(ferr(Some(p.id), format!("branch keys out of order at element {i}")).into());
                    }
                    // The first key of a branch may lag below its range after deletions (bbolt keeps it).
                    if !in_range(k) && (i != 0 || lo.is_none_or(|l| k.as_slice() > l)) {
                        return Err(
                            ferr(Some(p.id), format!("branch key at element {i} outside its parent's range")).into()
                        );
                    }
                    let next = elems.get(i + 1).map(|e| e.0.as_slice()).or(hi);
                    let lower = if i == 0 { lo } else { Some(k.as_slice()) };
                    let c = self.read(*child)?;
                    self.tree(&c, lower, next, depth + 1, level)?;
                }
            }
            LEAF => {
                let mut prev: Option<Vec<u8>> = None;
                for i in 0..p.count() {
                    let e = p.leaf(i)?;
                    if prev.as_deref().is_some_and(|pk| pk >= e.key) {
                        return Err(ferr(Some(p.id), format!("leaf keys out of order at element {i}")).into());
                    }
                    if !in_range(e.key) {
                        return Err(
                            ferr(Some(p.id), format!("leaf key at element {i} outside its parent's range")).into()
                        );
                    }
                    prev = Some(e.key.to_vec());
                    self.summary.entries += u64::from(!top);
                    if top {
                        self.summary.buckets.push(String::from_utf8_lossy(e.key).to_string());
                        self.visitor.bucket(e.key)?;
                    } else if level == 1 {
                        let v = if e.flags & BUCKET_LEAF != 0 { None } else { Some(e.value) };
                        self.visitor.entry(e.key, v)?;
                    }
                    if e.flags & BUCKET_LEAF != 0 {
                        match BucketRoot::from_value(p.id, e.value)? {
                            BucketRoot::Page(root) => {
                                let c = self.read(root)?;
                                self.tree(&c, None, None, depth + 1, level + 1)?;
                            }
                            BucketRoot::Inline(inline) => {
                                if inline.flags() != LEAF {
                                    return Err(ferr(
                                        Some(p.id),
                                        format!("inline bucket at element {i} is not a leaf page"),
                                    )
                                    .into());
                                }
                                self.tree(&inline, None, None, depth + 1, level + 1)?;
                            }
                        }
                    } else if top {
                        return Err(ferr(Some(p.id), format!("root bucket holds a plain key at element {i}")).into());
                    } else if e.flags != 0 {
                        return Err(ferr(
                            Some(p.id),
                            format!("unknown leaf element flags {:#x} at element {i}", e.flags),
                        )
                        .into());
                    }
                }
            }
            other => {
                let what = match other {
                    FREELIST => "a freelist page".to_string(),
                    super::META => "a meta page".to_string(),
                    _ => format!("invalid page type {other:#04x}"),
                };
                return Err(ferr(Some(p.id), format!("{what} where a branch or leaf page was expected")).into());
            }
        }
        Ok(())
    }
}

/// Walks the whole file; returns the first problem found.
pub fn check(db: &Db) -> Result<Summary, BoltError> {
    walk(db, &mut NoVisitor)
}

/// Walks the whole file, giving the top-level buckets' contents to `visitor`; returns the first
/// problem found.
pub fn walk(db: &Db, visitor: &mut dyn Visitor) -> Result<Summary, BoltError> {
    let meta = *db.meta();
    let ps = meta.page_size as u64;
    let needed = meta.pgid.checked_mul(ps).ok_or_else(|| ferr(None, "high water mark overflows"))?;
    if needed > db.len() {
        return Err(ferr(
            None,
            format!("the file is truncated: the database needs {} pages of {ps} bytes ({needed} bytes), the file has {} bytes", meta.pgid, db.len()),
        )
        .into());
    }
    if meta.pgid < 3 {
        return Err(ferr(None, format!("high water mark {} is too small for a database", meta.pgid)).into());
    }
    let mut w = Walker {
        db,
        marks: vec![Mark::Unseen; meta.pgid as usize],
        summary: Summary { pages: meta.pgid, ..Default::default() },
        visitor,
    };
    w.mark(0, 1, Mark::Used)?;

    if meta.freelist != NO_FREELIST {
        let fl = db.page(meta.freelist)?;
        if fl.flags() != FREELIST {
            return Err(ferr(
                Some(meta.freelist),
                format!("invalid page type {:#04x} where the freelist was expected", fl.flags()),
            )
            .into());
        }
        w.mark(meta.freelist, fl.overflow() as u64, Mark::Used)?;
        for id in fl.freelist_ids()? {
            if id < 2 || id >= meta.pgid {
                return Err(
                    ferr(Some(meta.freelist), format!("freelist lists page {id}, outside 2..{}", meta.pgid)).into()
                );
            }
            w.mark(id, 0, Mark::Free)?;
        }
    }

    let root = w.read(meta.root)?;
    w.tree(&root, None, None, 0, 0)?;

    if meta.freelist != NO_FREELIST {
        if let Some(p) = w.marks.iter().position(|m| *m == Mark::Unseen) {
            return Err(ferr(Some(p as u64), "neither reachable nor free (the file is corrupt)").into());
        }
    }
    w.summary.in_use = w.marks.iter().filter(|m| **m == Mark::Used).count() as u64;
    w.summary.free = w.marks.iter().filter(|m| **m == Mark::Free).count() as u64;
    Ok(w.summary)
}

#[cfg(test)]
mod tests {
    use super::super::writer::DbWriter;
    use super::*;

    const PAGE: usize = 4096;

    /// A database with a `key` bucket of 5 000 keys (a tree of several levels), as bytes.
    fn sample(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
        let path = dir.join("db");
        let mut w = DbWriter::create(&path, PAGE as u32).unwrap();
        {
            let mut b = w.bucket(b"key", 0);
            for i in 0..5_000u32 {
                b.put(format!("k{i:08}").as_bytes(), &[7u8; 40]).unwrap();
            }
            b.finish().unwrap();
        }
        w.finish(0).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    /// The first page of `flags` with at least 3 elements.
    fn find(bytes: &[u8], flags: u16) -> usize {
        (2..bytes.len() / PAGE)
            .find(|i| {
                let p = &bytes[i * PAGE..];
                u16::from_le_bytes([p[8], p[9]]) == flags && u16::from_le_bytes([p[10], p[11]]) >= 3
            })
            .expect("no such page")
    }

    fn verdict(path: &std::path::Path, bytes: &[u8]) -> String {
        std::fs::write(path, bytes).unwrap();
        match check(&Db::open(path).unwrap()) {
            Ok(s) => format!("sound: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_sound_tree_passes() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        assert!(verdict(&path, &bytes).starts_with("sound"), "{}", verdict(&path, &bytes));
    }

    #[test]
    fn leaf_keys_out_of_order_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes) = sample(dir.path());
        let page = find(&bytes, LEAF) * PAGE;
        // Swap the keys of elements 1 and 2 (all keys have the same length).
        let key_at = |b: &[u8], i: usize| {
            let at = page + 16 + i * 16;
            let pos = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
            let ksize = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
            (at + pos, ksize)
        };
        let ((a, n), (b, _)) = (key_at(&bytes, 1), key_at(&bytes, 2));
        let (ka, kb) = (bytes[a..a + n].to_vec(), bytes[b..b + n].to_vec());
        bytes[a..a + n].copy_from_slice(&kb);
        bytes[b..b + n].copy_from_slice(&ka);
        let v = verdict(&path, &bytes);
        assert!(v.contains("leaf keys out of order at element 2"), "{v}");
        assert!(v.contains(&format!("page {}", page / PAGE)), "names the page: {v}");
    }

    #[test]
    fn a_page_referenced_twice_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut bytes) = sample(dir.path());
        let page = find(&bytes, BRANCH) * PAGE;
        // Element 1's child becomes element 0's: one page under two parents' keys.
        let child0 = page + 16 + 8;
        let child1 = page + 16 + 16 + 8;
        let c0 = bytes[child0..child0 + 8].to_vec();
        bytes[child1..child1 + 8].copy_from_slice(&c0);
        let v = verdict(&path, &bytes);
        assert!(v.contains("referenced twice"), "{v}");
    }

    #[test]
    fn a_meta_page_as_a_child_and_a_child_past_the_end_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = sample(dir.path());
        let page = find(&bytes, BRANCH) * PAGE;
        let child = page + 16 + 8;
        for (id, want) in [(1u64, "a meta page is referenced as a tree page"), (1 << 40, "")] {
            let mut b = bytes.clone();
            b[child..child + 8].copy_from_slice(&id.to_le_bytes());
            let v = verdict(&path, &b);
            assert!(!v.starts_with("sound"), "{id}: {v}");
            assert!(v.contains(want), "{v}");
        }
    }
}
