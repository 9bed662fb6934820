//! `kubectl etcd restore doctor`: why a member's etcd will not start, read offline from its
//! data dir (no etcd process, nothing changed), and the safe way back.
//!
//! It checks what etcd reads at start: the WAL ([`crate::store::walcheck`]), the `.snap` files and
//! the database (`member/snap/db`, the structural walk of `snapshot verify`), compares the
//! database's consistent index with the WAL, and names the member from the WAL's metadata and
//! the database's `members` bucket.

pub mod checkup;
pub mod logs;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::base::units::member_id;
use crate::error::{Error, Result};
use crate::reach::cluster::Session;
use crate::reach::discovery::settings::Settings;
use crate::reach::discovery::Manifest;
use crate::store::bbolt::Db;
use crate::store::walcheck::{self, WalReport};

/// One `.snap` file.
#[derive(Debug, Clone, Serialize)]
pub struct SnapFile {
    /// File name (`%016x-%016x.snap`: term, index).
    pub name: String,
    /// Term from the name.
    pub term: Option<u64>,
    /// Index from the name.
    pub index: Option<u64>,
    /// Its CRC matches its data.
    pub valid: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The database file.
#[derive(Debug, Clone, Serialize)]
pub struct DbReport {
    /// Its size.
    pub size: u64,
    /// The structural walk and etcd's bucket layout passed.
    pub valid: bool,
    /// The first problem found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The last raft index applied to it (`meta/consistent_index`).
    pub consistent_index: Option<u64>,
    /// Its term (`meta/term`, etcd 3.5).
    pub term: Option<u64>,
    /// The members it records.
    pub members: Vec<crate::store::member::StoredMember>,
    /// The members it records as removed (`members_removed`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<u64>,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything etcd reads at start is sound: etcd should start; look elsewhere (flags,
    /// certificates, disk space, its log).
    Healthy,
    /// Only a torn WAL tail: etcd truncates it at start and goes on.
    Repairable,
    /// etcd refuses to start (or would start wrong) on this data dir.
    Damaged,
    /// The member was removed from its cluster (the live member list, its own WAL or its
    /// database says so): its peers reject it. Stop it and move its data dir aside; it is never
    /// added back under its old ID.
    Removed,
    /// No WAL: the member was added but never finished its first start. etcd joins its
    /// cluster afresh on it (with `--initial-cluster-state=existing`).
    NeverStarted,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The verdict.
    pub verdict: Verdict,
    /// This member's ID (the WAL's metadata).
    #[serde(serialize_with = "crate::base::units::ser_hex_opt")]
    pub member_id: Option<u64>,
    /// This member's name (the database's members bucket, else the manifest).
    pub name: Option<String>,
    /// What prevents etcd from starting.
    pub damage: Vec<String>,
    /// What etcd repairs by itself, and what is worth knowing.
    pub notes: Vec<String>,
    /// The WAL.
    pub wal: WalReport,
    /// The `.snap` files, newest first, and the one etcd loads.
    pub snaps: Vec<SnapFile>,
    /// The `.snap` etcd loads at start (the newest valid one the WAL has a marker for).
    pub loads_snap: Option<String>,
    /// The database.
    pub db: Option<DbReport>,
    /// The way back, command by command (every one moves data aside; none deletes).
    pub next_steps: Vec<String>,
}

impl Diagnosis {
    /// 0 healthy, self-repairing or never started, 1 damaged or removed.
    pub fn exit_code(&self) -> crate::ExitCode {
        match self.verdict {
            Verdict::Damaged | Verdict::Removed => crate::ExitCode::Negative,
            _ => crate::ExitCode::Ok,
        }
    }
}

/// What the doctor knows about the cluster around this member (from the manifest and, when
/// it answers, the live cluster).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The member's name from the manifest (`--name`).
    pub name: Option<String>,
    /// Its peer URLs from the manifest.
    pub peer_urls: Vec<String>,
    /// The static pod manifest, for the commands it prints.
    pub manifest: Option<PathBuf>,
    /// Other voters answer with a quorum without this member (`None`: not known).
    pub others_have_quorum: Option<bool>,
    /// The newest snapshot file the operator has, for the sole-survivor case.
    pub newest_snapshot: Option<PathBuf>,
    /// The live cluster's member list, when it answered.
    pub live: Option<Live>,
}

