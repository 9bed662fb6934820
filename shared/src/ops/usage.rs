//! `usage`: what fills an etcd database, per Kubernetes resource. Every revision the `key`
//! bucket keeps is read once ([`crate::store::keyspace::walk_keys`], newest first) from a
//! snapshot file (plain or zstd), from a data dir's `member/snap/db` (read without etcd's lock,
//! etcd running or not), or from a snapshot streamed from a member in quorum into a nameless
//! temporary file.
//!
//! Keys are grouped as kube-apiserver lays them out: `/registry/<resource>/[<namespace>/]<name>`
//! for the built-in resources, `/registry/<group>/<resource>/…` for the others (a group has a dot
//! in its name: `apiextensions.k8s.io`, custom resources' groups), `/registry/services/specs` and
//! `/registry/services/endpoints` apart; other keys by their first two segments.
//!
//! The figures, per group: `live_keys` and `live_bytes` (key + value of each key's newest
//! revision, for keys not deleted), `revisions` (every revision kept), `history_bytes` (key +
//! value of the revisions a compaction to the current revision would drop: every revision but
//! the newest of a live key, and every revision of a deleted key), `tombstones` (deletions kept).
//!
//! Memory: the walk goes newest first, so a key's first revision met is its newest; telling the
//! newest from older ones needs the set of keys already met, kept as 64-bit hashes (about 16
//! bytes per distinct key: the history, which is what fills a database, costs nothing). Per
//! group: counters. `largest` and `most_rewritten` are bounded top-N sets. `most_rewritten`
//! ranks live keys by their newest revision's `version` (puts since the key was created, as
//! `etcdctl get -w json` reports it), known when the key is first met, so no per-key counter is
//! kept for all keys; the revisions kept (`versions`) are counted for the keys in the set only,
//! exactly, since a key enters it at its newest revision before any older one is met.

use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::base::units::format_bytes;
use crate::error::{Error, Result};
use crate::store::bbolt::{BoltError, Db};
use crate::store::compress::Compression;
use crate::store::keyspace::{walk_keys, Revision};

/// An object this large is near etcd's request limit (`--max-request-bytes`, 1.5 MiB).
pub const LARGE_OBJECT: u64 = 1 << 20;
/// etcd's default `--max-request-bytes`.
pub const MAX_REQUEST_BYTES: u64 = 1536 * 1024;
/// Below this, no finding about history or rewrites: a small database is not worth a line.
const FINDING_FLOOR: u64 = 64 << 10;
/// Distinct groups counted one by one; past this many, the rest are summed as `(other)` (a
/// keyspace that is not Kubernetes' may have a prefix per key).
pub const MAX_GROUPS: usize = 10_000;

/// How the rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// Per Kubernetes resource.
    #[default]
    Resource,
    /// Per namespace (cluster-scoped objects and non-Kubernetes keys under `""`).
    Namespace,
}

/// Options of `usage`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per resource or per namespace.
    pub by: By,
    /// Entries of `largest` and `most_rewritten`, and rows of the table.
    pub top: usize,
    /// The backend quota the database is held against.
    pub quota: u64,
}

/// The counters of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Keys that exist (their newest revision is not a deletion).
    pub live_keys: u64,
    /// Key + value of those keys' newest revisions.
    pub live_bytes: u64,
    /// Revisions kept, deletions included.
    pub revisions: u64,
    /// Key + value of the revisions a compaction to the current revision drops.
    pub history_bytes: u64,
    /// Deletions kept.
    pub tombstones: u64,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        self.live_keys += o.live_keys;
        self.live_bytes += o.live_bytes;
        self.revisions += o.revisions;
        self.history_bytes += o.history_bytes;
        self.tombstones += o.tombstones;
    }
    /// Live and history bytes.
    pub fn total_bytes(&self) -> u64 {
        self.live_bytes + self.history_bytes
    }
}

