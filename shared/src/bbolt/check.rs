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