/// The live cluster's membership, as its member list gives it.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Its cluster ID.
    pub cluster_id: u64,
    /// Its members.
    pub members: Vec<crate::reach::cluster::Member>,
}

/// etcd opens every WAL segment from the one holding its snapshot onwards at start, each an
/// open file (`openWALFiles` in etcd's `wal.go`) held until it runs. Linux gives a process 1024
/// open files unless raised (`INR_OPEN_CUR`, `ulimit -n`; Go ≥ 1.19 raises it to the hard limit,
/// often no more), and etcd keeps `--max-wals` (default 5) segments once snapshotted: a data dir
/// with more than this many to open is not one etcd wrote in its normal course, and etcd may fail
/// on it with "too many open files".
pub const MAX_OPEN_SEGMENTS: usize = 1000;

fn snap_files(dir: &Path) -> Vec<SnapFile> {
    let mut out: Vec<SnapFile> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .map(|p| {
            let name = p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default();
            let parsed = walcheck::parse_name(&name, ".snap");
            let problem = check_snap(&p).err();
            SnapFile { term: parsed.map(|x| x.0), index: parsed.map(|x| x.1), valid: problem.is_none(), problem, name }
        })
        .collect();
    out.sort_by(|a, b| b.name.cmp(&a.name));
    out
}

fn check_snap(path: &Path) -> std::result::Result<(), String> {
    let bytes = crate::base::fsio::read_bounded(path, "snap file", 1 << 30).map_err(|e| e.report())?;
    if bytes.is_empty() {
        return Err("empty (etcd: \"snap: empty snapshot\")".into());
    }
    let f = crate::store::pb::decode(&bytes).ok_or("does not decode")?;
    let crc = crate::store::pb::get_varint(&f, 1).unwrap_or(0) as u32;
    let data = crate::store::pb::get_bytes(&f, 2).first().copied().unwrap_or(&[]);
    if crc32c::crc32c(data) != crc {
        return Err("CRC mismatch (etcd: \"snap: crc mismatch\")".into());
    }
    Ok(())
}

fn meta_u64(db: &Db, key: &[u8]) -> Option<u64> {
    let buckets = db.buckets().ok()?;
    let (_, meta) = buckets.iter().find(|(n, _)| n.as_slice() == b"meta")?;
    let mut out = None;
    let _ = db.for_each(meta, &mut |k, v| {
        if let (true, Some(v)) = (k == key, v.filter(|v| v.len() == 8)) {
            out = Some(u64::from_be_bytes(v.try_into().unwrap_or([0; 8])));
        }
        Ok(())
    });
    out
}

fn removed_ids(db: &Db) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(Some(root)) = db.bucket(b"members_removed") {
        let _ = db.for_each(&root, &mut |k, _| {
            if let Some(id) = std::str::from_utf8(k).ok().and_then(|s| u64::from_str_radix(s, 16).ok()) {
                out.push(id);
            }
            Ok(())
        });
    }
    out
}

/// The database's structure, and with `layout` etcd's buckets too (a member that never finished
/// its first start has a database holding `meta` alone, which etcd fills when it joins).
fn check_db(path: &Path, layout: bool) -> DbReport {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut rep = DbReport {
        size,
        valid: false,
        problem: None,
        consistent_index: None,
        term: None,
        members: vec![],
        removed: vec![],
    };
    // Opened without blocking and only as a regular file: a FIFO there would hang a plain open.
    let db = match crate::store::wal::open_regular(path)
        .map_err(|e| e.to_string())
        .and_then(|f| Db::from_file(f, path).map_err(|e| e.to_string()))
    {
        Ok(db) => db,
        Err(e) => {
            rep.problem = Some(e);
            return rep;
        }
    };
    match crate::store::bbolt::check::check(&db) {
        Ok(_) if !layout => rep.valid = true,
        Ok(summary) => match crate::store::snapfile::check_layout(path, &summary.buckets) {
            Ok(()) => rep.valid = true,
            Err(e) => rep.problem = Some(e.to_string()),
        },
        Err(e) => rep.problem = Some(e.to_string()),
    }
    rep.consistent_index = meta_u64(&db, b"consistent_index");
    rep.term = meta_u64(&db, b"term");
    rep.members = crate::store::backend::members(&db).unwrap_or_default();
    rep.removed = removed_ids(&db);
    rep
}