/// One resource's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceUsage {
    /// `pods`, `apiextensions.k8s.io/customresourcedefinitions`, `/other/prefix`.
    pub resource: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One namespace's row (`--by namespace`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceUsage {
    /// The namespace; `""` for cluster-scoped objects and keys outside `/registry/`.
    pub namespace: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Figures,
}

/// One of the largest live objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Largest {
    /// The key.
    pub key: String,
    /// Key + value of its newest revision.
    pub bytes: u64,
    /// Its resource.
    pub resource: String,
}

/// One of the most rewritten live keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewritten {
    /// The key.
    pub key: String,
    /// Revisions of it the database keeps.
    pub versions: u64,
    /// etcd's `version` of its newest revision: puts since it was created.
    pub version: i64,
    /// The revision that created it.
    pub create_revision: i64,
    /// Its resource.
    pub resource: String,
}

/// A pattern worth acting on, and the next step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable name: `history`, `event-storm`, `lease-storm`, `rewrites`, `large-objects`,
    /// `free-pages`, `quota`.
    pub id: String,
    /// What was found, with its figures.
    pub message: String,
    /// What to do.
    pub next: String,
}

/// Where the database came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// `file`, `data-dir` or `member`.
    pub kind: String,
    /// The file or data dir (`member`: none; the snapshot went to a nameless temporary file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The member the snapshot was streamed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Its endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How the file is stored.
    pub compression: Compression,
    /// The file's (or the streamed snapshot's) size.
    pub size: u64,
}

/// What `usage` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// Where the database came from.
    pub source: Source,
    /// The newest revision kept.
    pub revision: i64,
    /// The last compaction finished (0: never compacted).
    pub compacted_revision: i64,
    /// The database size (pages in use × page size, as etcd's `dbSize`).
    pub db_size: u64,
    /// The quota it is held against.
    pub quota: u64,
    /// Page size.
    pub page_size: u32,
    /// Free pages: what a defragmentation returns.
    pub free_pages: u64,
    /// The same in bytes.
    pub free_bytes: u64,
    /// The sum of every row.
    pub totals: Figures,
    /// Per resource, the most bytes first.
    pub resources: Vec<ResourceUsage>,
    /// Per namespace (`--by namespace`), the most bytes first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<NamespaceUsage>>,
    /// The largest live objects, largest first.
    pub largest: Vec<Largest>,
    /// The live keys written most often, most first.
    pub most_rewritten: Vec<Rewritten>,
    /// One line per pattern worth acting on.
    pub findings: Vec<Finding>,
    /// How the table groups its rows.
    #[serde(skip)]
    pub by: By,
    /// Rows in the table.
    #[serde(skip)]
    pub top: usize,
}

/// The resource and namespace of a key: spans of the key (start, end), the namespace's
/// empty for cluster-scoped objects and keys outside `/registry/`.
pub fn classify(key: &[u8]) -> (&[u8], &[u8]) {
    const REG: &[u8] = b"/registry/";
    let seg_end = |from: usize| key[from..].iter().position(|b| *b == b'/').map_or(key.len(), |p| from + p);
    if let Some(rest) = key.strip_prefix(REG) {
        let start = REG.len();
        let first = seg_end(start);
        let first_seg = &key[start..first];
        let two = first_seg.contains(&b'.') || first_seg == b"services";
        let end = if two && first < key.len() { seg_end(first + 1) } else { first };
        let resource = &key[start..end];
        // What follows the resource: [namespace/]name.
        let after = if end < key.len() { end + 1 } else { key.len() };
        let ns = if after < key.len() {
            let ns_end = seg_end(after);
            if ns_end < key.len() {
                &key[after..ns_end]
            } else {
                &key[..0]
            }
        } else {
            &key[..0]
        };
        let _ = rest;
        return (resource, ns);
    }
    // Other keys: the first two segments (a leading slash starts the first).
    let lead = usize::from(key.first() == Some(&b'/'));
    let first = seg_end(lead.min(key.len()));
    let end = if first < key.len() { seg_end(first + 1) } else { first };
    (&key[..end], &key[..0])
}

