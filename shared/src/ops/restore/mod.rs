//! Native snapshot restore: the contract of `etcdutl snapshot restore`, in Rust. A restored
//! data dir holds
//! - `member/snap/db`: a copy of the snapshot's database (its pages copied in the kernel, as
//!   etcdutl copies the file), patched copy-on-write as a bbolt commit would: the membership
//!   replaced by the new cluster's (`members` holds each member's JSON under its hex ID,
//!   `members_removed` is empty) and `meta` carrying `consistent_index` = member count and
//!   `term` = 1, in new pages past the high water mark; the copy is then walked whole;
//! - `member/snap/<term>-<index>.snap`: the v2 store (where etcd 3.4 and 3.5 read membership
//!   from) inside a CRC-checked `snappb.Snapshot`;
//! - `member/wal/0000000000000000-0000000000000000.wal`: metadata (member and cluster ID), one
//!   ConfChange AddNode entry per member, the hard state (term 1, commit = member count), and a
//!   snapshot marker at that index with the voters.
//!
//! Member IDs are etcd's: the first 8 bytes (big endian) of sha1 over the member's sorted peer
//! URLs and the cluster token; the cluster ID is sha1 over the sorted member IDs.

pub mod node;
pub mod wal;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::reach::url::{EtcdUrl, InitialCluster};
use crate::store::bbolt::writer::DbWriter;
use crate::store::bbolt::{check, BoltError, BucketRoot, BucketValue, Db};
use crate::store::pb;
use crate::store::trailer::{has_trailer, Trailer};

/// etcd's default `--initial-cluster-token`.
pub const DEFAULT_TOKEN: &str = "etcd-cluster";

/// One member of the cluster being restored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NewMember {
    /// Name.
    pub name: String,
    /// ID, as etcd derives it.
    #[serde(serialize_with = "crate::base::units::ser_hex")]
    pub id: u64,
    /// Peer URLs, sorted.
    pub peer_urls: Vec<String>,
}

/// The ID etcd gives a member: sha1(sorted peer URLs joined, token), first 8 bytes big endian.
pub fn compute_member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut h = Sha1::new();
    h.update(urls.concat().as_bytes());
    h.update(token.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

/// The cluster ID etcd derives from its member IDs.
pub fn compute_cluster_id(ids: &[u64]) -> u64 {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

/// Parses `--initial-cluster` (`name=url,name=url2,...`; a name may repeat for several URLs)
/// into members sorted by ID.
pub fn parse_initial_cluster(spec: &str, token: &str) -> Result<Vec<NewMember>> {
    let mut members: Vec<NewMember> = InitialCluster::parse(spec)?
        .by_name()
        .into_iter()
        .map(|(name, urls)| NewMember { id: compute_member_id(&urls, token), name, peer_urls: urls })
        .collect();
    members.sort_by_key(|m| m.id);
    Ok(members)
}

#[derive(Serialize)]
struct MemberJson<'a> {
    id: u64,
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    name: &'a str,
}

/// The member JSON etcd stores in the `members` bucket and in ConfChange contexts.
pub fn member_json(m: &NewMember) -> String {
    serde_json::to_string(&MemberJson { id: m.id, peer_urls: &m.peer_urls, name: &m.name }).unwrap_or_default()
}

fn raft_attributes(m: &NewMember) -> String {
    #[derive(Serialize)]
    struct R<'a> {
        #[serde(rename = "peerURLs")]
        peer_urls: &'a [String],
    }
    serde_json::to_string(&R { peer_urls: &m.peer_urls }).unwrap_or_default()
}

/// The v2 store, as etcd serializes it, holding `/0/members/<id>/raftAttributes` for every
/// member (created in ID order, indexes 1..=N).
pub fn v2_store_json(members: &[NewMember]) -> String {
    use serde_json::{json, Map, Value};
    const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
    let node = |path: &str, idx: u64, value: &str, children: Value| json!({"Path": path, "CreatedIndex": idx, "ModifiedIndex": idx, "ExpireTime": ZERO_TIME, "Value": value, "Children": children});
    let mut member_nodes = Map::new();
    let mut events = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let idx = i as u64 + 1;
        let key = format!("{:x}", m.id);
        let dir = format!("/0/members/{key}");
        let attr_path = format!("{dir}/raftAttributes");
        let attrs = raft_attributes(m);
        let mut children = Map::new();
        children.insert("raftAttributes".into(), node(&attr_path, idx, &attrs, Value::Null));
        member_nodes.insert(key, node(&dir, idx, "", Value::Object(children)));
        events.push(json!({"action": "create", "node": {"key": attr_path, "value": attrs, "modifiedIndex": idx, "createdIndex": idx}}));
    }
    let n = members.len() as u64;
    let mut queue: Vec<Value> = events;
    queue.resize(1000, Value::Null);
    let mut zero = Map::new();
    zero.insert("members".into(), node("/0/members", 1, "", Value::Object(member_nodes)));
    let mut root_children = Map::new();
    root_children.insert("0".into(), node("/0", 0, "", Value::Object(zero)));
    root_children.insert("1".into(), node("/1", 0, "", Value::Object(Map::new())));
    let doc = json!({
        "Root": node("/", 0, "", Value::Object(root_children)),
        "WatcherHub": {"EventHistory": {"Queue": {"Events": queue, "Size": n, "Front": 0, "Back": n, "Capacity": 1000}, "StartIndex": 1, "LastIndex": n}},
        "CurrentIndex": n,
        "Stats": {
            "getsSuccess": 0, "getsFail": 0, "setsSuccess": 0, "setsFail": 0, "deleteSuccess": 0, "deleteFail": 0,
            "updateSuccess": 0, "updateFail": 0, "createSuccess": n, "createFail": 0, "compareAndSwapSuccess": 0,
            "compareAndSwapFail": 0, "compareAndDeleteSuccess": 0, "compareAndDeleteFail": 0, "expireCount": 0, "watchers": 0
        },
        "CurrentVersion": 2
    });
    serde_json::to_string(&doc).unwrap_or_default()
}