/// How many segments etcd opens at start: every one from the last whose first index is at or
/// below the index of the snapshot it loads (`selectWALFiles`/`searchIndex` in etcd's WAL).
pub fn segments_opened(segments: &[walcheck::Segment], snap_index: u64) -> usize {
    let from = segments.iter().rposition(|s| s.index.is_some_and(|i| i <= snap_index)).unwrap_or(0);
    segments.len() - from
}

/// The index the WAL's raft log reaches: its last entry, or its newest snapshot marker when
/// no entry follows it (a member that received a snapshot from its leader).
fn wal_end(wal: &WalReport) -> u64 {
    let marker = wal.snapshots.iter().map(|(i, _)| *i).max().unwrap_or(0);
    wal.last_index.unwrap_or(0).max(marker)
}

/// Entries the database applied that the WAL no longer holds, or a HardState that commits past
/// the log: etcd starts on such a dir, then panics as soon as its leader's commit index reaches
/// past its log (raft: "tocommit(N) is out of range [lastIndex(M)]. Was the raft log corrupted,
/// truncated, or lost?"), or wedges and takes no writes.
pub fn behind_the_database(consistent_index: Option<u64>, wal: &WalReport) -> Vec<String> {
    let end = wal_end(wal);
    let mut out = Vec::new();
    if let Some(ci) = consistent_index.filter(|ci| *ci > end) {
        out.push(format!(
            "the database is ahead of the WAL (consistent index {ci}, last WAL entry {end}): entries it applied were lost from the WAL; on rejoining its cluster etcd panics (\"tocommit({ci}) is out of range [lastIndex({end})]\") or takes no writes"
        ));
    }
    if let Some(commit) = wal.hard_state.map(|h| h.commit).filter(|c| *c > end) {
        out.push(format!(
            "the WAL's HardState commits index {commit} but its last entry is {end}: raft refuses it (\"commit {commit} is out of range\")"
        ));
    }
    out
}

/// Why this member counts as removed from its cluster, if it does: its own WAL removes it, its
/// database lists it in `members_removed`, or the live cluster (the same cluster ID) no longer
/// lists it.
pub fn removed_because(me: u64, wal: &WalReport, db: Option<&DbReport>, live: Option<&Live>) -> Option<String> {
    let id = member_id(me);
    if let Some(l) = live.filter(|l| Some(l.cluster_id) == wal.cluster_id) {
        if !l.members.iter().any(|m| m.id == me) {
            return Some(format!(
                "member {id} is not in its live cluster's member list ({}): it was removed, and its peers reject it (\"the member has been permanently removed from the cluster\")",
                l.members.iter().map(|m| format!("{} {}", m.name, member_id(m.id))).collect::<Vec<_>>().join(", ")
            ));
        }
        // The live list is the truth: a member added back under this ID is not removed.
        return None;
    }
    if wal.removed.contains(&me) {
        return Some(format!(
            "the WAL holds the configuration change that removes member {id} itself: it was removed from its cluster"
        ));
    }
    if db.is_some_and(|d| d.removed.contains(&me)) {
        return Some(format!(
            "the database lists member {id} itself in members_removed: it was removed from its cluster"
        ));
    }
    None
}

