//! Reading what an etcd data dir's raft log holds: WAL segments (`member/wal/*.wal`) and v2
//! store snapshots (`member/snap/*.snap`), read-only, with or without etcd running.
//!
//! A WAL segment is a run of frames: a u64 little-endian length (top bit set when the record is
//! padded to 8 bytes, the pad count in bits 56–58), then a `walpb.Record{Type, Crc, Data}`.
//! A zero length ends the written part (etcd preallocates segments with zeros).
//!
//! Members' client URLs live here: etcd 3.5 keeps only names and peer URLs in the backend's
//! `members` bucket, and records each member's `clientURLs` when it publishes its attributes —
//! a raft entry (`PUT /0/members/<id>/attributes`, or a `ClusterMemberAttrSet` request) that
//! stays in the WAL until a snapshot folds it into the v2 store of a `.snap` file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::member::StoredMember;
use crate::store::pb::{self, decode, get_bytes, get_varint};

/// Frames larger than this are not records (etcd caps a record far below it).
const MAX_RECORD: u64 = 64 << 20;

/// One WAL record.
#[derive(Debug, Clone)]
pub struct Record {
    /// `walpb.Record.Type` (see [`crate::store::pb::record`]).
    pub kind: u64,
    /// The rolling CRC-32C stored with it.
    pub crc: u32,
    /// Its data.
    pub data: Vec<u8>,
}

/// The WAL segments of a data dir, in order.
pub fn segments(data_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    segments_in(&data_dir.join("member/wal"))
}

/// The `*.wal` files of a WAL directory, in order.
pub fn segments_in(wal_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(wal_entries(wal_dir)?.into_iter().filter(|p| p.is_file()).collect())
}

/// Every entry of a WAL directory named `*.wal`, in order, whatever its type: etcd opens each
/// (a FIFO, a directory or a device among them is damage, never a segment to read).
pub fn wal_entries(wal_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(wal_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    out.sort();
    Ok(out)
}

/// Opens a file for reading without ever blocking on it (`O_NONBLOCK`: a FIFO put where a file
/// belongs would block a plain open until a writer comes) and only when it is a regular file.
pub fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    match crate::base::fsio::not_regular(&f.metadata()?) {
        None => Ok(f),
        Some(kind) => Err(std::io::Error::other(format!("it is {kind}, not a regular file"))),
    }
}

/// The offset of the first non-zero byte of `path` at or after `from`, if any: what follows a
/// record etcd stops reading at. etcd zero-fills what it preallocates and truncates a segment
/// when it cuts to the next, so anything there was written.
pub fn first_data_after(path: &Path, from: u64) -> std::io::Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    let mut f = open_regular(path)?;
    f.seek(SeekFrom::Start(from))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut at = from;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = buf[..n].iter().position(|b| *b != 0) {
            return Ok(Some(at + i as u64));
        }
        at += n as u64;
    }
}

/// etcd's torn-write check looks at 512-byte sectors (`minSectorSize`).
const SECTOR: u64 = 512;

/// The next frame of a segment.
#[derive(Debug)]
pub enum Frame {
    /// A record; `torn` when a 512-byte sector of its bytes is all zeros (etcd's
    /// `isTornEntry`: what a half-written record looks like).
    Record {
        /// The record.
        record: Record,
        /// A zeroed sector in its bytes.
        torn: bool,
    },
    /// The end of the written part: end of file, or the zero-filled tail etcd preallocates.
    End,
    /// A frame that cannot be a record; `torn` when it is cut short or half written.
    Problem {
        /// Cut short or half written (etcd repairs that in the last segment).
        torn: bool,
        /// What is wrong, with the byte offset.
        reason: String,
    },
}

/// Reads a segment frame by frame: a u64 little-endian length (top bit set when padded to 8
/// bytes, the pad in bits 56–58), then a `walpb.Record`. Memory is one record at a time.
#[derive(Debug)]
pub struct Frames {
    r: BufReader<std::fs::File>,
    off: u64,
    frame_end: u64,
}