/// Counters per group, at most [`MAX_GROUPS`] of them.
#[derive(Default)]
struct Groups {
    map: HashMap<Vec<u8>, Figures>,
    other: Figures,
}

impl Groups {
    fn get(&mut self, name: &[u8]) -> &mut Figures {
        if !self.map.contains_key(name) {
            if self.map.len() >= MAX_GROUPS {
                return &mut self.other;
            }
            self.map.insert(name.to_vec(), Figures::default());
        }
        self.map.get_mut(name).unwrap_or(&mut self.other)
    }
    fn rows(self) -> Vec<(String, Figures)> {
        let mut v: Vec<(String, Figures)> =
            self.map.into_iter().map(|(k, f)| (String::from_utf8_lossy(&k).into_owned(), f)).collect();
        if self.other.revisions > 0 {
            v.push(("(other)".into(), self.other));
        }
        v.sort_by(|a, b| b.1.total_bytes().cmp(&a.1.total_bytes()).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

struct Tracked {
    key: Vec<u8>,
    version: i64,
    create_revision: i64,
    versions: u64,
}

/// The analysis of one walk.
struct Tally {
    seen: HashSet<u64, BuildHasherDefault<DefaultHasher>>,
    hasher: BuildHasherDefault<DefaultHasher>,
    resources: Groups,
    namespaces: Groups,
    top: usize,
    largest: BinaryHeap<std::cmp::Reverse<(u64, Vec<u8>)>>,
    rewritten: HashMap<u64, Tracked>,
    rewritten_order: BTreeSet<(i64, std::cmp::Reverse<Vec<u8>>, u64)>,
    large: (u64, u64, Vec<u8>),
    revision: i64,
}

impl Tally {
    fn new(top: usize) -> Tally {
        Tally {
            seen: HashSet::default(),
            hasher: BuildHasherDefault::default(),
            resources: Groups::default(),
            namespaces: Groups::default(),
            top,
            largest: BinaryHeap::new(),
            rewritten: HashMap::new(),
            rewritten_order: BTreeSet::new(),
            large: (0, 0, Vec::new()),
            revision: 0,
        }
    }

    fn visit(&mut self, r: &Revision<'_>) {
        if self.revision == 0 {
            self.revision = r.main;
        }
        let h = self.hasher.hash_one(r.key);
        let newest = self.seen.insert(h);
        let bytes = (r.key.len() + r.value.len()) as u64;
        let (resource, ns) = classify(r.key);
        let mut f = Figures { revisions: 1, ..Default::default() };
        if r.tombstone {
            f.tombstones = 1;
        }
        if newest && !r.tombstone {
            f.live_keys = 1;
            f.live_bytes = bytes;
            self.consider(r, bytes, h);
        } else {
            f.history_bytes = bytes;
            if let Some(t) = self.rewritten.get_mut(&h) {
                t.versions += 1;
            }
        }
        self.resources.get(resource).add(&f);
        self.namespaces.get(ns).add(&f);
    }

    /// A live key at its newest revision: a candidate for `largest` and `most_rewritten`.
    fn consider(&mut self, r: &Revision<'_>, bytes: u64, h: u64) {
        if bytes >= LARGE_OBJECT {
            self.large.0 += 1;
            if bytes > self.large.1 {
                self.large = (self.large.0, bytes, r.key.to_vec());
            }
        }
        if self.top == 0 {
            return;
        }
        let admit = self.largest.len() < self.top
            || self.largest.peek().is_some_and(|m| (bytes, r.key) > (m.0 .0, &m.0 .1[..]));
        if admit {
            self.largest.push(std::cmp::Reverse((bytes, r.key.to_vec())));
            if self.largest.len() > self.top {
                self.largest.pop();
            }
        }
        let entry = (r.version, std::cmp::Reverse(r.key.to_vec()), h);
        let admit = self.rewritten.len() < self.top || self.rewritten_order.first().is_some_and(|m| entry > *m);
        if admit {
            self.rewritten.insert(
                h,
                Tracked { key: r.key.to_vec(), version: r.version, create_revision: r.create_revision, versions: 1 },
            );
            self.rewritten_order.insert(entry);
            if self.rewritten.len() > self.top {
                if let Some(min) = self.rewritten_order.pop_first() {
                    self.rewritten.remove(&min.2);
                }
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn resource_name(key: &[u8]) -> String {
    text(classify(key).0)
}

/// Analyses an open database.
pub fn analyse(db: &Db, source: Source, opts: &Options) -> std::result::Result<Usage, BoltError> {
    let mut t = Tally::new(opts.top);
    let (pages, compaction) = walk_keys(db, &mut |r| {
        t.visit(r);
        Ok(())
    })?;
    let resources: Vec<ResourceUsage> = std::mem::take(&mut t.resources)
        .rows()
        .into_iter()
        .map(|(resource, figures)| ResourceUsage { resource, figures })
        .collect();
    let mut totals = Figures::default();
    for r in &resources {
        totals.add(&r.figures);
    }
    let namespaces = (opts.by == By::Namespace).then(|| {
        std::mem::take(&mut t.namespaces)
            .rows()
            .into_iter()
            .map(|(namespace, figures)| NamespaceUsage { namespace, figures })
            .collect()
    });
    let mut largest: Vec<Largest> = t
        .largest
        .drain()
        .map(|std::cmp::Reverse((bytes, key))| Largest { resource: resource_name(&key), key: text(&key), bytes })
        .collect();
    largest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
    let mut most_rewritten: Vec<Rewritten> = t
        .rewritten
        .drain()
        .map(|(_, k)| Rewritten {
            resource: resource_name(&k.key),
            key: text(&k.key),
            versions: k.versions,
            version: k.version,
            create_revision: k.create_revision,
        })
        .collect();
    most_rewritten.sort_by(|a, b| b.version.cmp(&a.version).then_with(|| a.key.cmp(&b.key)));
    let page_size = pages.page_size;
    let mut u = Usage {
        source,
        revision: t.revision,
        compacted_revision: compaction.finished,
        db_size: pages.total * page_size as u64,
        quota: opts.quota,
        page_size,
        free_pages: pages.free,
        free_bytes: pages.free * page_size as u64,
        totals,
        resources,
        namespaces,
        largest,
        most_rewritten,
        findings: Vec::new(),
        by: opts.by,
        top: opts.top,
    };
    u.findings = findings(&u, (t.large.0, t.large.1, &text(&t.large.2)));
    Ok(u)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// The patterns worth acting on, each with its next step.
pub fn findings(u: &Usage, large: (u64, u64, &str)) -> Vec<Finding> {
    let mut out = Vec::new();
    let f = |id: &str, message: String, next: String| Finding { id: id.into(), message, next };
    let all = u.totals.total_bytes();
    // History much larger than the live data: compaction is not keeping up.
    if u.totals.history_bytes >= FINDING_FLOOR && u.totals.history_bytes > u.totals.live_bytes {
        let since = if u.compacted_revision == 0 {
            "the database was never compacted".to_string()
        } else {
            format!(
                "{} revisions since the last compaction (at {})",
                u.revision - u.compacted_revision,
                u.compacted_revision
            )
        };
        out.push(f(
            "history",
            format!(
                "history takes {} ({:.1}x the {} of live data): {since}",
                format_bytes(u.totals.history_bytes),
                u.totals.history_bytes as f64 / u.totals.live_bytes.max(1) as f64,
                format_bytes(u.totals.live_bytes)
            ),
            "is kube-apiserver's compaction running? It compacts every --etcd-compaction-interval (default 5m; 0 turns it off); `kubectl etcd defrag --compact` drops the history now".into(),
        ));
    }
    // One resource's history: an event storm, lease renewals, a controller rewriting objects.
    for r in &u.resources {
        let g = &r.figures;
        if g.history_bytes < FINDING_FLOOR || g.revisions < 10 * g.live_keys.max(1) || pct(g.history_bytes, all) < 10.0
        {
            continue;
        }
        let what = format!(
            "{} revisions kept for {} live key(s), {} of history ({:.0}% of the data)",
            g.revisions,
            g.live_keys,
            format_bytes(g.history_bytes),
            pct(g.history_bytes, all)
        );
        let base = r.resource.rsplit('/').next().unwrap_or(&r.resource);
        match base {
            "events" => out.push(f(
                "event-storm",
                format!("an event storm in {}: {what}", r.resource),
                "find what emits them (kubectl get events -A --sort-by=.count | tail); kube-apiserver's --event-ttl (default 1h) bounds how long they live".into(),
            )),
            "leases" => out.push(f(
                "lease-storm",
                format!("leases renewed faster than compaction drops them: {what}"),
                "renewals are expected (nodes every 10s, leader election every few seconds): check that kube-apiserver compacts (--etcd-compaction-interval) and no controller renews too often".into(),
            )),
            _ => out.push(f(
                "rewrites",
                format!("{} is rewritten often: {what}", r.resource),
                "find the controller writing it (the most rewritten keys below; kube-apiserver's audit log names the writer)".into(),
            )),
        }
    }
    let (count, bytes, key) = large;
    if count > 0 {
        out.push(f(
            "large-objects",
            format!(
                "{count} object(s) over {}, near etcd's {} request limit: the largest is {key} ({})",
                format_bytes(LARGE_OBJECT),
                format_bytes(MAX_REQUEST_BYTES),
                format_bytes(bytes)
            ),
            "a write past --max-request-bytes fails: shrink the object (a CRD's schema, a ConfigMap's or Secret's data) or split it".into(),
        ));
    }
    // What defrag's default rule takes: 10% of the file or 100 MiB free.
    if u.free_bytes > 0 && (pct(u.free_bytes, u.db_size) >= 10.0 || u.free_bytes >= 100 << 20) {
        out.push(f(
            "free-pages",
            format!(
                "{} of the {} file is free pages ({:.0}%): a defragmentation returns it",
                format_bytes(u.free_bytes),
                format_bytes(u.db_size),
                pct(u.free_bytes, u.db_size)
            ),
            "kubectl etcd defrag (one member at a time, the leader last); kubectl etcd defrag schedule keeps it done"
                .into(),
        ));
    }
    if pct(u.db_size, u.quota) >= 80.0 {
        out.push(f(
            "quota",
            format!(
                "the database is {} of its {} quota ({:.0}%)",
                format_bytes(u.db_size),
                format_bytes(u.quota),
                pct(u.db_size, u.quota)
            ),
            "kubectl etcd defrag --compact now; when the live data alone is near the quota, raise --quota-backend-bytes (at most 8 GiB)".into(),
        ));
    }
    out
}

/// Maps a reader error to the crate's, naming the file.
pub fn file_error(path: &Path, e: BoltError) -> Error {
    match e {
        BoltError::Io { source, .. } => {
            Error::ReadFile { input: true, what: "database", path: path.to_path_buf(), source }
        }
        BoltError::Format(f) => Error::Corrupt {
            path: path.to_path_buf(),
            reason: format!("{f}: not a readable etcd database (a snapshot file, or a data dir's member/snap/db)"),
        },
    }
}

/// `usage FILE`: a snapshot file, plain or zstd, or a copy of `member/snap/db`.
pub fn of_file(path: &Path, opts: &Options) -> Result<Usage> {
    let opened = crate::store::snapfile::open(path)?;
    let source = Source {
        kind: "file".into(),
        path: Some(path.to_path_buf()),
        member: None,
        endpoint: None,
        compression: opened.compression,
        size: opened.file_size,
    };
    analyse(&opened.db, source, opts).map_err(|e| file_error(path, e))
}

/// `usage DATA_DIR`: the data dir's `member/snap/db` (DATA_DIR or DATA_DIR/member), read without
/// etcd's lock while etcd may be writing it: bbolt writes new pages before it switches its meta
/// page, but a page freed and reused during the walk can be met; a walk that meets one is tried
/// again, a few times.
pub fn of_data_dir(dir: &Path, opts: &Options) -> Result<Usage> {
    let db_path =
        [dir.join("member/snap/db"), dir.join("snap/db")].into_iter().find(|p| p.is_file()).ok_or_else(|| {
            Error::Usage(format!(
                "{} is a directory without member/snap/db: name an etcd data dir (--data-dir) or a snapshot file",
                dir.display()
            ))
        })?;
    let mut last = None;
    for _ in 0..5 {
        let source = Source {
            kind: "data-dir".into(),
            path: Some(dir.to_path_buf()),
            member: None,
            endpoint: None,
            compression: Compression::None,
            size: std::fs::metadata(&db_path).map(|m| m.len()).unwrap_or(0),
        };
        match Db::open(&db_path).and_then(|db| analyse(&db, source, opts)) {
            Ok(u) => return Ok(u),
            Err(e @ BoltError::Io { .. }) => return Err(file_error(&db_path, e)),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err(file_error(&db_path, last.unwrap_or_else(|| BoltError::Format(crate::store::bbolt::ferr(None, "unreadable")))))
}

/// `usage PATH`: a data dir when PATH is a directory, else a snapshot file.
pub fn of_path(path: &Path, opts: &Options) -> Result<Usage> {
    if path.is_dir() {
        of_data_dir(path, opts)
    } else {
        of_file(path, opts)
    }
}

/// A nameless temporary file a snapshot streams into, its sha256 trailer checked on the way.
struct TempSink {
    file: std::io::BufWriter<std::fs::File>,
    sum: crate::store::compress::TrailerSum,
}

impl crate::ops::snapshot::Sink for TempSink {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        use std::io::Write;
        self.file.write_all(chunk).map_err(|source| Error::Io {
            action: "write the snapshot into a temporary file (it needs the database's size free in $TMPDIR; set TMPDIR elsewhere)".into(),
            source,
        })?;
        self.sum.update(chunk);
        Ok(())
    }
    fn written(&self) -> u64 {
        self.sum.len()
    }
    fn name(&self) -> PathBuf {
        PathBuf::from("(temporary file)")
    }
}

/// `usage` with no path: a snapshot streamed from a member in quorum (as `snapshot save`
/// chooses it, with its deadlines) into a nameless temporary file, then analysed; the file is
/// gone when the process ends.
pub async fn of_cluster(
    session: &crate::reach::cluster::Session,
    save: &crate::ops::snapshot::SaveOptions,
    opts: &Options,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Usage> {
    let tmp = std::env::temp_dir();
    let file = crate::store::compress::nameless_in(&tmp).map_err(|source| Error::Io {
        action: format!(
            "create a temporary file in {} for the snapshot (set TMPDIR to a writable directory)",
            tmp.display()
        ),
        source,
    })?;
    let mut sink = TempSink { file: std::io::BufWriter::with_capacity(1 << 20, file), sum: Default::default() };
    let (member, url, _) = crate::ops::snapshot::stream(session, save, &mut sink, progress).await?;
    let len = sink.sum.len();
    let name = PathBuf::from(format!("the snapshot from {}", member.name));
    let trailer = std::mem::take(&mut sink.sum).trailer();
    if trailer == crate::store::trailer::Trailer::Mismatch {
        return Err(Error::Corrupt {
            path: name,
            reason: "sha256 mismatch: the stream was corrupted on the way".into(),
        });
    }
    let file = sink
        .file
        .into_inner()
        .map_err(|e| Error::Io { action: "write the snapshot into a temporary file".into(), source: e.into_error() })?;
    let source = Source {
        kind: "member".into(),
        path: None,
        member: Some(member.name.clone()),
        endpoint: Some(url),
        compression: Compression::None,
        size: len,
    };
    let opts = opts.clone();
    tokio::task::spawn_blocking(move || {
        let db = Db::from_file(file, &name).map_err(|e| file_error(&name, e))?;
        analyse(&db, source, &opts).map_err(|e| file_error(&name, e))
    })
    .await
    .map_err(Error::from_join)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_as_kube_apiserver_lays_them_out() {
        let c = |k: &str| {
            let (r, n) = classify(k.as_bytes());
            (String::from_utf8_lossy(r).into_owned(), String::from_utf8_lossy(n).into_owned())
        };
        assert_eq!(c("/registry/pods/default/web-1"), ("pods".into(), "default".into()));
        assert_eq!(c("/registry/minions/node-1"), ("minions".into(), "".into()));
        assert_eq!(
            c("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"),
            ("apiextensions.k8s.io/customresourcedefinitions".into(), "".into())
        );
        assert_eq!(c("/registry/example.com/widgets/team-a/w1"), ("example.com/widgets".into(), "team-a".into()));
        assert_eq!(c("/registry/services/specs/default/kubernetes"), ("services/specs".into(), "default".into()));
        assert_eq!(
            c("/registry/services/endpoints/default/kubernetes"),
            ("services/endpoints".into(), "default".into())
        );
        assert_eq!(c("/registry/leases/kube-node-lease/n1"), ("leases".into(), "kube-node-lease".into()));
        assert_eq!(c("/registry/compact_rev_key"), ("compact_rev_key".into(), "".into()));
        assert_eq!(c("/other/prefix/deeper/key"), ("/other/prefix".into(), "".into()));
        assert_eq!(c("/solo"), ("/solo".into(), "".into()));
        assert_eq!(c("plain"), ("plain".into(), "".into()));
        assert_eq!(c("a/b/c"), ("a/b".into(), "".into()));
        assert_eq!(c(""), ("".into(), "".into()));
        assert_eq!(c("/registry/"), ("".into(), "".into()));
    }

    fn rev<'a>(main: i64, key: &'a [u8], value: &'a [u8], version: i64, tombstone: bool) -> Revision<'a> {
        Revision { main, sub: 0, tombstone, key, value, create_revision: 1, version, lease: 0, stored: 0 }
    }

    #[test]
    fn newest_first_splits_live_from_history() {
        let mut t = Tally::new(1);
        // Newest first: a pod at its third version, a deleted secret, an event.
        t.visit(&rev(9, b"/registry/pods/a/p", b"k8s\x00333", 3, false));
        t.visit(&rev(8, b"/registry/secrets/a/s", b"", 0, true));
        t.visit(&rev(7, b"/registry/pods/a/p", b"k8s\x0022", 2, false));
        t.visit(&rev(6, b"/registry/events/a/e", b"k8s\0e", 1, false));
        t.visit(&rev(5, b"/registry/secrets/a/s", b"k8s\0s", 1, false));
        t.visit(&rev(4, b"/registry/pods/a/p", b"k8s\x001", 1, false));
        let rows: HashMap<String, Figures> = std::mem::take(&mut t.resources).rows().into_iter().collect();
        let pods = rows["pods"];
        assert_eq!(
            (pods.live_keys, pods.live_bytes, pods.revisions, pods.history_bytes, pods.tombstones),
            (1, 18 + 7, 3, 18 + 6 + 18 + 5, 0)
        );
        let s = rows["secrets"];
        assert_eq!((s.live_keys, s.live_bytes, s.revisions, s.history_bytes, s.tombstones), (0, 0, 2, 21 + 21 + 5, 1));
        // The top-1 rewritten key is the pod, with its three revisions counted.
        let (_, tr) = t.rewritten.iter().next().unwrap();
        assert_eq!((tr.key.as_slice(), tr.version, tr.versions), (&b"/registry/pods/a/p"[..], 3, 3));
        assert_eq!(t.largest.peek().unwrap().0 .1, b"/registry/pods/a/p");
        assert_eq!(t.revision, 9);
    }
}
