//! `snapshot save`: a snapshot streamed from one member in a working quorum, verified and made
//! durable through [`crate::store::snapfile::PartWriter`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::reach::cluster::{find_member, Member, Session};
use crate::reach::conn::{call, FailureClass, TransportError};
use crate::store::compress::Compression;
use crate::store::objstore::{Bucket, ObjectMeta, StoreOptions};
use crate::store::snapdir::{Pruned, SnapDir};
use crate::store::snapfile::PartWriter;
use crate::store::trailer::TRAILER;

/// The result of `snapshot save`.
#[derive(Debug, Clone, Serialize)]
pub struct Saved {
    /// The file written.
    pub path: PathBuf,
    /// The member it was streamed from.
    pub member: String,
    /// That member's ID.
    #[serde(serialize_with = "crate::base::units::ser_hex")]
    pub member_id: u64,
    /// The endpoint.
    pub endpoint: String,
    /// Revision of the snapshot.
    pub revision: i64,
    /// The snapshot's bytes (trailer included), uncompressed.
    pub size: u64,
    /// How the file is stored.
    pub compression: Compression,
    /// The file's size on disk (less than `size` when compressed).
    pub file_size: u64,
    /// The sha256 trailer (hex), verified.
    pub sha256: String,
    /// How long it took.
    #[serde(rename = "duration_ms", with = "crate::base::units::duration_ms")]
    pub duration: Duration,
    /// Why a member outside the working quorum was used (`--member … --force`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced: Option<String>,
    /// `--dir … --keep N`: what retention kept and deleted after this save.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::store::snapdir::Pruned>,
    /// The cluster's ID, from the member's answer.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt_hex")]
    pub cluster_id: Option<u64>,
    /// The member's etcd version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_version: Option<String>,
    /// `--dir` given more than once: the copies in the other directories and buckets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<Copy>,
}

fn ser_opt_hex<S: serde::Serializer>(v: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(id) => s.serialize_str(&crate::base::units::member_id(*id)),
        None => s.serialize_none(),
    }
}

/// Options of `snapshot save`.
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// The member to stream from (name or ID); default: the healthiest voter that is not the leader.
    pub member: Option<String>,
    /// Replace an existing file.
    pub overwrite: bool,
    /// Give up when no data arrives for this long.
    pub stall_timeout: Option<Duration>,
    /// Overall deadline (only when `--command-timeout` was given explicitly).
    pub deadline: Option<Duration>,
    /// How to store the file.
    pub compression: Compression,
    /// Stream from `member` even when it is not in the working quorum.
    pub force: bool,
}

/// The member a snapshot streams from, its client URL, and why it was taken although it is not
/// in quorum (`--member … --force`).
pub type Picked = (Member, String, Option<String>);

/// Picks the member to stream from, among the voters in the working quorum only
/// ([`crate::reach::quorum`]): a member cut off from its peers or with no leader still streams a
/// snapshot, of an old revision. The named one must be in quorum unless `force`; unnamed, the
/// voter in quorum that is not the leader with the highest applied index (least load on the
/// leader), else the leader.
pub async fn pick_member(session: &Session, named: Option<&str>, force: bool) -> Result<Picked> {
    let list = session.member_list().await?;
    let statuses = session.statuses(&list.members).await;
    if let Some(key) = named {
        let m = find_member(&list.members, key)?.clone();
        let url = m.client_urls.first().cloned().ok_or_else(|| {
            Error::Refused(format!(
                "member {} has no client URL: it has never started",
                crate::base::units::member_id(m.id)
            ))
        })?;
        let st = statuses.iter().find(|s| s.member.id == m.id);
        let forced = match st {
            Some(s) if s.in_quorum() => None,
            Some(s) if s.member.is_learner && s.answered() => None,
            Some(s) => {
                let why = s.why_not();
                if !force {
                    return Err(Error::Refused(format!(
                        "member {why}: it is not part of a working quorum, so its snapshot may be stale; save from another member (omit --member to pick one in quorum), or pass --force to take it anyway"
                    )));
                }
                Some(format!("--force: member {why}; the snapshot may be behind the cluster"))
            }
            None => None,
        };
        return Ok((m, url, forced));
    }
    let mut best: Option<(&Member, String, u64, bool)> = None;
    for st in statuses.iter().filter(|s| s.in_quorum()) {
        let (Ok(s), Some(url)) = (&st.status, &st.url) else { continue };
        let is_leader = s.leader == st.member.id;
        let applied = s.raft_applied_index;
        let better = match &best {
            None => true,
            Some((_, _, a, l)) => (*l && !is_leader) || (*l == is_leader && applied > *a),
        };
        if better {
            best = Some((&st.member, url.clone(), applied, is_leader));
        }
    }
    best.map(|(m, u, _, _)| (m.clone(), u, None)).ok_or_else(|| {
        Error::Refused(format!(
            "no voting member is part of a working quorum: cannot take a snapshot that is known to be current ({})",
            statuses.iter().filter(|s| !s.member.is_learner).map(|s| s.why_not()).collect::<Vec<_>>().join("; ")
        ))
    })
}