/// What the live cluster says about a data dir without a WAL: a member with this node's name
/// that has started (its WAL is lost: etcd refuses, "member … has already been bootstrapped"),
/// or the unstarted member etcd will join as.
fn no_wal_findings(ctx: &Context, live: &Live) -> (Option<String>, String) {
    let mine = |m: &&crate::reach::cluster::Member| {
        (!m.name.is_empty() && ctx.name.as_deref() == Some(m.name.as_str()))
            || m.peer_urls.iter().any(|u| ctx.peer_urls.contains(u))
    };
    match live.members.iter().find(mine) {
        Some(m) if !m.name.is_empty() => (
            Some(format!(
                "member/wal holds no segment, yet the live cluster lists {} ({}) as started: its WAL is lost, and etcd refuses to join again as it (\"member {} has already been bootstrapped\")",
                m.name,
                member_id(m.id),
                member_id(m.id)
            )),
            String::new(),
        ),
        Some(m) => (
            None,
            format!(
                "the live cluster lists it as unstarted member {} (peer URLs {}): etcd joins as that member",
                member_id(m.id),
                m.peer_urls.join(",")
            ),
        ),
        None => (
            None,
            "the live cluster lists no member with this node's name or peer URLs: add it first (kubectl etcd learner add NAME --peer-urls URL), or it cannot join".into(),
        ),
    }
}