/// 17-byte revision key (`main` big endian, `_`, `sub` big endian).
pub fn rev_bytes(main: i64, sub: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    b.extend_from_slice(&main.to_be_bytes());
    b.push(b'_');
    b.extend_from_slice(&sub.to_be_bytes());
    b
}

/// Which engine performs the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// This crate's native implementation.
    Native,
    /// `etcdutl snapshot restore` found on PATH (for comparison).
    Etcdutl,
}

/// What to restore, and how.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The snapshot (or a copy of `member/snap/db` with `skip_hash_check`).
    pub snapshot: PathBuf,
    /// Target data dir; must not exist or be empty.
    pub data_dir: PathBuf,
    /// This member's name.
    pub name: String,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-advertise-peer-urls` (default: this member's URLs in the initial cluster).
    pub initial_advertise_peer_urls: Option<Vec<String>>,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Accept a file without (or with a mismatching) sha256 trailer check.
    pub skip_hash_check: bool,
    /// Raise the revision by this much.
    pub bump_revision: Option<u64>,
    /// Mark the (bumped) revision compacted.
    pub mark_compacted: bool,
    /// Native or etcdutl.
    pub engine: Engine,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// The data dir written.
    pub data_dir: PathBuf,
    /// This member.
    pub member: NewMember,
    /// Cluster ID.
    #[serde(serialize_with = "crate::base::units::ser_hex")]
    pub cluster_id: u64,
    /// Every member of the new cluster.
    pub members: Vec<NewMember>,
    /// The snapshot's revision.
    pub revision: i64,
    /// The revision after the bump, when bumped.
    pub bumped_to: Option<i64>,
    /// Keys in the `key` bucket (revisions, tombstones included).
    pub key_entries: u64,
    /// The engine used.
    pub engine: Engine,
    /// How long it took.
    #[serde(rename = "duration_ms", with = "crate::base::units::duration_ms")]
    pub duration: Duration,
}

/// A restore into a new data dir and what the other members must do (`restore apply`, and
/// `restore from-data-dir` without a manifest).
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The restore.
    #[serde(flatten)]
    pub applied: Applied,
    /// What to do next.
    pub next_steps: Vec<String>,
    /// The snapshot restored.
    #[serde(skip)]
    pub snapshot: PathBuf,
    /// A one-member cluster rebuilt from a surviving member's data dir.
    #[serde(skip)]
    pub from_data_dir: bool,
}

/// Restores (on a blocking thread: it is file work) and says what comes next.
pub async fn apply_and_plan(opts: ApplyOptions, from_data_dir: bool) -> Result<Restored> {
    let snapshot = opts.snapshot.clone();
    let token = opts.token.clone();
    let applied = tokio::task::spawn_blocking(move || apply(&opts)).await.map_err(Error::from_join)??;
    let next_steps = next_steps(&applied, &snapshot, &token);
    Ok(Restored { applied, next_steps, snapshot, from_data_dir })
}

/// What the other members must do after a restore.
pub fn next_steps(a: &Applied, snapshot: &Path, token: &str) -> Vec<String> {
    let mut cluster = InitialCluster::default();
    for m in &a.members {
        cluster.push(&m.name, &m.peer_urls);
    }
    let mut steps = Vec::new();
    for m in a.members.iter().filter(|m| m.name != a.member.name) {
        steps.push(format!(
            "on {}: kubectl etcd restore apply {} --data-dir <its data dir> --name {} --initial-cluster {cluster} --initial-cluster-token {token}{}",
            m.name,
            snapshot.display(),
            m.name,
            if a.bumped_to.is_some() { " --bump-revision <same> --mark-compacted" } else { "" }
        ));
    }
    let start = if a.members.len() == 1 { "start etcd on it" } else { "start etcd on every member" };
    steps.push(format!(
        "{start}: the restored data dirs form cluster {} (etcd ignores the --initial-cluster* flags once a data dir exists)",
        crate::base::units::member_id(a.cluster_id)
    ));
    if a.members.len() == 1 {
        steps.push(
            "to grow the cluster again, add members as learners: kubectl etcd learner add NAME --peer-urls URL".into(),
        );
    }
    steps
}

/// The restore of a surviving member's data dir into a new one-member cluster, when no
/// manifest says where (`restore from-data-dir --data-dir --name --initial-advertise-peer-urls`).
pub fn from_data_dir_options(dir: &Path, data_dir: PathBuf, name: String, peer_urls: Vec<String>) -> ApplyOptions {
    ApplyOptions {
        snapshot: dir.join("member/snap/db"),
        data_dir,
        initial_cluster: InitialCluster::single(&name, &peer_urls).to_string(),
        name,
        initial_advertise_peer_urls: Some(peer_urls),
        token: DEFAULT_TOKEN.into(),
        skip_hash_check: true,
        bump_revision: None,
        mark_compacted: false,
        engine: Engine::Native,
    }
}

/// The plan of a restore into a new data dir (`--dry-run`), checked by [`prepare`].
#[derive(Debug, Clone, Serialize)]
pub struct ApplyPlan {
    /// Always true: nothing was changed.
    pub dry_run: bool,
    /// The snapshot (or data dir database).
    pub snapshot: PathBuf,
    /// Whether the sha256 trailer is skipped.
    pub skip_hash_check: bool,
    /// The data dir to create.
    pub data_dir: PathBuf,
    /// The member restored.
    pub name: String,
    /// The new cluster.
    pub initial_cluster: String,
    /// Its token.
    pub token: String,
}

/// Checks the options and the snapshot and returns the plan; writes nothing.
pub fn plan(opts: &ApplyOptions) -> Result<ApplyPlan> {
    prepare(opts)?;
    Ok(ApplyPlan {
        dry_run: true,
        snapshot: opts.snapshot.clone(),
        skip_hash_check: opts.skip_hash_check,
        data_dir: opts.data_dir.clone(),
        name: opts.name.clone(),
        initial_cluster: opts.initial_cluster.clone(),
        token: opts.token.clone(),
    })
}

fn io_err(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let action = action.into();
    move |source| Error::Io { action, source }
}

fn bolt_err(path: &Path) -> impl Fn(BoltError) -> Error + '_ {
    move |e| match e {
        BoltError::Io { source, .. } => {
            Error::ReadFile { input: true, what: "snapshot", path: path.to_path_buf(), source }
        }
        BoltError::Format(f) => Error::Corrupt { path: path.to_path_buf(), reason: f.to_string() },
    }
}

/// The sha256 trailer check of a restore: known already (absent, skipped, or checked while a
/// compressed file was decompressed), or under way on its own thread while the restore walks
/// and writes, so that the file's hash costs no wall time of its own.
#[derive(Debug)]
pub enum TrailerCheck {
    /// Known.
    Known(Trailer),
    /// Hashing on a thread.
    Pending(std::thread::JoinHandle<Result<Trailer>>),
}

impl TrailerCheck {
    /// Waits for the verdict; a mismatch is an error unless `skip_hash_check`.
    pub fn wait(self, path: &Path, skip_hash_check: bool) -> Result<Trailer> {
        let t = match self {
            TrailerCheck::Known(t) => t,
            TrailerCheck::Pending(h) => {
                h.join().map_err(|_| Error::Internal("the trailer thread panicked".into()))??
            }
        };
        if t == Trailer::Mismatch && !skip_hash_check {
            return Err(mismatch(path));
        }
        Ok(t)
    }
}

fn mismatch(path: &Path) -> Error {
    Error::Corrupt { path: path.to_path_buf(), reason: "sha256 mismatch: snapshot is corrupt or truncated".into() }
}

/// Validates the options and the snapshot without writing anything; returns the members, this
/// member, the database and its revision.
pub fn prepare(opts: &ApplyOptions) -> Result<(Vec<NewMember>, NewMember, Db, i64)> {
    let c = prepare_deferred(opts, Walk::Now)?;
    c.trailer.wait(&opts.snapshot, opts.skip_hash_check)?;
    Ok((c.members, c.me, c.db, c.revision))
}

/// When [`prepare_deferred`] walks the snapshot's structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Before it returns.
    Now,
    /// Not at all: the caller walks the restored copy instead, every page of which is the
    /// snapshot's or its own (the native restore). Etcd's layout is still checked.
    OnTheCopy,
}

/// What [`prepare_deferred`] found: the members to restore, this one, the snapshot's database
/// and revision, and its trailer check (perhaps still running).
#[derive(Debug)]
pub struct Checked {
    /// Every member of `--initial-cluster`.
    pub members: Vec<NewMember>,
    /// The member restored here.
    pub me: NewMember,
    /// The snapshot's database.
    pub db: Db,
    /// Its revision.
    pub revision: i64,
    /// Its sha256 trailer check.
    pub trailer: TrailerCheck,
}

/// `--initial-cluster` parsed, with this member in it at its `--initial-advertise-peer-urls`;
/// and the flags that go together.
fn check_membership(opts: &ApplyOptions) -> Result<(Vec<NewMember>, NewMember)> {
    let members = parse_initial_cluster(&opts.initial_cluster, &opts.token)?;
    let me = members.iter().find(|m| m.name == opts.name).cloned().ok_or_else(|| {
        Error::Usage(format!(
            "--name {:?} is not in --initial-cluster ({}): the restored member must be one of the cluster's",
            opts.name, opts.initial_cluster
        ))
    })?;
    if let Some(adv) = &opts.initial_advertise_peer_urls {
        let mut adv: Vec<String> = adv
            .iter()
            .map(|u| EtcdUrl::peer(u.trim(), "--initial-advertise-peer-urls").map(|u| u.to_string()))
            .collect::<Result<_>>()?;
        adv.sort();
        if adv != me.peer_urls {
            return Err(Error::Usage(format!(
                "--initial-advertise-peer-urls {} does not match {}'s URLs in --initial-cluster ({})",
                adv.join(","),
                me.name,
                me.peer_urls.join(",")
            )));
        }
    }
    if opts.bump_revision.is_some() && !opts.mark_compacted {
        return Err(Error::Usage(
            "--bump-revision requires --mark-compacted (clients watching old revisions must be told they are gone)"
                .into(),
        ));
    }
    Ok((members, me))
}

/// The data dir is new or empty (a data dir on its own disk is restored in place: its
/// lost+found, and data moved aside inside it by an earlier restore, may stay).
fn check_target_dir(opts: &ApplyOptions) -> Result<()> {
    if let Ok(rd) = std::fs::read_dir(&opts.data_dir) {
        let in_place = in_place_dir(&opts.data_dir).is_some();
        let busy = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).find(|n| {
            !(in_place && (n == "lost+found" || n.starts_with("member.bak-") || n.starts_with("member.failed-")))
        });
        if let Some(n) = busy {
            return Err(Error::Usage(format!(
                "data dir {} is not empty (it holds {n}): restore into a new directory (move the old one aside first)",
                opts.data_dir.display()
            )));
        }
    } else if opts.data_dir.exists() {
        return Err(Error::Usage(format!("{} exists and is not a directory", opts.data_dir.display())));
    }
    Ok(())
}

/// The snapshot's trailer, as far as it is known without hashing, and the hash started on its
/// own thread when it is needed; a snapshot without one (a download cut short, a copy of
/// member/snap/db) refused unless `--skip-hash-check`.
fn start_trailer_check(opts: &ApplyOptions, opened: &crate::store::snapfile::Opened) -> Result<TrailerCheck> {
    // A download cut short has no trailer either: its pages end before the database does.
    if !has_trailer(opened.len) && opened.db.size() > opened.db.len() {
        return Err(Error::Corrupt {
            path: opts.snapshot.clone(),
            reason: format!(
                "the file is truncated: the database needs {} bytes, the file has {}",
                opened.db.size(),
                opened.db.len()
            ),
        });
    }
    if !has_trailer(opened.len) && !opts.skip_hash_check {
        return Err(Error::Usage(format!(
            "{} has no sha256 trailer (a copy of member/snap/db?): pass --skip-hash-check to restore it",
            opts.snapshot.display()
        )));
    }
    let trailer = match opened.trailer {
        _ if !has_trailer(opened.len) => TrailerCheck::Known(Trailer::Absent),
        Some(t) => TrailerCheck::Known(t),
        None if opts.skip_hash_check => TrailerCheck::Known(Trailer::Unchecked),
        None => {
            let (p, len) = (opts.snapshot.clone(), opened.len);
            TrailerCheck::Pending(std::thread::spawn(move || crate::store::snapfile::check_trailer(&p, len)))
        }
    };
    if matches!(trailer, TrailerCheck::Known(Trailer::Mismatch)) && !opts.skip_hash_check {
        return Err(mismatch(&opts.snapshot));
    }
    Ok(trailer)
}

/// The revision after `--bump-revision`, which must stay a signed 64-bit one as etcd's are.
fn check_bump(opts: &ApplyOptions, revision: i64) -> Result<()> {
    let Some(b) = opts.bump_revision else { return Ok(()) };
    if i64::try_from(b).ok().and_then(|b| revision.checked_add(b)).is_none() {
        return Err(Error::InvalidValue {
            what: "--bump-revision".into(),
            value: b.to_string(),
            reason: format!(
                "the snapshot's revision {revision} plus this passes etcd's largest revision {}; bump by far less (1000000000 is plenty)",
                i64::MAX
            ),
        });
    }
    Ok(())
}

/// [`prepare`] with the sha256 trailer check still running: everything else about the
/// snapshot (its structure, walked whole unless `walk` leaves that to the caller, and etcd's
/// layout) is checked before it returns. The caller must [`TrailerCheck::wait`] before it
/// publishes anything.
pub fn prepare_deferred(opts: &ApplyOptions, walk: Walk) -> Result<Checked> {
    let (members, me) = check_membership(opts)?;
    check_target_dir(opts)?;
    // The snapshot: readable, trailer as required, structurally sound, an etcd database. A
    // compressed one is decompressed into a nameless temporary file, its trailer checked over
    // the decompressed stream.
    let opened = crate::store::snapfile::open(&opts.snapshot)?;
    if opts.engine == Engine::Etcdutl && opened.compression == crate::store::compress::Compression::Zstd {
        return Err(Error::Usage(format!(
            "{} is zstd-compressed and etcdutl reads only uncompressed snapshots: drop --engine etcdutl (the native engine reads both)",
            opts.snapshot.display()
        )));
    }
    let trailer = start_trailer_check(opts, &opened)?;
    let db = opened.db;
    // The hash may be skipped; the structure and etcd's layout never are. A structural error
    // waits for the hash: a mismatch (a truncated or damaged download) is named first.
    let buckets = match walk {
        Walk::Now => check::check(&db).map(|summary| summary.buckets),
        Walk::OnTheCopy => {
            db.bucket_values().map(|b| b.iter().map(|b| String::from_utf8_lossy(&b.name).to_string()).collect())
        }
    };
    let walked = buckets
        .map_err(bolt_err(&opts.snapshot))
        .and_then(|buckets| crate::store::snapfile::check_layout(&opts.snapshot, &buckets));
    let trailer = match walked {
        Ok(()) => trailer,
        Err(e) => {
            trailer.wait(&opts.snapshot, opts.skip_hash_check)?;
            return Err(e);
        }
    };
    let revision = crate::store::snapfile::revision(&db).map_err(bolt_err(&opts.snapshot))?;
    check_bump(opts, revision)?;
    Ok(Checked { members, me, db, revision, trailer })
}

/// Restores a snapshot into a new data dir. Everything is written into a temporary directory,
/// fsynced, and renamed into place at the end: a failure leaves nothing behind. The temporary
/// directory is a sibling of the data dir, or, for a data dir that must stay where it is (a
/// mount point or a link, [`in_place_dir`]), a hidden directory inside it whose `member/` is
/// renamed into place (one file system, so the rename is atomic).
pub fn apply(opts: &ApplyOptions) -> Result<Applied> {
    let start = Instant::now();
    // The sha256 trailer is hashed on its own thread while the data dir is written; nothing is
    // published before it matches.
    // The native engine walks its copy of the snapshot instead of the snapshot itself.
    let walk = if opts.engine == Engine::Native { Walk::OnTheCopy } else { Walk::Now };
    let Checked { members, me, db, revision, trailer } = prepare_deferred(opts, walk)?;
    let in_place = in_place_dir(&opts.data_dir);
    let (work_dir, prefix) = match &in_place {
        Some(dir) => (dir.clone(), ".member.restore-".to_string()),
        None => {
            let parent = opts.data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(io_err(format!("create {}", parent.display())))?;
            let base =
                opts.data_dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "etcd".into());
            (parent.to_path_buf(), format!(".{base}.restore-"))
        }
    };
    remove_stale_temp_dirs(&work_dir, &prefix);
    let tmp = work_dir.join(format!("{prefix}{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(format!("clear {}", tmp.display())))?;
    }
    let result = (|| {
        let written = match opts.engine {
            Engine::Native => write_data_dir(&tmp, &db, &members, &me, revision, opts),
            Engine::Etcdutl => run_etcdutl(&tmp, opts).map(|b| (b, 0)),
        };
        // A mismatch is named first: a failed write of a corrupt file is the corruption.
        trailer.wait(&opts.snapshot, opts.skip_hash_check)?;
        let (bumped_to, key_entries) = written?;
        let (from, to) = match &in_place {
            Some(dir) => (tmp.join("member"), dir.join("member")),
            None => {
                // An empty target dir is replaced by the rename; a missing one is created by it.
                if opts.data_dir.exists() {
                    std::fs::remove_dir(&opts.data_dir)
                        .map_err(io_err(format!("replace the empty {}", opts.data_dir.display())))?;
                }
                (tmp.clone(), opts.data_dir.clone())
            }
        };
        std::fs::rename(&from, &to).map_err(io_err(format!("rename {} to {}", from.display(), to.display())))?;
        if in_place.is_some() {
            std::fs::remove_dir(&tmp).map_err(io_err(format!("remove the empty {}", tmp.display())))?;
        }
        crate::base::fsio::sync_dir(&work_dir)?;
        Ok((bumped_to, key_entries))
    })();
    let (bumped_to, key_entries) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let cluster_id = compute_cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
    Ok(Applied {
        data_dir: opts.data_dir.clone(),
        member: me,
        cluster_id,
        members,
        revision,
        bumped_to,
        key_entries,
        engine: opts.engine,
        duration: start.elapsed(),
    })
}

/// A data dir that must stay where it is: a mount point (etcd's guidance is a disk of its
/// own) or a symbolic link to one. Its contents are moved and restored inside it; the
/// directory itself is never renamed. Returns the directory to work in.
pub fn in_place_dir(data_dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let lmd = std::fs::symlink_metadata(data_dir).ok()?;
    if lmd.file_type().is_symlink() {
        return std::fs::canonicalize(data_dir).ok().filter(|p| p.is_dir());
    }
    if !lmd.is_dir() {
        return None;
    }
    let real = std::fs::canonicalize(data_dir).ok()?;
    let parent = real.parent()?;
    let pmd = std::fs::metadata(parent).ok()?;
    (pmd.dev() != lmd.dev() || pmd.ino() == lmd.ino()).then_some(real)
}

/// Removes the temporary directories an earlier restore left when it was killed
/// (`<prefix><pid>` whose process is gone): they were never published, so nothing is lost.
fn remove_stale_temp_dirs(dir: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name.strip_prefix(prefix).and_then(|p| p.parse::<i32>().ok()) else { continue };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        if !alive && pid != std::process::id() as i32 && std::fs::remove_dir_all(e.path()).is_ok() {
            crate::base::messages::message(&format!(
                "removed {}, left by a restore (pid {pid}) that was killed",
                e.path().display()
            ));
        }
    }
}

fn mkdir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(format!("create {}", path.display())))
}

fn write_data_dir(
    dir: &Path,
    db: &Db,
    members: &[NewMember],
    me: &NewMember,
    revision: i64,
    opts: &ApplyOptions,
) -> Result<(Option<i64>, u64)> {
    let snap_dir = dir.join("member/snap");
    let wal_dir = dir.join("member/wal");
    mkdir(&snap_dir)?;
    mkdir(&wal_dir)?;
    let (bumped, key_entries) = write_db(&snap_dir.join("db"), db, members, revision, opts)?;
    write_snap(&snap_dir, members)?;
    write_wal(&wal_dir, members, me)?;
    for d in [&wal_dir, &snap_dir, &dir.join("member"), &dir.to_path_buf()] {
        crate::base::fsio::sync_dir(d)?;
    }
    Ok((bumped, key_entries))
}

/// Step 1, the database: the snapshot's pages copied as they are (in the kernel), and the buckets a
/// restore changes written after them, copy-on-write, as bbolt commits (and as etcdutl, which
/// copies the file and commits a transaction, leaves it): new pages past the high water mark, a
/// new root bucket and both meta pages pointing at them. The pages they replace, and the
/// snapshot's free pages, are free in the copy (bbolt finds them at open). Returns the bumped
/// revision and the `key` bucket's entries.
fn write_db(
    db_path: &Path,
    db: &Db,
    members: &[NewMember],
    revision: i64,
    opts: &ApplyOptions,
) -> Result<(Option<i64>, u64)> {
    let src = opts.snapshot.as_path();
    let werr = |e: std::io::Error| Error::Io { action: format!("write {}", db_path.display()), source: e };
    let meta = *db.meta();
    if db.size() > db.len() {
        // Truncated: the walk names it (at once, before reading any page).
        check::check(db).map_err(bolt_err(src))?;
    }
    let out = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db_path)
            .map_err(io_err(format!("create {}", db_path.display())))?
    };
    crate::base::fsio::copy_range(db.file(), &out, db.size()).map_err(|e| match e.kind() {
        std::io::ErrorKind::Interrupted => werr(e),
        _ => Error::Io { action: format!("copy {} to {}", src.display(), db_path.display()), source: e },
    })?;
    let mut w = DbWriter::append(out, meta.page_size, meta.pgid).map_err(werr)?;
    let bumped = opts.bump_revision.map(|b| revision + b as i64);
    let mut values: BTreeMap<Vec<u8>, Option<BucketValue>> =
        db.bucket_values().map_err(bolt_err(src))?.into_iter().map(|b| (b.name.clone(), Some(b))).collect();
    for required in [&b"members"[..], b"members_removed", b"meta"] {
        values.entry(required.to_vec()).or_default();
    }
    let n = members.len() as u64;
    for (name, value) in &values {
        rewrite_bucket(&mut w, db, name, value.as_ref(), members, n, revision, bumped, opts)?;
    }
    let (_, file) = w.finish_unsynced(meta.sequence, meta.txid + 1).map_err(werr)?;
    // The copy must pass the whole structural walk, read while it is fsynced: every page of it
    // is the snapshot's or ours, so this is the snapshot's check too (its errors name the
    // snapshot, whose page numbers they are). Its entries are counted, nested buckets refused.
    let synced = std::thread::spawn(move || file.sync_all());
    let mut visitor = RestoredKeys { current: String::new(), count: 0, nested: None };
    let checked = Db::open(db_path).and_then(|out| check::walk(&out, &mut visitor)).map_err(|e| match e {
        BoltError::Io { source, .. } if source.kind() == std::io::ErrorKind::Interrupted => werr(source),
        e => bolt_err(src)(e),
    });
    synced
        .join()
        .map_err(|_| Error::Internal("the fsync thread panicked".into()))?
        .map_err(|source| Error::Io { action: format!("fsync {}", db_path.display()), source })?;
    checked?;
    if let Some(bucket) = visitor.nested {
        return Err(Error::Corrupt {
            path: src.to_path_buf(),
            reason: format!("bucket {bucket:?} holds a nested bucket: not part of etcd's layout"),
        });
    }
    let key_entries = visitor.count;
    Ok((bumped, key_entries))
}

/// Writes one bucket of the restored database: `members` and `meta` rewritten, an empty
/// `members_removed`, the revision bump appended to `key`, every other bucket kept as it is.
#[allow(clippy::too_many_arguments)]
fn rewrite_bucket(
    w: &mut DbWriter,
    db: &Db,
    name: &[u8],
    value: Option<&BucketValue>,
    members: &[NewMember],
    n: u64,
    revision: i64,
    bumped: Option<i64>,
    opts: &ApplyOptions,
) -> Result<()> {
    let src = opts.snapshot.as_path();
    let werr = |e: std::io::Error| Error::Io { action: "write the restored database".to_string(), source: e };
    let root = || -> Result<Option<BucketRoot>> {
        let Some(b) = value else { return Ok(None) };
        BucketRoot::from_value(b.page, &b.value).map(Some).map_err(|e| bolt_err(src)(e.into()))
    };
    match name {
        b"members" => {
            let mut entries: Vec<(String, String)> =
                members.iter().map(|m| (format!("{:x}", m.id), member_json(m))).collect();
            entries.sort();
            let mut bw = w.bucket(name, 0);
            for (k, v) in entries {
                bw.put(k.as_bytes(), v.as_bytes()).map_err(werr)?;
            }
            bw.finish().map_err(werr)?;
        }
        b"members_removed" => {
            w.bucket(name, 0).finish().map_err(werr)?;
        }
        b"meta" => {
            let mut entries: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            if let Some(root) = root()? {
                db.for_each(&root, &mut |k, v| {
                    if let Some(v) = v {
                        entries.insert(k.to_vec(), v.to_vec());
                    }
                    Ok(())
                })
                .map_err(bolt_err(src))?;
            }
            entries.insert(b"consistent_index".to_vec(), n.to_be_bytes().to_vec());
            entries.insert(b"term".to_vec(), 1u64.to_be_bytes().to_vec());
            if opts.mark_compacted {
                entries.insert(b"scheduledCompactRev".to_vec(), rev_bytes(bumped.unwrap_or(revision), 0));
            }
            let mut bw = w.bucket(name, 0);
            for (k, v) in entries {
                bw.put(&k, &v).map_err(werr)?;
            }
            bw.finish().map_err(werr)?;
        }
        b"key" if bumped.is_some() => {
            // The bump: one key past the snapshot's last revision, appended to the tree.
            let (Some(root), Some(b)) = (root()?, value) else {
                return Err(Error::Internal("a snapshot without a key bucket passed the layout check".into()));
            };
            let path = db.last_path(&root).map_err(bolt_err(src))?;
            let key = rev_bytes(bumped.unwrap_or(revision), 0);
            w.append_after_last(name, b.sequence(), path, &key, &[]).map_err(werr)?;
        }
        _ => {
            if let Some(b) = value {
                w.keep_bucket(name, &b.value);
            }
        }
    }
    Ok(())
}

/// Step 2, the raft snapshot file with the v2 store.
fn write_snap(snap_dir: &Path, members: &[NewMember]) -> Result<()> {
    let n = members.len() as u64;
    let voters: Vec<u64> = members.iter().map(|m| m.id).collect();
    let cs = pb::conf_state(&voters);
    let store = v2_store_json(members);
    let snap = pb::raft_snapshot(store.as_bytes(), &cs, n, 1);
    let snap_path = snap_dir.join(format!("{:016x}-{:016x}.snap", 1, n));
    crate::base::fsio::write_new(&snap_path, &pb::snap_file(&snap), 0o644)?;
    Ok(())
}

/// Step 3, the WAL: the member's metadata, the cluster's conf changes and hard state.
fn write_wal(wal_dir: &Path, members: &[NewMember], me: &NewMember) -> Result<()> {
    let n = members.len() as u64;
    let cluster_id = compute_cluster_id(&members.iter().map(|m| m.id).collect::<Vec<_>>());
    let cs = pb::conf_state(&members.iter().map(|m| m.id).collect::<Vec<_>>());
    let mut wal = wal::WalWriter::new();
    wal.record(pb::record::METADATA, Some(&pb::metadata(me.id, cluster_id)));
    wal.record(pb::record::SNAPSHOT, Some(&pb::wal_snapshot(0, 0, None)));
    for (i, m) in members.iter().enumerate() {
        let cc = pb::conf_change_add(m.id, member_json(m).as_bytes());
        wal.record(pb::record::ENTRY, Some(&pb::entry(pb::ENTRY_CONF_CHANGE, 1, i as u64 + 1, &cc)));
    }
    wal.record(pb::record::STATE, Some(&pb::hard_state(1, members[0].id, n)));
    wal.record(pb::record::SNAPSHOT, Some(&pb::wal_snapshot(n, 1, Some(&cs))));
    let wal_path = wal_dir.join("0000000000000000-0000000000000000.wal");
    wal.write(&wal_path).map_err(io_err(format!("write {}", wal_path.display())))?;
    Ok(())
}

/// Counts the `key` bucket's entries during the walk of a restored database, notes the first
/// nested bucket (etcd's buckets are flat), and stops the walk at a signal.
struct RestoredKeys {
    current: String,
    count: u64,
    nested: Option<String>,
}

impl check::Visitor for RestoredKeys {
    fn bucket(&mut self, name: &[u8]) -> std::result::Result<(), BoltError> {
        self.current = String::from_utf8_lossy(name).to_string();
        Ok(())
    }
    fn entry(&mut self, _: &[u8], value: Option<&[u8]>) -> std::result::Result<(), BoltError> {
        if value.is_none() && self.nested.is_none() {
            self.nested = Some(self.current.clone());
        }
        if self.current == "key" {
            self.count += 1;
            if self.count.is_multiple_of(4096) {
                if let Some(sig) = crate::base::signals::interrupting_signal() {
                    return Err(BoltError::Io {
                        path: PathBuf::new(),
                        source: std::io::Error::new(std::io::ErrorKind::Interrupted, format!("interrupted by {sig}")),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Runs `etcdutl snapshot restore` (or, for etcd 3.4, `etcdctl snapshot restore`) from PATH.
fn run_etcdutl(dir: &Path, opts: &ApplyOptions) -> Result<Option<i64>> {
    // The first directory on PATH with etcdutl, or with etcdctl (etcd 3.4 restores with it).
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find_map(|d| {
            let u = d.join("etcdutl");
            let c = d.join("etcdctl");
            if u.is_file() {
                Some((u, false))
            } else if c.is_file() {
                Some((c, true))
            } else {
                None
            }
        })
    });
    let Some((bin, api)) = found else {
        return Err(Error::Usage("--engine etcdutl: neither etcdutl nor etcdctl is on PATH".into()));
    };
    let mut cmd = std::process::Command::new(&bin);
    if api {
        cmd.env("ETCDCTL_API", "3");
    }
    cmd.arg("snapshot")
        .arg("restore")
        .arg(&opts.snapshot)
        .arg(format!("--data-dir={}", dir.display()))
        .arg(format!("--name={}", opts.name))
        .arg(format!("--initial-cluster={}", opts.initial_cluster))
        .arg(format!("--initial-cluster-token={}", opts.token));
    if let Some(adv) = &opts.initial_advertise_peer_urls {
        cmd.arg(format!("--initial-advertise-peer-urls={}", adv.join(",")));
    }
    if opts.skip_hash_check {
        cmd.arg("--skip-hash-check");
    }
    if let Some(b) = opts.bump_revision {
        cmd.arg(format!("--bump-revision={b}"));
    }
    if opts.mark_compacted {
        cmd.arg("--mark-compacted");
    }
    let out = cmd.output().map_err(io_err(format!("run {}", bin.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
        return Err(Error::Refused(format!("{} snapshot restore failed: {last}", bin.display())));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd() {
        // From a data dir `etcdutl snapshot restore` wrote: --initial-cluster
        // n1=https://127.0.0.1:2380,n2=https://127.0.0.2:2380 --initial-cluster-token tok.
        let m = parse_initial_cluster("n1=https://127.0.0.1:2380,n2=https://127.0.0.2:2380", "tok").unwrap();
        let n1 = m.iter().find(|m| m.name == "n1").unwrap();
        let n2 = m.iter().find(|m| m.name == "n2").unwrap();
        assert_eq!(n1.id, 0xd9f180b5523aec8e);
        assert_eq!(n2.id, 0xa854351089f2b69b);
        assert_eq!(m[0].name, "n2", "sorted by ID");
        assert_eq!(member_json(n2), r#"{"id":12129378041565722267,"peerURLs":["https://127.0.0.2:2380"],"name":"n2"}"#);
    }

    /// A bbolt file with the given top-level buckets (each holding one key).
    fn bolt_file(dir: &Path, buckets: &[&[u8]]) -> PathBuf {
        let path = dir.join("db");
        let mut w = DbWriter::create(&path, 4096).unwrap();
        for b in buckets {
            let mut bw = w.bucket(b, 0);
            let key = if *b == b"key" { rev_bytes(5, 0) } else { b"k".to_vec() };
            bw.put(&key, b"v").unwrap();
            bw.finish().unwrap();
        }
        w.finish(0).unwrap();
        path
    }

    fn opts(snapshot: PathBuf, data_dir: PathBuf) -> ApplyOptions {
        ApplyOptions {
            snapshot,
            data_dir,
            name: "m".into(),
            initial_cluster: "m=https://127.0.0.1:2380".into(),
            initial_advertise_peer_urls: None,
            token: DEFAULT_TOKEN.into(),
            skip_hash_check: true,
            bump_revision: None,
            mark_compacted: false,
            engine: Engine::Native,
        }
    }

    #[test]
    fn skip_hash_check_skips_the_hash_never_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let not_etcd = bolt_file(dir.path(), &[b"key", b"meta"]);
        let e = prepare(&opts(not_etcd, dir.path().join("new"))).unwrap_err().to_string();
        assert!(e.contains("bucket \"members\" missing: not an etcd v3 database"), "{e}");
    }

    #[test]
    fn revision_bumps_past_i64_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = bolt_file(
            dir.path(),
            &[b"alarm", b"auth", b"cluster", b"key", b"lease", b"members", b"members_removed", b"meta"],
        );
        let mut o = opts(db, dir.path().join("new"));
        o.mark_compacted = true;
        o.bump_revision = Some(i64::MAX as u64);
        let e = prepare(&o).unwrap_err();
        assert_eq!(e.exit_code(), crate::ExitCode::Usage);
        assert!(e.to_string().contains("passes etcd's largest revision"), "{e}");
        o.bump_revision = Some(1_000_000_000);
        assert!(prepare(&o).is_ok());
    }

    /// The patched copy: membership replaced, `members_removed` emptied, `meta` set and its
    /// other keys kept, the bump key after the last revision of a multi-level `key` tree, every
    /// key counted; the other buckets and the snapshot's pages below its high water mark kept.
    #[test]
    fn apply_patches_a_copy_of_the_snapshot() {
        use crate::store::bbolt::writer::tests::entries;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.db");
        let mut w = DbWriter::create(&path, 4096).unwrap();
        let put = |w: &mut DbWriter, name: &[u8], kv: Vec<(Vec<u8>, Vec<u8>)>| {
            let mut bw = w.bucket(name, 0);
            for (k, v) in kv {
                bw.put(&k, &v).unwrap();
            }
            bw.finish().unwrap();
        };
        let one = |k: &[u8], v: &[u8]| vec![(k.to_vec(), v.to_vec())];
        put(&mut w, b"alarm", vec![]);
        put(&mut w, b"auth", one(b"authEnabled", b"\x00"));
        put(&mut w, b"cluster", one(b"clusterVersion", b"3.5.0"));
        put(&mut w, b"key", (1..=10_000).map(|r| (rev_bytes(r, 0), vec![b'v'; 100])).collect());
        put(&mut w, b"lease", vec![]);
        put(&mut w, b"members", one(b"1234", b"{\"id\":4660}"));
        put(&mut w, b"members_removed", one(b"99", b"removed"));
        put(
            &mut w,
            b"meta",
            vec![(b"confState".to_vec(), b"{}".to_vec()), (b"consistent_index".to_vec(), vec![0, 0, 0, 0, 0, 0, 1, 0])],
        );
        w.finish(0).unwrap();
        let mut o = opts(path.clone(), dir.path().join("new"));
        o.bump_revision = Some(100);
        o.mark_compacted = true;
        let a = apply(&o).unwrap();
        assert_eq!((a.revision, a.bumped_to, a.key_entries), (10_000, Some(10_100), 10_001));
        let src = Db::open(&path).unwrap();
        let out = Db::open(&dir.path().join("new/member/snap/db")).unwrap();
        check::check(&out).unwrap();
        let m = &a.members[0];
        assert_eq!(entries(&out, b"members"), [(format!("{:x}", m.id).into_bytes(), member_json(m).into_bytes())]);
        assert!(entries(&out, b"members_removed").is_empty());
        let meta: BTreeMap<Vec<u8>, Vec<u8>> = entries(&out, b"meta").into_iter().collect();
        assert_eq!(meta[&b"consistent_index"[..]], 1u64.to_be_bytes());
        assert_eq!(meta[&b"term"[..]], 1u64.to_be_bytes());
        assert_eq!(meta[&b"scheduledCompactRev"[..]], rev_bytes(10_100, 0));
        assert_eq!(meta[&b"confState"[..]], b"{}");
        let keys = entries(&out, b"key");
        assert_eq!(keys[..10_000], entries(&src, b"key")[..]);
        assert_eq!(keys[10_000], (rev_bytes(10_100, 0), vec![]));
        for b in [&b"auth"[..], b"cluster"] {
            assert_eq!(entries(&out, b), entries(&src, b));
        }
        let before = std::fs::read(&path).unwrap();
        let after = std::fs::read(dir.path().join("new/member/snap/db")).unwrap();
        assert_eq!(before[2 * 4096..], after[2 * 4096..before.len()], "the snapshot's pages are copied as they are");
    }

    /// The copy is walked whole: a nested bucket (not etcd's layout) in a bucket the restore
    /// keeps as it is is refused, naming the snapshot, and nothing is left behind.
    #[test]
    fn nested_buckets_in_kept_buckets_are_refused() {
        use crate::store::bbolt::writer::tests::inline_bucket;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.db");
        let mut w = DbWriter::create(&path, 4096).unwrap();
        for b in [&b"alarm"[..], b"auth", b"cluster", b"key", b"lease", b"members", b"members_removed", b"meta"] {
            if b == b"lease" {
                let nested = inline_bucket(&[(0, b"k", b"v")]);
                w.keep_bucket(b, &inline_bucket(&[(crate::store::bbolt::BUCKET_LEAF, b"sub", &nested)]));
                continue;
            }
            let mut bw = w.bucket(b, 0);
            let key = if b == b"key" { rev_bytes(5, 0) } else { b"k".to_vec() };
            bw.put(&key, b"v").unwrap();
            bw.finish().unwrap();
        }
        w.finish(0).unwrap();
        let data_dir = dir.path().join("new");
        let e = apply(&opts(path.clone(), data_dir.clone())).unwrap_err().to_string();
        assert!(e.contains("bucket \"lease\" holds a nested bucket"), "{e}");
        assert!(e.contains("snap.db"), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from("snap.db")], "nothing left behind");
    }

    #[test]
    fn stale_temp_dirs_of_killed_restores_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has PID 4194305 (above Linux's largest pid_max); ours is alive.
        let dead = dir.path().join(".etcd.restore-4194305");
        let alive = dir.path().join(format!(".etcd.restore-{}", std::process::id()));
        let other = dir.path().join(".etcd.restore-notapid");
        for d in [&dead, &alive, &other] {
            std::fs::create_dir_all(d.join("member")).unwrap();
        }
        remove_stale_temp_dirs(dir.path(), ".etcd.restore-");
        assert!(!dead.exists() && alive.exists() && other.exists());
    }

    #[test]
    fn bad_cluster_specs() {
        assert!(parse_initial_cluster("n1", "t").is_err());
        assert!(parse_initial_cluster("n1=https://h:2380/path", "t").is_err());
        assert!(parse_initial_cluster("n1=ftp://h:2380", "t").is_err());
        assert!(parse_initial_cluster("", "t").is_err());
        let e = parse_initial_cluster("a=https://h:2380,b=https://h:2380", "t").unwrap_err().to_string();
        assert!(e.contains("peer URL https://h:2380 is listed twice (for a and b)"), "{e}");
        let e = parse_initial_cluster("=https://h:2380", "t").unwrap_err().to_string();
        assert!(e.contains("empty member name"), "{e}");
    }

    #[test]
    fn wal_bytes_match_etcds() {
        let m = parse_initial_cluster("n1=https://127.0.0.1:2380,n2=https://127.0.0.2:2380", "tok").unwrap();
        let me = m.iter().find(|m| m.name == "n1").unwrap();
        let cid = compute_cluster_id(&m.iter().map(|m| m.id).collect::<Vec<_>>());
        let mut wal = wal::WalWriter::new();
        wal.record(pb::record::METADATA, Some(&pb::metadata(me.id, cid)));
        // The first two records as `etcdutl snapshot restore` wrote them: the CRC record
        // (length 4, padded by 4: length field 0x84000000_00000004), then the metadata.
        let got: String = wal.bytes()[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, "0400000000000084080410000000000".to_string() + "0");
        let meta_rec = &wal.bytes()[16 + 8..16 + 8 + 31];
        let hex: String = meta_rec.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "080110f4a0d2b10c1a15088ed9eb91d596e0f8d9011082b5cdee98deaec13b");
    }
}