/// [`save`] that a signal (Ctrl-C, SIGTERM) stops cleanly: the `.part` is removed and the
/// error says which signal. During an upload to a bucket the upload sees the signal itself and
/// aborts its multipart upload first.
pub async fn save_interruptible(
    session: &Session,
    target: &Target,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    crate::base::signals::catch_signals();
    let outside_upload = async {
        loop {
            if crate::base::signals::interrupted() && !crate::store::objstore::uploading() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        r = save_to(session, target, opts, progress) => r,
        _ = outside_upload => Err(Error::Refused(format!(
            "interrupted by {}: no snapshot written (the .part file was removed)",
            crate::base::signals::interrupting_signal().unwrap_or("a signal")
        ))),
    }
}

/// Where `snapshot save` writes.
#[derive(Debug, Clone)]
pub enum Target {
    /// This file.
    File(PathBuf),
    /// Snapshot directories, local or buckets (`--dir`, once or more), each
    /// `PREFIX-TIME-REVISION.db`, each then pruned to its newest N verified snapshots of PREFIX
    /// when N is given.
    Dirs {
        /// The directories and their `--keep`.
        dirs: Vec<(SnapDir, Option<usize>)>,
        /// `--name-prefix`.
        prefix: String,
        /// How to reach the buckets.
        store: StoreOptions,
    },
}

/// A copy of the snapshot in another `--dir` than the first.
#[derive(Debug, Clone, Serialize)]
pub struct Copy {
    /// The file or object written.
    pub location: String,
    /// What retention kept and deleted there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Pruned>,
}

/// A private temporary directory, removed with what it holds when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new() -> Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!("kubectl-etcd-save-{}-{nanos}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&p).map_err(|source| Error::Io {
            action: format!(
                "create a temporary directory {} for the snapshot to upload (set TMPDIR elsewhere?)",
                p.display()
            ),
            source,
        })?;
        Ok(TempDir(p))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn prune_failed(saved_as: &str, dir: &SnapDir, prefix: &str, n: usize) -> impl FnOnce(Error) -> Error {
    let (saved_as, dir, prefix) = (saved_as.to_string(), dir.to_string(), prefix.to_string());
    move |e| Error::Stopped {
        what: "snapshot retention",
        cause: Box::new(e),
        done: format!("the snapshot was saved as {saved_as}"),
        next: format!("kubectl etcd restore snapshot prune {dir} --keep {n} --name-prefix {prefix}"),
    }
}

/// Copies the verified snapshot `from` into `dir` as `name`: `.part`, fsync, trailer checked,
/// renamed.
fn copy_into(from: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let to = dir.join(name);
    let part = dir.join(format!("{name}.part"));
    let io = |action: String| move |source| Error::Io { action, source };
    let src = std::fs::File::open(from).map_err(io(format!("read {}", from.display())))?;
    let len = src.metadata().map_err(io(format!("read {}", from.display())))?.len();
    {
        use std::os::unix::fs::OpenOptionsExt;
        let dst = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)
            .map_err(io(format!("create {}", part.display())))?;
        let r = crate::base::fsio::copy_range(&src, &dst, len).and_then(|()| dst.sync_all());
        if let Err(source) = r {
            let _ = std::fs::remove_file(&part);
            return Err(Error::Io { action: format!("write {}", part.display()), source });
        }
    }
    if crate::store::snapfile::check_trailer(&part, len)? != crate::store::trailer::Trailer::Valid {
        let _ = std::fs::remove_file(&part);
        return Err(Error::Corrupt { path: part, reason: "the copy does not verify".into() });
    }
    std::fs::rename(&part, &to).map_err(io(format!("rename {} to {}", part.display(), to.display())))?;
    crate::base::fsio::sync_dir(dir)?;
    Ok(to)
}