impl Frames {
    /// Opens a segment (a regular file only, never blocking: [`open_regular`]).
    pub fn open(path: &Path) -> std::io::Result<Frames> {
        Ok(Frames { r: BufReader::with_capacity(1 << 16, open_regular(path)?), off: 0, frame_end: 0 })
    }

    /// Where the last frame read ends as its length field says (also for a frame that is not a
    /// record; the end of what was read when the length itself is unreadable).
    pub fn frame_end(&self) -> u64 {
        self.frame_end
    }

    /// The offset of the next frame (after the last record read: the end of the written part).
    pub fn offset(&self) -> u64 {
        self.off
    }

    /// The next frame.
    pub fn next_frame(&mut self) -> std::io::Result<Frame> {
        let off = self.off;
        let mut len = [0u8; 8];
        let got = read_full(&mut self.r, &mut len)?;
        self.frame_end = off + got as u64;
        if got == 0 {
            return Ok(Frame::End);
        }
        if got < 8 {
            return Ok(Frame::Problem { torn: true, reason: format!("a record's length is cut short at byte {off}") });
        }
        let field = u64::from_le_bytes(len);
        if field == 0 {
            return Ok(Frame::End);
        }
        let size = field & !(0xffu64 << 56);
        let pad = if field >> 63 == 1 { (field >> 56) & 7 } else { 0 };
        if size > MAX_RECORD {
            return Ok(Frame::Problem {
                torn: false,
                reason: format!("impossible record length {size} at byte {off}"),
            });
        }
        self.frame_end = off + 8 + size + pad;
        let mut frame = vec![0u8; (size + pad) as usize];
        let got = read_full(&mut self.r, &mut frame)?;
        if got < frame.len() {
            let reason = format!("the record at byte {off} is cut short ({got} of {} bytes)", frame.len());
            return Ok(Frame::Problem { torn: true, reason });
        }
        let torn = has_zero_sector(&frame, off + 8);
        frame.truncate(size as usize);
        let Some(fields) = decode(&frame) else {
            return Ok(Frame::Problem { torn, reason: format!("the record at byte {off} does not decode") });
        };
        let record = Record {
            kind: get_varint(&fields, 1).unwrap_or(0),
            crc: get_varint(&fields, 2).unwrap_or(0) as u32,
            data: get_bytes(&fields, 3).first().map(|d| d.to_vec()).unwrap_or_default(),
        };
        self.off = off + 8 + size + pad;
        Ok(Frame::Record { record, torn })
    }
}