/// What the `.snap` files and the WAL's snapshot markers say: the `.snap` etcd loads (the
/// newest valid one whose (term, index) the WAL has a marker for), and the damage and notes about
/// them and about the segments etcd would open at start.
fn snap_findings(
    member: &Path,
    snaps: &[SnapFile],
    wal: &WalReport,
    damage: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Option<String> {
    let loads_snap = snaps
        .iter()
        .filter(|s| s.valid)
        .find(|s| wal.snapshots.iter().any(|(i, t)| Some(*i) == s.index && Some(*t) == s.term))
        .map(|s| s.name.clone());
    for s in snaps.iter().filter(|s| !s.valid) {
        match walcheck::not_a_file(&member.join("snap").join(&s.name)) {
            Some(kind) => damage.push(format!(
                "member/snap/{} is {kind}, not a regular file: etcd cannot read it (a FIFO blocks it)",
                s.name
            )),
            None => notes.push(format!(
                "{} is broken ({}): etcd skips it and loads an older one",
                s.name,
                s.problem.clone().unwrap_or_default()
            )),
        }
    }
    let newest_marker = wal.snapshots.iter().filter(|(i, _)| *i > 0).max().copied();
    if let (Some((i, _)), None) = (newest_marker, &loads_snap) {
        if !snaps.is_empty() || i > 0 {
            // Without a matching .snap etcd replays from an older marker, which the WAL must still hold.
            let first_seg_index = wal.segments.first().and_then(|s| s.index).unwrap_or(0);
            if first_seg_index > 0 {
                damage.push(format!(
                    "no valid .snap matches the WAL's snapshot markers and the WAL starts at index {first_seg_index}: etcd cannot rebuild its state"
                ));
            } else {
                notes.push("no valid .snap matches the WAL's snapshot markers: etcd replays the whole WAL".into());
            }
        }
    }
    let snap_index = loads_snap.as_ref().and_then(|n| snaps.iter().find(|s| &s.name == n)).and_then(|s| s.index);
    let opened = segments_opened(&wal.segments, snap_index.unwrap_or(0));
    if opened > MAX_OPEN_SEGMENTS {
        damage.push(format!(
            "etcd would open {opened} WAL segments at once at start (every one after its snapshot), more than the {MAX_OPEN_SEGMENTS} a data dir etcd wrote ever holds: it fails with \"too many open files\" under the usual open-file limit"
        ));
    }
    loads_snap
}

/// Whose data dir this is: the WAL's cluster against the live cluster's, the WAL's member against
/// the database's members, the member's name against the manifest's `--name`.
fn identity_findings(
    wal: &WalReport,
    db: Option<&DbReport>,
    removed: bool,
    name: Option<&str>,
    ctx: &Context,
    damage: &mut Vec<String>,
) {
    if let (Some(l), Some(cid)) = (&ctx.live, wal.cluster_id) {
        if l.cluster_id != cid {
            damage.push(format!(
                "the WAL belongs to cluster {}, but the live cluster is {}: the data dir comes from another cluster",
                member_id(cid),
                member_id(l.cluster_id)
            ));
        }
    }
    if let (Some(id), Some(d), false) = (wal.member_id, db, removed) {
        if d.valid && !d.members.is_empty() && !d.members.iter().any(|m| m.id == id) {
            damage.push(format!(
                "the WAL belongs to member {} which is not in this database's members ({}): the WAL comes from another data dir",
                member_id(id),
                d.members.iter().map(|m| format!("{} {}", m.name, member_id(m.id))).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if let (Some(n), Some(mine)) = (name, &ctx.name) {
        if n != mine && damage.iter().all(|d| !d.contains("another data dir")) {
            damage.push(format!(
                "the WAL belongs to member {n}, but this node's manifest runs --name={mine}: the data dir comes from another node"
            ));
        }
    }
}

/// Examines a data dir. Fails (exit 3) when it is not one.
pub fn diagnose(data_dir: &Path, ctx: &Context) -> Result<Diagnosis> {
    let member = data_dir.join("member");
    if !member.is_dir() {
        return Err(Error::NotDataDir {
            path: data_dir.to_path_buf(),
            reason: "it has no member/ directory (an etcd data dir holds member/wal and member/snap)".into(),
        });
    }
    let wal_dir = member.join("wal");
    // etcd's `wal.Exist`: any `*.wal` name in member/wal. Without one, etcd starts afresh.
    let has_wal = crate::store::wal::wal_entries(&wal_dir).is_ok_and(|e| !e.is_empty());
    let wal = if has_wal {
        walcheck::check(&wal_dir).map_err(|source| Error::ReadFile {
            what: "WAL directory",
            path: wal_dir.clone(),
            input: true,
            source,
        })?
    } else {
        WalReport::default()
    };
    let snaps = snap_files(&member.join("snap"));
    let db_path = member.join("snap/db");
    let db = db_path.exists().then(|| check_db(&db_path, has_wal));
    let mut damage = wal.damage.clone();
    let mut notes = wal.repairable.clone();
    let loads_snap = snap_findings(&member, &snaps, &wal, &mut damage, &mut notes);
    match &db {
        None if has_wal => damage.push("member/snap/db is missing".into()),
        None => {}
        Some(d) if !d.valid => {
            damage.push(format!("member/snap/db is damaged: {}", d.problem.clone().unwrap_or_default()))
        }
        Some(d) if has_wal => damage.extend(behind_the_database(d.consistent_index, &wal)),
        Some(_) => {}
    }
    let me = wal.member_id;
    let removed = me.and_then(|id| removed_because(id, &wal, db.as_ref(), ctx.live.as_ref()));
    let name = me
        .and_then(|id| db.as_ref().and_then(|d| d.members.iter().find(|m| m.id == id)).map(|m| m.name.clone()))
        .filter(|n| !n.is_empty())
        .or_else(|| ctx.name.clone());
    identity_findings(&wal, db.as_ref(), removed.is_some(), name.as_deref(), ctx, &mut damage);
    if !has_wal {
        if let Some(live) = &ctx.live {
            let (lost, note) = no_wal_findings(ctx, live);
            damage.extend(lost);
            notes.extend(Some(note).filter(|n| !n.is_empty()));
        }
    }
    let verdict = if let Some(why) = removed {
        damage.insert(0, why);
        Verdict::Removed
    } else if !damage.is_empty() {
        Verdict::Damaged
    } else if !has_wal {
        Verdict::NeverStarted
    } else if !wal.repairable.is_empty() {
        Verdict::Repairable
    } else {
        Verdict::Healthy
    };
    let mut d = Diagnosis {
        data_dir: data_dir.to_path_buf(),
        verdict,
        member_id: me,
        name,
        damage,
        notes,
        wal,
        snaps,
        loads_snap,
        db,
        next_steps: Vec::new(),
    };
    d.next_steps = next_steps(&d, ctx);
    Ok(d)
}

fn next_steps(d: &Diagnosis, ctx: &Context) -> Vec<String> {
    let dir = d.data_dir.display().to_string();
    let aside = format!("mv {dir} {dir}.damaged-$(date +%Y%m%d%H%M%S)");
    // Out of the manifests folder (kubelet stops the pod), beside it, as restore node does; the
    // commands after it read the node's settings from there.
    let stopped = ctx.manifest.as_ref().map(|m| {
        let to = m.parent().and_then(Path::parent).unwrap_or(Path::new("/")).join("etcd.yaml.stopped");
        (m.clone(), to)
    });
    let name = d.name.clone().unwrap_or_else(|| "<this node's name>".into());
    let id = d.member_id.map(member_id).unwrap_or_else(|| name.clone());
    let peer = if ctx.peer_urls.is_empty() { "<its peer URL>".to_string() } else { ctx.peer_urls.join(",") };
    match d.verdict {
        Verdict::Healthy => vec![
            "etcd should start on this data dir: look elsewhere — its log (crictl logs, journalctl), its flags and certificates, free disk space".into(),
        ],
        Verdict::Repairable => vec![
            "start etcd as it is: it truncates the torn WAL tail and goes on (it logs \"repairing wal\")".into(),
        ],
        // Nothing else: a removed member's ID is gone for good, and its node joins again (if at
        // all) as a new member with an empty data dir.
        Verdict::Removed => vec![
            match &stopped {
                Some((m, to)) => format!("stop etcd: mv {} {}", m.display(), to.display()),
                None => "stop etcd on this node".into(),
            },
            format!(
                "move its data dir aside, never delete it, and never add it back under its old ID: mv {dir} {dir}.removed-$(date +%Y%m%d%H%M%S)"
            ),
        ],
        Verdict::NeverStarted => vec![
            "the member was added but never finished its first start: etcd joins its cluster afresh on this data dir when started with --initial-cluster-state=existing and the --initial-cluster that member add printed".into(),
            "look at why the first start failed in its log (crictl logs, journalctl), and in the member list (kubectl etcd health) for an unstarted member (no name) with this node's peer URL".into(),
        ],
        Verdict::Damaged if ctx.others_have_quorum != Some(false) => {
            let remove = "remove the member (the other voters keep the quorum): kubectl etcd learner remove";
            match &stopped {
                Some((m, to)) => vec![
                    format!("stop etcd: mv {} {}", m.display(), to.display()),
                    format!("move the damaged data dir aside, never delete it: {aside}"),
                    format!("{remove} {id} --manifest {}", to.display()),
                    format!(
                        "add it back as a learner; the manifest it writes has kubelet start etcd on an empty data dir, and it promotes the learner once it has caught up: kubectl etcd learner add {name} --peer-urls {peer} --manifest {} --write-manifest {} --promote",
                        to.display(),
                        m.display()
                    ),
                ],
                None => vec![
                    "stop etcd on this node".to_string(),
                    format!("move the damaged data dir aside, never delete it: {aside}"),
                    format!("{remove} {id}"),
                    format!("add it back as a learner: kubectl etcd learner add {name} --peer-urls {peer}"),
                    format!("start etcd on an empty data dir with the settings it prints, then: kubectl etcd learner promote {name}"),
                ],
            }
        }
        Verdict::Damaged => {
            let db_ok = d.db.as_ref().is_some_and(|x| x.valid);
            let survivor = if db_ok {
                format!(
                    "this member is the only survivor and its database verifies: kubectl etcd restore from-data-dir {dir} (it stops etcd, moves the data dir aside, rebuilds a one-member cluster from its database and starts it)"
                )
            } else {
                let snap = ctx
                    .newest_snapshot
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "<your newest snapshot file>".into());
                format!(
                    "this member is the only survivor and its database is damaged: kubectl etcd restore node {snap} --single-member (it stops etcd, moves the data dir aside and restores)"
                )
            };
            vec![
                survivor,
                "afterwards, add the other members back as learners: kubectl etcd learner add NAME --peer-urls URL".into(),
            ]
        }
    }
}

/// Everything around the data dir: which one (the argument, else the manifest's
/// `--data-dir`), this member's name and peer URLs from the manifest, whether the other voters
/// still have a quorum (asked with a short timeout; nobody answering means no), and the newest
/// `*.db` in `snapshots`. Then the diagnosis, read on a blocking thread.
pub async fn examine(settings: &Settings, dir: Option<PathBuf>, snapshots: Option<&Path>) -> Result<Diagnosis> {
    let manifest_path =
        settings.manifest.clone().or_else(|| Some(settings.default_manifest.clone()).filter(|p| p.exists()));
    let manifest = match &manifest_path {
        Some(p) => Some(Manifest::load(p)?),
        None => None,
    };
    let data_dir = match (dir, manifest.as_ref().and_then(|m| m.flag("data-dir"))) {
        (Some(d), _) => d,
        (None, Some(d)) => PathBuf::from(d),
        (None, None) => {
            return Err(Error::Usage("no data dir: pass DATA_DIR, or --manifest with the member's --data-dir".into()))
        }
    };
    let mut ctx = Context {
        name: manifest.as_ref().and_then(|m| m.name()).map(String::from),
        peer_urls: manifest
            .as_ref()
            .and_then(|m| m.flag("initial-advertise-peer-urls"))
            .map(crate::reach::discovery::manifest::split_list)
            .unwrap_or_default(),
        manifest: manifest_path.clone(),
        others_have_quorum: None,
        newest_snapshot: snapshots.and_then(newest_db),
        live: None,
    };
    if manifest.is_some() || !settings.endpoints.is_empty() {
        (ctx.others_have_quorum, ctx.live) = the_live_cluster(settings, ctx.name.as_deref()).await;
    }
    let dir = data_dir.clone();
    tokio::task::spawn_blocking(move || diagnose(&dir, &ctx)).await.map_err(Error::from_join)?
}

/// How the live cluster sees this member, through one session: whether the other voters make a
/// quorum without it (counted with the one quorum probe), and the member list (`None`, `None`
/// when nothing could be asked; `Some(false)`, `None` when no member answered).
async fn the_live_cluster(settings: &Settings, me: Option<&str>) -> (Option<bool>, Option<Live>) {
    let Ok(session) = Session::open(settings).await else { return (None, None) };
    let list = match session.member_list().await {
        Ok(l) => l,
        Err(Error::Unreachable { .. }) => return (Some(false), None),
        Err(_) => return (None, None),
    };
    let statuses = session.statuses(&list.members).await;
    let voters = statuses.iter().filter(|s| !s.member.is_learner).count();
    let up = statuses.iter().filter(|s| s.in_quorum() && Some(s.member.name.as_str()) != me).count();
    let (_, needed, _) = crate::reach::status::quorum(up, voters);
    (Some(voters > 1 && up >= needed), Some(Live { cluster_id: list.cluster_id, members: list.members }))
}

fn newest_db(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn damaged(db_valid: bool) -> Diagnosis {
        Diagnosis {
            data_dir: "/var/lib/etcd".into(),
            verdict: Verdict::Damaged,
            member_id: Some(0xab),
            name: Some("cp-2".into()),
            damage: vec!["x".into()],
            notes: vec![],
            wal: WalReport::default(),
            snaps: vec![],
            loads_snap: None,
            db: Some(DbReport {
                size: 1,
                valid: db_valid,
                problem: None,
                consistent_index: None,
                term: None,
                members: vec![],
                removed: vec![],
            }),
            next_steps: vec![],
        }
    }

    #[test]
    fn the_way_back_replaces_the_member_while_the_others_keep_quorum() {
        let ctx = Context {
            name: Some("cp-2".into()),
            peer_urls: vec!["https://10.0.0.2:2380".into()],
            manifest: Some("/etc/kubernetes/manifests/etcd.yaml".into()),
            others_have_quorum: Some(true),
            newest_snapshot: None,
            live: None,
        };
        let s = next_steps(&damaged(true), &ctx);
        assert_eq!(s[0], "stop etcd: mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.stopped");
        assert!(s[1].ends_with("mv /var/lib/etcd /var/lib/etcd.damaged-$(date +%Y%m%d%H%M%S)"), "{}", s[1]);
        assert!(
            s[2].ends_with("kubectl etcd learner remove 00000000000000ab --manifest /etc/kubernetes/etcd.yaml.stopped"),
            "{}",
            s[2]
        );
        assert!(s[3].ends_with(": kubectl etcd learner add cp-2 --peer-urls https://10.0.0.2:2380 --manifest /etc/kubernetes/etcd.yaml.stopped --write-manifest /etc/kubernetes/manifests/etcd.yaml --promote"), "{}", s[3]);
        assert_eq!(s.len(), 4, "{s:?}");
    }

    fn seg(index: u64) -> walcheck::Segment {
        walcheck::Segment {
            name: String::new(),
            seq: None,
            index: Some(index),
            records: 0,
            used: 0,
            size: 0,
            end: walcheck::End::Clean,
            problem: None,
        }
    }

    #[test]
    fn etcd_opens_the_segments_from_its_snapshots_on() {
        let segs: Vec<_> = [0, 100, 200, 300].into_iter().map(seg).collect();
        assert_eq!(segments_opened(&segs, 150), 3);
        assert_eq!(segments_opened(&segs, 0), 4);
        assert_eq!(segments_opened(&segs, 300), 1);
    }

    #[test]
    fn a_database_ahead_of_the_wal_is_damage_unless_a_snapshot_marker_reaches_it() {
        let wal = WalReport { last_index: Some(38), ..Default::default() };
        let d = behind_the_database(Some(39), &wal);
        assert!(d[0].contains("tocommit(39) is out of range [lastIndex(38)]"), "{d:?}");
        assert!(behind_the_database(Some(38), &wal).is_empty());
        let snapped = WalReport { last_index: None, snapshots: vec![(0, 0), (50, 2)], ..Default::default() };
        assert!(behind_the_database(Some(50), &snapped).is_empty());
        let committed = WalReport {
            last_index: Some(38),
            hard_state: Some(walcheck::HardState { term: 2, vote: 1, commit: 40 }),
            ..Default::default()
        };
        assert!(behind_the_database(None, &committed)[0].contains("commits index 40"));
    }

    #[test]
    fn removed_from_the_live_list_else_its_own_wal_or_database() {
        let member = |id| crate::reach::cluster::Member {
            id,
            name: format!("n{id}"),
            peer_urls: vec![],
            client_urls: vec![],
            is_learner: false,
        };
        let wal = WalReport { cluster_id: Some(9), removed: vec![7], ..Default::default() };
        let live = |cid, ids: &[u64]| Live { cluster_id: cid, members: ids.iter().map(|i| member(*i)).collect() };
        assert!(removed_because(7, &wal, None, Some(&live(9, &[1, 2])))
            .unwrap()
            .contains("live cluster's member list"));
        // The live list is the truth while it is this member's cluster.
        assert_eq!(removed_because(7, &wal, None, Some(&live(9, &[7, 2]))), None);
        assert!(removed_because(7, &wal, None, Some(&live(8, &[7]))).unwrap().contains("the WAL holds"));
        let clean = WalReport { cluster_id: Some(9), ..Default::default() };
        let mut db = damaged(true).db.unwrap();
        assert_eq!(removed_because(7, &clean, Some(&db), None), None);
        db.removed = vec![7];
        assert!(removed_because(7, &clean, Some(&db), None).unwrap().contains("members_removed"));
    }

    #[test]
    fn a_removed_member_is_stopped_and_moved_aside_and_nothing_else() {
        let ctx = Context { manifest: Some("/etc/kubernetes/manifests/etcd.yaml".into()), ..Default::default() };
        let mut d = damaged(true);
        d.verdict = Verdict::Removed;
        let s = next_steps(&d, &ctx);
        assert_eq!(s[0], "stop etcd: mv /etc/kubernetes/manifests/etcd.yaml /etc/kubernetes/etcd.yaml.stopped");
        assert!(s[1].ends_with(": mv /var/lib/etcd /var/lib/etcd.removed-$(date +%Y%m%d%H%M%S)"), "{}", s[1]);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(d.exit_code(), crate::ExitCode::Negative);
    }

    #[test]
    fn the_sole_survivor_restores_from_its_database_or_the_newest_snapshot() {
        let ctx =
            Context { others_have_quorum: Some(false), newest_snapshot: Some("/b/s.db".into()), ..Default::default() };
        let s = next_steps(&damaged(true), &ctx);
        assert!(s[0].contains("kubectl etcd restore from-data-dir /var/lib/etcd"), "{s:?}");
        let s = next_steps(&damaged(false), &ctx);
        assert!(s[0].contains("kubectl etcd restore node /b/s.db --single-member"), "{s:?}");
        assert!(!s.iter().any(|x| x.starts_with("then")), "{s:?}");
    }
}