/// Each `--dir` before a byte is streamed: a local directory exists, a bucket exists and takes
/// the credentials, `--keep` is sane. Returns the buckets, opened, with their `--keep`.
async fn check_dirs(dirs: &[(SnapDir, Option<usize>)], store: &StoreOptions) -> Result<Vec<(Bucket, Option<usize>)>> {
    let mut buckets = Vec::new();
    for (d, keep) in dirs {
        if let Some(n) = keep {
            crate::store::snapdir::check_keep(*n)?;
        }
        match d {
            SnapDir::Local(dir) if !dir.is_dir() => {
                return Err(Error::Usage(format!("directory {} does not exist: create it first", dir.display())))
            }
            SnapDir::Local(_) => {}
            SnapDir::Bucket(u) => {
                let b = Bucket::open(u, store)?;
                b.check().await?;
                buckets.push((b, *keep));
            }
        }
    }
    Ok(buckets)
}

/// A copy of the saved snapshot: where it went, its address, and its `--keep`.
type Location = (SnapDir, String, Option<usize>);

/// Uploads the verified snapshot to each bucket (a multipart upload completed only once the
/// whole file is sent), with the object metadata `ls` reads. `kept_locally`: the snapshot also
/// stays in a local directory, which a failed upload then names.
async fn upload_all(
    saved: &Saved,
    name: &str,
    compression: crate::store::compress::Compression,
    buckets: &[(Bucket, Option<usize>)],
    kept_locally: bool,
) -> Result<Vec<Location>> {
    let meta = ObjectMeta {
        sha256: saved.sha256.clone(),
        revision: saved.revision,
        cluster_id: saved.cluster_id.map(crate::base::units::member_id).unwrap_or_default(),
        member_id: crate::base::units::member_id(saved.member_id),
        member_name: saved.member.clone(),
        etcd_version: saved.etcd_version.clone().unwrap_or_default(),
        compression: compression.meta_word().into(),
        size: saved.size,
        verified: true,
    };
    let mut locations = Vec::new();
    for (b, keep) in buckets {
        crate::base::messages::message(&format!("uploading {name} to {}", b.url));
        let url = match b.upload(&saved.path, name, &meta).await {
            Ok(u) => u,
            Err(e) if kept_locally => {
                return Err(Error::Stopped {
                    what: "snapshot save",
                    cause: Box::new(e),
                    done: format!("the snapshot was saved as {} but not uploaded to {}", saved.path.display(), b.url),
                    next: "fix the store, then save again".into(),
                })
            }
            Err(e) => return Err(e),
        };
        locations.push((SnapDir::Bucket(b.url.clone()), url, *keep));
    }
    Ok(locations)
}

/// `--keep N` of one copy's directory or bucket: its retention.
async fn prune_one(dir: &SnapDir, location: &str, prefix: &str, n: usize, store: &StoreOptions) -> Result<Pruned> {
    match dir {
        SnapDir::Local(d) => {
            crate::store::snapdir::prune(d, prefix, n, false).map_err(prune_failed(location, dir, prefix, n))
        }
        SnapDir::Bucket(u) => {
            let b = Bucket::open(u, store)?;
            crate::store::objstore::prune(&b, prefix, n, false).await.map_err(prune_failed(location, dir, prefix, n))
        }
    }
}