fn has_zero_sector(frame: &[u8], start: u64) -> bool {
    let mut off = 0usize;
    let mut pos = start;
    while off < frame.len() {
        let to_boundary = (SECTOR - pos % SECTOR) as usize;
        let end = (off + to_boundary).min(frame.len());
        if frame[off..end].iter().all(|b| *b == 0) {
            return true;
        }
        pos += (end - off) as u64;
        off = end;
    }
    false
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The records of one segment, up to its end, its zero-filled tail, or a torn last record.
pub fn read_segment(path: &Path) -> std::io::Result<Vec<Record>> {
    let mut out = Vec::new();
    each_record(path, &mut |r| {
        out.push(r);
        true
    })?;
    Ok(out)
}

/// Gives the records of one segment to `f` one at a time (until it returns false), so that
/// memory holds one record, not a 64 MiB segment's worth.
pub fn each_record(path: &Path, f: &mut dyn FnMut(Record) -> bool) -> std::io::Result<()> {
    let mut frames = Frames::open(path)?;
    while let Frame::Record { record, .. } = frames.next_frame()? {
        if !f(record) {
            break;
        }
    }
    Ok(())
}

/// `(member ID, cluster ID)` from the metadata record of a data dir's first WAL segment (read
/// up to that record only).
pub fn metadata(data_dir: &Path) -> Option<(u64, u64)> {
    let first = segments(data_dir).ok()?.into_iter().next()?;
    let mut found = None;
    each_record(&first, &mut |r| {
        if r.kind == pb::record::METADATA {
            found = Some(r);
            return false;
        }
        true
    })
    .ok()?;
    let rec = found?;
    let f = decode(&rec.data)?;
    Some((get_varint(&f, 1)?, get_varint(&f, 2)?))
}

/// A member's published attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Attributes {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Client URLs.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

/// `/0/members/<hex id>/attributes` → the ID.
fn attributes_path(path: &[u8]) -> Option<u64> {
    let p = std::str::from_utf8(path).ok()?;
    let hex = p.strip_prefix("/0/members/")?.strip_suffix("/attributes")?;
    u64::from_str_radix(hex, 16).ok()
}

/// A v2 `etcdserverpb.Request` that publishes attributes: `(ID, attributes)`.
fn from_v2_request(b: &[u8]) -> Option<(u64, Attributes)> {
    let f = decode(b)?;
    if get_bytes(&f, 2).first().copied() != Some(b"PUT".as_slice()) {
        return None;
    }
    let id = attributes_path(get_bytes(&f, 3).first()?)?;
    let attrs = serde_json::from_slice(get_bytes(&f, 4).first()?).ok()?;
    Some((id, attrs))
}

/// Field numbers of `etcdserverpb.InternalRaftRequest` read here.
const IRR_V2: u32 = 2;
const IRR_MEMBER_ATTR_SET: u32 = 1301;

/// The attributes an entry's data publishes, whichever form etcd wrote it in.
fn attributes_of_entry(data: &[u8]) -> Option<(u64, Attributes)> {
    if let Some(a) = from_v2_request(data) {
        return Some(a);
    }
    let f = decode(data)?;
    if let Some(v2) = get_bytes(&f, IRR_V2).first() {
        if let Some(a) = from_v2_request(v2) {
            return Some(a);
        }
    }
    let set = decode(get_bytes(&f, IRR_MEMBER_ATTR_SET).first()?)?;
    let id = get_varint(&set, 1)?;
    let attrs = decode(get_bytes(&set, 2).first()?)?;
    let name = get_bytes(&attrs, 1).first().map(|n| String::from_utf8_lossy(n).to_string()).unwrap_or_default();
    let client_urls = get_bytes(&attrs, 2).iter().map(|u| String::from_utf8_lossy(u).to_string()).collect();
    Some((id, Attributes { name, client_urls }))
}

/// The membership a data dir's raft log records.
#[derive(Debug, Clone, Default)]
pub struct LogMembership {
    /// Members added by configuration changes in the WAL (and not removed since).
    pub members: BTreeMap<u64, StoredMember>,
    /// Members the WAL removes.
    pub removed: BTreeSet<u64>,
    /// Every member's last published attributes: from the newest `.snap` file's v2 store, then
    /// the WAL's entries (later ones win).
    pub attributes: BTreeMap<u64, Attributes>,
}

/// `raftpb.ConfChangeType`.
const CC_ADD: u64 = 0;
const CC_REMOVE: u64 = 1;
const CC_UPDATE: u64 = 2;
const CC_ADD_LEARNER: u64 = 3;

/// Reads the membership a data dir's raft log records. Unreadable parts are skipped: this is
/// a best effort beside the backend's `members` bucket.
pub fn membership(data_dir: &Path) -> LogMembership {
    let mut out = LogMembership::default();
    if let Some(snap) = newest_snap(data_dir) {
        if let Ok(bytes) = std::fs::read(&snap) {
            store_attributes(&bytes, &mut out.attributes);
        }
    }
    // One record at a time: a data dir's WAL is gigabytes of 64 MiB segments.
    for seg in segments(data_dir).unwrap_or_default() {
        let _ = each_record(&seg, &mut |rec| {
            if rec.kind != pb::record::ENTRY {
                return true;
            }
            let Some(entry) = decode(&rec.data) else { return true };
            let Some(data) = get_bytes(&entry, 4).first().copied() else { return true };
            match get_varint(&entry, 1).unwrap_or(0) {
                pb::ENTRY_CONF_CHANGE => conf_change(data, &mut out),
                0 => {
                    if let Some((id, a)) = attributes_of_entry(data) {
                        out.attributes.insert(id, a);
                    }
                }
                _ => {}
            }
            true
        });
    }
    out
}

/// `(type, node ID)` of a `raftpb.ConfChange{ID, Type, NodeID, Context}`.
fn conf_change_kind(cc: &[(u32, pb::Value<'_>)]) -> Option<(u64, u64)> {
    Some((get_varint(cc, 2).unwrap_or(0), get_varint(cc, 3)?))
}

/// The member a WAL entry (`raftpb.Entry`, the record's data) removes from the cluster, if it
/// is a `ConfChangeRemoveNode`.
pub fn removes(entry: &[u8]) -> Option<u64> {
    let e = decode(entry)?;
    if get_varint(&e, 1) != Some(pb::ENTRY_CONF_CHANGE) {
        return None;
    }
    let cc = decode(get_bytes(&e, 4).first()?)?;
    conf_change_kind(&cc).filter(|(kind, _)| *kind == CC_REMOVE).map(|(_, id)| id)
}

/// Applies one `raftpb.ConfChange{ID, Type, NodeID, Context}`; the context of adds and updates
/// is the member's JSON.
fn conf_change(data: &[u8], out: &mut LogMembership) {
    let Some(cc) = decode(data) else { return };
    let Some((kind, id)) = conf_change_kind(&cc) else { return };
    let context: Option<StoredMember> = get_bytes(&cc, 4).first().and_then(|c| serde_json::from_slice(c).ok());
    match kind {
        CC_ADD | CC_ADD_LEARNER | CC_UPDATE => {
            if let Some(mut m) = context {
                m.id = id;
                m.is_learner = kind == CC_ADD_LEARNER || (kind == CC_UPDATE && m.is_learner);
                out.removed.remove(&id);
                out.members.insert(id, m);
            }
        }
        CC_REMOVE => {
            out.members.remove(&id);
            out.removed.insert(id);
        }
        _ => {}
    }
}

fn newest_snap(data_dir: &Path) -> Option<PathBuf> {
    let mut snaps: Vec<PathBuf> = std::fs::read_dir(data_dir.join("member/snap"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    snaps.sort();
    snaps.pop()
}

/// Reads `/0/members/*/attributes` out of a `.snap` file (`snappb.Snapshot` → `raftpb.Snapshot`
/// → the v2 store's JSON).
fn store_attributes(snap_file: &[u8], out: &mut BTreeMap<u64, Attributes>) {
    let Some(outer) = decode(snap_file) else { return };
    let Some(raft) = get_bytes(&outer, 2).first().and_then(|d| decode(d)) else { return };
    let Some(store) = get_bytes(&raft, 1).first().and_then(|d| serde_json::from_slice::<serde_json::Value>(d).ok())
    else {
        return;
    };
    fn walk(v: &serde_json::Value, out: &mut BTreeMap<u64, Attributes>) {
        match v {
            serde_json::Value::Object(m) => {
                if let (Some(path), Some(value)) =
                    (m.get("Path").and_then(|p| p.as_str()), m.get("Value").and_then(|v| v.as_str()))
                {
                    if let (Some(id), Ok(a)) = (attributes_path(path.as_bytes()), serde_json::from_str(value)) {
                        out.insert(id, a);
                    }
                }
                for child in m.values() {
                    walk(child, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    walk(&store, out);
}

/// The membership and any custom data in the v2 store of a data dir's newest `.snap` file.
#[derive(Debug, Clone, Default)]
pub struct V2Store {
    /// The `.snap` file read.
    pub file: PathBuf,
    /// Members (`/0/members/<id>/raftAttributes`): ID → is a learner.
    pub members: BTreeMap<u64, bool>,
    /// Removed members (`/0/removed_members/<id>`).
    pub removed: BTreeSet<u64>,
    /// Paths of keys outside the membership (`/1/…`): custom v2 data, which etcd 3.6 refuses.
    pub custom: Vec<String>,
}

/// Reads the v2 store of the newest `.snap` file of a data dir (`None`: no `.snap` file yet, or
/// one that does not decode).
pub fn v2_store(data_dir: &Path) -> Option<V2Store> {
    let file = newest_snap(data_dir)?;
    let bytes = std::fs::read(&file).ok()?;
    let outer = decode(&bytes)?;
    let raft = get_bytes(&outer, 2).first().and_then(|d| decode(d))?;
    let store = get_bytes(&raft, 1).first().and_then(|d| serde_json::from_slice::<serde_json::Value>(d).ok())?;
    let mut out = V2Store { file, ..V2Store::default() };
    fn walk(v: &serde_json::Value, out: &mut V2Store) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(path) = m.get("Path").and_then(|p| p.as_str()) {
                    let leaf = m.get("Value").is_some_and(|v| v.is_string());
                    if let Some(rest) = path.strip_prefix("/0/members/") {
                        if let Some(hex) = rest.strip_suffix("/raftAttributes") {
                            if let Ok(id) = u64::from_str_radix(hex, 16) {
                                let learner = m
                                    .get("Value")
                                    .and_then(|v| v.as_str())
                                    .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                                    .and_then(|v| v.get("isLearner").and_then(|l| l.as_bool()))
                                    .unwrap_or(false);
                                out.members.insert(id, learner);
                            }
                        }
                    } else if let Some(hex) = path.strip_prefix("/0/removed_members/") {
                        if let Ok(id) = u64::from_str_radix(hex, 16) {
                            out.removed.insert(id);
                        }
                    } else if leaf && path.starts_with("/1/") && out.custom.len() < 10 {
                        out.custom.push(path.to_string());
                    }
                }
                for child in m.values() {
                    walk(child, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
            _ => {}
        }
    }
    walk(&store, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pb::{field_bytes, field_varint};

    fn v2_put(path: &str, val: &str) -> Vec<u8> {
        let mut b = Vec::new();
        field_varint(&mut b, 1, 42);
        field_bytes(&mut b, 2, b"PUT");
        field_bytes(&mut b, 3, path.as_bytes());
        field_bytes(&mut b, 4, val.as_bytes());
        b
    }

    #[test]
    fn attributes_in_every_form_etcd_writes() {
        let val = r#"{"name":"cp-2","clientURLs":["https://10.0.0.2:2379"]}"#;
        let plain = v2_put("/0/members/ff/attributes", val);
        let (id, a) = attributes_of_entry(&plain).unwrap();
        assert_eq!((id, a.name.as_str(), a.client_urls[0].as_str()), (255, "cp-2", "https://10.0.0.2:2379"));
        let mut wrapped = Vec::new();
        field_varint(&mut wrapped, 1, 7);
        field_bytes(&mut wrapped, IRR_V2, &plain);
        assert_eq!(attributes_of_entry(&wrapped).unwrap().0, 255);
        let mut attrs = Vec::new();
        field_bytes(&mut attrs, 1, b"cp-3");
        field_bytes(&mut attrs, 2, b"https://10.0.0.3:2379");
        let mut set = Vec::new();
        field_varint(&mut set, 1, 9);
        field_bytes(&mut set, 2, &attrs);
        let mut v3 = Vec::new();
        field_bytes(&mut v3, IRR_MEMBER_ATTR_SET, &set);
        let (id, a) = attributes_of_entry(&v3).unwrap();
        assert_eq!((id, a.name.as_str(), a.client_urls.len()), (9, "cp-3", 1));
        assert!(attributes_of_entry(&v2_put("/registry/pods/x", "{}")).is_none());
    }

    #[test]
    fn segment_reader_stops_at_zeros_and_torn_tails() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = crate::ops::restore::wal::WalWriter::new();
        let e = pb::entry(0, 1, 1, &v2_put("/0/members/a/attributes", r#"{"name":"x","clientURLs":["https://h:1"]}"#));
        w.record(pb::record::ENTRY, Some(&e));
        let path = dir.path().join("0.wal");
        let mut bytes = w.bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_segment(&path).unwrap().len(), 2);
        // A last record cut short (a power loss) ends the read; what came before stays.
        let torn = &w.bytes()[..w.bytes().len() - 3];
        std::fs::write(&path, torn).unwrap();
        assert_eq!(read_segment(&path).unwrap().len(), 1);
    }
}