/// [`save`] into a file or snapshot directories.
pub async fn save_to(
    session: &Session,
    target: &Target,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    let (dirs, prefix, store) = match target {
        Target::File(path) => return save(session, path, opts, progress).await,
        Target::Dirs { dirs, prefix, store } => (dirs, prefix, store),
    };
    crate::store::snapdir::check_prefix(prefix)?;
    if dirs.is_empty() {
        return Err(Error::Usage("name a snapshot FILE or pass --dir DIR".into()));
    }
    let buckets = check_dirs(dirs, store).await?;
    let locals: Vec<(&PathBuf, Option<usize>)> = dirs
        .iter()
        .filter_map(|(d, k)| match d {
            SnapDir::Local(p) => Some((p, *k)),
            SnapDir::Bucket(_) => None,
        })
        .collect();
    // The snapshot lands in the first local directory, or in a private temporary one when
    // every --dir is a bucket.
    let temp = if locals.is_empty() { Some(TempDir::new()?) } else { None };
    let primary: PathBuf = match (&temp, locals.first()) {
        (Some(t), _) => t.0.clone(),
        (None, Some((p, _))) => (*p).clone(),
        (None, None) => return Err(Error::Internal("no directory".into())),
    };
    let stamp = crate::store::snapdir::stamp_now();
    let first = primary.join(format!("{prefix}-{stamp}.db"));
    let (p, st, compression) = (prefix.clone(), stamp.clone(), opts.compression);
    let local_dirs: Vec<PathBuf> = locals.iter().map(|(d, _)| (*d).clone()).collect();
    let primary_dir = primary.clone();
    let named: NameFn = Box::new(move |rev: i64| {
        // A snapshot older than one a directory already holds comes from a member that is
        // behind: it must never become the newest name (--latest, retention).
        for d in &local_dirs {
            crate::store::snapdir::refuse_older(d, &p, rev)?;
        }
        Ok(primary_dir.join(
            crate::store::snapdir::Name { prefix: p.clone(), stamp: st.clone(), revision: rev, compression }
                .file_name(),
        ))
    });
    // Every --dir a bucket: the file is a private copy for the upload, not fsynced (the
    // snapshot's durability is the store's once the upload completes).
    let mut saved = save_named(session, &first, Some(named), temp.is_none(), opts, progress).await?;
    let name = saved.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut locations = Vec::new();
    // The other local directories: a verified copy each.
    for (dir, keep) in locals.iter().skip(1) {
        let (from, d, n) = (saved.path.clone(), (*dir).clone(), name.clone());
        let to = tokio::task::spawn_blocking(move || copy_into(&from, &d, &n)).await.map_err(Error::from_join)??;
        locations.push((SnapDir::Local((*dir).clone()), to.display().to_string(), *keep));
    }
    locations.extend(upload_all(&saved, &name, opts.compression, &buckets, temp.is_none()).await?);
    // Retention, only after every copy is written: a failed save never prunes. The snapshot's
    // own name is the first local directory's file, or (every --dir a bucket) the first object.
    let own = if temp.is_some() {
        let (dir, url, keep) = locations.remove(0);
        saved.path = PathBuf::from(&url);
        Some((dir, url, keep))
    } else {
        locals.first().map(|(d, k)| (SnapDir::Local((*d).clone()), saved.path.display().to_string(), *k))
    };
    if let Some((dir, location, Some(n))) = own {
        saved.retention = Some(prune_one(&dir, &location, prefix, n, store).await?);
    }
    for (dir, location, keep) in locations {
        let retention = match keep {
            Some(n) => Some(prune_one(&dir, &location, prefix, n, store).await?),
            None => None,
        };
        saved.copies.push(Copy { location, retention });
    }
    drop(temp);
    Ok(saved)
}

/// `snapshot save`: streams a snapshot from one member into `path`.
pub async fn save(
    session: &Session,
    path: &Path,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    save_named(session, path, None, true, opts, progress).await
}

/// Where a snapshot stream goes, chunk by chunk: a [`PartWriter`] for `snapshot save`, a
/// nameless temporary file for `usage` with no file.
pub trait Sink: Send {
    /// Appends a chunk.
    fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// What errors call the file.
    fn name(&self) -> PathBuf;
}

impl Sink for PartWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        PartWriter::write(self, chunk)
    }
    fn written(&self) -> u64 {
        PartWriter::written(self)
    }
    fn name(&self) -> PathBuf {
        self.part_path().to_path_buf()
    }
}

/// Streams a snapshot into `sink` from the member [`pick_member`] chooses (`opts.member`,
/// `opts.force`), within `opts`' stall timeout and deadline; the stream must end where etcd
/// said it would (the database and its 32-byte sha256 trailer). The trailer itself is the
/// sink's to check. Returns the member.
pub async fn stream(
    session: &Session,
    opts: &SaveOptions,
    sink: &mut dyn Sink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Picked> {
    let (member, url, forced) = pick_member(session, opts.member.as_deref(), opts.force).await?;
    if let Some(f) = &forced {
        crate::base::messages::warning(&f.to_string());
    }
    session.dialer.probe(&url).await?;
    let mut client = session.dialer.client(&url).await?;
    let stall = opts.stall_timeout.unwrap_or(Duration::from_secs(30));
    let writer = sink;
    let stream = async {
        let mut stream = call(&url, "snapshot", stall, client.snapshot()).await?;
        // What etcd announced bounds what is read: an endless stream stops there.
        let mut bound = crate::limits::SnapshotStream::new();
        loop {
            let total = bound.total();
            let msg = match tokio::time::timeout(stall, stream.message()).await {
                Err(_) => return Err(Error::Transport(TransportError::timed_out(&url, "the snapshot stream", stall))),
                Ok(Err(e)) => {
                    let mut t = TransportError::rpc(&url, e);
                    if t.detail.contains("h2 protocol error")
                        || t.detail.contains("connection")
                        || t.detail.contains("broken pipe")
                    {
                        t.detail = format!(
                            "the member stopped sending after {total} bytes (it was killed, restarted or lost the network); no snapshot was written: save again, from another member with --member if this one is down"
                        );
                    }
                    return Err(Error::Transport(t));
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(m))) => m,
            };
            let blob = msg.blob();
            bound.accept(blob.len() as u64, msg.remaining_bytes()).map_err(|why| {
                let class = FailureClass::Network("snapshot stream past its size".into());
                TransportError::new(&url, class, format!("{why}; no snapshot was written"))
            })?;
            // Writing is quick next to the network; keep it on this task.
            writer.write(blob)?;
            progress(writer.written().min(bound.total()), bound.total());
        }
        let total = bound.total();
        // etcd announces the database size, then sends the sha256 trailer after it.
        if total != 0 && writer.written() != total + TRAILER {
            return Err(Error::Corrupt {
                path: writer.name(),
                reason: format!(
                    "the stream ended after {} of {} bytes: snapshot is truncated",
                    writer.written(),
                    total + TRAILER
                ),
            });
        }
        Ok(())
    };
    match opts.deadline {
        Some(d) => tokio::time::timeout(d, stream)
            .await
            .map_err(|_| Error::Transport(TransportError::timed_out(&url, "the snapshot (--command-timeout)", d)))??,
        None => stream.await?,
    }
    Ok((member, url, forced))
}

/// The final name for a verified snapshot's revision.
type NameFn = Box<dyn Fn(i64) -> Result<PathBuf> + Send>;

async fn save_named(
    session: &Session,
    path: &Path,
    name: Option<NameFn>,
    durable: bool,
    opts: &SaveOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    let start = Instant::now();
    let mut writer = PartWriter::create(path, opts.overwrite)?.compressed(opts.compression).durable(durable);
    let (member, url, forced) = stream(session, opts, &mut writer, progress).await?;
    // For the object metadata: the cluster's ID and the member's version (best effort).
    let (cluster_id, etcd_version) = match session.dialer.client(&url).await {
        Ok(mut client) => match tokio::time::timeout(Duration::from_secs(10), client.status()).await {
            Ok(Ok(s)) => (s.header().map(|h| h.cluster_id()), Some(s.version().to_string())),
            _ => (None, None),
        },
        Err(_) => (None, None),
    };
    // Compressing is file work: off the runtime's threads.
    let p = tokio::task::spawn_blocking(move || match name {
        Some(name) => writer.finish_as(&*name),
        None => writer.finish(),
    })
    .await
    .map_err(Error::from_join)??;
    Ok(Saved {
        forced,
        retention: None,
        cluster_id,
        etcd_version,
        copies: Vec::new(),
        path: p.path,
        member: member.name.clone(),
        member_id: member.id,
        endpoint: url,
        revision: p.revision,
        size: p.size,
        compression: opts.compression,
        file_size: p.file_size,
        sha256: p.sha256,
        duration: start.elapsed(),
    })
}
